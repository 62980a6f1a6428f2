"""Gate membership kernels vs references: GatingML 2.0 truth (data1.fcs), flowutils' C kernels,
and a plain-numpy transcription of the GatingML rules (property tests on random and lattice points,
edges, vertices, self-crossing polygons, NaN, empty input)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_path
from cytophen.kernels import gating as kg

fu_gating = pytest.importorskip("flowutils.gating")


@pytest.fixture(autouse=True)
def _parallel_paths_even_on_a_busy_machine(monkeypatch):
    """Large inputs take the parallel kernels whatever the machine's load (they are tested)."""
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")


NS = {
    "gating": "http://www.isac-net.org/std/Gating-ML/v2.0/gating",
    "data-type": "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes",
}
G = "{" + NS["gating"] + "}"
DT = "{" + NS["data-type"] + "}"


# ------------------------------------------------------------------------------------------------
# plain-numpy references, written from the rules (not from the kernels)
# ------------------------------------------------------------------------------------------------
def ref_polygon(x, y, vx, vy):
    """Even-odd parity of Sunday's crossing test with the half-open rule, vectorised over points;
    points outside the vertices' bounding box are outside (as flowutils rejects them first, which
    matters only when rounding in ``is_left`` would otherwise count a crossing)."""
    wind = np.zeros(x.shape[0], dtype=np.int64)
    m = len(vx)
    with np.errstate(invalid="ignore"):
        for i in range(m):
            ax, ay, bx, by = vx[i], vy[i], vx[(i + 1) % m], vy[(i + 1) % m]
            is_left = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
            up = (ay <= y) & (y < by) & (is_left > 0)
            down = ~(ay <= y) & (by <= y) & (is_left < 0)
            wind += up.astype(np.int64) - down.astype(np.int64)
        in_box = (x >= min(vx)) & (x <= max(vx)) & (y >= min(vy)) & (y <= max(vy))
    return ((wind % 2) != 0) & in_box


def ref_rectangle(values, lo, hi, open_hi):
    with np.errstate(invalid="ignore"):
        ok = np.all(values >= lo, axis=1)
        below = (values < hi) | open_hi
        return ok & np.all(below, axis=1) & ~np.any(np.isnan(values), axis=1)


def fu_polygon(x, y, vx, vy):
    return fu_gating.points_in_polygon(np.column_stack([vx, vy]), np.column_stack([x, y]))


# ------------------------------------------------------------------------------------------------
# GatingML 2.0 truth on data1.fcs
# ------------------------------------------------------------------------------------------------
def _data1():
    import cytophen

    path = shared_path("gatingml2", "data1.fcs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = cytophen.read_fcs(path)
    return {name: s.linear_column(i) for i, name in enumerate(s.channels)}


def _truth(gate_id: str) -> np.ndarray:
    p = shared_path("gatingml2", "truth", f"Results_{gate_id}.txt")
    return np.loadtxt(p, dtype=np.int64).astype(bool)


def _gate_xml(name: str):
    return ET.parse(shared_path("gatingml2", "gml", name)).getroot()


def _dims(gate) -> list[str]:
    return [d.find(f"{DT}fcs-dimension").get(f"{DT}name") for d in gate.findall(f"{G}dimension")]


@pytest.mark.parametrize(
    "xml_name,gate_id",
    [
        ("gml_poly1_gate.xml", "Polygon1"),
        ("gml_poly2_gate.xml", "Polygon2"),
        ("gml_poly3ns_gate.xml", "Polygon3NS"),
    ],
)
def test_polygon_matches_gatingml_truth(xml_name, gate_id):
    cols = _data1()
    gate = _gate_xml(xml_name).find(f"{G}PolygonGate")
    dx, dy = _dims(gate)
    verts = np.array(
        [
            [float(c.get(f"{DT}value")) for c in v.findall(f"{G}coordinate")]
            for v in gate.findall(f"{G}vertex")
        ]
    )
    got = kg.points_in_polygon(cols[dx], cols[dy], verts[:, 0], verts[:, 1])
    truth = _truth(gate_id)
    assert got.sum() == truth.sum()
    np.testing.assert_array_equal(got, truth)
    # the raster path must give the same events (force it despite the small n)
    np.testing.assert_array_equal(
        kg.points_in_polygon(cols[dx], cols[dy], verts[:, 0], verts[:, 1], grid=64), truth
    )


def test_ellipse_matches_gatingml_truth():
    cols = _data1()
    gate = _gate_xml("gml_ellipse1_gate.xml").find(f"{G}EllipsoidGate")
    dims = _dims(gate)
    mean = np.array(
        [float(c.get(f"{DT}value")) for c in gate.find(f"{G}mean").findall(f"{G}coordinate")]
    )
    cov = np.array(
        [
            [float(e.get(f"{DT}value")) for e in row.findall(f"{G}entry")]
            for row in gate.find(f"{G}covarianceMatrix").findall(f"{G}row")
        ]
    )
    d2 = float(gate.find(f"{G}distanceSquare").get(f"{DT}value"))
    values = np.column_stack([cols[d] for d in dims])
    got = kg.points_in_ellipsoid(values, mean, np.linalg.inv(cov), d2)
    np.testing.assert_array_equal(got, _truth("Ellipse1"))


@pytest.mark.parametrize(
    "xml_name,gate_id",
    [
        ("gml_range_gate.xml", "Range1"),
        ("gml_rect1_gate.xml", "Rectangle1"),
        ("gml_time_range_gate.xml", "Range2"),
    ],
)
def test_rectangle_matches_gatingml_truth(xml_name, gate_id):
    cols = _data1()
    gate = _gate_xml(xml_name).find(f"{G}RectangleGate")
    dims = gate.findall(f"{G}dimension")
    names = _dims(gate)
    lo = np.array([float(d.get(f"{G}min", "-inf")) for d in dims])
    hi = np.array([float(d.get(f"{G}max", "inf")) for d in dims])
    open_hi = np.array([d.get(f"{G}max") is None for d in dims])
    values = np.column_stack([cols[n] for n in names])
    np.testing.assert_array_equal(kg.points_in_rectangle(values, lo, hi, open_hi), _truth(gate_id))


# ------------------------------------------------------------------------------------------------
# polygon properties
# ------------------------------------------------------------------------------------------------
def _polygon_case(rng, m, span, n, lattice):
    v = rng.integers(0, span, size=(m, 2)).astype(np.float64)
    if lattice:
        p = rng.integers(-1, span + 1, size=(n, 2)).astype(np.float64)
    else:
        p = rng.uniform(-1, span + 1, size=(n, 2))
    return v, p


@pytest.mark.parametrize("grid", [None, 0, 32])
def test_polygon_lattice_edges_and_vertices_match_flowutils(grid):
    """Integer vertices and integer points put many points exactly on edges and vertices."""
    rng = np.random.default_rng(7)
    n_on_boundary = 0
    for _ in range(150):
        m = int(rng.integers(3, 10))
        v, p = _polygon_case(rng, m, 12, 3000, lattice=True)
        exp = fu_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1])
        got = kg.points_in_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1], grid=grid)
        np.testing.assert_array_equal(got, exp)
        np.testing.assert_array_equal(got, ref_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1]))
        # count points lying on an edge, to be sure the case is exercised
        for i in range(m):
            a, b = v[i], v[(i + 1) % m]
            cross = (b[0] - a[0]) * (p[:, 1] - a[1]) - (p[:, 0] - a[0]) * (b[1] - a[1])
            within = (np.minimum(a[0], b[0]) <= p[:, 0]) & (p[:, 0] <= np.maximum(a[0], b[0]))
            within &= (np.minimum(a[1], b[1]) <= p[:, 1]) & (p[:, 1] <= np.maximum(a[1], b[1]))
            n_on_boundary += int(np.sum((cross == 0) & within))
    assert n_on_boundary > 1000


def test_polygon_edge_rule_examples():
    """Hand-worked half-open rule on the unit square (0,0)-(2,0)-(2,2)-(0,2)."""
    vx = np.array([0.0, 2.0, 2.0, 0.0])
    vy = np.array([0.0, 0.0, 2.0, 2.0])
    pts = {
        (1.0, 1.0): True,  # interior
        (0.0, 1.0): True,  # left edge (goes down): is_left == 0 is not counted, the right edge is
        (2.0, 1.0): False,  # right edge (goes up): not strictly left of it
        (1.0, 0.0): True,  # bottom edge: y == ay counts (half-open [ay, by))
        (1.0, 2.0): False,  # top edge: y == max is outside the half-open span
        (0.0, 0.0): True,
        (2.0, 2.0): False,
        (3.0, 1.0): False,
    }
    x = np.array([k[0] for k in pts])
    y = np.array([k[1] for k in pts])
    exp = np.array(list(pts.values()))
    np.testing.assert_array_equal(kg.points_in_polygon(x, y, vx, vy), exp)
    np.testing.assert_array_equal(fu_polygon(x, y, vx, vy), exp)


def test_polygon_self_crossing_even_odd():
    """A pentagram: the central pentagon has winding number 2, so even-odd says outside."""
    ang = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    vx, vy = np.cos(ang), np.sin(ang)
    x = np.array([0.0, 0.0, 0.0])
    y = np.array([0.0, 0.7, 2.0])  # centre (out), a star point (in), far away (out)
    np.testing.assert_array_equal(kg.points_in_polygon(x, y, vx, vy), [False, True, False])


def test_polygon_nan_and_empty():
    vx = np.array([0.0, 4.0, 4.0, 0.0])
    vy = np.array([0.0, 0.0, 4.0, 4.0])
    x = np.array([np.nan, 1.0, np.nan, 1.0, np.inf, -np.inf])
    y = np.array([1.0, np.nan, np.nan, 1.0, 1.0, 1.0])
    for grid in (None, 0, 16):
        np.testing.assert_array_equal(
            kg.points_in_polygon(x, y, vx, vy, grid=grid), [False, False, False, True, False, False]
        )
    empty = kg.points_in_polygon(np.array([]), np.array([]), vx, vy)
    assert empty.shape == (0,) and empty.dtype == np.bool_


def test_polygon_large_input_parallel_and_raster_match_flowutils():
    rng = np.random.default_rng(3)
    n = kg.PARALLEL_MIN * 3
    for _ in range(4):
        m = int(rng.integers(3, 12))
        v = rng.uniform(0, 1000, size=(m, 2))
        p = rng.normal(500, 300, size=(n, 2))
        p[::997] = np.round(p[::997])  # a sprinkling of lattice points
        exp = fu_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1])
        np.testing.assert_array_equal(kg.points_in_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1]), exp)
    # events exactly on the vertices and on edge midpoints of a lattice polygon, many of them
    v = np.array([[0, 0], [8, 0], [8, 4], [4, 8], [0, 4]], dtype=float)
    pts = np.vstack([v, (v + np.roll(v, -1, axis=0)) / 2])
    p = np.repeat(pts, n // len(pts) + 1, axis=0)
    exp = fu_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1])
    np.testing.assert_array_equal(kg.points_in_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1]), exp)



def test_prepared_polygon_switches_to_its_raster_once_it_pays_with_the_same_answers():
    """A gate reused sample after sample: small calls start exact, and once the polygon has
    tested 2 x RASTER_MIN events they use one raster built once; answers never change (lattice
    points on the edges and vertices included)."""
    rng = np.random.default_rng(11)
    v = np.array([[0, 0], [8, 0], [8, 4], [4, 8], [0, 4]], dtype=float)
    prepared = kg.PreparedPolygon(v[:, 0], v[:, 1])
    n = kg.RASTER_MIN // 4
    for call in range(10):
        p = rng.uniform(-1, 9, size=(n, 2))
        p[::7] = np.round(p[::7])  # on the lattice: edges and vertices
        exp = fu_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1])
        got = kg.points_in_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1], prepared=prepared)
        np.testing.assert_array_equal(got, exp)
        # exact until 2 x RASTER_MIN events have been tested (the 8th call), the raster after
        assert (256 in prepared._rasters) == (call >= 7), call


coord = st.integers(min_value=-5, max_value=5).map(float)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    verts=st.lists(st.tuples(coord, coord), min_size=3, max_size=9),
    pts=st.lists(
        st.tuples(
            st.one_of(coord, st.floats(-6, 6, allow_nan=False), st.just(float("nan"))),
            st.one_of(coord, st.floats(-6, 6, allow_nan=False), st.just(float("nan"))),
        ),
        min_size=0,
        max_size=60,
    ),
    grid=st.sampled_from([None, 0, 4, 16]),
)
def test_polygon_property_vs_references(verts, pts, grid):
    v = np.array(verts, dtype=np.float64)
    p = np.array(pts, dtype=np.float64).reshape(-1, 2)
    got = kg.points_in_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1], grid=grid)
    np.testing.assert_array_equal(got, ref_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1]))
    if len(p):
        np.testing.assert_array_equal(got, fu_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1]))
    assert not np.any(got & np.isnan(p).any(axis=1))


@settings(max_examples=100, deadline=None)
@given(
    verts=st.lists(
        st.tuples(st.floats(-1e3, 1e3, allow_nan=False), st.floats(-1e3, 1e3, allow_nan=False)),
        min_size=3,
        max_size=12,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_polygon_property_random_float_polygons_with_raster(verts, seed):
    v = np.array(verts, dtype=np.float64)
    rng = np.random.default_rng(seed)
    lo, hi = v.min(axis=0) - 1, v.max(axis=0) + 1
    p = rng.uniform(lo, hi, size=(3000, 2))
    p[: len(v)] = v  # the vertices themselves
    got = kg.points_in_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1], grid=64)
    np.testing.assert_array_equal(got, fu_polygon(p[:, 0], p[:, 1], v[:, 0], v[:, 1]))


def test_polygon_bad_input():
    with pytest.raises(ValueError, match="at least 3 vertices"):
        kg.points_in_polygon(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="differ in length"):
        kg.points_in_polygon(np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3))


# ------------------------------------------------------------------------------------------------
# rectangle and ellipsoid
# ------------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    d=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([0, 1, 50, 500]),
)
def test_rectangle_property_vs_reference(d, seed, n):
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 4, size=(n, d)).astype(np.float64)  # lattice: ties with bounds
    values[rng.random((n, d)) < 0.05] = np.nan
    lo = rng.integers(-3, 1, size=d).astype(np.float64)
    lo[rng.random(d) < 0.3] = -np.inf
    hi = lo + rng.integers(0, 4, size=d)
    open_hi = rng.random(d) < 0.3
    got = kg.points_in_rectangle(values, lo, hi, open_hi)
    np.testing.assert_array_equal(got, ref_rectangle(values, lo, hi, open_hi))


def test_rectangle_bounds_half_open_and_large():
    v = np.array([[1.0], [2.0], [3.0], [np.nan], [np.inf]])
    np.testing.assert_array_equal(
        kg.points_in_rectangle(v, np.array([1.0]), np.array([3.0]), np.array([False])),
        [True, True, False, False, False],
    )
    np.testing.assert_array_equal(
        kg.points_in_rectangle(v, np.array([1.0]), np.array([0.0]), np.array([True])),
        [True, True, True, False, True],
    )
    rng = np.random.default_rng(0)
    big = rng.integers(0, 10, size=(kg.PARALLEL_MIN * 2, 3)).astype(np.float64)
    lo, hi, oh = np.array([2.0, -np.inf, 0]), np.array([7.0, 5, 0]), np.array([False, False, True])
    np.testing.assert_array_equal(
        kg.points_in_rectangle(big, lo, hi, oh), ref_rectangle(big, lo, hi, oh)
    )


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_ellipsoid_vs_flowutils(d):
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    cov = a @ a.T + d * np.eye(d)
    mean = rng.normal(size=d)
    n = kg.PARALLEL_MIN + 1234 if d == 2 else 5000
    pts = rng.normal(size=(n, d)) * 3 + mean
    pts[::101, 0] = np.nan
    exp = fu_gating.points_in_ellipsoid(cov, mean, 4.0, pts)
    got = kg.points_in_ellipsoid(pts, mean, np.linalg.inv(cov), 4.0)
    # identical except possibly events within rounding of the boundary
    inv = np.linalg.inv(cov)
    z = pts - mean
    dist = np.einsum("ij,jk,ik->i", z, inv, z)
    close = np.abs(dist - 4.0) < 1e-9
    np.testing.assert_array_equal(got[~close], exp[~close])
    assert not got[np.isnan(pts[:, 0])].any()


def test_ellipsoid_boundary_inclusive():
    # unit circle, d2 = 1: (1, 0) and (0, -1) exactly on the boundary are inside
    pts = np.array([[1.0, 0.0], [0.0, -1.0], [1.0, 0.5], [0.0, 0.0]])
    got = kg.points_in_ellipsoid(pts, np.zeros(2), np.eye(2), 1.0)
    np.testing.assert_array_equal(got, [True, True, False, True])
    assert kg.points_in_ellipsoid(np.empty((0, 2)), np.zeros(2), np.eye(2), 1.0).shape == (0,)


# ------------------------------------------------------------------------------------------------
# compiled once, cached on disk
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kernels_are_cached_on_disk(tmp_path):
    """A second process finds every kernel it calls in the on-disk cache (no recompilation)."""
    script = textwrap.dedent(
        """
        import json, numpy as np
        from cytophen.kernels import gating as kg, transforms as kt
        n = kg.PARALLEL_MIN + 10
        rng = np.random.default_rng(0)
        x, y = rng.uniform(0, 10, n), rng.uniform(0, 10, n)
        vx, vy = np.array([1.0, 9, 5]), np.array([1.0, 2, 9])
        for k in (x[:10], x):
            kg.points_in_polygon(k, y[: len(k)], vx, vy)
            kg.points_in_rectangle(np.column_stack([k, k]), np.zeros(2), np.ones(2), np.zeros(2, bool))
            kg.points_in_ellipsoid(np.column_stack([k, k]), np.zeros(2), np.eye(2), 1.0)
            p, t = kt.logicle_params(262144.0, 0.5, 4.5, 0.0)
            kt.logicle_inverse(kt.logicle_scale(k, p, t), p, t)
            p, t = kt.hyperlog_params(262144.0, 0.5, 4.5, 0.0)
            kt.hyperlog_inverse(kt.hyperlog_scale(k, p, t), p, t)
        stats = {}
        for mod in (kg, kt):
            for name in dir(mod):
                f = getattr(mod, name)
                if hasattr(f, "stats") and hasattr(f, "signatures") and f.signatures:
                    stats[mod.__name__ + "." + name] = [sum(f.stats.cache_hits.values()),
                                                         sum(f.stats.cache_misses.values())]
        print(json.dumps(stats))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    import json

    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert sum(m for _, m in first.values()) > 0  # the first process compiled
    # the second one loads the outer kernels from disk (inner ones then need no compiling at all)
    assert second and set(second) <= set(first)
    assert {
        "cytophen.kernels.gating._poly_parallel",
        "cytophen.kernels.transforms._logicle_parallel",
    } <= set(second)
    misses = {k: v for k, v in second.items() if v[1] > 0}
    assert not misses, f"recompiled in the second process: {misses}"
    assert all(h > 0 for h, _ in second.values())


# ------------------------------------------------------------------------------------------------
# rectangle bands (bounds tested in data units) and float32 / strided polygon input
# ------------------------------------------------------------------------------------------------
def ref_band(x, st, bit, lo_out, lo_in, hi_in, hi_out, has_hi):
    """The band rule written out with numpy: 0 = outside, bit = undecided, else unchanged."""
    out = st.copy()
    with np.errstate(invalid="ignore"):
        gone = np.isnan(x) | (x < lo_out) | (has_hi & (x >= hi_out))
        unsure = ~gone & ((x < lo_in) | (has_hi & (x >= hi_in)))
    live = st != 0
    out[live & gone] = 0
    out[live & unsure] |= np.uint8(bit)
    return out


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([0, 1, 60, 700]),
    has_hi=st.booleans(),
    bit=st.sampled_from([0, 2, 4, 128]),
)
def test_band_update_property_vs_reference(seed, n, has_hi, bit):
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, size=n).astype(np.float64)  # lattice: ties with every bound
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.03] = np.inf
    x[rng.random(n) < 0.03] = -np.inf
    lo_out = float(rng.integers(-4, 2))
    lo_in = lo_out + float(rng.integers(0, 2))
    hi_in = lo_in + float(rng.integers(0, 3))
    hi_out = hi_in + float(rng.integers(0, 2))
    if rng.random() < 0.2:
        lo_out = lo_in = -np.inf
    st0 = rng.choice(np.array([0, 1, 3], dtype=np.uint8), size=n)
    got = st0.copy()
    kg.band_update(x, got, bit, lo_out, lo_in, hi_in, hi_out, has_hi)
    np.testing.assert_array_equal(got, ref_band(x, st0, bit, lo_out, lo_in, hi_in, hi_out, has_hi))


def test_band_update_without_band_is_the_rectangle_rule_and_large():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 10, size=kg.BAND_PARALLEL_MIN + 5).astype(np.float64)
    x[::97] = np.nan
    st_ = np.ones(x.shape[0], dtype=np.uint8)
    kg.band_update(x, st_, 2, 2.0, 2.0, 7.0, 7.0, True)
    ref = ref_rectangle(x[:, None], np.array([2.0]), np.array([7.0]), np.array([False]))
    np.testing.assert_array_equal(st_.view(np.bool_), ref)
    with pytest.raises(ValueError):
        kg.band_update(x, np.ones(3, dtype=np.uint8), 0, 0, 0)


@pytest.mark.parametrize("n", [50, kg.PARALLEL_MIN + 11])
def test_polygon_float32_and_strided_columns_equal_float64(n):
    rng = np.random.default_rng(n)
    block = rng.uniform(-1, 11, size=(n, 3)).astype(np.float32)
    block[: n // 3, :2] = np.round(block[: n // 3, :2])  # lattice: on edges and vertices
    block[5, 0] = np.nan
    block[6, 1] = np.inf
    vx = np.array([0.0, 10, 10, 5, 0, 7])
    vy = np.array([0.0, 0, 10, 4, 10, 3.5])  # self-crossing
    x64 = block[:, 0].astype(np.float64)
    y64 = block[:, 1].astype(np.float64)
    expected = ref_polygon(x64, y64, vx, vy)
    np.testing.assert_array_equal(kg.points_in_polygon(x64, y64, vx, vy), expected)
    got = kg.points_in_polygon(block[:, 0], block[:, 1], vx, vy)  # strided float32 views
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(fu_polygon(x64, y64, vx, vy), expected)
