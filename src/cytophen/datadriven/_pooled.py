"""Pooled fitting over a group of samples (openCyto's collapseDataForGating + groupBy, made
deterministic) and freezing fitted gates into a fixed template."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from cytophen.datadriven._api import DEFAULT_MAX_FIT_EVENTS, fit_gate
from cytophen.engine import FitOutcome, GateContext, _gate_key
from cytophen.errors import CytophenError, GateError, MarkerError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
    RefGate,
    resolve_ref,
)
from cytophen.template import Population, Template

__all__ = ["fit_pooled", "fit_groups", "gate_pooled", "freeze"]


def fit_pooled(
    samples: Sequence,
    template: Template,
    *,
    seed: int = 0,
    compensation=None,
    only_marked: bool = False,
) -> dict[str, FitOutcome]:
    """Fit every data-driven gate of ``template`` once on the pooled parent events of ``samples``.

    Gates are fitted in tree order: a gate's parent events in each sample come from the pooled
    gates fitted before it, exactly as :func:`cytophen.engine.gate` will apply them. Each sample
    contributes at most ``ceil(max_fit_events / n_samples)`` parent events, drawn with
    ``np.random.default_rng([seed, i])`` (``i`` = the sample's position in ``samples``), and pools are
    concatenated in the given order: the same samples in the same order give the same gates.

    Parameters
    ----------
    samples
        :class:`~cytophen.io.sample.Sample` objects of one group (e.g. all visits of a subject).
    template
        The template whose data-driven gates to fit.
    seed
        Seed of the per-sample draws and of the fits.
    compensation
        As :func:`cytophen.engine.gate`.
    only_marked
        Pool only gates whose ``pool`` is set in the template (the others are left to per-sample
        fitting by the engine).

    Returns
    -------
    dict
        ``{gate_key: FitOutcome}`` to pass as ``fitted=`` to :func:`cytophen.gate` for each sample
        of the group. Each outcome's details add ``pooled_samples`` and ``pooled_events``.
    """
    if not samples:
        raise GateError("pooled", "no samples to pool")
    ctxs = [GateContext(s, template, compensation) for s in samples]
    members: list[dict[str, np.ndarray]] = [{} for _ in samples]
    measured: list[dict[str, bool]] = [{} for _ in samples]
    placed: list[dict[str, Gate]] = [{} for _ in samples]  # what ref gates reuse
    fits: dict[str, FitOutcome] = {}
    by_gate: dict[int, FitOutcome] = {}
    for pop in template.populations:
        g = pop.gate
        parents = []
        for i, ctx in enumerate(ctxs):
            n = ctx.sample.n_events
            if pop.parent is None:
                parents.append(np.ones(n, dtype=bool))
            elif measured[i][pop.parent]:
                parents.append(members[i][pop.parent])
            else:
                parents.append(None)
        geom: Gate | None = g
        if isinstance(g, DataDrivenGate):
            if id(g) not in by_gate:
                key = _gate_key(pop, template)
                if only_marked and g.pool is None:
                    by_gate[id(g)] = None  # type: ignore[assignment]
                else:
                    by_gate[id(g)] = _fit_one_pool(g, ctxs, parents, seed)
                    fits[key] = by_gate[id(g)]
            outcome = by_gate[id(g)]
            if outcome is None:
                # not pooled: fit per sample so that descendants can still be pooled
                geom = None
            else:
                geom = outcome.gate
        for i, ctx in enumerate(ctxs):
            n = ctx.sample.n_events
            pm = parents[i]
            if pm is None:
                members[i][pop.name], measured[i][pop.name] = np.zeros(n, bool), False
                continue
            try:
                if isinstance(g, BooleanGate):
                    if not all(measured[i].get(op, False) for op, _ in g.operands):
                        raise MarkerError(None, pop.name, "has an unmeasured operand", [])
                    m = g.combine(members[i]) & pm
                else:
                    gg = geom
                    if isinstance(g, RefGate):
                        if not all(r in placed[i] for r, _ in g.refs):
                            raise MarkerError(None, pop.name, "has an unplaced reference", [])
                        gg = resolve_ref(
                            [(r, placed[i][r]) for r, _ in g.refs],
                            [d for _, d in g.refs],
                            population=pop.name,
                        )
                    if gg is None and isinstance(g, DataDrivenGate) and by_gate[id(g)] is None:
                        gg = fit_gate(g, ctx.matrix_of(g.dims)[pm], seed=seed).gate
                    if gg is None:
                        raise MarkerError(None, pop.name, "was not placed", [])
                    if isinstance(gg, QuadrantGate):
                        gg = gg.rectangle(pop.quadrant)
                    placed[i][pop.name] = gg
                    m = np.zeros(n, bool)
                    idx = np.flatnonzero(pm)
                    m[idx] = gg.contains(ctx.matrix_of(gg.dims)[idx])
                members[i][pop.name], measured[i][pop.name] = m, True
            except MarkerError:
                members[i][pop.name], measured[i][pop.name] = np.zeros(n, bool), False
    return fits


def _fit_one_pool(g: DataDrivenGate, ctxs, parents, seed: int) -> FitOutcome:
    cap = int((g.params or {}).get("max_fit_events", DEFAULT_MAX_FIT_EVENTS))
    per = math.ceil(cap / len(ctxs))
    chunks, counts = [], []
    for i, (ctx, pm) in enumerate(zip(ctxs, parents)):
        if pm is None:
            counts.append(0)
            continue
        try:
            vals = ctx.matrix_of(g.dims)[pm]
        except MarkerError:
            counts.append(0)
            continue
        if vals.shape[0] > per:
            rng = np.random.default_rng([seed, i])
            vals = vals[np.sort(rng.choice(vals.shape[0], size=per, replace=False))]
        chunks.append(vals)
        counts.append(int(vals.shape[0]))
    pooled = np.concatenate(chunks) if chunks else np.empty((0, len(g.dims)))
    out = fit_gate(g, pooled, seed=seed)
    out.details["pooled_samples"] = [str(c.sample.id) for c in ctxs]
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
            group, template, seed=seed, compensation=compensation, only_marked=only_marked
        )
    return out


def gate_pooled(
    samples: Sequence, template: Template, group_by, *, seed: int = 0, **kwargs
) -> list:
    """Gate each sample with the gates fitted on its group's pooled events (list of GatingResult)."""
    from cytophen.engine import gate

    labels = [group_by(s) for s in samples] if callable(group_by) else list(group_by)
    fits = fit_groups(samples, template, labels, seed=seed, compensation=kwargs.get("compensation"))
    return [
        gate(s, template, fitted=fits[lab], seed=seed, **kwargs) for s, lab in zip(samples, labels)
    ]


def _gate_from_geometry(geom: dict[str, Any], dims) -> Gate:
    kind = geom.get("kind")
    if kind == "rectangle":
        return RectangleGate(dims, geom["min"], geom["max"])
    if kind == "polygon":
        return PolygonGate(dims, geom["vertices"])
    if kind == "ellipsoid":
        return EllipsoidGate(dims, geom["mean"], geom["covariance"], geom["distance_square"])
    if kind == "quadrant":
        return QuadrantGate(dims, {n: (q["min"], q["max"]) for n, q in geom["quadrants"].items()})
    raise GateError("freeze", f"cannot rebuild a gate of kind {kind!r}")


def freeze(result_or_fits, template: Template, *, name: str | None = None) -> Template:
    """A fixed template: each data-driven gate replaced by the gate it chose.

    Parameters
    ----------
    result_or_fits
        A :class:`~cytophen.result.GatingResult` (the gates one sample used) or a
        ``{gate_key: FitOutcome}`` mapping (e.g. from :func:`fit_pooled`).
    template
        The template that produced them.
    name
        Name of the frozen template (default: ``<name>-frozen``).

    Returns
    -------
    Template
        Same tree, markers, compensation and reports, with fixed gates only; ``meta['frozen_from']``
        holds the original template's hash. Export with ``Template.to_yaml(path)``.

    Raises
    ------
    GateError
        When a data-driven gate declined on that sample (nothing to freeze) or is missing.
    """
    replaced: dict[int, Gate] = {}
    pops = []
    used = getattr(result_or_fits, "gates", None)
    for pop in template.populations:
        g = pop.gate
        if isinstance(g, DataDrivenGate):
            if id(g) not in replaced:
                key = _gate_key(pop, template)
                if used is not None:
                    entry = used.get(pop.name) or used.get(key)
                    if not entry or entry.get("geometry") is None:
                        raise GateError(
                            pop.name,
                            "this result has no fitted geometry for it (declined or not measured); nothing to freeze",
                        )
                    replaced[id(g)] = _gate_from_geometry(entry["geometry"], g.dims)
                else:
                    outcome = result_or_fits.get(key)
                    if outcome is None or outcome.gate is None:
                        why = "missing" if outcome is None else f"declined: {outcome.reason}"
                        raise GateError(pop.name, f"no fitted gate to freeze ({why})")
                    replaced[id(g)] = outcome.gate
            g = replaced[id(g)]
        pops.append(Population(pop.name, pop.parent, g, pop.quadrant, pop.report, pop.description))
    meta = {**template.meta, "frozen_from": template.hash}
    try:
        return Template(
            name=name or f"{template.name}-frozen",
            populations=pops,
            version=template.version,
            markers=template.markers,
            compensation=template.compensation,
            matrices=template.matrices,
            description=template.description,
            source=template.source,
            meta=meta,
        )
    except CytophenError:
        raise
