"""`cytophen report`: a self-contained HTML report of a results folder."""

from __future__ import annotations

from pathlib import Path

import click

from cytophen.cli._common import Invalid, check_out_dir, check_out_file, out_option, quiet_option
from cytophen.errors import CytophenError


@click.command(name="report")
@click.argument("results", type=click.Path(path_type=Path))
@out_option(
    metavar="FILE.html",
    help="HTML file to write (default RESULTS/report.html; images are linked relative to it).",
)
@click.option(
    "--stats",
    "stats_dir",
    type=click.Path(path_type=Path),
    help="Folder of longitudinal plots (the --out of 'cytophen stats'); default RESULTS/stats if present.",
)
@click.option(
    "--embed/--no-embed",
    default=None,
    help="Inline every image (one portable file) or link them as files of RESULTS; default: embed "
    "unless there are more than 1500 plots.",
)
@click.option(
    "--low-count",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Flag populations with fewer events than this (Poisson CV 1/sqrt(n) > 10 % below 100).",
)
@click.option("--title", help="Page title (default from the template name).")
@click.option(
    "--replot/--no-replot",
    default=None,
    help="Make missing gating plots by re-reading and re-gating the FCS files listed in RESULTS "
    "(with the FCS repairs the run used). Default: when plots are missing and the run's template "
    "file is at hand (a problem is noted on the page); --replot: a problem is an error.",
)
@click.option(
    "--template",
    "template_path",
    type=click.Path(path_type=Path),
    help="Template for --replot (default: the run's template file from run.json).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes for --replot (default all cores).",
)
@quiet_option
def report(results, out, stats_dir, embed, low_count, title, replot, template_path, jobs, quiet):
    """Write a self-contained HTML report of a RESULTS folder (from 'cytophen gate --out').

    Run summary, data-driven gates that fell back, failures, populations with too few events or
    not measured, a sortable populations table, every plot across samples side by side, each
    sample's gating tree and plots (which open at full size), and the longitudinal plots of a
    stats folder. One file with its images embedded: it opens offline, copied anywhere. Plots a
    run made without --plots are drawn by re-gating its files.
    """
    from cytophen.report.html import write_report

    if out is not None:
        check_out_file(out)
    else:
        check_out_file(results / "report.html", option="report (or choose --out)")
    if replot and results.is_dir():
        check_out_dir(results / "plots", option="--replot: RESULTS/plots")
    if replot is None and template_path is None and results.is_dir():
        try:  # default: re-plot only where the plots can be written
            check_out_dir(results / "plots", option="RESULTS/plots")
        except Invalid:
            replot = False
    try:
        path = write_report(
            results,
            out=out,
            stats_dir=stats_dir,
            embed=embed,
            low_count=low_count,
            title=title,
            replot=replot,
            template=template_path,
            jobs=jobs,
        )
    except CytophenError as exc:
        raise Invalid(str(exc)) from None
    if not quiet:
        click.echo(f"wrote {path}")
    return 0
