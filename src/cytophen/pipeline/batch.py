"""Batch gating: many files, one template, in parallel, resumable, one bad file never stops a batch.

:func:`gate_files` is what ``cytophen gate`` runs (the CLI is a thin layer over it). Outputs (all
written atomically) are described in docs/batch.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from cytophen._terminal import printable
from cytophen._version import __version__
from cytophen.compensation import Compensation
from cytophen.errors import TemplateError
from cytophen.io.fcs import DEFAULT_REPAIRS
from cytophen.markers import MarkerMap, read_marker_csv
from cytophen.pipeline.executors import (
    START_METHODS,
    check_dask_installed,
    check_reachable,
    make_runner,
)
from cytophen.pipeline.inputs import InputError, SampleInput, discover, select_samples
from cytophen.pipeline.outdir import OutputFolder
from cytophen.pipeline.progress import _Background, _progress_bar, _waiting
from cytophen.pipeline.records import SampleRecord, SampleTask, WorkerOptions
from cytophen.pipeline.storage import (
    SampleStore,
    write_csv,
    write_json,
    write_parquet,
)
from cytophen.pipeline.tables import (
    _TAIL_COLUMNS,
    BASE_COLUMNS,
    ERROR_COLUMNS,
    BatchResult,
    wide_table,
)

__all__ = [
    "gate_files",
    "BatchResult",
    "wide_table",
    "compensation_option",
    "ERROR_COLUMNS",
    "BASE_COLUMNS",
]


def compensation_option(compensation) -> tuple[Any, dict[str, Any]]:
    """The compensation override of a batch: what the engine applies, and how run.json records it.

    Parameters
    ----------
    compensation
        ``None`` or ``'template'`` (the template's own), ``'keyword'``, ``'none'``, ``'FCS'``, a
        spillover matrix CSV path, or a DataFrame (see :func:`gate_files`); parsed by
        :class:`cytophen.compensation.Compensation`, whose ``from_record`` reads run.json's
        ``options.compensation`` back into the same override.

    Returns
    -------
    override, description
        The ``compensation=`` argument of :func:`cytophen.engine.gate`, and the run.json entries
        (``compensation``, and ``compensation_sha256`` for a matrix file).

    Raises
    ------
    CompensationError
        An unknown word, a missing or unreadable matrix file.
    """
    choice = Compensation.parse(compensation, files=True, what="--compensation")
    return choice.override, choice.record()


def _reserved_columns(template) -> list[str]:
    cols = [*BASE_COLUMNS, *_TAIL_COLUMNS]
    for p in template.populations:
        cols += [f"percent_of_{a}" for a in p.report.percent_of]
        cols += [f"{s}_{m}" for s, m in p.report.statistics]
    return cols


def _versions(dask: bool) -> dict[str, str]:
    from importlib import metadata

    names = ["numpy", "pandas", "numba", "scipy", "pyarrow", "pyyaml", "click", "tqdm"]
    if dask:
        names += ["dask", "distributed"]
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[n] = None
    return out


def gate_files(
    paths,
    template,
    *,
    jobs: int | None = None,
    scheduler=None,
    compensation: str | pd.DataFrame | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    manifest: str | Path | None = None,
    export_gated: str | None = None,
    seed: int = 0,
    plots: bool = False,
    repairs: Iterable[str] | None = DEFAULT_REPAIRS,
    pregated: str | None = None,
    include_hidden: bool = False,
    wait: bool = False,
    time_limit: float | None = None,
    scale: str = "auto",
    markers: MarkerMap | str | os.PathLike | None = None,
    start_method: str = "forkserver",
    where: dict[str, str] | None = None,
) -> BatchResult:
    """Gate many FCS files with one template, in parallel.

    Parameters
    ----------
    paths
        A file, folder or manifest CSV, or a list of them (folders are searched recursively for
        ``*.fcs``/``*.lmd``; see :func:`cytophen.pipeline.inputs.discover`).
    template
        A :class:`~cytophen.template.Template` or a template file path. A FlowJo workspace (its
        path, or a :class:`~cytophen.interop.flowjo.Workspace`) gates each file with its own
        workspace sample's gates; files matching no sample are errors.csv rows (stage
        ``template``), samples without a file are listed in run.json.
    jobs
        Samples gated at a time (default: all cores): threads of this process, and for a long
        batch worker processes (see docs/batch.md). ``1`` gates one at a time in this process.
    scheduler
        ``None`` (this process and, for long batches, a local process pool), ``'local'`` (a dask.distributed LocalCluster of ``jobs``
        workers), a scheduler address such as ``'tcp://10.0.0.5:8786'``, or a ``distributed.Client``.
    compensation
        Override the template's compensation: ``'template'`` (default), ``'keyword'`` (the file's
        spillover keyword, an error for files without one), ``'none'`` (files already compensated),
        a spillover CSV path or a DataFrame.
    out
        Output folder (populations.csv/.parquet, populations_wide.csv, gates.json, errors.csv,
        run.json; finished samples are kept in ``out/.cytophen/samples``). ``None``: nothing written.
    resume
        Skip samples already finished in ``out`` with the same file content (BLAKE3), template hash and
        compensation (needs ``out``).
    progress
        Show a progress bar (a widget in notebooks, text on a terminal, nothing otherwise).
    manifest
        Manifest CSV giving sample ids and metadata (see docs/batch.md).
    export_gated
        Also write each sample's events in this population to ``out/gated/<sample>.fcs``.
    seed
        Seed of data-driven gates.
    plots
        Also draw each sample's gating plots in the workers, into ``out/plots/<sample>/``
        (:func:`cytophen.report.plots.save_sample_plots`; needs ``out``). A plot failure is
        recorded (``plots_error`` in run.json) and never fails the sample.
    repairs
        FCS repairs allowed while reading each file (:func:`cytophen.io.fcs.read_fcs`; default
        :data:`~cytophen.io.fcs.DEFAULT_REPAIRS`, ``()`` is strict).
    pregated
        The population every file was exported after (the files hold only its events): it and
        its ancestors are not gated (see :func:`cytophen.engine.gate`).
    include_hidden
        Also report the template's hidden (helper) populations in the tables and plots.
    wait
        When another run holds ``out``, wait for it to finish instead of raising
        :class:`~cytophen.pipeline.outdir.FolderInUseError`.
    time_limit
        Seconds one sample may take (reading, gating, plots); a sample that takes longer is
        stopped and becomes an ``errors.csv`` row (stage ``timeout``). Samples are then gated
        in worker processes (with ``jobs=1``, one), whatever the batch's length. ``None``: no
        limit.
    scale
        What the files' values are, for the template's ``auto`` transforms: ``'auto'``
        (detected per file), ``'linear'``, ``'logicle'`` or ``'channel'`` (see
        :func:`cytophen.engine.gate`).
    markers
        Marker names for channels whose ``$PnS`` is missing: a ``channel,marker[,file]`` CSV
        path or a :class:`~cytophen.markers.MarkerMap` (rows with ``file`` apply to that file only).
    start_method
        Where worker processes come from: ``'forkserver'`` (default: a fork server, never this
        process) or ``'fork'`` (forked straight from this process when it has no other thread
        yet; faster to start, but only for a process the caller owns from start to end, as the
        ``cytophen gate`` command does: forking a notebook's kernel would copy state that is
        not ours to copy).
    where
        Gate only the samples whose manifest metadata match: ``{"panel": "bcell"}`` keeps the
        rows whose ``panel`` column reads ``bcell`` (several columns: all must match). A column
        the manifest does not have, or a filter no sample matches, is an :class:`InputError`.

    Notes
    -----
    Data-driven gates with ``pool: <column>`` are fitted once per group of samples sharing a value
    of that manifest column, on their pooled events (deterministic: groups in sorted order, samples
    in input order, seeded), then every sample of the group is gated with the same fitted gate;
    gates.json marks them ``pooled`` with their group.

    One run at a time writes into ``out``: a run holds it from its start (after the arguments are
    checked) to its end, and its tables, plots and exported events replace the folder's earlier
    ones all at once when it finishes (see :mod:`cytophen.pipeline.outdir`); files a killed run
    left behind are removed by the next.

    Returns
    -------
    BatchResult
        ``.populations`` (tidy table), ``.errors``, ``.gates``, ``.n_ok``, ``.n_failed``, ``.wide``.

    Raises
    ------
    TemplateError, InputError, CompensationError
        Before anything is written: invalid template, missing inputs, duplicate sample ids, a bad
        manifest or matrix, an unknown ``export_gated`` or ``pregated`` population, ``resume``
        without ``out``, ``out`` in use by another run
        (:class:`~cytophen.pipeline.outdir.FolderInUseError`).

    Examples
    --------
    >>> res = cytophen.gate_files("samples/", "gating_templates/bcell.yaml", jobs=4)  # doctest: +SKIP
    >>> res.populations.query("population == 'switched_memory'")                      # doctest: +SKIP
    """
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fork = start_method == "fork"
    # file look-ups, done while samples are gated; when workers may be forked from this process,
    # started only once they are (no other thread may be alive at fork time)
    versions = None if fork else _Background(_versions, False)
    plan = _plan(
        paths, template, jobs=jobs, scheduler=scheduler, compensation=compensation, out=out,
        resume=resume, manifest=manifest, export_gated=export_gated, seed=seed, plots=plots,
        repairs=repairs, pregated=pregated, include_hidden=include_hidden, time_limit=time_limit,
        scale=scale, markers=markers, start_method=start_method, where=where,
    )  # fmt: skip
    timings = {"discover_s": time.perf_counter() - t_start}
    folder = plan.folder
    with folder.held(wait=wait, on_wait=_waiting(progress)) if folder else contextlib.nullcontext():
        if folder is not None:
            folder.clean()  # what a killed run left
        records = _resumed(plan) if resume else {}
        n_resumed = len(records)
        t_pool = time.perf_counter()
        tasks = _tasks(plan, records)
        timings["pool_fit_s"] = time.perf_counter() - t_pool
        runner = make_runner(
            plan.template,
            plan.options,
            jobs=jobs,
            scheduler=scheduler,
            n_tasks=len(tasks),
            time_limit=time_limit,
            start_method=start_method,
        )
        # one file: numba's thread pool only when jobs asks for it (by default, on a busy
        # machine, its threads spinning beside other work cost more than they save)
        if runner.kind == "inline" and len(tasks) == 1 and jobs:
            runner.options = dataclasses.replace(plan.options, threads=int(jobs))
        t_run = time.perf_counter()
        versions = _run(
            plan, runner, tasks, records, progress=progress, fork=fork, versions=versions
        )
        timings["gating_s"] = time.perf_counter() - t_run
        if runner.kind == "dask":
            versions_found = _versions(True)
        else:
            versions_found = versions.result() if versions is not None else _versions(False)
        result = _assemble(plan, records)
        result.run = _provenance(
            plan,
            records,
            runner=runner,
            versions=versions_found,
            started=started,
            counts={"resumed": n_resumed, "computed": len(tasks)},
            timings=timings,
        )
        if folder is not None:
            _write(plan, result, records, t_start)
        else:
            _finish(result.run, t_start)
        return result


@dataclass
class _Plan:
    """A batch as checked before anything is written: its samples, template and options."""

    template: Any
    samples: list[SampleInput]
    meta_cols: list[str]
    out_dir: Path | None
    folder: OutputFolder | None
    #: the worker options every sample is gated with
    options: WorkerOptions
    #: what run.json records of the arguments (``options``) and of the template (``template``)
    described: dict[str, Any]
    template_info: dict[str, Any]
    #: what a stored sample must have been gated with to be resumed (see :meth:`options_key`)
    key: dict[str, Any]
    pool_col: str | None = None
    groups: dict[str, str] = field(default_factory=dict)
    #: a FlowJo workspace's batch: per safe_id the file's own template, or why it has none
    own: dict[str, Any] = field(default_factory=dict)

    def options_key(self, s: SampleInput) -> dict[str, Any]:
        """The options key of sample ``s``: the batch's, with the file's own template hash or
        its pool group (a pooled sample is reused only if its group is unchanged)."""
        own = self.own.get(s.safe_id)
        if own is not None and not isinstance(own, str):
            return {**self.key, "template_hash": own.hash}
        if self.pool_col is None:
            return self.key
        g = self.groups[s.safe_id]
        members = sorted(str(x.path) for x in self.samples if self.groups[x.safe_id] == g)
        return {**self.key, "pool": {"column": self.pool_col, "group": g, "members": members}}


def _plan(
    paths,
    template,
    *,
    jobs,
    scheduler,
    compensation,
    out,
    resume,
    manifest,
    export_gated,
    seed,
    plots,
    repairs,
    pregated,
    include_hidden,
    time_limit,
    scale,
    markers,
    start_method,
    where=None,
) -> _Plan:
    """Check every argument and find the samples, before anything is written (see
    :func:`gate_files`, Raises)."""
    if not hasattr(template, "populations"):
        from cytophen.interop import load_batch_template

        template = load_batch_template(template)
    # a FlowJo workspace: each file is gated with its own workspace sample's gates
    per_file = template if hasattr(template, "templates_for") else None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths or [])
    out_dir = Path(out).resolve() if out is not None else None
    markers = _check_arguments(
        template, out_dir, resume=resume, export_gated=export_gated, markers=markers, scale=scale,
        pregated=pregated, plots=plots, time_limit=time_limit, scheduler=scheduler,
        start_method=start_method,
    )  # fmt: skip
    comp_override, comp_desc = compensation_option(compensation)
    samples, meta_cols = discover(
        paths, manifest=manifest, exclude=out_dir, reserved_columns=_reserved_columns(template)
    )
    if where:
        samples = select_samples(samples, meta_cols, where)
    from cytophen.pipeline.pooling import pool_column, pool_groups

    pool_col = pool_column(template)
    groups = pool_groups(samples, pool_col, manifest) if pool_col is not None else {}
    own: dict[str, Any] = {}
    per_file_info: dict[str, Any] = {}
    if per_file is not None:
        found, per_file_info = per_file.templates_for([s.path for s in samples])
        own = {s.safe_id: t for s, t in zip(samples, found)}

    folder = OutputFolder(out_dir) if out_dir is not None else None
    options = WorkerOptions(
        compensation=comp_override,
        seed=seed,
        export_gated=export_gated,
        export_dir=str(folder.gated_dir) if folder is not None else None,
        threads=1,  # parallel across files, one numba thread per sample
        plots=bool(plots),
        plots_dir=str(folder.plots_dir) if folder is not None else None,
        repairs=repairs,
        pregated=pregated,
        include_hidden=bool(include_hidden),
        scale=scale,
        markers=markers,
    )
    tmpl_hash = template.hash
    repairs_desc = _repairs_option(repairs)
    key = _resume_key(options, tmpl_hash, comp_desc, repairs_desc)
    described = {
        "jobs": jobs,
        "resume": bool(resume),
        "manifest": str(Path(manifest).resolve()) if manifest is not None else None,
        "export_gated": export_gated,
        "plots": bool(plots),
        "seed": seed,
        "pool": pool_col,
        "repairs": repairs_desc,
        "pregated": pregated,
        "include_hidden": bool(include_hidden),
        "scale": scale,
        "where": dict(where) if where else None,
        "markers": None
        if markers is None
        else {"source": markers.source, "rows": [list(r) for r in markers.rows]},
        **comp_desc,
    }
    template_info = {
        "name": template.name,
        "version": template.version,
        "hash": tmpl_hash,
        "source": str(template.source) if template.source else None,
        **per_file_info,
    }
    return _Plan(
        template, samples, meta_cols, out_dir, folder, options, described, template_info, key,
        pool_col, groups, own,
    )  # fmt: skip


def _check_arguments(
    template,
    out_dir: Path | None,
    *,
    resume,
    export_gated,
    markers,
    scale,
    pregated,
    plots,
    time_limit,
    scheduler,
    start_method,
):
    """Raise for an argument of :func:`gate_files` that cannot be used (before anything is
    written); return ``markers`` read (a CSV path becomes a :class:`MarkerMap`)."""
    if resume and out_dir is None:
        raise InputError("resume needs an output folder (out=...)")
    if export_gated is not None:
        if export_gated not in template.names:
            raise TemplateError(
                f"--export-gated {export_gated!r}: no such population; the template has: "
                f"{', '.join(template.names)}"
            )
        if out_dir is None:
            raise InputError("export_gated needs an output folder (out=...)")
    if isinstance(markers, (str, os.PathLike)):  # a bad CSV: MarkerError, nothing written
        markers = read_marker_csv(markers)
    from cytophen.scaling import SCALES

    if scale not in SCALES:
        raise InputError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if pregated is not None:  # an unknown population: TemplateError, nothing written
        from cytophen.engine import check_population

        check_population(template, pregated, "pregated")
    if plots and out_dir is None:
        raise InputError("plots needs an output folder (out=...)")
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")
    if time_limit is not None and scheduler is not None and scheduler != "":
        raise InputError("a per-sample time limit cannot be used with a Dask scheduler")
    if start_method not in START_METHODS:
        raise InputError(
            f"start_method must be one of {', '.join(START_METHODS)}, got {start_method!r}"
        )
    if scheduler is not None and scheduler != "":
        check_dask_installed()
    if isinstance(scheduler, str) and scheduler not in ("", "local"):
        check_reachable(scheduler)  # before the output folder is created
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir} exists and is not a folder")
    return markers


def _resume_key(options: WorkerOptions, tmpl_hash: str, comp_desc, repairs_desc) -> dict[str, Any]:
    """What a stored sample must have been gated with to be resumed: the template hash, seed
    and compensation, and the options that change a result when set (only then: stores of runs
    without them still resume)."""
    key = {"template_hash": tmpl_hash, "seed": options.seed, **comp_desc}
    if repairs_desc is not None:  # other repairs may read other events: not the same result
        key["repairs"] = repairs_desc
    if options.pregated is not None:
        key["pregated"] = options.pregated
    if options.include_hidden:
        key["include_hidden"] = True
    if options.scale != "auto":
        key["scale"] = options.scale
    if options.markers is not None:
        key["markers"] = [list(r[:3]) for r in options.markers.rows]
    return key


def _resumed(plan: _Plan) -> dict[str, SampleRecord]:
    """The samples of ``plan`` finished in its output folder by an earlier run and reusable."""
    store = SampleStore(plan.out_dir)
    return _finished(
        plan.samples,
        store,
        plan.options_key,
        plan.options.export_gated,
        plan.folder,
        plots=plan.options.plots,
    )


def _tasks(plan: _Plan, records: dict[str, SampleRecord]) -> list[SampleTask]:
    """What is left to gate (samples not in ``records``); a sample without a template of its
    own goes straight into ``records`` as failed. Pooled gates are fitted here, once per group."""
    tasks = []
    todo = []
    for s in plan.samples:
        if s.safe_id in records:
            continue
        own = plan.own.get(s.safe_id)
        if isinstance(own, str):  # a workspace batch: no template for this file, and why
            records[s.safe_id] = SampleRecord(
                s.sample, str(s.path), s.safe_id, stage="template", message=own
            )
            continue
        todo.append(s)
        tasks.append(SampleTask(s.sample, str(s.path), s.safe_id, template=own))
    if plan.pool_col is None or not tasks:
        return tasks
    from cytophen.pipeline.pooling import fit_batch_pools

    need = {plan.groups[s.safe_id] for s in todo}
    pooled = fit_batch_pools(
        [s for s in plan.samples if plan.groups[s.safe_id] in need],
        plan.groups,
        plan.template,
        seed=plan.options.seed,
        compensation=plan.options.compensation,
        repairs=plan.options.repairs,
        pregated=plan.options.pregated,
        column=plan.pool_col,
    )
    return [
        dataclasses.replace(task, pool=pooled[plan.groups[s.safe_id]])
        for s, task in zip(todo, tasks)
    ]


def _run(plan: _Plan, runner, tasks, records, *, progress: bool, fork: bool, versions):
    """Gate ``tasks`` on ``runner``, each finished sample into ``records`` (and, when ok, into
    the output folder's store at once: what ``--resume`` finds after a kill). Returns the
    ``versions`` look-up, started once no thread can get in the way of forked workers."""
    store = SampleStore(plan.out_dir) if plan.out_dir is not None else None
    by_safe = {s.safe_id: s for s in plan.samples}
    with runner:  # connects to / starts the workers
        if store is not None:
            store.create()
        bar = _progress_bar(len(plan.samples), progress, monitor=not fork)
        bar.update(len(records))
        try:
            for task, rec in runner.run(tasks):
                if versions is None and (
                    runner.forked_workers or runner.kind != "processes"
                ):  # no thread may be started before the workers are forked
                    versions = _Background(_versions, False)
                if rec.ok:
                    rec.options = plan.options_key(by_safe[task.safe_id])
                    rec.export_gated = plan.options.export_gated
                    if store is not None:
                        store.save(task.safe_id, rec.to_store(), rec.table)
                    if rec.plots_error and not bar.disable:
                        bar.write(
                            f"plots failed: {printable(rec.sample)} ({printable(rec.plots_error)})",
                            file=sys.stderr,
                        )
                elif not bar.disable:
                    bar.write(f"failed: {printable(rec.sample)} ({rec.stage})", file=sys.stderr)
                records[task.safe_id] = rec
                bar.update(1)
        finally:
            bar.close()
    return versions


def _assemble(plan: _Plan, records: dict[str, SampleRecord]) -> BatchResult:
    """The batch's tables from its samples' records, in input order (``run`` filled in later)."""
    parts = []
    gates: dict[str, dict[str, Any]] = {}
    errors = []
    for s in plan.samples:
        rec = records[s.safe_id]
        if not rec.ok:
            errors.append(
                {
                    "sample": s.sample,
                    "file": str(s.path),
                    "stage": rec.stage,
                    "message": rec.message,
                }
            )
            continue
        table = rec.table
        if plan.meta_cols:
            table = table.assign(**{c: s.metadata.get(c) for c in plan.meta_cols})
        parts.append(table)
        gates[s.sample] = rec.gates
    populations = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=BASE_COLUMNS)
    )
    errors_df = pd.DataFrame(errors, columns=ERROR_COLUMNS)
    n_ok = len(plan.samples) - len(errors)
    return BatchResult(
        populations, errors_df, gates, n_ok, len(errors), {"metadata_columns": plan.meta_cols},
        plan.out_dir,
    )  # fmt: skip


def _provenance(plan: _Plan, records, *, runner, versions, started, counts, timings):
    """What run.json says of a batch (``finished`` and the write and total times are set as it
    is written)."""
    n_ok = sum(1 for r in records.values() if r.ok)
    return {
        "cytophen": __version__,
        "versions": versions,
        "platform": platform.platform(),
        "started": started,
        "finished": None,
        "command": list(sys.argv) if plan.out_dir is not None else None,
        "template": plan.template_info,
        "options": {**plan.described, **runner.describe()},
        "metadata_columns": plan.meta_cols,
        "counts": {
            "total": len(plan.samples),
            "ok": n_ok,
            "failed": len(plan.samples) - n_ok,
            **counts,
        },
        "inputs": [records[s.safe_id].run_entry() for s in plan.samples],
        "timings": timings,
    }


def _finish(run: dict[str, Any], t_start: float) -> None:
    run["timings"]["total_s"] = time.perf_counter() - t_start
    run["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(plan: _Plan, result: BatchResult, records, t_start: float) -> None:
    """Write the batch's tables and run.json into a new generation of the output folder and
    publish it with the samples' plots and exported events (all at once)."""
    t_write = time.perf_counter()
    run = result.run
    gates_doc = {
        "template": plan.template.name,
        "template_hash": plan.template_info["hash"],
        "samples": result.gates,
    }

    def write(gen: Path) -> None:
        _write_all(
            [
                (write_csv, gen / "populations.csv", result.populations),
                (write_parquet, gen / "populations.parquet", result.populations),
                (write_csv, gen / "populations_wide.csv", result.wide),
                (write_json, gen / "gates.json", gates_doc),
                (write_csv, gen / "errors.csv", result.errors),
            ]
        )
        run["timings"]["write_s"] = time.perf_counter() - t_write
        _finish(run, t_start)
        write_json(gen / "run.json", run)

    ok_ids = [s.safe_id for s in plan.samples if records[s.safe_id].ok]
    plan.folder.publish(
        write,
        samples=ok_ids,
        plots=plan.options.plots,
        gated=plan.options.export_gated is not None,
    )


def _repairs_option(repairs) -> list[str] | None:
    """The FCS repairs of a run as recorded (sorted names), ``None`` for the default ones."""
    from cytophen.io.fcs import check_repairs

    chosen = check_repairs(repairs)
    return None if chosen == DEFAULT_REPAIRS else sorted(chosen)


def _write_all(writes) -> None:
    """Run ``writer(path, data)`` for each of ``writes`` on threads: each file is still written
    atomically and fsynced, but the fsyncs (most of the time of small files) overlap."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(writes), thread_name_prefix="cytophen-write") as ex:
        futures = [ex.submit(writer, path, data) for writer, path, data in writes]
    for fut in futures:
        fut.result()  # the first error, if any, as if written one after the other


def _finished(
    samples: list[SampleInput],
    store: SampleStore,
    opts_key,
    export_gated,
    folder: OutputFolder,
    *,
    plots: bool = False,
) -> dict[str, SampleRecord]:
    """Samples whose stored result can be reused: same file content, template hash and options."""
    from concurrent.futures import ThreadPoolExecutor

    from cytophen.pipeline.worker import file_blake3, file_sha256

    candidates = []
    for s in samples:
        rec = store.record(s.safe_id)
        if rec is None or rec.get("status") != "ok" or rec.get("options") != opts_key(s):
            continue
        if rec.get("sample") != s.sample or rec.get("export_gated") != export_gated:
            continue
        if export_gated and not (folder.gated_dir / f"{s.safe_id}.fcs").is_file():
            continue
        if plots and not (folder.plots_dir / s.safe_id / "plots.json").is_file():
            continue
        candidates.append((s, rec))

    def check(item):
        s, rec = item
        try:
            if "blake3" in rec:
                return item if file_blake3(s.path) == rec["blake3"] else None
            # a store written by a version that hashed inputs with SHA-256
            if rec.get("sha256") is None or file_sha256(s.path) != rec["sha256"]:
                return None
            rec["blake3"] = file_blake3(s.path)
            return item
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing releases the GIL
        hits = [x for x in pool.map(check, candidates) if x is not None]
    done = {}
    for s, rec in hits:
        try:  # a table damaged by a machine crash is recomputed, not trusted
            table = store.table(s.safe_id, record=rec)
        except Exception:  # noqa: BLE001 - damage can fail the decoder in any way: recompute
            continue
        done[s.safe_id] = SampleRecord.from_store(rec, file=str(s.path), table=table)
    return done
