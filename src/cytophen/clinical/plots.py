"""Longitudinal plots of a :class:`~cytophen.clinical.stats.StatsResult`: per-subject lines,
change-vs-outcome scatters and a correlation heatmap, each statistic shown with its n in subjects
(the numbers are those of the result's tables, never recomputed here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cytophen._atomic import atomic_write_with

__all__ = ["plot_trajectories", "plot_change_vs_outcome", "plot_correlation_heatmap", "write_plots"]

_PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _p(p) -> str:
    return "p = n/a" if p is None or not np.isfinite(p) else f"p = {p:.2g}"


def _impossible(row) -> str:
    return " (p < 0.05 impossible)" if str(row.get("warning") or "") else ""


def _trajectory_table(ch: pd.DataFrame, population: str) -> pd.DataFrame:
    g = ch[ch["population"] == population]
    extra = ["group"] if "group" in g else []
    base = g.drop_duplicates("subject")[["subject", "baseline", *extra]]
    base = base.rename(columns={"baseline": "value"}).assign(week=0.0)
    post = g[["subject", "week", "value", *extra]]
    return pd.concat([base, post], ignore_index=True).sort_values(["subject", "week"])


def _trajectory_stats(result, population: str) -> list[str]:
    """The visit's Wilcoxon test against baseline and the group comparison, with their n."""
    lines = []
    at = result.visit
    t = result.tests
    row = t[(t["population"] == population) & (t["group"] == "all") & (t["visit"] == at)]
    if len(row):
        r = row.iloc[0]
        lines.append(
            f"{at} vs baseline: Wilcoxon {_p(r['p_value'])}, n = {r['n']} subjects{_impossible(r)}"
        )
    if result.groups is not None:
        g = result.groups
        for _, r in g[(g["population"] == population) & (g["visit"] == at)].iterrows():
            lines.append(
                f"{r['group_a']} vs {r['group_b']} at {at}: Mann-Whitney {_p(r['p_value'])}, "
                f"n = {r['n_a']} vs {r['n_b']}{_impossible(r)}"
            )
    return lines


def plot_trajectories(result, population: str, *, ylabel: str = "% of parent", ax=None):
    """One line per subject over study weeks (baseline included), coloured by group, titled with
    the Wilcoxon test at the result's visit and the group comparison (each with its n)."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.4, 4.0))
    t = _trajectory_table(result.changes, population)
    groups = sorted(t["group"].dropna().astype(str).unique()) if "group" in t else ["all"]
    colours = {g: _PALETTE[i % len(_PALETTE)] for i, g in enumerate(groups)}
    seen = set()
    for subj, g in t.groupby("subject", sort=True):
        grp = str(g["group"].iloc[0]) if "group" in g else "all"
        ax.plot(
            g["week"],
            g["value"],
            "-o",
            ms=3,
            lw=1.2,
            color=colours.get(grp, "0.5"),
            label=None if grp in seen else str(grp),
            alpha=0.85,
        )
        seen.add(grp)
        ax.annotate(
            str(subj),
            (g["week"].iloc[-1], g["value"].iloc[-1]),
            fontsize=6,
            alpha=0.7,
            xytext=(2, 0),
            textcoords="offset points",
        )
    n = t["subject"].nunique()
    lines = [f"{population} (n = {n} subjects)", *_trajectory_stats(result, population)]
    ax.set_title("\n".join(lines), fontsize=8)
    ax.set_xlabel("week")
    ax.set_ylabel(ylabel)
    if len(groups) > 1:
        ax.legend(fontsize=7, frameon=False)
    return fig if fig is not None else ax.figure


def _correlation_lines(result, population: str) -> list[str]:
    c = result.correlations
    rows = c[c["population"] == population]
    lines = []
    for _, r in rows.iterrows():
        r_text = "n/a" if not np.isfinite(r["r"]) else f"{r['r']:.2f}"
        if r["method"] == "spearman":
            lines.append(
                f"Spearman at {r['visit']}: rho = {r_text}, {_p(r['p_value'])}, "
                f"n = {r['n']} subjects{_impossible(r)}"
            )
        else:
            df = "n/a" if pd.isna(r["df"]) else int(r["df"])
            lines.append(
                f"rmcorr, all visits: r = {r_text}, {_p(r['p_value'])}, df = {df}, "
                f"n = {r['n']} subjects{_impossible(r)}"
            )
    return lines


def plot_change_vs_outcome(result, population: str, *, ax=None):
    """Each subject's change against the outcome's change at every visit (baseline at 0, 0;
    one colour and line per subject, the correlation visit drawn larger), titled with the
    Spearman correlation at that visit and the repeated-measures correlation, with their n."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.4, 4.4))
    outcome = result.outcome
    g = result.changes[result.changes["population"] == population].sort_values(["subject", "week"])
    for i, (subj, h) in enumerate(g.groupby("subject", sort=True)):
        colour = _PALETTE[i % len(_PALETTE)]
        x = np.concatenate([[0.0], h[f"{outcome}_change"].to_numpy(float)])
        y = np.concatenate([[0.0], h["change"].to_numpy(float)])
        label = str(subj)
        if "group" in h and h["group"].notna().any():
            label += f" ({h['group'].dropna().iloc[0]})"
        ax.plot(x, y, "-", lw=0.8, color=colour, alpha=0.5)
        ax.scatter(x, y, s=10, color=colour, alpha=0.6)
        at = (h["visit"] == result.visit).to_numpy()
        ax.scatter(x[1:][at], y[1:][at], s=40, color=colour, edgecolor="black", lw=0.6, label=label)
    ax.set_title("\n".join([population, *_correlation_lines(result, population)]), fontsize=8)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_xlabel(f"change in {outcome}")
    ax.set_ylabel("change in % of parent")
    ax.legend(fontsize=6, frameon=False, title=f"{result.visit} (large)", title_fontsize=6)
    return fig if fig is not None else ax.figure


def plot_correlation_heatmap(result):
    """Spearman rho of each population's change with the outcome's change at every visit (one
    value per subject; n per visit on the axis, per cell where it differs) and the
    repeated-measures r over all visits."""
    plt = _plt()
    ch, outcome = result.changes, result.outcome
    pops = sorted(ch["population"].unique())
    visits = list(ch.sort_values("week")["visit"].drop_duplicates())
    tables = [result.correlations_at(v) for v in visits]
    cols = [t[t["method"] == "spearman"].set_index("population") for t in tables]
    cols.append(
        result.correlations[result.correlations["method"] == "rmcorr"].set_index("population")
    )
    r = np.array([[c["r"].get(p, np.nan) for c in cols] for p in pops], dtype=float)
    n = np.array([[c["n"].get(p, 0) for c in cols] for p in pops], dtype=int)
    col_n = n.max(axis=0) if len(pops) else np.zeros(len(cols), dtype=int)
    labels = [f"{v}\nn = {k}" for v, k in zip(visits, col_n)] + [f"rmcorr\nn = {col_n[-1]}"]
    fig, ax = plt.subplots(figsize=(1.6 + 0.8 * len(cols), 1.0 + 0.3 * len(pops)))
    im = ax.imshow(r, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), labels, fontsize=7)
    ax.set_yticks(range(len(pops)), pops, fontsize=8)
    for i in range(len(pops)):
        for j in range(len(cols)):
            if np.isfinite(r[i, j]):
                text = f"{r[i, j]:.2f}" + (f"\nn={n[i, j]}" if n[i, j] != col_n[j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=6)
    ax.set_title(
        f"change vs change in {outcome}: Spearman rho per visit (n subjects), rmcorr r", fontsize=8
    )
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "population"


def write_plots(result, out_dir: str | Path) -> list[Path]:
    """Write trajectories_<pop>.png, scatter_<pop>.png and heatmap.png for a StatsResult."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        path = out / name
        atomic_write_with(
            path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        )
        plt.close(fig)
        written.append(path)

    ch = result.changes
    for pop in sorted(ch["population"].unique()):
        save(plot_trajectories(result, pop), f"trajectories_{_safe(pop)}.png")
        if result.outcome:
            save(plot_change_vs_outcome(result, pop), f"scatter_{_safe(pop)}.png")
    if result.outcome and len(ch):
        save(plot_correlation_heatmap(result), "heatmap.png")
    return written
