"""Pooled data-driven gates in a batch (``pool: <manifest column>`` in a template).

Before the samples are gated, the driver reads every sample of each group (the samples sharing a
value of the manifest column), fits the pooled gates once on their pooled parent events
(:func:`cytophen.engine.fit_pooled`, deterministic: groups in sorted order, samples in
input order, seeded) and ships the small fitted geometry with each sample's task; the workers then
gate with ``fitted=``. Gates without ``pool`` are still fitted per sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cytophen.errors import InputError
from cytophen.gates import DataDrivenGate
from cytophen.io.fcs import DEFAULT_REPAIRS
from cytophen.pipeline.inputs import SampleInput
from cytophen.pipeline.records import PooledFit

__all__ = ["pool_column", "pool_groups", "fit_batch_pools"]


def pool_column(template) -> str | None:
    """The manifest column the template's pooled gates group by (``None``: no pooled gate).

    Raises
    ------
    InputError
        When pooled gates name different columns (one pooling column per template).
    """
    cols: dict[str, str] = {}
    for pop in template.populations:
        g = pop.gate
        if isinstance(g, DataDrivenGate) and g.pool is not None:
            cols.setdefault(g.pool, pop.name)
    if len(cols) > 1:
        desc = ", ".join(f"{pop!r} pools by {c!r}" for c, pop in cols.items())
        raise InputError(
            f"template {template.name!r}: pooled gates must all pool by the same manifest column ({desc})"
        )
    return next(iter(cols), None)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == ""


def pool_groups(samples: list[SampleInput], column: str, manifest) -> dict[str, str]:
    """``{safe_id: group label}`` from the manifest column ``column``.

    Raises
    ------
    InputError
        Without a manifest, when the manifest lacks the column, or when a sample has no value.
    """
    if manifest is None:
        raise InputError(
            f"the template pools gates by the manifest column {column!r} (pool: {column}), "
            "but no manifest was given; pass --manifest M.csv with a "
            f"{column!r} column"
        )
    missing = [s for s in samples if column not in s.metadata]
    if missing:
        raise InputError(
            f"manifest {manifest}: no column {column!r}, which the template's pooled gates group "
            f"by (pool: {column}); add a {column!r} column giving each sample's group"
        )
    blank = [s.sample for s in samples if _blank(s.metadata.get(column))]
    if blank:
        raise InputError(
            f"manifest {manifest}: column {column!r} (pool: {column}) is empty for sample(s) "
            f"{', '.join(blank[:5])}{' ...' if len(blank) > 5 else ''}; every sample needs a group"
        )
    return {s.safe_id: str(s.metadata[column]) for s in samples}


def fit_batch_pools(
    samples: list[SampleInput],
    groups: dict[str, str],
    template,
    *,
    seed: int,
    compensation,
    repairs=DEFAULT_REPAIRS,
    pregated: str | None = None,
    column: str = "",
) -> dict[str, PooledFit]:
    """Fit the pooled gates of each group (of manifest ``column``): ``{group: PooledFit}``.

    Groups are fitted in sorted label order, samples within a group in input order. A sample that
    cannot be read, or lacks a marker the template needs, is left out of its group's pool (it
    fails on its own when gated); a group whose fit fails records the error, and its samples fail
    with it.
    """
    from cytophen.engine import fit_pooled
    from cytophen.errors import CytophenError, MarkerError
    from cytophen.io.fcs import read_fcs

    out: dict[str, PooledFit] = {}
    for label in sorted(set(groups.values())):
        members = [s for s in samples if groups[s.safe_id] == label]
        loaded, used = [], []
        for s in members:
            try:
                loaded.append(read_fcs(s.path, repairs=repairs))
            except Exception:  # noqa: BLE001 - any unreadable file: its own task reports why
                continue
            used.append(s.sample)
        if not loaded:
            out[label] = PooledFit(
                column, label, error=f"pool group {label!r}: none of its files could be read"
            )
            continue
        try:
            while True:
                try:
                    fits = fit_pooled(
                        loaded,
                        template,
                        seed=seed,
                        compensation=compensation,
                        only_marked=True,
                        pregated=pregated,
                    )
                    break
                except MarkerError as exc:  # that file fails on its own; pool the others
                    bad = [i for i, x in enumerate(loaded) if x.path and Path(x.path) == exc.path]
                    if not bad or len(loaded) == 1:
                        raise
                    del loaded[bad[0]], used[bad[0]]
        except CytophenError as exc:
            out[label] = PooledFit(
                column, label, error=f"pooled fit of group {label!r} failed: {exc}"
            )
            continue
        except Exception as exc:  # noqa: BLE001 - an estimator bug fails its group, not the batch
            out[label] = PooledFit(
                column,
                label,
                error=f"pooled fit of group {label!r} failed: {type(exc).__name__}: {exc}",
            )
            continue
        for o in fits.values():
            o.details["pooled_samples"] = list(used)
        out[label] = PooledFit(column, label, fitted=fits)
    return out
