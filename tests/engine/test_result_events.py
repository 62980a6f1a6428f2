"""GatingResult.events and .to_anndata on real FCS files, checked against GatingML truth, FlowIO's
decoding of the same bytes and FlowKit's transforms; and the public signatures of gate and
gate_files."""

from __future__ import annotations

import inspect
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import cytophen
from conftest import shared_path

BCELLS = ("real", "bcell", "flowAI", "Bcells1.fcs")
# A small fixed-gate template for the real B-cell file (LSR II, raw compensated values; it has
# CD19 and CD27 but no IgD, so the shipped template does not apply).
TEMPLATE = """\
format: 1
name: bcells_events
version: "1"
compensation: none
panel:
  FSC-A: {transform: &lin {kind: linear, T: 262144, A: 0}}
  SSC-A: {transform: *lin}
  CD19: {transform: &lgc {kind: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}}
  CD27: {transform: *lgc}
populations:
  lymphocytes:
    gate: {kind: rectangle, dims: [FSC-A, SSC-A], min: [0.1, 0.0], max: [0.6, 0.3]}
  b_cells:
    parent: lymphocytes
    gate: {kind: range, dims: [CD19], min: 0.45}
  cd27_pos:
    parent: b_cells
    gate: {kind: range, dims: [CD27], min: 0.5}
"""


@pytest.fixture(scope="module")
def bcells(tmp_path_factory):
    path = shared_path(*BCELLS)
    tpl = tmp_path_factory.mktemp("tpl") / "bcells.yaml"
    tpl.write_text(TEMPLATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file's $SPILL is malformed (and unused here)
        return path, cytophen.gate(cytophen.read_fcs(path), tpl)


def _flowio_events(path) -> np.ndarray:
    flowio = pytest.importorskip("flowio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flowio.FlowData(str(path)).as_array(preprocess=True)


def test_events_of_a_gatingml_gate_match_truth_and_flowkit():
    flowkit = pytest.importorskip("flowkit")
    d = ("gatingml2",)
    sample = cytophen.read_fcs(shared_path(*d, "data1.fcs"))
    tpl = cytophen.load_template(shared_path(*d, "gml", "gml_transform_logicle_range4_gate.xml"))
    result = cytophen.gate(sample, tpl)
    df = result.events("ScaleRange4")
    truth = np.array(shared_path(*d, "truth", "Results_ScaleRange4.txt").read_text().split())
    rows = np.flatnonzero(truth == "1")
    np.testing.assert_array_equal(df.index.to_numpy(), rows)  # the GatingML truth's events
    assert df.index.name == "event"
    # the gate's own dimension keeps the template's name; others are named by $PnS
    assert list(df.columns)[:4] == ["FSC-Height", "SSC-Height", "FL1-H", "CD8 B PE"]
    assert df.attrs["channels"]["CD8 B PE"] == "FL2-H"
    fk = flowkit.Sample(str(shared_path(*d, "data1.fcs")))
    raw = fk.get_events(source="raw")
    j = fk.pnn_labels.index("FL1-H")
    lin = result.events("ScaleRange4", transformed=False)
    np.testing.assert_array_equal(lin["FL1-H"].to_numpy(), raw[rows, j])
    xform = flowkit.transforms.LogicleTransform(10000, 0.5, 4.5, 0).apply(raw[rows][:, [j]])
    np.testing.assert_allclose(df["FL1-H"].to_numpy(), xform[:, 0], rtol=0, atol=1e-9)
    # channels no gate uses stay linear
    np.testing.assert_array_equal(df["CD8 B PE"].to_numpy(), raw[rows, 3])


def test_events_on_a_real_b_cell_file(bcells):
    path, result = bcells
    df = result.events("b_cells")
    assert len(df) == result.count("b_cells") > 100
    np.testing.assert_array_equal(df.index.to_numpy(), np.flatnonzero(result.membership("b_cells")))
    # template names for the channels it names, else $PnS, else $PnN
    assert list(df.columns) == [
        "FSC-A",
        "FSC-H",
        "SSC-A",
        "SSC-H",
        "Live/ Dead",
        "IgM",
        "CD27",
        "HLA-DR",
        "CD19",
        "CD24",
        "CD23",
        "CD21",
        "Time",
    ]
    assert df.attrs["channels"]["CD19"] == "Qdot 655-A"
    ref = _flowio_events(path)[
        df.index.to_numpy()
    ]  # FlowIO: the same bytes decoded and scaled ($TIMESTEP)
    lin = result.events("b_cells", transformed=False)
    np.testing.assert_array_equal(lin.to_numpy(), ref)
    flowkit = pytest.importorskip("flowkit")
    logicle = flowkit.transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    for col, j in (("CD19", 8), ("CD27", 6)):
        want = logicle.apply(ref[:, [j]])[:, 0]
        np.testing.assert_allclose(df[col].to_numpy(), want, rtol=0, atol=1e-9)
    # GatingML flin with A = 0: x / T
    np.testing.assert_allclose(df["FSC-A"].to_numpy(), ref[:, 0] / 262144, rtol=1e-15)
    np.testing.assert_array_equal(df["IgM"].to_numpy(), ref[:, 5])  # not in the template: linear
    assert (df["CD19"] >= 0.45).all()
    assert len(result.events()) == result.n_events == 64562


def test_to_anndata(bcells, tmp_path):
    anndata = pytest.importorskip("anndata")
    _, result = bcells
    df = result.events("b_cells")
    adata = result.to_anndata("b_cells")
    assert adata.shape == df.shape
    assert list(adata.var_names) == list(df.columns)
    assert adata.var.loc["CD19", "channel"] == "Qdot 655-A"
    assert adata.var.loc["CD19", "marker"] == "CD19"
    assert adata.var.loc["CD19", "transform"].startswith("kind=logicle")
    assert adata.var.loc["IgM", "transform"] == ""
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X, df.to_numpy(dtype=np.float32))
    assert adata.obs_names[0] == f"{result.sample_id}:{df.index[0]}"
    np.testing.assert_array_equal(adata.obs["event"].to_numpy(), df.index.to_numpy())
    assert adata.obs["b_cells"].all() and adata.obs["lymphocytes"].all()
    # cd27_pos: CD27 >= 0.5 on the logicle scale (range gate min <= x), within b_cells
    np.testing.assert_array_equal(adata.obs["cd27_pos"].to_numpy(), (df["CD27"] >= 0.5).to_numpy())
    assert adata.uns["cytophen"]["template_hash"] == result.template_hash
    assert adata.uns["cytophen"]["population"] == "b_cells"
    out = tmp_path / "b.h5ad"
    adata.write_h5ad(out)  # a valid file for the scverse tools
    back = anndata.read_h5ad(out)
    assert back.shape == adata.shape and list(back.obs.columns) == list(adata.obs.columns)


def test_to_anndata_without_anndata_names_the_extra(bcells, monkeypatch):
    _, result = bcells
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'cytophen\[anndata\]'"):
        result.to_anndata("b_cells")


def test_events_errors(bcells):
    _, result = bcells
    with pytest.raises(KeyError, match="no population 'nope'"):
        result.events("nope")
    from dataclasses import replace

    from cytophen.errors import CytophenError

    with pytest.raises(CytophenError, match="carries no events"):
        replace(result, sample=None).events("b_cells")


@pytest.mark.parametrize(
    "public,inner",
    [("gate", "cytophen.engine:gate"), ("gate_files", "cytophen.pipeline.batch:gate_files")],
)
def test_public_signatures_are_real_and_match_the_implementation(public, inner):
    import importlib

    mod, name = inner.split(":")
    wrapper = getattr(cytophen, public)
    impl = getattr(importlib.import_module(mod), name)
    got = inspect.signature(wrapper).parameters
    want = inspect.signature(impl).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in got.values())
    assert [(p.name, p.kind, p.default) for p in got.values()] == [
        (p.name, p.kind, p.default) for p in want.values()
    ]
    doc = inspect.getdoc(wrapper)
    assert all(s in doc for s in ("Parameters\n----------", "Returns\n-------", "Examples"))
    for p in got:
        assert f"\n{p}\n" in doc or f"\n{p}," in doc, f"{public}: parameter {p} is not documented"


COMPENSATED = """\
format: 1
name: spill
version: "1"
compensation: FCS
panel:
  A: {transform: none}
  B: {transform: none}
populations:
  b_pos:
    gate: {kind: range, dims: [B], min: 500}
"""


def test_a_result_keeps_the_compensation_it_was_gated_with(tmp_path):
    rng = np.random.default_rng(1)
    ev = rng.uniform(100, 1000, (300, 2)).astype(np.float32)
    spill = pd.DataFrame([[1.0, 0.5], [0.0, 1.0]], index=["A", "B"], columns=["A", "B"])
    sample = cytophen.read_fcs(
        cytophen.write_fcs(tmp_path / "s.fcs", ev, ["A", "B"], spillover=spill)
    )
    tpl = tmp_path / "t.yaml"
    tpl.write_text(COMPENSATED)
    a, b = ev[:, 0].astype(np.float64), ev[:, 1].astype(np.float64)
    b_true = b - 0.5 * a  # A spills half of itself into B: by hand, the inverse of the matrix

    own = cytophen.gate(sample, tpl)
    assert own.compensation is None
    assert own.count("b_pos") == int((b_true >= 500).sum())
    np.testing.assert_allclose(own.events(transformed=False)["B"], b_true, rtol=1e-12)

    raw = cytophen.gate(sample, tpl, compensation="none")
    assert raw.compensation == "none"
    assert raw.count("b_pos") == int((b >= 500).sum()) != own.count("b_pos")
    # events (and the plots, which read the same values) need not be told again
    np.testing.assert_array_equal(raw.events(transformed=False)[["A", "B"]].to_numpy(), ev)
    np.testing.assert_array_equal(raw.events("b_pos").index, np.flatnonzero(b >= 500))


def test_gate_context_gives_the_values_each_gate_was_applied_to(bcells):
    """Applying each population's gate to ``gate_context()`` values, within its parent,
    reproduces its membership event for event (what the plots draw from)."""
    _, result = bcells
    ctx = result.gate_context()
    for pop in result.template.populations:
        g = pop.gate
        values = np.column_stack([ctx.value(d) for d in g.dims])
        parent = (
            result.membership(pop.parent) if pop.parent else np.ones(result.n_events, bool)
        )
        np.testing.assert_array_equal(g.contains(values) & parent, result.membership(pop.name))
