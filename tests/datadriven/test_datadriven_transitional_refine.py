"""``anchored_transitional`` on more than two dimensions (the n-D refinement) on constructed data.

The data follow a factor model like stained cells: every marker's deviation shares a per-cell
brightness factor, the small population differs from the main one only on the first two markers,
and the others are equal on both. Known answers come from the generating model (true memberships,
the Bayes classifier from the true densities, the sign of the true discriminant), never from
re-running cytophen's own code.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import cytophen.datadriven as dd
from cytophen.engine import gate as engine_gate
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate, EllipsoidGate
from cytophen.io.sample import Sample
from cytophen.template import Population, Template

SD = 0.05
RHO = 0.5  # share of each marker's variance that is the cell's brightness
MAIN_MU = np.array([0.55, 0.48, 0.62, 0.70, 0.20])  # CD24, CD38, CD19, CD20, CD27
SMALL_MU = np.array([0.69, 0.63, 0.62, 0.70, 0.20])  # differs on CD24 and CD38 only
COV = SD**2 * ((1 - RHO) * np.eye(5) + RHO * np.ones((5, 5)))
NAMES = ["CD24", "CD38", "CD19", "CD20", "CD27"]


def cells(n=8000, frac=0.08, seed=0):
    """Main and small clouds with a shared brightness factor (truth flags)."""
    rng = np.random.default_rng(seed)
    k = int(round(frac * n))
    X = np.r_[
        rng.multivariate_normal(MAIN_MU, COV, n - k), rng.multivariate_normal(SMALL_MU, COV, k)
    ]
    return X, np.r_[np.zeros(n - k, bool), np.ones(k, bool)]


def f1(gated, truth):
    return 2 * np.sum(gated & truth) / (gated.sum() + truth.sum())


def bayes(X, frac, dims):
    """The optimal classifier on ``dims`` from the true generating densities."""
    c = COV[np.ix_(dims, dims)]
    a = np.log(frac) + stats.multivariate_normal(SMALL_MU[dims], c).logpdf(X[:, dims])
    b = np.log1p(-frac) + stats.multivariate_normal(MAIN_MU[dims], c).logpdf(X[:, dims])
    return a > b


def inside(est, X, names=NAMES):
    return est.to_gate(names[: X.shape[1]]).contains(X)


@pytest.mark.parametrize("frac,seed", [(0.06, 1), (0.1, 2)])
def test_brightness_markers_recover_what_two_markers_cannot(frac, seed):
    X, truth = cells(frac=frac, seed=seed)
    best_2d, best_nd = f1(bayes(X, frac, [0, 1]), truth), f1(bayes(X, frac, [0, 1, 2, 3, 4]), truth)
    assert best_nd > best_2d + 0.05  # the construction: brightness carries real information
    flat = dd.AnchoredTransitional(nu=6.0).fit(X[:, :2])
    est = dd.AnchoredTransitional(nu=6.0).fit(X)
    assert not est.fell_back_ and est.refined_
    g = inside(est, X)
    assert f1(g, truth) >= best_nd - 0.03
    assert f1(g, truth) > f1(inside(flat, X[:, :2]), truth) + 0.03
    # the 2-D fit decides how many: the same count as the 2-D gate alone
    assert g.sum() == est.n_start_ == inside(flat, X[:, :2]).sum()
    # equal markers are weighted against the shared brightness (the true discriminant's sign)
    assert np.all(est.normal_[2:] < 0) and np.all(est.normal_[:2] > 0)


def test_gate_is_a_half_space_over_all_dimensions_through_fit_gate_and_a_template():
    X, truth = cells(frac=0.08, seed=3)
    g = DataDrivenGate(NAMES, "anchored_transitional", {"nu": 6.0})
    out = dd.fit_gate(g, X, seed=0)
    assert isinstance(out.gate, EllipsoidGate) and out.fell_back is False
    assert {"n_start", "exchanged_fraction", "refined", "line_normal"} <= set(out.details)
    s = Sample(X.astype(np.float32), [f"{m}-A" for m in NAMES], NAMES, path=None)
    r = engine_gate(s, Template("t", [Population("transitional", None, g)]), seed=0)
    gated = np.asarray(r.membership("transitional"), bool)
    assert f1(gated, truth) >= f1(bayes(X, 0.08, [0, 1, 2, 3, 4]), truth) - 0.03


def test_order_of_the_extra_dimensions_does_not_matter():
    X, _ = cells(frac=0.08, seed=4)
    a = dd.AnchoredTransitional().fit(X)
    b = dd.AnchoredTransitional().fit(X[:, [0, 1, 4, 2, 3]])
    assert np.array_equal(inside(a, X), inside(b, X[:, [0, 1, 4, 2, 3]]))


def test_too_many_exchanged_events_keep_the_2d_line_flagged():
    X, _ = cells(frac=0.08, seed=5)
    flat = inside(dd.AnchoredTransitional().fit(X[:, :2]), X[:, :2])
    est = dd.AnchoredTransitional(max_exchanged=1e-6).fit(X)
    assert est.fell_back_ and "max_exchanged" in est.reason_ and not est.refined_
    assert est.exchanged_fraction_ > 0
    assert np.array_equal(inside(est, X), flat)


def test_no_small_cloud_keeps_the_2d_fallback_line():
    rng = np.random.default_rng(6)
    X = rng.multivariate_normal(MAIN_MU, COV, 5000)
    flat = inside(dd.AnchoredTransitional().fit(X[:, :2]), X[:, :2])
    est = dd.AnchoredTransitional().fit(X)
    assert est.fell_back_ and "main peak" in est.reason_ and not est.refined_
    assert np.array_equal(inside(est, X), flat)


@pytest.mark.parametrize(
    "params,cols,word",
    [({"max_exchanged": 0.0}, 5, "max_exchanged"), ({}, 1, "2 or more dimensions")],
)
def test_bad_parameters_and_shapes_raise_gate_errors(params, cols, word):
    X, _ = cells(n=500, seed=7)
    with pytest.raises(GateError, match=word):
        dd.AnchoredTransitional(**params).fit(X[:, :cols])
