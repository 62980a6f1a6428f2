"""YAML templates: documented examples load and gate, marker resolution, round trip, hash."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytophen
from conftest import shared_path
from cytophen.errors import MarkerError, TemplateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    EllipsoidGate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from cytophen.interop.yaml_template import (
    dump_template,
    load_yaml_template,
    template_to_yaml,
    validate_template,
)
from cytophen.io.sample import Sample
from cytophen.template import Marker, Population, Report, Template
from cytophen.transforms import LinearTransform, LogicleTransform

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "templates.md"
LOGICLE = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)


def doc_examples() -> list[tuple[int, str]]:
    """The complete templates of docs/templates.md (yaml blocks with name, panel and populations)."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    full = [
        (i, b)
        for i, b in enumerate(blocks)
        if re.search(r"^populations:", b, re.M) and re.search(r"^panel:", b, re.M)
    ]
    assert len(full) >= 5, "docs/templates.md lost its examples"
    return full


def sample_for(template: Template, n: int = 4000, seed: int = 0) -> Sample:
    """A sample with one channel per panel marker: bimodal, logicle-friendly values."""
    rng = np.random.default_rng(seed)
    channels, markers, cols = [], [], []
    for i, (name, m) in enumerate(template.markers.items()):
        det = next((a for a in m.aliases if a.endswith("-A")), None)
        if det is not None:
            channels.append(det)
            markers.append(name)
        elif name.endswith("-A"):
            channels.append(name)
            markers.append("")
        else:
            channels.append(f"FL{i + 1}-A")
            markers.append(name)
        pos = rng.random(n) < 0.4
        cols.append(np.where(pos, rng.lognormal(np.log(20000), 0.4, n), rng.normal(100, 150, n)))
    ev = np.column_stack(cols).astype(np.float32)
    return Sample(ev, channels, markers)


# -- the documented examples ------------------------------------------------------------------
@pytest.mark.parametrize(
    "index,text", doc_examples(), ids=lambda v: str(v) if isinstance(v, int) else ""
)
def test_documented_example_loads_and_gates(index, text, tmp_path):
    path = tmp_path / f"example{index}.yaml"
    path.write_text(text)
    assert validate_template(path) == []
    t = cytophen.load_template(path)
    s = sample_for(t)
    r = cytophen.gate(s, t)
    tab = r.table.set_index("population")
    assert list(tab.index) == t.names
    assert tab["measured"].all(), tab["note"]
    for p in t.populations:
        m = r.membership(p.name)
        parent = np.ones(s.n_events, bool) if p.parent is None else r.membership(p.parent)
        assert not (m & ~parent).any(), f"{p.name} escapes its parent"
        assert tab.loc[p.name, "count"] == m.sum()
        for anc in p.report.percent_of:
            expect = (
                100.0 * m.sum() / r.membership(anc).sum() if r.membership(anc).sum() else np.nan
            )
            assert tab.loc[p.name, f"percent_of_{anc}"] == pytest.approx(expect, nan_ok=True)
    # the quadrant children of one gate partition their parent
    for p in t.populations:
        if p.quadrant is not None:
            sib = [q for q in t.populations if q.gate is p.gate]
            if len(sib) == 4:
                total = sum(r.membership(q.name).sum() for q in sib)
                assert total == r.membership(p.parent).sum()


def test_complete_example_counts_by_hand():
    """The docs' first example on 10 events placed by hand (expected counts counted by hand)."""
    text = doc_examples()[0][1]
    t = load_yaml_template("complete.yaml", text=text)
    T = 262144.0
    #            FSC-A     SSC-A     CD19    IgD     CD27
    rows = [
        (0.80 * T, 0.10 * T, 8000, 20000, 0),  # not a lymphocyte (FSC beyond the polygon)
        (0.30 * T, 0.50 * T, 8000, 20000, 0),  # not a lymphocyte (SSC beyond the polygon)
        (0.30 * T, 0.10 * T, 10, 20000, 0),  # lymphocyte, CD19-
        (0.30 * T, 0.10 * T, 0, 0, 20000),  # lymphocyte, CD19-
        (0.30 * T, 0.10 * T, 5000, 20000, 0),  # naive
        (0.30 * T, 0.10 * T, 6000, 30000, 10),  # naive
        (0.30 * T, 0.10 * T, 7000, 25000, 5),  # naive
        (0.30 * T, 0.10 * T, 8000, 20000, 20000),  # unswitched memory
        (0.30 * T, 0.10 * T, 9000, 0, 20000),  # switched memory
        (0.30 * T, 0.10 * T, 10000, 0, 0),  # double negative
    ]
    ev = np.array(rows, dtype=np.float64)
    # the hand placement relies on these sides of the cuts (logicle 0.45 for CD19, 0.5 for IgD/CD27)
    assert LOGICLE.apply(np.array([5000.0]))[0] > 0.45 > LOGICLE.apply(np.array([10.0]))[0]
    assert LOGICLE.apply(np.array([20000.0]))[0] > 0.5 > LOGICLE.apply(np.array([10.0]))[0]
    s = Sample(
        ev,
        ["FSC-A", "SSC-A", "APC-H7-A", "FITC-A", "BV605-A"],
        ["", "", "CD19", "IgD", "CD27 BV605"],
    )
    tab = cytophen.gate(s, t).table.set_index("population")
    counts = tab["count"].to_dict()
    assert counts == {
        "lymphocytes": 8,
        "b_cells": 6,
        "naive": 3,
        "unswitched_memory": 1,
        "switched_memory": 1,
        "dn": 1,
    }
    assert tab.loc["b_cells", "percent_of_lymphocytes"] == pytest.approx(75.0)
    assert tab.loc["naive", "percent_of_b_cells"] == pytest.approx(50.0)
    assert tab.loc["naive", "percent_of_parent"] == pytest.approx(50.0)
    assert tab.loc["b_cells", "percent_of_total"] == pytest.approx(60.0)
    # statistics on untransformed values: median of 5000..10000 step 1000
    assert tab.loc["b_cells", "median_CD19"] == pytest.approx(7500.0)
    assert tab.loc["naive", "median_IgD"] == pytest.approx(25000.0)
    assert set(tab["template_version"]) == {"1.0"}
    assert set(tab["template_hash"]) == {t.short_hash}


def test_inline_matrix_example_compensates():
    text = next(b for _, b in doc_examples() if "inline_matrix" in b)
    t = load_yaml_template("inline.yaml", text=text)
    assert t.compensation == "template"
    m = t.matrices["template"]
    assert list(m.columns) == ["FITC-A", "PE-A"] and m.loc["FITC-A", "PE-A"] == pytest.approx(0.18)
    # pure FITC (CD3) events spill 18 % into PE; after compensation CD4 is ~0, so not CD4+
    ev = np.array([[5000.0, 900.0], [5000.0, 5000.0 * 0.18 + 3000.0]])
    s = Sample(ev, ["FITC-A", "PE-A"], ["", ""])
    r = cytophen.gate(s, t)
    assert r.membership("cd4_t").tolist() == [False, True]


# -- marker resolution -----------------------------------------------------------------------
MARKER_T = """\
name: markers
version: "2"
panel:
  CD19: {aliases: [CD-19]}
  CD27: {}
  CD21: {optional: true}
  Viability: {aliases: [Live/Dead, Zombie Aqua]}
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
  cd27_pos:
    parent: b_cells
    gate: {kind: range, dims: [CD27], min: 1000}
    statistics: {median: [CD21]}
  cd21_pos:
    parent: b_cells
    gate: {kind: range, dims: [CD21], min: 1000}
  cd21_pos_live:
    parent: cd21_pos
    gate: {kind: range, dims: [Viability], max: 500}
  dead:
    gate: {kind: range, dims: [Viability], min: 500}
"""


@pytest.fixture
def marker_template():
    return load_yaml_template("markers.yaml", text=MARKER_T)


def _events():
    # CD19, CD27, CD21, Viability ; 4 events
    return np.array(
        [
            [2000, 2000, 2000, 100],
            [2000, 10, 2000, 900],
            [2000, 2000, 10, 100],
            [10, 2000, 2000, 100],
        ],
        dtype=np.float32,
    )


@pytest.mark.parametrize(
    "channels,markers",
    [
        (
            ["APC-H7-A", "BV605-A", "PE-A", "BV510-A"],
            ["CD19", "CD27", "CD21", "Zombie Aqua"],
        ),  # $PnS
        (
            ["APC-H7-A", "BV605-A", "PE-A", "BV510-A"],
            ["CD19 APC-H7", "CD27 BV605", "CD21 PE", "Live/Dead"],
        ),
        (["CD19", "CD27", "CD21", "Viability"], ["", "", "", ""]),  # $PnN only
        (
            ["FL1-A", "FL2-A", "FL3-A", "FL4-A"],
            ["cd-19", "Cd 27", "CD_21", "LIVE/DEAD"],
        ),  # case/dashes
        (["FL1-A", "FL2-A", "FL3-A", "FL4-A"], ["BV421:CD19", "PE/CD27", "CD21", "zombie aqua"]),
        # $PnS written as instruments do (cf. fcs_zoo facts.csv: 'CD19-ECD', 'VIVID / CD14')
        (
            ["FL1-A", "FL2-A", "FL3-A", "FL4-A"],
            ["CD19-ECD", "BV605 (CD27)", "FITC-A :: CD21", "Live/Dead / CD14"],
        ),
    ],
)
def test_marker_resolution_variants(marker_template, channels, markers):
    s = Sample(_events(), channels, markers)
    tab = cytophen.gate(s, marker_template).table.set_index("population")
    assert tab["count"].to_dict() == {
        "b_cells": 3,
        "cd27_pos": 2,
        "cd21_pos": 2,
        "cd21_pos_live": 1,
        "dead": 1,
    }
    assert tab.loc["cd27_pos", "median_CD21"] == pytest.approx((2000 + 10) / 2)


def test_ambiguous_marker_names_both_channels(marker_template, tmp_path):
    s = Sample(
        _events(),
        ["APC-H7-A", "BV605-A", "PE-A", "BV510-A"],
        ["CD19", "CD27", "CD27", "Viability"],
        path=tmp_path / "two_cd27.fcs",
    )
    with pytest.raises(MarkerError) as exc:
        cytophen.gate(s, marker_template)
    msg = str(exc.value)
    assert "two_cd27.fcs" in msg and "'CD27'" in msg and "more than one channel" in msg
    assert "BV605-A (CD27)" in msg and "PE-A (CD27)" in msg


def test_missing_optional_marker_is_not_measured(marker_template):
    s = Sample(
        _events()[:, [0, 1, 3]], ["APC-H7-A", "BV605-A", "BV510-A"], ["CD19", "CD27", "Viability"]
    )
    tab = cytophen.gate(s, marker_template).table.set_index("population")
    assert (
        tab.loc["b_cells", "count"] == 3
        and tab.loc["cd27_pos", "count"] == 2
        and tab.loc["dead", "count"] == 1
    )
    assert not tab.loc["cd21_pos", "measured"] and pd.isna(tab.loc["cd21_pos", "count"])
    assert "CD21" in tab.loc["cd21_pos", "note"] and "absent" in tab.loc["cd21_pos", "note"]
    assert (
        not tab.loc["cd21_pos_live", "measured"]
        and "not measured" in tab.loc["cd21_pos_live", "note"]
    )
    assert tab.loc[["b_cells", "cd27_pos", "dead"], "measured"].all()
    assert np.isnan(tab.loc["cd27_pos", "median_CD21"])


def test_missing_required_marker_is_a_marker_error(marker_template, tmp_path):
    s = Sample(
        _events()[:, [0, 2, 3]],
        ["APC-H7-A", "PE-A", "BV510-A"],
        ["CD19", "CD21", "Viability"],
        path=tmp_path / "no_cd27.fcs",
    )
    with pytest.raises(MarkerError) as exc:
        cytophen.gate(s, marker_template)
    msg = str(exc.value)
    assert "no_cd27.fcs" in msg and "'CD27'" in msg and "is not in the file" in msg
    assert "APC-H7-A (CD19), PE-A (CD21), BV510-A (Viability)" in msg


def test_validate_with_sample_reports_markers_at_panel_lines(tmp_path):
    path = tmp_path / "markers.yaml"
    path.write_text(MARKER_T)
    s = Sample(
        _events()[:, [0, 3]],
        ["APC-H7-A", "BV510-A"],
        ["CD19", "Viability"],
        path=tmp_path / "s.fcs",
    )
    probs = validate_template(path, s)
    by_marker = {re.search(r"marker '(\w+)'", p.message).group(1): p for p in probs}
    assert set(by_marker) == {"CD27", "CD21"}
    assert (by_marker["CD27"].severity, by_marker["CD27"].line, by_marker["CD27"].column) == (
        "error",
        5,
        3,
    )
    assert (by_marker["CD21"].severity, by_marker["CD21"].line, by_marker["CD21"].column) == (
        "warning",
        6,
        3,
    )
    assert "APC-H7-A (CD19), BV510-A (Viability)" in by_marker["CD27"].message
    assert str(by_marker["CD21"]).startswith(f"{path}:6:3: warning: ")


# -- round trip and hash ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bcell", "treg"])
def test_study_template_round_trip(name, tmp_path):
    t = cytophen.load_template(ROOT / "gating_templates" / f"{name}.yaml")
    out = tmp_path / f"{name}.yaml"
    dump_template(t, out)
    t2 = load_yaml_template(out)
    assert t2.hash == t.hash
    assert [(p.name, p.parent, p.quadrant) for p in t2.populations] == [
        (p.name, p.parent, p.quadrant) for p in t.populations
    ]
    assert t2.version == t.version and t2.description == t.description
    # the quadrant children still share one gate object
    quads = [p for p in t2.populations if p.quadrant is not None]
    assert all(q.gate is quads[0].gate for q in quads if q.parent == quads[0].parent)


def python_template() -> Template:
    lin = LinearTransform(T=262144, A=0)
    fsc, ssc = Dim("FSC-A", lin), Dim("SSC-A", lin)
    cd19, igd, cd27 = Dim("CD19", LOGICLE), Dim("IgD", LOGICLE), Dim("CD27", LOGICLE)
    quad = QuadrantGate.from_cuts([igd, cd27], 0.5, 0.55)
    spill = pd.DataFrame(
        [[1.0, 0.1], [0.02, 1.0]], index=["FITC", "PE"], columns=["FITC-A", "PE-A"]
    )
    pops = [
        Population(
            "cells", None, PolygonGate([fsc, ssc], [[0.1, 0.0], [0.7, 0.0], [0.7, 0.4], [0.2, 0.5]])
        ),
        Population(
            "lymph",
            "cells",
            EllipsoidGate([fsc, ssc], [0.3, 0.1], [[0.01, 0.001], [0.001, 0.004]], 2.5),
        ),
        Population(
            "b",
            "lymph",
            RectangleGate([cd19], [0.45], [None]),
            report=Report(("lymph",), (("median", "CD19"),)),
        ),
        Population("raw_b", "lymph", RectangleGate([Dim("CD19")], [1000.0], [None])),
        Population(
            "naive", "b", quad, quadrant="+-", report=Report(("b",), (("geometric_mean", "IgD"),))
        ),
        Population("memory", "b", quad, quadrant="-+"),
        Population("not_naive", "b", BooleanGate("not", [("naive", False)])),
        Population("either", "b", BooleanGate("or", [("naive", False), ("memory", True)])),
        Population(
            "cd27dd",
            "b",
            DataDrivenGate([cd27], "mindensity", {"gate_range": [0.3, 0.8]}, side="+"),
        ),
    ]
    markers = {
        "CD19": Marker("CD19", ("CD-19",), LOGICLE),
        "IgD": Marker("IgD", (), LOGICLE, optional=True),
    }
    return Template(
        "py", pops, version="0.3", markers=markers, compensation="m1", matrices={"m1": spill}
    )


def test_python_built_template_round_trip(tmp_path):
    t = python_template()
    out = tmp_path / "py.yaml"
    t.to_yaml(out)
    t2 = cytophen.load_template(out)
    assert t2.hash == t.hash
    assert t2.markers["IgD"].optional and t2.markers["CD19"].aliases == ("CD-19",)
    assert t2.population("raw_b").gate.dims[0].transform is None
    pd.testing.assert_frame_equal(t2.matrices["m1"], t.matrices["m1"])
    # and once more: the dump of the reloaded template is the same text
    assert template_to_yaml(t2) == out.read_text()


def test_hash_changes_with_gating_not_with_comments(tmp_path):
    base = load_yaml_template("m.yaml", text=MARKER_T)
    commented = load_yaml_template(
        "m.yaml", text="# a comment\n" + MARKER_T.replace("CD27: {}", "CD27: {}  # note")
    )
    assert commented.hash == base.hash
    moved = load_yaml_template(
        "m.yaml", text=MARKER_T.replace("min: 1000}\n  cd27_pos", "min: 1001}\n  cd27_pos")
    )
    assert moved.hash != base.hash
    bumped = load_yaml_template("m.yaml", text=MARKER_T.replace('version: "2"', 'version: "3"'))
    assert bumped.hash != base.hash


def test_per_gate_transform_and_ratio_round_trip():
    """A gate drawing CD19 on another transform than the panel's, and a ratio dimension, survive."""
    from cytophen.gates import RatioDim

    t = python_template()
    t.populations.append(
        Population(
            "odd", "b", RectangleGate([Dim("CD19", LinearTransform(T=1000, A=0))], [0.2], [None])
        )
    )
    ratio = RatioDim("cd19_cd27", "CD19", "CD27", A=2.0, B=-1.0, C=3.0, transform=LOGICLE)
    t.populations.append(Population("rat", "b", RectangleGate([ratio], [0.1], [0.9])))
    text = template_to_yaml(t)
    assert "transforms:" in text and "ratio: [CD19, CD27]" in text
    back = load_yaml_template("odd.yaml", text=text)
    assert back.hash == t.hash
    assert back.population("odd").gate.dims[0].transform == LinearTransform(T=1000, A=0)
    assert back.population("rat").gate.dims[0] == ratio


def test_dump_refuses_two_ratios_of_one_name():
    from cytophen.gates import RatioDim

    t = python_template()
    for i, a in enumerate((1.0, 2.0)):
        t.populations.append(
            Population(
                f"r{i}", "b", RectangleGate([RatioDim("r", "CD19", "CD27", A=a)], [0.1], [None])
            )
        )
    with pytest.raises(TemplateError, match="ratio 'r' is defined twice"):
        template_to_yaml(t)


def test_population_order_in_file_does_not_matter():
    text = textwrap.dedent(
        """\
        name: order
        version: "1"
        panel: {CD19: , CD27: }
        populations:
          child: {parent: top, gate: {kind: range, dims: [CD27], min: 1}}
          both: {parent: top, gate: {and: [child, other]}}
          other: {parent: top, gate: {kind: range, dims: [CD27], max: 5}}
          top: {gate: {kind: range, dims: [CD19], min: 1}}
        """
    )
    t = load_yaml_template("o.yaml", text=text)
    assert t.names == ["top", "child", "other", "both"]


def test_yaml_template_exports_to_gatingml(tmp_path):
    """The documented complete example, exported to GatingML 2.0 and read back, gates the hand-placed
    events identically (see test_complete_example_counts_by_hand for the counts)."""
    text = doc_examples()[0][1]
    t = load_yaml_template("complete.yaml", text=text)
    out = tmp_path / "complete.xml"
    t.to_gatingml(out)
    back = cytophen.load_template(out)
    rng = np.random.default_rng(3)
    n = 3000
    T = 262144.0
    ev = np.column_stack(
        [
            rng.uniform(0, 0.9 * T, n),
            rng.uniform(0, 0.5 * T, n),
            np.where(
                rng.random(n) < 0.5, rng.lognormal(np.log(8000), 0.5, n), rng.normal(0, 100, n)
            ),
            np.where(
                rng.random(n) < 0.5, rng.lognormal(np.log(20000), 0.5, n), rng.normal(0, 100, n)
            ),
            np.where(
                rng.random(n) < 0.5, rng.lognormal(np.log(20000), 0.5, n), rng.normal(0, 100, n)
            ),
        ]
    )
    s = Sample(
        ev, ["FSC-A", "SSC-A", "APC-H7-A", "FITC-A", "BV605-A"], ["", "", "CD19", "IgD", "CD27"]
    )
    a = cytophen.gate(s, t)
    b = cytophen.gate(s, back)
    for name in t.names:
        assert np.array_equal(a.membership(name), b.membership(name)), name
    assert 0 < a.count("naive") < a.count("b_cells") < a.count("lymphocytes") < n


def test_csv_compensation_relative_to_template(tmp_path):
    (tmp_path / "comp").mkdir()
    (tmp_path / "comp" / "spill.csv").write_text(
        "fluorochrome,FITC-A,PE-A\nFITC-A,1.0,0.25\nPE-A,0.0,1.0\n"
    )
    t_path = tmp_path / "t.yaml"
    t_path.write_text(
        textwrap.dedent(
            """\
            name: csv
            version: "1"
            compensation: comp/spill.csv
            panel: {CD3: {aliases: [FITC-A]}, CD4: {aliases: [PE-A]}}
            populations:
              cd4: {gate: {kind: range, dims: [CD4], min: 100}}
              cd4_raw: {gate: {kind: range, dims: [CD4], min: 100, compensation: none}}
            """
        )
    )
    t = cytophen.load_template(t_path)
    assert t.matrices["template"].loc["FITC-A", "PE-A"] == pytest.approx(0.25)
    # FITC 1000 spills 250 into PE: compensated PE = 260 - 250 = 10 (< 100), raw PE = 260
    s = Sample(np.array([[1000.0, 260.0], [0.0, 150.0]]), ["FITC-A", "PE-A"], ["", ""])
    r = cytophen.gate(s, t)
    assert r.membership("cd4").tolist() == [False, True]
    assert r.membership("cd4_raw").tolist() == [True, True]


def test_keyword_compensation_needs_the_files_spillover(tmp_path):
    t = load_yaml_template(
        "k.yaml",
        text='name: k\nversion: "1"\ncompensation: keyword\npanel: {CD3: }\n'
        "populations: {t: {gate: {kind: range, dims: [CD3], min: 1}}}\n",
    )
    assert t.compensation == "keyword"
    from cytophen.interop.yaml_template import check_sample

    probs = check_sample(t, Sample(np.ones((3, 1)), ["CD3"], [""], path=tmp_path / "nospill.fcs"))
    assert (
        len(probs) == 1
        and "no spillover keyword" in probs[0].message
        and "nospill.fcs" in probs[0].message
    )


def test_yaml12_style_floats_are_numbers():
    t = load_yaml_template(
        "f.yaml",
        text='name: f\nversion: "1"\npanel: {CD3: {transform: {kind: logicle, T: 2.62144e5}}}\n'
        "populations: {t: {gate: {kind: range, dims: [CD3], min: 1e5, units: raw}}}\n",
    )
    assert t.population("t").gate.mins == (1e5,)
    assert t.markers["CD3"].transform.T == 262144.0


def test_gatingml_conformance_cases_survive_yaml_conversion(tmp_path):
    """Every GatingML 2.0 conformance strategy (ratio dimensions, spectrum matrices, banded
    quadrants, booleans included), converted to YAML and back, keeps its hash and gates data1.fcs
    exactly as the ISAC truth says."""
    import warnings

    from cytophen.interop.gatingml import load_gatingml

    root = shared_path("gatingml2")
    cases = pd.read_csv(root / "cases.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = cytophen.read_fcs(root / "data1.fcs")
    checked = converted = 0
    for gml, group in cases.groupby("gml_file"):
        try:
            t = load_gatingml(root / gml)
        except Exception:  # the GatingML reader's own tests cover what it refuses
            continue
        out = tmp_path / (Path(gml).stem + ".yaml")
        dump_template(t, out)
        y = load_yaml_template(out)
        assert y.hash == t.hash, gml
        converted += 1
        r = cytophen.gate(sample, y)
        for _, case in group.iterrows():
            if case["gate_id"] not in y.names:
                continue
            truth = (
                pd.read_csv(root / case["truth_file"], header=None)
                .iloc[:, 0]
                .to_numpy()
                .astype(bool)
            )
            assert np.array_equal(r.membership(case["gate_id"]), truth), (gml, case["gate_id"])
            checked += 1
    assert converted >= 45 and checked >= 95, (converted, checked)


def test_flowjo_workspaces_survive_yaml_conversion(tmp_path):
    """Every FlowJo workspace of the shared data converts to YAML and back with the same hash (and
    the flowsom one gates its FCS file identically through both)."""
    import warnings

    from cytophen.interop.flowjo import load_workspace

    root = shared_path("flowjo")
    wsps = sorted(root.rglob("*.wsp"))
    assert wsps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for wsp in wsps:
            t = load_workspace(wsp)
            out = tmp_path / (wsp.parent.name + "_" + wsp.stem + ".yaml")
            dump_template(t, out)
            y = load_yaml_template(out)
            assert y.hash == t.hash, wsp.name
            if wsp.parent.name == "flowsom":
                flowsom = (t, y)
        s = cytophen.read_fcs(root / "flowsom" / "68983.fcs")
    t, y = flowsom
    a, b = cytophen.gate(s, t), cytophen.gate(s, y)
    assert list(a.table["count"]) == list(b.table["count"]) and a.table["count"].iloc[0] > 0


def test_round_trip_property():
    """Random gate trees (all fixed gate kinds, transforms, open bounds, awkward floats) built in
    Python survive dump -> load with the same hash."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from cytophen.transforms import AsinhTransform, LogTransform

    finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False, width=64)
    transforms = st.sampled_from(
        [
            None,
            LOGICLE,
            LinearTransform(T=1024, A=0),
            AsinhTransform(T=262144, M=4.5, A=1),
            LogTransform(T=1e5, M=5),
        ]
    )
    channels = ["FSC-A", "SSC-A", "CD3", "CD4", "CD8"]

    @st.composite
    def templates(draw):
        tr = {c: draw(transforms) for c in channels}

        def dim(c):
            return Dim(c, tr[c])

        pops: list[Population] = []
        for i in range(draw(st.integers(1, 6))):
            parent = draw(st.sampled_from([None, *[p.name for p in pops if p.quadrant is None]]))
            kind = draw(st.sampled_from(["rect", "poly", "ell", "quad", "bool"]))
            cs = draw(st.lists(st.sampled_from(channels), min_size=2, max_size=2, unique=True))
            if kind == "rect":
                lo = draw(st.one_of(st.none(), finite))
                hi = (
                    None if lo is None else draw(st.one_of(st.none(), st.floats(lo, 2e9, width=64)))
                )
                g = RectangleGate([dim(cs[0])], [lo], [hi])
            elif kind == "poly":
                g = PolygonGate(
                    [dim(c) for c in cs],
                    draw(st.lists(st.tuples(finite, finite), min_size=3, max_size=6)),
                )
            elif kind == "ell":
                a, b = draw(st.floats(0.1, 1e6)), draw(st.floats(0.1, 1e6))
                g = EllipsoidGate(
                    [dim(c) for c in cs],
                    [draw(finite), draw(finite)],
                    [[a, 0.0], [0.0, b]],
                    draw(st.floats(0.01, 100)),
                )
            elif kind == "bool" and len(pops) >= 2:
                ops = draw(
                    st.lists(
                        st.sampled_from([p.name for p in pops]), min_size=2, max_size=3, unique=True
                    )
                )
                g = BooleanGate(
                    draw(st.sampled_from(["and", "or"])), [(o, draw(st.booleans())) for o in ops]
                )
            else:
                q = QuadrantGate.from_cuts([dim(c) for c in cs], draw(finite), draw(finite))
                for code in draw(
                    st.lists(
                        st.sampled_from(["++", "+-", "-+", "--"]),
                        min_size=1,
                        max_size=4,
                        unique=True,
                    )
                ):
                    pops.append(
                        Population(
                            f"p{i}_{code.replace('+', 'P').replace('-', 'N')}",
                            parent,
                            q,
                            quadrant=code,
                        )
                    )
                continue
            pops.append(Population(f"p{i}", parent, g))
        markers = {
            c: Marker(c, (f"{c} alias",) if draw(st.booleans()) else (), tr[c], draw(st.booleans()))
            for c in channels
        }
        return Template(
            "prop", pops, version=draw(st.sampled_from(["1", "2.10", "x"])), markers=markers
        )

    @settings(max_examples=60, deadline=None)
    @given(templates())
    def check(t):
        back = load_yaml_template("p.yaml", text=template_to_yaml(t))
        assert back.hash == t.hash

    check()
