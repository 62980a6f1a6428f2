"""The anchored transitional gate (``anchored_transitional``) on constructed data with known answers.

Known answers come from the generating model: true memberships, the Bayes classifier built from the
true densities (scipy), the true main-population moments, or scikit-learn's MinCovDet as an
independent robust estimate; never from re-running cytophen's own code.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.covariance import MinCovDet

import cytophen.datadriven as dd
from cytophen.datadriven._anchored import _clip_box, robust_location_scatter
from cytophen.engine import gate as engine_gate
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate, PolygonGate
from cytophen.io.sample import Sample
from cytophen.template import Population, Template

MAIN_MU = np.array([0.55, 0.48])
MAIN_COV = 0.065**2 * np.array([[1.0, 0.5], [0.5, 1.0]])
SMALL_MU = np.array([0.76, 0.74])
SMALL_COV = 0.052**2 * np.array([[1.0, 0.5], [0.5, 1.0]])


def naive_like(n=6000, frac=0.08, seed=0, small_mu=SMALL_MU):
    """Naive-B-like data: a big CD24/CD38 cloud and a small CD24hi CD38hi one (truth flags)."""
    rng = np.random.default_rng(seed)
    k = int(round(frac * n))
    X = np.r_[
        rng.multivariate_normal(MAIN_MU, MAIN_COV, n - k),
        rng.multivariate_normal(small_mu, SMALL_COV, k),
    ]
    truth = np.r_[np.zeros(n - k, bool), np.ones(k, bool)]
    return X, truth


def f1(gated, truth):
    return 2 * np.sum(gated & truth) / (gated.sum() + truth.sum())


def inside(est, X):
    return est.to_gate(["CD24", "CD38"]).contains(X)


def bayes(X, frac, small_mu=SMALL_MU):
    """The optimal classifier from the true generating densities."""
    a = np.log(frac) + stats.multivariate_normal(small_mu, SMALL_COV).logpdf(X)
    b = np.log1p(-frac) + stats.multivariate_normal(MAIN_MU, MAIN_COV).logpdf(X)
    return a > b


@pytest.mark.parametrize("frac,seed", [(0.05, 1), (0.08, 2), (0.15, 3)])
def test_gate_is_close_to_the_bayes_classifier(frac, seed):
    X, truth = naive_like(frac=frac, seed=seed)
    est = dd.AnchoredTransitional().fit(X)
    assert not est.fell_back_
    g = inside(est, X)
    oracle = f1(bayes(X, frac), truth)
    assert oracle > 0.9
    assert f1(g, truth) >= oracle - 0.03
    # the share of events gated (what percent-of-parent reports) is right within 1.5 pp
    assert abs(g.mean() - frac) < 0.015
    # the fitted small component sits on the true one
    assert np.allclose(est.small_mean_, SMALL_MU, atol=0.02)
    assert est.small_fraction_ == pytest.approx(frac, abs=0.02)


def test_main_population_is_anchored_and_not_pulled_by_the_small_cloud():
    X, truth = naive_like(n=8000, frac=0.15, seed=4)
    est = dd.AnchoredTransitional().fit(X)
    # the plain mean is pulled towards the small cloud; the anchored one is not
    assert np.linalg.norm(X.mean(axis=0) - MAIN_MU) > 0.025
    assert np.allclose(est.main_mean_, MAIN_MU, atol=0.006)
    assert np.allclose(est.main_covariance_, MAIN_COV, rtol=0.2, atol=2e-4)


def test_cut_line_is_at_the_true_posterior_crossing():
    frac = 0.1
    X, truth = naive_like(n=20000, frac=frac, seed=5)
    est = dd.AnchoredTransitional(small_shape="free", nu=30.0).fit(X)  # ~Gaussian components
    # where the true posterior reaches 0.5 on the segment between the true means
    s = np.linspace(0, 1, 20001)
    P = MAIN_MU + s[:, None] * (SMALL_MU - MAIN_MU)
    true_cross = P[np.flatnonzero(bayes(P, frac))[0]]
    d = (true_cross - est.gate_location_) @ est.normal_  # distance of the true point to the line
    assert abs(d) < 0.015
    assert est.converged_


def test_small_shape_free_also_finds_the_cloud():
    X, truth = naive_like(frac=0.1, seed=6)
    est = dd.AnchoredTransitional(small_shape="free").fit(X)
    assert not est.fell_back_
    assert f1(inside(est, X), truth) > 0.9


def test_other_direction_finds_a_cd25_hi_cd127_lo_cloud():
    X, truth = naive_like(frac=0.1, seed=7, small_mu=np.array([0.76, 0.22]))
    X = np.c_[X[:, 0], X[:, 1]]
    est = dd.AnchoredTransitional(direction=[1, -1]).fit(X)
    assert not est.fell_back_
    assert est.normal_[0] > 0 > est.normal_[1]
    assert f1(inside(est, X), truth) > 0.9
    # the hi-hi direction has no cloud there: fallback, flagged, nothing like the cloud gated
    hh = dd.AnchoredTransitional(direction=[1, 1]).fit(X)
    assert f1(inside(hh, X), truth) < 0.5


def test_robust_location_scatter_matches_sklearn_mincovdet_on_clean_and_contaminated_data():
    rng = np.random.default_rng(8)
    clean = rng.multivariate_normal(MAIN_MU, MAIN_COV, 4000)
    far = rng.multivariate_normal([1.2, 1.2], SMALL_COV, 1200)  # 23 % far contamination
    for X in (clean, np.r_[clean, far]):
        mu, cov, it = robust_location_scatter(X)
        ref = MinCovDet(support_fraction=0.5, random_state=0).fit(X)
        assert np.allclose(mu, ref.location_, atol=0.005)
        assert np.allclose(cov, ref.covariance_, rtol=0.15, atol=1e-4)
        assert np.allclose(mu, MAIN_MU, atol=0.006) and it >= 1
    # a plain covariance is ruined by the contamination
    assert np.cov(np.r_[clean, far].T)[0, 0] > 5 * MAIN_COV[0, 0]


def test_no_small_cloud_falls_back_to_a_fixed_offset_from_the_main_peak():
    rng = np.random.default_rng(9)
    X = rng.multivariate_normal(MAIN_MU, MAIN_COV, 5000)
    est = dd.AnchoredTransitional(fallback_offset=2.5).fit(X)
    assert est.fell_back_ and "main peak + 2.5 SD" in est.reason_
    u = np.array([1.0, 1.0]) / np.sqrt(2)
    sd_u = np.sqrt(u @ MAIN_COV @ u)
    expected = MAIN_MU + 2.5 * sd_u * u
    assert np.allclose(est.gate_location_, expected, atol=0.02)
    assert np.allclose(est.normal_, u)
    # a Gaussian has P(Z > 2.5) = 0.62 % beyond that line
    assert 0.002 < inside(est, X).mean() < 0.015


def test_few_events_in_the_cloud_fall_back_instead_of_guessing():
    rng = np.random.default_rng(10)
    X = np.r_[rng.multivariate_normal(MAIN_MU, MAIN_COV, 70), [[0.8, 0.8], [0.79, 0.77]]]
    est = dd.AnchoredTransitional(min_small=10).fit(X)
    assert est.fell_back_
    assert est.reason_


def test_too_few_events_are_not_measured_through_fit_gate():
    rng = np.random.default_rng(11)
    g = DataDrivenGate(["CD24", "CD38"], "anchored_transitional", {"nu": 6.0})
    out = dd.fit_gate(g, rng.multivariate_normal(MAIN_MU, MAIN_COV, 30), seed=0)
    assert out.gate is None and "needs at least 50" in out.reason
    X, _ = naive_like(frac=0.1, seed=12)
    X[::97] = np.nan  # non-finite rows are dropped, not fatal
    out = dd.fit_gate(g, X, seed=0)
    assert isinstance(out.gate, PolygonGate) and out.fell_back is False
    assert out.details["n_nonfinite"] == len(X[::97])
    assert {"main_mean", "small_mean", "normal", "gate_location", "vertices"} <= set(out.details)


def test_degenerate_data_declines():
    X = np.c_[np.full(200, 0.5), np.linspace(0, 1, 200)]
    with pytest.raises(dd.FitDeclined):
        dd.AnchoredTransitional().fit(X)


def test_deterministic_and_row_order_invariant():
    X, _ = naive_like(frac=0.08, seed=13)
    a = dd.AnchoredTransitional().fit(X)
    b = dd.AnchoredTransitional().fit(X)
    assert np.array_equal(a.vertices_, b.vertices_)
    perm = np.random.default_rng(0).permutation(len(X))
    c = dd.AnchoredTransitional().fit(X[perm])
    assert np.allclose(a.gate_location_, c.gate_location_, atol=1e-8)


@pytest.mark.parametrize(
    "params,word",
    [
        ({"direction": [1, 1, 1]}, "direction"),
        ({"direction": [0, 0]}, "direction"),
        ({"nu": 2.0}, "nu"),
        ({"posterior": 1.0}, "posterior"),
        ({"support_fraction": 0.0}, "support_fraction"),
        ({"small_shape": "round"}, "small_shape"),
        ({"min_small": 0}, "min_small"),
    ],
)
def test_bad_parameters_raise_gate_errors_naming_them(params, word):
    X, _ = naive_like(n=500, seed=14)
    with pytest.raises(GateError, match=word):
        dd.AnchoredTransitional(**params).fit(X)


def test_registered_and_checked_like_every_method():
    assert "anchored_transitional" in dd.available_methods()
    assert dd.get_method("anchored_transitional") is dd.AnchoredTransitional
    assert dd.check_params("anchored_transitional", {"nu": 6, "direction": [1, 1]}) == []
    problems = dd.check_params("anchored_transitional", {"suport_fraction": 0.5})
    assert problems and "support_fraction" in problems[0]
    problems = dd.check_params("anchored_transitional", {"small_shape": "round"})
    assert problems and "small_shape" in problems[0]


def test_clip_box_against_hand_computed_polygons():
    lo, hi = np.array([0.0, 0.0]), np.array([2.0, 2.0])
    # the half-plane x + y >= 2 keeps the upper-right triangle of the square
    tri = _clip_box(lo, hi, np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    assert sorted(map(tuple, np.round(tri, 12))) == [(0.0, 2.0), (2.0, 0.0), (2.0, 2.0)]
    # x >= 0.5 keeps a rectangle of area 1.5 x 2
    rect = _clip_box(lo, hi, np.array([0.5, 0.0]), np.array([1.0, 0.0]))
    assert PolygonGate(["a", "b"], rect).contains(np.array([[0.6, 1.0], [0.4, 1.0]])).tolist() == [
        True,
        False,
    ]
    # a line outside the box leaves nothing
    assert _clip_box(lo, hi, np.array([5.0, 5.0]), np.array([1.0, 1.0])).shape[0] == 0


def test_in_a_template_the_result_records_the_geometry_and_the_fallback_flag():
    X, truth = naive_like(n=8000, frac=0.1, seed=15)
    s = Sample(X.astype(np.float32), ["PE-Cy7-A", "PerCP-A"], ["CD24", "CD38"], path=None)
    g = DataDrivenGate(["CD24", "CD38"], "anchored_transitional", {"nu": 6.0})
    t = Template("t", [Population("transitional", None, g)])
    r = engine_gate(s, t, seed=0)
    assert f1(np.asarray(r.membership("transitional"), bool), truth) > 0.9
    info = r.gates["transitional"]
    assert info["data_driven"] and info["fell_back"] is False
    assert info["geometry"]["kind"] == "polygon"
    assert len(info["details"]["main_mean"]) == 2
