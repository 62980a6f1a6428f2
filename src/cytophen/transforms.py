"""Per-channel scale transforms (GatingML 2.0 parametrisations) and their inverses.

SKELETON: the transforms helper fills this module. Contract used by gates and the engine:

class Transform:
    kind: str
    def apply(self, x: np.ndarray) -> np.ndarray   # float64 in, float64 out, same shape
    def inverse(self, y: np.ndarray) -> np.ndarray
    def to_dict(self) -> dict                       # {"kind": ..., params...}, JSON-serialisable
transform_from_dict(d) -> Transform                 # inverse of to_dict
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Transform:
    kind = "identity"

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


def transform_from_dict(d: dict[str, Any]) -> Transform:
    raise NotImplementedError
