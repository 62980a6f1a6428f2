"""Longitudinal statistics: change from baseline, paired tests, correlation with the outcome.

Every number comes with its ``n`` and can be checked by hand from ``changes.csv``:

- ``change = value - baseline`` and ``relative_change = change / baseline`` (a fraction: -0.25 is a
  25 % fall; NaN when the baseline is 0), per subject, visit and population;
- ``tests``: for each population × visit (× group), the two-sided Wilcoxon signed-rank test of the
  subjects' changes against zero (scipy, ``method='auto'``: exact null distribution for n ≤ 50 without
  ties or zero changes, the normal approximation otherwise), Benjamini-Hochberg adjusted across
  populations within each visit × group;
- ``correlations``: Spearman's rho between the population's change and the outcome's change over all
  post-baseline subject × visit pairs, Benjamini-Hochberg adjusted across populations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st

from cytophen._atomic import atomic_write_with
from cytophen.clinical.manifest import parse_visit
from cytophen.errors import ClinicalError

__all__ = ["changes", "paired_tests", "correlations", "analyse", "StatsResult", "bh_adjust"]


def bh_adjust(p: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN entries stay NaN and are not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = _st.false_discovery_control(p[ok], method="bh")
    return out


def _key(v) -> str:
    w = parse_visit(v)
    return f"w{w:g}" if w is not None else str(v).strip().lower()


def _population_labels(df: pd.DataFrame, subject: str, visit: str) -> pd.Series:
    """Population names, prefixed by panel where two panels share a name (e.g. lymphocytes)."""
    pop = df["population"].astype(str)
    if "panel" in df.columns:
        multi = df.groupby("population")["panel"].nunique()
        clash = set(multi[multi > 1].index)
        if clash:
            pop = pd.Series(
                [
                    f"{pa}:{po}" if po in clash else po
                    for po, pa in zip(df["population"], df["panel"])
                ],
                index=df.index,
            )
    return pop


def changes(
    merged: pd.DataFrame,
    *,
    baseline: str = "W0",
    value: str = "percent_of_parent",
    outcome: str | None = None,
    group: str | None = None,
    subject: str = "subject",
    visit: str = "visit",
) -> pd.DataFrame:
    """Change from baseline per subject, visit and population.

    Returns columns ``subject, visit, week, population, value, baseline, change, relative_change``,
    then ``group`` (when given) and ``<outcome>, <outcome>_baseline, <outcome>_change`` (when given).
    Baseline rows themselves are not listed. A subject without a baseline sample contributes no rows.
    """
    need = (
        [subject, visit, "population", value]
        + ([outcome] if outcome else [])
        + ([group] if group else [])
    )
    missing = [c for c in need if c not in merged.columns]
    if missing:
        raise ClinicalError(
            f"the merged table has no column(s) {', '.join(missing)}; it has: {', '.join(merged.columns)}"
        )
    df = merged.copy()
    df["population"] = _population_labels(df, subject, visit)
    df["_v"] = df[visit].map(_key)
    base_key = _key(baseline)
    if base_key not in set(df["_v"]):
        raise ClinicalError(
            f"baseline visit {baseline!r} does not occur; visits are: {', '.join(map(str, df[visit].unique()))}"
        )
    dup = df.duplicated([subject, "_v", "population"], keep=False)
    if dup.any():
        ex = df[dup].iloc[0]
        raise ClinicalError(
            f"more than one value for subject {ex[subject]} visit {ex[visit]} population {ex['population']}; "
            "add a 'panel' column to the manifest or filter the table"
        )
    df["_value"] = pd.to_numeric(df[value], errors="coerce")
    base = df[df["_v"] == base_key].set_index([subject, "population"])["_value"]
    post = df[df["_v"] != base_key].copy()
    idx = pd.MultiIndex.from_arrays([post[subject], post["population"]])
    post["baseline"] = base.reindex(idx).to_numpy()
    post = post[post["baseline"].notna() | post["_value"].notna()]
    post = post[[s in set(base.index.get_level_values(0)) for s in post[subject]]]
    out = pd.DataFrame(
        {
            "subject": post[subject].to_numpy(),
            "visit": post[visit].to_numpy(),
            "week": post[visit].map(parse_visit).to_numpy()
            if "week" not in post
            else post["week"].to_numpy(),
            "population": post["population"].to_numpy(),
            "value": post["_value"].to_numpy(),
            "baseline": post["baseline"].to_numpy(),
        }
    )
    out["change"] = out["value"] - out["baseline"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = out["change"].to_numpy() / out["baseline"].to_numpy()
    out["relative_change"] = np.where(out["baseline"].to_numpy() == 0, np.nan, rel)
    if group:
        out["group"] = post[group].astype(str).to_numpy()
    if outcome:
        o = df.drop_duplicates([subject, "_v"]).copy()
        o["_o"] = pd.to_numeric(o[outcome], errors="coerce")
        ob = o[o["_v"] == base_key].set_index(subject)["_o"]
        ov = o.set_index([subject, "_v"])["_o"]
        keys = list(zip(post[subject], post["_v"]))
        out[outcome] = [ov.get(k, np.nan) for k in keys]
        out[f"{outcome}_baseline"] = [ob.get(s, np.nan) for s in post[subject]]
        out[f"{outcome}_change"] = out[outcome] - out[f"{outcome}_baseline"]
    return out.sort_values(["population", "week", "subject"], kind="stable").reset_index(drop=True)


def _wilcoxon(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0 or np.all(x == 0):
        return float("nan"), float("nan")
    res = _st.wilcoxon(x, method="auto", zero_method="wilcox")
    return float(res.statistic), float(res.pvalue)


def paired_tests(ch: pd.DataFrame) -> pd.DataFrame:
    """Wilcoxon signed-rank of each visit's changes against zero, overall and per group.

    Returns ``population, visit, group, n, median_change, statistic, p_value, p_adj``.
    """
    rows = []
    groups = [("all", ch)]
    if "group" in ch.columns:
        groups += [(g, sub) for g, sub in ch.groupby("group", sort=True)]
    for gname, sub in groups:
        for (pop, vis), g in sub.groupby(["population", "visit"], sort=False):
            x = g["change"].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            stat, p = _wilcoxon(x)
            rows.append(
                dict(
                    population=pop,
                    visit=vis,
                    week=g["week"].iloc[0],
                    group=gname,
                    n=int(x.size),
                    median_change=float(np.median(x)) if x.size else np.nan,
                    statistic=stat,
                    p_value=p,
                )
            )
    out = pd.DataFrame(
        rows,
        columns=[
            "population",
            "visit",
            "week",
            "group",
            "n",
            "median_change",
            "statistic",
            "p_value",
        ],
    )
    out["p_adj"] = np.nan
    for _, idx in out.groupby(["visit", "group"]).groups.items():
        out.loc[idx, "p_adj"] = bh_adjust(out.loc[idx, "p_value"].to_numpy())
    return (
        out.sort_values(["group", "week", "population"], kind="stable")
        .drop(columns="week")
        .reset_index(drop=True)
    )


def correlations(ch: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Spearman correlation of each population's change with the outcome's change.

    Returns ``population, outcome, n, rho, p_value, p_adj`` (pairs with a missing value are dropped
    and not counted in ``n``).
    """
    col = f"{outcome}_change"
    if col not in ch.columns:
        raise ClinicalError(
            f"no {col!r} in the changes table; compute changes with outcome={outcome!r}"
        )
    rows = []
    for pop, g in ch.groupby("population", sort=True):
        x = g["change"].to_numpy(dtype=float)
        y = g[col].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        n = int(ok.sum())
        if n >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
            r = _st.spearmanr(x[ok], y[ok])
            rho, p = float(r.statistic), float(r.pvalue)
        else:
            rho = p = float("nan")
        rows.append(dict(population=pop, outcome=outcome, n=n, rho=rho, p_value=p))
    out = pd.DataFrame(rows, columns=["population", "outcome", "n", "rho", "p_value"])
    out["p_adj"] = bh_adjust(out["p_value"].to_numpy())
    return out


@dataclass
class StatsResult:
    """``changes``, ``tests`` and ``correlations`` DataFrames (see the module docstring)."""

    changes: pd.DataFrame
    tests: pd.DataFrame
    correlations: pd.DataFrame | None
    outcome: str | None = None

    def write(self, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
        """Write changes.csv, tests.csv, correlations.csv (and plots/*.png) atomically."""
        from cytophen.clinical.plots import write_plots

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [
            _atomic_csv(self.changes, out / "changes.csv"),
            _atomic_csv(self.tests, out / "tests.csv"),
        ]
        if self.correlations is not None:
            written.append(_atomic_csv(self.correlations, out / "correlations.csv"))
        if plots:
            written += write_plots(self, out / "plots")
        return written


def _atomic_csv(df: pd.DataFrame, path: Path) -> Path:
    atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False))
    return path


def analyse(
    merged: pd.DataFrame,
    *,
    baseline: str = "W0",
    outcome: str | None = "SLEDAI",
    group: str | None = None,
    value: str = "percent_of_parent",
    subject: str = "subject",
    visit: str = "visit",
) -> StatsResult:
    """Changes from baseline, paired tests and (with an outcome) correlations, in one call."""
    ch = changes(
        merged,
        baseline=baseline,
        value=value,
        outcome=outcome,
        group=group,
        subject=subject,
        visit=visit,
    )
    tests = paired_tests(ch)
    cor = correlations(ch, outcome) if outcome else None
    return StatsResult(ch, tests, cor, outcome)
