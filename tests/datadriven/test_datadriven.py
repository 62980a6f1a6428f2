"""Data-driven gate estimators on constructed data with known answers (issue 5).

Expected values come from the generating model (true density minima, posterior crossings, true
membership), hand calculations (R's bw.nrd0 and type-7 quantile) or an independent implementation
(scipy's gaussian_kde), never from re-running cytophen's own code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.stats import gaussian_kde

import cytophen
import cytophen.datadriven as dd
from cytophen.datadriven._kde import bw_nrd0, density
from cytophen.engine import FitOutcome, fit_groups, fit_pooled
from cytophen.engine import gate as engine_gate
from cytophen.errors import GateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    EllipsoidGate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from cytophen.io.sample import Sample
from cytophen.template import Population, Template


def two_normals(n=20000, w=0.5, m1=0.0, m2=6.0, s1=1.0, s2=1.0, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.random(n) < w
    x = np.where(k, rng.normal(m1, s1, n), rng.normal(m2, s2, n))
    return x, k


def true_valley(w, m1, m2, s1, s2):
    f = lambda t: w * stats.norm.pdf(t, m1, s1) + (1 - w) * stats.norm.pdf(t, m2, s2)  # noqa: E731
    return optimize.minimize_scalar(f, bounds=(m1, m2), method="bounded").x


# -- KDE ------------------------------------------------------------------------------------
def test_bw_nrd0_matches_r_by_hand():
    # R: bw.nrd0(1:10) = 0.9 * min(sd, IQR/1.34) * 10^(-1/5) = 0.9 * 3.02765 * 0.630957
    assert bw_nrd0(np.arange(1.0, 11.0)) == pytest.approx(
        0.9 * np.std(np.arange(1, 11), ddof=1) * 10**-0.2, rel=1e-12
    )
    assert bw_nrd0(np.arange(1.0, 11.0)) == pytest.approx(1.719, abs=5e-4)  # R prints 1.719
    # zero spread falls back (R: lo <- abs(x[1]))
    assert bw_nrd0(np.full(10, 3.0)) == pytest.approx(0.9 * 3.0 * 10**-0.2)


def test_density_matches_scipy_kde_on_the_same_bandwidth():
    x, _ = two_normals(4000, w=0.7, seed=1)
    grid, y, bw = density(x, adjust=2)
    ref = gaussian_kde(x, bw_method=bw / np.std(x, ddof=1))(grid)
    assert np.max(np.abs(y - ref)) < 2e-3 * ref.max()
    assert grid.size == 512 and grid[0] == pytest.approx(x.min() - 3 * bw)
    assert np.trapezoid(y, grid) == pytest.approx(1.0, abs=5e-3)


# -- mindensity -----------------------------------------------------------------------------
@pytest.mark.parametrize("w,m2,s2", [(0.5, 6.0, 1.0), (0.75, 5.0, 0.7), (0.3, 7.0, 1.5)])
def test_mindensity_finds_the_true_valley(w, m2, s2):
    x, _ = two_normals(30000, w=w, m2=m2, s2=s2, seed=2)
    est = dd.MinDensity(adjust=1.0).fit(x)
    assert not est.fell_back_
    assert est.threshold_ == pytest.approx(true_valley(w, 0.0, m2, 1.0, s2), abs=0.3)
    assert len(est.peaks_) >= 2


def test_mindensity_gate_range_picks_the_valley_inside_it():
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0, 0.7, 10000), rng.normal(4, 0.7, 6000), rng.normal(8, 0.7, 3000)]
    est = dd.MinDensity(gate_range=[5, 10], adjust=1.0).fit(x)
    assert est.threshold_ == pytest.approx(6.0, abs=0.4)
    est2 = dd.MinDensity(adjust=1.0).fit(x)  # between the two highest peaks (0 and 4)
    assert est2.threshold_ == pytest.approx(2.0, abs=0.4)


def test_mindensity_unimodal_falls_back_deterministically_and_says_so():
    x = np.random.default_rng(4).normal(0, 1, 20000)
    est = dd.MinDensity().fit(x)
    assert est.fell_back_ and "peak" in est.reason_
    assert est.threshold_ > 2.0  # right of the single (negative) peak, not min(x)
    low = dd.MinDensity(unimodal="range_low").fit(x)
    assert low.threshold_ == pytest.approx(x.min())  # openCyto's positive=TRUE fallback
    hi = dd.MinDensity(unimodal="lower_tail").fit(x)
    assert hi.threshold_ < -2.0


def test_mindensity_truncation_only_affects_fitting():
    x, _ = two_normals(20000, seed=5)
    x = np.r_[x, np.full(3000, 30.0)]  # a pile of off-scale events would add a third peak
    est = dd.MinDensity(adjust=1.0, max=20).fit(x)
    assert est.threshold_ == pytest.approx(3.0, abs=0.3)


# -- tail, quantile, peak offset ------------------------------------------------------------
def test_tailgate_cuts_where_the_main_peak_ends():
    rng = np.random.default_rng(6)
    x = np.r_[rng.normal(0, 1, 18000), rng.normal(6, 0.5, 2000)]
    est = dd.TailGate(tol=0.01).fit(x)
    assert est.reference_peak_ == pytest.approx(0.0, abs=0.2)
    assert 2.0 < est.threshold_ < 4.5
    left = dd.TailGate(side="left").fit(x)
    assert -4.5 < left.threshold_ < -2.0
    assert dd.TailGate(bias=0.5).fit(x).threshold_ == pytest.approx(est.threshold_ + 0.5)


def test_quantile_is_r_type_7():
    # R: quantile(1:100, 0.9) = 90.1
    est = dd.QuantileGate(probs=0.9).fit(np.arange(1.0, 101.0))
    assert est.threshold_ == pytest.approx(90.1)
    with pytest.raises(GateError, match="probs"):
        dd.QuantileGate(probs=1.5).fit(np.arange(10.0))


def test_peak_offset_from_the_second_mode():
    x, _ = two_normals(20000, w=0.7, m2=5.0, seed=7)
    est = dd.PeakOffset(peak=-1, offset=-1.0).fit(x)
    assert est.peak_location_ == pytest.approx(5.0, abs=0.2)
    assert est.threshold_ == pytest.approx(4.0, abs=0.2)
    assert dd.PeakOffset(peak=2, offset=0.5).fit(x).threshold_ == pytest.approx(5.5, abs=0.2)
    missing = dd.PeakOffset(peak=3).fit(x)
    assert missing.fell_back_ and "peak 3" in missing.reason_


# -- mixtures -------------------------------------------------------------------------------
def test_mixture_1d_posterior_crossing_matches_the_analytic_one():
    x, _ = two_normals(40000, w=0.8, m2=6.0, seed=8)
    est = dd.Mixture1D(tails="gaussian", cutpoint="posterior").fit(x)
    expected = 3.0 + np.log(0.8 / 0.2) / 6.0  # equal variances: midpoint + s² ln(w1/w2) / (m2 - m1)
    assert est.threshold_ == pytest.approx(expected, abs=0.1)
    assert est.means_ == pytest.approx([0.0, 6.0], abs=0.05)


def test_mixture_1d_t_tails_resist_saturated_events():
    x, k = two_normals(20000, w=0.6, m2=5.0, seed=9)
    x = np.r_[x, np.full(400, 25.0)]  # 2 % saturated at the top of the scale
    est = dd.Mixture1D(tails="t").fit(x)
    assert est.means_[1] == pytest.approx(5.0, abs=0.3)
    assert est.threshold_ == pytest.approx(true_valley(0.6, 0, 5, 1, 1), abs=0.4)
    for cp in ("boundary", "min_density"):
        assert 1.5 < dd.Mixture1D(cutpoint=cp).fit(x).threshold_ < 3.5


def test_mixture_ellipse_covers_the_requested_quantile_of_the_target_cluster():
    rng = np.random.default_rng(10)
    a = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 15000)
    b = rng.multivariate_normal([6, 5], [[0.5, 0], [0, 0.5]], 10000)
    X = np.r_[a, b]
    est = dd.MixtureEllipse(K=2, target=[5, 5], quantile=0.9, tails="gaussian").fit(X)
    assert est.mean_ == pytest.approx([6, 5], abs=0.05)
    g = est.to_gate(["x", "y"])
    assert isinstance(g, EllipsoidGate)
    assert g.contains(b).mean() == pytest.approx(0.9, abs=0.02)
    assert g.contains(a).mean() < 0.001
    t = dd.MixtureEllipse(K=2, target=[0, 0], quantile=0.9).fit(X)  # t components
    assert t.distance_square_ == pytest.approx(2 * stats.f.ppf(0.9, 2, 4.0))
    assert t.mean_ == pytest.approx([0, 0], abs=0.05)


def test_transitional_polygon_geometry():
    rng = np.random.default_rng(11)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])  # major axis along (1, 1)
    X = rng.multivariate_normal([2, 2], cov, 20000)
    est = dd.Transitional(K=1, quantile=0.95, translation=0.0, tails="gaussian").fit(X)
    g = est.to_gate(["CD24", "CD38"])
    assert isinstance(g, PolygonGate)
    assert est.angle_ == pytest.approx(np.pi / 4, abs=0.03)
    # translation 0: the cut line passes through the mean, perpendicular to (1, 1)
    u = np.array([1, 1]) / np.sqrt(2)
    proj = (X - [2, 2]) @ u
    inside = g.contains(X)
    assert inside[proj > 0.05].mean() > 0.97
    assert inside[proj < -0.05].mean() < 0.01
    far = np.array([[2, 2]]) + 4 * u
    assert g.contains(far)[0]
    # translation moves the line along the axis by translation * sqrt(lambda1 * chi2_2(q))
    est2 = dd.Transitional(K=1, quantile=0.95, translation=0.5, tails="gaussian").fit(X)
    shift = 0.5 * np.sqrt(1.8 * stats.chi2.ppf(0.95, 2))
    inside2 = est2.to_gate(["a", "b"]).contains(X)
    assert inside2[proj > shift + 0.1].mean() > 0.97
    assert inside2[proj < shift - 0.1].mean() < 0.01


def test_transitional_angle_points_the_gate_elsewhere():
    rng = np.random.default_rng(12)
    X = rng.multivariate_normal([0, 0], [[1, 0.0], [0.0, 0.3]], 10000)
    est = dd.Transitional(K=1, angle=np.pi / 2, translation=0.0, tails="gaussian").fit(X)
    g = est.to_gate(["a", "b"])
    assert est.angle_ == pytest.approx(np.pi / 2)
    assert g.contains(np.array([[0.0, 3.0]]))[0] and not g.contains(np.array([[0.0, -3.0]]))[0]


def _singlets_doublets(n_doublets, seed=13):
    rng = np.random.default_rng(seed)
    a = rng.lognormal(np.log(60000), 0.25, 16000)
    h = 0.8 * a + rng.normal(0, 1500, a.size)
    ad = rng.lognormal(np.log(120000), 0.2, n_doublets)
    hd = 0.55 * ad + rng.normal(0, 1500, ad.size)
    X = np.c_[np.r_[a, ad], np.r_[h, hd]]
    return X, np.r_[np.ones(a.size, bool), np.zeros(ad.size, bool)]


def test_singlet_gate_keeps_singlets_and_drops_doublets():
    X, truth = _singlets_doublets(800)  # 5 % doublets
    est = dd.SingletGate().fit(X)
    assert est.coef_[1] == pytest.approx(
        0.8, abs=0.04
    )  # Huber: only slightly tilted by 5 % doublets
    inside = est.to_gate(["FSC-A", "FSC-H"]).contains(X)
    assert inside[truth].mean() > 0.97
    assert inside[~truth].mean() < 0.02
    assert est.vertices_.shape == (4, 2)
    assert est.vertices_[0, 0] == pytest.approx(X[:, 0].min())


def test_singlet_bisquare_resists_many_doublets():
    X, truth = _singlets_doublets(4000)  # 20 % doublets at twice the area: leverage
    huber = dd.SingletGate().fit(X)
    assert huber.coef_[1] < 0.75  # Huber's convex loss is tilted by leverage (documented)
    est = dd.SingletGate(psi="bisquare", start="ratio", maxit=20).fit(X)
    assert est.coef_[1] == pytest.approx(0.8, abs=0.01)
    inside = est.to_gate(["FSC-A", "FSC-H"]).contains(X)
    assert inside[truth].mean() > 0.97 and inside[~truth].mean() < 0.02


def test_boundary_gate_drops_exactly_the_saturated_events():
    rng = np.random.default_rng(14)
    X = rng.uniform(100, 200000, (5000, 2))
    X[:37, 0] = 262143.0
    X[100:112, 1] = 262143.0
    X[200:205, 1] = -111.0
    est = dd.BoundaryGate(drop_low=True).fit(X)
    inside = est.to_gate(["FSC-A", "SSC-A"]).contains(X)
    assert (~inside).sum() == 37 + 12 + 5
    assert est.saturated_high_ == [37, 12] and est.saturated_low_ == [0, 5]
    given = dd.BoundaryGate(max=[250000.0, None], drop_saturated=False).fit(X)
    assert (~given.to_gate(["a", "b"]).contains(X)).sum() == 37
    clean = dd.BoundaryGate().fit(rng.normal(0, 1, (1000, 2)))
    assert clean.maxs_ == [None, None]  # no pile-up: nothing removed


# -- quadrants ------------------------------------------------------------------------------
def four_clusters(seed=15, left=(0, 6), right=(0, 6), n=4000):
    rng = np.random.default_rng(seed)
    pts, lab = [], []
    for cx, ys in ((0.0, left), (6.0, right)):
        for cy in ys:
            pts.append(rng.normal([cx, cy], 0.8, (n, 2)))
            lab += [("+" if cx > 3 else "-") + ("+" if cy > (ys[0] + ys[1]) / 2 else "-")] * n
    return np.concatenate(pts), np.array(lab)


def test_quadrant_gate_names_and_cuts():
    X, lab = four_clusters()
    g = DataDrivenGate(["IgD", "CD27"], "mindensity")
    out = dd.fit_gate(g, X, seed=0)
    q = out.gate
    assert isinstance(q, QuadrantGate)
    for signs in ("++", "+-", "-+", "--"):
        r = q.rectangle(signs)
        assert r.mins[0] is None or r.mins[0] == pytest.approx(3.0, abs=0.3)
        f1 = (
            2
            * np.sum(r.contains(X) & (lab == signs))
            / (r.contains(X).sum() + (lab == signs).sum())
        )
        assert f1 > 0.99
    named = dd.fit_gate(
        DataDrivenGate(["IgD", "CD27"], "mindensity", {"quadrants": {"naive": "+-"}}), X
    ).gate
    assert list(named.quadrants) == ["naive"]


def test_sequential_quadrants_cut_the_second_axis_per_side():
    X, lab = four_clusters(left=(0, 4), right=(2, 8))
    est = dd.QuadrantEstimator(
        x={"method": "mindensity", "adjust": 1.0}, sequential=True, first="x"
    ).fit(X)
    assert est.first_cut_ == pytest.approx(3.0, abs=0.3)
    assert est.second_cuts_["-"] == pytest.approx(2.0, abs=0.3)
    assert est.second_cuts_["+"] == pytest.approx(5.0, abs=0.3)
    q = est.to_gate(["x", "y"])
    for signs in ("++", "+-", "-+", "--"):
        m = q.rectangle(signs).contains(X)
        assert 2 * np.sum(m & (lab == signs)) / (m.sum() + (lab == signs).sum()) > 0.98
    auto = dd.QuadrantEstimator(sequential=True).fit(X)
    assert auto.first_ in ("x", "y")
    plain = dd.QuadrantEstimator().fit(X)  # one y cut for both sides cannot fit both
    assert plain.y_cut_ == pytest.approx(np.clip(plain.y_cut_, 1.5, 6.0))


def test_quadrant_axes_can_use_different_methods():
    X, _ = four_clusters()
    out = dd.fit_gate(
        DataDrivenGate(
            ["a", "b"],
            "quadrant",
            {"x": {"method": "quantile", "probs": 0.5}, "y": {"method": "mixture_1d"}},
        ),
        X,
    )
    assert out.details["x_cut"] == pytest.approx(np.median(X[:, 0]), abs=0.05)
    assert out.details["y_cut"] == pytest.approx(3.0, abs=0.3)


# -- fit_gate contract ----------------------------------------------------------------------
def test_fit_gate_sides_give_the_documented_rectangles():
    x, k = two_normals(20000, seed=16)
    plus = dd.fit_gate(DataDrivenGate(["CD19"], "mindensity", side="+"), x[:, None], seed=1)
    minus = dd.fit_gate(DataDrivenGate(["CD19"], "mindensity", side="-"), x[:, None], seed=1)
    assert isinstance(plus, FitOutcome) and isinstance(plus.gate, RectangleGate)
    cut = plus.gate.mins[0]
    assert plus.gate.maxs == (None,) and minus.gate.mins == (None,) and minus.gate.maxs == (cut,)
    assert plus.details["threshold"] == cut and plus.details["n_fit"] == 20000
    truth_pos = ~k
    assert np.mean(plus.gate.contains(x[:, None]) == truth_pos) > 0.99
    assert np.all(plus.gate.contains(x[:, None]) ^ minus.gate.contains(x[:, None]))


def test_threshold_box_from_a_side_per_dimension():
    X, lab = four_clusters()
    out = dd.fit_gate(DataDrivenGate(["CD19", "CD3"], "mindensity", side="+-"), X)
    m = out.gate.contains(X)
    assert 2 * np.sum(m & (lab == "+-")) / (m.sum() + (lab == "+-").sum()) > 0.99
    rng = np.random.default_rng(0)
    X3 = np.c_[
        X,
        np.where(
            rng.random(X.shape[0]) < 0.5, rng.normal(0, 1, X.shape[0]), rng.normal(6, 1, X.shape[0])
        ),
    ]
    g3 = dd.fit_gate(DataDrivenGate(["a", "b", "c"], "mindensity", side="+-+"), X3).gate
    assert g3.mins[2] == pytest.approx(3.0, abs=0.3) and g3.maxs[1] == pytest.approx(3.0, abs=0.3)


def test_too_few_events_is_not_measured_never_guessed():
    x = np.random.default_rng(17).normal(0, 1, 30)
    out = dd.fit_gate(DataDrivenGate(["CD19"], "mindensity", side="+"), x[:, None])
    assert out.gate is None and "at least 50" in out.reason
    out2 = dd.fit_gate(
        DataDrivenGate(["CD19"], "mindensity", {"min_events": 10}, side="+"), x[:, None]
    )
    assert out2.gate is not None
    mix = dd.fit_gate(DataDrivenGate(["a", "b"], "mixture_ellipse", {"K": 6}), np.ones((100, 2)))
    assert mix.gate is None and "150" in mix.reason
    flat = dd.fit_gate(DataDrivenGate(["a", "b"], "singlet"), np.c_[np.ones(100), np.arange(100.0)])
    assert flat.gate is None and "same area" in flat.reason


def test_nan_and_inf_are_dropped_and_counted():
    x, _ = two_normals(10000, seed=18)
    clean = dd.fit_gate(DataDrivenGate(["a"], "mindensity", side="+"), x[:, None], seed=3)
    dirty = np.r_[x, [np.nan] * 50, [np.inf] * 7, [-np.inf] * 3]
    out = dd.fit_gate(DataDrivenGate(["a"], "mindensity", side="+"), dirty[:, None], seed=3)
    assert out.details["n_nonfinite"] == 60 and "60 non-finite" in out.reason
    assert out.gate.mins == clean.gate.mins


def test_determinism_same_seed_same_gate_on_a_subsample():
    X, _ = four_clusters(n=20000)  # 80 000 events > the 50 000 cap
    g = DataDrivenGate(["a", "b"], "mixture_ellipse", {"K": 4, "target": [6, 6]})
    a = dd.fit_gate(g, X, seed=7)
    b = dd.fit_gate(g, X, seed=7)
    assert a.details["n_fit"] == dd.DEFAULT_MAX_FIT_EVENTS
    assert a.gate.geometry() == b.gate.geometry()
    q = DataDrivenGate(["a", "b"], "mindensity", {"sequential": True})
    assert dd.fit_gate(q, X, seed=2).gate.geometry() == dd.fit_gate(q, X, seed=2).gate.geometry()


def test_bad_arguments_raise_gate_errors_naming_them():
    assert dd.check_params("mindensity", {"adjust": 1.5, "gate_range": [0, 3]}) == []
    msgs = dd.check_params("mindensity", {"adjsut": 2})
    assert len(msgs) == 1 and "did you mean 'adjust'" in msgs[0]
    msgs = dd.check_params("mixture_1d", {"K": "two", "tails": "cauchy"})
    assert any("'K'" in m and "int" in m for m in msgs) and any(
        "'tails'" in m and "'t'" in m for m in msgs
    )
    assert "did you mean 'mindensity'" in dd.check_params("mindensty", {})[0]
    assert dd.check_params("flowclust", {"K": 3, "target": [0.2, 0.1]}) == []
    assert dd.check_params("quadrant", {"x": {"method": "singlet"}})[0].startswith(
        "x: singlet does not"
    )
    assert "mindensity" in dd.available_methods() and "singlet" in dict(dd.available_methods())
    with pytest.raises(GateError, match="adjsut"):
        dd.fit_gate(
            DataDrivenGate(["a"], "mindensity", {"adjsut": 2}, side="+"), np.zeros((100, 1))
        )
    with pytest.raises(GateError, match="side"):
        dd.fit_gate(
            DataDrivenGate(["a", "b"], "singlet", side="-"),
            np.random.default_rng(0).normal(size=(100, 2)),
        )
    with pytest.raises(GateError, match="2 dimension"):
        dd.fit_gate(DataDrivenGate(["a"], "singlet"), np.zeros((100, 1)))


def test_estimators_follow_the_sklearn_conventions():
    for name in dd.available_methods():
        cls = dd.get_method(name)
        est = cls()
        assert set(est.get_params()) == set(cls.param_names())
        assert not [k for k in vars(est) if k.endswith("_")]  # nothing learned before fit
    assert "adjust=1.0" in repr(dd.MinDensity(adjust=1.0))


# -- engine integration, pooling, freezing ----------------------------------------------------
def _sample(shift: float, seed: int, n: int = 20000) -> tuple[Sample, np.ndarray]:
    rng = np.random.default_rng(seed)
    pos = rng.random(n) < 0.4
    cd19 = np.where(pos, rng.normal(6 + shift, 1, n), rng.normal(0 + shift, 1, n))
    cd27 = rng.normal(0, 1, n) + np.where(rng.random(n) < 0.3, 5.0, 0.0)
    ev = np.c_[cd19, cd27].astype(np.float32)
    return Sample(ev, ["B1-A", "B2-A"], ["CD19", "CD27"], path=None), pos


def _template() -> Template:
    g1 = DataDrivenGate(["CD19"], "mindensity", {"adjust": 1.0}, side="+")
    q = DataDrivenGate(["CD19", "CD27"], "quantile", {"probs": 0.5})
    return Template(
        "t",
        [
            Population("b", None, g1),
            Population("not_b", None, BooleanGate("not", [("b", False)])),
            Population("hi", "b", q, quadrant="++"),
            Population("lo", "b", q, quadrant="--"),
        ],
    )


def test_engine_applies_fitted_gates_and_records_them():
    s, pos = _sample(0.0, 20)
    r = engine_gate(s, _template(), seed=0)
    assert np.mean(r.membership("b") == pos) > 0.99
    info = r.gates["b"]
    assert info["data_driven"] and info["geometry"]["min"][0] == pytest.approx(3.0, abs=0.3)
    assert info["details"]["n_fit"] == 20000 and info["fell_back"] is False
    assert r.gates["hi"]["geometry"]["kind"] == "quadrant"


def test_pooled_fit_is_deterministic_and_shared_by_the_group():
    (s1, _), (s2, _) = _sample(-0.5, 21), _sample(0.5, 22)
    t = _template()
    fits = fit_pooled([s1, s2], t, seed=0)
    assert set(fits) == {"b", "hi"}
    assert fits["b"].gate.mins[0] == pytest.approx(3.0, abs=0.3)
    assert fits["b"].details["pooled_events"] == [20000, 20000]
    again = fit_pooled([s1, s2], t, seed=0)
    assert again["b"].gate.geometry() == fits["b"].gate.geometry()
    assert again["hi"].gate.geometry() == fits["hi"].gate.geometry()
    r1 = engine_gate(s1, t, fitted=fits)
    r2 = engine_gate(s2, t, fitted=fits)
    assert r1.gates["b"]["geometry"] == r2.gates["b"]["geometry"]
    groups = fit_groups([s1, s2, s1], t, ["B", "A", "B"])
    assert list(groups) == ["A", "B"]
    own = engine_gate(s2, t)  # per-sample fit of s2 alone
    assert groups["A"]["b"].gate.mins[0] == pytest.approx(
        own.gates["b"]["geometry"]["min"][0], abs=0.05
    )


def test_freeze_gives_a_fixed_template_with_identical_memberships(tmp_path):
    s, _ = _sample(0.3, 23)
    t = _template()
    r = engine_gate(s, t, seed=0)
    frozen = t.freeze(r)
    assert not any(isinstance(p.gate, DataDrivenGate) for p in frozen.populations)
    assert frozen.meta["frozen_from"] == {
        "template": "t",
        "version": "1",
        "hash": t.hash,
        "samples": [r.sample_id],
    }
    frozen.to_yaml(tmp_path / "frozen.yaml")  # exported as a fixed YAML template
    reloaded = cytophen.load_template(tmp_path / "frozen.yaml")
    for again in (engine_gate(s, frozen), engine_gate(s, reloaded)):
        for name in t.names:
            assert np.array_equal(r.membership(name), again.membership(name))
    fits = fit_pooled([s], t)
    f2 = t.freeze(fits)
    assert isinstance(f2.population("hi").gate, QuadrantGate)
    assert f2.population("hi").gate is f2.population("lo").gate
    declined = {"b": FitOutcome(None, reason="too few"), "hi": fits["hi"]}
    with pytest.raises(GateError, match="too few"):
        t.freeze(declined)


def test_engine_reports_declined_fits_as_not_measured():
    s, _ = _sample(0.0, 24, n=30)
    r = engine_gate(s, _template())
    row = r.table.set_index("population").loc["b"]
    assert not row["measured"] and "at least 50" in row["note"]
    assert pd.isna(r.table.set_index("population").loc["hi", "count"])


# -- boxes, doublet hulls, data-driven transitional line, sequential fallbacks ---------------
def test_sequential_box_cuts_each_dimension_within_the_previous_ones():
    rng = np.random.default_rng(30)
    n = 20000
    treg = rng.random(n) < 0.07
    foxp3 = np.where(treg, rng.normal(6, 0.6, n), rng.normal(0, 0.8, n))
    cd25 = np.where(treg, rng.normal(6, 0.6, n), rng.normal(2, 1.0, n))
    cd127 = np.where(treg, rng.normal(1, 0.6, n), rng.normal(5, 0.8, n))
    X = np.c_[foxp3, cd25, cd127]
    g = DataDrivenGate(
        ["FoxP3", "CD25", "CD127"],
        "box",
        {
            "sequential": True,
            "axes": [
                {"method": "mindensity"},
                {"method": "tailgate", "side": "left"},
                {"method": "tailgate"},
            ],
        },
        side="++-",
    )
    out = dd.fit_gate(g, X)
    m = out.gate.contains(X)
    assert 2 * np.sum(m & treg) / (m.sum() + treg.sum()) > 0.97
    assert out.gate.mins[0] == pytest.approx(3.0, abs=0.6) and out.gate.maxs[2] is not None
    assert dd.check_params("box", {"axes": [{"method": "mindensity", "adjsut": 1}]})[0].startswith(
        "axes[0]:"
    )
    with pytest.raises(GateError, match="one sign per dimension"):
        dd.fit_gate(DataDrivenGate(["a", "b"], "box", {}, side="+"), X[:, :2])


def test_mixture_ellipse_with_doublets_takes_in_the_doubled_cloud():
    rng = np.random.default_rng(31)
    single = rng.multivariate_normal([0.25, 0.08], [[0.023**2, 0], [0, 0.016**2]], 20000)
    a, b = rng.integers(0, 20000, (2, 1500))
    doublet = single[a] + single[b]  # area signals add up
    mono = rng.multivariate_normal([0.42, 0.20], [[0.05**2, 0], [0, 0.045**2]], 3000)
    X = np.r_[single, doublet, mono]
    truth = np.r_[np.ones(21500, bool), np.zeros(3000, bool)]
    plain = dd.MixtureEllipse(K=3, target=[0.25, 0.08], quantile=0.99).fit(X)
    hull = dd.MixtureEllipse(K=3, target=[0.25, 0.08], quantile=0.99, doublets_quantile=0.9).fit(X)
    g = hull.to_gate(["FSC-A", "SSC-A"])
    assert isinstance(g, PolygonGate) and isinstance(plain.to_gate(["a", "b"]), EllipsoidGate)
    assert g.contains(doublet).mean() > 0.9 > plain.to_gate(["a", "b"]).contains(doublet).mean()
    m = g.contains(X)
    assert 2 * np.sum(m & truth) / (m.sum() + truth.sum()) > 0.95


def test_transitional_line_at_the_density_valley():
    rng = np.random.default_rng(32)
    main = rng.multivariate_normal([0.55, 0.48], [[0.004, 0.002], [0.002, 0.004]], 18000)
    trans = rng.multivariate_normal([0.76, 0.74], [[0.0016, 0.0008], [0.0008, 0.0016]], 1500)
    X = np.r_[main, trans]
    truth = np.r_[np.zeros(18000, bool), np.ones(1500, bool)]
    est = dd.Transitional(K=2, target=[0.55, 0.48], cut="mindensity", adjust=2.0).fit(X)
    assert not est.fell_back_ and est.translation_ > 0.25
    m = est.to_gate(["CD24", "CD38"]).contains(X)
    assert 2 * np.sum(m & truth) / (m.sum() + truth.sum()) > 0.9
    alone = dd.Transitional(K=1, cut="mindensity", translation=0.3).fit(main)  # no second cloud
    assert alone.fell_back_ and alone.translation_ == pytest.approx(0.3)


def test_sequential_quadrant_side_with_too_few_events_uses_the_overall_cut():
    rng = np.random.default_rng(33)
    X = np.r_[
        rng.normal([0, 0], 0.8, (6000, 2)),
        rng.normal([0, 6], 0.8, (6000, 2)),
        rng.normal([6, 6], 0.8, (30, 2)),
    ]
    est = dd.QuadrantEstimator(sequential=True, first="x").fit(X)
    assert est.fell_back_ and "one side of the first cut" in est.reason_
    assert est.second_cuts_["+"] == pytest.approx(
        3.0, abs=0.3
    )  # the valley of all events, not of 30


def test_aliases_resolve_to_registered_methods():
    assert dd.get_method("flowclust") is dd.MixtureEllipse
    assert dd.available_methods()["flowclust"] == "alias of mixture_ellipse"
    rng = np.random.default_rng(34)
    X = rng.normal([0, 0], 1, (3000, 2))
    out = dd.fit_gate(
        DataDrivenGate(["a", "b"], "flowclust", {"K": 1, "quantile": 0.9, "tails": "gaussian"}), X
    )
    assert isinstance(out.gate, EllipsoidGate) and out.gate.contains(X).mean() == pytest.approx(
        0.9, abs=0.02
    )


def test_transitional_line_from_the_mixture_posterior_or_projection_mixture():
    rng = np.random.default_rng(35)
    main = rng.multivariate_normal([0.55, 0.48], [[0.004, 0.002], [0.002, 0.004]], 18000)
    trans = rng.multivariate_normal([0.76, 0.74], [[0.0016, 0.0008], [0.0008, 0.0016]], 1500)
    X = np.r_[main, trans]
    truth = np.r_[np.zeros(18000, bool), np.ones(1500, bool)]
    for cut in ("posterior", "mixture"):
        est = dd.Transitional(K=2, target=[0.55, 0.48], cut=cut).fit(X)
        m = est.to_gate(["CD24", "CD38"]).contains(X)
        assert not est.fell_back_
        assert 2 * np.sum(m & truth) / (m.sum() + truth.sum()) > 0.9, cut


def test_mixture_ellipse_merge_gates_a_heavy_tailed_cloud_as_one():
    rng = np.random.default_rng(36)
    cloud = rng.standard_t(3, (20000, 2)) * 0.5  # heavy tails: fitted as core + broad parts
    other = rng.normal([8, 8], 0.5, (5000, 2))
    X = np.r_[cloud, other]
    plain = dd.MixtureEllipse(K=4, target=[0, 0], quantile=0.95, tails="gaussian").fit(X)
    merged = dd.MixtureEllipse(K=4, target=[0, 0], quantile=0.95, tails="gaussian", merge=True).fit(
        X
    )
    assert len(merged.merged_components_) >= 2
    cov_plain = plain.to_gate(["a", "b"]).contains(cloud).mean()
    cov_merged = merged.to_gate(["a", "b"]).contains(cloud).mean()
    assert cov_merged > cov_plain and cov_merged > 0.9
    assert merged.to_gate(["a", "b"]).contains(other).mean() < 0.01


def test_axis_min_events_override_in_a_box():
    rng = np.random.default_rng(37)
    X = np.r_[rng.normal([0, 0], 1, (3000, 2)), rng.normal([6, 0], 1, (30, 2))]
    spec = {"sequential": True, "axes": [{"method": "tailgate"}, {"method": "mindensity"}]}
    declined = dd.fit_gate(DataDrivenGate(["a", "b"], "box", spec, side="++"), X)
    assert declined.gate is None and "needs 50" in declined.reason
    spec["axes"][1]["min_events"] = 10
    ok = dd.fit_gate(DataDrivenGate(["a", "b"], "box", spec, side="++"), X)
    assert ok.gate is not None
