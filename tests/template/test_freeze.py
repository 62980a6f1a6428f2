"""``Gate.from_geometry`` is the inverse of ``geometry()`` for every kind of fixed gate, and
``Template.freeze`` is the one way data-driven gates become fixed ones (the GatingML adapter's
``frozen_template`` goes through it).

Reference: the GatingML 2.0 conformance set (../shared/data/gatingml2, FlowKit's gate_ref files
with per-event truth): each of its gates, rebuilt from its geometry, selects the truth's events.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest

import cytophen
from conftest import SHARED_DATA, shared_path
from cytophen.engine import FitOutcome, fit_pooled
from cytophen.errors import GateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
    RefGate,
    gate_from_geometry,
)
from cytophen.interop.gatingml import frozen_template, load_gatingml
from cytophen.io.sample import Sample
from cytophen.template import Marker, Population, Template
from cytophen.transforms import LogicleTransform

GML = "gatingml2"


def _same(a: Gate, b: Gate) -> None:
    """Same kind, same dimensions (transforms and compensation included), same geometry."""
    assert type(a) is type(b)
    assert tuple(getattr(a, "dims", ())) == tuple(getattr(b, "dims", ()))
    assert a.geometry() == b.geometry()


LG = LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0)
X, Y = Dim("CD19", LG, "FCS"), Dim("CD27", None, "uncompensated")
R = RatioDim("ratio", "FL2-H", "FL2-A", A=2.0, C=-1.0, transform=LG)
GATES = {
    "rectangle": RectangleGate([X, Y], [0.5, None], [None, 3000.0]),
    "range_on_ratio": RectangleGate([R], [0.1], [2.5]),
    "polygon": PolygonGate([X, Y], [[0, 0], [3, 0], [3, 4000], [1, 2000]]),
    "ellipsoid": EllipsoidGate([X, Y], [2.0, 1000.0], [[0.5, 10.0], [10.0, 9e5]], 4.0),
    "quadrant": QuadrantGate.from_cuts([X, Y], 1.5, 800.0, {"++": "dp", "-+": "y_only"}),
    "boolean": BooleanGate("and", [("a", False), ("b", True)]),
    "not": BooleanGate("not", [("a", False)]),
    "ref": RefGate([("a", None), ("b", ("CD27",))]),
}


@pytest.mark.parametrize("kind", list(GATES))
def test_from_geometry_inverts_geometry(kind):
    g = GATES[kind]
    _same(Gate.from_geometry(g.geometry(), getattr(g, "dims", None)), g)
    if kind in ("rectangle", "polygon", "ellipsoid", "quadrant"):  # by labels: plain dimensions
        plain = Gate.from_geometry(g.geometry())
        assert [d.label for d in plain.dims] == [d.label for d in g.dims]
        assert plain.geometry() == g.geometry()


def test_from_geometry_refuses_what_it_cannot_build():
    with pytest.raises(GateError, match="'cd19_pos'.*data_driven.*until it is fitted"):
        gate_from_geometry(DataDrivenGate(["CD19"], "mindensity").geometry(), population="cd19_pos")
    with pytest.raises(GateError, match="on CD19, CD27, the dimensions given are CD27"):
        gate_from_geometry(GATES["rectangle"].geometry(), [Y])
    with pytest.raises(GateError, match="polygon geometry lacks or mangles 'vertices'"):
        gate_from_geometry({"kind": "polygon", "dims": ["a", "b"]})


def _gml_files() -> list[str]:
    f = SHARED_DATA / GML / "cases.csv"
    if not f.is_file():
        return ["shared-data-absent"]
    with open(f, newline="") as fh:
        return sorted({r["gml_file"] for r in csv.DictReader(fh)})


@functools.cache
def _gml_sample():
    return cytophen.read_fcs(shared_path(GML, "data1.fcs"))


@pytest.mark.parametrize("gml_file", _gml_files())
def test_conformance_gates_rebuilt_from_their_geometry_meet_the_truth(gml_file):
    """Every gate of the GatingML 2.0 conformance files, rebuilt by ``from_geometry`` (its own
    dims), is the same gate, and the rebuilt template reproduces each truth file event for
    event."""
    if gml_file == "shared-data-absent":
        shared_path(GML, "cases.csv")  # skips with the reason
    t = load_gatingml(shared_path(GML, gml_file))
    rebuilt: dict[int, Gate] = {}
    pops = []
    for p in t.populations:
        g = p.gate
        if id(g) not in rebuilt:
            rebuilt[id(g)] = Gate.from_geometry(g.geometry(), getattr(g, "dims", None) or None)
            _same(rebuilt[id(g)], g)
        pops.append(Population(p.name, p.parent, rebuilt[id(g)], p.quadrant, p.report))
    again = Template(t.name, pops, markers=t.markers, compensation=t.compensation,
                     matrices=t.matrices)  # fmt: skip
    assert again.hash == t.hash
    with open(shared_path(GML, "cases.csv"), newline="") as fh:
        cases = [r for r in csv.DictReader(fh) if r["gml_file"] == gml_file]
    got = cytophen.gate(_gml_sample(), again)
    for case in cases:
        lines = shared_path(GML, case["truth_file"]).read_text().split()
        truth = np.array([v == "1" for v in lines], dtype=bool)
        np.testing.assert_array_equal(got.membership(case["gate_id"]), truth, case["gate_id"])


# -- Template.freeze ---------------------------------------------------------------------------
def _two_groups(seed: int, n: int = 20000) -> Sample:
    rng = np.random.default_rng(seed)
    pos = rng.random(n) < 0.4
    cd19 = np.where(pos, rng.normal(6, 1, n), rng.normal(0, 1, n))
    cd27 = rng.normal(0, 1, n) + np.where(rng.random(n) < 0.3, 5.0, 0.0)
    ev = np.c_[cd19, cd27].astype(np.float32)
    return Sample(ev, ["B1-A", "B2-A"], ["CD19", "CD27"], path=Path(f"s{seed}.fcs"))


def _template() -> Template:
    g1 = DataDrivenGate(["CD19"], "mindensity", {"adjust": 1.0}, side="+")
    q = DataDrivenGate(["CD19", "CD27"], "quantile", {"probs": 0.5})
    return Template(
        "t",
        [
            Population("b", None, g1, hidden=True),
            Population("hi", "b", q, quadrant="++"),
            Population("lo", "b", q, quadrant="--", cleanup=True),
            Population("hi_any", None, RefGate([("hi", ("CD27",))])),
        ],
    )


def test_freeze_from_a_result_and_from_pooled_fits_record_one_provenance():
    s1, s2 = _two_groups(1), _two_groups(2)
    t = _template()
    r = cytophen.gate(s1, t)
    frozen = t.freeze(r)
    assert frozen.name == "t-frozen"
    assert frozen.meta["frozen_from"] == {
        "template": "t", "version": "1", "hash": t.hash, "samples": [r.sample_id]
    }  # fmt: skip
    assert frozen.population("hi").gate is frozen.population("lo").gate  # still one gate
    assert [p.name for p in frozen.populations if p.hidden] == ["b"]
    assert [p.name for p in frozen.populations if p.cleanup] == ["lo"]
    again = cytophen.gate(s1, frozen)
    for name in t.names:
        np.testing.assert_array_equal(again.membership(name), r.membership(name), name)
    assert isinstance(frozen.population("hi_any").gate, RefGate)  # a ref stays a ref
    fits = fit_pooled([s1, s2], t)
    pooled = t.freeze(fits, name="pooled")
    assert pooled.meta["frozen_from"]["samples"] == [s1.id, s2.id] and pooled.name == "pooled"
    assert pooled.meta["frozen_from"]["hash"] == t.hash
    _same(pooled.population("b").gate, fits["b"].gate)
    # the GatingML adapter freezes the same way
    via_gml = frozen_template(r)
    assert via_gml.meta["frozen_from"] == frozen.meta["frozen_from"]
    assert via_gml.hash == frozen.hash


def test_freeze_errors_name_the_population_and_why():
    s = _two_groups(3, n=30)  # too few events: mindensity declines
    t = _template()
    r = cytophen.gate(s, t)
    with pytest.raises(GateError, match="gate 'b': no fitted gate to freeze .*at least 50"):
        t.freeze(r)
    with pytest.raises(GateError, match="gate 'b': no fitted gate to freeze .*at least 50"):
        frozen_template(r)  # one error type for both callers
    with pytest.raises(GateError, match="gate 'hi': no fitted gate to freeze \\(missing"):
        t.freeze({"b": FitOutcome(RectangleGate(["CD19"], [3.0], [None]))})
    with pytest.raises(GateError, match="gate 'b': no fitted gate to freeze \\(declined: few"):
        t.freeze({"b": FitOutcome(None, reason="few")})


def _real_file_like_template() -> Template:
    """A clean-up step on a channel the file lacks (skipped), a subset on a marker it lacks (not
    measured), and a boolean on the skipped step."""

    def mk(dims, side):
        return DataDrivenGate(dims, "mindensity", {"adjust": 1.0}, side=side)

    return Template(
        "t",
        [
            Population("cells", None, RectangleGate(["CD19"], [-50.0], [None])),
            Population("live", "cells", mk(["Viability"], "-"), cleanup=True),
            Population("b", "live", mk(["CD19"], "+")),
            Population("memory", "b", mk(["CD27"], "+")),
            Population("igd_pos", "b", mk(["IgD"], "+")),
            Population("not_live", "cells", BooleanGate("not", [("live", False)])),
            Population("b_or_dead", "cells", BooleanGate("or", [("b", False), ("live", True)])),
        ],
        markers={m: Marker(m, optional=True) for m in ("Viability", "IgD")},
    )


def test_freeze_of_a_real_file_result_leaves_out_skipped_steps_and_what_was_not_measured():
    s = _two_groups(3)  # has CD19 and CD27, no Viability, no IgD
    t = _real_file_like_template()
    r = cytophen.gate(s, t)
    assert set(r.skipped) == {"live"}
    with pytest.raises(GateError, match="'igd_pos': no fitted gate.*partial=True"):
        t.freeze(r)
    frozen = t.freeze(r, partial=True)
    meta = frozen.meta["frozen_from"]
    assert set(meta["skipped"]) == {"live"} and set(meta["not_measured"]) == {"igd_pos"}
    assert frozen.names == ["cells", "b", "memory", "not_live", "b_or_dead"]
    assert frozen.population("b").parent == "cells"  # hung from the skipped step's parent
    assert frozen.population("not_live").gate.operands == [("cells", False)]
    # booleans on the skipped step now read the events it held (here: every event)
    again = cytophen.gate(s, frozen)
    for name in frozen.names:
        np.testing.assert_array_equal(again.membership(name), r.membership(name), name)
    assert again.count("not_live") == 0 and again.count("b_or_dead") == r.count("b")


def test_freeze_of_a_pregated_result_starts_below_the_pregated_population():
    s = _two_groups(4)
    t = _real_file_like_template()
    r = cytophen.gate(s, t, pregated="b")
    frozen = t.freeze(r, partial=True)
    assert set(frozen.meta["frozen_from"]["skipped"]) == {"cells", "live", "b"}
    assert frozen.population("memory").parent is None
    assert cytophen.gate(s, frozen).count("memory") == r.count("memory")


def test_freeze_refuses_a_boolean_on_a_skipped_root_step():
    t = _real_file_like_template()
    pops = [Population("live", None, t.population("live").gate, cleanup=True),
            Population("dead", None, BooleanGate("not", [("live", False)]))]  # fmt: skip
    t2 = Template("t2", pops, markers=t.markers)
    r = cytophen.gate(_two_groups(5), t2)
    with pytest.raises(GateError, match="'dead'.*skipped on this file and held every event"):
        t2.freeze(r)
