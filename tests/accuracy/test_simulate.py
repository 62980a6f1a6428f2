"""The simulator: determinism, truth frequencies vs the requested ones, hierarchy, realism
properties, the FCS round trip, the logicle inverse, and truth-based scoring."""

from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import cytophen
from cytophen.simulate import (
    DEFAULT_PARAMS,
    PANELS,
    TRUTH_COLUMNS,
    SimulationError,
    logicle_inverse,
    read_truth,
    score,
    simulate_sample,
    truth_path,
    write_sample,
)
from cytophen.simulate.model import SATURATION

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_b():
    return simulate_sample("bcell", seed=11, events=120_000)


@pytest.fixture(scope="module")
def big_t():
    return simulate_sample("treg", seed=12, events=120_000)


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# -- determinism ------------------------------------------------------------------------------
@pytest.mark.parametrize("panel", ["bcell", "treg"])
def test_same_seed_same_arrays_different_seed_different(panel):
    a = simulate_sample(panel, seed=5, events=4000)
    b = simulate_sample(panel, seed=5, events=4000)
    c = simulate_sample(panel, seed=6, events=4000)
    np.testing.assert_array_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.array_equal(a.events, c.events)
    assert not a.truth.equals(c.truth)


def test_same_seed_same_bytes(tmp_path):
    for d in ("x", "y"):
        write_sample(tmp_path / d / "s.fcs", simulate_sample("bcell", seed=3, events=3000))
    write_sample(tmp_path / "z" / "s.fcs", simulate_sample("bcell", seed=4, events=3000))
    assert _sha(tmp_path / "x" / "s.fcs") == _sha(tmp_path / "y" / "s.fcs")
    assert _sha(tmp_path / "x" / "s.truth.parquet") == _sha(tmp_path / "y" / "s.truth.parquet")
    assert _sha(tmp_path / "x" / "s.fcs") != _sha(tmp_path / "z" / "s.fcs")


# -- truth frequencies: requested (by hand from the parameters) vs the labels ------------------
def _within(observed_k: int, n: int, p: float, z: float = 4.5) -> bool:
    """Binomial count within z standard errors of n*p."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(observed_k - n * p) <= z * sd + 1


def _check(truth: pd.DataFrame, child: str, parent: str | None, p: float) -> None:
    n = len(truth) if parent is None else int(truth[parent].sum())
    k = int(truth[child].sum())
    assert _within(k, n, p), f"{child}: {k}/{n} = {k / n:.4f}, requested {p:.4f}"


def test_truth_frequencies_match_requested_bcell(big_b):
    t = big_b.truth
    P = DEFAULT_PARAMS
    # single lymphocytes = all events minus debris, doublets, granulocytes, monocytes
    _check(t, "singlets", None, 1 - 0.07 - 0.05 - 0.04 - 0.12)
    _check(t, "live", "singlets", 1 - P["dead"])  # 0.93
    _check(t, "b_cells", "live", 0.11)
    _check(t, "plasmablasts", "b_cells", 0.025)
    _check(t, "non_plasmablast_b", "b_cells", 0.975)
    _check(t, "unswitched_memory", "non_plasmablast_b", 0.09)
    _check(t, "switched_memory", "non_plasmablast_b", 0.15)
    _check(t, "dn", "non_plasmablast_b", 0.05 + 0.06 + 0.015)
    _check(t, "naive", "non_plasmablast_b", 1 - 0.09 - 0.15 - 0.125)
    _check(t, "dn1", "dn", 0.05 / 0.125)
    _check(t, "dn2", "dn", 0.06 / 0.125)
    _check(t, "activated_naive", "naive", 0.04 / 0.635)
    _check(t, "transitional", "naive", 0.05 / 0.635)


def test_truth_frequencies_match_requested_treg(big_t):
    t = big_t.truth
    _check(t, "t_cells", "live", 1 - 0.11 - 0.13)
    _check(t, "cd4", "t_cells", 0.62)
    _check(t, "cd8", "t_cells", 0.30)
    _check(t, "treg", "cd4", 0.065)
    _check(t, "helios_pos_treg", "treg", 0.70)
    _check(t, "helios_neg_treg", "treg", 0.30)


def test_subject_params_change_the_frequencies():
    s = simulate_sample(
        "bcell", seed=2, events=150_000, subject_params={"dn2": 0.25, "b_cells": 0.3}
    )
    _check(s.truth, "b_cells", "live", 0.3)
    _check(s.truth, "dn2", "non_plasmablast_b", 0.25)
    _check(s.truth, "dn2", "dn", 0.25 / (0.05 + 0.25 + 0.015))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"nope": 0.1}, "unknown subject parameter 'nope'"),
        ({"dn2": 1.5}, "fraction in \\[0, 1\\]"),
        ({"dn2": "x"}, "must be a number"),
        ({"cd4": 0.8, "cd8": 0.4}, "sum to 1.200 > 1"),
    ],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises(SimulationError, match=match):
        simulate_sample("bcell", seed=0, events=100, subject_params=params)


def test_bad_panel_and_events():
    with pytest.raises(SimulationError, match="unknown panel 'tcell'"):
        simulate_sample("tcell", seed=0, events=100)
    with pytest.raises(SimulationError, match="at least 1"):
        simulate_sample("bcell", seed=0, events=0)
    assert issubclass(SimulationError, cytophen.CytophenError)


# -- hierarchy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("panel", ["bcell", "treg"])
def test_truth_is_hierarchical_as_in_the_template(panel, big_b, big_t):
    tpl = cytophen.load_template(ROOT / "gating_templates" / f"{panel}.yaml")
    truth = (big_b if panel == "bcell" else big_t).truth
    assert list(truth.columns) == TRUTH_COLUMNS[panel]
    # every template population has truth, except the dump-channel steps (CD3- for B cells, CD19-
    # for T cells) and the CD25+ CD127lo pre-gate of the Tregs, which the simulator does not label
    helpers = {"non_t", "non_b", "cd25_cd127lo"}
    assert set(truth.columns) == set(tpl.names) - helpers, "truth columns must be the template's populations"
    assert all(pd.api.types.is_bool_dtype(d) for d in truth.dtypes)
    for p in tpl.populations:
        if p.name in helpers:
            continue
        parent = p.parent
        while parent in helpers:  # the nearest ancestor that is a population with truth
            parent = tpl.population(parent).parent
        if parent is not None:
            outside = truth[p.name] & ~truth[parent]
            assert not outside.any(), f"{p.name} has {outside.sum()} events outside {parent}"
        assert truth[p.name].any(), f"{p.name} is empty"
    if panel == "bcell":  # the quadrants partition non-plasmablast B cells; DN1/DN2 disjoint
        q = truth[["naive", "unswitched_memory", "switched_memory", "dn"]].sum(axis=1)
        assert (q[truth["non_plasmablast_b"]] == 1).all()
        assert not (truth["dn1"] & truth["dn2"]).any()
    else:
        assert (truth["helios_pos_treg"] ^ truth["helios_neg_treg"])[truth["treg"]].all()


# -- realism properties ------------------------------------------------------------------------
def _comp_logicle(sim):
    from cytophen.transforms import LogicleTransform

    ev = sim.events.astype(np.float64)
    idx = [sim.channels.index(c) for c in sim.spillover.columns]
    comp = ev.copy()
    comp[:, idx] = ev[:, idx] @ np.linalg.inv(sim.spillover.to_numpy())
    lg = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    return comp, {m: lg.apply(comp[:, i]) for i, m in enumerate(sim.markers) if m}


def test_layout_spillover_saturation_and_negatives(big_b):
    ev, ch, mk, spill, truth = big_b
    assert ch == ["FSC-A", "FSC-H", "SSC-A", *PANELS["bcell"].detectors, "Time"]
    assert mk[3:-1] == [
        "Viability",
        "CD3",
        "CD19",
        "CD20",
        "IgD",
        "CD27",
        "CD24",
        "CD38",
        "CD21",
        "CD11c",
    ]
    assert ev.dtype == np.float32 and ev.shape == (120_000, 14)
    assert list(spill.index) == list(spill.columns) == PANELS["bcell"].detectors
    assert np.allclose(np.diag(spill), 1.0) and spill.loc["FITC-A", "PE-A"] > 0.1
    assert ev[:, :-1].max() <= SATURATION
    assert (ev[:, :3] >= 0).all()
    assert np.all(np.diff(ev[:, -1]) >= 0), "Time must be in acquisition order"
    comp, _ = _comp_logicle(big_b)
    # compensated negatives spread below zero (noise + spillover spreading)
    for m in ("IgD", "CD21", "CD27"):
        assert (comp[:, mk.index(m)] < 0).mean() > 0.02


def test_saturation_at_the_range_limit():
    # a strongly drifted file pushes bright populations into the range limit
    hits = 0
    for seed in range(4):
        s = simulate_sample("bcell", seed=seed, events=20_000, drift=4.0)
        assert s.events[:, :-1].max() <= SATURATION
        hits += int((s.events[:, :-1] == SATURATION).sum())
    assert hits > 0


def test_doublets_sit_below_the_singlet_diagonal(big_b):
    ev, truth = big_b.events, big_b.truth
    ratio = ev[:, 1] / np.maximum(ev[:, 0], 1)
    doublets = (truth["lymphocytes"] & ~truth["singlets"]).to_numpy()
    singles = truth["singlets"].to_numpy()
    assert doublets.sum() > 1000
    assert np.median(ratio[doublets]) < np.median(ratio[singles]) - 0.15
    assert np.median(ev[doublets, 0]) > 1.3 * np.median(ev[singles, 0])


def test_populations_sit_where_the_gates_expect(big_b, big_t):
    _, vb = _comp_logicle(big_b)
    tb = big_b.truth
    live, dead = tb["live"].to_numpy(), (tb["singlets"] & ~tb["live"]).to_numpy()
    assert np.median(vb["Viability"][dead]) > np.median(vb["Viability"][live]) + 0.3
    b = tb["b_cells"].to_numpy()
    assert np.median(vb["CD19"][b]) > 0.5 > np.median(vb["CD19"][live & ~b])
    assert np.median(vb["IgD"][tb["naive"]]) > np.median(vb["IgD"][tb["switched_memory"]]) + 0.3
    assert np.median(vb["CD27"][tb["switched_memory"]]) > np.median(vb["CD27"][tb["dn"]]) + 0.25
    assert np.median(vb["CD11c"][tb["dn2"]]) > np.median(vb["CD11c"][tb["dn1"]]) + 0.25
    assert np.median(vb["CD38"][tb["transitional"]]) > np.median(vb["CD38"][tb["naive"]]) + 0.15
    _, vt = _comp_logicle(big_t)
    tt = big_t.truth
    conv = (tt["cd4"] & ~tt["treg"]).to_numpy()
    assert np.median(vt["FoxP3"][tt["treg"]]) > np.median(vt["FoxP3"][conv]) + 0.25
    assert np.median(vt["CD127"][tt["treg"]]) < np.median(vt["CD127"][conv]) - 0.15
    assert (
        np.median(vt["Helios"][tt["helios_pos_treg"]])
        > np.median(vt["Helios"][tt["helios_neg_treg"]]) + 0.2
    )


def test_drift_moves_populations_between_files():
    def b_median(seed, drift):
        s = simulate_sample("bcell", seed=seed, events=20_000, drift=drift)
        _, v = _comp_logicle(s)
        b = s.truth["b_cells"].to_numpy()
        return np.median(v["CD19"][b]), np.median(s.events[s.truth["singlets"].to_numpy(), 0])

    drifted = np.array([b_median(s, 1.0) for s in range(6)])
    still = np.array([b_median(s, 0.0) for s in range(6)])
    # CD19 position (logicle units) and lymphocyte FSC-A move between files with drift ...
    assert np.ptp(drifted[:, 0]) > 0.03 and np.ptp(drifted[:, 1]) > 4000
    # ... and stay put (up to sampling error) without
    assert np.ptp(still[:, 0]) < 0.015 and np.ptp(still[:, 1]) < 2000


# -- FCS round trip ----------------------------------------------------------------------------
@pytest.mark.parametrize("panel", ["bcell", "treg"])
def test_fcs_round_trip(tmp_path, panel):
    sim = simulate_sample(panel, seed=9, events=5000)
    path = write_sample(tmp_path / f"x_{panel}.fcs", sim, keywords={"$SRC": "P09"})
    s = cytophen.read_fcs(path)
    assert s.channels == sim.channels
    assert s.markers == sim.markers
    np.testing.assert_array_equal(s.events, sim.events)
    assert s.spillover is not None
    assert list(s.spillover.columns) == list(sim.spillover.columns)
    np.testing.assert_allclose(s.spillover.to_numpy(), sim.spillover.to_numpy(), rtol=1e-12)
    assert s.keyword("$SPILLOVER") is not None
    assert s.keyword("$SRC") == "P09" and s.keyword("$TIMESTEP") == "0.01"
    assert s.keyword("$P4R") == "262144"
    assert truth_path(path).name == f"x_{panel}.truth.parquet"
    pd.testing.assert_frame_equal(read_truth(path), sim.truth)


def test_read_truth_missing(tmp_path):
    with pytest.raises(SimulationError, match="no ground truth next to it"):
        read_truth(tmp_path / "other.fcs")


# -- logicle inverse vs flowutils (independent C implementation) -------------------------------
def test_logicle_inverse_matches_flowutils():
    fu = pytest.importorskip("flowutils.transforms")
    y = np.concatenate([np.linspace(-0.3, 1.1, 1001), [0.0, 0.111111111, 1.0]])
    ref = fu.logicle_inverse(y.reshape(-1, 1), [0], t=262144, m=4.5, w=0.5, a=0)[:, 0]
    np.testing.assert_allclose(logicle_inverse(y), ref, rtol=1e-9, atol=1e-6)
    assert logicle_inverse(np.array([1.0]))[0] == pytest.approx(262144.0)
    assert abs(logicle_inverse(np.array([0.5 / 4.5]))[0]) < 1e-6  # W/M maps to zero


# -- scoring -----------------------------------------------------------------------------------
def _fake_result(members: dict[str, list[bool]], parents: dict[str, str]):
    m = {k: np.array(v, dtype=bool) for k, v in members.items()}
    n = len(next(iter(m.values())))
    return SimpleNamespace(
        n_events=n,
        sample_id="fake",
        populations=list(m),
        membership=lambda name: m[name],
        count=lambda name: int(m[name].sum()),
        template=None,
        table=pd.DataFrame({"population": list(parents), "parent": list(parents.values())}),
    )


def test_score_by_hand():
    # 10 events. truth A = 0-5 (6), gated A = 2-7 (6): both 4 -> P = R = F1 = 4/6.
    # truth B (child of A) = 0,1 (2 of 6 = 33.3 %); gated B = 2,3,4 (3 of 6 = 50 %): no overlap.
    truth = pd.DataFrame(
        {
            "A": [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
            "B": [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            "C": [0] * 10,
        },
        dtype=bool,
    )
    res = _fake_result(
        {
            "A": [0, 0, 1, 1, 1, 1, 1, 1, 0, 0],
            "B": [0, 0, 1, 1, 1, 0, 0, 0, 0, 0],
            "C": [0] * 10,
            "D": [1] * 10,
        },
        {"A": "root", "B": "A", "C": "A", "D": "root"},
    )
    s = score(res, truth).set_index("population")
    assert list(s.index) == ["A", "B", "C"]  # D has no truth
    a, b, c = s.loc["A"], s.loc["B"], s.loc["C"]
    assert (a.n_true, a.n_gated, a.n_both) == (6, 6, 4)
    assert a.f1 == pytest.approx(4 / 6) and a.precision == pytest.approx(4 / 6)
    assert a.percent_of_parent_true == pytest.approx(60.0) and a.abs_error_pp == pytest.approx(0.0)
    assert (b.n_true, b.n_gated, b.n_both, b.f1) == (2, 3, 0, 0.0)
    assert b.percent_of_parent_true == pytest.approx(100 / 3)
    assert b.percent_of_parent_gated == pytest.approx(50.0)
    assert b.abs_error_pp == pytest.approx(50.0 - 100 / 3)
    assert c.f1 == 1.0 and c.n_true == c.n_gated == 0  # both empty: perfect


def test_score_rejects_the_wrong_truth():
    res = _fake_result({"A": [1, 0, 1]}, {"A": "root"})
    with pytest.raises(SimulationError, match="truth has 2 rows"):
        score(res, pd.DataFrame({"A": [True, False]}))
    with pytest.raises(SimulationError, match="no population"):
        score(res, pd.DataFrame({"Z": [True, False, True]}))


def test_score_fixed_gates_on_simulated_file(tmp_path):
    """Hand-placed fixed gates (from the simulator's documented positions) recover the truth."""
    from cytophen.gates import Dim, PolygonGate, RectangleGate
    from cytophen.template import Population, Template
    from cytophen.transforms import LogicleTransform

    lg = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    L = lambda m: Dim(m, transform=lg)  # noqa: E731
    pops = [
        Population(
            "lymphocytes", None, RectangleGate(["FSC-A", "SSC-A"], [35000, None], [100000, 42000])
        ),
        Population(
            "singlets",
            "lymphocytes",
            PolygonGate(
                ["FSC-A", "FSC-H"], [[0, 0], [262144, 262144 * 0.72], [262144, 262144], [0, 262144]]
            ),
        ),
        Population("live", "singlets", RectangleGate([L("Viability")], [None], [0.45])),
        Population(
            "b_cells", "live", RectangleGate([L("CD19"), L("CD3")], [0.45, None], [None, 0.42])
        ),
    ]
    tpl = Template("fixed", pops)
    sim = simulate_sample("bcell", seed=21, events=20_000, drift=0.0)
    path = write_sample(tmp_path / "f.fcs", sim)
    res = cytophen.gate(cytophen.read_fcs(path), tpl)
    s = score(res, read_truth(path)).set_index("population")
    assert s.loc["b_cells", "f1"] > 0.95
    assert s.loc["live", "f1"] > 0.95
    assert s.loc["b_cells", "abs_error_pp"] < 2.0
    assert (s["n_gated"] == [res.count(p) for p in s.index]).all()
