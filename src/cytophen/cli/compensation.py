"""``cytophen compensation``: show a file's spillover matrix, or compute one from controls.

- ``cytophen compensation show FILE.fcs [--csv OUT.csv]``
- ``cytophen compensation compute --controls DIR --unstained F --match match.csv --out spill.csv``
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from cytophen.errors import CytophenError


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


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
    "--csv", "csv_out", type=click.Path(dir_okay=False), help="Also write the matrix as CSV."
)
def show(fcs_file: str, dataset: int, csv_out: str | None) -> None:
    """Print the spillover matrix stored in FCS_FILE ($SPILLOVER / SPILL / $SPILL / $COMP)."""
    from cytophen.compensation import is_identity, write_spillover_csv
    from cytophen.io.fcs import find_spillover, read_fcs

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sample = read_fcs(fcs_file, dataset=dataset)
            key, spill = find_spillover(sample.keywords, path=fcs_file, channels=sample.channels)
    except CytophenError as exc:
        raise _fail(exc) from None
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    if spill is None:
        click.echo(f"{fcs_file}: no spillover keyword ($SPILLOVER, SPILL, $SPILL, $COMP)")
        return
    n = spill.shape[0]
    note = " (identity: no compensation)" if is_identity(spill) else ""
    click.echo(f"{fcs_file}: {key}, {n} x {n}{note}")
    click.echo(_format(spill))
    if csv_out:
        write_spillover_csv(spill, csv_out)
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
@click.option(
    "--out", "out_csv", required=True, type=click.Path(dir_okay=False), help="Output CSV."
)
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
def compute(
    controls_dir: str,
    unstained: str,
    match_csv: str,
    out_csv: str,
    method: str,
    positive_quantile: float | None,
    detectors: str | None,
) -> None:
    """Estimate a spillover matrix from single-stain controls and an unstained control."""
    from cytophen.compensation import compute_spillover, read_channel_match, write_spillover_csv
    from cytophen.io.fcs import read_fcs

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
                controls[name] = read_fcs(path)
            un = read_fcs(un_path)
        spill = compute_spillover(
            controls,
            un,
            {k: v for k, v in match.items()},
            method=method,
            positive_quantile=positive_quantile,
            detectors=[d.strip() for d in detectors.split(",")] if detectors else None,
        )
        write_spillover_csv(spill, out_csv)
    except CytophenError as exc:
        raise _fail(exc) from None
    click.echo(_format(spill))
    click.echo(f"wrote {out_csv} ({spill.shape[0]} x {spill.shape[1]}, method={method})")
