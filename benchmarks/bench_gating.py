"""End-to-end gating of a B-cell-like tree: cytophen.engine.gate vs FlowKit's Session, side by side.

Tree (8 populations): two scatter polygons (lymphocytes on FSC-A/SSC-A, singlets on FSC-A/FSC-H), a
CD3-/CD19+ rectangle, four IgD/CD27 quadrant children (naive, unswitched memory, switched memory,
double negative) and a transitional CD24/CD38 polygon, with logicle transforms on five channels
(CD19, IgD, CD27, CD24, CD38). Events are synthetic (a seeded mixture), written once to an FCS 3.1
file that both tools read; only gating is timed (reading is excluded for both).

The same tree is given to FlowKit by exporting the cytophen template to GatingML 2.0
(cytophen.interop.gatingml.export_gatingml) and loading it into ``flowkit.Session``; the script
checks that both tools give identical counts before timing.

Usage: ``.venv/bin/python benchmarks/bench_gating.py [--events N] [--repeats R] [--stages]``
(default 2,000,000 events, median of 3; 1- and N-thread runs alternate). ``--stages`` adds a
per-stage breakdown. Figures are noisy on a shared machine (the CPU seconds of the 1-thread runs
are the steadiest figure there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

CHANNELS = ["FSC-A", "FSC-H", "SSC-A", "CD3", "CD19", "IgD", "CD27", "CD24", "CD38"]


def synthetic_events(n: int, seed: int = 0) -> np.ndarray:
    """A seeded B-cell-like mixture in linear units (float32)."""
    rng = np.random.default_rng(seed)
    ev = np.empty((n, len(CHANNELS)), dtype=np.float32)
    lymph = rng.random(n) < 0.7
    fsc = np.where(lymph, rng.normal(60000, 9000, n), rng.normal(120000, 30000, n))
    ev[:, 0] = fsc
    doublet = rng.random(n) < 0.05
    ev[:, 1] = fsc * np.where(doublet, rng.normal(0.6, 0.05, n), rng.normal(0.85, 0.03, n))
    ev[:, 2] = np.where(lymph, rng.normal(20000, 5000, n), rng.normal(90000, 25000, n))
    bcell = rng.random(n) < 0.15
    ev[:, 3] = np.where(bcell, rng.normal(300, 300, n), rng.normal(8000, 2500, n))  # CD3
    ev[:, 4] = np.where(bcell, rng.lognormal(8.5, 0.5, n), rng.normal(50, 150, n))  # CD19
    igd_pos = rng.random(n) < 0.6
    cd27_pos = rng.random(n) < 0.35
    ev[:, 5] = np.where(igd_pos, rng.lognormal(8.0, 0.6, n), rng.normal(100, 200, n))  # IgD
    ev[:, 6] = np.where(cd27_pos, rng.lognormal(7.5, 0.6, n), rng.normal(80, 200, n))  # CD27
    trans = rng.random(n) < 0.05
    ev[:, 7] = np.where(trans, rng.lognormal(9.5, 0.4, n), rng.lognormal(7.0, 0.8, n))  # CD24
    ev[:, 8] = np.where(trans, rng.lognormal(9.5, 0.4, n), rng.lognormal(6.5, 0.9, n))  # CD38
    return ev


def bcell_template():
    """The benchmark tree as a cytophen Template (uncompensated, logicle on five channels)."""
    from cytophen.gates import Dim, PolygonGate, QuadrantGate, RectangleGate
    from cytophen.template import Population, Template
    from cytophen.transforms import LogicleTransform

    lg = LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0)

    def f(ch):
        return Dim(ch, transform=lg, compensation="uncompensated")

    def lin(ch):
        return Dim(ch, compensation="uncompensated")

    lymph = PolygonGate(
        (lin("FSC-A"), lin("SSC-A")),
        [
            (30000, 2000),
            (95000, 2000),
            (105000, 30000),
            (90000, 45000),
            (40000, 42000),
            (25000, 20000),
        ],
    )
    singlets = PolygonGate(
        (lin("FSC-A"), lin("FSC-H")),
        [(20000, 15000), (120000, 92000), (120000, 115000), (20000, 20000)],
    )
    bcells = RectangleGate((lin("CD3"), f("CD19")), (None, 0.55), (2000.0, None))
    quads = QuadrantGate.from_cuts(
        (f("IgD"), f("CD27")),
        0.5,
        0.5,
        {
            "+-": "naive",
            "++": "unswitched_memory",
            "-+": "switched_memory",
            "--": "double_negative",
        },
    )
    transitional = PolygonGate(
        (f("CD24"), f("CD38")),
        [(0.72, 0.72), (0.95, 0.72), (0.95, 0.95), (0.72, 0.95)],
    )
    pops = [
        Population("lymphocytes", None, lymph),
        Population("singlets", "lymphocytes", singlets),
        Population("b_cells", "singlets", bcells),
        *[
            Population(q, "b_cells", quads, quadrant=q)
            for q in ("naive", "unswitched_memory", "switched_memory", "double_negative")
        ],
        Population("transitional", "b_cells", transitional),
    ]
    return Template("bench_bcell", pops, compensation="uncompensated")


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _interleaved(fn, repeats: int, threads: int) -> tuple[float, float, float]:
    """Medians of wall time on ``threads`` numba threads, of wall time on 1 thread and of the
    1-thread run's CPU time, the two settings alternating run by run (so that a change in the
    machine's load hits both alike)."""
    import numba

    wall_n, wall_1, cpu_1 = [], [], []
    for _ in range(repeats):
        numba.set_num_threads(threads)
        t0 = time.perf_counter()
        fn()
        wall_n.append(time.perf_counter() - t0)
        numba.set_num_threads(1)
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall_1.append(time.perf_counter() - t0)
        cpu_1.append(time.thread_time() - c0)
    numba.set_num_threads(threads)
    return statistics.median(wall_n), statistics.median(wall_1), statistics.median(cpu_1)


def stage_breakdown(sample, template, repeats: int, threads: int) -> None:
    """Per-stage medians (ms): the kernel entry points and engine steps wrapped with timers."""
    import numba

    from cytophen import engine
    from cytophen.engine import _tree
    from cytophen.kernels import convert, gating, transforms

    acc: dict[str, float] = {}
    wrapped = [
        (convert, "columns_as_float64", "convert columns (root)"),
        (convert, "rows_as_float64", "gather parent rows"),
        (gating, "points_in_polygon", "polygon"),
        (gating, "band_update", "rectangle bands"),
        (gating, "points_in_rectangle", "rectangle (transformed)"),
        (transforms, "logicle_scale", "logicle"),
        (_tree, "population_table", "result table"),
    ]
    saved = [(m, n, getattr(m, n)) for m, n, _ in wrapped]

    def timer(f, label):
        def w(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + time.perf_counter() - t0

        return w

    for m, n, label in wrapped:
        setattr(m, n, timer(getattr(m, n), label))
    try:
        for th in sorted({1, threads}):
            numba.set_num_threads(th)
            per: dict[str, list[float]] = {}
            for _ in range(repeats):
                acc.clear()
                t0 = time.perf_counter()
                engine.gate(sample, template)
                acc["total"] = time.perf_counter() - t0
                for k, v in acc.items():
                    per.setdefault(k, []).append(v)
            print(f"stages, {th} thread(s), median ms: " + ", ".join(
                f"{k}={1e3 * statistics.median(v):.1f}" for k, v in per.items()))  # fmt: skip
    finally:
        for m, n, f in saved:
            setattr(m, n, f)
        numba.set_num_threads(threads)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--stages", action="store_true", help="also print a per-stage breakdown on 1 and N threads"
    )
    args = ap.parse_args(argv)

    import flowkit as fk
    import numba

    import cytophen
    from cytophen.engine import gate
    from cytophen.interop.gatingml import export_gatingml

    template = bcell_template()
    with tempfile.TemporaryDirectory() as tmp:
        fcs = Path(tmp) / "bcell_bench.fcs"
        cytophen.write_fcs(fcs, synthetic_events(args.events), CHANNELS)
        gml = Path(tmp) / "bcell_bench.xml"
        export_gatingml(template, gml)

        sample = cytophen.read_fcs(fcs)
        t0 = time.perf_counter()
        first = gate(sample, template)  # includes numba compile / cache load
        t_first = time.perf_counter() - t0
        threads = numba.get_num_threads()
        t_cyto, t_cyto1, cpu_cyto1 = _interleaved(
            lambda: gate(sample, template), args.repeats, threads
        )
        c0 = time.process_time()
        res = gate(sample, template)
        cpu_cyto = time.process_time() - c0
        if args.stages:
            stage_breakdown(sample, template, args.repeats, threads)

        fk_sample = fk.Sample(str(fcs), sample_id="s")

        def run_flowkit():
            session = fk.Session(gating_strategy=str(gml))
            session.add_samples(fk_sample)
            session.analyze_samples(sample_id="s", use_mp=False)
            return session

        t_fk, session = _median_time(run_flowkit, args.repeats)
        c0 = time.process_time()
        run_flowkit()
        cpu_fk = time.process_time() - c0
        report = session.get_gating_results("s").report.set_index("gate_name")["count"]

    mismatches = [
        (p, int(res.count(p)), int(report[p]))
        for p in template.names
        if int(res.count(p)) != int(report[p])
    ]
    print(f"B-cell-like tree, {args.events:,} events, {len(template.names)} populations, "
          f"wall-clock median of {args.repeats} (CPU s: one extra run; 1-thread row: median)")  # fmt: skip
    print(f"{'tool':<34}{'seconds':>9}{'ratio':>8}{'cpu s':>9}")
    print(f"{'FlowKit Session (1 process)':<34}{t_fk:>9.3f}{1.0:>7.1f}x{cpu_fk:>9.3f}")
    print(
        f"{f'cytophen gate ({threads} numba threads)':<34}{t_cyto:>9.3f}{t_fk / t_cyto:>7.1f}x{cpu_cyto:>9.3f}"
    )
    print(
        f"{'cytophen gate (1 numba thread)':<34}{t_cyto1:>9.3f}{t_fk / t_cyto1:>7.1f}x{cpu_cyto1:>9.3f}"
    )
    print(f"{'cytophen first call (compile/load)':<34}{t_first:>9.3f}{t_fk / t_first:>7.1f}x")
    print("per-population seconds (cytophen, last run):",
          ", ".join(f"{k}={v:.3f}" for k, v in res.timings.items()))  # fmt: skip
    from cytophen.kernels._parallel import machine_busy

    if machine_busy():
        print("note: the machine was busy (load average above the core count): kernels ran on "
              "one thread, and the figures are noisy")  # fmt: skip
    print("counts identical to FlowKit:", "yes" if not mismatches else f"NO {mismatches}")
    print("counts:", {p: int(first.count(p)) for p in template.names})
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
