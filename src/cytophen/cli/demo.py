"""``cytophen demo``: the whole study on simulated data, from FCS files to a report.

Stages (each through its public CLI / function; a stage that fails is reported, and the stages
that need its output are skipped, so the demo always finishes):

1. simulate the study cohort (6 subjects x 5 visits x B-cell and Treg panels) with ground truth;
2. gate each panel with the shipped template of that name (``cytophen gate``);
3. score a few gated files against the simulator's truth (F1, error of percent of parent);
4. merge the population tables with the manifest and clinical table (``cytophen merge``);
5. change from baseline, paired tests, correlation with SLEDAI, plots (``cytophen stats``);
6. the HTML report (``cytophen report``): gating plots (drawn by ``cytophen gate --plots``) and
   the longitudinal plots of stage 5.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from cytophen.cli._common import check_out_dir, out_option, quiet_option

__all__ = ["demo", "run_demo", "find_template"]


def find_template(name: str) -> Path | None:
    """The shipped template ``name`` (``None`` when not shipped); see
    :mod:`cytophen.interop.shipped`."""
    from cytophen.interop.shipped import find_shipped

    return find_shipped(name)


def _cli(args: list[str]) -> int:
    from cytophen.cli import main

    return int(main(args) or 0)


class _Stages:
    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.status: list[tuple[str, str, str]] = []

    def run(self, name: str, fn: Callable[[], str | None]) -> bool:
        self.echo(click.style(f"== {name}", bold=True))
        t0 = time.perf_counter()
        try:
            note = fn() or ""
        except _Skip as exc:
            self.status.append((name, "skipped", str(exc)))
            self.echo(click.style(f"   skipped: {exc}", fg="yellow"))
            return False
        except Exception as exc:  # a stage must never stop the demo
            self.status.append((name, "failed", f"{type(exc).__name__}: {exc}"))
            self.echo(click.style(f"   failed: {type(exc).__name__}: {exc}", fg="red"))
            if os.environ.get("CYTOPHEN_DEMO_DEBUG"):
                traceback.print_exc()
            return False
        dt = time.perf_counter() - t0
        self.status.append((name, "ok", note))
        self.echo(f"   done in {dt:.1f} s" + (f": {note}" if note else ""))
        return True


class _Skip(Exception):
    pass


def run_demo(
    out: str | os.PathLike,
    *,
    events: int = 20_000,
    seed: int = 0,
    jobs: int | None = None,
    echo: Callable[[str], None] = click.echo,
) -> dict[str, str]:
    """Run the demo into ``out``; returns ``{stage: status}`` (``ok``, ``skipped``, ``failed``).

    Parameters
    ----------
    out
        Folder to write (``data/``, ``results/``, ``analysis/``).
    events
        Events per simulated file.
    seed
        Cohort seed.
    jobs
        Processes for simulating and gating (default: all cores, at most 4).
    echo
        Where progress lines go.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data, results, analysis = out / "data", out / "results", out / "analysis"
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    st = _Stages(echo)
    panels = ("bcell", "treg")
    state: dict[str, object] = {}

    def simulate() -> str:
        from cytophen.simulate import simulate_cohort

        c = simulate_cohort(data, seed=seed, events=events, jobs=jobs)
        state["cohort"] = c
        return f"{len(c.files)} FCS files with truth, manifest.csv, clinical.csv in {data}"

    if not st.run("1/6 simulate the study cohort", simulate):
        _summary(out, st, echo)
        return {n: s for n, s, _ in st.status}

    cohort = state["cohort"]
    gated: list[str] = []
    for panel in panels:

        def gate(panel=panel) -> str:
            tpl = find_template(panel)
            if tpl is None:
                raise _Skip(f"gating_templates/{panel}.yaml not found")
            files = [str(f) for f in cohort.files if f.name.endswith(f"_{panel}.fcs")]
            dest = results / panel
            rc = _gate(files, tpl, dest, jobs)
            if not (dest / "populations.csv").exists():
                raise RuntimeError(f"gating wrote no populations.csv (exit code {rc})")
            gated.append(panel)
            extra = f" (exit code {rc}: some samples failed, see {dest}/errors.csv)" if rc else ""
            return f"{dest}/populations.csv{extra}"

        st.run(f"2/6 gate the {panel} panel", gate)

    def score_truth() -> str:
        import pandas as pd

        import cytophen
        from cytophen.simulate import read_truth, score

        rows = []
        for panel in gated:
            tpl = cytophen.load_template(find_template(panel))
            for f in [f for f in cohort.files if f.name.endswith(f"_{panel}.fcs")][::12][:3]:
                t = score(cytophen.gate(cytophen.read_fcs(f), tpl), read_truth(f))
                t.insert(0, "sample", f.stem)
                t.insert(0, "panel", panel)
                rows.append(t)
        if not rows:
            raise _Skip("no panel was gated")
        allt = pd.concat(rows, ignore_index=True)
        results.mkdir(parents=True, exist_ok=True)
        allt.to_csv(results / "truth_scores.csv", index=False)
        summ = allt.groupby(["panel", "population"], sort=False)[["f1", "abs_error_pp"]].mean()
        for (panel, pop), r in summ.iterrows():
            echo(f"   {panel:5s} {pop:20s} F1 {r['f1']:.3f}  |error| {r['abs_error_pp']:.2f} pp")
        return f"{results}/truth_scores.csv"

    st.run("3/6 score gating against the simulator's truth", score_truth)

    def merge() -> str:
        if not gated:
            raise _Skip("nothing was gated")
        args = [
            "merge",
            *[str(results / p) for p in gated],
            "--clinical",
            str(data / "clinical.csv"),
            "--manifest",
            str(data / "manifest.csv"),
            "--out",
            str(analysis / "merged.csv"),
        ]
        rc = _cli(args)
        if rc != 0 or not (analysis / "merged.csv").exists():
            raise _Skip(f"'cytophen merge' failed (exit code {rc})")
        return f"{analysis}/merged.csv"

    merged_ok = st.run("4/6 merge with the manifest and clinical table", merge)

    def stats() -> str:
        if not merged_ok:
            raise _Skip("no merged table")
        rc = _cli(
            [
                "stats",
                str(analysis / "merged.csv"),
                "--outcome",
                "SLEDAI",
                "--group",
                "responder",
                "--out",
                str(analysis / "stats"),
            ]
        )
        if rc != 0:
            raise _Skip(f"'cytophen stats' failed (exit code {rc})")
        return f"{analysis}/stats/ (changes, tests, correlations, plots)"

    st.run("5/6 longitudinal statistics and plots", stats)

    def report() -> str:
        made = []
        stats_dir = analysis / "stats"
        for panel in gated:
            args = ["report", str(results / panel)]
            if stats_dir.is_dir() and any(stats_dir.rglob("*.png")):
                args += ["--stats", str(stats_dir)]  # the longitudinal plots
            rc = _cli(args)
            if rc != 0:
                raise _Skip(f"'cytophen report' failed (exit code {rc})")
            made.extend(str(p) for p in (results / panel).glob("*.html"))
        if not made:
            raise _Skip("no report written")
        return ", ".join(made)

    st.run("6/6 HTML report", report)
    _summary(out, st, echo)
    return {n: s for n, s, _ in st.status}


def _gate(files: list[str], tpl: Path, dest: Path, jobs: int) -> int:
    """``cytophen gate`` on ``files`` (exit code)."""
    return _cli(
        [
            "gate",
            *files,
            "--template",
            str(tpl),
            "--out",
            str(dest),
            "--jobs",
            str(jobs),
            "--quiet",
            "--plots",
        ]
    )


def _summary(out: Path, st: _Stages, echo) -> None:
    echo("")
    echo(click.style("Summary", bold=True))
    for name, status, note in st.status:
        colour = {"ok": "green", "skipped": "yellow", "failed": "red"}[status]
        echo(
            f"  {click.style(status.ljust(7), fg=colour)} {name}"
            + (f" - {note}" if status != "ok" else "")
        )
    echo("")
    echo("Where to look:")
    items = [
        ("simulated FCS files + truth, manifest, clinical table", out / "data"),
        ("population tables per panel (populations.csv, gates.json)", out / "results"),
        ("gating accuracy vs the simulator's truth", out / "results" / "truth_scores.csv"),
        ("merged table", out / "analysis" / "merged.csv"),
        ("statistics and plots", out / "analysis" / "stats"),
    ]
    for what, p in items:
        if p.exists():
            echo(f"  {what}: {p}")
    for html in sorted(out.rglob("*.html")):
        echo(f"  report: {html}")


@click.command(name="demo")
@out_option(metavar="DIR", default="demo", help="Folder to write everything into (default: demo).")
@click.option(
    "--events",
    type=click.IntRange(min=1000),
    default=20_000,
    show_default=True,
    help="Events per simulated file.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Cohort seed.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes (default: all cores, at most 4).",
)
@quiet_option
def demo(out, events, seed, jobs, quiet):
    """Simulate the lupus study cohort, gate both panels with the shipped templates, score the
    gates against the truth, merge with the clinical table, run the statistics and write the
    report; then print where to look. A stage that fails is reported; the demo goes on.

    \b
    Example:
      cytophen demo --out demo
    """
    check_out_dir(out)
    t0 = time.perf_counter()
    status = run_demo(
        out, events=events, seed=seed, jobs=jobs, echo=_silent if quiet else click.echo
    )
    if quiet:
        for stage, state in status.items():
            if state != "ok":
                click.echo(f"{stage}: {state}", err=True)
        return 0
    click.echo(f"\ndemo finished in {time.perf_counter() - t0:.0f} s")
    return 0


def _silent(line: str) -> None:
    pass
