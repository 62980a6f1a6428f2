"""The two simulated panels (B cell and Treg) and their spillover matrices.

Channel names (``$PnN``) and marker names (``$PnS``) are those of the lupus MSC trial panels; the
spillover values are typical of a 5-laser BD instrument (FITC into PE about 18 %, APC into APC-H7
about 12 %, BV421 into BV510 about 12 % ...), not measured on one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytophen.errors import SimulationError

__all__ = ["Panel", "PANELS", "SCATTER", "TIME", "get_panel"]

#: Scatter channels common to both panels, in file order.
SCATTER = ("FSC-A", "FSC-H", "SSC-A")
#: The time channel (last column of every file).
TIME = "Time"

#: Spillover of fluorochrome (row) into detector (column), as a fraction of the signal in the
#: fluorochrome's own detector. Pairs whose detectors are not both in a panel are ignored.
_SPILL: dict[tuple[str, str], float] = {
    ("FITC-A", "PE-A"): 0.18,
    ("FITC-A", "PerCP-Cy5.5-A"): 0.035,
    ("FITC-A", "BV510-A"): 0.006,
    ("PE-A", "FITC-A"): 0.012,
    ("PE-A", "PerCP-Cy5.5-A"): 0.12,
    ("PE-A", "PE-Cy7-A"): 0.025,
    ("PE-A", "BV605-A"): 0.03,
    ("PerCP-Cy5.5-A", "PE-Cy7-A"): 0.13,
    ("PerCP-Cy5.5-A", "APC-A"): 0.04,
    ("PerCP-Cy5.5-A", "APC-H7-A"): 0.012,
    ("PE-Cy7-A", "APC-H7-A"): 0.06,
    ("PE-Cy7-A", "PE-A"): 0.01,
    ("APC-A", "APC-H7-A"): 0.12,
    ("APC-A", "PerCP-Cy5.5-A"): 0.012,
    ("Alexa Fluor 647-A", "APC-H7-A"): 0.10,
    ("Alexa Fluor 647-A", "BV786-A"): 0.008,
    ("APC-H7-A", "APC-A"): 0.02,
    ("APC-H7-A", "PE-Cy7-A"): 0.04,
    ("APC-H7-A", "BV786-A"): 0.025,
    ("APC-H7-A", "Alexa Fluor 647-A"): 0.02,
    ("BV510-A", "BV605-A"): 0.06,
    ("BV510-A", "FITC-A"): 0.04,
    ("BV421-A", "BV510-A"): 0.12,
    ("BV421-A", "BUV395-A"): 0.004,
    ("BV605-A", "PE-A"): 0.03,
    ("BV605-A", "PerCP-Cy5.5-A"): 0.02,
    ("BV605-A", "BV510-A"): 0.01,
    ("BV786-A", "PE-Cy7-A"): 0.03,
    ("BV786-A", "APC-H7-A"): 0.02,
    ("BUV395-A", "BUV737-A"): 0.03,
    ("BUV395-A", "BV510-A"): 0.005,
    ("BUV395-A", "BV421-A"): 0.015,
    ("BUV737-A", "BUV395-A"): 0.005,
    ("BUV737-A", "BV786-A"): 0.10,
    ("BUV737-A", "APC-H7-A"): 0.02,
    ("BUV737-A", "PE-Cy7-A"): 0.01,
}

#: Photo-electrons per linear unit are summarised as ``photon``: the variance of the detected
#: signal is ``photon * signal``; ``electronic`` is the sd of the additive electronic noise.
_NOISE: dict[str, tuple[float, float]] = {
    "BV510-A": (22.0, 80.0),
    "BUV395-A": (30.0, 90.0),
    "APC-H7-A": (25.0, 70.0),
    "BUV737-A": (28.0, 80.0),
    "FITC-A": (12.0, 50.0),
    "BV605-A": (20.0, 70.0),
    "PE-Cy7-A": (18.0, 60.0),
    "PerCP-Cy5.5-A": (20.0, 70.0),
    "PE-A": (10.0, 60.0),
    "APC-A": (14.0, 60.0),
    "BV786-A": (25.0, 80.0),
    "BV421-A": (15.0, 70.0),
    "Alexa Fluor 647-A": (14.0, 60.0),
}


@dataclass(frozen=True)
class Panel:
    """A staining panel: fluorescence channels (``$PnN``) and the marker each carries (``$PnS``)."""

    name: str
    fluorescence: tuple[tuple[str, str], ...]  # (channel, marker)

    @property
    def channels(self) -> list[str]:
        """All channel names in file order: scatter, fluorescence, Time."""
        return [*SCATTER, *(c for c, _ in self.fluorescence), TIME]

    @property
    def markers(self) -> list[str]:
        """``$PnS`` per channel in file order (``''`` for scatter and Time)."""
        return [*("" for _ in SCATTER), *(m for _, m in self.fluorescence), ""]

    @property
    def detectors(self) -> list[str]:
        return [c for c, _ in self.fluorescence]

    @property
    def marker_names(self) -> list[str]:
        return [m for _, m in self.fluorescence]

    def spillover(self) -> pd.DataFrame:
        """The panel's spillover matrix (index and columns: detector ``$PnN``, diagonal 1)."""
        det = self.detectors
        s = np.eye(len(det))
        for i, src in enumerate(det):
            for j, dst in enumerate(det):
                if i != j:
                    s[i, j] = _SPILL.get((src, dst), 0.0)
        return pd.DataFrame(s, index=list(det), columns=list(det))

    def noise(self) -> tuple[np.ndarray, np.ndarray]:
        """``(photon, electronic)`` noise parameters per fluorescence detector."""
        p = np.array([_NOISE[d][0] for d in self.detectors])
        e = np.array([_NOISE[d][1] for d in self.detectors])
        return p, e


PANELS: dict[str, Panel] = {
    "bcell": Panel(
        "bcell",
        (
            ("BV510-A", "Viability"),
            ("BUV395-A", "CD3"),
            ("APC-H7-A", "CD19"),
            ("BUV737-A", "CD20"),
            ("FITC-A", "IgD"),
            ("BV605-A", "CD27"),
            ("PE-Cy7-A", "CD24"),
            ("PerCP-Cy5.5-A", "CD38"),
            ("PE-A", "CD21"),
            ("APC-A", "CD11c"),
        ),
    ),
    "treg": Panel(
        "treg",
        (
            ("BV510-A", "Viability"),
            ("BUV395-A", "CD3"),
            ("BV786-A", "CD4"),
            ("APC-H7-A", "CD8"),
            ("PE-A", "CD25"),
            ("BV421-A", "CD127"),
            ("Alexa Fluor 647-A", "FoxP3"),
            ("FITC-A", "Helios"),
        ),
    ),
}


def get_panel(panel: str | Panel) -> Panel:
    """A :class:`Panel` by name (``'bcell'`` or ``'treg'``), or the panel itself."""
    if isinstance(panel, Panel):
        return panel
    try:
        return PANELS[str(panel).lower()]
    except KeyError:
        raise SimulationError(
            f"unknown panel {panel!r}; expected one of: {', '.join(PANELS)}"
        ) from None
