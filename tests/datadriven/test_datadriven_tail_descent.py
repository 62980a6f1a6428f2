"""tailgate ``min_descent`` (a KDE ripple inside a flat-topped cloud is not the tail's descent) and
a box axis's own ``min_events`` below mixture_1d's 25·K default (issue 5, bcell.yaml on cohort
seed 2: activated naive 10x too many, DN2 declined on a 92-event DN gate)."""

from __future__ import annotations

import numpy as np
import pytest

import cytophen.datadriven as dd
from cytophen.datadriven._peak_cuts import Mixture1D, TailGate, _tail_right
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate


def _flat_top_cloud_with_bright_tail(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """~900 events of a broad, flat-topped negative cloud (two overlapping normals) and 45 bright
    events (the small CD11c+ population); returns values and the bright-population truth."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0.12, 0.06, 450), rng.normal(0.25, 0.05, 450), rng.normal(0.53, 0.06, 45)]
    return x, np.r_[np.zeros(900, bool), np.ones(45, bool)]


def test_tail_right_skips_a_shallow_ripple_of_the_derivative():
    grid = np.linspace(0.0, 1.0, 101)
    df = np.zeros_like(grid)
    df[10:21] = -0.05 * np.sin(np.linspace(0, np.pi, 11))  # ripple: local min -0.05 at ~0.15
    df[30:61] = -1.0 * np.sin(np.linspace(0, np.pi, 31))  # the real descent, min -1 at ~0.45
    cut0, edge0 = _tail_right(grid, df, 0.05, tol_abs=0.03)
    cut3, edge3 = _tail_right(grid, df, 0.05, tol_abs=0.03, descent_abs=0.3)
    assert not edge0 and not edge3
    assert cut0 < 0.25  # openCyto's rule: flat right after the ripple, inside the cloud
    assert cut3 >= 0.55  # past the real descent


def test_min_descent_keeps_the_cut_out_of_a_flat_topped_cloud():
    x, bright = _flat_top_cloud_with_bright_tail(1)
    cloud_hi = np.quantile(x[~bright], 0.99)
    plain = TailGate(tol=0.03).fit(x[:, None]).threshold_
    fixed = TailGate(tol=0.03, min_descent=0.3).fit(x[:, None]).threshold_
    assert plain < np.median(x[~bright]) + 0.1  # the failure: a ripple taken for the descent
    assert cloud_hi - 0.05 < fixed < np.quantile(x[bright], 0.1)
    sel = x > fixed
    f1 = 2 * (sel & bright).sum() / (sel.sum() + bright.sum())
    assert f1 > 0.85


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_min_descent_changes_nothing_where_the_descent_is_clear(seed):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0.0, 0.1, 5000), rng.normal(0.8, 0.1, 200)]
    a = TailGate(tol=0.03).fit(x[:, None]).threshold_
    assert TailGate(tol=0.03, min_descent=0.0).fit(x[:, None]).threshold_ == a  # the default
    assert TailGate(tol=0.03, min_descent=0.3).fit(x[:, None]).threshold_ == pytest.approx(a)


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_min_descent_out_of_range_is_a_gate_error(bad):
    with pytest.raises(GateError, match="min_descent"):
        TailGate(min_descent=bad).fit(np.random.default_rng(0).normal(size=(200, 1)))


def test_box_axis_min_events_lowers_the_mixture_minimum():
    rng = np.random.default_rng(5)
    # DN-like: 45 CD21+ (dim 1 high) and 49 CD21- of which 40 CD11c+ and 9 CD11c-
    X = np.r_[
        np.column_stack([rng.normal(0.6, 0.05, 45), rng.normal(0.16, 0.05, 45)]),
        np.column_stack([rng.normal(0.26, 0.05, 40), rng.normal(0.58, 0.05, 40)]),
        np.column_stack([rng.normal(0.3, 0.05, 9), rng.normal(0.22, 0.05, 9)]),
    ]
    axis = {"method": "mixture_1d", "cutpoint": "min_density"}
    spec = {"sequential": True, "axes": [dict(axis), dict(axis)]}
    declined = dd.fit_gate(DataDrivenGate(["CD21", "CD11c"], "box", spec, side="-+"), X)
    assert declined.gate is None and "needs 50" in declined.reason
    spec["axes"][1]["min_events"] = 20
    ok = dd.fit_gate(DataDrivenGate(["CD21", "CD11c"], "box", spec, side="-+"), X)
    assert ok.gate is not None
    c21, c11 = ok.details["cuts"]
    assert 0.35 < c21 < 0.5 and 0.3 < c11 < 0.5
    # without an explicit axis minimum the mixture keeps its max(50, 25*K) default
    assert Mixture1D(K=3).required_events() == 75
