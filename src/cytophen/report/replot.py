"""Gating plots for a results folder that has none: re-read each FCS file and re-gate it.

The batch normally writes plots in its workers (``save_sample_plots``), so events are never stored.
When a run was made without plots, :func:`replot` re-reads the files listed in the population table,
gates them again with the same template (its hash must match the run's), compensation and seed, checks
that the counts agree with the table, and writes the same per-sample PNGs.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cytophen._atomic import atomic_write_text
from cytophen.errors import CytophenError, ReportError
from cytophen.report.plots import safe_name, save_sample_plots
from cytophen.report.results import inside_folder, load_results

__all__ = ["replot", "ReplotOutcome"]


@dataclass
class ReplotOutcome:
    """What happened to one sample: ``status`` is ``'ok'``, ``'counts differ'``, ``'skipped'``
    (plots already there) or ``'failed'``; ``message`` says why."""

    sample: str
    file: str
    status: str
    message: str = ""


def _compensation(run: dict[str, Any]):
    """The compensation override the run gated with (run.json), read back."""
    from cytophen.compensation import Compensation

    return Compensation.from_record(run.get("options") or {}).override


def _repairs(run: dict[str, Any]):
    """The FCS repairs the run read its files with (run.json; ``None`` there: the default)."""
    from cytophen.io.fcs import DEFAULT_REPAIRS

    names = (run.get("options") or {}).get("repairs")
    return DEFAULT_REPAIRS if names is None else frozenset(names)


def _one(task: dict[str, Any], template, compensation, seed: int, plots_dir: str,
         repairs=None) -> ReplotOutcome:  # fmt: skip
    from cytophen.engine import gate
    from cytophen.io.fcs import DEFAULT_REPAIRS, read_fcs

    try:
        sample = read_fcs(task["file"], repairs=DEFAULT_REPAIRS if repairs is None else repairs)
        result = gate(
            sample,
            template,
            sample_id=task["sample"],
            compensation=compensation,
            seed=seed,
            pregated=task.get("pregated"),
            include_hidden=bool(task.get("include_hidden")),
        )
        save_sample_plots(result, plots_dir, folder=task["folder"], compensation=compensation)
    except (CytophenError, OSError) as exc:
        return ReplotOutcome(task["sample"], task["file"], "failed", str(exc))
    differ = []
    got = result.table.set_index("population")["count"]
    for pop, count in task["counts"].items():
        if pop not in got.index:
            continue
        now = got[pop]
        if pd.isna(now) or int(now) != count:
            differ.append(
                f"{pop}: {'not measured' if pd.isna(now) else int(now)} now vs {count} in the table"
            )
    if differ:
        return ReplotOutcome(task["sample"], task["file"], "counts differ", "; ".join(differ[:5]))
    return ReplotOutcome(task["sample"], task["file"], "ok")


def replot(
    results_dir: str | os.PathLike,
    *,
    template=None,
    jobs: int | None = 1,
    only_missing: bool = True,
) -> list[ReplotOutcome]:
    """Write the per-sample gating plots of a results folder by re-gating its FCS files.

    Parameters
    ----------
    results_dir
        The ``--out`` folder of ``cytophen gate``.
    template
        A :class:`~cytophen.template.Template` or template file; default the run's template file
        (``run.json``). Its hash must equal the run's.
    jobs
        Worker processes (``None`` = all cores; ``1`` = in this process).
    only_missing
        Skip samples that already have plots.

    Returns
    -------
    list of ReplotOutcome
        One per sample of the population table.

    Raises
    ------
    ReportError
        No template known, a template whose hash differs from the run's, or a folder another
        run is writing.
    """
    from cytophen.pipeline.outdir import FolderInUseError, OutputFolder

    folder = OutputFolder(results_dir)
    try:
        with folder.held():  # no batch may replace the outputs while plots are added to them
            return _replot(folder, template=template, jobs=jobs, only_missing=only_missing)
    except FolderInUseError as exc:
        raise ReportError(str(exc)) from None


def _replot(folder, *, template, jobs, only_missing) -> list[ReplotOutcome]:
    from cytophen.pipeline.outdir import current_generation

    results_dir = folder.root
    res = load_results(results_dir)
    run = res.run
    if template is None:
        src = (run.get("template") or {}).get("source")
        if not src:
            raise ReportError(
                f"{results_dir}: run.json names no template file; pass the template (--template T.yaml)"
            )
        template = src
    if not hasattr(template, "populations"):
        from cytophen.interop import load_template

        template = load_template(template)
    want = (run.get("template") or {}).get("hash")
    pops = res.populations
    if not want and "template_hash" in pops.columns and len(pops):
        want = str(pops["template_hash"].iloc[0])
    if want and not template.hash.startswith(str(want)):
        raise ReportError(
            f"template {template.name!r} has hash {template.short_hash}, but {results_dir} was gated "
            f"with {str(want)[:12]}; re-plotting with another template would show other gates"
        )
    folders = {
        str(i.get("sample")): i.get("safe_id") for i in run.get("inputs", []) if i.get("safe_id")
    }
    compensation = _compensation(run)
    seed = int((run.get("options") or {}).get("seed") or 0)
    repairs = _repairs(run)
    plots_dir = current_generation(results_dir) / "plots"
    if plots_dir.exists() and not inside_folder(plots_dir, results_dir):
        raise ReportError(f"{plots_dir} leads outside {results_dir}; not writing there")
    tasks, outcomes = [], []
    for sample, g in pops.groupby(pops["sample"].astype(str), sort=False):
        file = str(g["file"].iloc[0]) if "file" in g.columns else ""
        if only_missing and sample in res.plots:
            outcomes.append(ReplotOutcome(sample, file, "skipped", "plots already present"))
            continue
        counts = {str(p): int(c) for p, c in zip(g["population"], g["count"]) if not pd.isna(c)}
        name = folders.get(sample) or safe_name(sample)
        if not _plain_name(name):  # run.json is input: its names must not lead elsewhere
            outcomes.append(
                ReplotOutcome(
                    sample,
                    file,
                    "failed",
                    f"run.json names its plot folder {name!r}: not a plain name",
                )
            )
            continue
        tasks.append(
            {
                "sample": sample,
                "file": file,
                "folder": name,
                "counts": counts,
                "pregated": (run.get("options") or {}).get("pregated"),
                "include_hidden": bool((run.get("options") or {}).get("include_hidden")),
            }
        )
    if not tasks:
        return outcomes
    n = (os.cpu_count() or 1) if jobs is None else max(1, int(jobs))
    plots_dir.mkdir(exist_ok=True)
    if n == 1 or len(tasks) == 1:
        outcomes += [_one(t, template, compensation, seed, str(plots_dir), repairs) for t in tasks]
    else:
        from cytophen._mp import worker_context  # fork server; never re-runs the caller's script

        with ProcessPoolExecutor(
            max_workers=min(n, len(tasks)), mp_context=worker_context()
        ) as pool:
            futs = [
                pool.submit(_one, t, template, compensation, seed, str(plots_dir), repairs)
                for t in tasks
            ]
            outcomes += [f.result() for f in futs]
    summary = [o.__dict__ for o in outcomes]
    atomic_write_text(plots_dir / "replot.json", json.dumps(summary, indent=1))
    folder.link_outputs()  # DIR/plots, if the run had none
    return outcomes


def _plain_name(name: str) -> bool:
    """A single, visible file name: no folder part, not ``.``/``..``, no leading dot."""
    return (
        bool(name)
        and not name.startswith(".")
        and Path(name).name == name
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )
