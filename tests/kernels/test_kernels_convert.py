"""The one-pass column gather equals numpy's per-column conversion exactly, and the engine's
prefetched linear values equal Sample.linear_column bit for bit (gain, log amplification, time)."""

from __future__ import annotations

import numpy as np
import pytest

from cytophen.engine import GateContext
from cytophen.gates import Dim, RectangleGate
from cytophen.io.sample import Sample
from cytophen.kernels.convert import (
    PARALLEL_MIN,
    ROWS_PARALLEL_MIN,
    columns_as_float64,
    gatherable,
    rows_as_float64,
)
from cytophen.template import Population, Template


@pytest.fixture(autouse=True)
def _parallel_paths_even_on_a_busy_machine(monkeypatch):
    """Large inputs take the parallel kernels whatever the machine's load (they are tested)."""
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8"])
@pytest.mark.parametrize("n", [0, 5, PARALLEL_MIN + 17])
def test_gather_matches_numpy(dtype, n):
    rng = np.random.default_rng(n)
    ev = rng.normal(0, 1e4, size=(n, 7)).astype(dtype)
    if n:
        ev[0, 2] = np.nan
        ev[-1, 5] = np.inf
    idx = [6, 0, 2, 5]
    got = columns_as_float64(ev, idx)
    ref = np.stack([ev[:, i].astype(np.float64) for i in idx])
    assert got.dtype == np.float64 and got.shape == (4, n)
    np.testing.assert_array_equal(got, ref)


def test_gather_non_contiguous_input_falls_back():
    ev = np.asfortranarray(np.random.default_rng(1).random((PARALLEL_MIN + 3, 4), dtype=np.float32))
    np.testing.assert_array_equal(
        columns_as_float64(ev, [3, 1]), np.stack([ev[:, 3], ev[:, 1]]).astype(np.float64)
    )


def test_engine_prefetch_is_bit_identical_to_linear_column():
    n = PARALLEL_MIN + 1000
    rng = np.random.default_rng(7)
    ev = np.column_stack(
        [
            rng.uniform(0, 262143, n),
            rng.uniform(0, 1023, n),
            rng.uniform(0, 5000, n),
            rng.normal(0, 500, n),
        ]
    ).astype(np.float32)
    kw = {"$P1G": "3.67", "$P2E": "4,0", "$P2R": "1024", "$TIMESTEP": "0.01", "$P4G": "1"}
    s = Sample(ev, ["FSC-A", "FL1-H", "Time", "FL2-A"], ["", "CD3", "", "CD19"], kw)
    dims = [Dim("FSC-A"), Dim("CD3"), Dim("Time"), Dim("CD19")]
    t = Template(
        "t",
        [Population(f"p{i}", None, RectangleGate([d], [None], [None])) for i, d in enumerate(dims)],
    )
    ctx = GateContext(s, t)
    for i in range(4):
        np.testing.assert_array_equal(ctx.linear(i), s.linear_column(i))
    assert ctx._prefetched


# ------------------------------------------------------------------------------------------------
# row gather (values of a parent population's rows, all columns in one pass)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8"])
@pytest.mark.parametrize("n", [0, 1, 7, ROWS_PARALLEL_MIN + 17])
def test_row_gather_matches_numpy(dtype, n):
    rng = np.random.default_rng(n + 3)
    ev = rng.normal(0, 1e4, size=(n + 5, 6)).astype(dtype)
    ev[0, 2] = np.nan
    ev[-1, 5] = np.inf
    ev[1, 1] = -np.inf
    rows = np.sort(rng.choice(n + 5, size=n, replace=False)) if n else np.zeros(0, np.int64)
    if n > 2:
        rows[0], rows[-1] = 0, n + 4  # first and last row, NaN and inf included
    idx = [5, 0, 2, 1]
    got = rows_as_float64(ev, rows, idx)
    ref = np.stack([ev[rows, i].astype(np.float64) for i in idx]) if n else np.zeros((4, 0))
    assert got.dtype == np.float64 and got.shape == (4, n)
    np.testing.assert_array_equal(got, ref)


def test_row_gather_unsorted_repeated_rows_and_bad_rows():
    ev = np.arange(40, dtype=np.float32).reshape(10, 4)
    rows = np.array([9, 0, 3, 3, 5])
    np.testing.assert_array_equal(rows_as_float64(ev, rows, [3, 0]), ev[rows][:, [3, 0]].T)
    assert rows_as_float64(ev, rows, []).shape == (0, 5)
    for bad in ([10], [-1], [0, 11]):
        with pytest.raises(IndexError):
            rows_as_float64(ev, np.array(bad), [0])
    with pytest.raises(IndexError):
        rows_as_float64(ev, rows, [4])
    assert gatherable(ev) and not gatherable(np.asfortranarray(ev))
    assert not gatherable(ev.astype(">f4")) and not gatherable(ev.astype(np.int32))


def test_busy_machine_runs_kernels_serially_with_the_same_result(monkeypatch):
    from cytophen.kernels import _parallel

    ev = np.random.default_rng(2).random((ROWS_PARALLEL_MIN + 5, 3), dtype=np.float32)
    rows = np.arange(0, ev.shape[0], 1)
    want = np.stack([ev[:, 2], ev[:, 0]]).astype(np.float64)
    monkeypatch.setattr(_parallel, "_LOAD", {"checked": -1e9, "busy": False})
    monkeypatch.setattr(_parallel.os, "getloadavg", lambda: (_parallel._NCPU + 5.0, 0.0, 0.0))
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "auto")
    assert _parallel.machine_busy() and not _parallel.parallel_ok(10**9, 1)
    np.testing.assert_array_equal(rows_as_float64(ev, rows, [2, 0]), want)
    np.testing.assert_array_equal(columns_as_float64(ev, [2, 0]), want)
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")
    assert not _parallel.machine_busy()
    np.testing.assert_array_equal(rows_as_float64(ev, rows, [2, 0]), want)
