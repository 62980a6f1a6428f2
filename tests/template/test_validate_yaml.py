"""Every validation problem of a YAML template, with the file, line and column it is reported at.

Positions are counted by hand from the YAML texts below (line 1 = first line, column 1 = first
character); each test also checks the message names what is wrong and, where one is obvious, the
suggestion.
"""

from __future__ import annotations

import textwrap

import pytest

from cytophen.errors import TemplateError
from cytophen.interop.yaml_template import load_yaml_template, validate_template


def write(tmp_path, text: str, name: str = "t.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def problems(tmp_path, text: str):
    p = write(tmp_path, text)
    return p, validate_template(p)


def find(probs, fragment: str):
    hits = [p for p in probs if fragment in p.message]
    assert hits, f"no problem mentioning {fragment!r} in:\n" + "\n".join(map(str, probs))
    return hits[0]


HEAD = """\
name: t
version: "1"
panel:
  FSC-A:
  SSC-A:
  CD19: {aliases: [CD-19]}
  CD27:
  IgD:
"""  # 8 lines: populations start on line 9


def test_valid_minimal_has_no_problems(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
""",
    )
    assert probs == []


def test_unknown_top_level_key_with_suggestion(tmp_path):
    p, probs = problems(
        tmp_path,
        HEAD
        + """\
popluations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
""",
    )
    pr = find(probs, "unknown key 'popluations'")
    assert (pr.file, pr.line, pr.column) == (str(p), 9, 1)
    assert pr.suggestion == "did you mean 'populations'?"
    assert find(probs, "missing required key 'populations'")


def test_unknown_population_key_and_gate_key(tmp_path):
    p, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    parnet: root
    gate: {kind: range, dims: [CD19], mni: 1000}
""",
    )
    pr = find(probs, "unknown key 'parnet'")
    assert (pr.line, pr.column) == (11, 5)
    assert pr.suggestion == "did you mean 'parent'?"
    pr = find(probs, "unknown key 'mni'")
    assert (pr.line, pr.column) == (12, 39)
    assert pr.suggestion == "did you mean 'min'?"


def test_wrong_types(tmp_path):
    p, probs = problems(
        tmp_path,
        """\
name: t
version: 1.10
panel:
  CD19: {optional: "yes"}
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: high}
""",
    )
    pr = find(probs, "version 1.1 was read as a number")
    assert (pr.line, pr.column) == (2, 10)
    assert 'version: "1.1"' in pr.suggestion
    pr = find(probs, "optional must be true or false")
    assert (pr.line, pr.column) == (4, 20)
    pr = find(probs, "min of 'b_cells' must be a number")
    assert (pr.line, pr.column) == (7, 44)


def test_missing_parent_with_suggestion(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  lymphocytes:
    gate: {kind: rectangle, dims: [FSC-A, SSC-A], min: [1, 1]}
  b_cells:
    parent: lymphocyte
    gate: {kind: range, dims: [CD19], min: 1000}
""",
    )
    pr = find(probs, "parent 'lymphocyte' of 'b_cells' is not a population")
    assert (pr.line, pr.column) == (13, 13)
    assert pr.suggestion == "did you mean 'lymphocytes'?"


def test_cycle(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  a:
    parent: c
    gate: {kind: range, dims: [CD19], min: 1}
  b:
    parent: a
    gate: {kind: range, dims: [CD27], min: 1}
  c:
    parent: b
    gate: {kind: range, dims: [IgD], min: 1}
""",
    )
    pr = find(probs, "cycle in the gate tree")
    assert "a -> c -> b -> a" in pr.message  # each population followed by its parent
    assert (pr.line, pr.column) == (11, 13)
    with pytest.raises(TemplateError, match="cycle"):
        load_yaml_template(
            write(
                tmp_path,
                HEAD
                + "populations:\n  a:\n    parent: a\n    gate: {kind: range, dims: [CD19], min: 1}\n",
                "self.yaml",
            )
        )


def test_duplicate_population_names(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
  b_cells:
    gate: {kind: range, dims: [CD19], min: 2000}
  quads:
    parent: b_cells
    gate:
      kind: quadrant
      dims: [IgD, CD27]
      cuts: [1, 1]
      quadrants: {naive: IgD+ CD27-, b_cells: IgD- CD27-}
""",
    )
    pr = find(probs, "duplicate key 'b_cells' (first written at line 10)")
    assert (pr.line, pr.column) == (12, 3)
    pr = find(probs, "duplicate population name 'b_cells'")
    assert (pr.line, pr.column) == (20, 38)


def test_boolean_naming_missing_gate(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
  plasmablasts:
    parent: b_cells
    gate: {kind: range, dims: [CD27], min: 5000}
  rest:
    parent: b_cells
    gate: {and: [b_cells, {not: plasmablast}]}
""",
    )
    pr = find(probs, "boolean operand 'plasmablast' of 'rest' is not a population")
    assert (pr.line, pr.column) == (17, 27)
    assert pr.suggestion == "did you mean 'plasmablasts'?"


def test_boolean_and_needs_two(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
  x:
    parent: b_cells
    gate: {and: [b_cells]}
""",
    )
    pr = find(probs, "'and' needs at least two populations")
    assert (pr.line, pr.column) == (14, 17)


def test_ill_formed_polygons(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  two_vertices:
    gate: {kind: polygon, dims: [FSC-A, SSC-A], vertices: [[0, 0], [1, 1]]}
  text_vertex:
    gate: {kind: polygon, dims: [FSC-A, SSC-A], vertices: [[0, 0], [1, x], [1, 0]]}
  three_coords:
    gate: {kind: polygon, dims: [FSC-A, SSC-A], vertices: [[0, 0, 0], [1, 1], [1, 0]]}
""",
    )
    pr = find(probs, "needs at least 3 vertices, got 2")
    assert (pr.line, pr.column) == (11, 59)
    pr = find(probs, "vertex 1 of 'text_vertex' must be a number")
    assert (pr.line, pr.column) == (13, 72)
    pr = find(probs, "vertex 0 of 'three_coords' must be [x, y]")
    assert (pr.line, pr.column) == (15, 60)


def test_unknown_transform_statistic_and_parameter(tmp_path):
    _, probs = problems(
        tmp_path,
        """\
name: t
version: "1"
panel:
  CD19: {transform: logicel}
  CD27: {transform: {kind: logicle, T: 262144, Q: 2}}
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
    statistics: {medain: [CD19], median: [CD20]}
""",
    )
    pr = find(probs, "unknown transform 'logicel'")
    assert (pr.line, pr.column) == (4, 21)
    assert pr.suggestion == "did you mean 'logicle'?"
    pr = find(probs, "unknown parameter 'Q' for a logicle transform")
    assert (pr.line, pr.column) == (5, 48)
    pr = find(probs, "unknown statistic 'medain'")
    assert (pr.line, pr.column) == (9, 18)
    assert pr.suggestion == "did you mean 'median'?"
    pr = find(probs, "marker 'CD20' is not in the panel")
    assert (pr.line, pr.column) == (9, 43)


def test_wrong_dims_count_and_unknown_marker(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  r:
    gate: {kind: range, dims: [CD19, CD27], min: 1}
  p:
    gate: {kind: polygon, dims: [FSC-A], vertices: [[0, 0], [1, 1], [1, 0]]}
  q:
    gate: {kind: quadrant, dims: [IgD, CD27, CD19], cuts: [1, 1], quadrants: {a: ++}}
  u:
    gate: {kind: range, dims: [CD91], min: 1}
  al:
    gate: {kind: range, dims: [CD-19], min: 1}
""",
    )
    pr = find(probs, "a range gate needs 1 dim, 'r' has 2")
    assert (pr.line, pr.column) == (11, 31)
    pr = find(probs, "a polygon gate needs 2 dims, 'p' has 1")
    assert (pr.line, pr.column) == (13, 33)
    pr = find(probs, "a quadrant gate needs 2 dims, 'q' has 3")
    assert (pr.line, pr.column) == (15, 34)
    pr = find(probs, "marker 'CD91' is not in the panel")
    assert (pr.line, pr.column) == (17, 32)
    assert pr.suggestion == "did you mean 'CD19'?"
    pr = find(probs, "'CD-19' is not a panel marker name")
    assert "'CD19'" in pr.suggestion


def test_quadrant_children_signs(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  quads:
    gate:
      kind: quadrant
      dims: [IgD, CD27]
      cuts: [1, 1]
      quadrants: {naive: IgD+ CD27-, also_naive: "+-", odd: IgD+ CD19-}
""",
    )
    pr = find(probs, "'also_naive' and 'naive' are the same quadrant")
    assert (pr.line, pr.column) == (15, 50)
    pr = find(probs, "cannot read quadrant 'odd'")
    assert (pr.line, pr.column) == (15, 61)


def test_percent_of_must_be_ancestor(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
  other:
    gate: {kind: range, dims: [CD27], min: 1000}
    percent_of: [b_cells]
""",
    )
    pr = find(probs, "percent_of 'b_cells' is not an ancestor of 'other'")
    assert (pr.line, pr.column) == (14, 18)


def test_parent_that_is_a_quadrant_gate(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  quads:
    gate: {kind: quadrant, dims: [IgD, CD27], cuts: [1, 1], quadrants: {naive: IgD+ CD27-}}
  child:
    parent: quads
    gate: {kind: range, dims: [CD19], min: 1}
""",
    )
    pr = find(probs, "parent 'quads' of 'child' is a quadrant gate")
    assert (pr.line, pr.column) == (13, 13)
    assert "naive" in pr.suggestion


def test_yaml_syntax_error_position(tmp_path):
    p, probs = problems(tmp_path, 'name: t\nversion: "1\npanel: {}\n')
    assert len(probs) == 1
    assert probs[0].file == str(p) and probs[0].line is not None
    assert "not valid YAML" in probs[0].message
    _, probs = problems(tmp_path, "name: t\n  version: x\n")
    assert probs[0].line == 2 and "not valid YAML" in probs[0].message


def test_unsafe_tag_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    _, probs = problems(
        tmp_path,
        f"""\
name: !!python/object/apply:os.system ["touch {marker}"]
version: "1"
panel: {{CD19: }}
populations: {{b: {{gate: {{kind: range, dims: [CD19], min: 1}}}}}}
""",
    )
    pr = find(probs, "unsupported YAML tag")
    assert (pr.line, pr.column) == (1, 7)
    assert not marker.exists()


def test_all_problems_reported_at_once(tmp_path):
    p = write(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    parnet: root
    gate: {kind: range, dims: [CD91], min: 1}
  naive:
    parent: b_cell
    gate: {kind: polygon, dims: [IgD, CD27], vertices: [[0, 0]]}
    statistics: {meadian: [IgD]}
""",
    )
    with pytest.raises(TemplateError) as exc:
        load_yaml_template(p)
    msgs = [pr.message for pr in exc.value.problems]
    assert len(msgs) == 5, msgs
    text = str(exc.value)
    assert "5 problems in template" in text
    assert f"{p}:11:5: unknown key 'parnet'" in text


def test_alias_shared_between_markers(tmp_path):
    _, probs = problems(
        tmp_path,
        """\
name: t
version: "1"
panel:
  CD19: {aliases: [B marker]}
  CD20: {aliases: [b-marker]}
populations:
  b: {gate: {kind: range, dims: [CD19], min: 1}}
""",
    )
    pr = find(probs, "'b-marker' of marker 'CD20' also names marker 'CD19'")
    assert (pr.line, pr.column) == (5, 19)


def test_compensation_problems(tmp_path):
    _, probs = problems(
        tmp_path,
        """\
name: t
version: "1"
compensation: keywrod
matrices:
  m1: {detectors: [A, B], matrix: [[1, 0.1]]}
  m2: missing.csv
panel:
  CD19:
populations:
  b: {gate: {kind: range, dims: [CD19], min: 1, compensation: m3}}
""",
    )
    pr = find(probs, "compensation 'keywrod' is not FCS")
    assert (pr.line, pr.column) == (3, 15)
    assert pr.suggestion == "did you mean 'keyword'?"
    pr = find(probs, "matrix must be 2 rows of 2 numbers")
    assert (pr.line, pr.column) == (5, 35)
    pr = find(probs, "spillover CSV 'missing.csv' not found")
    assert (pr.line, pr.column) == (6, 7)
    pr = find(probs, "gate compensation 'm3'")
    assert (pr.line, pr.column) == (10, 63)


def test_data_driven_side_problems(tmp_path):
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {method: mindensity, dims: [CD19, CD27], side: "+"}
  c:
    gate: {method: mindensity, dims: [CD19], side: "pos"}
""",
    )
    pr = find(probs, "side '+' of 'b_cells' has 1 sign(s) for 2 dim(s)")
    assert (pr.line, pr.column) == (11, 58)
    pr = find(probs, "side of 'c' must be '+' or '-'")
    assert (pr.line, pr.column) == (13, 52)


def test_unknown_method_and_argument_reported_where_written(tmp_path):
    """A misspelt method name and a misspelt argument, each at its line and column."""
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {method: mindensty, dims: [CD19], side: "+"}
  c:
    gate: {method: mindensity, dims: [CD19], side: "+", args: {gate_rnage: [1, 3]}}
""",
    )
    pr = find(probs, "unknown data-driven method 'mindensty'")
    assert (pr.line, pr.column) == (11, 20)
    assert pr.suggestion == "did you mean 'mindensity'?"
    pr = find(probs, "mindensity args of 'c': unknown argument 'gate_rnage'")
    assert (pr.line, pr.column) == (13, 63)


def test_bad_method_arguments_are_reported_where_args_is(tmp_path):
    """The real registry's checks (ranges, list shapes, options, nested 1-D methods), each at the
    position of the gate's ``args`` (the ``{`` after ``args: ``), naming the argument, what it must
    be and what it is."""
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  b_cells:
    gate: {method: mindensity, dims: [CD19], side: "+", args: {min_depth: 1.5}}
  igd_pos:
    gate: {method: mindensity, dims: [IgD], side: "+", args: {gate_range: [0.2, 0.3, 0.5]}}
  memory:
    parent: b_cells
    gate:
      method: box
      dims: [IgD, CD27]
      side: "-+"
      args: {axes: [{method: mindensity, min_depth: 1.5}, {method: tailgate, side: up}]}
""",
    )
    pr = find(probs, "argument 'min_depth' of mindensity must be a number within [0, 1)")
    assert (pr.line, pr.column) == (11, 63)
    assert pr.message.endswith("got float 1.5")
    pr = find(probs, "argument 'gate_range' of mindensity must be a list of 2 numbers")
    assert (pr.line, pr.column) == (13, 62)
    pr = find(probs, "axes[0]: argument 'min_depth' of mindensity must be")
    assert (pr.line, pr.column) == (20, 13)
    pr = find(probs, "axes[1]: argument 'side' of tailgate must be one of 'right', 'left'")
    assert (pr.line, pr.column) == (20, 13)
    assert len(probs) == 4


def test_data_driven_quadrant_shape(tmp_path):
    """With the real registry: a quadrant method must name its quadrants, a non-quadrant method
    must not, and a 1-D cut method on two dims needs a side or quadrants."""
    _, probs = problems(
        tmp_path,
        HEAD
        + """\
populations:
  q:
    gate: {method: quadrant, dims: [IgD, CD27]}
  s:
    gate: {method: singlet, dims: [FSC-A, SSC-A], quadrants: {a: ++}}
  m:
    gate: {method: mindensity, dims: [IgD, CD27]}
""",
    )
    pr = find(probs, "method 'quadrant' of 'q' places quadrants")
    assert (pr.line, pr.column) == (11, 20)
    pr = find(probs, "method 'singlet' of 's' does not place quadrants")
    assert (pr.line, pr.column) == (13, 20)
    pr = find(probs, "'mindensity' on 2 dims of 'm' needs a side")
    assert (pr.line, pr.column) == (15, 20)


def test_ratio_and_per_gate_transform_problems(tmp_path):
    _, probs = problems(
        tmp_path,
        """\
name: t
version: "1"
panel:
  CD19:
  bad_ratio: {ratio: [FL2-H], A: 1}
  not_ratio: {A: 2}
populations:
  b:
    gate: {kind: range, dims: [CD19], min: 1, transforms: {CD27: logicle}}
""",
    )
    pr = find(probs, "ratio of 'bad_ratio' must be [numerator, denominator]")
    assert (pr.line, pr.column) == (5, 22)
    pr = find(probs, "unknown key 'A' in panel entry 'not_ratio'")
    assert (pr.line, pr.column) == (6, 15)
    pr = find(probs, "transforms of 'b' names 'CD27', which is not one of its dims")
    assert (pr.line, pr.column) == (9, 60)
