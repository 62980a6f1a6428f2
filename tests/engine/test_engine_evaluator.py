"""One gate-tree evaluator for single-sample gating and pooled fitting: the same rules in both
(absent markers, clean-up steps, booleans, refs, quadrant children), one hook that places a
data-driven gate, and no import cycle between the engine and the estimators.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cytophen
from conftest import shared_path
from cytophen.engine import TreeEvaluator, fit_on_sample, fit_pooled
from cytophen.errors import MarkerError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    FitOutcome,
    QuadrantGate,
    RectangleGate,
    RefGate,
)
from cytophen.io.sample import Sample
from cytophen.template import Marker, Population, Template

ATLAS = ("real", "treg", "FlowAtlas")


def _atlas(name: str) -> Sample:
    return cytophen.read_fcs(shared_path(*ATLAS, name))


def _dd_template(cleanup_scatter: bool = True) -> Template:
    """A scatter clean-up step (absent from the FlowAtlas files), then data-driven CD3 and CD4/CD8
    gates, a boolean and a ref."""
    cd3 = DataDrivenGate(["CD3"], "mindensity", {}, side="+")
    quad = DataDrivenGate(["CD4", "CD8"], "mindensity", {}, pool="subject")
    return Template(
        "dd",
        [
            Population(
                "scatter",
                None,
                RectangleGate(["FSC-A", "SSC-A"], [1e4, 0], [2.5e5, 2e5]),
                cleanup=cleanup_scatter,
            ),
            Population("t_cells", "scatter", cd3),
            Population("cd4", "t_cells", quad, quadrant="+-"),
            Population("cd8", "t_cells", quad, quadrant="-+"),
            Population("not_cd4", "t_cells", BooleanGate("not", [("cd4", False)])),
            Population("cd4_any", "scatter", RefGate([("cd4", None)])),
        ],
    )


def test_pooled_fit_of_one_sample_gates_as_the_sample_alone():
    """The same evaluator walks the tree in both: fitted on a pool of one sample (every event
    taken: fewer than max_fit_events), each gate is the one the sample gets alone."""
    s = _atlas("390C_BM_027.fcs")
    t = _dd_template()
    alone = cytophen.gate(s, t)
    fits = fit_pooled([s], t)
    assert set(fits) == {"t_cells", "cd4"}
    assert fits["t_cells"].details["pooled_events"] == [s.n_events]  # all events: scatter skipped
    pooled = cytophen.gate(s, t, fitted=fits)
    for name in t.names:
        np.testing.assert_array_equal(pooled.membership(name), alone.membership(name), name)
        assert pooled.gates[name]["geometry"] == alone.gates[name]["geometry"], name
    assert (
        pooled.skipped
        == alone.skipped
        == {
            "scatter": "skipped: FSC-A, SSC-A absent from the file (taken as exported after this gate)"
        }
    )
    assert 0 < alone.count("cd4") < alone.count("t_cells") < s.n_events
    assert alone.count("cd4_any") >= alone.count("cd4")


def test_only_marked_pools_the_marked_gate_and_fits_the_others_per_sample():
    a, b = _atlas("390C_BM_027.fcs"), _atlas("390C_Lung_029.fcs")
    t = _dd_template()
    fits = fit_pooled([a, b], t, only_marked=True)
    assert set(fits) == {"cd4"}
    assert fits["cd4"].details["pooled_samples"] == [a.id, b.id]
    # the CD4/CD8 pool is made of each sample's own (per-sample fitted) T cells
    counts = fits["cd4"].details["pooled_events"]
    assert counts == [cytophen.gate(x, t).count("t_cells") for x in (a, b)]


def _without(sample: Sample, *markers: str) -> Sample:
    keep = [i for i, m in enumerate(sample.markers) if m not in markers]
    return Sample(
        sample.events[:, keep],
        [sample.channels[i] for i in keep],
        [sample.markers[i] for i in keep],
        sample.keywords,
        path=sample.path.with_name("no_" + "_".join(markers) + ".fcs"),
    )


def test_a_missing_required_marker_fails_alike_alone_and_pooled():
    """A sample lacking a required marker fails pooled fitting as it fails gating alone (not
    "not measured"), naming the file and every missing marker."""
    good = _atlas("390C_BM_027.fcs")
    bad = _without(_atlas("390C_Lung_029.fcs"), "CD4", "CD8")
    t = _dd_template()
    with pytest.raises(MarkerError) as alone:
        cytophen.gate(bad, t)
    with pytest.raises(MarkerError) as pooled:
        fit_pooled([good, bad], t)
    for exc in (alone.value, pooled.value):
        assert exc.path == bad.path and exc.markers == ["CD4", "CD8"]
        assert "no_CD4_CD8.fcs: markers 'CD4', 'CD8' are not in the file" in str(exc)
    assert str(alone.value) == str(pooled.value)


def test_an_optional_marker_absent_is_not_measured_alike_alone_and_pooled():
    good = _atlas("390C_BM_027.fcs")
    bad = _without(_atlas("390C_Lung_029.fcs"), "CD8")
    t = _dd_template()
    t.markers["CD8"] = Marker("CD8", optional=True)
    alone = cytophen.gate(bad, t)
    note = "not measured: optional marker(s) CD8 absent from the file"
    assert alone.notes["cd4"] == note and alone.notes["cd4_any"].startswith("not measured")
    fits = fit_pooled([good, bad], t)
    assert fits["cd4"].details["pooled_events"][1] == 0  # nothing from the sample lacking CD8
    pooled_t = cytophen.gate(good, t, fitted=fits).count("t_cells")  # the T cells of the pool
    assert fits["cd4"].details["pooled_events"][0] == pooled_t
    again = cytophen.gate(bad, t, fitted=fits)
    assert again.notes["cd4"] == note


def test_the_hook_places_each_data_driven_gate_once_on_its_parent_values():
    s = _atlas("390C_BM_027.fcs")
    t = _dd_template()
    calls = []

    def place(pop, gate_, values):
        v = values()
        calls.append((pop.name, v.shape))
        if len(gate_.dims) == 1:
            return FitOutcome(RectangleGate(gate_.dims, [2000.0], [None]), reason="by hand")
        cuts = QuadrantGate.from_cuts(gate_.dims, 3000.0, 3000.0)
        return FitOutcome(cuts, fell_back=True, reason="fixed cuts")

    ev = TreeEvaluator(s, t)
    ev.run(place)
    cd3 = s.events[:, s.markers.index("CD3")] >= 2000
    cd4 = s.events[:, s.markers.index("CD4")] >= 3000
    cd8 = s.events[:, s.markers.index("CD8")] >= 3000
    # once per gate (the quadrant children share one), on the parent's events only
    assert calls == [("t_cells", (s.n_events, 1)), ("cd4", (int(cd3.sum()), 2))]
    np.testing.assert_array_equal(ev.members["cd4"], cd3 & cd4 & ~cd8)
    np.testing.assert_array_equal(ev.members["cd8"], cd3 & ~cd4 & cd8)
    np.testing.assert_array_equal(ev.members["not_cd4"], cd3 & ~(cd4 & ~cd8))
    np.testing.assert_array_equal(ev.members["cd4_any"], cd4 & ~cd8)  # the ref, within scatter
    assert ev.notes["cd4"] == "mindensity fell back: fixed cuts"
    r = ev.result(sample_id="x")
    assert r.gates["cd4"]["fell_back"] and r.gates["cd4"]["geometry"]["kind"] == "quadrant"
    assert r.table.set_index("population").loc["cd4", "count"] == int((cd3 & cd4 & ~cd8).sum())
    # fit_on_sample with a fitted gate: the values are never computed
    given = FitOutcome(RectangleGate(["CD3"], [0.0], [None]))
    hook = fit_on_sample(t, {"t_cells": given})
    assert hook(t.population("t_cells"), t.population("t_cells").gate, _never) is given


def _never():
    raise AssertionError("values computed for a pre-fitted gate")


@pytest.mark.parametrize(
    ("first", "then", "absent"),
    [("cytophen.datadriven", "cytophen.engine", "cytophen.engine"),
     ("cytophen.engine", "cytophen.datadriven", "cytophen.datadriven")],
)  # fmt: skip
def test_engine_and_estimators_import_without_a_cycle(first, then, absent):
    """The estimators never import the engine; the engine loads them when a data-driven gate is
    first placed (a fixed template starts without scikit-learn)."""
    code = (
        f"import sys, {first}; assert {absent!r} not in sys.modules, 'imported'; "
        f"import {then}; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
