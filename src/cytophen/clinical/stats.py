"""Longitudinal statistics with the subject as the unit: change from baseline, paired tests,
responders against non-responders, and correlation with the outcome.

Every test takes one value per subject (never one per subject × visit, which would count each
subject several times), and every row states its ``n`` in subjects. Each table can be checked by
hand from ``changes.csv``:

- ``changes``: ``change = value - baseline`` and ``relative_change = change / baseline`` (a
  fraction: -0.25 is a 25 % fall; NaN when the baseline is 0), per subject, visit and population;
- ``tests``: per population × visit (× group), the two-sided Wilcoxon signed-rank test of the
  subjects' changes against zero (scipy, ``method='auto'``: exact for n ≤ 50 without ties or zero
  changes, else the normal approximation);
- ``groups`` (with ``group``): per population × visit, the two groups' changes compared directly
  by a two-sided Mann-Whitney U test, exact (every split of the subjects into groups of these
  sizes enumerated, so ties are exact too) unless the splits number more than 200 000;
- ``correlations`` (with ``outcome``): per population, (1) Spearman's rho between each subject's
  change and the outcome's change at one visit (default: :func:`common_visit`), p exact for
  n ≤ 8 subjects (all n! pairings), else the t approximation; (2) the repeated-measures
  correlation over all visits, baseline included (rmcorr, Bakdash & Marusich 2017: the common
  within-subject association, ``df = observations - subjects - 1``).

Every table has ``min_p``, the smallest p-value its test can give with that many subjects, and a
``warning`` where that is not below 0.05: no result there can be significant, whatever the data.
``p_adj`` is Benjamini-Hochberg across populations, within each visit × group (``tests``), visit ×
pair of groups (``groups``) or method (``correlations``). Helper populations (``hidden`` in the
populations table) are left out of every table, so they do not enter the adjustment.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st

from cytophen._atomic import atomic_write_with
from cytophen.clinical import _inference as _inf
from cytophen.clinical.manifest import parse_visit
from cytophen.errors import ClinicalError

__all__ = [
    "changes",
    "paired_tests",
    "group_tests",
    "correlations",
    "common_visit",
    "analyse",
    "StatsResult",
    "bh_adjust",
    "ALPHA",
]

#: The significance level the small-sample warnings refer to.
ALPHA = 0.05


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


def _hidden(df: pd.DataFrame) -> pd.Series:
    """Rows of helper populations: the populations table's ``hidden`` column (written for
    templates that mark a population ``hidden: true``) is true; all rows are reported without it."""
    if "hidden" not in df.columns:
        return pd.Series(False, index=df.index)
    h = df["hidden"]
    if h.dtype == bool:
        return h
    return h.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))


def helper_populations(merged: pd.DataFrame) -> list[str]:
    """The helper populations of a merged table (see :func:`changes`), sorted."""
    mask = _hidden(merged)
    if not mask.any():
        return []
    return sorted(set(_population_labels(merged, "", "")[mask]))


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
    Helper populations (a true ``hidden`` column, as ``cytophen gate`` writes for populations a
    template hides) are left out: they are steps of the gating, not read-outs.
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
    df = merged[~_hidden(merged)].copy()
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
        g = post[group]
        out["group"] = np.where(g.isna(), None, g.astype(str)).astype(object)
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


def _warning(min_p: float, n_text: str) -> str:
    """The table's warning when no p-value below :data:`ALPHA` is possible with these subjects."""
    if not np.isfinite(min_p):
        return f"{n_text}: no test possible"
    if min_p >= ALPHA:
        return f"{n_text}: no p below {ALPHA:g} is possible (smallest {min_p:.3g})"
    return ""


def _visit_order(ch: pd.DataFrame) -> list:
    """Post-baseline visit labels in study order (by week, then label)."""
    v = ch[["visit", "week"]].drop_duplicates("visit")
    v = v.assign(_w=pd.to_numeric(v["week"], errors="coerce")).sort_values(
        ["_w", "visit"], na_position="last", kind="stable"
    )
    return list(v["visit"])


def _adjust(out: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    out["p_adj"] = np.nan
    if len(out):
        for _, idx in out.groupby(by, dropna=False).groups.items():
            out.loc[idx, "p_adj"] = bh_adjust(out.loc[idx, "p_value"].to_numpy())
    return out


def paired_tests(ch: pd.DataFrame) -> pd.DataFrame:
    """Wilcoxon signed-rank of each visit's changes against zero, overall and per group.

    Returns ``population, visit, group, n, median_change, statistic, p_value, p_adj, min_p,
    warning`` (``group`` is ``all`` for every subject; ``n`` counts subjects with a change;
    ``min_p = 2 / 2**n``, so 5 subjects or fewer cannot reach p < 0.05 and are warned about).
    """
    rows = []
    groups = [("all", ch)]
    if "group" in ch.columns:
        groups += [(g, sub) for g, sub in ch.groupby("group", sort=True)]
    for gname, sub in groups:
        for (pop, vis), g in sub.groupby(["population", "visit"], sort=False):
            x = g["change"].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            w = _inf.wilcoxon_signed_rank(x)
            rows.append(
                dict(
                    population=pop,
                    visit=vis,
                    week=g["week"].iloc[0],
                    group=gname,
                    n=w["n"],
                    median_change=float(np.median(x)) if x.size else np.nan,
                    statistic=w["statistic"],
                    p_value=w["p_value"],
                    min_p=w["min_p"],
                    warning=_warning(w["min_p"], f"n = {w['n']}"),
                )
            )
    cols = ["population", "visit", "week", "group", "n", "median_change", "statistic", "p_value"]
    out = pd.DataFrame(rows, columns=[*cols, "min_p", "warning"])
    out = _adjust(out, ["visit", "group"])
    out = out[[*cols, "p_adj", "min_p", "warning"]]
    return (
        out.sort_values(["group", "week", "population"], kind="stable")
        .drop(columns="week")
        .reset_index(drop=True)
    )


def group_tests(ch: pd.DataFrame) -> pd.DataFrame:
    """Each pair of groups compared directly: Mann-Whitney U of their changes from baseline.

    One row per population × visit × pair of groups (two groups: one pair), with ``group_a,
    group_b, n_a, n_b`` (subjects), both groups' median change, ``U`` (pairs in which a subject of
    ``group_a`` changed more, ties a half), ``p_value`` (two-sided; ``exact`` says whether it is
    the exact permutation p), ``p_adj`` (BH across populations within visit × pair), ``min_p``
    and ``warning`` (e.g. 5 against 1 subjects: no p below 1/3 is possible).
    """
    if "group" not in ch.columns:
        raise ClinicalError(
            "no 'group' column in the changes table; compute changes with group=..."
        )
    labels = sorted(str(g) for g in ch["group"].dropna().unique())
    rows = []
    for a, b in itertools.combinations(labels, 2):
        for (pop, vis), g in ch.groupby(["population", "visit"], sort=False):
            xa = g.loc[g["group"] == a, "change"].to_numpy(dtype=float)
            xb = g.loc[g["group"] == b, "change"].to_numpy(dtype=float)
            xa, xb = xa[np.isfinite(xa)], xb[np.isfinite(xb)]
            m = _inf.mann_whitney(xa, xb)
            rows.append(
                dict(
                    population=pop,
                    visit=vis,
                    week=g["week"].iloc[0],
                    group_a=a,
                    group_b=b,
                    n_a=m["n_a"],
                    n_b=m["n_b"],
                    median_change_a=float(np.median(xa)) if xa.size else np.nan,
                    median_change_b=float(np.median(xb)) if xb.size else np.nan,
                    U=m["U"],
                    p_value=m["p_value"],
                    exact=m["exact"],
                    min_p=m["min_p"],
                    warning=_warning(m["min_p"], f"n = {m['n_a']} vs {m['n_b']}"),
                )
            )
    cols = [
        "population",
        "visit",
        "week",
        "group_a",
        "group_b",
        "n_a",
        "n_b",
        "median_change_a",
        "median_change_b",
        "U",
        "p_value",
        "exact",
    ]
    out = pd.DataFrame(rows, columns=[*cols, "min_p", "warning"])
    out = _adjust(out, ["visit", "group_a", "group_b"])
    out = out[[*cols, "p_adj", "min_p", "warning"]]
    return (
        out.sort_values(["group_a", "group_b", "week", "population"], kind="stable")
        .drop(columns="week")
        .reset_index(drop=True)
    )


def _ok_subjects(ch: pd.DataFrame, outcome: str | None) -> pd.Series:
    ok = np.isfinite(ch["change"].to_numpy(dtype=float))
    if outcome:
        ok &= np.isfinite(ch[f"{outcome}_change"].to_numpy(dtype=float))
    return ch[ok].groupby("visit")["subject"].nunique()


def common_visit(ch: pd.DataFrame, outcome: str | None = None) -> str | None:
    """The last visit at which every subject has a change (and, with ``outcome``, an outcome
    change) for some population; when no visit has them all, the visit with the most subjects
    (the later on a tie). ``None`` when the table has no post-baseline values."""
    per_visit = _ok_subjects(ch, outcome)
    order = [v for v in _visit_order(ch) if v in per_visit.index]
    if not order:
        return None
    n_all = ch["subject"].nunique()
    full = [v for v in order if per_visit[v] == n_all]
    if full:
        return full[-1]
    best = max(per_visit[v] for v in order)
    return [v for v in order if per_visit[v] == best][-1]


def _resolve_visit(ch: pd.DataFrame, visit) -> object:
    """The visit label of ``ch`` that ``visit`` names (``W20`` = ``week 20``)."""
    want = _key(visit)
    for v in _visit_order(ch):
        if _key(v) == want:
            return v
    raise ClinicalError(
        f"visit {visit!r} has no changes from baseline; post-baseline visits are: "
        f"{', '.join(map(str, _visit_order(ch)))}"
    )


def _observations(g: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every visit of a population's subjects, baseline as a zero change: (subject, x, y)."""
    base = g.drop_duplicates("subject")
    b_ok = np.isfinite(base["baseline"].to_numpy(float)) & np.isfinite(
        base[f"{col}_baseline"].to_numpy(float)
    )
    subj = np.concatenate([base["subject"].to_numpy()[b_ok], g["subject"].to_numpy()])
    x = np.concatenate([np.zeros(int(b_ok.sum())), g["change"].to_numpy(float)])
    y = np.concatenate([np.zeros(int(b_ok.sum())), g[f"{col}_change"].to_numpy(float)])
    return subj.astype(str), x, y


def correlations(ch: pd.DataFrame, outcome: str, *, at_visit=None) -> pd.DataFrame:
    """Each population's change against the outcome's change, one subject counted once.

    Two rows per population:

    - ``method = 'spearman'``: Spearman's rho between each subject's change and their outcome
      change at ``at_visit`` (default :func:`common_visit`); ``n`` subjects, exact p for n ≤ 8;
    - ``method = 'rmcorr'``: the repeated-measures correlation over every visit, baseline
      included (``visit = 'all'``); ``n`` subjects, ``n_observations``, ``df = n_observations
      - n - 1``.

    Returns ``population, outcome, method, visit, n, n_observations, df, r, p_value, p_adj,
    min_p, warning``; ``p_adj`` is Benjamini-Hochberg across populations within each method.
    """
    col = f"{outcome}_change"
    if col not in ch.columns:
        raise ClinicalError(
            f"no {col!r} in the changes table; compute changes with outcome={outcome!r}"
        )
    at = common_visit(ch, outcome) if at_visit is None else _resolve_visit(ch, at_visit)
    rows = []
    for pop, g in ch.groupby("population", sort=True):
        h = g[g["visit"] == at]
        s = _inf.spearman(h["change"].to_numpy(float), h[col].to_numpy(float))
        rows.append(
            dict(
                population=pop,
                outcome=outcome,
                method="spearman",
                visit=at,
                n=s["n"],
                n_observations=s["n"],
                df=np.nan,
                r=s["r"],
                p_value=s["p_value"],
                min_p=s["min_p"],
                warning=_warning(s["min_p"], f"n = {s['n']}"),
            )
        )
        rm = _inf.rmcorr(*_observations(g, outcome))
        rows.append(
            dict(
                population=pop,
                outcome=outcome,
                method="rmcorr",
                visit="all",
                n=rm["n"],
                n_observations=rm["n_observations"],
                df=rm["df"],
                r=rm["r"],
                p_value=rm["p_value"],
                min_p=rm["min_p"],
                warning=_warning(rm["min_p"], f"n = {rm['n']}, df = {rm['df']}"),
            )
        )
    cols = ["population", "outcome", "method", "visit", "n", "n_observations", "df", "r"]
    out = pd.DataFrame(rows, columns=[*cols, "p_value", "min_p", "warning"])
    out = _adjust(out, ["method"])
    out["df"] = out["df"].astype("Int64")
    return (
        out[[*cols, "p_value", "p_adj", "min_p", "warning"]]
        .sort_values(["method", "population"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )


@dataclass
class StatsResult:
    """The tables of :func:`analyse` (see the module docstring).

    Attributes
    ----------
    changes, tests
        Change from baseline per subject × visit × population; Wilcoxon tests against zero.
    correlations
        With an outcome: Spearman at :attr:`visit` and rmcorr per population, else ``None``.
    groups
        With a group column: the groups compared by Mann-Whitney, else ``None``.
    outcome, visit
        The outcome column and the visit of the Spearman correlations.
    helpers
        Helper populations left out of every table.
    """

    changes: pd.DataFrame
    tests: pd.DataFrame
    correlations: pd.DataFrame | None
    outcome: str | None = None
    groups: pd.DataFrame | None = None
    visit: object = None
    helpers: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (``changes.csv`` ...), those that exist."""
        out = {"changes.csv": self.changes, "tests.csv": self.tests}
        if self.groups is not None:
            out["groups.csv"] = self.groups
        if self.correlations is not None:
            out["correlations.csv"] = self.correlations
        return out

    def warnings(self) -> list[str]:
        """One line per distinct small-sample warning, with the table and how many rows it
        concerns (e.g. ``groups.csv, 75 rows: n = 5 vs 1: no p below 0.05 is possible ...``)."""
        lines = []
        for name, t in self.tables().items():
            if "warning" not in t.columns:
                continue
            counts = t.loc[t["warning"].astype(str) != "", "warning"].value_counts(sort=False)
            for w, k in counts.items():
                lines.append(f"{name}, {k} row{'s' if k != 1 else ''}: {w}")
        return lines

    def correlations_at(self, visit) -> pd.DataFrame:
        """:func:`correlations` of the changes with the outcome at another ``visit``."""
        return correlations(self.changes, self.outcome, at_visit=visit)

    def write(self, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
        """Write changes.csv, tests.csv, groups.csv, correlations.csv (and plots/*.png)
        atomically."""
        from cytophen.clinical.plots import write_plots

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [_atomic_csv(t, out / name) for name, t in self.tables().items()]
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
    at_visit: str | None = None,
    value: str = "percent_of_parent",
    subject: str = "subject",
    visit: str = "visit",
) -> StatsResult:
    """Changes from baseline, paired tests, group comparisons and correlations, in one call.

    Parameters
    ----------
    merged
        The merged table (:func:`cytophen.clinical.merge`): one row per sample × population with
        subject, visit, the population values and the clinical columns.
    baseline
        The baseline visit (``W0`` also matches ``W00``, ``week 0``).
    outcome
        Clinical column whose change the populations' changes are correlated with (``None``:
        no correlations).
    group
        Column splitting the subjects into groups (e.g. ``responder``), compared directly.
    at_visit
        Visit of the one-value-per-subject Spearman correlation (default: :func:`common_visit`).
    value
        Population column to analyse (e.g. ``percent_of_b_cells``).
    subject, visit
        Names of the key columns.

    Returns
    -------
    StatsResult

    Examples
    --------
    >>> res = analyse(merged, outcome="SLEDAI", group="responder")   # doctest: +SKIP
    >>> res.correlations.query("method == 'rmcorr'")                # doctest: +SKIP
    >>> res.warnings()                                               # doctest: +SKIP
    """
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
    groups = group_tests(ch) if group else None
    at = None
    if len(ch):
        at = common_visit(ch, outcome) if at_visit is None else _resolve_visit(ch, at_visit)
    cor = correlations(ch, outcome, at_visit=at) if outcome else None
    return StatsResult(
        ch,
        tests,
        cor,
        outcome,
        groups=groups,
        visit=at,
        helpers=helper_populations(merged),
    )
