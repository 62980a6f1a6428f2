"""Longitudinal plots: per-subject lines, change-vs-outcome scatters, a correlation heatmap."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cytophen._atomic import atomic_write_with

__all__ = ["plot_trajectories", "plot_change_vs_outcome", "plot_correlation_heatmap", "write_plots"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _trajectory_table(ch: pd.DataFrame, population: str) -> pd.DataFrame:
    g = ch[ch["population"] == population]
    base = g.drop_duplicates("subject")[
        ["subject", "baseline"] + (["group"] if "group" in g else [])
    ]
    base = base.rename(columns={"baseline": "value"}).assign(week=0.0)
    post = g[["subject", "week", "value"] + (["group"] if "group" in g else [])]
    return pd.concat([base, post], ignore_index=True).sort_values(["subject", "week"])


def plot_trajectories(ch: pd.DataFrame, population: str, *, ylabel: str = "% of parent", ax=None):
    """One line per subject over study weeks (baseline included); colour by group when present."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.6))
    t = _trajectory_table(ch, population)
    groups = sorted(t["group"].unique()) if "group" in t else ["all"]
    colours = {g: _PALETTE[i % len(_PALETTE)] for i, g in enumerate(groups)}
    seen = set()
    for subj, g in t.groupby("subject", sort=True):
        grp = g["group"].iloc[0] if "group" in g else "all"
        ax.plot(
            g["week"],
            g["value"],
            "-o",
            ms=3,
            lw=1.2,
            color=colours[grp],
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
    ax.set_title(population)
    ax.set_xlabel("week")
    ax.set_ylabel(ylabel)
    if len(groups) > 1:
        ax.legend(fontsize=7, frameon=False)
    return fig if fig is not None else ax.figure


def plot_change_vs_outcome(ch: pd.DataFrame, population: str, outcome: str, *, ax=None):
    """Scatter of the population's change vs the outcome's change, titled with Spearman rho and p."""
    from scipy import stats as _st

    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    g = ch[ch["population"] == population]
    x = g[f"{outcome}_change"].to_numpy(float)
    y = g["change"].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    groups = sorted(g["group"].unique()) if "group" in g else ["all"]
    for i, grp in enumerate(groups):
        m = ok & ((g["group"] == grp).to_numpy() if "group" in g else True)
        ax.scatter(x[m], y[m], s=14, color=_PALETTE[i % len(_PALETTE)], label=str(grp), alpha=0.85)
    title = population
    if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
        r = _st.spearmanr(x[ok], y[ok])
        title += f"\nSpearman rho = {r.statistic:.2f}, p = {r.pvalue:.2g}, n = {int(ok.sum())}"
    ax.set_title(title, fontsize=9)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_xlabel(f"change in {outcome}")
    ax.set_ylabel("change in % of parent")
    if len(groups) > 1:
        ax.legend(fontsize=7, frameon=False)
    return fig if fig is not None else ax.figure


def plot_correlation_heatmap(ch: pd.DataFrame, outcome: str):
    """Spearman rho of change vs outcome change: populations × visits (and all visits pooled)."""
    from scipy import stats as _st

    plt = _plt()
    pops = sorted(ch["population"].unique())
    visits = list(ch.sort_values("week")["visit"].drop_duplicates()) + ["all"]
    m = np.full((len(pops), len(visits)), np.nan)
    for i, p in enumerate(pops):
        g = ch[ch["population"] == p]
        for j, v in enumerate(visits):
            h = g if v == "all" else g[g["visit"] == v]
            x, y = h["change"].to_numpy(float), h[f"{outcome}_change"].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                m[i, j] = _st.spearmanr(x[ok], y[ok]).statistic
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(visits), 0.8 + 0.28 * len(pops)))
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(visits)), [str(v) for v in visits], fontsize=8)
    ax.set_yticks(range(len(pops)), pops, fontsize=8)
    for i in range(len(pops)):
        for j in range(len(visits)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title(f"Spearman rho: change vs change in {outcome}", fontsize=9)
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
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        written.append(path)

    ch = result.changes
    for pop in sorted(ch["population"].unique()):
        save(plot_trajectories(ch, pop), f"trajectories_{_safe(pop)}.png")
        if result.outcome:
            save(plot_change_vs_outcome(ch, pop, result.outcome), f"scatter_{_safe(pop)}.png")
    if result.outcome and len(ch):
        save(plot_correlation_heatmap(ch, result.outcome), "heatmap.png")
    return written
