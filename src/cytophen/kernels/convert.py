"""Gathering several event columns as float64 in one pass over the (n, p) event block."""

from __future__ import annotations

import numba as nb
import numpy as np

from cytophen.kernels._parallel import parallel_ok, run_dynamic

__all__ = ["columns_as_float64", "rows_as_float64", "gatherable"]

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
    if parallel_ok(ev.shape[0], PARALLEL_MIN):
        run_dynamic(_gather_parallel, ev, idx, out)
    else:
        _gather_range(ev, idx, out, 0, ev.shape[0])
    return out


#: Row gathers of at least this many rows run in parallel (below, one thread is about as fast:
#: the gather is memory-bound, and on 2 cores the second thread is better left to others).
ROWS_PARALLEL_MIN = 4_000_000


@nb.njit(cache=True, nogil=True)
def _gather_rows_range(events, rows, idx, out, start, stop):
    # returns how many row numbers were out of range (those are skipped, never read)
    k = idx.shape[0]
    n = events.shape[0]
    bad = 0
    for i in range(start, stop):
        r = rows[i]
        if r < 0 or r >= n:
            bad += 1
            continue
        for j in range(k):
            out[j, i] = events[r, idx[j]]
    return bad


@nb.njit(cache=True, nogil=True)
def _gather_rows_serial(events, rows, idx, out, bad):
    bad[0] = _gather_rows_range(events, rows, idx, out, 0, rows.shape[0])


@nb.njit(cache=True, nogil=True, parallel=True)
def _gather_rows_parallel(events, rows, idx, out, bad):
    n = rows.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        bad[c] = _gather_rows_range(events, rows, idx, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


def gatherable(events: np.ndarray) -> bool:
    """Whether :func:`rows_as_float64` reads ``events`` with its kernel (else numpy)."""
    return (
        events.ndim == 2
        and events.dtype in (np.float32, np.float64)
        and events.dtype.isnative
        and events.flags.c_contiguous
    )


def rows_as_float64(events: np.ndarray, rows: np.ndarray, idx) -> np.ndarray:
    """``(len(idx), len(rows))`` float64 copy of ``events[rows][:, idx].T`` (exact conversion).

    One pass over the selected rows of the row-major block for all columns at once (a per-column
    gather would stream the block once per column). ``rows`` are row numbers (any order, e.g. a
    parent population's ``flatnonzero``); values equal ``events[rows, i].astype(float64)`` bit for
    bit. Falls back to numpy for blocks numba cannot read.
    """
    idx = np.asarray(idx, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if not gatherable(events):
        return np.array(events[rows][:, idx].T, dtype=np.float64, order="C")
    if idx.shape[0] and (idx.min() < 0 or idx.max() >= events.shape[1]):
        raise IndexError(f"column numbers must be in [0, {events.shape[1]})")
    n = rows.shape[0]
    out = np.empty((idx.shape[0], n), dtype=np.float64)
    if parallel_ok(n, ROWS_PARALLEL_MIN):
        bad = np.zeros((n + _CHUNK - 1) // _CHUNK, dtype=np.int64)
        run_dynamic(_gather_rows_parallel, events, rows, idx, out, bad)
    else:
        bad = np.zeros(1, dtype=np.int64)
        _gather_rows_serial(events, rows, idx, out, bad)
    if bad.any():
        raise IndexError(f"row numbers must be in [0, {events.shape[0]})")
    return out
