"""mixture_ellipse ``dead_scale``/``dead_quantile``: the lymphocyte gate also takes the dead cells.

Constructed scatter data with a known answer: a log-normal live cloud, a dead cloud of the same
cells shrunk in FSC and grown in SSC (each dead event is a live-like event times the factors),
area doublets, debris and monocytes. The truth of every event is known, so the live share of the
gated cells can be compared with the true one.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MPath
from scipy.spatial import ConvexHull

from cytophen.datadriven import MixtureEllipse, check_params
from cytophen.datadriven._regions import _star_union
from cytophen.errors import GateError
from cytophen.gates import EllipsoidGate, PolygonGate

SCALE = [0.72, 1.25]
ARGS = {"K": 4, "target": [0.25, 0.08], "quantile": 0.94, "doublets_quantile": 0.25, "merge": True}


def _scatter(seed=0, n_live=18000, n_dead=1500):
    rng = np.random.default_rng(seed)

    def cells(n):
        return np.c_[
            0.25 * np.exp(0.12 * rng.standard_normal(n)),
            0.075 * np.exp(0.24 * rng.standard_normal(n)),
        ]

    live = cells(n_live)
    dead = cells(n_dead) * np.array(SCALE)
    a, b = cells(900), cells(900)
    doublet = a + b
    debris = np.c_[
        0.07 * np.exp(0.5 * rng.standard_normal(2000)),
        0.03 * np.exp(0.7 * rng.standard_normal(2000)),
    ]
    mono = np.c_[
        0.42 * np.exp(0.12 * rng.standard_normal(3000)),
        0.2 * np.exp(0.22 * rng.standard_normal(3000)),
    ]
    X = np.r_[live, dead, doublet, debris, mono]
    kind = np.repeat(
        ["live", "dead", "doublet", "debris", "mono"], [n_live, n_dead, 900, 2000, 3000]
    )
    return X, kind


@pytest.mark.parametrize("seed", [0, 1])
def test_dead_cells_are_taken_in_and_the_live_share_is_right(seed):
    X, kind = _scatter(seed)
    plain = MixtureEllipse(**ARGS).fit(X).to_gate(["FSC-A", "SSC-A"]).contains(X)
    est = MixtureEllipse(**ARGS, dead_scale=SCALE, dead_quantile=0.9).fit(X)
    g = est.to_gate(["FSC-A", "SSC-A"])
    assert isinstance(g, PolygonGate)
    m = g.contains(X)
    live, dead = kind == "live", kind == "dead"
    assert m[dead].mean() > 0.9 > plain[dead].mean()  # the plain gate cuts the dead cloud off
    assert m[live].mean() >= plain[live].mean()
    true_share = live.sum() / (live.sum() + dead.sum())
    share = lambda sel: (sel & live).sum() / (sel & (live | dead)).sum()  # noqa: E731
    assert abs(share(m) - true_share) < 0.5 * abs(share(plain) - true_share)
    # debris and monocytes stay out about as well as before
    other = (kind == "debris") | (kind == "mono")
    assert (m & other).sum() <= (plain & other).sum() + 0.01 * (live | dead).sum()
    assert np.allclose(est.dead_mean_, np.array(SCALE) * est.mean_)


def test_gate_is_the_union_not_one_hull():
    X, _ = _scatter(2)
    both = MixtureEllipse(**ARGS, dead_scale=SCALE, dead_quantile=0.9).fit(X)
    plain = MixtureEllipse(**ARGS).fit(X)
    gb, gp = both.to_gate(["a", "b"]), plain.to_gate(["a", "b"])
    rng = np.random.default_rng(3)
    P = np.c_[rng.uniform(0.05, 0.7, 40000), rng.uniform(0.0, 0.3, 40000)]
    inp, inb = gp.contains(P), gb.contains(P)
    assert inb[inp].mean() > 0.995  # everything the plain gate takes is still taken
    # the dead cloud's centre is inside; the wedge above the cloud between the dead and the
    # doublet ellipses, which one convex hull of all of them would add, is not
    assert gb.contains(both.dead_mean_[None, :])[0]
    allv = np.r_[gp.vertices, gb.vertices]
    hull_all = MPath(allv[ConvexHull(allv).vertices]).contains_points(P)
    assert not (inb & ~hull_all).any()
    wedge = hull_all & ~inb
    assert wedge.sum() > 0.01 * inb.sum() and np.all(P[wedge, 1] > both.mean_[1])


@pytest.mark.parametrize("n", [8, 360])
def test_star_union_is_the_union_of_the_polygons(n):
    """Exact, whatever the grid: the polygons' vertices and the directions where the outer
    polygon changes are boundary vertices of the union."""
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    A = np.c_[0.3 + 0.1 * np.cos(t), 0.1 + 0.03 * np.sin(t)]  # ellipse
    B = np.c_[0.22 + 0.12 * np.cos(t), 0.12 + 0.05 * np.sin(t)]  # shifted ellipse, overlapping
    center = np.array([0.28, 0.1])
    U = _star_union([A, B], center, n=n)
    P = np.random.default_rng(4).uniform([0.05, 0.0], [0.45, 0.2], (200_000, 2))
    want = MPath(A).contains_points(P) | MPath(B).contains_points(P)
    got = MPath(U).contains_points(P)
    assert want.any() and (~want).any()
    assert np.count_nonzero(want != got) == 0


def test_default_is_unchanged_and_bad_arguments_are_errors():
    X, _ = _scatter(5, n_live=4000, n_dead=300)
    assert isinstance(MixtureEllipse(K=3).fit(X).to_gate(["a", "b"]), EllipsoidGate)
    a = MixtureEllipse(**ARGS).fit(X)
    assert not hasattr(a, "dead_mean_")
    assert check_params("mixture_ellipse", {"dead_scale": SCALE, "dead_quantile": 0.9}) == []
    for bad, word in (
        ({"dead_scale": SCALE}, "dead_scale and dead_quantile go together"),
        ({"dead_quantile": 0.9}, "dead_scale and dead_quantile go together"),
        ({"dead_scale": [0.7], "dead_quantile": 0.9}, "'dead_scale'"),
        ({"dead_scale": [0.7, -1.0], "dead_quantile": 0.9}, "'dead_scale'"),
        ({"dead_scale": SCALE, "dead_quantile": 1.5}, "'dead_quantile'"),
    ):
        with pytest.raises(GateError, match=word):
            MixtureEllipse(K=3, **bad).fit(X)
        assert any(word in p for p in check_params("mixture_ellipse", {"K": 3, **bad}))


def test_star_union_drops_only_vertices_in_line_with_their_neighbours():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tri = np.array([[0.5, -0.5], [1.5, 0.5], [0.5, 0.5]])
    center = np.array([0.6, 0.3])
    U = _star_union([square, tri], center, n=360)
    # the union's corners: 3 of the square, 2 of the triangle, 2 edge crossings
    assert len(U) == 7
    P = np.random.default_rng(5).uniform([-0.2, -0.7], [1.7, 1.2], (100_000, 2))
    want = MPath(square).contains_points(P) | MPath(tri).contains_points(P)
    assert np.array_equal(MPath(U).contains_points(P), want)
