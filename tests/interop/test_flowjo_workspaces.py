"""Real FlowJo workspaces: every sample with its own gates, FlowJo's naming, and gates back out.

References: FlowJo's stored counts and FlowKit 1.3 (``flowkit.Workspace(...).analyze_samples()``,
run side by side here) on the FlowAtlas workspace (../shared/data/real/treg/FlowAtlas: 26 samples
with their own gates in two panels, 10 of their FCS files present); a workspace written here as
FlowJo 10.7 writes one for the OMIP-021 files, whose channels contain ``/``; and FlowKit reading the
workspaces cytophen writes.
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cytophen
from conftest import shared_path
from cytophen.cli import cli
from cytophen.errors import TemplateError
from cytophen.interop import load_template
from cytophen.interop.flowjo import Workspace, workspace_templates, write_workspace

fk = pytest.importorskip("flowkit")

ATLAS = ("real", "treg", "FlowAtlas")


def _flowkit_counts(wsp, files) -> dict[tuple[str, str], int]:
    """FlowKit's count of every population: {(sample name, 'root/...'): count}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(wsp), fcs_samples=[str(f) for f in files])
        ws.analyze_samples(use_mp=False)
        rep = ws.get_analysis_report()
    return {
        (s, "/".join((*p, n))): int(c)
        for s, p, n, c in zip(
            rep["sample_id" if "sample_id" in rep else "sample"],
            rep["gate_path"],
            rep["gate_name"],
            rep["count"],
        )
    }


# ------------------------------------------------------------------------------------------------
# FlowAtlas: 26 samples, each with its own gates; 10 FCS files present
# ------------------------------------------------------------------------------------------------
@functools.cache
def _atlas():
    folder = shared_path(*ATLAS)
    files = sorted(folder.glob("*.fcs"))
    return folder, folder / "workspace.wsp", files


@functools.cache
def _atlas_flowkit():
    _, wsp, files = _atlas()
    return _flowkit_counts(wsp, files)


def _present_samples() -> dict[str, str]:
    """samples_and_markers.csv: workspace sample name -> local file name (present files only)."""
    folder, _, _ = _atlas()
    with open(folder / "samples_and_markers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {r["wsp_sample_name"]: Path(r["local_fcs"]).name for r in rows if r["local_fcs"]}


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory):
    folder, wsp, _ = _atlas()
    out = tmp_path_factory.mktemp("atlas") / "out"
    r = CliRunner().invoke(
        cli, ["gate", str(folder), "--template", str(wsp), "--out", str(out), "-q", "--flowjo"]
    )
    return r, out


def test_atlas_every_present_sample_gated_with_its_own_tree(atlas_run):
    r, out = atlas_run
    assert r.exit_code == 0, r.output
    _, wsp, files = _atlas()
    present = _present_samples()
    assert sorted(present.values()) == sorted(f.name for f in files)
    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == {**run["counts"], "total": 10, "ok": 10, "failed": 0}
    # the 16 workspace samples without a file are listed
    without = run["template"]["samples_without_file"]
    ws = Workspace(wsp)
    assert len(ws.samples) == 26
    assert sorted(without) == sorted(set(ws.samples) - set(present))
    import pandas as pd

    table = pd.read_csv(out / "populations.csv")
    for sample_name, file_name in present.items():
        t = ws.template(sample_name)
        rows = table[table["file"].map(lambda f: Path(f).name) == file_name]
        # exactly this sample's own populations (the two panels have different trees)
        assert sorted(rows["population"]) == sorted(t.names), sample_name
    # two panels (one splits B cells from non-B first), and a sample with an edit of its own:
    # 390C_Lung_029 has an OR gate the other samples of its panel do not
    panels = {
        any(p.startswith("root/non-B") for p in ws.template(s).meta["flowjo_paths"].values())
        for s in present
    }
    assert panels == {True, False}
    from cytophen.gates import BooleanGate, RectangleGate

    kinds = {
        s: type(ws.template(s).population("CD4 | Memory").gate)
        for s in ("390C_Lung_029.fcs", "390C_BM_027.fcs", "390C_Liver_026.fcs")
    }
    assert kinds == {
        "390C_Lung_029.fcs": BooleanGate,
        "390C_BM_027.fcs": RectangleGate,
        "390C_Liver_026.fcs": RectangleGate,
    }


def test_atlas_counts_against_flowjo_and_flowkit():
    _, wsp, files = _atlas()
    fkc = _atlas_flowkit()
    ws = Workspace(wsp)
    n = close_fk = close_us = 0
    for f in files:
        t = ws.template(f.name)
        res = cytophen.gate(cytophen.read_fcs(f), t)
        stored = t.meta["flowjo_counts"]
        for pop, path in t.meta["flowjo_paths"].items():
            ours, flowjo, flowkit = res.count(pop), stored[pop], fkc[(f.name, path)]
            n += 1
            # within 2 events of FlowJo wherever FlowKit is; never farther than FlowKit + 2
            if abs(flowkit - flowjo) <= 2:
                close_fk += 1
                close_us += abs(ours - flowjo) <= 2
            assert abs(ours - flowjo) <= abs(flowkit - flowjo) + 2, (f.name, path)
            assert ours == flowkit, (f.name, path)  # both are event-exact on the same gates
        assert res.n_events == t.meta["flowjo_total"]
    assert n == 231 and close_us == close_fk


def test_atlas_own_gates_beat_one_tree_for_all():
    # each file gated with its own workspace sample's gates lands closer to FlowJo than every
    # file gated with the first sample's tree
    _, wsp, files = _atlas()
    ws = Workspace(wsp)
    first = load_template(wsp)
    own_close = shared_close = own_found = shared_found = 0
    for f in files:
        s = cytophen.read_fcs(f)
        t = ws.template(f.name)
        own = cytophen.gate(s, t)
        other = cytophen.gate(s, first)
        by_path = {v: k for k, v in first.meta["flowjo_paths"].items()}
        for pop, path in t.meta["flowjo_paths"].items():
            flowjo = t.meta["flowjo_counts"][pop]
            own_found += 1
            own_close += abs(own.count(pop) - flowjo) <= 2
            if path in by_path:
                shared_found += 1
                shared_close += abs(other.count(by_path[path]) - flowjo) <= 2
    assert own_found == 231 and shared_found < own_found
    assert own_close > shared_close


def test_atlas_group_and_file_matching(tmp_path):
    folder, wsp, files = _atlas()
    # the 390C group, read independently from the XML
    from lxml import etree

    doc = etree.parse(str(wsp))
    gnode = next(g for g in doc.iter("GroupNode") if g.get("name") == "390C")
    ids = {r.get("sampleID") for r in gnode.iter("SampleRef")}
    names = {
        s.find("SampleNode").get("name")
        for s in doc.iter("Sample")
        if s.find("SampleNode").get("sampleID") in ids
    }
    ws = Workspace(wsp, group="390C")
    assert set(ws.samples) == names and len(names) == 6
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        ["gate", str(folder), "-t", str(wsp), "--group", "390C", "-o", str(out), "-q"],
    )
    assert r.exit_code == 1, r.output  # files of other groups are errors, the rest complete
    import pandas as pd

    errors = pd.read_csv(out / "errors.csv")
    gated = {f.name for f in files} - {Path(x).name for x in errors["file"]}
    assert gated == {f.name for f in files if f.name in names}
    assert set(errors["stage"]) == {"template"}
    assert all("not in group '390C'" in m for m in errors["message"])
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["template"]["samples_without_file"]) == sorted(names - gated)
    # by $FIL: a renamed copy; by URI: a sample renamed in the workspace; no match: an error row
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(files[0], d / "renamed.fcs")
    shutil.copy(shared_path("flowjo", "flowsom", "68983.fcs"), d / "68983.fcs")
    text = wsp.read_text(encoding="utf-8").replace(
        f'SampleNode name="{files[1].name}"', 'SampleNode name="my sample"'
    )
    wsp2 = tmp_path / "renamed.wsp"
    wsp2.write_text(text, encoding="utf-8")
    shutil.copy(files[1], d / files[1].name)
    got, why = Workspace(wsp2).match(sorted(d.glob("*.fcs")))
    assert got == ["my sample", None, files[0].name]  # 390C_Ileum..., 68983.fcs, renamed.fcs
    assert "no sample of workspace renamed.wsp matches" in why[1]
    res = cytophen.gate_files(sorted(d.glob("*.fcs")), wsp2, progress=False)
    assert res.n_ok == 2 and list(res.errors["stage"]) == ["template"]


def test_atlas_python_one_call_all_templates():
    _, wsp, _ = _atlas()
    ts = workspace_templates(wsp)
    assert len(ts) == 26 and all(t.meta["sample"] == s for s, t in ts.items())
    # sample-specific edits: the same gate sits elsewhere on different samples
    rects = {
        s: tuple(np.round(t.population("T cells").gate.mins, 6))
        for s, t in ts.items()
        if "T cells" in t.names and hasattr(t.population("T cells").gate, "mins")
    }
    assert len(set(rects.values())) > 1
    assert len(workspace_templates(wsp, group="BM")) == 4


def test_atlas_export_reimported_by_flowkit(atlas_run):
    # --flowjo wrote DIR/cytophen.wsp: FlowKit reading it gives cytophen's count everywhere
    r, out = atlas_run
    assert r.exit_code == 0, r.output
    wsp = out / "cytophen.wsp"
    assert wsp.is_file()
    import pandas as pd

    table = pd.read_csv(out / "populations.csv")
    files = sorted({Path(f) for f in table["file"]})
    fkc = _flowkit_counts(wsp, files)
    back, original = Workspace(wsp), Workspace(_atlas()[1])
    checked = 0
    for f in files:
        written = set(back.template(f.name).meta["flowjo_paths"].values())
        ours = table[table["file"] == str(f)].set_index("population")["count"]
        for pop, path in original.template(f.name).meta["flowjo_paths"].items():
            assert path in written  # the same tree, gate names and paths
            assert fkc[(f.name, path)] == ours[pop], (f.name, path)
            checked += 1
    assert checked == 231


# ------------------------------------------------------------------------------------------------
# channels with '/': a workspace as FlowJo 10.7 writes it for the OMIP-021 files
# ------------------------------------------------------------------------------------------------
_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Workspace version="20.0" modDate="Mon Mar 01 '
    '10:00:00 CET 2021" flowJoVersion="10.7.1" curGroup="All Samples" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
    'xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations" '
    'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">\n'
)
_BIEX = (
    '<transforms:biex transforms:length="256" transforms:maxRange="262144" transforms:neg="0" '
    'transforms:width="-100" transforms:pos="4.418539922"><data-type:parameter '
    'data-type:name="{}"/></transforms:biex>'
)
_LIN = (
    '<transforms:linear transforms:minRange="0" transforms:maxRange="262144" gain="1">'
    '<data-type:parameter data-type:name="{}"/></transforms:linear>'
)


def _dim(name, lo=None, hi=None):
    b = (f' gating:min="{lo}"' if lo is not None else "") + (
        f' gating:max="{hi}"' if hi is not None else ""
    )
    return f'<gating:dimension{b}><data-type:fcs-dimension data-type:name="{name}"/></gating:dimension>'


def _pop(name, gate, children="", count=-1, gid="1"):
    sub = f"<Subpopulations>{children}</Subpopulations>" if children else ""
    return (
        f'<Population name="{name}" annotation="" owningGroup="" count="{count}">'
        f'<Gate gating:id="ID{gid}">{gate}</Gate>{sub}</Population>'
    )


def _rect(*dims):
    return f'<gating:RectangleGate eventsInside="1">{"".join(dims)}</gating:RectangleGate>'


def _poly(x, y, verts):
    v = "".join(
        f'<gating:vertex><gating:coordinate data-type:value="{a}"/>'
        f'<gating:coordinate data-type:value="{b}"/></gating:vertex>'
        for a, b in verts
    )
    return f'<gating:PolygonGate eventsInside="1">{_dim(x)}{_dim(y)}{v}</gating:PolygonGate>'


def _ellipse(x, y, foci, edges):
    def verts(pts):
        return "".join(
            f'<gating:vertex><gating:coordinate data-type:value="{a}"/>'
            f'<gating:coordinate data-type:value="{b}"/></gating:vertex>'
            for a, b in pts
        )

    return (
        f'<gating:EllipsoidGate eventsInside="1">{_dim(x)}{_dim(y)}<gating:foci>{verts(foci)}'
        f"</gating:foci><gating:edge>{verts(edges)}</gating:edge></gating:EllipsoidGate>"
    )


def _omip_workspace(files, *, keywords=True) -> str:
    """A FlowJo 10.7 workspace of the OMIP-021 files: FlowJo's names ('/' -> '_'), the acquisition
    matrix with the Comp- prefix, biex/linear transforms on plain and Comp- names, the files'
    keywords, and per-sample gates (each sample's lymphocyte polygon is its own)."""
    samples, refs = [], []
    for k, f in enumerate(files, start=1):
        s = cytophen.read_fcs(f)
        fj = {c: c.replace("/", "_") for c in s.channels}
        spill = s.spillover
        det = [fj[c] for c in spill.columns]
        matrix = (
            '<transforms:spilloverMatrix prefix="Comp-" name="Acquisition-defined" suffix="" '
            'editable="0" status="FINALIZED"><data-type:parameters>'
            + "".join(f'<data-type:parameter data-type:name="{d}"/>' for d in det)
            + "</data-type:parameters>"
            + "".join(
                f'<transforms:spillover data-type:parameter="{d}">'
                + "".join(
                    f'<transforms:coefficient data-type:parameter="{d2}" transforms:value="{v}"/>'
                    for d2, v in zip(det, row)
                )
                + "</transforms:spillover>"
                for d, row in zip(det, spill.to_numpy())
            )
            + "</transforms:spilloverMatrix>"
        )
        tr = "".join(
            (_LIN if c.startswith(("FSC", "SSC", "Time", "Original")) else _BIEX).format(fj[c])
            for c in s.channels
        ) + "".join(_BIEX.format("Comp-" + d) for d in det)
        kws = "".join(
            f'<Keyword name="{k2}" value="{v}"/>'
            for k2, v in s.keywords.items()
            if keywords or not k2.startswith("$P")
        )
        shift = 4000 * k  # the sample-specific edit
        lym = _poly(
            "FSC-A",
            "SSC-A",
            [(40000 + shift, 5000), (200000, 5000), (220000, 90000), (60000 + shift, 120000)],
        )
        tree = _pop(
            "Lymphocytes",
            lym,
            _pop(
                "Live",
                _rect(_dim("Comp-525_50Violet-A", hi=1500)),
                _pop(
                    "CD3+",
                    _rect(_dim("Comp-670_30Violet-A", lo=1200)),
                    _pop(
                        "CD4",
                        _poly(
                            "Comp-780_60Red-A",
                            "Comp-585_15Violet-A",
                            [(3000, -500), (200000, -500), (200000, 1500), (3000, 1500)],
                        ),
                        _pop("CD45RO+", _rect(_dim("Comp-730__45Red-A", lo=2000)), gid="5"),
                        gid="4",
                    )
                    + _pop(
                        "CD8",
                        _poly(
                            "Comp-780_60Red-A",
                            "Comp-585_15Violet-A",
                            [(-1000, 2000), (2500, 2000), (2500, 200000), (-1000, 200000)],
                        ),
                        gid="6",
                    )
                    + _pop(
                        "blob",
                        _ellipse(
                            "Comp-780_60Red-A",
                            "Comp-585_15Violet-A",
                            [(150.0, 80.0), (190.0, 120.0)],
                            [(205.0, 135.0), (135.0, 65.0), (160.0, 110.0), (180.0, 90.0)],
                        ),
                        gid="7",
                    )
                    + '<OrNode name="CD4 or CD8" annotation="" owningGroup="" count="-1">'
                    '<Dependents><Dependent name="Lymphocytes/Live/CD3+/CD4"/>'
                    '<Dependent name="Lymphocytes/Live/CD3+/CD8"/></Dependents></OrNode>',
                    gid="3",
                ),
                gid="2",
            ),
        )
        samples.append(
            f'<Sample><DataSet uri="file:/C:/Users/lab/OMIP-021/{f.name}" sampleID="{k}"/>'
            f"{matrix}<Transformations>{tr}</Transformations><Keywords>{kws}</Keywords>"
            f'<SampleNode name="{f.name}" annotation="" owningGroup="" count="{s.n_events}" '
            f'sampleID="{k}"><Subpopulations>{tree}</Subpopulations></SampleNode></Sample>'
        )
        refs.append(f'<SampleRef sampleID="{k}"/>')
    return (
        _HEAD
        + '<Groups><GroupNode name="All Samples" annotation="" owningGroup="All Samples">'
        + f'<Group name="All Samples"><SampleRefs>{"".join(refs)}</SampleRefs></Group>'
        + "</GroupNode></Groups><SampleList>"
        + "".join(samples)
        + "</SampleList></Workspace>\n"
    )


@pytest.mark.parametrize("keywords", [True, False], ids=["with-PnN-keywords", "without"])
def test_slash_channels_as_flowjo_writes_them(tmp_path, keywords):
    files = [shared_path("real", "omip021", f"Donor{i}.fcs") for i in (1, 2)]
    assert "730//45Red-A" in cytophen.read_fcs(files[0]).channels
    wsp = tmp_path / "omip.wsp"
    wsp.write_text(_omip_workspace(files, keywords=keywords), encoding="utf-8")
    fkc = _flowkit_counts(wsp, files)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["gate", *map(str, files), "-t", str(wsp), "-o", str(out), "-q"])
    assert r.exit_code == 0, (out / "errors.csv").read_text()
    import pandas as pd

    table = pd.read_csv(out / "populations.csv")
    ws = Workspace(wsp)
    for f in files:
        t = ws.template(f.name)
        assert t.population("CD45RO+").gate.dims[0].channel in ("730//45Red-A", "730__45Red-A")
        ours = table[table["file"] == str(f)].set_index("population")["count"]
        assert len(ours) == 8
        for pop, path in t.meta["flowjo_paths"].items():
            assert ours[pop] == fkc[(f.name, path)], (f.name, path)
        assert ours["CD45RO+"] > 0 and ours["blob"] > 0 and ours["CD4"] > 0
    # the two samples' own lymphocyte polygons
    assert table.groupby("file")["count"].first().nunique() == 2


# ------------------------------------------------------------------------------------------------
# export: data-driven templates frozen per sample, read back by FlowKit
# ------------------------------------------------------------------------------------------------
_BCELL_2D = """
format: 1
name: bcell_2d
version: "1"
compensation: FCS
panel:
  FSC-A: {transform: &lin {kind: linear, T: 262144, A: 0}}
  FSC-H: {transform: *lin}
  SSC-A: {transform: *lin}
  Viability: {transform: &lg {kind: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}}
  CD3: {transform: *lg}
  CD19: {transform: *lg}
  CD20: {transform: *lg}
  IgD: {transform: *lg}
  CD27: {transform: *lg}
  CD24: {transform: *lg}
  CD38: {transform: *lg}
populations:
  lymphocytes:
    gate: {method: mixture_ellipse, dims: [FSC-A, SSC-A], args: {K: 4, target: [0.25, 0.08], quantile: 0.94}}
  singlets:
    parent: lymphocytes
    gate: {method: mixture_ellipse, dims: [FSC-A, FSC-H], args: {K: 2, target: [0.25, 0.21], quantile: 0.9999, tails: gaussian}}
  live:
    parent: singlets
    gate: {method: mindensity, dims: [Viability], side: "-"}
  lineage_neg:
    parent: live
    gate: {method: mindensity, dims: [CD3], side: "-"}
  b_cells:
    parent: lineage_neg
    gate: {method: mixture_halfspace, dims: [CD19, CD20], side: "++", args: {cut: {method: mindensity}}}
  quadrants:
    parent: b_cells
    gate:
      method: quadrant
      dims: [IgD, CD27]
      quadrants: {naive: IgD+ CD27-, unswitched_memory: IgD+ CD27+, switched_memory: IgD- CD27+, dn: IgD- CD27-}
  cd38_pos:
    parent: b_cells
    gate: {method: mindensity, dims: [CD38], side: "+"}
  cd38_wide:
    parent: lineage_neg
    gate: {ref: cd38_pos}
  transitional:
    parent: naive
    gate: {kind: rectangle, dims: [CD24, CD38], min: [0.62, 0.62]}
  memory:
    parent: b_cells
    gate: {or: [unswitched_memory, switched_memory]}
  naive_cd38_neg:
    parent: b_cells
    gate: {and: [naive, {not: cd38_pos}]}
  not_dn:
    parent: b_cells
    gate: {not: dn}
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    r = CliRunner().invoke(
        cli, ["simulate", "--out", str(d), "--panel", "bcell", "--files", "2", "--events", "20000"]
    )
    assert r.exit_code == 0, r.output
    return sorted(d.glob("*.fcs"))


def _export_and_compare(results, wsp, files):
    written = write_workspace(results, wsp)
    fkc = _flowkit_counts(wsp, files)
    for f in files:
        for pop, path in written.paths[f.name].items():
            assert fkc[(f.name, path)] == written.counts[f.name][pop], (f.name, pop)
    return written


def test_export_2d_data_driven_template_every_population(simulated, tmp_path):
    tf = tmp_path / "bcell_2d.yaml"
    tf.write_text(_BCELL_2D)
    t = load_template(tf)
    results = [cytophen.gate(cytophen.read_fcs(f), t) for f in simulated]
    written = _export_and_compare(results, tmp_path / "b.wsp", simulated)
    assert written.notes == []
    for res in results:
        name = Path(res.file).name
        assert set(written.paths[name]) == set(t.names)  # every population, as placed
        assert written.counts[name] == {p: res.count(p) for p in t.names}
        assert all(res.count(p) > 0 for p in ("lymphocytes", "b_cells", "naive", "memory"))
    # per sample: the data-driven gates were frozen where each sample put them
    back = Workspace(tmp_path / "b.wsp")
    a, b = (back.template(f.name).population("live").gate.maxs for f in simulated)
    assert a != b


def test_export_shipped_bcell_template(simulated, tmp_path):
    t = load_template(Path(cytophen.__file__).parents[2] / "gating_templates" / "bcell.yaml")
    results = [cytophen.gate(cytophen.read_fcs(f), t) for f in simulated]
    written = _export_and_compare(results, tmp_path / "bcell.wsp", simulated)
    # left out: exactly the gates on more than two axes, and what needs them
    deep = {p.name for p in t.populations if len(getattr(p.gate, "dims", ())) > 2}
    needs = set(deep)
    for p in t.populations:
        ops = [n for n, _ in getattr(p.gate, "operands", [])]
        if p.parent in needs or any(n in needs for n in ops):
            needs.add(p.name)
    for f in simulated:
        assert set(written.paths[f.name]) == set(t.names) - needs
    assert all("left out" in n for n in written.notes)
    assert not any("read back" in n or "in the batch" in n for n in written.notes)


def test_cli_convert_and_gate_write_flowjo(simulated, tmp_path):
    tf = tmp_path / "bcell_2d.yaml"
    tf.write_text(_BCELL_2D)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli, ["gate", *map(str, simulated), "-t", str(tf), "-o", str(out), "-q", "--flowjo"]
    )
    assert r.exit_code == 0, (out / "errors.csv").read_text()
    assert "warning" not in r.output
    import pandas as pd

    table = pd.read_csv(out / "populations.csv")
    fkc = _flowkit_counts(out / "cytophen.wsp", simulated)
    for f in simulated:
        ours = table[table["file"] == str(f)].set_index("population")["count"]
        back = Workspace(out / "cytophen.wsp").template(f.name)
        for pop, path in back.meta["flowjo_paths"].items():
            if pop in ours:  # not the NOT helper of the complemented operand
                assert fkc[(f.name, path)] == ours[pop]
        assert set(ours.index) <= set(back.meta["flowjo_paths"])
    wsp2 = tmp_path / "conv.wsp"
    r = CliRunner().invoke(
        cli,
        [
            "convert",
            str(tf),
            "--out",
            str(wsp2),
            *[a for f in simulated for a in ("--fcs", str(f))],
        ],
    )
    assert r.exit_code == 0, r.output
    again = Workspace(wsp2)
    assert sorted(again.samples) == sorted(f.name for f in simulated)
    r = CliRunner().invoke(cli, ["convert", str(tf), "--out", str(tmp_path / "x.wsp")])
    assert r.exit_code == 2 and "--fcs" in r.output and not (tmp_path / "x.wsp").exists()


# ------------------------------------------------------------------------------------------------
# refusals and edge cases
# ------------------------------------------------------------------------------------------------
def test_refuses_flowjo9_and_diva_naming_what_is_supported(tmp_path):
    fj9 = tmp_path / "old.wsp"
    fj9.write_text(
        '<?xml version="1.0"?><Workspace version="1.61" flowJoVersion="9.7.6">'
        '<SampleList><Sample><DataSet uri="a.fcs"/></Sample></SampleList></Workspace>'
    )
    with pytest.raises(TemplateError, match=r"old.wsp.*FlowJo 9.*FlowJo 10 workspaces"):
        load_template(fj9)
    diva = tmp_path / "experiment.xml"
    diva.write_text('<?xml version="1.0"?><bdfacs version="8.0"><experiment name="x"/></bdfacs>')
    with pytest.raises(TemplateError, match=r"experiment.xml.*FACSDiva.*FlowJo 10 workspaces"):
        load_template(diva)
    r = CliRunner().invoke(
        cli,
        [
            "gate",
            str(shared_path("flowjo", "flowsom", "68983.fcs")),
            "-t",
            str(diva),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "FACSDiva" in r.output and not (tmp_path / "o").exists()
    yaml = Path(cytophen.__file__).parents[2] / "gating_templates" / "treg.yaml"
    r = CliRunner().invoke(
        cli,
        ["gate", str(shared_path("flowjo", "flowsom", "68983.fcs")), "-t", str(yaml), "--group", "x", "-o", str(tmp_path / "o")],
    )  # fmt: skip
    assert r.exit_code == 2 and "only a FlowJo workspace has groups" in r.output
    r = CliRunner().invoke(
        cli, ["gate", str(shared_path("flowjo", "flowsom", "68983.fcs")), "-t", str(shared_path("flowjo", "flowsom", "gating.wsp")), "--group", "nope", "-o", str(tmp_path / "o")]
    )  # fmt: skip
    assert r.exit_code == 2 and "no group 'nope'" in r.output and not (tmp_path / "o").exists()


def test_sample_without_gates_gives_the_root_only(tmp_path):
    src = shared_path("flowjo", "flowsom", "gating.wsp")
    text = src.read_text(encoding="utf-8")
    start = text.index("<Subpopulations", text.index("<SampleNode"))
    end = text.rindex("</Subpopulations>", 0, text.index("</SampleNode>")) + len(
        "</Subpopulations>"
    )
    wsp = tmp_path / "empty.wsp"
    wsp.write_text(text[:start] + text[end:], encoding="utf-8")
    t = Workspace(wsp).template("68983.fcs")
    assert t.populations == []
    res = cytophen.gate(cytophen.read_fcs(shared_path("flowjo", "flowsom", "68983.fcs")), t)
    assert res.n_events == 19225 and res.populations == [] and len(res.table) == 0
    batch = cytophen.gate_files(
        [shared_path("flowjo", "flowsom", "68983.fcs")], wsp, progress=False
    )
    assert batch.n_ok == 1 and batch.n_failed == 0


def test_biex_and_flowjo_log_gates_decide_in_data_units_as_on_the_scale():
    # rectangles and polygons on FlowJo's clamped scales may skip transforming events far from
    # their edges: the result must be what transforming every event gives, bounds at the
    # clamped ends included
    from cytophen.gates import Dim, PolygonGate, RectangleGate
    from cytophen.transforms import FlowJoBiexTransform, FlowJoLogTransform

    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 3000, 20000), rng.uniform(-5e5, 5e5, 5000), [0.0, 262144.0]])
    y = rng.permutation(x)
    for t in (
        FlowJoBiexTransform(width=-100, positive=4.42, max_value=262144),
        FlowJoLogTransform(offset=10, decades=4.5),
    ):
        tx, ty = t.apply(x), t.apply(y)
        top = float(t.apply(np.array([1e9]))[0])
        for lo, hi in [
            (None, 0.3 * top),
            (0.0, top),
            (0.5 * top, None),
            (0.1 * top, 0.9 * top),
            (top, None),
            (None, 0.0),
        ]:
            g = RectangleGate((Dim("a", transform=t),), (lo,), (hi,))
            want = g.contains(tx[:, None])
            assert np.array_equal(g.contains_raw([x]), want), (t.kind, lo, hi)
        poly = PolygonGate(
            (Dim("a", transform=t), Dim("b", transform=t)),
            np.array([[0.0, 0.0], [0.6, 0.1], [0.7, 0.8], [0.05, 0.5]]) * top,
        )
        assert np.array_equal(poly.contains_raw([x, y]), poly.contains(np.column_stack([tx, ty])))


def test_markers_from_workspace_keywords_when_the_file_has_none(tmp_path):
    # a FlowAtlas file written again without $PnS: the workspace's keywords name its markers
    from cytophen.io.fcs import write_fcs

    _, wsp, files = _atlas()
    src = cytophen.read_fcs(files[0])
    assert all(src.markers)
    d = tmp_path / "in"
    d.mkdir()
    keywords = {k: v for k, v in src.keywords.items() if not k.startswith("$P")}
    write_fcs(d / files[0].name, src.events, src.channels, keywords=keywords)
    assert not any(cytophen.read_fcs(d / files[0].name).markers)
    out = tmp_path / "out"
    res = cytophen.gate_files(d, wsp, out=out, export_gated="T cells", progress=False)
    assert res.n_ok == 1
    exported = cytophen.read_fcs(out / "gated" / f"{files[0].stem}.fcs")
    assert exported.markers == src.markers  # CD3, CD8, ... from the workspace


def test_one_unreadable_sample_does_not_stop_the_batch(tmp_path):
    # 423_Donor_BM_028 (no file) gets a transform FlowJo-only; 390C_Ileum_028 (a file) a gate
    # type cytophen does not read: the batch gates the rest and names both problems
    folder, wsp, files = _atlas()
    text = wsp.read_text(encoding="utf-8")
    a = text.index("423_Donor_BM_028.fcs")
    text = text[:a] + text[a:].replace("<ns1:biex ", "<ns1:hyperlog ", 1).replace(
        "</ns1:biex>", "</ns1:hyperlog>", 1
    )
    b = text.index('SampleNode name="390C_Ileum_028.fcs"')
    c = text.index("<ns3:RectangleGate ", b)
    d = text.index("</ns3:RectangleGate>", c)
    text = (
        text[:c]
        + text[c:d].replace("ns3:RectangleGate", "ns3:CurlyQuadGate", 1)
        + ("</ns3:CurlyQuadGate>" + text[d + len("</ns3:RectangleGate>") :])
    )
    bad = tmp_path / "bad.wsp"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match="hyperlog.*not supported"):
        Workspace(bad).template("423_Donor_BM_028.fcs")
    res = cytophen.gate_files(folder, bad, progress=False)
    assert res.n_ok == 9 and res.n_failed == 1
    row = res.errors.iloc[0]
    assert Path(row["file"]).name == "390C_Ileum_028.fcs" and row["stage"] == "template"
    assert "CurlyQuadGate" in row["message"] and "bad.wsp" in row["message"]
