"""`cytophen validate T.yaml [--sample F.fcs]`: every problem at once, exit 2 when invalid."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from cytophen.cli import main
from cytophen.io.fcs import write_fcs

GOOD = """\
name: cli
version: "1"
panel:
  CD19: {aliases: [CD-19]}
  CD27:
  CD21: {optional: true}
populations:
  b_cells:
    gate: {kind: range, dims: [CD19], min: 1000}
  cd27_pos:
    parent: b_cells
    gate: {kind: range, dims: [CD27], min: 1000}
  cd21_pos:
    parent: b_cells
    gate: {kind: range, dims: [CD21], min: 1000}
"""


def run(capsys, *args):
    code = main(list(map(str, args)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_valid_template_exits_0(tmp_path, capsys):
    p = tmp_path / "good.yaml"
    p.write_text(GOOD)
    code, out, err = run(capsys, "validate", p)
    assert code == 0
    assert "valid (cli v1, 3 populations" in out and err == ""


def test_invalid_template_lists_every_problem_and_exits_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(
        GOOD.replace(
            "parent: b_cells\n    gate: {kind: range, dims: [CD27]",
            "parent: b_cell\n    gate: {kind: range, dims: [CD72]",
        ).replace("  cd21_pos:\n", "  cd21_pos:\n    percnt_of: [b_cells]\n")
    )
    code, out, err = run(capsys, "validate", p)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith(str(p) + ":")]
    assert (
        f"{p}:11:13: parent 'b_cell' of 'cd27_pos' is not a population of this template (did you mean 'b_cells'?)"
        in lines
    )
    assert any(ln.startswith(f"{p}:12:32: ") and "'CD72' is not in the panel" in ln for ln in lines)
    assert any(
        ln.startswith(f"{p}:14:5: unknown key 'percnt_of'") and "did you mean 'percent_of'?" in ln
        for ln in lines
    )
    assert "INVALID: 3 error(s)" in err


def test_bad_nested_method_argument_is_an_invalid_template(tmp_path, capsys):
    """A quadrant whose x axis asks mindensity for min_depth 1.5 (a share, within [0, 1)) would
    fail on every sample: validate rejects it (exit 2) at the line of its args."""
    p = tmp_path / "bad.yaml"
    p.write_text(
        GOOD
        + """\
  cd27_cd21:
    parent: b_cells
    gate:
      method: quadrant
      dims: [CD27, CD21]
      quadrants: {memory_cd21_pos: ++, memory_cd21_neg: +-}
      args: {x: {method: mindensity, min_depth: 1.5}, first: z}
"""
    )
    code, out, err = run(capsys, "validate", p)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith(str(p) + ":")]
    assert (
        f"{p}:22:13: quadrant args of 'cd27_cd21': x: argument 'min_depth' of mindensity must be "
        "a number within [0, 1), got float 1.5" in lines
    )
    assert (
        f"{p}:22:13: quadrant args of 'cd27_cd21': argument 'first' of quadrant must be one of "
        "'auto', 'x', 'y', got str 'z'" in lines
    )
    assert "INVALID: 2 error(s)" in err


def test_sample_with_missing_optional_marker_warns_exit_0(tmp_path, capsys):
    p = tmp_path / "good.yaml"
    p.write_text(GOOD)
    f = tmp_path / "s.fcs"
    write_fcs(
        f, np.ones((10, 2), np.float32), ["APC-H7-A", "BV605-A"], markers=["CD19", "CD27 BV605"]
    )
    code, out, err = run(capsys, "validate", p, "--sample", f)
    assert code == 0
    assert f"{p}:6:3: warning: {f}: marker 'CD21' is not in the file" in err
    assert "APC-H7-A (CD19), BV605-A (CD27 BV605)" in err
    assert "1 warning(s)" in out


def test_sample_with_missing_required_marker_exits_2(tmp_path, capsys):
    p = tmp_path / "good.yaml"
    p.write_text(GOOD)
    f = tmp_path / "s.fcs"
    write_fcs(f, np.ones((10, 2), np.float32), ["APC-H7-A", "PE-A"], markers=["CD19", "CD21"])
    code, out, err = run(capsys, "validate", p, "--sample", f)
    assert code == 2
    assert (
        f"{p}:5:3: {f}: marker 'CD27' is not in the file; the file has: APC-H7-A (CD19), PE-A (CD21)"
        in err
    )


def test_missing_template_file_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, "validate", tmp_path / "nope.yaml")
    assert code == 2 and "template file not found" in err


@pytest.mark.parametrize("name", ["bcell", "treg"])
def test_study_templates_validate(name, capsys):
    from pathlib import Path

    p = Path(__file__).resolve().parents[2] / "gating_templates" / f"{name}.yaml"
    code, out, err = run(capsys, "validate", p)
    assert code == 0, err
    assert f"valid ({name} v" in out


def test_real_file_ambiguous_marker(capsys):
    """gatingml2/data1.fcs labels two channels 'CD8 B PE' and 'CD8 APC' (MANIFEST / facts.csv)."""
    from pathlib import Path

    f = shared_path("gatingml2", "data1.fcs")
    p = Path(__file__).resolve().parents[2] / "gating_templates" / "treg.yaml"
    code, out, err = run(capsys, "validate", p, "--sample", f)
    assert code == 2
    cd8 = [ln for ln in err.splitlines() if "marker 'CD8'" in ln]
    assert (
        len(cd8) == 1
        and "matches more than one channel (FL2-H (CD8 B PE); FL4-H (CD8 APC))" in cd8[0]
    )
    # CD3 and CD4 are there ('CD3 PerCP', 'CD4 FITC'): no problem is reported for them
    assert "marker 'CD3'" not in err and "marker 'CD4'" not in err
    for absent in ("CD25", "CD127", "FoxP3", "Helios", "Viability", "FSC-A"):
        assert f"marker '{absent}' is not in the file" in err


def test_validate_accepts_gatingml(capsys):
    f = shared_path("gatingml2", "gml", "gml_rect1_gate.xml")
    code, out, err = run(capsys, "validate", f)
    assert code == 0 and "valid (" in out
