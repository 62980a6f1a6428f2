"""BoxEstimator's ``too_few`` option: a sequential box with too few events left for a later cut."""

from __future__ import annotations

import numpy as np
import pytest

from cytophen.datadriven import BoxEstimator, FitDeclined
from cytophen.gates import Dim

AXES = [{"method": "mindensity"}, {"method": "mindensity"}]


def _two_clusters_with_few_positives(rng, n_pos: int) -> np.ndarray:
    # dim 1: a bimodal marker (negatives at 0.2, positives at 0.7); dim 2 is fitted on the
    # positives only, and there are only n_pos of them
    neg = np.column_stack([rng.normal(0.2, 0.03, 400), rng.normal(0.3, 0.05, 400)])
    pos = np.column_stack([rng.normal(0.7, 0.03, n_pos), rng.normal(0.3, 0.05, n_pos)])
    return np.vstack([neg, pos])


def test_default_declines_when_too_few_are_left():
    X = _two_clusters_with_few_positives(np.random.default_rng(0), 10)
    with pytest.raises(FitDeclined, match="dimension 2"):
        BoxEstimator(side="++", axes=AXES, sequential=True).fit(X)


@pytest.mark.parametrize("side", ["++", "+-"])
def test_empty_places_an_empty_box_and_flags_it(side):
    X = _two_clusters_with_few_positives(np.random.default_rng(1), 10)
    est = BoxEstimator(side=side, axes=AXES, sequential=True, too_few="empty").fit(X)
    assert est.fell_back_ and "empty region" in est.reason_
    # the first cut is still the fitted valley between the clusters
    assert 0.3 < est.cuts_[0] < 0.6
    gate = est.to_gate((Dim("a"), Dim("b")), side)
    inside = np.asarray(gate.contains(X), dtype=bool)
    assert not inside.any()
    assert np.isfinite(est.cuts_).all()  # finite, so the gate serialises (GatingML, JSON)


def test_empty_leaves_enough_events_alone():
    X = _two_clusters_with_few_positives(np.random.default_rng(2), 300)
    a = BoxEstimator(side="++", axes=AXES, sequential=True).fit(X)
    b = BoxEstimator(side="++", axes=AXES, sequential=True, too_few="empty").fit(X)
    assert a.cuts_ == b.cuts_ and a.fell_back_ == b.fell_back_
    assert "empty region" not in (b.reason_ or "")


def test_too_few_is_checked():
    X = _two_clusters_with_few_positives(np.random.default_rng(3), 300)
    with pytest.raises(Exception, match="too_few"):
        BoxEstimator(side="++", axes=AXES, sequential=True, too_few="skip").fit(X)
