"""A results folder read back: what ``cytophen gate --out DIR`` wrote (the current generation's
population table, run.json, gates.json, errors.csv, plots.json), and the longitudinal plots of
``cytophen stats`` beside it. The HTML report and replot both start here."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cytophen.errors import ReportError

__all__ = ["ResultsFolder", "load_results", "inside_folder"]

_IMAGE_EXT = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass
class ResultsFolder:
    """What a results folder holds (see :func:`load_results`)."""

    path: Path
    populations: pd.DataFrame
    run: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)  # sample -> plots.json
    replot: list[dict[str, Any]] = field(default_factory=list)  # plots/replot.json
    stats_images: list[Path] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except ValueError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from exc


def load_results(
    results_dir: str | os.PathLike, *, stats_dir: str | os.PathLike | None = None
) -> ResultsFolder:
    """Read what ``cytophen gate --out DIR`` wrote.

    Parameters
    ----------
    results_dir
        The folder: ``populations.parquet`` or ``populations.csv`` (required), and when present
        ``run.json``, ``gates.json``, ``errors.csv``, ``plots/*/plots.json``.
    stats_dir
        A folder of longitudinal plots (``cytophen stats --out DIR``); default ``results_dir/stats``
        when it exists.

    Returns
    -------
    ResultsFolder

    Raises
    ------
    ReportError
        The folder or its population table is missing or lacks the required columns.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(
            f"{root}: no such results folder (expected the --out folder of 'cytophen gate')"
        )
    from cytophen.pipeline.outdir import current_generation

    data = current_generation(root)  # one run's outputs, even while another run replaces them
    if not inside_folder(data, root):
        raise ReportError(f"{root}: its .cytophen/current points outside the folder")
    pq, csv = data / "populations.parquet", data / "populations.csv"
    if pq.is_file():
        pops = pd.read_parquet(pq)
        src = pq
    elif csv.is_file():
        pops = pd.read_csv(csv)
        src = csv
    else:
        raise ReportError(
            f"{root}: has neither populations.parquet nor populations.csv; is it the --out folder of 'cytophen gate'?"
        )
    need = ["sample", "population", "parent", "count", "percent_of_parent"]
    missing = [c for c in need if c not in pops.columns]
    if missing:
        raise ReportError(
            f"{src}: missing column(s) {', '.join(missing)}; expected at least {', '.join(need)}"
        )
    out = ResultsFolder(root, pops)
    if (data / "run.json").is_file():
        out.run = _read_json(data / "run.json") or {}
    if (data / "gates.json").is_file():
        g = _read_json(data / "gates.json") or {}
        out.gates = g.get("samples", g) if isinstance(g, dict) else {}
    if (data / "errors.csv").is_file():
        try:
            out.errors = pd.read_csv(data / "errors.csv", dtype=str).fillna("")
        except pd.errors.EmptyDataError:
            out.errors = pd.DataFrame()
    for pj in sorted((data / "plots").glob("*/plots.json")):
        if not inside_folder(pj, root):  # a link planted in the folder
            continue
        meta = _read_json(pj)
        if isinstance(meta, dict) and "sample" in meta:
            meta["_dir"] = pj.parent
            out.plots[str(meta["sample"])] = meta
    if (data / "plots" / "replot.json").is_file():
        out.replot = _read_json(data / "plots" / "replot.json") or []
    sdir = Path(stats_dir) if stats_dir is not None else root / "stats"
    if stats_dir is not None and not sdir.is_dir():
        raise ReportError(
            f"{sdir}: no such stats folder (expected the --out folder of 'cytophen stats')"
        )
    if sdir.is_dir():
        images = [
            p
            for p in sdir.rglob("*")
            if p.suffix.lower() in _IMAGE_EXT
            and not p.name.startswith(".")
            and p.is_file()
            and inside_folder(p, sdir)
        ]
        out.stats_images = sorted(images, key=_stats_order)
    return out


def inside_folder(path: Path, folder: Path) -> bool:
    """Whether ``path``, every link followed, is ``folder`` or lies inside it (a results folder
    is input like any other: a name in it must not lead the report to another file)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError):
        return False


def _stats_order(p: Path) -> tuple:
    """Overview plots (heatmaps) first, then per population its trajectories before the rest
    (``cytophen stats`` writes ``heatmap.png``, ``trajectories_<pop>.png``, ``scatter_<pop>.png``)."""
    stem = p.stem
    kind, _, pop = stem.partition("_")
    if not pop:
        return (0, stem, 0, str(p))
    return (1, pop, 0 if kind.startswith("traject") else 1, str(p))
