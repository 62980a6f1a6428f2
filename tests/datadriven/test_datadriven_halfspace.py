"""mixture_halfspace: a Fisher hyperplane between two t components started from a 1-D cut.

Constructed data with a known answer: two Gaussian clouds whose Bayes-optimal boundary is known in
closed form (shared covariance: the plane w·x = c with w = Σ⁻¹(μ₁−μ₀)).
"""

from __future__ import annotations

import numpy as np
import pytest

from cytophen.datadriven import MixtureHalfspace, fit_gate, get_method
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate, EllipsoidGate

COV = np.array([[0.008, 0.0, 0.002], [0.0, 0.004, 0.001], [0.002, 0.001, 0.005]])
MU0 = np.array([0.20, 0.55, 0.45])  # large population ("naive": CD27-, CD24 mid, CD38 mid)
MU1 = np.array([0.50, 0.68, 0.34])  # small population ("memory": CD27+, CD24 hi, CD38 lo)


def _clouds(n0=4000, n1=600, seed=0, cov0=COV, cov1=COV):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.multivariate_normal(MU0, cov0, n0), rng.multivariate_normal(MU1, cov1, n1)])
    y = np.r_[np.zeros(n0, bool), np.ones(n1, bool)]
    return X, y


def _bayes(X, w1):
    """Bayes-optimal labels for the shared-covariance clouds (the known answer)."""
    inv = np.linalg.inv(COV)
    w = inv @ (MU1 - MU0)
    c = 0.5 * (MU1 @ inv @ MU1 - MU0 @ inv @ MU0) - np.log(w1 / (1 - w1))
    return X @ w > c, w


def _member(est, X, side="+"):
    return est.to_gate(["a", "b", "c"], side).contains(X)


def test_registered():
    assert get_method("mixture_halfspace") is MixtureHalfspace


def test_recovers_the_bayes_boundary_and_beats_the_1d_cut():
    X, y = _clouds()
    est = MixtureHalfspace(cut={"method": "mindensity", "gate_range": [0.25, 0.45]}).fit(X)
    assert not est.fell_back_
    bayes, w = _bayes(X, 600 / 4600)
    # direction: within a few degrees of Σ⁻¹(μ₁−μ₀)
    cos = float(est.normal_ @ (w / np.linalg.norm(w)))
    assert cos > 0.99
    got = _member(est, X)
    err = np.mean(got != y)
    err_bayes = np.mean(bayes != y)
    err_1d = np.mean((X[:, 0] > est.first_cut_) != y)
    assert err <= err_bayes + 0.004  # as good as the optimum, up to fitting noise
    assert err < err_1d  # the other markers add information the 1-D cut lacks
    assert np.mean(got != bayes) < 0.01
    # component means found
    np.testing.assert_allclose(est.means_, np.vstack([MU0, MU1]), atol=0.01)


def test_symmetric_clouds_put_the_plane_through_the_midpoint():
    X, _ = _clouds(n0=3000, n1=3000, seed=3)
    est = MixtureHalfspace(cut={"method": "mindensity"}).fit(X)
    mid = 0.5 * (MU0 + MU1)
    assert abs(float(est.normal_ @ (mid - est.point_))) < 0.01
    assert not est.fell_back_


def test_heavy_tails_t_model():
    """t-distributed clouds (6 d.f., as flow data): still close to the known boundary."""
    rng = np.random.default_rng(5)
    L = np.linalg.cholesky(COV * 4 / 6)
    z0 = rng.standard_t(6, (4000, 3)) @ L.T + MU0
    z1 = rng.standard_t(6, (600, 3)) @ L.T + MU1
    X = np.vstack([z0, z1])
    y = np.r_[np.zeros(4000, bool), np.ones(600, bool)]
    est = MixtureHalfspace(cut={"method": "mindensity", "gate_range": [0.25, 0.45]}).fit(X)
    bayes, _ = _bayes(X, 600 / 4600)
    assert np.mean(_member(est, X) != y) <= np.mean(bayes != y) + 0.006


def test_sides_partition_the_events_and_per_dimension_signs():
    X, _ = _clouds(seed=1)
    est = MixtureHalfspace().fit(X)
    plus, minus = _member(est, X, "+"), _member(est, X, "-")
    assert not np.any(plus & minus)
    assert np.all(plus | minus)
    np.testing.assert_array_equal(_member(est, X, "+++"), plus)
    np.testing.assert_array_equal(_member(est, X, "---"), minus)
    np.testing.assert_array_equal(_member(est, X, None), plus)
    for bad in ("+-", "++", "x", "+-+"):
        with pytest.raises(GateError):
            est.to_gate(["a", "b", "c"], bad)


def test_ellipsoid_is_the_half_space_inside_the_data_range():
    X, _ = _clouds(seed=2)
    est = MixtureHalfspace().fit(X)
    g = est.to_gate(["a", "b", "c"])
    assert isinstance(g, EllipsoidGate)
    rng = np.random.default_rng(0)
    P = rng.uniform(X.min(axis=0) - 0.2, X.max(axis=0) + 0.2, (20000, 3))
    s = (P - est.point_) @ est.normal_
    far = np.abs(s) > 1e-3
    np.testing.assert_array_equal(g.contains(P)[far], (s >= 0)[far])


def test_deterministic():
    X, _ = _clouds(seed=4)
    a = MixtureHalfspace().fit(X)
    b = MixtureHalfspace().fit(X.copy())
    np.testing.assert_array_equal(a.normal_, b.normal_)
    np.testing.assert_array_equal(a.point_, b.point_)


def test_fallback_to_the_1d_cut_when_one_side_is_nearly_empty():
    X, _ = _clouds(n1=0, seed=6)
    est = MixtureHalfspace(cut={"method": "quantile", "probs": 0.999}).fit(X)
    assert est.fell_back_
    assert "min_side" in est.reason_ and "1-D cut" in est.reason_
    got = _member(est, X)
    np.testing.assert_array_equal(got, X[:, 0] >= est.first_cut_)


def test_fallback_when_em_pulls_the_positive_component_down():
    """A single cloud cut at its median: EM cannot keep two separate components; whatever it
    finds, the result is either flagged or a plane whose positive side is the upper half."""
    rng = np.random.default_rng(7)
    X = rng.multivariate_normal(MU0, COV, 3000)
    est = MixtureHalfspace(cut={"method": "quantile", "probs": 0.5}).fit(X)
    if not est.fell_back_:
        assert est.normal_[0] > 0
    got = _member(est, X)
    assert 0 < got.sum() < X.shape[0]


def test_through_fit_gate():
    X, y = _clouds(seed=8)
    g = DataDrivenGate(
        ["CD27", "CD24", "CD38"],
        "mixture_halfspace",
        params={"cut": {"method": "mindensity", "gate_range": [0.25, 0.45]}},
    )
    out = fit_gate(g, X, seed=0)
    assert isinstance(out.gate, EllipsoidGate)
    assert not out.fell_back
    assert 0.25 <= out.details["first_cut"] <= 0.45
    assert len(out.details["normal"]) == 3
    assert np.mean(out.gate.contains(X) != y) < 0.03
    few = fit_gate(g, X[:30], seed=0)
    assert few.gate is None and "min_events" in few.reason


@pytest.mark.parametrize(
    "kw",
    [{"nu": 2.0}, {"posterior": 1.0}, {"min_side": 1}, {"max_moved": 0.0}, {"too_few": "skip"}],
)
def test_bad_parameters(kw):
    X, _ = _clouds(seed=9)
    with pytest.raises(GateError):
        MixtureHalfspace(**kw).fit(X)


@pytest.mark.parametrize("n", [0, 1, 7, 29])
@pytest.mark.parametrize("side", ["+++", "---"])
def test_too_few_empty_places_an_empty_region_not_a_decline(n, side):
    """too_few='empty': below the template's min_events the fit is not declined (a population
    built on it, e.g. b_cells = cd19_pos OR plasmablast_region, stays measured); the region holds
    none of the parent's events on either side, flagged with the count; NaN rows are not counted."""
    X, _ = _clouds(seed=11)
    X = np.vstack([X[:n], np.full((3, 3), np.nan)])
    params = {
        "too_few": "empty",
        "min_events": 30,
        "cut": {"method": "mindensity", "min_events": 15},
    }
    g = DataDrivenGate(["CD27", "CD24", "CD38"], "mixture_halfspace", side=side, params=params)
    out = fit_gate(g, X, seed=0)
    assert out.gate is not None and out.fell_back
    assert f"only {n} events (needs 30); empty region" in out.reason
    assert out.details["empty"] is True
    assert not out.gate.contains(X[:n]).any()
    # the same count with the default too_few declines instead
    declined = fit_gate(
        DataDrivenGate(g.dims, g.method, side=side, params={**params, "too_few": "decline"}), X
    )
    assert declined.gate is None and "min_events" in declined.reason


def test_too_few_empty_fits_normally_with_enough_events():
    X, y = _clouds(seed=12)
    params = {
        "too_few": "empty",
        "min_events": 30,
        "cut": {"method": "mindensity", "gate_range": [0.25, 0.45]},
    }
    g = DataDrivenGate(["CD27", "CD24", "CD38"], "mixture_halfspace", side="+++", params=params)
    out = fit_gate(g, X, seed=0)
    ref = fit_gate(DataDrivenGate(g.dims, g.method, side="+++", params={"cut": params["cut"]}), X)
    assert not out.fell_back and out.details["empty"] is False
    np.testing.assert_array_equal(out.gate.contains(X), ref.gate.contains(X))
    assert np.mean(out.gate.contains(X) != y) < 0.03


def test_needs_two_dimensions():
    X, _ = _clouds(seed=9)
    with pytest.raises(GateError):
        MixtureHalfspace().fit(X[:, :1])


def test_another_split_than_the_cut_falls_back():
    """Clouds split far more strongly along the second marker than along the first: EM started
    from the first marker's cut ends at the other split (a plane nearly normal to marker 2),
    which moves ~40 % of the events across the cut; that is not a refinement, so the gate falls
    back to the 1-D cut, flagged (unless max_moved allows it)."""
    rng = np.random.default_rng(0)
    a = np.c_[rng.normal(0.0, 1, 3000), rng.normal(0, 1, 3000)]
    b = np.c_[rng.normal(0.5, 1, 3000), rng.normal(8, 1, 3000)]
    X = np.vstack([a, b])
    cut = {"method": "quantile", "probs": 0.5}
    free = MixtureHalfspace(cut=cut, max_moved=1.0).fit(X)
    assert not free.fell_back_ and free.moved_fraction_ > 0.3
    assert abs(free.normal_[1]) > 0.9  # the other split
    est = MixtureHalfspace(cut=cut).fit(X)
    assert est.fell_back_ and "max_moved" in est.reason_
    np.testing.assert_array_equal(est.normal_, [1.0, 0.0])
    got = est.to_gate(["a", "b"]).contains(X)
    np.testing.assert_array_equal(got, X[:, 0] >= est.first_cut_)


def test_moved_fraction_is_small_for_a_refinement():
    X, _ = _clouds(seed=10)
    est = MixtureHalfspace(cut={"method": "mindensity", "gate_range": [0.25, 0.45]}).fit(X)
    assert 0.0 < est.moved_fraction_ < 0.05
