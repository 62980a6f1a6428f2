"""Reference gates (openCyto's ``refGate``): the gate another population placed in this sample,
applied within a different parent, whole, on some of its dimensions, or intersected with others.

Expected memberships come from how the events were constructed (clusters separated by wide,
empty gaps, so any sensible cut lies in the gap), not from re-running the gate code.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import cytophen
from cytophen.errors import GateError, TemplateError
from cytophen.interop.yaml_template import load_yaml_template, validate_template
from cytophen.io.sample import Sample

# Four groups of events, each a tight cluster (CD19, CD38); gaps of tens of units between them.
#   group   CD19   CD38   events
#   b_lo    100    10     200     CD19+ CD38-
#   b_hi    100    50     100     CD19+ CD38+
#   n_lo     10    10      50     CD19- CD38-
#   n_hi     10    50      30     CD19- CD38+   (CD19-low cells the CD38 cut should still catch)
_GROUPS = {
    "b_lo": (100, 10, 200),
    "b_hi": (100, 50, 100),
    "n_lo": (10, 10, 50),
    "n_hi": (10, 50, 30),
}


def _sample(seed: int = 0) -> tuple[Sample, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for name, (cd19, cd38, k) in _GROUPS.items():
        rows.append(np.column_stack([cd19 + rng.normal(0, 1, k), cd38 + rng.normal(0, 1, k)]))
        labels += [name] * k
    ev = np.vstack(rows).astype(np.float32)
    order = rng.permutation(ev.shape[0])  # groups interleaved in file order
    ev, lab = ev[order], np.asarray(labels)[order]
    s = Sample(ev, ["FL1-A", "FL2-A"], ["CD19", "CD38"])
    return s, {g: lab == g for g in _GROUPS}


# Every test template has these two populations (a fixed CD19 cut and the CD38 valley fitted
# on its events); a test adds its own below them, from line 13 of the file.
HEAD = """\
name: ref
version: "1"
compensation: none
panel:
  CD19:
  CD38:
populations:
  cd19_pos:
    gate: {kind: range, dims: [CD19], min: 50}
  cd38_pos:
    parent: cd19_pos
    gate: {method: mindensity, dims: [CD38], side: "+"}
"""


def _template(tmp_path, populations: str, name: str = "t.yaml"):
    p = tmp_path / name
    p.write_text(HEAD + textwrap.indent(textwrap.dedent(populations).strip("\n"), "  ") + "\n")
    return p


def test_a_cut_fitted_on_one_parent_applied_to_another(tmp_path):
    """The CD38 valley is fitted on CD19+ events only; the ref applies that cut to all events."""
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              cd38_pos_any_cd19:
                gate: {ref: cd38_pos}
              cd38_pos_of_cd19_neg:
                parent: cd19_neg
                gate: {ref: {population: cd38_pos, dims: [CD38]}}
              cd19_neg:
                gate: {kind: range, dims: [CD19], max: 50}
            """,
        )
    )
    s, g = _sample()
    r = cytophen.gate(s, t)
    np.testing.assert_array_equal(r.membership("cd38_pos"), g["b_hi"])
    np.testing.assert_array_equal(r.membership("cd38_pos_any_cd19"), g["b_hi"] | g["n_hi"])
    np.testing.assert_array_equal(r.membership("cd38_pos_of_cd19_neg"), g["n_hi"])
    tab = r.table.set_index("population")
    assert tab.loc["cd38_pos_of_cd19_neg", "count"] == 30
    assert tab.loc["cd38_pos_of_cd19_neg", "parent_count"] == 80
    # gates.json: the geometry applied is the referenced gate's own, with where it came from
    used, src = r.gates["cd38_pos_any_cd19"], r.gates["cd38_pos"]
    assert used["geometry"] == src["geometry"] and used["geometry"]["kind"] == "rectangle"
    assert 12 < used["geometry"]["min"][0] < 48  # in the empty gap between the CD38 clusters
    assert used["ref"] == [{"population": "cd38_pos", "dims": None}]
    assert used["ref_data_driven"] is True and used["fell_back"] is False
    assert used["dims"] == ["CD38"]


def test_several_references_intersect_as_one_rectangle(tmp_path):
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              box:
                parent: cd19_pos
                gate: {kind: rectangle, dims: [CD38, CD19], min: [30, null], max: [null, 500]}
              cd19_below_80:
                gate: {kind: range, dims: [CD19], max: 80}
              cd19_above_5:
                gate: {kind: range, dims: [CD19], min: 5}
              cd19_below_20:
                gate: {kind: range, dims: [CD19], max: 20}
              the_higher_min:
                gate: {ref: [cd19_above_5, cd19_pos]}
              the_lower_max:
                gate: {ref: [cd19_below_20, cd19_below_80]}
              disjoint:
                gate: {ref: [cd19_pos, cd19_below_20]}
              both:
                gate: {ref: [cd19_pos, box]}
              none_of_them:
                gate: {ref: [cd19_pos, cd19_below_80]}
              cd38_of_box_and_low_cd19:
                gate: {ref: [{population: box, dims: [CD38]}, cd19_below_80]}
            """,
        )
    )
    s, g = _sample()
    r = cytophen.gate(s, t)
    np.testing.assert_array_equal(r.membership("both"), g["b_hi"])
    assert r.gates["both"]["geometry"] == {
        "kind": "rectangle",
        "dims": ["CD19", "CD38"],
        "min": [50.0, 30.0],
        "max": [500.0, None],
    }
    # on a dimension bounded twice, the tighter bound holds
    np.testing.assert_array_equal(r.membership("the_higher_min"), g["b_lo"] | g["b_hi"])
    assert r.gates["the_higher_min"]["geometry"]["min"] == [50.0]
    np.testing.assert_array_equal(r.membership("the_lower_max"), g["n_lo"] | g["n_hi"])
    assert r.gates["the_lower_max"]["geometry"]["max"] == [20.0]
    # 50 <= CD19 < 80 holds for no event of these clusters
    np.testing.assert_array_equal(r.membership("none_of_them"), np.zeros(s.n_events, bool))
    # CD19 >= 50 and CD19 < 20: bounds that do not overlap, an empty gate (measured, count 0)
    np.testing.assert_array_equal(r.membership("disjoint"), np.zeros(s.n_events, bool))
    tab = r.table.set_index("population")
    assert tab.loc["disjoint", "count"] == 0 and tab.loc["disjoint", "measured"] == True  # noqa: E712
    np.testing.assert_array_equal(r.membership("cd38_of_box_and_low_cd19"), g["n_hi"])


def test_disjoint_bounds_give_an_empty_rectangle():
    from cytophen.gates import Dim, RectangleGate, resolve_ref

    x = Dim("CD19")
    a = RectangleGate([x], [50.0], [None])
    b = RectangleGate([x], [None], [20.0])
    g = resolve_ref([("a", a), ("b", b)], [None, None])
    pts = np.array([[-1e9], [19.0], [20.0], [35.0], [50.0], [1e9]])
    assert not g.contains(pts).any()


def test_ref_to_a_quadrant_child_takes_its_rectangle(tmp_path):
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              quads:
                gate:
                  kind: quadrant
                  dims: [CD19, CD38]
                  cuts: [50, 30]
                  quadrants: {b_hi: ++, n_lo: --}
              cd38_of_b_hi:
                gate: {ref: {population: b_hi, dims: [CD38]}}
              low_cd19_box:
                gate: {ref: n_lo}
            """,
        )
    )
    s, g = _sample()
    r = cytophen.gate(s, t)
    np.testing.assert_array_equal(r.membership("cd38_of_b_hi"), g["b_hi"] | g["n_hi"])
    np.testing.assert_array_equal(r.membership("low_cd19_box"), g["n_lo"])


def test_ref_to_a_ref_and_to_a_declined_gate(tmp_path):
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              again:
                gate: {ref: cd38_pos}
              again_of_again:
                gate: {ref: again}
              nothing:
                gate: {kind: range, dims: [CD19], min: 1000}
              cut_on_nothing:
                parent: nothing
                gate: {method: mindensity, dims: [CD38], side: "+"}
              ref_to_declined:
                gate: {ref: cut_on_nothing}
            """,
        )
    )
    s, g = _sample()
    r = cytophen.gate(s, t)
    np.testing.assert_array_equal(r.membership("again_of_again"), g["b_hi"] | g["n_hi"])
    assert r.gates["again_of_again"]["ref_data_driven"] is True  # through 'again', from cd38_pos
    tab = r.table.set_index("population")
    assert tab.loc["cut_on_nothing", "measured"] == False  # noqa: E712 (a numpy bool)
    assert tab.loc["ref_to_declined", "measured"] == False  # noqa: E712
    assert "cut_on_nothing" in tab.loc["ref_to_declined", "note"]
    assert "placed no gate" in tab.loc["ref_to_declined", "note"]


def test_intersecting_a_non_rectangular_fitted_gate_is_a_gate_error(tmp_path):
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              cloud:
                gate: {method: mixture_ellipse, dims: [CD19, CD38], args: {K: 4, target: [100, 50]}}
              both:
                gate: {ref: [cloud, cd19_pos]}
            """,
        )
    )
    s, _ = _sample()
    with pytest.raises(
        GateError, match=r"'both'.*only when all are rectangular.*'cloud' is an ellipsoid"
    ):
        cytophen.gate(s, t)


def test_frozen_ref_exports_to_gatingml_and_flowkit_counts_agree(tmp_path):
    """Frozen, a ref gate is written to GatingML as the geometry it applies; FlowKit, reading that
    file on the same FCS file, counts every population as cytophen does."""
    fk = pytest.importorskip("flowkit")
    from cytophen.interop.gatingml import export_gatingml, load_gatingml

    t = load_yaml_template(
        _template(
            tmp_path,
            """
              cd19_neg:
                gate: {kind: range, dims: [CD19], max: 50}
              cd38_pos_of_cd19_neg:
                parent: cd19_neg
                gate: {ref: {population: cd38_pos, dims: [CD38]}}
            """,
        )
    )
    s, g = _sample()
    fcs = tmp_path / "s.fcs"
    cytophen.write_fcs(fcs, s.events, s.channels, markers=s.markers)
    s = cytophen.read_fcs(fcs)
    r = cytophen.gate(s, t)
    frozen = t.freeze(r)
    yaml_out = tmp_path / "frozen.yaml"
    frozen.to_yaml(yaml_out)
    assert "ref:" in yaml_out.read_text()  # a ref stays a ref in YAML, over the frozen gates
    again = cytophen.gate(s, load_yaml_template(yaml_out))
    gml = tmp_path / "frozen.xml"
    export_gatingml(frozen, gml)
    back = cytophen.gate(s, load_gatingml(gml))
    for name in t.names:
        np.testing.assert_array_equal(again.membership(name), r.membership(name), err_msg=name)
        np.testing.assert_array_equal(back.membership(name), r.membership(name), err_msg=name)
    session = fk.Session(gating_strategy=str(gml))
    session.add_samples(fk.Sample(str(fcs), sample_id="s"))
    session.analyze_samples(sample_id="s", use_mp=False)
    report = session.get_gating_results("s").report.set_index("gate_name")["count"]
    assert int(report["cd38_pos_of_cd19_neg"]) == int(g["n_hi"].sum()) == 30
    for name in t.names:
        assert int(report[name]) == r.count(name), name


def test_pooled_fit_feeds_the_ref(tmp_path):
    """Fitted on the pooled events of two samples, the referenced cut is the pooled one, and the
    ref applies that same cut in each sample."""
    from cytophen.engine import fit_pooled

    t = load_yaml_template(
        _template(
            tmp_path,
            """
              cd38_pos_any_cd19:
                gate: {ref: cd38_pos}
            """,
        )
    )
    (s1, g1), (s2, g2) = _sample(1), _sample(2)
    fits = fit_pooled([s1, s2], t)
    cut = fits["cd38_pos"].gate.mins[0]
    for s, g in ((s1, g1), (s2, g2)):
        r = cytophen.gate(s, t, fitted=fits)
        assert r.gates["cd38_pos_any_cd19"]["geometry"]["min"] == [cut]
        np.testing.assert_array_equal(r.membership("cd38_pos_any_cd19"), g["b_hi"] | g["n_hi"])


def test_plot_draws_the_ref_on_the_dimensions_it_applies(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              box:
                gate: {kind: rectangle, dims: [CD19, CD38], min: [50, 30]}
              cd38_only:
                gate: {ref: {population: box, dims: [CD38]}}
              swapped:
                gate: {ref: {population: box, dims: [CD38, CD19]}}
            """,
        )
    )
    s, _ = _sample()
    r = cytophen.gate(s, t)
    ax = r.plot("cd38_only").axes[0]
    assert "CD38" in ax.get_xlabel()
    ax = r.plot("swapped").axes[0]
    assert "CD38" in ax.get_xlabel() and "CD19" in ax.get_ylabel()


# -- validation ---------------------------------------------------------------------------------
def _problems(tmp_path, populations: str):
    return validate_template(_template(tmp_path, populations, "bad.yaml"))


def _find(probs, fragment: str):
    hits = [p for p in probs if fragment in p.message]
    assert hits, f"no problem mentioning {fragment!r} in:\n" + "\n".join(map(str, probs))
    return hits[0]


def test_unknown_referenced_population_with_suggestion(tmp_path):
    probs = _problems(
        tmp_path,
        """
          again:
            gate: {ref: cd19_po}
        """,
    )
    pr = _find(probs, "referenced population 'cd19_po' of 'again' is not a population")
    assert pr.line == 14
    assert pr.suggestion == "did you mean 'cd19_pos'?"


def test_reference_to_a_boolean_population(tmp_path):
    probs = _problems(
        tmp_path,
        """
          cd19_neg:
            gate: {not: cd19_pos}
          again:
            gate: {ref: cd19_neg}
        """,
    )
    pr = _find(probs, "'cd19_neg' is a boolean population and places no gate of its own")
    assert pr.line == 16


def test_reference_dims_the_gate_does_not_have(tmp_path):
    probs = _problems(
        tmp_path,
        """
          again:
            gate: {ref: {population: cd19_pos, dims: [CD38]}}
        """,
    )
    pr = _find(probs, "the gate of 'cd19_pos' is on CD19, not on CD38")
    assert pr.line == 14


def test_some_dims_of_a_polygon_is_refused(tmp_path):
    probs = _problems(
        tmp_path,
        """
          tri:
            gate: {kind: polygon, dims: [CD19, CD38], vertices: [[0, 0], [100, 0], [0, 100]]}
          cd19_of_tri:
            gate: {ref: {population: tri, dims: [CD19]}}
        """,
    )
    pr = _find(probs, "only a range, rectangle or quadrant gate can be taken on some of its dims")
    assert "'tri' is a polygon" in pr.message
    assert pr.line == 16


def test_several_references_to_a_polygon_are_refused(tmp_path):
    probs = _problems(
        tmp_path,
        """
          tri:
            gate: {kind: polygon, dims: [CD19, CD38], vertices: [[0, 0], [100, 0], [0, 100]]}
          both:
            gate: {ref: [tri, cd19_pos]}
        """,
    )
    pr = _find(probs, "several references are intersected only when all are rectangular")
    assert "'tri' is a polygon" in pr.message
    assert pr.line == 16


@pytest.mark.parametrize(
    "gate, fragment",
    [
        ("{ref: []}", "ref of 'again' lists no population"),
        ("{ref: [7]}", "a reference of 'again' must be a population name"),
        ("{ref: {population: cd19_pos, dims: []}}", "dims of a reference of 'again' must list"),
        ("{ref: {population: cd19_pos, dimz: [CD19]}}", "dimz"),
        ("{ref: cd19_pos, min: 3}", "min"),
    ],
)
def test_ill_formed_references(tmp_path, gate, fragment):
    probs = _problems(
        tmp_path,
        f"""
          again:
            gate: {gate}
        """,
    )
    _find(probs, fragment)
    with pytest.raises(TemplateError):
        load_yaml_template(tmp_path / "bad.yaml")


def test_a_ref_to_its_own_descendant_is_a_cycle(tmp_path):
    probs = _problems(
        tmp_path,
        """
          a:
            gate: {ref: b}
          b:
            parent: a
            gate: {kind: range, dims: [CD19], min: 50}
        """,
    )
    _find(probs, "cycle")


def test_a_ref_to_a_gate_that_fell_back_is_flagged_in_the_table(tmp_path):
    """A valley on one CD38 cluster (CD19- CD38lo events) falls back; a ref that copies that cut
    says so in the table's note, as the copied gate's own row does. A ref to a valley that was
    found has no note."""
    t = load_yaml_template(
        _template(
            tmp_path,
            """
              cd19_neg:
                gate: {kind: range, dims: [CD19], max: 50}
              cd19_neg_lo:
                parent: cd19_neg
                gate: {kind: range, dims: [CD38], max: 30}
              cd38_lo_only:
                parent: cd19_neg_lo
                gate: {method: valley, dims: [CD38], side: "+"}
              cd38_copy:
                parent: cd19_neg
                gate: {ref: cd38_lo_only}
              cd38_pos_copy:
                parent: cd19_neg
                gate: {ref: cd38_pos}
            """,
        )
    )
    s, _ = _sample()
    r = cytophen.gate(s, t)
    tab = r.table.set_index("population")
    assert "fell back" in tab.loc["cd38_lo_only", "note"]  # one CD38 cluster: no valley
    assert r.gates["cd38_copy"]["fell_back"] is True
    assert tab.loc["cd38_copy", "note"].startswith("ref fell back: cd38_lo_only: ")
    assert tab.loc["cd38_pos_copy", "note"] == "" and not r.gates["cd38_pos_copy"]["fell_back"]
