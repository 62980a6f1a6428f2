"""``cytophen info FILE.fcs``: what is in an FCS file (version, events, data sets, channels, spillover)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from cytophen.cli._common import repairs_option

KEY_KEYWORDS = (
    "$CYT",
    "$CYTSN",
    "$DATE",
    "$BTIM",
    "$ETIM",
    "$FIL",
    "$SRC",
    "$SYS",
    "$OP",
    "$INST",
    "$TIMESTEP",
    "$DATATYPE",
    "$BYTEORD",
)


def describe_fcs(path: str | Path, *, dataset: int = 0, repairs=None) -> dict:
    """A JSON-ready summary of one data set of an FCS file.

    Parameters
    ----------
    path
        The FCS file.
    dataset
        Which data set (0 = first).
    repairs
        FCS repairs allowed (default: :data:`cytophen.io.fcs.DEFAULT_REPAIRS`).

    Returns
    -------
    dict
        ``file, version, dataset, n_datasets, events, channels`` (list of ``{index, name,
        marker, bits, range}``), ``spillover`` (``None`` or ``{keyword, size, channels}``),
        ``keywords`` (the key keywords present), ``warnings`` (repairs applied while reading).

    Raises
    ------
    cytophen.errors.FCSError
        When the file cannot be read.
    """
    from cytophen.io.fcs import DEFAULT_REPAIRS, find_spillover, read_fcs, read_fcs_datasets

    repairs = DEFAULT_REPAIRS if repairs is None else repairs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datasets = read_fcs_datasets(path, repairs=repairs)
        sample = read_fcs(path, dataset=dataset, repairs=repairs)
        spill_key, spill = find_spillover(sample.keywords, path=path, channels=sample.channels)
    channels = []
    for i, (name, marker) in enumerate(zip(sample.channels, sample.markers)):
        n = i + 1
        channels.append(
            {
                "index": n,
                "name": name,
                "marker": marker,
                "bits": sample.keyword(f"$P{n}B"),
                "range": sample.keyword(f"$P{n}R"),
            }
        )
    keywords = {}
    for key in KEY_KEYWORDS:
        value = sample.keyword(key)
        if value is not None and value.strip():
            keywords[key] = value.strip()
    seen: list[str] = []
    for w in caught:
        msg = str(w.message)
        if msg not in seen:
            seen.append(msg)
    return {
        "file": str(path),
        "version": datasets[dataset].version if dataset < len(datasets) else None,
        "dataset": dataset,
        "n_datasets": len(datasets),
        "events": sample.n_events,
        "n_channels": len(sample.channels),
        "dtype": str(sample.events.dtype),
        "channels": channels,
        "spillover": None
        if spill is None
        else {"keyword": spill_key, "size": int(spill.shape[0]), "channels": list(spill.columns)},
        "keywords": keywords,
        "warnings": seen,
    }


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


@click.command(name="info")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dataset", type=int, default=0, show_default=True, help="Data set to describe (0 = first)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@repairs_option
def info(file: Path, dataset: int, as_json: bool, repairs) -> None:
    """Describe an FCS file: version, events, data sets, channels and markers, spillover, keywords."""
    from cytophen.errors import CytophenError

    try:
        d = describe_fcs(file, dataset=dataset, repairs=repairs)
    except CytophenError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"file:       {d['file']}")
    click.echo(f"version:    {d['version']}")
    n = d["n_datasets"]
    shown = f" (showing {d['dataset']})" if n > 1 else ""  # --dataset 0..n-1 chooses
    click.echo(f"data sets:  {n}{shown}")
    click.echo(f"events:     {d['events']}")
    click.echo(f"channels:   {d['n_channels']} (events stored as {d['dtype']})")
    sp = d["spillover"]
    click.echo(
        "spillover:  "
        + ("none" if sp is None else f"{sp['size']}x{sp['size']} from {sp['keyword']}")
    )
    for key, value in d["keywords"].items():
        click.echo(f"{key + ':':<11} {value}")
    click.echo("")
    rows = [
        [c["index"], c["name"], c["marker"], c["bits"] or "", c["range"] or ""]
        for c in d["channels"]
    ]
    click.echo(_table(rows, ["#", "channel ($PnN)", "marker ($PnS)", "bits", "range"]))
    for w in d["warnings"]:
        click.echo(f"warning: {w}", err=True)
