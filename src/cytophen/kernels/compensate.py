"""Compensated values of chosen outputs at chosen events, read straight from the event block.

A compensated value is the dot product of one event's linear detector values with one column of
``M = inv(S)``. BLAS computes it in an order that depends on the shape of the product (which
rows, which columns, how many threads), so the same event could get values a few ulps apart
from a product over all events and one over a parent population's rows. Here every value is
one fixed sum, ``x[0]*M[0, j] + x[1]*M[1, j] + ...`` left to right in detector order, whatever
rows, outputs, chunking or threads are asked for. The engine can then compute only the outputs
its gates use, only at the rows of the population they gate, and get the same number for an
event wherever it is computed.

The linear value of a detector is computed as :func:`cytophen.io.sample.scale_in_place` does
(``$PnG`` gain: divided; time step: multiplied), so ``x`` is bit-identical to
:meth:`Sample.linear_column`. Log-amplified detectors are not decoded here (the caller passes a
ready block to :func:`product` instead).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from cytophen.kernels._parallel import parallel_ok, run_dynamic
from cytophen.kernels.convert import gatherable

__all__ = ["compensated_rows", "product", "SCALE_NONE", "SCALE_DIVIDE", "SCALE_MULTIPLY"]

SCALE_NONE, SCALE_DIVIDE, SCALE_MULTIPLY = 0, 1, 2
#: Events per chunk: a chunk's detector values and outputs stay in the first-level caches.
_CHUNK = 256
#: At least this many events for the parallel version.
PARALLEL_MIN = 400_000


@nb.njit(cache=True, nogil=True)
def _dot_chunk(buf, m, out, start, width):
    # out[j, start:start+width] = sum_k buf[k, :width] * m[k, j], left to right in k
    k = buf.shape[0]
    for j in range(m.shape[1]):
        o = out[j, start : start + width]
        b = buf[0, :width]
        c = m[0, j]
        for i in range(width):
            o[i] = b[i] * c
        for kk in range(1, k):
            b = buf[kk, :width]
            c = m[kk, j]
            for i in range(width):
                o[i] += b[i] * c


@nb.njit(cache=True, nogil=True)
def _rows_chunk(events, rows, all_rows, det, mode, factor, m, out, start, stop, tmp, buf):
    width = stop - start
    k = det.shape[0]
    for i in range(width):  # row by row: one pass over the chunk's rows of the block
        e = events[start + i] if all_rows else events[rows[start + i]]
        t = tmp[i]
        for kk in range(k):
            t[kk] = e[det[kk]]
    for kk in range(k):  # detector by detector, linear values as scale_in_place computes them
        b = buf[kk, :width]
        for i in range(width):
            b[i] = tmp[i, kk]
        f = factor[kk]
        if mode[kk] == 1:
            for i in range(width):
                b[i] = b[i] / f
        elif mode[kk] == 2:
            for i in range(width):
                b[i] = b[i] * f
    _dot_chunk(buf, m, out, start, width)


@nb.njit(cache=True, nogil=True)
def _rows_serial(events, rows, all_rows, det, mode, factor, m, out):
    n = out.shape[1]
    tmp = np.empty((_CHUNK, det.shape[0]))
    buf = np.empty((det.shape[0], _CHUNK))
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        _rows_chunk(events, rows, all_rows, det, mode, factor, m, out, start, stop, tmp, buf)


@nb.njit(cache=True, nogil=True, parallel=True)
def _rows_parallel(events, rows, all_rows, det, mode, factor, m, out):
    n = out.shape[1]
    per = 32 * _CHUNK  # events per parallel task
    ntasks = (n + per - 1) // per
    for c in nb.prange(ntasks):
        tmp = np.empty((_CHUNK, det.shape[0]))
        buf = np.empty((det.shape[0], _CHUNK))
        for start in range(c * per, min(n, (c + 1) * per), _CHUNK):
            stop = min(n, start + _CHUNK)
            _rows_chunk(events, rows, all_rows, det, mode, factor, m, out, start, stop, tmp, buf)


@nb.njit(cache=True, nogil=True)
def _product_serial(block, m, out):
    n = block.shape[1]
    for start in range(0, n, _CHUNK):
        width = min(n, start + _CHUNK) - start
        _dot_chunk(block[:, start : start + width], m, out, start, width)


def compensated_rows(
    events: np.ndarray,
    rows: np.ndarray | None,
    det,
    mode,
    factor,
    m: np.ndarray,
) -> np.ndarray | None:
    """``(m.shape[1], len(rows))`` compensated values of ``events[rows]`` (all rows when ``None``).

    Parameters
    ----------
    events
        ``(n, p)`` stored event block (float32 or float64, native byte order, C order).
    rows
        Row numbers (any order), or ``None`` for every row.
    det, mode, factor
        Per detector (one per row of ``m``): its column in ``events``, how its stored value
        becomes linear (``SCALE_NONE``, ``SCALE_DIVIDE`` by ``factor``, ``SCALE_MULTIPLY`` by
        ``factor``) and that factor.
    m
        ``(k, q)`` columns of the compensation matrix ``inv(S)`` for the wanted outputs.

    Returns
    -------
    numpy.ndarray or None
        One contiguous row of values per output; ``None`` when the block cannot be read by the
        kernel (the caller builds the detector block itself and uses :func:`product`).
    """
    if not gatherable(events):
        return None
    det = np.ascontiguousarray(det, dtype=np.int64)
    mode = np.ascontiguousarray(mode, dtype=np.int64)
    factor = np.ascontiguousarray(factor, dtype=np.float64)
    m = np.ascontiguousarray(m, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != det.shape[0] or det.shape[0] == 0:
        raise ValueError(f"matrix of shape {m.shape} for {det.shape[0]} detectors")
    if det.min() < 0 or det.max() >= events.shape[1]:
        raise IndexError(f"detector columns must be in [0, {events.shape[1]})")
    if rows is None:
        n, all_rows = events.shape[0], True
        rows = np.empty(0, dtype=np.int64)
    else:
        rows = np.ascontiguousarray(rows, dtype=np.int64).reshape(-1)
        n, all_rows = rows.shape[0], False
        if n and (rows.min() < 0 or rows.max() >= events.shape[0]):
            raise IndexError(f"row numbers must be in [0, {events.shape[0]})")
    out = np.empty((m.shape[1], n), dtype=np.float64)
    if n == 0 or m.shape[1] == 0:
        return out
    if parallel_ok(n, PARALLEL_MIN):
        run_dynamic(_rows_parallel, events, rows, all_rows, det, mode, factor, m, out)
    else:
        _rows_serial(events, rows, all_rows, det, mode, factor, m, out)
    return out


def product(block: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``(q, n)`` values ``block.T @ m``, each one summed as :func:`compensated_rows` sums it.

    ``block`` is ``(k, n)`` linear detector values, one row per detector.
    """
    block = np.ascontiguousarray(block, dtype=np.float64)
    m = np.ascontiguousarray(m, dtype=np.float64)
    if block.ndim != 2 or m.ndim != 2 or m.shape[0] != block.shape[0] or block.shape[0] == 0:
        raise ValueError(f"block of shape {block.shape} and matrix of shape {m.shape}")
    out = np.empty((m.shape[1], block.shape[1]), dtype=np.float64)
    if block.shape[1] and m.shape[1]:
        _product_serial(block, m, out)
    return out
