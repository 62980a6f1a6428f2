"""Batch gating, whole process: ``cytophen gate`` vs a FlowKit script doing the same work.

Generates (once, cached in --dir) 33 FCS files of 50 k events x 18 channels with a $SPILLOVER
keyword, and a 10-gate tree (polygons, rectangles/ranges, an ellipse, a boolean NOT; logicle on the
fluorescence channels, FCS-keyword compensation) written both as a cytophen YAML template and as
the equivalent FlowKit GatingStrategy. Then, side by side in one run (median of --repeats):

1. whole process, as a user waits for it: ``cytophen gate DIR -t T.yaml -o OUT -j N -q``
   (the installed console script) vs ``python flowkit_batch.py`` (FlowKit Session, analyse,
   write the report CSV), for 1 and 2 jobs (FlowKit: ``use_mp`` False / True); wall time and the
   peak RSS of the largest process (/usr/bin/time -v, else getrusage);
2. throughput on a big batch (default 200 files x 200 k events): cytophen on all of them, FlowKit
   on --fk-big-files of them (it is ~slow; events/s is compared), 2 jobs each, median of
   --big-repeats runs, after one read of every file (both tools read from the page cache).

Also checks that cytophen's counts equal FlowKit's for every sample and gate.

Usage: ``.venv/bin/python benchmarks/bench_batch.py [--dir D] [--repeats R] [--big-files N]
[--big-events N] [--fk-big-files N] [--big-repeats N] [--skip-big]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent

SCATTER = ["FSC-A", "FSC-H", "SSC-A", "SSC-H"]
FLUO = [  # ($PnN, marker)
    ("FL1-A", "CD3"), ("FL2-A", "CD4"), ("FL3-A", "CD8"), ("FL4-A", "CD19"), ("FL5-A", "CD20"),
    ("FL6-A", "CD27"), ("FL7-A", "IgD"), ("FL8-A", "CD38"), ("FL9-A", "CD24"), ("FL10-A", "CD45"),
    ("FL11-A", "CD56"), ("FL12-A", "CD14"), ("FL13-A", "HLA-DR"),
]  # fmt: skip
CHANNELS = SCATTER + [c for c, _ in FLUO] + ["Time"]
MARKERS = ["", "", "", ""] + [m for _, m in FLUO] + [""]
LOGICLE = {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}


def _logicle(x):
    from cytophen.transforms import LogicleTransform

    return LogicleTransform(**LOGICLE).apply(np.asarray(x, dtype=np.float64))


def spillover() -> np.ndarray:
    k = len(FLUO)
    s = np.eye(k)
    for i in range(k - 1):
        s[i, i + 1] = 0.08
        s[i + 1, i] = 0.03
    return s


def simulate(seed: int, n: int) -> np.ndarray:
    """Events: debris, doublets, T (CD4/CD8), B (IgD/CD27 subsets), other leukocytes."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(6, size=n, p=[0.08, 0.05, 0.40, 0.25, 0.12, 0.10])
    # 0 debris, 1 doublet, 2 CD4 T, 3 CD8 T, 4 B, 5 other
    ev = np.zeros((n, len(CHANNELS)))
    fsc = rng.normal(60_000, 7_000, n)
    fsc[kind == 0] = rng.uniform(2_000, 20_000, (kind == 0).sum())
    ev[:, 0] = fsc
    ev[:, 1] = np.where(kind == 1, 0.5, 0.8) * fsc * rng.normal(1, 0.03, n)
    ev[:, 2] = rng.normal(20_000, 4_000, n)
    ev[:, 3] = ev[:, 2] * 0.8 * rng.normal(1, 0.03, n)
    k = len(FLUO)
    true = rng.normal(0, 60, (n, k))  # negatives, spread around 0
    col = {m: 4 + j for j, (_, m) in enumerate(FLUO)}

    def pos(mask, marker, centre):
        true[mask, col[marker] - 4] = rng.lognormal(np.log(centre), 0.35, mask.sum())

    lymph = kind >= 1
    pos(lymph, "CD45", 8_000)
    pos((kind == 2) | (kind == 3), "CD3", 6_000)
    pos(kind == 2, "CD4", 5_000)
    pos(kind == 3, "CD8", 9_000)
    b = kind == 4
    pos(b, "CD19", 4_000)
    pos(b, "CD20", 7_000)
    igd = b & (rng.random(n) < 0.6)
    pos(igd, "IgD", 3_000)
    cd27 = b & (rng.random(n) < 0.4)
    pos(cd27, "CD27", 2_500)
    pos(kind == 5, "CD56", 3_000)
    pos(kind == 5, "HLA-DR", 2_000)
    pos(b, "HLA-DR", 4_000)
    ev[:, 4 : 4 + k] = true @ spillover()
    ev[:, -1] = np.sort(rng.uniform(0, 1000, n))
    return ev.astype(np.float32)


def gate_spec() -> list[dict]:
    """The 10 gates, in the units each dimension is gated on (scatter linear, fluorescence logicle)."""
    t = float(_logicle([400.0])[0])  # positive/negative boundary on the logicle scale
    # CD8 ellipse: mean and covariance of the CD8 T cluster on the logicle scale (from a sample)
    ev = simulate(12345, 20_000)
    comp = ev[:, 4:17].astype(np.float64) @ np.linalg.inv(spillover())
    cd4, cd8 = _logicle(comp[:, 1]), _logicle(comp[:, 2])
    sel = (cd8 > t + 0.1) & (cd4 < t)
    mean = [float(cd4[sel].mean()), float(cd8[sel].mean())]
    cov = np.cov(np.vstack([cd4[sel], cd8[sel]])).tolist()
    return [
        {"name": "cells", "parent": None, "kind": "polygon", "dims": ["FSC-A", "SSC-A"],
         "vertices": [[30000, 2000], [110000, 2000], [110000, 60000], [40000, 60000], [25000, 30000]]},
        {"name": "singlets", "parent": "cells", "kind": "polygon", "dims": ["FSC-A", "FSC-H"],
         "vertices": [[20000, 13000], [130000, 84500], [130000, 123500], [20000, 19000]]},
        {"name": "leukocytes", "parent": "singlets", "kind": "range", "dims": ["CD45"], "min": [t], "max": [None]},
        {"name": "t_cells", "parent": "leukocytes", "kind": "rectangle", "dims": ["CD3", "CD19"], "min": [t, None], "max": [None, t]},
        {"name": "b_cells", "parent": "leukocytes", "kind": "polygon", "dims": ["CD19", "CD20"],
         "vertices": [[t, t], [1.0, t], [1.0, 1.0], [t + 0.05, 1.0], [t, t + 0.1]]},
        {"name": "cd4_t", "parent": "t_cells", "kind": "rectangle", "dims": ["CD4", "CD8"], "min": [t, None], "max": [None, t]},
        {"name": "cd8_t", "parent": "t_cells", "kind": "ellipse", "dims": ["CD4", "CD8"], "mean": mean,
         "covariance": cov, "distance_square": 9.0},
        {"name": "non_t", "parent": "leukocytes", "kind": "not", "operand": "t_cells"},
        {"name": "naive_b", "parent": "b_cells", "kind": "rectangle", "dims": ["IgD", "CD27"], "min": [t, None], "max": [None, t]},
        {"name": "memory_b", "parent": "b_cells", "kind": "range", "dims": ["CD27"], "min": [t], "max": [None]},
    ]  # fmt: skip


def write_yaml(spec: list[dict], path: Path) -> None:
    lines = ["format: 1", "name: bench10", "version: '1'", "compensation: FCS", "panel:"]
    for s in SCATTER:
        lines.append(f"  {s}: {{}}")
    lg = ", ".join(f"{k}: {v}" for k, v in LOGICLE.items())
    for _, m in FLUO:
        lines.append(f"  {m}: {{transform: {{kind: logicle, {lg}}}}}")
    lines.append("populations:")
    for g in spec:
        lines.append(f"  {g['name']}:")
        if g["parent"]:
            lines.append(f"    parent: {g['parent']}")
        if g["kind"] == "not":
            lines.append(f"    gate: {{not: {g['operand']}}}")
            continue
        body = {k: v for k, v in g.items() if k not in ("name", "parent")}
        if g["kind"] == "range":
            body["min"], body["max"] = g["min"][0], g["max"][0]
        lines.append(f"    gate: {json.dumps(body).replace('NaN', 'null')}")
    path.write_text("\n".join(lines) + "\n")


FLOWKIT_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import flowkit as fk
spec_path, files_list, out_csv, use_mp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
spec = json.load(open(spec_path))
pnn = spec["pnn"]
gs = fk.GatingStrategy()
gs.add_transform("logicle", fk.transforms.LogicleTransform(**spec["logicle"]))
paths = {"cells": ("root",)}
def dim(name, lo=None, hi=None):
    c = pnn[name]
    fluo = c.startswith("FL")
    return fk.Dimension(c, compensation_ref="FCS" if fluo else "uncompensated",
                        transformation_ref="logicle" if fluo else None, range_min=lo, range_max=hi)
for g in spec["gates"]:
    parent_path = ("root",) if g["parent"] is None else paths[g["parent"]] + (g["parent"],)
    paths[g["name"]] = parent_path
    k = g["kind"]
    if k == "polygon":
        gate = fk.gates.PolygonGate(g["name"], [dim(d) for d in g["dims"]], g["vertices"])
    elif k in ("rectangle", "range"):
        gate = fk.gates.RectangleGate(g["name"], [dim(d, lo, hi) for d, lo, hi in zip(g["dims"], g["min"], g["max"])])
    elif k == "ellipse":
        gate = fk.gates.EllipsoidGate(g["name"], [dim(d) for d in g["dims"]], g["mean"], g["covariance"], g["distance_square"])
    elif k == "not":
        op = g["operand"]
        gate = fk.gates.BooleanGate(g["name"], "not", [{"ref": op, "path": paths[op], "complement": False}])
    gs.add_gate(gate, gate_path=parent_path)
files = [l.strip() for l in open(files_list) if l.strip()]
session = fk.Session(gating_strategy=gs, fcs_samples=files)
session.analyze_samples(use_mp=use_mp)
report = session.get_analysis_report()
report.to_csv(out_csv, index=False)
"""


def make_data(folder: Path, n_files: int, n_events: int, spec: list[dict]) -> list[Path]:
    import pandas as pd

    import cytophen

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f".done-{n_files}x{n_events}"
    files = [folder / f"s{i:03d}.fcs" for i in range(n_files)]
    if stamp.exists() and all(f.exists() for f in files):
        return files
    names = [c for c, _ in FLUO]
    spill = pd.DataFrame(spillover(), index=names, columns=names)
    for i, f in enumerate(files):
        cytophen.write_fcs(f, simulate(i, n_events), CHANNELS, markers=MARKERS, spillover=spill)
    stamp.write_text("ok")
    return files


def measure(cmd: list[str], env: dict) -> tuple[float, float, float]:
    """(wall s, peak RSS MB of the largest process, user+sys CPU s) of one whole command."""
    if Path("/usr/bin/time").exists():
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
        cpu = sum(
            float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", r.stderr)
        )
        return wall, (int(m.group(1)) / 1024 if m else float("nan")), cpu
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, after.ru_maxrss / 1024, cpu


def median_of(cmd, env, repeats, before=None):
    walls, rss, cpus = [], [], []
    for _ in range(repeats):
        if before:
            before()
        w, m, c = measure(cmd, env)
        walls.append(w)
        rss.append(m)
        cpus.append(c)
    return statistics.median(walls), max(rss), statistics.median(cpus)


def check_counts(cy_csv: Path, fk_csv: Path) -> tuple[int, int]:
    """(number of sample x gate counts compared, number that differ) between the two outputs."""
    import pandas as pd

    cy = pd.read_csv(cy_csv)
    fk = pd.read_csv(fk_csv)
    fk["sample"] = fk["sample_id"].astype(str).str.replace(r"\.fcs$", "", regex=True)
    fk = fk.rename(columns={"gate_name": "population"})
    m = cy.merge(
        fk[["sample", "population", "count"]], on=["sample", "population"], suffixes=("", "_fk")
    )
    return len(m), int((m["count"] != m["count_fk"]).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cytophen_bench_batch"))
    ap.add_argument("--files", type=int, default=33)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-files", type=int, default=200)
    ap.add_argument("--big-events", type=int, default=200_000)
    ap.add_argument("--fk-big-files", type=int, default=20, help="FlowKit's share of the big batch")
    ap.add_argument("--big-repeats", type=int, default=3, help="runs of each big-batch command")
    ap.add_argument("--skip-big", action="store_true")
    args = ap.parse_args()

    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    # an installed package has its byte code compiled (FlowKit's is, in site-packages): let the
    # warm-up run write cytophen's too, instead of compiling every module in every timed run
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(NUMBA_CACHE_DIR=env["NUMBA_CACHE_DIR"])
    d = args.dir
    d.mkdir(parents=True, exist_ok=True)
    spec = gate_spec()
    tpath = d / "bench10.yaml"
    write_yaml(spec, tpath)
    pnn = {**{s: s for s in SCATTER}, **{m: c for c, m in FLUO}}
    (d / "spec.json").write_text(
        json.dumps(
            {
                "gates": spec,
                "pnn": pnn,
                "logicle": {
                    "param_t": LOGICLE["T"],
                    "param_w": LOGICLE["W"],
                    "param_m": LOGICLE["M"],
                    "param_a": LOGICLE["A"],
                },
            }
        )
    )
    fk_script = d / "flowkit_batch.py"
    fk_script.write_text(textwrap.dedent(FLOWKIT_SCRIPT))
    cytophen_bin = str(BIN / "cytophen")

    print(
        f"generating {args.files} files x {args.events} events x {len(CHANNELS)} channels in {d}/small ...",
        flush=True,
    )
    small = make_data(d / "small", args.files, args.events, spec)
    (d / "small.txt").write_text("\n".join(map(str, small)))

    def clean(path):
        return lambda: shutil.rmtree(path, ignore_errors=True)

    # warm the numba cache once (a first-ever run compiles; that is not what we time)
    subprocess.run(
        [
            cytophen_bin,
            "gate",
            str(d / "small"),
            "-t",
            str(tpath),
            "-o",
            str(d / "warm"),
            "-j",
            "1",
            "-q",
        ],
        env=env,
    )

    rows = []
    for jobs in (1, 2):
        out = d / f"out_cy_{jobs}"
        cy = median_of([cytophen_bin, "gate", str(d / "small"), "-t", str(tpath), "-o", str(out), "-j", str(jobs), "-q"],
                       env, args.repeats, clean(out))  # fmt: skip
        fk_csv = d / f"fk_{jobs}.csv"
        fk = median_of([sys.executable, str(fk_script), str(d / "spec.json"), str(d / "small.txt"), str(fk_csv), "1" if jobs > 1 else "0"],
                       env, args.repeats)  # fmt: skip
        n_cmp, n_diff = check_counts(out / "populations.csv", fk_csv)
        rows.append(
            (
                f"{args.files} x {args.events // 1000}k, whole process, {jobs} job(s)",
                cy,
                fk,
                n_cmp,
                n_diff,
            )
        )

    print()
    print(
        f"{'batch':<44} {'cytophen s':>10} {'FlowKit s':>10} {'speed-up':>9} {'cy MB':>7} {'fk MB':>7}"
        f" {'cy cpu s':>8} {'fk cpu s':>8} {'cpu ratio':>9}  counts equal"
    )
    for name, cy, fk, n_cmp, n_diff in rows:
        print(
            f"{name:<44} {cy[0]:>10.2f} {fk[0]:>10.2f} {fk[0] / cy[0]:>8.1f}x {cy[1]:>7.0f} {fk[1]:>7.0f}"
            f" {cy[2]:>8.2f} {fk[2]:>8.2f} {fk[2] / cy[2]:>8.1f}x  {n_cmp - n_diff}/{n_cmp}"
        )
    print(
        "(cpu = user+sys of the process and the children it waited for: pool workers and FlowKit's"
        " multiprocessing workers are not all included, so compare cpu on the 1-job rows)"
    )

    if not args.skip_big:
        print(
            f"\ngenerating {args.big_files} files x {args.big_events} events in {d}/big ...",
            flush=True,
        )
        big = make_data(d / "big", args.big_files, args.big_events, spec)
        (d / "big_fk.txt").write_text("\n".join(map(str, big[: args.fk_big_files])))
        for f in big:  # both tools read from the page cache, not from disk
            f.read_bytes()
        out = d / "out_cy_big"
        cy_w, cy_m, cy_cpu = median_of(
            [
                cytophen_bin,
                "gate",
                str(d / "big"),
                "-t",
                str(tpath),
                "-o",
                str(out),
                "-j",
                "2",
                "-q",
            ],
            env,
            args.big_repeats,
            before=lambda: shutil.rmtree(out, ignore_errors=True),
        )
        fk_csv = d / "fk_big.csv"
        fk_w, fk_m, fk_cpu = median_of(
            [
                sys.executable,
                str(fk_script),
                str(d / "spec.json"),
                str(d / "big_fk.txt"),
                str(fk_csv),
                "1",
            ],
            env,
            args.big_repeats,
        )
        n_cmp, n_diff = check_counts(out / "populations.csv", fk_csv)
        cy_rate = args.big_files * args.big_events / cy_w
        fk_rate = args.fk_big_files * args.big_events / fk_w
        print(
            f"\nthroughput, {args.big_events // 1000}k-event files, 2 jobs (median of {args.big_repeats} runs each, whole process, files in the page cache):"
        )
        print(
            f"  cytophen: {args.big_files} files in {cy_w:.1f} s = {cy_rate / 1e6:.2f} M events/s ({args.big_files / cy_w:.1f} files/s), peak {cy_m:.0f} MB, {cy_cpu:.1f} CPU s"
        )
        print(
            f"  FlowKit:  {args.fk_big_files} files in {fk_w:.1f} s = {fk_rate / 1e6:.2f} M events/s ({args.fk_big_files / fk_w:.2f} files/s), peak {fk_m:.0f} MB, {fk_cpu:.1f} CPU s"
        )
        print(f"  ratio: {cy_rate / fk_rate:.1f}x   counts equal: {n_cmp - n_diff}/{n_cmp}")
    print(
        "\n(shared, busy machine: figures are noisy; the targets are >= 5x whole process, >= 20x throughput)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
