"""Several k-means++ starts for the mixture gates (``n_init``).

A single k-means++ start can leave a small cloud that lies apart from the others (debris next to
the lymphocytes on FSC/SSC) without a component of its own; the neighbouring component then
absorbs it and its ellipse widens. With ``n_init`` starts compared on a seeded subsample, the fit
begins from the start of highest likelihood. The data are four clouds of known centres and
heavy (t, 6 d.f.) tails, shaped like FSC/SSC scatter.
"""

from __future__ import annotations

import numpy as np
import pytest

from cytophen.datadriven import MixtureEllipse, check_params
from cytophen.datadriven._mixture import fit_mixture
from cytophen.errors import GateError

CLOUDS = {  # centre, SD per axis, share
    "lymphocytes": ((0.23, 0.08), (0.035, 0.02), 0.71),
    "debris": ((0.07, 0.03), (0.025, 0.0125), 0.03),
    "monocytes": ((0.37, 0.20), (0.04, 0.035), 0.20),
    "granulocytes": ((0.42, 0.55), (0.05, 0.08), 0.06),
}


def _scatter(seed: int, n: int = 10_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = []
    for centre, sd, share in CLOUDS.values():
        k = int(n * share)
        parts.append(np.add(centre, np.multiply(sd, rng.standard_t(6, (k, 2)) * np.sqrt(4 / 6))))
    return np.concatenate(parts)


def _nearest(means: np.ndarray, name: str) -> float:
    return float(np.linalg.norm(means - np.asarray(CLOUDS[name][0]), axis=1).min())


@pytest.mark.parametrize("seed", range(10))
def test_several_starts_give_every_separate_cloud_a_component(seed):
    X = _scatter(seed)
    mix = fit_mixture(X, 4, n_init=5)
    for name in ("lymphocytes", "debris", "monocytes"):
        assert _nearest(mix.means, name) < 0.025, (name, mix.means)


def test_one_start_can_miss_the_debris_cloud_that_several_starts_find():
    """The case the option exists for: over these data sets a single start leaves the debris
    without a component at least once (the lymphocyte component absorbs it and widens)."""
    single = [_nearest(fit_mixture(_scatter(s), 4).means, "debris") for s in range(10)]
    assert max(single) > 0.025


def test_starts_are_deterministic_and_one_start_is_the_former_fit():
    X = _scatter(3)
    a, b = fit_mixture(X, 4, n_init=4), fit_mixture(X, 4, n_init=4)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.covariances, b.covariances)
    c, d = fit_mixture(X, 4), fit_mixture(X, 4, n_init=1)
    np.testing.assert_array_equal(c.means, d.means)


def test_lymphocyte_ellipse_is_not_widened_by_the_debris():
    """The lymphocyte component of the 4-cloud fit has the shape of a fit on the lymphocytes
    alone (the same t family), on every data set: the debris has a component of its own."""
    n_lymph = int(10_000 * CLOUDS["lymphocytes"][2])
    for seed in range(10):
        X = _scatter(seed)
        alone = fit_mixture(X[:n_lymph], 1)
        est = MixtureEllipse(K=4, target=[0.25, 0.08], quantile=0.9, n_init=5).fit(X)
        ratio = np.sqrt(np.diag(est.covariance_) / np.diag(alone.covariances[0]))
        assert np.all(np.abs(ratio - 1) < 0.1), (seed, ratio)
        assert np.linalg.norm(est.mean_ - alone.means[0]) < 0.005


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_bad_n_init_is_an_error(bad):
    with pytest.raises(GateError, match="n_init"):
        MixtureEllipse(K=4, target=[0.25, 0.08], n_init=bad).fit(_scatter(0, 2000))


def test_n_init_is_a_known_parameter():
    assert check_params("mixture_ellipse", {"K": 4, "n_init": 5}) == []
    (msg,) = check_params("mixture_ellipse", {"K": 4, "n_inti": 5})
    assert "unknown argument 'n_inti'" in msg and "did you mean 'n_init'" in msg
    (msg,) = check_params("mixture_ellipse", {"K": 4, "n_init": 0})
    assert "'n_init'" in msg and "an integer >= 1" in msg and "got int 0" in msg
