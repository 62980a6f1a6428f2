"""Plot simulated files next to real ones from ../shared/data, side by side, on the same scales.

Run: ``.venv/bin/python examples/compare_with_real.py [OUT_DIR]`` (default ``compare_plots/``).
Real files: FlowSOM's 68983.fcs (FACSDiva, lymphocyte-gated mouse cells) and PeacoQC's 111.fcs
(raw LSR II, human). Both are compensated with their own SPILL keyword and shown on the same
logicle scale (T=262144, W=0.5, M=4.5) as the simulator places its populations.
"""

# %%
from __future__ import annotations

import sys
from pathlib import Path

import flowio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from flowutils.transforms import logicle  # noqa: E402

from cytophen.simulate import simulate_sample  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "compare_plots"


def lgc(x: np.ndarray) -> np.ndarray:
    return logicle(
        np.asarray(x, dtype=np.float64).reshape(-1, 1), [0], t=262144, m=4.5, w=0.5, a=0
    )[:, 0]


def read_real(path: Path):
    f = flowio.FlowData(str(path))
    ev = f.as_array(preprocess=False).astype(np.float64)
    names = list(f.pnn_labels)
    pns = [s or "" for s in f.pns_labels]
    spill = f.text.get("spill") or f.text.get("$spillover")
    if spill:
        parts = spill.split(",")
        k = int(parts[0])
        det = parts[1 : k + 1]
        s = np.array(parts[k + 1 : k + 1 + k * k], dtype=float).reshape(k, k)
        idx = [names.index(d) for d in det]
        ev[:, idx] = ev[:, idx] @ np.linalg.inv(s)
    return ev, names, pns


def hexbin(ax, x, y, title, xl, yl, lims=None):
    ax.hist2d(x, y, bins=160, cmap="viridis", norm=matplotlib.colors.LogNorm(), range=lims)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xl, fontsize=7)
    ax.set_ylabel(yl, fontsize=7)
    ax.tick_params(labelsize=6)


# %% simulated files (uncompensated as written; compensated with their $SPILLOVER here)
def simulated(panel: str, seed: int):
    ev, ch, mk, spill, truth = simulate_sample(panel, seed=seed, events=30000)
    ev = ev.astype(np.float64)
    idx = [ch.index(c) for c in spill.columns]
    ev[:, idx] = ev[:, idx] @ np.linalg.inv(spill.to_numpy())
    return ev, ch, mk


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sim_b, ch_b, mk_b = simulated("bcell", 1)
    sim_t, ch_t, mk_t = simulated("treg", 2)
    real1, n1, s1 = read_real(DATA / "fcs_zoo" / "peacoqc" / "111.fcs")
    real2, n2, s2 = read_real(DATA / "flowjo" / "flowsom" / "68983.fcs")
    sc = [[0, 262144], [0, 262144]]

    fig, axes = plt.subplots(2, 4, figsize=(15, 7.5))
    hexbin(
        axes[0, 0],
        real1[:, n1.index("FSC-A")],
        real1[:, n1.index("SSC-A")],
        "REAL 111.fcs (LSR II)",
        "FSC-A",
        "SSC-A",
        sc,
    )
    hexbin(
        axes[0, 1],
        real2[:, n2.index("FSC-A")],
        real2[:, n2.index("SSC-A")],
        "REAL 68983.fcs (lymph-gated)",
        "FSC-A",
        "SSC-A",
        sc,
    )
    hexbin(axes[0, 2], sim_b[:, 0], sim_b[:, 2], "SIM bcell seed 1", "FSC-A", "SSC-A", sc)
    hexbin(axes[0, 3], sim_t[:, 0], sim_t[:, 2], "SIM treg seed 2", "FSC-A", "SSC-A", sc)
    hexbin(
        axes[1, 0],
        real1[:, n1.index("FSC-A")],
        real1[:, n1.index("FSC-H")],
        "REAL 111.fcs",
        "FSC-A",
        "FSC-H",
        sc,
    )
    hexbin(
        axes[1, 1],
        real2[:, n2.index("FSC-A")],
        real2[:, n2.index("FSC-H")],
        "REAL 68983.fcs",
        "FSC-A",
        "FSC-H",
        sc,
    )
    hexbin(axes[1, 2], sim_b[:, 0], sim_b[:, 1], "SIM bcell", "FSC-A", "FSC-H", sc)
    hexbin(axes[1, 3], sim_t[:, 0], sim_t[:, 1], "SIM treg", "FSC-A", "FSC-H", sc)
    fig.tight_layout()
    fig.savefig(OUT / "scatter.png", dpi=80)

    lg = [[-0.15, 1.0], [-0.15, 1.0]]
    fig, axes = plt.subplots(2, 4, figsize=(15, 7.5))

    def real_pair(ax, ev, names, pns, a, b, title):
        ia, ib = pns.index(a), pns.index(b)
        hexbin(
            ax, lgc(ev[:, ia]), lgc(ev[:, ib]), title, f"{names[ia]} {a}", f"{names[ib]} {b}", lg
        )

    real_pair(axes[0, 0], real2, n2, s2, "CD19", "CD3", "REAL 68983 comp+logicle")
    real_pair(axes[0, 1], real2, n2, s2, "CD4", "CD8", "REAL 68983 comp+logicle")
    live = lgc(sim_b[:, ch_b.index("BV510-A")]) < 0.4
    lym = (sim_b[:, 0] > 40000) & (sim_b[:, 0] < 100000) & (sim_b[:, 2] < 40000)

    def sim_pair(ax, ev, ch, mk, a, b, sel, title):
        ia, ib = mk.index(a), mk.index(b)
        hexbin(ax, lgc(ev[sel, ia]), lgc(ev[sel, ib]), title, f"{ch[ia]} {a}", f"{ch[ib]} {b}", lg)

    sim_pair(axes[0, 2], sim_b, ch_b, mk_b, "CD19", "CD3", lym & live, "SIM bcell lymph live")
    livet = lgc(sim_t[:, ch_t.index("BV510-A")]) < 0.4
    lymt = (sim_t[:, 0] > 40000) & (sim_t[:, 0] < 100000) & (sim_t[:, 2] < 40000)
    sim_pair(axes[0, 3], sim_t, ch_t, mk_t, "CD4", "CD8", lymt & livet, "SIM treg lymph live")
    real_pair(axes[1, 0], real1, n1, n1, "V450-A", "R780-A", "REAL 111 comp+logicle (no $PnS)")
    real_pair(axes[1, 1], real2, n2, s2, "l/d", "CD45", "REAL 68983 viability")
    bc = (
        lym
        & live
        & (lgc(sim_b[:, ch_b.index("APC-H7-A")]) > 0.5)
        & (lgc(sim_b[:, ch_b.index("BUV395-A")]) < 0.4)
    )
    sim_pair(axes[1, 2], sim_b, ch_b, mk_b, "IgD", "CD27", bc, "SIM B cells IgD/CD27")
    sim_pair(axes[1, 3], sim_b, ch_b, mk_b, "CD24", "CD38", bc, "SIM B cells CD24/CD38")
    fig.tight_layout()
    fig.savefig(OUT / "fluorescence.png", dpi=80)

    # all channels of the raw simulated file: the viability-vs-scatter and saturation views
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    hexbin(
        axes[0],
        real1[:, 0],
        lgc(real1[:, n1.index("V450-A")]),
        "REAL 111 FSC-A vs V450-A",
        "FSC-A",
        "V450-A",
        [[0, 262144], [-0.15, 1]],
    )
    hexbin(
        axes[1],
        sim_b[:, 0],
        lgc(sim_b[:, ch_b.index("BV510-A")]),
        "SIM FSC-A vs viability",
        "FSC-A",
        "Viability",
        [[0, 262144], [-0.15, 1]],
    )
    tr = lymt & livet & (lgc(sim_t[:, ch_t.index("BV786-A")]) > 0.5)
    sim_pair(axes[2], sim_t, ch_t, mk_t, "CD25", "CD127", tr, "SIM CD4 T CD25/CD127")
    sim_pair(
        axes[3],
        sim_t,
        ch_t,
        mk_t,
        "FoxP3",
        "Helios",
        tr & (lgc(sim_t[:, ch_t.index("PE-A")]) > 0.5),
        "SIM CD25+ FoxP3/Helios",
    )
    fig.tight_layout()
    fig.savefig(OUT / "more.png", dpi=80)
    print(f"wrote {OUT}/scatter.png, fluorescence.png, more.png")


if __name__ == "__main__":
    main()
