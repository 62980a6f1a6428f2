"""mindensity ignores KDE ripples (``min_depth``).

A flat-topped cloud, here two equal normals 0.052 apart (SD 0.025), often has a KDE with two
peaks and a ripple valley well under 2 % deep between them. openCyto's rule (``min_depth:
0``) takes that ripple for the valley between the two highest peaks and cuts inside the cloud; by
default the ripple is not a peak, and the cut goes to the real valley before the small cloud.
"""

from __future__ import annotations

import numpy as np
import pytest

from cytophen.datadriven import MinDensity
from cytophen.datadriven._cuts import _deep_valleys, _significant_peaks
from cytophen.datadriven._kde import density, find_peaks, find_valleys
from cytophen.errors import GateError


def _flat_top(seed: int, small: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0.224, 0.025, 4500), rng.normal(0.276, 0.025, 4500)]
    if small:
        parts.append(rng.normal(0.6, 0.04, 1000))
    return np.concatenate(parts)[:, None]


@pytest.mark.parametrize("seed", range(8))
def test_cut_goes_to_the_real_valley_not_the_ripple(seed):
    X = _flat_top(seed)
    cut = MinDensity(adjust=1.0).fit(X).threshold_
    # the real valley lies between the clouds: 0.28 + 3 SD and 0.6 - 3 SD
    assert 0.355 < cut < 0.48
    assert (X[:, 0] > cut).sum() == pytest.approx(1000, abs=15)


def test_opencyto_rule_cuts_at_the_ripple():
    X = _flat_top(2)
    g, y, _ = density(X[:, 0], adjust=1.0)
    assert find_peaks(g, y, X.min(), X.max()).size >= 3  # the ripple is there
    cut = MinDensity(adjust=1.0, min_depth=0.0).fit(X).threshold_
    assert 0.224 < cut < 0.276  # inside the big cloud


def test_a_rippled_single_cloud_is_not_cut_through_its_middle():
    X = _flat_top(4, small=False)
    inside = (0.224, 0.276)  # between the two normals' centres
    cut = MinDensity(adjust=1.0).fit(X).threshold_
    assert not inside[0] < cut < inside[1]
    assert inside[0] < MinDensity(adjust=1.0, min_depth=0.0).fit(X).threshold_ < inside[1]


def test_peak_and_valley_filters_on_a_known_curve():
    #          0    1    2    3    4    5    6    7    8    9   10
    y = np.array([0, 5.0, 4.9, 5.1, 2.0, 0.1, 1.0, 0.5, 0.49, 0.5, 0.0])
    peaks = np.array([3, 1, 6, 9])  # highest first, as find_peaks returns them
    # prominences: 3 -> 5.1, 1 -> 0.1 (2 % of 5.0), 6 -> 0.9, 9 -> 0.01 (2 % of 0.5)
    np.testing.assert_array_equal(_significant_peaks(y, peaks, 0.05), [3, 6])
    np.testing.assert_array_equal(_significant_peaks(y, peaks, 0.0), peaks)
    valleys = np.array([5, 8, 2])  # deepest first
    # 5: 0.1 vs min(5.1, 1.0) -> deep; 8: 0.49 vs min(5.1, 0.5) -> 2 %, a ripple; 2: 4.9 vs 5.0
    np.testing.assert_array_equal(_deep_valleys(y, valleys, 0.05), [5])
    g = np.arange(y.size, dtype=float)
    assert set(find_valleys(g, y, 0, 11)) == {2, 5, 8}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_bad_min_depth_is_an_error(bad):
    with pytest.raises(GateError, match="min_depth"):
        MinDensity(min_depth=bad).fit(_flat_top(0))


def test_a_shallow_real_valley_is_kept_by_default():
    """A small parent's two clouds can be separated by a dip of only a few percent (CD19 of 200
    CD3- events: 4 %); the default threshold keeps it, a 5 % one would not."""
    y = np.array([0.0, 1.0, 0.96, 1.6, 0.0])
    peaks, valleys = np.array([3, 1]), np.array([2])
    default = MinDensity().min_depth
    np.testing.assert_array_equal(_significant_peaks(y, peaks, default), [3, 1])
    np.testing.assert_array_equal(_deep_valleys(y, valleys, default), [2])
    np.testing.assert_array_equal(_deep_valleys(y, valleys, 0.05), [])


def _one_peak_with_a_shoulder(side: str, seed: int = 0) -> np.ndarray:
    """A tight population at 0.6 (sd 0.04) and 40 % of cells spread out on the side ``side``
    of it, falling away from it without a peak of their own (as CD45RA- memory cells beside a
    CD45RA+ naive peak)."""
    rng = np.random.default_rng(seed)
    main = rng.normal(0.6, 0.04, 6000)
    tail = np.abs(rng.normal(0.0, 0.15, 4000))
    return np.concatenate([main, 0.56 - tail if side == "below" else 0.64 + tail])


@pytest.mark.parametrize("side", ["below", "above"])
def test_skew_spread_cuts_on_the_side_the_cells_without_a_peak_widen(side):
    from cytophen.datadriven._cuts import Valley

    x = _one_peak_with_a_shoulder(side)
    v = Valley(unimodal="skew_spread", spread=3).fit(x[:, None])
    assert v.fell_back_ and "skew_spread" not in v.reason_  # says which rule it used
    if side == "below":  # the peak is the positive population: cut 3 of its SDs below it
        assert "lower_spread" in v.reason_ and 0.44 < v.threshold_ < 0.52
    else:
        assert "upper_spread" in v.reason_ and 0.68 < v.threshold_ < 0.76
    # the fixed rule cuts on its own side whatever the data say, here beyond every event
    up = Valley(unimodal="upper_spread", spread=3).fit(_one_peak_with_a_shoulder("below")[:, None])
    assert up.threshold_ > 0.6


def test_skew_spread_on_a_symmetric_peak_is_upper_spread():
    from cytophen.datadriven._cuts import Valley

    x = np.random.default_rng(1).normal(0.5, 0.05, 5000)
    a = Valley(unimodal="skew_spread").fit(x[:, None])
    b = Valley(unimodal="upper_spread").fit(x[:, None])
    assert a.threshold_ == b.threshold_ and a.threshold_ > 0.6
