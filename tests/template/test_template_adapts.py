"""Templates that adapt to the file in front of them: clean-up steps skipped on files exported after
them (``cleanup: true``), helper populations left out of what is reported (``hidden: true``), and
files holding one population's events only (``pregated=``).

Real files from ../shared/data/real: the FlowAtlas Treg files have no scatter and no viability
channel (FlowJo exports made after those gates); the flowDensity B-cell file has FSC-A/H and SSC-A
but no viability. Expected counts are the files' own event counts, counts of a threshold read
straight from the file's values, and FlowJo's counts stored in the FlowAtlas workspace.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import cytophen
from conftest import shared_path
from cytophen.errors import MarkerError, TemplateError
from cytophen.interop.yaml_template import load_yaml_template

ATLAS = ("real", "treg", "FlowAtlas")
BM = "390C_BM_027.fcs"  # 36 948 events; $PnS CD3 on the first channel, CD4 on the third

TEMPLATE = """
format: 1
name: adapts
version: "1"
compensation: none
panel:
  FSC-A: {}
  FSC-H: {}
  SSC-A: {}
  Viability: {}
  CD3: {}
  CD4: {}
  CD19: {optional: true}
populations:
  scatter:
    CLEANUP
    gate: {kind: rectangle, dims: [FSC-A, SSC-A], min: [10000, 0], max: [250000, 200000]}
  singlets:
    parent: scatter
    CLEANUP
    gate: {kind: range, dims: [FSC-H], min: 5000}
  live:
    parent: singlets
    CLEANUP
    HIDDEN
    gate: {kind: range, dims: [Viability], max: 1000}
  t_cells:
    parent: live
    gate: {kind: range, dims: [CD3], min: 2000}
  cd4:
    parent: t_cells
    percent_of: [live]
    gate: {kind: range, dims: [CD4], min: 3000}
  b_cells:
    parent: live
    gate: {kind: range, dims: [CD19], min: 2000}
"""


def _template(tmp_path, *, cleanup=True, hidden=True, name="t.yaml"):
    text = TEMPLATE.replace("CLEANUP", "cleanup: true" if cleanup else "")
    text = text.replace("HIDDEN", "hidden: true" if hidden else "")
    path = tmp_path / name
    path.write_text(text)
    return load_yaml_template(path)


def _column(sample, marker: str) -> np.ndarray:
    return sample.events[:, list(sample.markers).index(marker)].astype(np.float64)


@pytest.fixture(scope="module")
def bm():
    return cytophen.read_fcs(shared_path(*ATLAS, BM))


# -- cleanup: true ------------------------------------------------------------------------------
def test_cleanup_steps_whose_channels_are_absent_are_skipped(bm, tmp_path):
    t = _template(tmp_path)
    r = cytophen.gate(bm, t, include_hidden=True)
    tab = r.table.set_index("population")
    n = int(bm.keywords["$TOT"])
    assert n == 36948
    for pop, absent in (("scatter", "FSC-A, SSC-A"), ("singlets", "FSC-H"), ("live", "Viability")):
        note = f"skipped: {absent} absent from the file (taken as exported after this gate)"
        assert tab.loc[pop, "measured"] and tab.loc[pop, "count"] == n, pop
        assert tab.loc[pop, "parent_count"] == n and tab.loc[pop, "percent_of_parent"] == 100.0
        assert tab.loc[pop, "note"] == note
        assert r.skipped[pop] == note
        entry = r.gates[pop]
        assert entry["skipped"] is True and entry["geometry"] is None and entry["reason"] == note
        assert r.membership(pop).all()
    assert list(r.skipped) == ["scatter", "singlets", "live"]
    # below the skipped steps, the gates apply to every event of the file
    cd3, cd4 = _column(bm, "CD3"), _column(bm, "CD4")
    t_cells = cd3 >= 2000
    assert tab.loc["t_cells", "count"] == int(t_cells.sum()) == 23151
    assert tab.loc["cd4", "count"] == int((t_cells & (cd4 >= 3000)).sum())
    assert tab.loc["cd4", "percent_of_live"] == pytest.approx(100 * tab.loc["cd4", "count"] / n)
    # a population on an optional marker the file lacks is still not measured, with its reason
    assert not tab.loc["b_cells", "measured"] and pd.isna(tab.loc["b_cells", "count"])
    assert tab.loc["b_cells", "note"] == (
        "not measured: optional marker(s) CD19 absent from the file"
    )


@pytest.mark.filterwarnings("ignore:.*spillover is malformed")
def test_cleanup_steps_are_gated_where_their_channels_are_there(tmp_path):
    """flowDensity's Lyoplate file has scatter but no viability: the scatter steps gate as
    usual, only the viability step is skipped."""
    s = cytophen.read_fcs(shared_path("real", "bcell", "flowDensity", "sampleFCS_1.fcs"))
    path = tmp_path / "b.yaml"
    path.write_text(
        TEMPLATE.replace("CLEANUP", "cleanup: true")
        .replace("HIDDEN", "")
        .replace("  CD4: {}\n", "  CD19: {}\n")
        .replace("  CD19: {optional: true}\n", "")
        .replace("dims: [CD4], min: 3000", "dims: [CD19], max: 2")
        .replace("dims: [CD3], min: 2000", "dims: [CD3], max: 2")
        .replace("min: [10000, 0], max: [250000, 200000]", "min: [70000, 0], max: [250000, 80000]")
        .replace("dims: [FSC-H], min: 5000", "dims: [FSC-H], min: 80000")
    )
    t = load_yaml_template(path)
    r = cytophen.gate(s, t)
    tab = r.table.set_index("population")
    fsc_a, ssc_a = s.events[:, s.channels.index("FSC-A")], s.events[:, s.channels.index("SSC-A")]
    fsc_h = s.events[:, s.channels.index("FSC-H")]
    scatter = (fsc_a >= 70000) & (fsc_a < 250000) & (ssc_a >= 0) & (ssc_a < 80000)
    singlets = scatter & (fsc_h >= 80000)
    assert 0 < tab.loc["scatter", "count"] == int(scatter.sum()) < s.n_events
    assert 0 < tab.loc["singlets", "count"] == int(singlets.sum()) < int(scatter.sum())
    assert list(r.skipped) == ["live"]
    assert tab.loc["live", "count"] == tab.loc["singlets", "count"]
    assert tab.loc["live", "note"].startswith("skipped: Viability absent")
    cd3 = _column(s, "CD3")
    assert tab.loc["t_cells", "count"] == int((singlets & (cd3 < 2)).sum())
    assert "skipped" not in r.gates["scatter"] and r.gates["scatter"]["geometry"] is not None


def test_without_cleanup_absent_required_markers_fail_naming_every_one(bm, tmp_path):
    t = _template(tmp_path, cleanup=False)
    with pytest.raises(MarkerError) as exc:
        cytophen.gate(bm, t)
    msg = str(exc.value)
    assert BM in msg
    assert "markers 'FSC-A', 'SSC-A', 'FSC-H', 'Viability' are not in the file" in msg
    assert exc.value.markers == ["FSC-A", "SSC-A", "FSC-H", "Viability"]
    assert "FJComp-355 379_28-A (CD3)" in msg  # what the file has


def test_skipped_steps_in_a_batch_and_gates_json(tmp_path):
    files = [shared_path(*ATLAS, f) for f in (BM, "423_Donor_Lung_032.fcs")]
    t = _template(tmp_path)
    res = cytophen.gate_files(files, t, jobs=1, out=tmp_path / "out", progress=False)
    assert res.n_ok == 2
    gates = json.loads((tmp_path / "out" / "gates.json").read_text())["samples"]
    for sample, entries in gates.items():
        skipped = [p for p, e in entries.items() if e.get("skipped")]
        assert skipped == ["scatter", "singlets", "live"], sample
    tab = pd.read_csv(tmp_path / "out" / "populations.csv")
    notes = tab[tab.population == "scatter"]["note"]
    assert notes.str.startswith("skipped: FSC-A, SSC-A absent").all()


# -- hidden: true -------------------------------------------------------------------------------
def test_hidden_population_is_gated_but_left_out_of_the_table(bm, tmp_path):
    t = _template(tmp_path)
    r = cytophen.gate(bm, t)
    assert "live" not in set(r.table["population"]) and r.hidden == ("live",)
    assert r.membership("live").sum() == bm.n_events  # gated all the same
    tab = r.table.set_index("population")
    assert tab.loc["t_cells", "parent"] == "live"  # the tree is not rewritten
    assert tab.loc["cd4", "percent_of_live"] == pytest.approx(
        100 * tab.loc["cd4", "count"] / bm.n_events
    )
    full = cytophen.gate(bm, t, include_hidden=True)
    assert list(full.table["population"]) == t.names and full.hidden == ()
    pd.testing.assert_frame_equal(
        full.table[full.table.population != "live"].reset_index(drop=True),
        r.table.reset_index(drop=True),
    )


def test_hidden_flag_changes_the_hash_and_survives_yaml(tmp_path):
    from cytophen.interop.yaml_template import dump_template

    shown = _template(tmp_path, hidden=False, name="a.yaml")
    hidden = _template(tmp_path, name="b.yaml")
    plain = _template(tmp_path, hidden=False, cleanup=False, name="c.yaml")
    assert len({shown.hash, hidden.hash, plain.hash}) == 3
    dump_template(hidden, tmp_path / "again.yaml")
    back = load_yaml_template(tmp_path / "again.yaml")
    assert back.hash == hidden.hash
    assert [p.name for p in back.populations if p.hidden] == ["live"]
    assert [p.name for p in back.populations if p.cleanup] == ["scatter", "singlets", "live"]


def test_hidden_flags_are_validated(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(TEMPLATE.replace("CLEANUP", "").replace("HIDDEN", 'hidden: "yes"'))
    with pytest.raises(TemplateError, match=r"bad\.yaml:\d+:\d+: hidden must be"):
        load_yaml_template(path)


def test_hidden_populations_leave_the_outputs_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from cytophen.report.plots import gate_panels

    files = [shared_path(*ATLAS, f) for f in (BM, "423_Donor_Lung_032.fcs")]
    t = _template(tmp_path)
    out = tmp_path / "out"
    res = cytophen.gate_files(files, t, jobs=1, out=out, progress=False, plots=True)
    assert res.n_ok == 2
    tab = pd.read_csv(out / "populations.csv")
    assert "live" not in set(tab["population"]) and "t_cells" in set(tab["population"])
    wide = pd.read_csv(out / "populations_wide.csv")
    assert not [c for c in wide.columns if c.startswith("live")]
    assert not [i for i in res.run["inputs"] if i.get("plots_error")]
    for folder in (out / "plots").iterdir():
        index = json.loads((folder / "plots.json").read_text())
        drawn = {p for item in index["plots"] for p in item["populations"]}
        # no helper and no skipped step (no gate applied); b_cells: not measured, drawn as such
        assert drawn == {"t_cells", "cd4", "b_cells"}
        assert not [item["error"] for item in index["plots"] if item["error"]]
    # a hidden population that is gated on this file (a template does not change: a new one)
    t = dataclasses.replace(
        t,
        populations=[
            dataclasses.replace(p, hidden=True) if p.name == "t_cells" else p for p in t.populations
        ],
    )
    r = cytophen.gate(cytophen.read_fcs(files[0]), t)

    def drawn(**kw):
        return {p for panel in gate_panels(r, **kw)[0] for p in panel.populations}

    assert "t_cells" not in drawn() and "t_cells" in drawn(include_hidden=True)
    every = cytophen.gate_files(files, t, jobs=1, progress=False, include_hidden=True)
    assert "live" in set(every.populations["population"])


def test_cli_all_populations(tmp_path):
    from cytophen.cli import cli

    path = tmp_path / "t.yaml"
    path.write_text(TEMPLATE.replace("CLEANUP", "cleanup: true").replace("HIDDEN", "hidden: true"))
    fcs = str(shared_path(*ATLAS, BM))
    for flag, expect in (([], False), (["--all-populations"], True)):
        out = tmp_path / f"out{len(flag)}"
        r = CliRunner().invoke(
            cli, ["gate", fcs, "--template", str(path), "--out", str(out), "-q", "-j", "1", *flag]
        )
        assert r.exit_code == 0, r.output
        pops = set(pd.read_csv(out / "populations.csv")["population"])
        assert ("live" in pops) is expect


# -- pregated= ----------------------------------------------------------------------------------
def _flowjo_counts(fname: str) -> dict[str, int]:
    """FlowJo's stored counts of one sample of the FlowAtlas workspace, by gate path."""
    root = ET.parse(shared_path(*ATLAS, "workspace.wsp")).getroot()
    out: dict[str, int] = {}

    def walk(node, path):
        for sub in node.findall("Subpopulations"):
            for p in sub:
                q = f"{path}/{p.get('name')}"
                out[q] = int(p.get("count"))
                walk(p, q)

    node = next(sn for sn in root.iter("SampleNode") if sn.get("name") == fname)
    walk(node, "")
    return out


@pytest.fixture(scope="module")
def atlas_gated():
    from cytophen.interop.flowjo import load_workspace

    t = load_workspace(shared_path(*ATLAS, "workspace.wsp"), sample=BM)
    s = cytophen.read_fcs(shared_path(*ATLAS, BM))
    return t, s, cytophen.gate(s, t)


def _export(s, mask, path):
    cytophen.write_fcs(path, s.events[mask], list(s.channels), markers=list(s.markers))
    return cytophen.read_fcs(path)


def test_pregated_file_is_gated_below_its_population(atlas_gated, tmp_path):
    """The T cells of a FlowAtlas file, exported to a file of their own: gated with
    ``pregated='T cells'``, every population below gets exactly the events it got in the whole
    file, and 'T cells' is the file's every event: FlowJo's stored T-cell count."""
    t, s, whole = atlas_gated
    fj = _flowjo_counts(BM)
    in_t = whole.membership("T cells")
    assert int(in_t.sum()) == fj["/T cells"] == 23246
    only_t = _export(s, in_t, tmp_path / "t_cells.fcs")
    r = cytophen.gate(only_t, t, pregated="T cells")
    tab = r.table.set_index("population")
    assert tab.loc["T cells", "count"] == only_t.n_events == fj["/T cells"]
    assert tab.loc["T cells", "note"] == "pregated: the file holds only T cells events"
    assert r.gates["T cells"]["pregated"] is True and r.gates["T cells"]["geometry"] is None
    for name in t.names:
        if name == "T cells":
            continue
        np.testing.assert_array_equal(
            r.membership(name), whole.membership(name)[in_t], err_msg=name
        )
    # and FlowJo agrees to within its binning (CD4: 7809 in the workspace)
    assert tab.loc["CD4", "count"] == pytest.approx(fj["/T cells/CD4"], rel=0.01)
    assert tab.loc["CD4", "percent_of_parent"] == pytest.approx(
        100 * fj["/T cells/CD4"] / fj["/T cells"], abs=0.5
    )


def test_pregated_below_the_root_leaves_other_branches_unmeasured(atlas_gated, tmp_path):
    t, s, whole = atlas_gated
    in_cd4 = whole.membership("CD4")
    only_cd4 = _export(s, in_cd4, tmp_path / "cd4.fcs")
    r = cytophen.gate(only_cd4, t, pregated="CD4")
    tab = r.table.set_index("population")
    for name in ("T cells", "CD4"):  # the population and its ancestors: every event
        assert tab.loc[name, "count"] == only_cd4.n_events == int(in_cd4.sum())
        assert tab.loc[name, "note"] == "pregated: the file holds only CD4 events"
    assert tab.loc["Treg", "count"] == whole.count("Treg")  # below CD4: gated as usual
    assert not tab.loc["CD8", "measured"]  # a sibling cannot be measured on a CD4-only file
    assert tab.loc["CD8", "note"] == (
        "not measured: the file holds only CD4 events (exported after that gate)"
    )
    assert not tab.loc["CD8 | Naive", "measured"]


def test_unknown_pregated_population_is_a_clear_error(bm, tmp_path):
    from cytophen.cli import cli

    t = _template(tmp_path)
    with pytest.raises(TemplateError, match=r"pregated 't_cell': no such population \(did you "
                       r"mean 't_cells'\?\); the template 'adapts' has: scatter, singlets"):  # fmt: skip
        cytophen.gate(bm, t, pregated="t_cell")
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        ["gate", str(shared_path(*ATLAS, BM)), "--template", str(tmp_path / "t.yaml"),
         "--out", str(out), "-q", "--pregated", "t_cell"],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "no such population" in r.output and "t_cells" in r.output
    assert not out.exists()  # nothing written


def test_cli_pregated(tmp_path):
    from cytophen.cli import cli

    t = _template(tmp_path)
    fcs = shared_path(*ATLAS, BM)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli, ["gate", str(fcs), "--template", str(tmp_path / "t.yaml"), "--out", str(out), "-q",
              "-j", "1", "--pregated", "t_cells"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    tab = pd.read_csv(out / "populations.csv").set_index("population")
    n = cytophen.read_fcs(fcs).n_events
    assert tab.loc["t_cells", "count"] == n
    assert tab.loc["t_cells", "note"] == "pregated: the file holds only t_cells events"
    assert tab.loc["cd4", "count"] == int((_column(cytophen.read_fcs(fcs), "CD4") >= 3000).sum())
    assert json.loads((out / "run.json").read_text())["options"]["pregated"] == "t_cells"
    assert t.hash == json.loads((out / "run.json").read_text())["template"]["hash"]


def test_validate_warns_about_markers_only_clean_up_steps_use(bm, tmp_path):
    from cytophen.interop.yaml_template import check_sample

    problems = check_sample(_template(tmp_path), bm)
    by_marker = {p.message.split("'")[1]: p for p in problems if "marker '" in p.message}
    assert set(by_marker) == {"FSC-A", "FSC-H", "SSC-A", "Viability", "CD19"}
    assert all(p.severity == "warning" for p in problems)
    assert "clean-up step(s) scatter will be skipped" in by_marker["FSC-A"].message
    assert "clean-up step(s) singlets will be skipped" in by_marker["FSC-H"].message
    assert "clean-up step(s) live will be skipped" in by_marker["Viability"].message
    strict = check_sample(_template(tmp_path, cleanup=False, name="strict.yaml"), bm)
    assert {p.severity for p in strict if "'FSC-A'" in p.message} == {"error"}
