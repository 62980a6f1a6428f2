"""The compensation kernel equals a plain-numpy left-to-right sum bit for bit, for any rows and
outputs, serial or parallel; the engine's values at a parent's rows equal compensate() at those
rows; and compensate() agrees with solving the spillover system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytophen.compensation import compensate
from cytophen.engine import GateContext, gate
from cytophen.gates import Dim, RectangleGate
from cytophen.io.sample import Sample
from cytophen.kernels import compensate as kc
from cytophen.template import Population, Template


@pytest.fixture(autouse=True)
def _parallel_paths_even_on_a_busy_machine(monkeypatch):
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")


def _reference(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(q, n): x[:, 0]*m[0, j] + x[:, 1]*m[1, j] + ... in that order, one numpy op at a time."""
    out = np.empty((m.shape[1], x.shape[0]))
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(m.shape[1]):
            acc = x[:, 0] * m[0, j]
            for k in range(1, m.shape[0]):
                acc = acc + x[:, k] * m[k, j]
            out[j] = acc
    return out


def _matrix(k: int, q: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = np.eye(k) + rng.uniform(0, 0.25, (k, k)) * (1 - np.eye(k))
    return np.linalg.inv(s)[:, :q]


def _events(n: int, p: int, seed: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = rng.lognormal(6, 2, (n, p)) * rng.choice([-1, 1], (n, p), p=[0.1, 0.9])
    ev = ev.astype(dtype)
    if n > 10:
        ev[1, 2] = np.nan
        ev[2, 3] = np.inf
        ev[3, 4] = -np.inf
        ev[4, :] = 0.0
        ev[5, 2] = -0.0
    return ev


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 255, 256, 257, 5_000, kc.PARALLEL_MIN + 333])
def test_kernel_equals_left_to_right_sum(dtype, n):
    p, det = 9, np.array([7, 1, 2, 3, 4, 5])
    ev = _events(n, p, n, dtype)
    mode = np.array([0, 1, 2, 0, 1, 0])
    factor = np.array([1.0, 2.5, 0.01, 1.0, 3.0, 1.0])
    m = _matrix(len(det), len(det), n)
    x = ev[:, det].astype(np.float64)
    for k in range(len(det)):
        if mode[k] == 1:
            x[:, k] = x[:, k] / factor[k]
        elif mode[k] == 2:
            x[:, k] = x[:, k] * factor[k]
    want = _reference(x, m)
    got = kc.compensated_rows(ev, None, det, mode, factor, m)
    assert got.shape == (len(det), n) and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    rng = np.random.default_rng(1)
    rows = rng.permutation(n)[: n // 3]
    cols = [4, 0, 2] if n else [1]
    sub = kc.compensated_rows(ev, rows, det, mode, factor, m[:, cols])
    np.testing.assert_array_equal(sub, want[cols][:, rows])  # same bits, any rows and outputs
    np.testing.assert_array_equal(kc.product(x.T, m[:, cols]), want[cols])
    if n > 10:  # NaN/inf stay in their event; an all-zero event compensates to zero
        bad = np.zeros(n, dtype=bool)
        bad[[1, 2, 3]] = True
        assert np.isnan(got[:, 1]).all()
        assert np.isfinite(got[:, ~bad]).all() and not np.any(got[:, 4])


def test_kernel_edges_and_fallback():
    ev = _events(50, 6, 0, np.float32)[:, :4].copy()
    m = _matrix(2, 2, 0)
    with pytest.raises(IndexError, match="row numbers"):
        kc.compensated_rows(ev, np.array([0, 50]), [0, 1], [0, 0], [1.0, 1.0], m)
    with pytest.raises(IndexError, match="detector columns"):
        kc.compensated_rows(ev, None, [0, 4], [0, 0], [1.0, 1.0], m)
    with pytest.raises(ValueError):
        kc.compensated_rows(ev, None, [0, 1, 2], [0, 0, 0], [1.0] * 3, m)
    # a block the kernel cannot read is left to the caller
    assert kc.compensated_rows(ev.astype(">f4"), None, [0, 1], [0, 0], [1.0, 1.0], m) is None
    assert kc.compensated_rows(np.asfortranarray(ev), None, [0, 1], [0, 0], [1.0, 1.0], m) is None
    empty = kc.compensated_rows(ev, np.array([], dtype=np.int64), [0, 1], [0, 0], [1.0, 1.0], m)
    assert empty.shape == (2, 0)


def test_kernel_agrees_with_compensate_and_solve():
    """The fixed-order sum and compensate()'s BLAS product differ only in rounding."""
    rng = np.random.default_rng(3)
    s = np.eye(5) + rng.uniform(0, 0.3, (5, 5)) * (1 - np.eye(5))
    df = pd.DataFrame(s, index=list("ABCDE"), columns=list("ABCDE"))
    x = rng.normal(1000, 300, (2000, 5))
    got = kc.product(x.T, np.linalg.inv(s)).T
    np.testing.assert_allclose(got, compensate(x, df), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got, np.linalg.solve(s.T, x.T).T, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [3_000, kc.PARALLEL_MIN + 5])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_engine_values_at_parent_rows_equal_all_rows(n, byteorder):
    """A child gated on compensated channels at its parent's rows (or below an anchor) sees
    exactly the values computed for every event (any byte order, a gain, a log-amplified
    detector), and those are compensate()'s up to rounding."""
    rng = np.random.default_rng(n)
    ch = ["FSC-A", "FL1-A", "FL2-A", "FL3-A", "FL4-A"]
    ev = np.column_stack(
        [rng.uniform(0, 1000, n), rng.lognormal(6, 1.5, (n, 3)), rng.uniform(1, 1000, n)]
    ).astype(byteorder + "f4")
    kw = {"$P2G": "2.5", "$P5E": "4,1", "$P5R": "1024"}
    sample = Sample(ev, ch, [""] * len(ch), kw)
    dets = ch[1:]
    spill = pd.DataFrame(
        np.eye(4) + rng.uniform(0, 0.2, (4, 4)) * (1 - np.eye(4)), index=dets, columns=dets
    )
    pops = [
        Population("big", None, RectangleGate((Dim("FSC-A"),), (300.0,), (None,))),
        Population(
            "pos",
            "big",
            RectangleGate(
                (Dim("FL2-A", compensation="m"), Dim("FL4-A", compensation="m")),
                (50.0, 10.0),
                (None, None),
            ),
        ),
        # below the anchor ('big', whose children first need compensated values): its rows
        # are taken from the anchor's values, not recomputed
        Population(
            "pos3", "pos", RectangleGate((Dim("FL3-A", compensation="m"),), (30.0,), (None,))
        ),
        Population(
            "dim1", "big", RectangleGate((Dim("FL1-A", compensation="m"),), (None,), (400.0,))
        ),
    ]
    t = Template("t", pops, compensation="uncompensated", matrices={"m": spill})
    lin = np.column_stack([sample.linear_column(ch.index(d)) for d in dets])
    want = kc.product(lin.T, np.linalg.inv(spill.to_numpy())).T
    np.testing.assert_allclose(want, compensate(lin, spill), rtol=1e-12, atol=1e-9)
    ctx = GateContext(sample, t)
    rows = np.flatnonzero(ev[:, 0].astype(np.float64) >= 300.0)
    for j, d in enumerate(dets):
        got = ctx.raw_at(d, "m", rows, "big")
        np.testing.assert_array_equal(got, want[rows, j], err_msg=d)
        np.testing.assert_array_equal(GateContext(sample, t).raw_value(d, "m"), want[:, j])
    res = gate(sample, t)
    expect = (ev[:, 0] >= 300) & (want[:, 1] >= 50) & (want[:, 3] >= 10)
    np.testing.assert_array_equal(res.membership("pos"), expect)
    assert 0 < expect.sum() < (ev[:, 0] >= 300).sum()
    pos3 = expect & (want[:, 2] >= 30)
    np.testing.assert_array_equal(res.membership("pos3"), pos3)
    np.testing.assert_array_equal(res.membership("dim1"), (ev[:, 0] >= 300) & (want[:, 0] <= 400))
    assert 0 < pos3.sum() < expect.sum()
