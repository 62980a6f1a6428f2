"""Simulated flow-cytometry data with per-event ground truth, the study cohort, and scoring.

>>> from cytophen.simulate import simulate_sample
>>> events, channels, markers, spillover, truth = simulate_sample("bcell", seed=0, events=2000)
>>> truth.columns[:3].tolist()
['lymphocytes', 'singlets', 'live']
"""

from __future__ import annotations

from cytophen.simulate.model import (
    B_NOT_PLASMABLASTS,
    DEFAULT_PARAMS,
    TRUTH_COLUMNS,
    SimulatedSample,
    SimulationError,
    logicle_inverse,
    requested_frequencies,
    simulate_sample,
)
from cytophen.simulate.panels import PANELS, Panel, get_panel

__all__ = [
    "B_NOT_PLASMABLASTS",
    "DEFAULT_PARAMS",
    "PANELS",
    "Panel",
    "TRUTH_COLUMNS",
    "SimulatedSample",
    "SimulationError",
    "get_panel",
    "logicle_inverse",
    "requested_frequencies",
    "simulate_sample",
]

from cytophen.simulate.cohort import Cohort, simulate_cohort  # noqa: E402
from cytophen.simulate.files import read_truth, simulate_file, truth_path, write_sample  # noqa: E402
from cytophen.simulate.scoring import score  # noqa: E402

__all__ += [
    "Cohort",
    "simulate_cohort",
    "read_truth",
    "simulate_file",
    "truth_path",
    "write_sample",
    "score",
]
