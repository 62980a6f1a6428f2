"""Spillover matrices and compensation.

SKELETON: the compensation helper fills this module. Contract used by the engine:

compensate(values: (n, k) float64 detector columns in the matrix's column order,
           spillover: pd.DataFrame (index: output names, columns: detector names)) -> (n, len(index)) float64
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def compensate(values: np.ndarray, spillover: pd.DataFrame) -> np.ndarray:
    s = spillover.to_numpy(dtype=np.float64)
    return np.asarray(values, dtype=np.float64) @ np.linalg.pinv(s)
