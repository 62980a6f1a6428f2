"""Pooled fitting over a group of samples (openCyto's collapseDataForGating + groupBy, made
deterministic): one :class:`~cytophen.engine._tree.TreeEvaluator` per sample, driven population by
population; each pooled data-driven gate is fitted once on the pooled parent events of every
sample and the same gate is given to every evaluator."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from cytophen.engine._tree import PlaceHook, TreeEvaluator, fit_on_sample, gate, place_with
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate, FitOutcome
from cytophen.template import Template

__all__ = ["fit_pooled", "fit_groups", "gate_pooled"]


def fit_pooled(
    samples: Sequence,
    template: Template,
    *,
    seed: int = 0,
    compensation=None,
    only_marked: bool = False,
    pregated: str | None = None,
) -> dict[str, FitOutcome]:
    """Fit every data-driven gate of ``template`` once on the pooled parent events of ``samples``.

    Gates are fitted in tree order: a gate's parent events in each sample come from the pooled
    gates fitted before it, exactly as :func:`cytophen.engine.gate` will apply them (the same
    evaluator, with the same rules for clean-up steps, absent markers, booleans and refs). Each
    sample contributes at most ``ceil(max_fit_events / n_samples)`` parent events, drawn with
    ``np.random.default_rng([seed, i])`` (``i`` = the sample's position in ``samples``), and pools
    are concatenated in the given order: the same samples in the same order give the same gates.

    Parameters
    ----------
    samples
        :class:`~cytophen.io.sample.Sample` objects of one group (e.g. all visits of a subject).
    template
        The template whose data-driven gates to fit.
    seed
        Seed of the per-sample draws and of the fits.
    compensation, pregated
        As :func:`cytophen.engine.gate`.
    only_marked
        Pool only gates whose ``pool`` is set in the template (the others are fitted on each
        sample, as :func:`cytophen.engine.gate` will, so that the gates below them can be pooled).

    Returns
    -------
    dict
        ``{gate_key: FitOutcome}`` to pass as ``fitted=`` to :func:`cytophen.gate` for each sample
        of the group. Each outcome's details add ``pooled_samples`` and ``pooled_events``.

    Raises
    ------
    MarkerError
        A sample lacks a required marker (the file and every such marker named), as when it is
        gated alone.
    """
    if not samples:
        raise GateError("pooled", "no samples to pool")
    evaluators = [
        TreeEvaluator(s, template, compensation=compensation, pregated=pregated) for s in samples
    ]
    own = fit_on_sample(template, seed=seed)
    fits: dict[str, FitOutcome] = {}
    for pop in template.populations:
        g = pop.gate
        place = own
        if isinstance(g, DataDrivenGate) and (g.pool is not None or not only_marked):
            key = template.gate_key(pop.name)
            if key not in fits:  # the first population using the gate (quadrant children share)
                fits[key] = _fit_pool(pop, evaluators, own, seed)
            place = _given(fits[key])
        for ev in evaluators:
            ev.evaluate(pop, place)
    for ev in evaluators:
        ev.check_markers()
    return fits


def _given(outcome: FitOutcome) -> PlaceHook:
    """The hook that places a gate as ``outcome`` says (whatever the sample)."""
    return lambda pop, gate_, values: outcome


def _fit_pool(pop, evaluators: list[TreeEvaluator], fit: PlaceHook, seed: int) -> FitOutcome:
    """Fit ``pop``'s gate with ``fit`` on the parent events of every sample that gates it (each
    capped at its share of ``max_fit_events``, drawn with ``default_rng([seed, i])``)."""
    from cytophen.datadriven import DEFAULT_MAX_FIT_EVENTS  # loaded with the estimators

    g = pop.gate
    cap = int((g.params or {}).get("max_fit_events", DEFAULT_MAX_FIT_EVENTS))
    per = math.ceil(cap / len(evaluators))
    chunks, counts = [], []
    for i, ev in enumerate(evaluators):
        if not ev.pending(pop):  # not gated on this sample (parent not measured, skipped, ...)
            counts.append(0)
            continue
        vals = ev.parent_values(pop)
        if vals.shape[0] > per:
            rng = np.random.default_rng([seed, i])
            vals = vals[np.sort(rng.choice(vals.shape[0], size=per, replace=False))]
        chunks.append(vals)
        counts.append(int(vals.shape[0]))
    pooled = np.concatenate(chunks) if chunks else np.empty((0, len(g.dims)))
    out = place_with(fit, pop, g, lambda: pooled)
    out.details["pooled_samples"] = [str(ev.sample.id) for ev in evaluators]
    out.details["pooled_events"] = counts
    return out


def fit_groups(
    samples: Sequence,
    template: Template,
    group_by: Sequence[Hashable] | Callable[[Any], Hashable],
    *,
    seed: int = 0,
    compensation=None,
    only_marked: bool = False,
    pregated: str | None = None,
) -> dict[Hashable, dict[str, FitOutcome]]:
    """:func:`fit_pooled` per group: ``group_by`` is one label per sample or a function of a sample.

    Groups are processed in sorted label order and samples within a group in the given order, so
    the assignment and the fits are deterministic (unlike openCyto's random numeric ``groupBy``).

    Returns
    -------
    dict
        ``{group_label: {gate_key: FitOutcome}}``.
    """
    labels = [group_by(s) for s in samples] if callable(group_by) else list(group_by)
    if len(labels) != len(samples):
        raise GateError("pooled", f"group_by has {len(labels)} labels for {len(samples)} samples")
    out: dict[Hashable, dict[str, FitOutcome]] = {}
    for lab in sorted(set(labels), key=str):
        group = [s for s, g in zip(samples, labels) if g == lab]
        out[lab] = fit_pooled(
            group,
            template,
            seed=seed,
            compensation=compensation,
            only_marked=only_marked,
            pregated=pregated,
        )
    return out


def gate_pooled(
    samples: Sequence, template: Template, group_by, *, seed: int = 0, **kwargs
) -> list:
    """Gate each sample with the gates fitted on its group's pooled events (list of GatingResult)."""
    labels = [group_by(s) for s in samples] if callable(group_by) else list(group_by)
    fits = fit_groups(
        samples,
        template,
        labels,
        seed=seed,
        compensation=kwargs.get("compensation"),
        pregated=kwargs.get("pregated"),
    )
    return [
        gate(s, template, fitted=fits[lab], seed=seed, **kwargs) for s, lab in zip(samples, labels)
    ]
