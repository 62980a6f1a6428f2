"""Data-driven gates of bcell.yaml on a 1 M-event simulated file: fit time per gate, side by side
with FlowKit applying the equivalent fixed gates.

cytophen: every data-driven gate of ``gating_templates/bcell.yaml`` is fitted on its parent's events
(``cytophen.datadriven.fit_gate``; seeded subsample capped at 50 000 events) and the whole template
is applied with ``cytophen.gate`` (fits included). FlowKit has no data-driven gates, so its peer
figure is the *fixed* gates cytophen chose (the result frozen with ``Template.freeze``,
exported to GatingML 2.0 and loaded into ``flowkit.Session``) applied to the same FCS file; the script
checks that FlowKit's counts equal cytophen's. Reading the file is excluded for both.

Usage: ``.venv/bin/python benchmarks/bench_datadriven.py [--events N] [--repeats R]``
(default 1,000,000 events, median of 3). ``--accuracy DIR`` instead gates a freshly simulated
cohort (``cytophen.simulate.simulate_cohort``) with bcell.yaml and treg.yaml and prints the
per-population score table used in docs/accuracy.md. Figures are noisy on a shared machine.
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

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def speed(events: int, repeats: int, template_path: Path) -> int:
    import flowkit as fk

    import cytophen
    from cytophen.datadriven import fit_gate
    from cytophen.engine import TreeEvaluator, gate
    from cytophen.gates import DataDrivenGate
    from cytophen.interop.gatingml import export_gatingml
    from cytophen.simulate import simulate_sample
    from cytophen.simulate.files import write_sample

    template = cytophen.load_template(template_path)
    with tempfile.TemporaryDirectory() as tmp:
        fcs = Path(tmp) / "bcell_1M.fcs"
        t0 = time.perf_counter()
        write_sample(fcs, simulate_sample("bcell", seed=1, events=events))
        print(f"simulated {events:,} events in {time.perf_counter() - t0:.1f} s")
        sample = cytophen.read_fcs(fcs)
        gate(sample, template)  # compile / load numba caches
        t_all, res = _median_time(lambda: gate(sample, template), repeats)

        # per data-driven gate: the fit alone, on the parent's events (the template with its
        # 'auto' transforms resolved for this file, as the evaluator resolves it)
        evaluator = TreeEvaluator(sample, template)
        ctx = evaluator.ctx
        rows, seen = [], set()
        for pop in evaluator.template.populations:
            g = pop.gate
            if not isinstance(g, DataDrivenGate) or id(g) in seen:
                continue
            seen.add(id(g))
            parent = res.membership(pop.parent) if pop.parent else np.ones(sample.n_events, bool)
            t_val, vals = _median_time(lambda g=g, parent=parent: ctx.matrix_of(g.dims)[parent], 1)
            t_fit, out = _median_time(lambda g=g, vals=vals: fit_gate(g, vals, seed=0), repeats)
            rows.append((pop.name if pop.quadrant is None else f"{pop.parent} quadrants", g.method,
                         int(parent.sum()), out.details.get("n_fit", 0), t_fit))  # fmt: skip

        frozen = template.freeze(res)
        gml = Path(tmp) / "bcell_frozen.xml"
        export_gatingml(frozen, gml)
        t_fixed, res_fixed = _median_time(lambda: gate(sample, frozen), repeats)
        fk_sample = fk.Sample(str(fcs), sample_id="s")

        def run_flowkit():
            session = fk.Session(gating_strategy=str(gml))
            session.add_samples(fk_sample)
            session.analyze_samples(sample_id="s", use_mp=False)
            return session

        t_fk, session = _median_time(run_flowkit, repeats)
        report = session.get_gating_results("s").report.set_index("gate_name")["count"]

    mism = [
        (p, res.count(p), int(report[p])) for p in template.names if res.count(p) != int(report[p])
    ]
    t_fits = sum(r[-1] for r in rows)
    print(f"\nbcell.yaml data-driven gates, {events:,} events, median of {repeats} (seconds)")
    print(f"{'gate':<28}{'method':<18}{'parent events':>14}{'fitted on':>11}{'fit s':>9}")
    for name, method, npar, nfit, t in rows:
        print(f"{name:<28}{method:<18}{npar:>14,}{nfit:>11,}{t:>9.3f}")
    print(f"{'all fits':<60}{t_fits:>9.3f}")
    print(f"\n{'run':<52}{'seconds':>9}{'ratio vs FlowKit':>18}")
    print(f"{'FlowKit Session, the frozen fixed gates':<52}{t_fk:>9.3f}{1.0:>17.1f}x")
    print(f"{'cytophen gate, bcell.yaml (fits + gating)':<52}{t_all:>9.3f}{t_fk / t_all:>17.1f}x")
    print(
        f"{'cytophen fits only (sum of the gates above)':<52}{t_fits:>9.3f}{t_fk / t_fits:>17.1f}x"
    )
    print(f"{'cytophen gate, the frozen fixed gates':<52}{t_fixed:>9.3f}{t_fk / t_fixed:>17.1f}x")
    print("FlowKit counts identical to cytophen's:", "yes" if not mism else f"NO {mism}")
    same = all(res.count(p) == res_fixed.count(p) for p in template.names)
    print("frozen template gives the same counts:", "yes" if same else "NO")
    return 0 if not mism and same else 1


def accuracy(
    out_dir: str,
    events: int,
    templates: Path,
    seed: int = 0,
    panels: tuple[str, ...] = ("bcell", "treg"),
    rescore: bool = False,
) -> int:
    import pandas as pd

    import cytophen
    from cytophen.simulate.cohort import simulate_cohort
    from cytophen.simulate.files import read_truth
    from cytophen.simulate.scoring import score

    manifest = Path(out_dir) / "manifest.csv"
    if rescore and manifest.exists():
        man = pd.read_csv(manifest)  # gate the cohort already written there, as it is
    else:
        man = simulate_cohort(out_dir, seed=seed, events=events, jobs=2).manifest
    frames = []
    for panel in panels:
        t = cytophen.load_template(templates / f"{panel}.yaml")
        for f in man.loc[man["panel"] == panel, "file"]:
            path = Path(out_dir) / f
            r = cytophen.gate(cytophen.read_fcs(path), t)
            sc = score(r, read_truth(path))
            sc.insert(0, "panel", panel)
            sc.insert(1, "file", f)
            frames.append(sc)
    df = pd.concat(frames)
    print(_markdown(score_table(df)))
    scores = Path(out_dir) / "scores.csv"
    if len(panels) < 2 and scores.exists():  # keep the other panel's rows
        old = pd.read_csv(scores)
        df = pd.concat([old[~old["panel"].isin(panels)], df])
    df.to_csv(scores, index=False)
    return 0


MAJOR = ["lymphocytes", "singlets", "live", "b_cells", "cd4", "naive", "unswitched_memory",
         "switched_memory", "dn"]  # fmt: skip
RARE = ["transitional", "plasmablasts", "activated_naive", "dn2", "treg", "helios_pos_treg"]


def score_table(df):
    """Per panel x population: the issue-5 bar, worst/median F1, worst precision/recall,
    worst/median percent-of-parent error, and how many files meet the bars."""
    import pandas as pd

    rows = []
    for (panel, pop), d in df.groupby(["panel", "population"], sort=False):
        bar = 0.95 if pop in MAJOR else (0.85 if pop in RARE else None)
        rows.append(
            {
                "panel": panel,
                "population": pop,
                "F1 bar": "-" if bar is None else f"{bar:.2f}",
                "files": len(d),
                "F1 min": f"{d.f1.min():.3f}",
                "F1 median": f"{d.f1.median():.3f}",
                "precision min": f"{d.precision.min():.3f}",
                "recall min": f"{d.recall.min():.3f}",
                "pp error max": f"{d.abs_error_pp.max():.2f}",
                "pp error median": f"{d.abs_error_pp.median():.2f}",
                "files >= F1 bar": "-" if bar is None else int((d.f1 >= bar).sum()),
                "files within 2 pp": int((d.abs_error_pp <= 2).sum()),
            }
        )
    return pd.DataFrame(rows)


def seed_summary(dirs: list[str]) -> int:
    """One row per barred population, one column per cohort folder (each holding the scores.csv
    of an ``--accuracy`` run): worst F1 (files at the bar) / worst pp error (files within 2 pp)."""
    import pandas as pd

    cols = {Path(d).name: pd.read_csv(Path(d) / "scores.csv") for d in dirs}
    rows = []
    for panel, pops in (("bcell", MAJOR + RARE), ("treg", MAJOR + RARE)):
        for pop in pops:
            row = {"panel": panel, "population": pop}
            for name, df in cols.items():
                d = df[(df.panel == panel) & (df.population == pop)]
                if d.empty:
                    break
                bar = 0.95 if pop in MAJOR else 0.85
                row[name] = (
                    f"{d.f1.min():.3f} ({int((d.f1 >= bar).sum())}/{len(d)}) / "
                    f"{d.abs_error_pp.max():.2f} ({int((d.abs_error_pp <= 2).sum())}/{len(d)})"
                )
            else:
                rows.append(row)
    print(_markdown(pd.DataFrame(rows)))
    return 0


def _markdown(t) -> str:
    cols = list(t.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--accuracy", metavar="DIR", default=None)
    ap.add_argument("--template", type=Path, default=ROOT / "gating_templates" / "bcell.yaml")
    ap.add_argument(
        "--templates",
        type=Path,
        default=ROOT / "gating_templates",
        help="folder of bcell.yaml/treg.yaml for --accuracy",
    )
    ap.add_argument("--seed", type=int, default=0, help="cohort seed for --accuracy")
    ap.add_argument("--panel", choices=("bcell", "treg"), default=None, help="score one panel only")
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="gate the cohort already in the --accuracy folder instead of simulating it again",
    )
    ap.add_argument(
        "--summary",
        nargs="+",
        metavar="DIR",
        help="cross-cohort table of the bars from several --accuracy folders",
    )
    args = ap.parse_args(argv)
    if args.summary:
        return seed_summary(args.summary)
    if args.accuracy:
        panels = (args.panel,) if args.panel else ("bcell", "treg")
        return accuracy(
            args.accuracy, args.events or 30_000, args.templates, args.seed, panels, args.rescore
        )
    return speed(args.events or 1_000_000, args.repeats, args.template)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
