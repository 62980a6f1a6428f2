"""The tidy population table of one gated sample (docs/architecture.md lists its columns)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cytophen.errors import GateError, MarkerError

__all__ = ["population_table"]


def _statistic(values: np.ndarray, stat: str) -> float:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan")
    if stat == "median":
        return float(np.median(v))
    if stat == "mean":
        return float(np.mean(v))
    if stat == "sd":
        return float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    if stat == "cv":
        mu = np.mean(v)
        return float(100.0 * np.std(v, ddof=1) / mu) if v.size > 1 and mu != 0 else float("nan")
    if stat == "geometric_mean":
        pos = v[v > 0]
        return float(np.exp(np.mean(np.log(pos)))) if pos.size else float("nan")
    if stat == "robust_cv":
        p16, p50, p84 = np.percentile(v, [15.865, 50.0, 84.135])
        return float(100.0 * 0.5 * (p84 - p16) / p50) if p50 != 0 else float("nan")
    raise GateError("statistics", f"unknown statistic {stat!r}")


def population_table(
    sample, template, ctx, members, measured, notes, sample_id, pops, template_hash=None
) -> pd.DataFrame:
    """The tidy population table of ``pops`` (the populations to report, in tree order), built
    column by column (one DataFrame per sample is made in every batch: a list of row dicts costs
    several times more). ``template_hash``: the template's hash, when already computed."""
    n = sample.n_events
    counts = {k: int(np.count_nonzero(v)) for k, v in members.items()}
    # hashing the template is not free: once per result
    short_hash = (template_hash or template.hash)[:12]
    nan = float("nan")
    count, parent_count, pct_parent, pct_total = [], [], [], []
    extra: dict[str, list[float]] = {}  # percent_of_<ancestor> and statistics, first-seen order
    base = {"percent_of_parent": pct_parent, "percent_of_total": pct_total}
    for row, pop in enumerate(pops):
        ok = measured[pop.name]
        pc = n if pop.parent is None else counts[pop.parent]
        parent_ok = pop.parent is None or measured[pop.parent]
        c = counts[pop.name]
        count.append(c if ok else pd.NA)
        parent_count.append(pc if parent_ok else pd.NA)
        pct_parent.append((100.0 * c / pc if pc else nan) if ok else nan)
        pct_total.append((100.0 * c / n if n else nan) if ok else nan)
        values: dict[str, float] = {}
        for anc in pop.report.percent_of:
            ac = counts.get(anc, 0)
            values[f"percent_of_{anc}"] = 100.0 * c / ac if ok and measured.get(anc) and ac else nan
        for stat, marker in pop.report.statistics:
            col = f"{stat}_{marker}"
            if not ok or c == 0:
                values[col] = nan
                continue
            try:
                vals = ctx.raw_value(marker, None)
            except MarkerError:
                values[col] = nan
                continue
            values[col] = _statistic(vals[members[pop.name]], stat)
        for col, v in values.items():
            if col in base:  # e.g. a population named 'parent': its value wins, as in a row dict
                base[col][row] = v
                continue
            if col not in extra:
                extra[col] = [nan] * row
            extra[col].append(v)
        for vs in extra.values():
            if len(vs) == row:
                vs.append(nan)
    k = len(pops)
    data: dict[str, Any] = {
        "sample": [sample_id or sample.id] * k,
        "file": [str(sample.path) if sample.path is not None else ""] * k,
        "population": [p.name for p in pops],
        "parent": [p.parent if p.parent is not None else "root" for p in pops],
        "path": [template.path(p.name) for p in pops],
        "count": pd.array(count, dtype="Int64"),
        "parent_count": pd.array(parent_count, dtype="Int64"),
        "percent_of_parent": np.array(pct_parent, dtype=np.float64),
        "percent_of_total": np.array(pct_total, dtype=np.float64),
    }
    for col, vs in extra.items():
        data[col] = np.array(vs, dtype=np.float64)
    data["measured"] = np.array([bool(measured[p.name]) for p in pops], dtype=bool)
    data["note"] = [notes.get(p.name, "") for p in pops]
    data["template"] = [template.name] * k
    data["template_version"] = [template.version] * k
    data["template_hash"] = [short_hash] * k
    return pd.DataFrame(data)
