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

ROOT = Path(__file__).resolve().parents[2]
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
    # the other populations are clean-up steps (CD3- / CD19- dump channels), the CD25+ CD127lo
    # pre-gate of the Tregs and the hidden "B cells other than plasmablasts"
    extra = set(t.names) - set(NAMES[name])
    assert extra <= {"non_t", "non_b", "cd25_cd127lo", "non_plasmablast_b"}, extra
    assert [p.name for p in t.populations if p.hidden] == (
        ["non_plasmablast_b"] if name == "bcell" else []
    )
    ref = REFERENCE[name]
    for p in t.populations:
        assert p.description, f"{p.name} does not say how it is defined"
        # one line of biology per population: the why lives in docs/methods.md
        assert "\n" not in p.description.strip() and len(p.description) < 80, p.name
        if ref in t.ancestors(p.name) and not p.hidden:
            assert ref in p.report.percent_of, f"{p.name} is not reported as % of {ref}"
    # every gate is placed from the data (so the template transfers), and every reported
    # population is a gate on at most two markers: drawable on one plot of its parent
    for p in t.populations:
        g = p.gate
        assert isinstance(g, DataDrivenGate) or g.kind == "boolean", p.name
        if isinstance(g, DataDrivenGate):
            assert len(g.dims) <= 2, (p.name, [d.channel for d in g.dims])
    # every marker is optional and on the 'auto' scale: a real panel lacking one still gates
    for m in t.markers.values():
        assert m.transform.kind == "auto", m.name
        assert m.optional or m.name in ("FSC-A", "SSC-A"), m.name
    assert t.version.startswith("2.") and len(t.hash) == 64


def test_bcell_structure():
    t = load("bcell")
    assert [t.population(n).cleanup for n in ("lymphocytes", "singlets", "live", "non_t")] == [
        True
    ] * 4
    assert t.population("b_cells").parent == "non_t"
    assert t.population("plasmablasts").parent == "b_cells"
    quad = {n: t.population(n) for n in ("naive", "unswitched_memory", "switched_memory", "dn")}
    gates = {id(p.gate) for p in quad.values()}
    assert len(gates) == 1  # one IgD x CD27 quadrant gate
    g = quad["naive"].gate
    assert g.method == "quadrant" and [d.channel for d in g.dims] == ["IgD", "CD27"]
    assert {n: p.quadrant for n, p in quad.items()} == {
        "naive": "+-", "unswitched_memory": "++", "switched_memory": "-+", "dn": "--"
    }  # fmt: skip
    assert quad["naive"].parent == "non_plasmablast_b"
    assert "plasmablasts" not in t.ancestors("naive")  # plasmablasts are gated out before
    for n, dims in (("transitional", ["CD24", "CD38"]), ("plasmablasts", ["CD27", "CD38"]),
                    ("dn1", ["CD21", "CD11c"]), ("dn2", ["CD21", "CD11c"]),
                    ("activated_naive", ["CD21", "CD11c"])):  # fmt: skip
        assert [d.channel for d in t.population(n).gate.dims] == dims, n
    assert t.population("dn1").parent == t.population("dn2").parent == "dn"
    assert t.population("activated_naive").parent == t.population("transitional").parent == "naive"


def test_treg_structure():
    t = load("treg")
    assert t.population("cd4").parent == t.population("cd8").parent == "t_cells"
    assert t.population("cd25_cd127lo").parent == "cd4"
    g = t.population("cd25_cd127lo").gate
    assert [d.channel for d in g.dims] == ["CD25", "CD127"] and [d.channel for d in g.guide] == [
        "FoxP3"
    ]
    assert t.population("treg").parent == "cd25_cd127lo"
    assert [d.channel for d in t.population("treg").gate.dims] == ["FoxP3"]
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
    r = cytophen.gate(s, t, include_hidden=True)
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
    others (fcs_zoo/facts.csv); the rest of the B panel is absent: each is reported, as a warning
    (every marker of the shipped template is optional: what it defines is not measured)."""
    f = shared_path("fcs_zoo", "fcsparser", "FACS_Diva", "facs_diva_test.fcs")
    s = cytophen.read_fcs(f)
    probs = check_sample(load("bcell"), s)
    missing = {p.message.split("marker '")[1].split("'")[0] for p in probs}
    assert missing == {"FSC-H", "Viability", "CD3", "IgD", "CD27", "CD24", "CD21", "CD11c"}
    assert all(p.severity == "warning" for p in probs)
    r = cytophen.gate(s, load("bcell"))
    tab = r.table.set_index("population")
    assert tab.loc["b_cells", "measured"] and not tab.loc["naive", "measured"]
    assert "IgD" in tab.loc["naive", "note"]


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
    assert all(p.severity == "warning" for p in probs)  # optional: not measured, reported
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
