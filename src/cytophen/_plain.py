"""numpy values as plain Python values (lists, floats, ints, bools, string-keyed dicts), for the
provenance a fit or a frozen template records and JSON or YAML writes."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plain"]


def plain(obj: Any) -> Any:
    """``obj`` with arrays as lists, numpy scalars as Python ones, tuples as lists and dict keys
    as strings; anything else as it is (NaN stays NaN: the JSON writers decide about it)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj
