"""``cytophen gate``: gate a batch of FCS files with a template (a thin layer over
:func:`cytophen.pipeline.batch.gate_files`).

Without ``--out`` the results go to a new folder in the working directory named after the
template (``bcell_results/``, then ``bcell_results_2/`` ...): an earlier run is never overwritten,
and the command says where it wrote.

Exit codes: 0 every sample gated; 1 some samples failed (each in OUT/errors.csv, the others
complete); 2 bad invocation or invalid template (checked before anything is written).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from cytophen.cli._common import Invalid as _Invalid
from cytophen.cli._common import check_out_dir, out_option, quiet_option, repairs_option

__all__ = ["gate"]


@click.command(name="gate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "-t",
    "--template",
    "template_path",
    default=None,
    metavar="T",
    help="Gating template: a shipped one by name (bcell, treg: see 'cytophen templates'), or "
    "a file: cytophen YAML, GatingML 2.0 XML or FlowJo .wsp. A file that exists wins.",
)
@click.option(
    "--template-from",
    "template_column",
    default=None,
    metavar="COLUMN",
    help="A whole study in one run: each manifest row is gated with the template its COLUMN "
    "names (e.g. panel: bcell, treg), each template's results in DIR/<value>/.",
)
@click.option(
    "--where",
    "where_items",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Only the manifest rows whose COLUMN reads VALUE (repeat: all must match).",
)
@out_option(
    metavar="DIR",
    help="Output folder (created if needed; default: a new TEMPLATE_results folder in the "
    "working directory, never an earlier run's).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Samples gated at a time, in worker processes forked from this one (Linux; threads "
    "elsewhere) "
    "(default: all cores; 1 = one at a time in this process).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip samples already finished in DIR with the same file content and template.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="M.csv",
    help="CSV with a 'file' column, optional 'sample' and metadata columns.",
)
@click.option(
    "--compensation",
    default=None,
    metavar="template|keyword|none|FILE.csv",
    help="Override the template's compensation source.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="local|tcp://host:port",
    help="Run on dask.distributed: a new local cluster or an existing scheduler.",
)
@quiet_option
@click.option(
    "--report",
    "make_report",
    is_flag=True,
    help="Also draw the gating plots and write the HTML report DIR/report.html.",
)
@click.option(
    "--plots",
    "make_plots",
    is_flag=True,
    help="Also draw each sample's gating plots into DIR/plots/<sample>/ (implied by --report).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of data-driven gates.")
@click.option(
    "--export-gated",
    default=None,
    metavar="POP",
    help="Also write each sample's events in population POP to DIR/gated/<sample>.fcs.",
)
@click.option(
    "--group",
    default=None,
    metavar="NAME",
    help="With a FlowJo workspace template: only this group's samples.",
)
@click.option(
    "--flowjo",
    "flowjo_out",
    is_flag=True,
    help="Also write DIR/cytophen.wsp: the gates as placed on each sample, as a FlowJo 10 "
    "workspace.",
)
@click.option(
    "--pregated",
    default=None,
    metavar="POP",
    help="The files hold only population POP's events (exported after that gate): POP and its "
    "ancestors are not gated, its descendants are.",
)
@click.option(
    "--all-populations",
    "all_populations",
    is_flag=True,
    help="Also report the template's hidden (helper) populations in the tables and plots.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="If another run is writing into DIR, wait for it to finish (default: exit 2 at once).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop a sample that takes longer than this (an errors.csv row, stage 'timeout').",
)
@click.option(
    "--scale",
    type=click.Choice(["auto", "linear", "logicle", "channel"]),
    default="auto",
    show_default=True,
    help="What the files' values are, for the template's 'auto' transforms: detected, or linear "
    "(raw/compensated), logicle (already transformed, 0-4.5) or channel (FlowJo's 0-4096).",
)
@click.option(
    "--markers",
    "markers_csv",
    default=None,
    metavar="M.csv",
    type=click.Path(dir_okay=False),
    help="Marker names for channels without $PnS: a CSV with columns channel,marker (and an "
    "optional file column to limit a row to one file).",
)
@repairs_option
@click.pass_context
def gate(ctx, paths, template_path, template_column, where_items, out, jobs, resume, manifest,
         compensation, scheduler, quiet, make_report, make_plots, seed, export_gated, group,
         flowjo_out, pregated, all_populations, wait, time_limit, scale, markers_csv,
         repairs):  # fmt: skip
    """Gate FCS files (PATHS: files, folders searched recursively for *.fcs/*.lmd, or manifest
    CSVs) with a template; write populations.csv/.parquet, populations_wide.csv, gates.json,
    errors.csv and run.json into DIR.

    \b
    Examples:
      cytophen gate samples/ --template bcell.yaml
      cytophen gate samples/ --template my_lab_bcell.yaml --out results/bcell
      cytophen gate study/manifest.csv --template-from panel --out results
      cytophen gate study/manifest.csv --template treg --where panel=treg
    """
    from cytophen.pipeline._fast_start import speed_up_start

    t0 = time.perf_counter()
    speed_up_start()  # this process is ours from start to end
    if not paths and manifest is None:
        raise _Invalid("no inputs: give FCS files, folders or a manifest CSV (--manifest)")
    if (template_path is None) == (template_column is None):
        raise _Invalid("give one of --template T or --template-from COLUMN")
    where = _where(where_items)
    if out is not None:
        check_out_dir(out)
    elif resume:
        raise _Invalid("--resume needs --out DIR: the folder of the run to finish")
    opts = dict(
        jobs=jobs, scheduler=scheduler, compensation=compensation, resume=resume,
        progress=not quiet, manifest=manifest, export_gated=export_gated, seed=seed,
        plots=make_plots or make_report, repairs=repairs, pregated=pregated,
        include_hidden=all_populations, wait=wait, time_limit=time_limit, scale=scale,
        markers=markers_csv,
    )  # fmt: skip
    if template_column is None:
        template = _load(template_path, group)
        if out is None:
            out = check_out_dir(
                _new_folder(template.name), option="output folder (or choose --out)"
            )
        res = _gate_one(list(paths), template, out, where, opts, quiet, flowjo_out, make_report)
        ctx.exit(0 if res.n_failed == 0 else 1)
    # a study: one run per template its manifest names, each into its own folder
    if out is None:
        out = check_out_dir(_new_folder("study"), option="output folder (or choose --out)")
    values = _column_values(list(paths), manifest, template_column, where, exclude=out)
    # every template checked before anything is gated
    templates = {v: _load(v, group, f"--template-from {template_column} = {v!r}: ") for v in values}
    failed = 0
    for value, template in templates.items():
        sub = check_out_dir(Path(out) / _folder_name(value))
        res = _gate_one(
            list(paths), template, sub, {**where, template_column: value}, opts, quiet,
            flowjo_out, make_report,
        )  # fmt: skip
        failed += res.n_failed
    if not quiet:
        click.echo(
            f"study: {len(templates)} template(s) by '{template_column}' in "
            f"{time.perf_counter() - t0:.1f} s -> {out}",
            err=True,
        )
    ctx.exit(0 if failed == 0 else 1)


def _where(items) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise _Invalid(f"--where {item!r}: expected COLUMN=VALUE, e.g. panel=bcell")
        out[col.strip()] = value.strip()
    return out


def _load(template_path: str, group, context: str = ""):
    from cytophen.errors import CytophenError
    from cytophen.interop import load_batch_template

    try:
        # a FlowJo workspace gates each file with its own sample's gates
        return load_batch_template(template_path, group=group)
    except CytophenError as exc:
        raise _Invalid(f"{context}{exc}") from None


def _column_values(paths, manifest, column: str, where: dict[str, str], exclude) -> list[str]:
    """The values of manifest ``column`` among the inputs (after ``where``), in first-seen order
    (``exclude``: the output folder, never searched for inputs, as the batch does)."""
    from cytophen.errors import CytophenError
    from cytophen.pipeline.inputs import discover, select_samples

    try:
        samples, columns = discover(paths, manifest=manifest, exclude=Path(exclude).resolve())
        if column not in columns:
            have = ", ".join(columns) or "none: give a manifest"
            raise _Invalid(
                f"--template-from {column}: no column {column!r} in the manifest ({have})"
            )
        if where:
            samples = select_samples(samples, columns, where)
    except CytophenError as exc:
        raise _Invalid(str(exc)) from None
    values = list(dict.fromkeys(str(s.metadata.get(column, "")) for s in samples))
    if "" in values:
        raise _Invalid(f"--template-from {column}: some manifest rows leave {column!r} empty")
    return values


def _folder_name(value: str) -> str:
    """The results folder of the template a manifest value names (``bcell``, ``lab/treg.yaml``
    -> ``treg``)."""
    stem = Path(value).stem if Path(value).suffix else Path(value).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "template"


def _gate_one(paths, template, out, where, opts, quiet, flowjo_out, make_report):
    """Gate ``paths`` with ``template`` into ``out``; the batch result (exit 2 on bad input)."""
    from cytophen._terminal import printable
    from cytophen.errors import CytophenError
    from cytophen.pipeline.batch import gate_files

    t0 = time.perf_counter()
    if not quiet:
        click.echo(f"template: {_describe(template)}", err=True)
        click.echo(f"output:   {out}{'' if str(out).endswith('/') else '/'}", err=True)
    try:
        res = gate_files(
            paths,
            template,
            out=out,
            where=where or None,
            start_method="fork",  # this process is ours: its workers may be forked from it
            **opts,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: finished samples are kept in {out}/.cytophen/samples; "
            f"rerun with --resume --out {out} to finish the batch",
            err=True,
        )
        raise
    except CytophenError as exc:  # raised before anything was written
        raise _Invalid(printable(exc, lines=True)) from None

    if flowjo_out:
        _flowjo(res, template, quiet)
    if make_report:
        _report(res.out, quiet)
    if not quiet:
        counts = res.run["counts"]
        resumed = f", {counts['resumed']} resumed" if counts["resumed"] else ""
        click.echo(
            f"gated {res.n_ok} of {counts['total']} samples{resumed} in "
            f"{time.perf_counter() - t0:.1f} s -> {res.out}",
            err=True,
        )
        if res.n_failed:
            click.echo(f"{res.n_failed} failed (see {res.out / 'errors.csv'}):", err=True)
            for row in res.errors.head(10).itertuples(index=False):
                click.echo(
                    f"  {printable(row.sample)} [{row.stage}]: {printable(row.message)}", err=True
                )
            if res.n_failed > 10:
                click.echo(f"  ... and {res.n_failed - 10} more", err=True)
        no_file = res.run["template"].get("samples_without_file") or []
        if no_file:
            click.echo(
                f"{len(no_file)} workspace sample(s) have no file among the inputs (see run.json): "
                f"{', '.join(no_file[:5])}{' ...' if len(no_file) > 5 else ''}",
                err=True,
            )
        bad_plots = [i["sample"] for i in res.run["inputs"] if i.get("plots_error")]
        if bad_plots:
            click.echo(
                f"warning: plots failed for {len(bad_plots)} sample(s) (see run.json): "
                f"{printable(', '.join(bad_plots[:5]))}",
                err=True,
            )
    return res


def _flowjo(res, template, quiet: bool) -> None:
    from cytophen.errors import CytophenError
    from cytophen.interop.flowjo import write_workspace

    try:
        written = write_workspace(res, res.out / "cytophen.wsp", template=template)
    except CytophenError as exc:
        click.echo(f"warning: --flowjo: cytophen.wsp not written: {exc}", err=True)
        return
    import re
    from collections import Counter

    # the same note on many samples is said once, with how many
    notes = Counter(re.sub(r"^sample '[^']*': ", "", n) for n in written.notes)
    for note, n in list(notes.items())[:10]:
        on = f" (on {n} samples)" if n > 1 else ""
        click.echo(f"warning: --flowjo: {note}{on}", err=True)
    if len(notes) > 10:
        click.echo(f"warning: --flowjo: ... and {len(notes) - 10} more", err=True)
    if not quiet:
        click.echo(f"FlowJo workspace: {written.path}", err=True)


def _new_folder(template_name: str) -> Path:
    """``<template>_results`` in the working directory, or ``_2``, ``_3`` ... after it: the first
    name no earlier run has taken."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(template_name)).strip("._") or "cytophen"
    base = f"{stem}_results"
    path, n = Path(base), 1
    while path.exists() or path.is_symlink():
        n += 1
        path = Path(f"{base}_{n}")
    return path


def _describe(template) -> str:
    from cytophen.interop.shipped import shipped_dir

    source = Path(template.source) if template.source else None
    where = ""
    if source is not None:
        shipped = source.resolve().parent == shipped_dir().resolve()
        where = " (shipped with cytophen)" if shipped else f" ({source})"
    return f"{template.name} {template.version}{where}"


def _report(out, quiet: bool) -> None:
    from cytophen.report.html import write_report

    try:
        path = write_report(out, replot=False)  # the workers drew the plots (or said why not)
    except Exception as exc:  # the tables are written; a report problem must not hide them
        click.echo(f"warning: --report failed: {type(exc).__name__}: {exc}", err=True)
        return
    if not quiet and path is not None:
        click.echo(f"report: {path}", err=True)
