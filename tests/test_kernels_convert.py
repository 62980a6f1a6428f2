"""The one-pass column gather equals numpy's per-column conversion exactly, and the engine's
prefetched linear values equal Sample.linear_column bit for bit (gain, log amplification, time)."""

from __future__ import annotations

import numpy as np
import pytest

from cytophen.engine import GateContext
from cytophen.gates import Dim, RectangleGate
from cytophen.io.sample import Sample
from cytophen.kernels.convert import PARALLEL_MIN, columns_as_float64
from cytophen.template import Population, Template


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
