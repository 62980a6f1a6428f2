"""Gathering several event columns as float64 in one pass over the (n, p) event block."""

from __future__ import annotations

import numba as nb
import numpy as np

from cytophen.kernels._parallel import run_dynamic

__all__ = ["columns_as_float64"]

_CHUNK = 16_384
#: Below this many events the per-column numpy conversion is as fast.
PARALLEL_MIN = 100_000


@nb.njit(cache=True, nogil=True)
def _gather_range(events, idx, out, start, stop):
    k = idx.shape[0]
    for i in range(start, stop):
        for j in range(k):
            out[j, i] = events[i, idx[j]]


@nb.njit(cache=True, nogil=True, parallel=True)
def _gather_parallel(events, idx, out):
    n = events.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _gather_range(events, idx, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


def columns_as_float64(events: np.ndarray, idx) -> np.ndarray:
    """``(len(idx), n)`` float64 copy of the columns ``idx`` of ``events`` (exact conversion).

    One pass over the row-major block instead of one strided pass per column; parallel for large
    inputs. Falls back to numpy for dtypes numba cannot read (e.g. non-native byte order).
    """
    idx = np.asarray(idx, dtype=np.int64)
    ev = events
    if (
        ev.ndim != 2
        or ev.shape[0] < PARALLEL_MIN
        or ev.dtype not in (np.float32, np.float64)
        or not ev.dtype.isnative
        or not ev.flags.c_contiguous
    ):
        return np.array(ev[:, idx].T, dtype=np.float64, order="C")
    out = np.empty((idx.shape[0], ev.shape[0]), dtype=np.float64)
    run_dynamic(_gather_parallel, ev, idx, out)
    return out
