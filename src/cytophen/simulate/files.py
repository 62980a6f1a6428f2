"""Writing simulated samples: the FCS 3.1 file and its ``<stem>.truth.parquet`` next to it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cytophen.simulate.model import (
    LOGICLE,
    RANGE,
    TIMESTEP,
    SimulatedSample,
    SimulationError,
    simulate_sample,
)

__all__ = ["write_sample", "truth_path", "read_truth", "simulate_file"]


def truth_path(fcs_path: str | os.PathLike) -> Path:
    """``P01_W00_bcell.fcs`` → ``P01_W00_bcell.truth.parquet`` (same folder)."""
    p = Path(fcs_path)
    return p.with_name(p.stem + ".truth.parquet")


def read_truth(fcs_path: str | os.PathLike) -> pd.DataFrame:
    """The truth table written next to a simulated FCS file (one boolean column per population).

    Raises
    ------
    SimulationError
        When there is no ``<stem>.truth.parquet`` next to the file.
    """
    tp = truth_path(fcs_path)
    if not tp.exists():
        raise SimulationError(
            f"{fcs_path}: no ground truth next to it (expected {tp.name}); only files written by "
            "'cytophen simulate' have one"
        )
    return pd.read_parquet(tp)


def write_sample(
    path: str | os.PathLike,
    sample: SimulatedSample,
    *,
    keywords: Mapping[str, object] | None = None,
) -> Path:
    """Write a simulated sample as FCS 3.1 (float32, ``$SPILLOVER``) plus its truth parquet.

    Parameters
    ----------
    path
        The ``.fcs`` file to write; the truth goes to ``<stem>.truth.parquet`` beside it.
    sample
        From :func:`cytophen.simulate.simulate_sample`.
    keywords
        Extra TEXT keywords (``$FIL``, ``$SRC``, ``SIM_SEED`` ...). Nothing time-dependent is
        written unless given, so the same sample always gives the same bytes.

    Returns
    -------
    pathlib.Path
        The FCS file written.
    """
    from cytophen.io.fcs import write_fcs

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kw: dict[str, object] = {
        "$CYT": "cytophen simulator",
        "$DATE": "01-JAN-2026",
        "$FIL": path.name,
        "$TIMESTEP": f"{TIMESTEP:g}",
        "SIM_TRUTH": truth_path(path).name,
        "SIM_LOGICLE": ",".join(f"{k}={v:g}" for k, v in LOGICLE.items()),
    }
    for i, ch in enumerate(sample.channels, start=1):
        kw[f"$P{i}R"] = str(RANGE)
        kw[f"$P{i}E"] = "0,0"
        if ch.upper().startswith(("FSC", "SSC")):
            kw[f"$P{i}G"] = "1"
    kw.update(dict(keywords or {}))
    write_fcs(
        path,
        sample.events,
        list(sample.channels),
        markers=list(sample.markers),
        keywords=kw,
        spillover=sample.spillover,
    )
    tp = truth_path(path)
    tmp = tp.with_name(tp.name + ".tmp")
    sample.truth.to_parquet(tmp, index=False)
    os.replace(tmp, tp)
    return path


def simulate_file(
    path: str | os.PathLike,
    panel: str,
    *,
    seed: int = 0,
    events: int = 30_000,
    subject_params: Mapping[str, float] | None = None,
    drift: float = 1.0,
    keywords: Mapping[str, object] | None = None,
) -> Path:
    """:func:`simulate_sample` then :func:`write_sample` (seed and panel recorded as keywords)."""
    s = simulate_sample(panel, seed=seed, events=events, subject_params=subject_params, drift=drift)
    kw = {"SIM_PANEL": str(panel), "SIM_SEED": str(int(seed))}
    kw.update(dict(keywords or {}))
    return write_sample(path, s, keywords=kw)
