"""The shipped templates, unedited, on every real file of ../shared/data/real.

Each file is gated with the template its panel calls for (tests/real_references.py); the
populations it can support must be measured, those whose markers it lacks must be reported as
not measured with the reason, and clean-up steps whose channels it lacks must be skipped. The
comparisons with the references the data's README names (FlowJo's stored counts, openCyto's gates,
the Stanford manual labels) are asserted at issue 19's tolerances.
"""

from __future__ import annotations

import warnings

import pytest

import real_references as rr

pytestmark = pytest.mark.shared


def _need_real():
    if not rr.REAL.is_dir():
        pytest.skip(f"real data not found at {rr.REAL} (set CYTOPHEN_SHARED_DATA)")


@pytest.fixture(scope="module")
def gated():
    _need_real()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the files' own spillover/keyword warnings
        for case in rr.CASES:
            out[case.id] = rr.gate_case(case)
    return out


@pytest.mark.parametrize("case", rr.CASES, ids=[c.id for c in rr.CASES])
def test_measured_and_not_measured(gated, case):
    res = gated[case.id]
    tab = res.table.set_index("population")
    for pop in case.measured:
        assert tab.loc[pop, "measured"], f"{pop}: {tab.loc[pop, 'note']}"
        assert not str(tab.loc[pop, "note"]).startswith("skipped"), tab.loc[pop, "note"]
    for pop in case.not_measured:
        assert not tab.loc[pop, "measured"], f"{pop} measured on a file that lacks its markers"
        assert str(tab.loc[pop, "note"]).startswith("not measured: "), tab.loc[pop, "note"]
    for pop in case.skipped:
        assert pop in res.skipped, f"{pop} was not skipped: {tab.loc[pop, 'note']}"
        assert tab.loc[pop, "count"] == tab.loc[pop, "parent_count"]
    # every population is accounted for: measured with a count, or not measured with a reason
    for pop, row in tab.iterrows():
        if row["measured"]:
            assert 0 <= row["count"] <= row["parent_count"], pop
            assert not str(row["note"]).startswith("not measured"), (pop, row["note"])
        else:
            assert row["note"].startswith("not measured: "), (pop, row["note"])


def _comparisons(gated, reference):
    rows = []
    for case in rr.CASES:
        if case.reference == reference:
            rows += rr.compare(case, gated[case.id])
    return rows


@pytest.mark.parametrize("reference", ["flowjo", "opencyto", "manual"])
def test_reference_within_tolerance(gated, reference):
    rows = _comparisons(gated, reference)
    assert rows, f"no {reference} comparison was made"
    misses = [r for r in rows if not r["ok"]]
    assert not misses, "\n".join(
        f"{r['case']} {r['what']}: ours {r['ours']} vs {r['reference']} ({r['tolerance']})"
        for r in misses
    )


def test_flowatlas_compared_on_every_file_with_200_cd4(gated):
    """The FlowJo comparison covers every FlowAtlas file with at least 200 CD4 T cells in
    FlowJo's gating (all present files but 390C_Ileum_028, 131 CD4 T cells)."""
    rows = _comparisons(gated, "flowjo")
    files = {r["case"].split("/")[1] for r in rows}
    fj = rr.flowjo_counts()
    big = set(
        fj[(fj.path == "/T cells/CD4") & (fj["count"] >= 200)]["sample"].str.replace(".fcs", "")
    )
    present = {f for f in rr._FA_FILES}
    assert files == big & present
    assert len(files) == 9


def test_scales_detected(gated):
    """Each source's values are recognised for what they are ($PnR says 262144 on all)."""
    expect = {
        "flowdensity/sampleFCS_1/bcell": "logicle",  # flowCore logicle, 0-4.5
        "lyoplate_dc/001/tcell": "channel",  # FlowJo channels, 0-4096
        "hipc/tcell": "channel",
        "flowatlas/390C_BM_027/treg": "linear",  # compensated linear FlowJo export
        "flowai/Bcells1/bcell": "linear",
        "itn/01/tcell": "linear",  # log-amplified, decoded 1-10 000
        "omip021/Donor1/tcell": "linear",
    }
    for case_id, scale in expect.items():
        assert gated[case_id].scale["scale"] == scale, case_id
    # compensated exports are not compensated again; raw files with a keyword are
    assert gated["flowatlas/390C_BM_027/treg"].scale["file_spillover"].startswith("not applied")
    assert gated["lyoplate_dc/001/tcell"].scale["file_spillover"].startswith("not applied")
    assert gated["omip021/Donor1/tcell"].scale["file_spillover"] == "applied"


def test_igd_without_separation_is_flagged(gated):
    """sampleFCS_1's IgD channel shows one population on B and T cells alike: the IgD cut finds
    no valley, and the quadrant populations say that the gate fell back."""
    res = gated["flowdensity/sampleFCS_1/bcell"]
    tab = res.table.set_index("population")
    for pop in ("naive", "unswitched_memory", "switched_memory", "dn"):
        assert "fell back" in tab.loc[pop, "note"] and "x:" in tab.loc[pop, "note"]


def test_lymphocyte_gate_on_the_lymphocyte_cloud(gated):
    """The scatter gate holds the cloud of the lymphocytes the fluorescence identifies: on the
    DC files, nearly every openCyto lymphocyte is inside ours and ours is nearly all openCyto's;
    on the T-cell files, nearly all CD3+ events of the whole file lie inside it."""
    for k in ("001", "002"):
        case = next(c for c in rr.CASES if c.id == f"lyoplate_dc/{k}/tcell")
        mem = rr._opencyto(case)
        ref = mem["/boundary/Monocytes/lymph"].to_numpy(bool)
        ours = gated[case.id].membership("lymphocytes")
        assert (ours & ref).sum() / ref.sum() > 0.9
        assert (ours & ref).sum() / ours.sum() > 0.9
    from cytophen.datadriven import Valley

    for donor in (1, 2):  # bright CD3 on all events: the T cells, whatever the scatter gate says
        res = gated[f"omip021/Donor{donor}/tcell"]
        cd3 = res.events(None)["CD3"].to_numpy()
        bright = cd3 >= Valley(valley="upper").fit(cd3[:, None]).threshold_
        assert bright.sum() > 500
        assert res.membership("lymphocytes")[bright].mean() > 0.85


def test_treg_and_helios_measured_where_cd4_is_large(gated):
    """On the FlowAtlas files with thousands of CD4 T cells the whole Treg branch is measured;
    on the small tissue files the Helios gate may decline (too few Tregs), saying so."""
    for f in ("390C_BM_027", "390C_Lung_029", "403C_donor_Lung_026", "428_Donor_Lung_029"):
        tab = gated[f"flowatlas/{f}/treg"].table.set_index("population")
        for pop in ("treg", "helios_pos_treg", "helios_neg_treg"):
            assert tab.loc[pop, "measured"], (f, pop, tab.loc[pop, "note"])
    for case in rr.CASES:
        if case.template == "treg":
            tab = gated[case.id].table.set_index("population")
            for pop in ("treg", "helios_pos_treg"):
                if not tab.loc[pop, "measured"]:
                    assert (
                        "finite events" in tab.loc[pop, "note"] or "parent" in tab.loc[pop, "note"]
                    )


def test_markers_csv_names_channels_without_pns(tmp_path):
    """A file whose channels have no $PnS is gated by marker name once a channel,marker CSV says
    which channel is which (here ITN's CD4/CD8/CD3 channels renamed to detector names)."""
    _need_real()
    import cytophen
    from cytophen.io.fcs import write_fcs
    from cytophen.markers import read_marker_csv

    src = cytophen.read_fcs(rr.REAL / "wholeblood_itn" / "ITN_sample01.fcs")
    det = {"CD8": "FL1-H", "CD69": "FL2-H", "CD4": "FL3-H", "CD3": "FL4-H", "HLADr": "FL5-H"}
    channels = [det.get(c, c) for c in src.channels]
    f = tmp_path / "anon.fcs"
    write_fcs(f, src.events, channels, markers=[""] * len(channels), keywords={
        f"$P{i + 1}R": src.keyword(f"$P{i + 1}R") for i in range(len(channels))})  # fmt: skip
    csv = tmp_path / "markers.csv"
    csv.write_text("channel,marker\n" + "".join(f"{d},{m}\n" for m, d in det.items()))
    tmpl = rr.template("tcell")
    bare = cytophen.gate(cytophen.read_fcs(f), tmpl)
    assert not bare.table.set_index("population").loc["t_cells", "measured"]
    mm = read_marker_csv(csv)
    named = cytophen.gate(cytophen.read_fcs(f, markers=mm.for_file(f)), tmpl)
    original = cytophen.gate(src, tmpl)
    a = named.table.set_index("population")
    b = original.table.set_index("population")
    for pop in ("lymphocytes", "t_cells", "cd4", "cd8"):
        assert a.loc[pop, "count"] == b.loc[pop, "count"]


@pytest.mark.parametrize("case", rr.CASES, ids=[c.id for c in rr.CASES])
def test_frozen_gates_export_to_gatingml_and_give_the_same_counts(gated, case, tmp_path):
    """What the shipped template placed on a real file, frozen (its scale's transforms, no second
    compensation, skipped steps and unmeasured populations left out), written as GatingML 2.0 and
    read back, gates that file to the same counts."""
    import cytophen

    res = gated[case.id]
    frozen = rr.template(case.template).freeze(res, partial=True)
    meta = frozen.meta["frozen_from"]
    assert set(meta.get("skipped", {})) >= set(res.skipped)
    tab = res.table.set_index("population")
    unmeasured = set(tab.index[~tab.measured.astype(bool)])
    assert set(meta.get("not_measured", {})) >= unmeasured
    path = tmp_path / "frozen.xml"
    frozen.to_gatingml(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = cytophen.gate(rr.read_case_sample(case), cytophen.load_template(path))
    assert frozen.names, case.id
    for name in frozen.names:
        if name in tab.index:
            assert again.count(name) == res.count(name), name


def test_flowjo_workspace_of_real_files_gives_the_same_counts(tmp_path):
    """A batch of real files from four sources (raw with a keyword, FlowJo channels, a compensated
    FlowJo export, flowCore logicle), gated with the shipped templates and written as a FlowJo
    workspace: every sample's gates read back (cytophen's reader, and FlowKit's when installed)
    give the batch's counts."""
    _need_real()
    import cytophen
    from cytophen.interop.flowjo import Workspace, write_workspace

    files = {
        "tcell": ["omip021/Donor1.fcs", "lyoplate_dc/DC_MONO_NK_12828001_001.fcs",
                  f"{rr._FA}/390C_BM_027.fcs"],
        "bcell": ["bcell/flowDensity/sampleFCS_1.fcs"],
    }  # fmt: skip
    for name, rel in files.items():
        paths = [rr.REAL / f for f in rel]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = cytophen.gate_files(
                paths, rr.template(name), jobs=1, out=tmp_path / name, progress=False
            )
            written = write_workspace(batch, tmp_path / f"{name}.wsp", template=rr.template(name))
        assert written.notes == [], written.notes
        assert len(written.samples) == len(paths)
        pops = batch.populations
        ws = Workspace(tmp_path / f"{name}.wsp")
        for path in paths:
            ours = pops[pops.file == str(path)].set_index("population")
            counts = written.counts[path.name]
            assert len(counts) >= 2, path.name
            hidden = {p.name for p in rr.template(name).populations if p.hidden}
            for pop, n in counts.items():  # hidden helpers are written too, not in the table
                assert pop in hidden or n == ours.loc[pop, "count"], (path.name, pop)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                back = cytophen.gate(cytophen.read_fcs(path), ws.template(path.name))
            for pop, n in counts.items():
                assert back.count(pop) == n, (path.name, pop)


def test_valley_cuts_sit_in_valleys_of_the_parent_density(gated):
    """Every 1-D valley cut the shipped templates placed on a real file (and did not flag as a
    fallback) lies in a density valley of its parent's events: measured independently of the
    fit, on all the parent's events, the density at the cut is below the highest density on
    each side of it. A cut in the middle or on the flank of one cloud has a ratio of about 1;
    the fallbacks (one population: the spread rule) are flagged in the table instead."""
    import numpy as np

    from cytophen.datadriven._kde import density

    checked, worst = 0, []
    for case in rr.CASES:
        res, events = gated[case.id], None
        for pop, g in res.gates.items():
            geom = g.get("geometry")
            if g.get("method") != "valley" or g.get("fell_back") or not geom:
                continue
            assert geom["kind"] == "rectangle" and len(geom["dims"]) == 1, (case.id, pop)
            cut = geom["min"][0] if geom["min"][0] is not None else geom["max"][0]
            parent = res.template.population(pop).parent
            rows = res.membership(parent) if parent else np.ones(res.n_events, bool)
            events = res.events(None) if events is None else events
            x = events[geom["dims"][0]].to_numpy()[rows]
            grid, y, _ = density(x[np.isfinite(x)], adjust=1.0)
            ratio = np.interp(cut, grid, y) / min(y[grid < cut].max(), y[grid > cut].max())
            worst.append((round(float(ratio), 3), case.id, pop))
            checked += 1
    assert checked >= 60, checked
    bad = [w for w in worst if w[0] >= 0.95]
    assert not bad, bad
