"""Gating plots and the HTML report: cytophen vs FlowKit, side by side in one run.

What is timed (median of several repeats, wall clock):

1. One 2-D gate plot of a parent population (all events, no subsampling), from events in memory to
   a finished artefact: cytophen ``plot_gate`` + PNG bytes (density of 128x128 bins, logicle ticks,
   gate drawn) vs FlowKit 1.3 ``Sample.plot_scatter`` (bokeh figure, density-coloured points; FlowKit
   plots only in a browser, so its artefact is the standalone HTML of that figure from
   ``bokeh.embed.file_html``). FlowKit subsamples by default (10 000 events); both variants are shown.
2. A whole 500-sample report from an existing results folder (tables + linked PNGs): cytophen only,
   FlowKit has no report.
3. The study's size, 30 samples x 15 plots, embedded in one file: the plots are real (simulated
   B-cell and Treg files gated with the shipped templates, each sample its own plots), the page's
   size, the time to write it, and its load in headless Chromium (DevTools protocol): until its
   script has built the page, and until every image shown is decoded. No peer has such a report.

Run: ``.venv/bin/python benchmarks/bench_report.py [--events 100000] [--repeats 5]``.
Figures on a shared, busy machine are noisy; compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (imports, font cache, numba)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _events(n: int) -> tuple[np.ndarray, list[str]]:
    r = np.random.default_rng(0)
    pos = r.random(n) < 0.4
    x = np.where(pos, r.lognormal(8.5, 0.5, n), r.normal(0, 150, n))
    y = np.where(r.random(n) < 0.35, r.lognormal(7.5, 0.6, n), r.normal(0, 150, n))
    fsc = r.normal(80_000, 20_000, n)
    return np.column_stack([fsc, x, y]).astype(np.float64), ["FSC-A", "IgD", "CD27"]


def bench_plot(n: int, repeats: int) -> list[tuple[str, float, float]]:
    import flowkit as fk
    from bokeh.embed import file_html
    from bokeh.resources import CDN
    from matplotlib.figure import Figure

    from cytophen.report.plots import plot_gate
    from cytophen.transforms import LogicleTransform

    ev, names = _events(n)
    lg = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    xy = np.column_stack([lg.apply(ev[:, 1]), lg.apply(ev[:, 2])])
    geom = {"kind": "rectangle", "dims": ["IgD", "CD27"], "min": [0.45, 0.45], "max": [None, None]}

    def ours():
        fig = Figure(figsize=(3.6, 3.3), dpi=100)
        ax = fig.add_subplot()
        plot_gate(
            xy, geom, ax=ax, dims=["IgD", "CD27"], transforms=[lg, lg], name="gate", percent=12.0
        )
        buf = io.BytesIO()
        fig.savefig(buf, format="png")

    sample = fk.Sample(ev, sample_id="bench", channel_labels=names)
    xform = fk.transforms.LogicleTransform(param_t=262144, param_w=0.5, param_m=4.5, param_a=0)
    sample.apply_transform(xform)

    def theirs(subsample: bool):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = sample.plot_scatter("IgD", "CD27", source="xform", subsample=subsample)
                file_html(p, CDN, "bench")

        return run

    t_ours = _median_time(ours, repeats)
    t_fk_all = _median_time(theirs(False), repeats)
    t_fk_sub = _median_time(theirs(True), repeats)
    return [
        (f"2-D gate plot, {n} events: cytophen PNG vs FlowKit HTML (all events)", t_ours, t_fk_all),
        (
            f"2-D gate plot, {n} events: cytophen PNG (all) vs FlowKit HTML (10k subsample)",
            t_ours,
            t_fk_sub,
        ),
    ]


def bench_report(n_samples: int, repeats: int) -> tuple[str, float, int]:
    from cytophen.report.html import write_report
    from report_support import big_results

    tmp = Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        out = big_results(tmp, n_samples)
        t = _median_time(lambda: write_report(out), repeats)
        size = (out / "report.html").stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"HTML report of {n_samples} samples x 4 plots (linked PNGs)", t, size


def _study_results(root: Path, n_samples: int, per_sample: int) -> Path:
    """``n_samples`` samples, each with the plots of a simulated B-cell file and a simulated Treg
    file gated with the shipped templates (the first ``per_sample`` of them)."""
    import cytophen
    from cytophen.report.plots import save_sample_plots
    from cytophen.simulate import simulate_file

    out = root / "results"
    tables = []
    for i in range(n_samples):
        sid = f"P{i // 5 + 1:02d}_V{i % 5}"
        items, meta = [], None
        for panel in ("bcell", "treg"):
            f = simulate_file(root / "fcs" / f"{panel}{i}.fcs", panel, seed=i, events=20_000)
            res = cytophen.gate(cytophen.read_fcs(f), cytophen.load_template(panel), sample_id=sid)
            if panel == "bcell":
                tables.append(res.table)
            files = save_sample_plots(res, root / "tmp", folder=f"{panel}{i}")
            m = json.loads(files[-1].read_text())
            meta = meta or m
            (out / "plots" / sid).mkdir(parents=True, exist_ok=True)
            for item in m["plots"]:
                name = f"{panel}_{item['file']}"
                shutil.move(root / "tmp" / f"{panel}{i}" / item["file"], out / "plots" / sid / name)
                items.append(dict(item, gate=f"{panel}:{item['gate']}", file=name))
        meta = dict(meta, sample=sid, plots=items[:per_sample])
        (out / "plots" / sid / "plots.json").write_text(json.dumps(meta, default=str))
    pd.concat(tables, ignore_index=True).to_parquet(out / "populations.parquet", index=False)
    return out


def bench_study_page(n_samples: int, per_sample: int, repeats: int) -> dict:
    from browser import Chromium, chromium
    from cytophen.report.html import write_report

    tmp = Path(tempfile.mkdtemp(prefix="bench_study_page_"))
    try:
        out = _study_results(tmp, n_samples, per_sample)
        n_plots = sum(
            len(json.loads(p.read_text())["plots"]) for p in out.glob("plots/*/plots.json")
        )
        t_write = _median_time(lambda: write_report(out), max(1, repeats // 2))
        page = out / "report.html"
        size = page.stat().st_size
        png = [p.stat().st_size for p in out.glob("plots/*/*.png")]
        row = {"samples": n_samples, "plots": n_plots, "page_MB": size / 1e6,
               "png_median_kB": statistics.median(png) / 1e3, "write_s": t_write}  # fmt: skip
        if chromium() is None:
            row["browser"] = "chromium not installed"
            return row
        ready, decoded = [], []
        for k in range(repeats):
            with Chromium(tmp / f"profile{k}") as b:
                t0 = time.perf_counter()
                s = b.open(page.as_uri())
                ready.append(time.perf_counter() - t0)
                b.eval(s, "Promise.all(Array.from(document.images).map(i => "
                          "{ i.loading = 'eager'; return i.decode().catch(() => null); }))")  # fmt: skip
                decoded.append(time.perf_counter() - t0)
                shown = b.eval(s, "document.images.length")
        row.update({"ready_s": statistics.median(ready), "images_shown": shown,
                    "all_shown_decoded_s": statistics.median(decoded)})  # fmt: skip
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--study-samples", type=int, default=30)
    ap.add_argument("--plots-per-sample", type=int, default=15)
    args = ap.parse_args(argv)
    rows = bench_plot(args.events, args.repeats)
    print(f"{'what':<82} {'cytophen s':>10} {'FlowKit s':>10} {'FlowKit/cytophen':>17}")
    for what, a, b in rows:
        print(f"{what:<82} {a:>10.3f} {b:>10.3f} {b / a:>16.1f}x")
    what, t, size = bench_report(args.samples, max(1, args.repeats // 2))
    print(f"{what:<82} {t:>10.3f} {'n/a':>10} {'(no peer)':>17}   page {size / 1e6:.2f} MB")
    study = bench_study_page(args.study_samples, args.plots_per_sample, max(1, args.repeats // 2))
    print("self-contained report of the study's size (images embedded), in headless Chromium:")
    print(json.dumps(study, indent=1))
    print(json.dumps({"events": args.events, "repeats": args.repeats, "pandas": pd.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
