"""The engine's fast paths give exactly the membership of the plain evaluation.

The fast paths: rectangles on a monotone scale tested in data units (only values in a tiny band
around a bound are transformed), channels of a parent's rows read from the event block in one
pass, and root polygons reading the stored float32 columns in place. The reference here
transforms every value of full float64 columns with numpy (``Sample.linear_column``,
``Transform.apply``), applies the GatingML rules with numpy / flowutils, and and-s with the
parent, on data with NaN, infinities and values on (and one ulp either side of) every bound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytophen.engine import gate
from cytophen.gates import Dim, PolygonGate, QuadrantGate, RatioDim, RectangleGate
from cytophen.io.sample import Sample
from cytophen.kernels.convert import PARALLEL_MIN
from cytophen.template import Population, Template
from cytophen.transforms import (
    AsinhTransform,
    FlowJoBiexTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
)

fu_gating = pytest.importorskip("flowutils.gating")


@pytest.fixture(autouse=True)
def _parallel_paths_even_on_a_busy_machine(monkeypatch):
    """Large inputs take the parallel kernels whatever the machine's load (they are tested)."""
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")


TRANSFORMS = [
    LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0),
    LogicleTransform(T=10000.0, W=1.0, M=4.0, A=1.0),
    LogicleTransform(T=262144.0, W=0.0, M=4.5, A=0.0),  # arcsinh special case
    AsinhTransform(T=262144.0, M=4.5, A=0.5),
    HyperlogTransform(T=262144.0, W=0.5, M=4.5, A=0.0),
    LinearTransform(T=262144.0, A=100.0),
    LogTransform(T=262144.0, M=4.5),  # no band: every value transformed
    FlowJoBiexTransform(),  # no band
]


def _near(t, bounds, rng, n_random=400):
    """Data values on, and a few ulps around, the data value of each bound, plus random ones."""
    vals = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    for c in bounds:
        if c is None:
            continue
        with np.errstate(all="ignore"):
            x = float(np.asarray(t.inverse(np.array([c])))[0])
        if np.isfinite(x):
            v = x
            for _ in range(6):
                v = np.nextafter(v, np.inf)
                vals.append(v)
            v = x
            for _ in range(6):
                v = np.nextafter(v, -np.inf)
                vals.append(v)
            vals += [x, x * (1 + 1e-9), x * (1 - 1e-9), x * (1 + 1e-6), x * (1 - 1e-6)]
    vals += list(rng.normal(0, 3000, n_random)) + list(rng.lognormal(7, 2, n_random))
    return np.array(vals, dtype=np.float64)


def ref_rect(values, mins, maxs):
    ok = np.ones(values.shape[0], dtype=bool)
    with np.errstate(invalid="ignore"):
        for j, (lo, hi) in enumerate(zip(mins, maxs)):
            v = values[:, j]
            ok &= ~np.isnan(v)
            if lo is not None:
                ok &= v >= lo
            if hi is not None:
                ok &= v < hi
    return ok


def _applied(t, x):
    with np.errstate(all="ignore"):
        return np.asarray(t.apply(x), dtype=np.float64)


@pytest.mark.parametrize("t", TRANSFORMS, ids=lambda t: f"{t.kind}")
def test_contains_raw_equals_transform_then_test(t):
    rng = np.random.default_rng(0)
    y = _applied(t, np.array([-500.0, 100.0, 5000.0]))
    cuts = [float(v) for v in y if np.isfinite(v)]
    cases = [
        (cuts[0], cuts[-1]),
        (None, cuts[1]),
        (cuts[1], None),
        (cuts[1], cuts[1]),
        (None, None),
    ]
    for lo, hi in cases:
        g = RectangleGate((Dim("a", transform=t), Dim("b")), (lo, -1.0), (hi, None))
        x = _near(t, (lo, hi), rng)
        b = rng.normal(0, 3, x.shape[0])
        b[::7] = -1.0  # on the untransformed bound
        got = g.contains_raw([x, b])
        ref = ref_rect(np.column_stack([_applied(t, x), b]), g.mins, g.maxs)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, g.contains_columns([_applied(t, x), b]))
    assert RectangleGate((Dim("a", transform=t),), (0.3,), (None,)).contains_raw(
        [np.zeros(0)]
    ).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(0, 5),
    lo=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    width=st.one_of(st.none(), st.floats(0.0, 1.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_contains_raw_property(k, lo, width, seed):
    t = TRANSFORMS[k]
    hi = None if width is None else (0.5 if lo is None else lo) + width
    rng = np.random.default_rng(seed)
    g = RectangleGate((Dim("a", transform=t), Dim("b", transform=t)), (lo, None), (hi, lo))
    x = _near(t, (lo, hi), rng, 100)
    x2 = rng.permutation(x)
    ref = ref_rect(np.column_stack([_applied(t, x), _applied(t, x2)]), g.mins, g.maxs)
    np.testing.assert_array_equal(g.contains_raw([x, x2]), ref)


@pytest.mark.parametrize("t", TRANSFORMS, ids=lambda t: f"{t.kind}")
@pytest.mark.parametrize("second", ["same", "linear"])
def test_polygon_contains_raw_equals_transform_then_test(t, second):
    rng = np.random.default_rng(1)
    y = _applied(t, np.array([-200.0, 300.0, 4000.0, 50000.0]))
    if not np.all(np.isfinite(y)):  # log: no value for negative data
        y = _applied(t, np.array([10.0, 300.0, 4000.0, 50000.0]))
    lo, mid, hi = float(y[0]), float(y[2]), float(y[3])
    t2 = t if second == "same" else None
    verts = [(lo, lo), (hi, lo), (hi, mid), (mid, hi), (lo, hi)] if t2 is t else None
    if verts is None:
        verts = [(lo, -1.0), (hi, -1.0), (hi, 2.0), (mid, 3.0), (lo, 3.0)]
    g = PolygonGate((Dim("a", transform=t), Dim("b", transform=t2)), verts)
    xa = _near(t, (lo, mid, hi), rng)
    xb = rng.permutation(_near(t, (lo, mid, hi), rng)) if t2 is t else rng.uniform(-2, 4, xa.size)
    if t2 is None:
        xb[::5] = -1.0  # on the bottom edge
    got = g.contains_raw([xa, xb])
    cols = [_applied(t, xa), xb if t2 is None else _applied(t, xb)]
    want = g.contains_columns(cols)
    np.testing.assert_array_equal(got, want)
    ref = fu_gating.points_in_polygon(g.vertices, np.column_stack(cols)) & ~np.isnan(
        np.column_stack(cols)
    ).any(axis=1)
    np.testing.assert_array_equal(got, ref)
    assert got.any() and not got.all()


# ------------------------------------------------------------------------------------------------
# whole trees: engine.gate vs a plain evaluation
# ------------------------------------------------------------------------------------------------
CH = ["FSC-A", "FSC-H", "SSC-A", "CD3", "CD19", "IgD", "CD27", "CD24", "CD38", "LOG"]


def _events(n, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.column_stack(
        [
            rng.normal(60000, 20000, n),
            rng.normal(50000, 20000, n),
            rng.normal(22000, 10000, n),
            rng.normal(3000, 4000, n),
            *(rng.lognormal(7.5, 1.5, n) * rng.choice([-0.05, 1.0], n) for _ in range(5)),
            rng.uniform(0, 1023, n),
        ]
    ).astype(np.float32)
    for j in range(ev.shape[1]):
        ev[rng.integers(0, n, 5), j] = np.nan
        ev[rng.integers(0, n, 3), j] = np.inf
    return ev


def _template(lg):
    def f(ch, **kw):
        return Dim(ch, transform=lg, **kw)

    # exact data values of some bounds appear in the data (see _with_bounds)
    quads = QuadrantGate.from_cuts(
        (f("IgD"), f("CD27")), 0.5, 0.5, {"+-": "q1", "++": "q2", "-+": "q3", "--": "q4"}
    )
    pops = [
        Population(
            "lymph",
            None,
            PolygonGate(
                (Dim("FSC-A"), Dim("SSC-A")),
                [(30000, 2000), (95000, 2000), (105000, 30000), (90000, 45000), (25000, 20000)],
            ),
        ),
        Population(
            "singlets",
            "lymph",
            PolygonGate(
                (Dim("FSC-A"), Dim("FSC-H")),
                [(20000, 15000), (120000, 92000), (120000, 115000), (20000, 20000)],
            ),
        ),
        Population(  # under a parent with most events: tested on every event, then and-ed
            "big",
            "lymph",
            PolygonGate((Dim("SSC-A"), Dim("FSC-A")), [(0, 0), (40000, 0), (30000, 90000)]),
        ),
        Population(
            "b", "singlets", RectangleGate((Dim("CD3"), f("CD19")), (None, 0.45), (4000.0, None))
        ),
        *[Population(q, "b", quads, quadrant=q) for q in ("q1", "q2", "q3", "q4")],
        Population(
            "trans",
            "b",
            PolygonGate(
                (f("CD24"), f("CD38")), [(0.4, 0.4), (0.95, 0.4), (0.95, 0.95), (0.4, 0.9)]
            ),
        ),
        Population(
            "ratio",
            "b",
            RectangleGate((RatioDim("r", "CD24", "CD38", transform=None),), (0.5,), (2.0,)),
        ),
        Population("logamp", "singlets", RectangleGate((Dim("LOG"),), (100.0,), (None,))),
        Population("comp", "b", RectangleGate((f("CD24", compensation="m"),), (0.5,), (None,))),
    ]
    spill = pd.DataFrame(
        [[1.0, 0.1], [0.05, 1.0]], index=["CD24", "CD38"], columns=["CD24", "CD38"]
    )
    return Template("t", pops, compensation="uncompensated", matrices={"m": spill})


def _reference(sample, template):
    from cytophen.compensation import compensate

    idx = {c: i for i, c in enumerate(sample.channels)}
    lin = {c: sample.linear_column(i) for c, i in idx.items()}
    s = template.matrices["m"]
    comp = compensate(np.column_stack([lin[c] for c in s.columns]), s)
    comp = {str(c): comp[:, j] for j, c in enumerate(s.index)}
    out = {}
    for p in template.populations:
        g = p.gate.rectangle(p.quadrant) if isinstance(p.gate, QuadrantGate) else p.gate
        cols = []
        for d in g.dims:
            if isinstance(d, RatioDim):
                with np.errstate(all="ignore"):
                    v = d.A * (lin[d.numerator] - d.B) / (lin[d.denominator] - d.C)
            else:
                v = comp[d.channel] if d.compensation == "m" else lin[d.channel]
            cols.append(v if d.transform is None else _applied(d.transform, v))
        x = np.column_stack(cols)
        if isinstance(g, PolygonGate):
            m = fu_gating.points_in_polygon(g.vertices, x)
            m &= ~np.isnan(x).any(axis=1)
        else:
            m = ref_rect(x, g.mins, g.maxs)
        out[p.name] = m if p.parent is None else (m & out[p.parent])
    return out


def _with_bounds(ev, lg):
    """Put the data values of the logicle bounds (and one ulp either side) into the data."""
    x = float(lg.inverse(np.array([0.45]))[0])
    v = np.array([x, np.nextafter(x, 0), np.nextafter(x, np.inf)], dtype=np.float32)
    ev[100:103, 4] = v
    ev[100:103, 3] = 0.0
    ev[100:103, 0:3] = [60000, 50000, 20000]  # inside both scatter polygons
    return ev


@pytest.mark.parametrize("n", [2000, PARALLEL_MIN + 1234])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_engine_tree_equals_plain_evaluation(n, byteorder, monkeypatch):
    from cytophen.engine import _tree as engine

    lg = LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0)
    ev = _with_bounds(_events(n, seed=n), lg).astype(byteorder + "f4")
    ev[200:210, [0, 2]] = [
        [0.0, 0.0],
        [20000, 40000],
        [40000, 0],
        [10000, 10000],
        [30000, 30000],
    ] * 2
    kw = {"$P2G": "2.5", "$P10E": "4,1", "$P10R": "1024"}  # a gain and a log-amplified channel
    s = Sample(ev, CH, [""] * len(CH), kw)
    t = _template(lg)
    ref = _reference(s, t)
    every = []
    original = engine._evaluate_every_event

    def spy(*args):
        out = original(*args)
        every.append(out is not None)
        return out

    monkeypatch.setattr(engine, "_evaluate_every_event", spy)
    got = gate(s, t)
    # the whole-block path is taken for 'big' exactly when the block is read in place
    assert any(every) == (n >= PARALLEL_MIN and byteorder == "<")
    for p in t.names:
        np.testing.assert_array_equal(got.membership(p), ref[p], err_msg=p)
        assert int(got.count(p)) == int(ref[p].sum())
    assert 0 < int(got.count("b")) < int(got.count("singlets"))
    if n > PARALLEL_MIN:  # the data reach every population
        assert all(int(got.count(p)) > 0 for p in t.names)
