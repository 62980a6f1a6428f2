"""The study templates (gating_templates/bcell.yaml, treg.yaml): names, reporting, validation,
gating simulated files against the simulator's per-event truth, and real files' panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cytophen
from conftest import shared_path
from cytophen.gates import DataDrivenGate
from cytophen.interop.yaml_template import check_sample, validate_template
from cytophen.io.sample import Sample

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "bcell": [
        "lymphocytes",
        "singlets",
        "live",
        "b_cells",
        "plasmablasts",
        "naive",
        "unswitched_memory",
        "switched_memory",
        "dn",
        "dn1",
        "dn2",
        "activated_naive",
        "transitional",
    ],
    "treg": [
        "lymphocytes",
        "singlets",
        "live",
        "t_cells",
        "cd4",
        "cd8",
        "treg",
        "helios_pos_treg",
        "helios_neg_treg",
    ],
}
REFERENCE = {"bcell": "b_cells", "treg": "cd4"}


def load(name):
    return cytophen.load_template(ROOT / "gating_templates" / f"{name}.yaml")


@pytest.mark.parametrize("name", ["bcell", "treg"])
def test_study_template_names_and_reporting(name):
    t = load(name)
    assert validate_template(ROOT / "gating_templates" / f"{name}.yaml") == []
    assert set(NAMES[name]) <= set(t.names)
    extra = set(t.names) - set(NAMES[name])
    # non_plasmablast_b: the B cells the quadrants are drawn on; lineage_neg, cd11c_not_bright,
    # cd19_pos and the plasmablast_* helpers: the CD3- helpers b_cells is built from (CD19-low
    # plasmablasts)
    # igd_pos/igd_neg, unswitched_region/switched_region: the IgD sides and the multi-marker
    # regions naive/unswitched/switched/dn are combined from
    helpers = {"igd_pos", "igd_neg", "unswitched_region", "switched_region"}  # fmt: skip
    assert extra <= {"non_plasmablast_b", "lineage_neg", "cd11c_not_bright", "cd19_pos",
                     "plasmablast_cd38hi", "plasmablast_cd19_dim", "plasmablast_cd38hi_wide",
                     "plasmablast_region", *helpers}, extra  # fmt: skip
    ref = REFERENCE[name]
    for p in t.populations:
        assert p.description, f"{p.name} does not say how it is defined"
        if ref in t.ancestors(p.name):
            assert ref in p.report.percent_of, f"{p.name} is not reported as % of {ref}"
    # every gate below the scatter gates is placed from the data, so the template transfers (a
    # ref gate reuses a gate placed from the data)
    for p in t.populations:
        if p.name not in ("lymphocytes",):
            g = p.gate
            if g.kind == "ref":
                assert all(isinstance(t.population(r).gate, DataDrivenGate) for r, _ in g.refs)
                continue
            assert isinstance(g, DataDrivenGate) or g.kind == "boolean", p.name
    assert t.version and len(t.hash) == 64


def test_bcell_structure():
    t = load("bcell")
    assert t.population("b_cells").parent == "live"
    assert t.population("plasmablasts").parent == "b_cells"
    gates = {
        n: t.population(n).gate for n in ("naive", "unswitched_memory", "switched_memory", "dn")
    }
    assert {n: g.kind for n, g in gates.items()} == dict.fromkeys(gates, "boolean")
    assert (
        t.population("igd_pos").gate.method == t.population("igd_neg").gate.method == "mindensity"
    )
    assert [d.channel for d in t.population("igd_pos").gate.dims] == ["IgD"]
    for region in ("unswitched_region", "switched_region"):
        g = t.population(region).gate
        assert g.method == "mixture_halfspace"
        assert [d.channel for d in g.dims] == ["CD27", "CD24", "CD38"]
    parent = t.population("naive").parent
    assert parent != "b_cells" and "b_cells" in t.ancestors("naive")
    assert "plasmablasts" not in t.ancestors("naive")  # plasmablasts are gated out before
    assert t.population("dn1").parent == t.population("dn2").parent == "dn"
    assert t.population("activated_naive").parent == t.population("transitional").parent == "naive"


def test_treg_structure():
    t = load("treg")
    assert t.population("cd4").parent == t.population("cd8").parent == "t_cells"
    assert t.population("treg").parent == "cd4"
    assert (
        t.population("helios_pos_treg").parent == t.population("helios_neg_treg").parent == "treg"
    )


def _f1(m, truth):
    tp = int((m & truth).sum())
    return 2 * tp / max(int(m.sum()) + int(truth.sum()), 1)


@pytest.mark.parametrize("name", ["bcell", "treg"])
def test_study_template_on_simulated_file(name):
    """Gate one simulated file (drifted instrument) and compare with the simulator's truth."""
    from cytophen.simulate import simulate_sample

    ev, ch, mk, spill, truth = simulate_sample(name, seed=11, events=20_000, drift=1.0)
    s = Sample(ev, ch, mk, spillover=spill)
    t = load(name)
    r = cytophen.gate(s, t)
    tab = r.table.set_index("population")
    for pop in t.names:
        if pop not in truth.columns or not tab.loc[pop, "measured"]:
            continue
        true = truth[pop].to_numpy()
        if true.sum() >= 500:  # large populations must be found event for event, near enough
            assert _f1(r.membership(pop), true) >= 0.85, (pop, _f1(r.membership(pop), true))
    for pop in ("lymphocytes", "singlets", "live", REFERENCE[name]):
        assert tab.loc[pop, "measured"], tab.loc[pop, "note"]
    assert set(tab["template_hash"]) == {t.short_hash}


def test_bcell_panel_of_a_real_file():
    """FACSDiva file of the fcs zoo: $PnS CD20 (FITC-A), CD19 (APC-A), CD38 (Alexa700-A) among
    others (fcs_zoo/facts.csv); the rest of the B panel is absent and each is reported."""
    f = shared_path("fcs_zoo", "fcsparser", "FACS_Diva", "facs_diva_test.fcs")
    s = cytophen.read_fcs(f)
    probs = check_sample(load("bcell"), s)
    missing = {p.message.split("marker '")[1].split("'")[0] for p in probs}
    assert missing == {"FSC-H", "Viability", "CD3", "IgD", "CD27", "CD24", "CD21", "CD11c"}
    assert all(p.severity == "error" for p in probs)


def test_treg_panel_of_a_real_file():
    """FlowKit's 100715.fcs: CD3 (R780-A), CD4 (V655-A), CD8 (V800-A), CD127 (G560-A) and a
    'VIVID / CD14' dump channel; CD25, FoxP3 and Helios are absent (fcs_zoo/facts.csv)."""
    from cytophen import markers

    f = shared_path("fcs_zoo", "flowkit", "100715.fcs")
    s = cytophen.read_fcs(f)
    t = load("treg")
    probs = check_sample(t, s)
    missing = {p.message.split("marker '")[1].split("'")[0] for p in probs}
    assert missing == {"CD25", "FoxP3", "Helios"}
    found = {
        m: s.channels[markers.resolve(s.channels, s.markers, m, t.markers[m].aliases)]
        for m in ("CD3", "CD4", "CD8", "CD127", "Viability")
    }
    assert found == {
        "CD3": "R780-A",
        "CD4": "V655-A",
        "CD8": "V800-A",
        "CD127": "G560-A",
        "Viability": "V450-A",
    }
    # with stand-in channels for the three absent markers the whole template runs on the real
    # file; whatever a data-driven gate declines is reported as not measured, with its reason
    s_fake = Sample(
        np.column_stack([s.events, np.zeros((s.n_events, 3), np.float32)]),
        [*s.channels, "X1", "X2", "X3"],
        [*s.markers, "CD25", "FoxP3", "Helios"],
        keywords=s.keywords,
        spillover=s.spillover,
        path=s.path,
    )
    r = cytophen.gate(s_fake, t)
    tab = r.table.set_index("population")
    assert list(tab.index) == t.names
    assert tab.loc["lymphocytes", "measured"] and 0 < tab.loc["lymphocytes", "count"] <= s.n_events
    assert (tab.loc[~tab["measured"].astype(bool), "note"].str.startswith("not measured")).all()
