"""``cytophen compensation``: show a file's spillover matrix, or compute one from controls.

- ``cytophen compensation show FILE.fcs [-o OUT.csv]``
- ``cytophen compensation compute --controls DIR --unstained F --match match.csv -o spill.csv``
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from cytophen.cli._common import (
    Invalid,
    check_out_file,
    out_option,
    quiet_option,
    repairs_option,
)
from cytophen.errors import CytophenError


def _fail(exc: Exception) -> click.ClickException:
    return Invalid(str(exc))


def _format(df) -> str:
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", 60):
        return df.to_string(float_format=lambda v: f"{v:.4f}")


@click.group("compensation")
def compensation() -> None:
    """Show or compute spillover matrices."""


@compensation.command("show")
@click.argument("fcs_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--dataset", type=int, default=0, show_default=True, help="Data set of the file (0 = first)."
)
@click.option(
    "-o",
    "--out",
    "--csv",
    "csv_out",
    metavar="FILE.csv",
    type=click.Path(),
    help="Also write the matrix as CSV (--csv is the old name).",
)
@repairs_option
@quiet_option
def show(fcs_file: str, dataset: int, csv_out: str | None, repairs, quiet: bool) -> None:
    """Print the spillover matrix stored in FCS_FILE ($SPILLOVER / SPILL / $SPILL / $COMP)."""
    from cytophen.compensation import is_identity, write_spillover_csv
    from cytophen.io.fcs import find_spillover, read_fcs

    if csv_out:
        check_out_file(csv_out)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sample = read_fcs(fcs_file, dataset=dataset, repairs=repairs)
            key, spill = find_spillover(sample.keywords, path=fcs_file, channels=sample.channels)
    except CytophenError as exc:
        raise _fail(exc) from None
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    if spill is None:
        click.echo(f"{fcs_file}: no spillover keyword ($SPILLOVER, SPILL, $SPILL, $COMP)", err=quiet)
        return
    if not quiet:
        n = spill.shape[0]
        note = " (identity: no compensation)" if is_identity(spill) else ""
        click.echo(f"{fcs_file}: {key}, {n} x {n}{note}")
        click.echo(_format(spill))
    if csv_out:
        Path(csv_out).parent.mkdir(parents=True, exist_ok=True)
        write_spillover_csv(spill, csv_out)
        if not quiet:
            click.echo(f"wrote {csv_out}")


@compensation.command("compute")
@click.option(
    "--controls",
    "controls_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of single-stain control FCS files.",
)
@click.option(
    "--unstained",
    required=True,
    type=click.Path(),
    help="Unstained control FCS file (a path, or a file name inside --controls).",
)
@click.option(
    "--match",
    "match_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV 'file,channel': the primary detector of each control ('unstained' rows ignored).",
)
@out_option(required=True, metavar="FILE.csv", help="Output CSV.", dest="out_csv")
@click.option(
    "--method", type=click.Choice(["median", "mean"]), default="median", show_default=True
)
@click.option(
    "--positive-quantile",
    type=float,
    default=None,
    help="Use only control events above this quantile of the unstained control in the "
    "primary detector (e.g. 0.995); default: all events (flowCore).",
)
@click.option(
    "--detectors",
    default=None,
    help="Comma-separated detectors of the result (identity rows for those without a "
    "control); default: the matched detectors.",
)
@repairs_option
@quiet_option
def compute(
    controls_dir: str,
    unstained: str,
    match_csv: str,
    out_csv: str,
    method: str,
    positive_quantile: float | None,
    detectors: str | None,
    repairs,
    quiet: bool,
) -> None:
    """Estimate a spillover matrix from single-stain controls and an unstained control."""
    from cytophen.compensation import compute_spillover, read_channel_match, write_spillover_csv
    from cytophen.io.fcs import read_fcs

    check_out_file(out_csv)
    folder = Path(controls_dir)
    un_path = Path(unstained)
    if not un_path.exists() and (folder / unstained).exists():
        un_path = folder / unstained
    if not un_path.exists():
        raise click.ClickException(
            f"unstained control {unstained} not found (also looked in {folder})"
        )
    try:
        match = read_channel_match(match_csv)
        controls = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, chan in match.items():
                if chan == "unstained":
                    continue
                path = folder / name
                if not path.exists():
                    raise click.ClickException(
                        f"{match_csv}: control {name!r} is not in {folder} "
                        f"(it has: {', '.join(sorted(p.name for p in folder.iterdir()))})"
                    )
                controls[name] = read_fcs(path, repairs=repairs)
            un = read_fcs(un_path, repairs=repairs)
        spill = compute_spillover(
            controls,
            un,
            {k: v for k, v in match.items()},
            method=method,
            positive_quantile=positive_quantile,
            detectors=[d.strip() for d in detectors.split(",")] if detectors else None,
        )
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        write_spillover_csv(spill, out_csv)
    except CytophenError as exc:
        raise _fail(exc) from None
    if not quiet:
        click.echo(_format(spill))
        click.echo(f"wrote {out_csv} ({spill.shape[0]} x {spill.shape[1]}, method={method})")
