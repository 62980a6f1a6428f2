"""Manifest, merge and longitudinal statistics against hand-computed values on tiny tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytophen.clinical import (
    analyse,
    changes,
    correlations,
    manifest_from_pattern,
    merge,
    paired_tests,
    parse_visit,
    read_manifest,
)
from cytophen.clinical.stats import bh_adjust
from cytophen.errors import ClinicalError


def _pops(samples, pops=("dn",), values=None):
    rows = []
    for i, s in enumerate(samples):
        for j, p in enumerate(pops):
            v = values[i][j] if values is not None else 10.0
            rows.append(
                dict(
                    sample=s,
                    file=f"/data/{s}.fcs",
                    population=p,
                    parent="b",
                    count=100,
                    percent_of_parent=v,
                )
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "label,week",
    [
        ("W0", 0),
        ("W00", 0),
        ("w12", 12),
        ("Week 4", 4),
        ("wk-20", 20),
        ("baseline", 0),
        ("BL", 0),
        ("D14", 2),
        ("day 7", 1),
        (3, 3),
        ("12", 12),
        ("visit?", None),
        ("", None),
        ("W1a", None),
    ],
)
def test_parse_visit(label, week):
    assert parse_visit(label) == week


def test_manifest_from_pattern_and_errors():
    m = manifest_from_pattern(
        ["/x/P01_W04_bcell.fcs", "P02_W00_bcell.fcs"], r"(?P<subject>P\d+)_(?P<visit>W\d+)"
    )
    assert list(m["subject"]) == ["P01", "P02"]
    assert list(m["visit"]) == ["W04", "W00"]
    assert list(m["sample"]) == ["P01_W04_bcell", "P02_W00_bcell"]
    with pytest.raises(ClinicalError, match="does not match: junk.fcs"):
        manifest_from_pattern(["junk.fcs"], r"(?P<subject>P\d+)_(?P<visit>W\d+)")
    with pytest.raises(ClinicalError, match="no named groups"):
        manifest_from_pattern(["a"], r"P\d+")


def test_read_manifest_checks(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("file,subject,visit\nP1_W0.fcs,P1,W0\nsub/P1_W0.fcs,P1,W1\n")
    with pytest.raises(ClinicalError, match="sample ids repeat: P1_W0"):
        read_manifest(p)
    p.write_text("name,subject\nx,1\n")
    with pytest.raises(ClinicalError, match="needs a 'file' or 'sample' column"):
        read_manifest(p)


def test_merge_matches_visits_by_week_and_reports_every_problem():
    pops = _pops(["P1_W0", "P1_W4", "P2_W0", "P3_W0"])
    man = pd.DataFrame(
        {
            "sample": ["P1_W0", "P1_W4", "P2_W0"],
            "subject": ["P1", "P1", "P2"],
            "visit": ["W00", "W04", "W00"],
        }
    )
    clin = pd.DataFrame(
        {
            "subject": ["P1", "P1", "P2", "P2", "P4", "P1"],
            "visit": ["W0", "week 4", "W0", "W0", "W0", "Wx"],
            "SLEDAI": [10, 6, 8, 9, 5, 1],
        }
    )
    res = merge(pops, clin, man)
    kinds = sorted(res.problems["kind"])
    assert kinds == sorted(
        [
            "sample_not_in_manifest",  # P3_W0
            "duplicate_clinical_row",  # P2 W0 twice
            "clinical_row_without_samples",  # P4 W0
            "clinical_row_without_samples",  # P1 Wx
            "visit_does_not_parse",  # Wx
        ]
    )
    t = res.table.set_index("sample")
    assert (
        t.loc["P1_W0", "SLEDAI"] == 10 and t.loc["P1_W4", "SLEDAI"] == 6
    )  # W00 = W0, W04 = week 4
    assert pd.isna(t.loc["P2_W0", "SLEDAI"])  # duplicate clinical rows: none used, reported
    assert "P3_W0" in t.index  # kept, not dropped
    assert list(res.table.columns[:5]) == ["sample", "subject", "visit", "week", "population"]
    with pytest.raises(ClinicalError, match="merge found problems"):
        merge(pops, clin, man, strict=True)


def test_merge_by_file_name_when_manifest_has_files_only():
    pops = _pops(["a", "b"])
    man = pd.DataFrame(
        {"file": ["a.fcs", "elsewhere/b.fcs"], "subject": ["S1", "S1"], "visit": ["W0", "W1"]}
    )
    clin = pd.DataFrame({"subject": ["S1", "S1"], "visit": ["W0", "W1"], "PGA": [1.0, 0.5]})
    res = merge(pops, clin, man)
    assert res.ok, res.problems
    assert dict(zip(res.table["sample"], res.table["PGA"])) == {"a": 1.0, "b": 0.5}


def _study():
    # 5 subjects, baseline W0 and W12; values chosen by hand.
    subj = ["S1", "S2", "S3", "S4", "S5"]
    base = [10.0, 20.0, 30.0, 40.0, 50.0]
    w12 = [8.0, 19.0, 27.0, 36.0, 45.0]  # changes -2, -1, -3, -4, -5 (all negative)
    sled0 = [12, 10, 14, 8, 16]
    sled12 = [10, 10, 9, 2, 8]  # changes -2, 0, -5, -6, -8
    rows, clin = [], []
    for s, b, w, a0, a12 in zip(subj, base, w12, sled0, sled12):
        for vis, v, a in (("W0", b, a0), ("W12", w, a12)):
            rows.append(
                dict(
                    sample=f"{s}_{vis}",
                    subject=s,
                    visit=vis,
                    population="dn",
                    percent_of_parent=v,
                    responder="yes" if s != "S2" else "no",
                )
            )
            clin.append(dict(subject=s, visit=vis, SLEDAI=a))
    return pd.DataFrame(rows), pd.DataFrame(clin)


def test_changes_tests_correlations_by_hand():
    pops, clin = _study()
    merged = merge(pops.drop(columns="responder"), clin).table.merge(
        pops[["sample", "responder"]], on="sample"
    )
    ch = changes(merged, baseline="W0", outcome="SLEDAI", group="responder")
    assert list(ch["change"]) == [-2.0, -1.0, -3.0, -4.0, -5.0]
    assert ch["relative_change"].tolist() == pytest.approx([-0.2, -0.05, -0.1, -0.1, -0.1])
    assert list(ch["SLEDAI_change"]) == [-2, 0, -5, -6, -8]
    tests = paired_tests(ch)
    overall = tests[(tests["group"] == "all")].iloc[0]
    # all 5 changes negative: W = 0, exact two-sided p = 2 / 2**5
    assert (
        overall["n"] == 5
        and overall["statistic"] == 0
        and overall["p_value"] == pytest.approx(0.0625)
    )
    assert overall["median_change"] == -3.0
    yes = tests[tests["group"] == "yes"].iloc[0]
    assert yes["n"] == 4 and yes["p_value"] == pytest.approx(2 / 2**4)
    cor = correlations(ch, "SLEDAI").set_index("method")
    # ranks of x: -2->4, -1->5, -3->3, -4->2, -5->1; of y: -2->4, 0->5, -5->3, -6->2, -8->1: identical
    # so rho = 1, and only the identity and the reversal of 5! pairings reach |rho| = 1: p = 2/120
    assert cor.loc["spearman", "n"] == 5 and cor.loc["spearman", "r"] == pytest.approx(1.0)
    assert cor.loc["spearman", "p_value"] == pytest.approx(2 / 120)
    assert cor.loc["spearman", "visit"] == "W12"
    # rmcorr: 5 subjects x 2 visits (baseline and W12), df = 10 - 5 - 1 = 4
    assert cor.loc["rmcorr", "n_observations"] == 10 and cor.loc["rmcorr", "df"] == 4


def test_spearman_by_hand_value():
    ch = pd.DataFrame(
        {
            "subject": ["S1", "S2", "S3", "S4", "S5"],
            "population": ["p"] * 5,
            "visit": ["W4"] * 5,
            "week": [4] * 5,
            "baseline": [10.0] * 5,
            "change": [1, 2, 3, 4, 5],
            "x_baseline": [8.0] * 5,
            "x_change": [2, 1, 4, 3, 5],
        }
    )
    cor = correlations(ch, "x").set_index("method")
    # d = [-1, 1, -1, 1, 0], sum d^2 = 4, rho = 1 - 6*4/(5*24) = 0.8
    assert cor.loc["spearman", "r"] == pytest.approx(0.8)


def test_bh_by_hand():
    # sorted p 0.01, 0.03, 0.04 -> 0.03, 0.045, 0.04 -> monotone: 0.03, 0.04, 0.04
    assert bh_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.04, 0.04])
    out = bh_adjust([0.01, np.nan])
    assert out[0] == pytest.approx(0.01) and np.isnan(out[1])


def test_changes_errors_are_clear():
    pops, clin = _study()
    with pytest.raises(ClinicalError, match="baseline visit 'W99' does not occur"):
        changes(pops, baseline="W99")
    with pytest.raises(ClinicalError, match="no column"):
        changes(pops, value="percent_of_cd4")
    dup = pd.concat([pops, pops.iloc[[0]]])
    with pytest.raises(ClinicalError, match="more than one value"):
        changes(dup)


def test_panel_prefix_when_two_panels_share_a_population():
    rows = []
    for panel in ("bcell", "treg"):
        for vis, v in (("W0", 1.0), ("W4", 2.0)):
            rows.append(
                dict(
                    sample=f"S1_{vis}_{panel}",
                    subject="S1",
                    visit=vis,
                    panel=panel,
                    population="lymphocytes",
                    percent_of_parent=v,
                )
            )
    ch = changes(pd.DataFrame(rows), outcome=None)
    assert sorted(ch["population"]) == ["bcell:lymphocytes", "treg:lymphocytes"]


def test_analyse_writes_tables_and_plots(tmp_path):
    pops, clin = _study()
    merged = merge(pops, clin).table
    res = analyse(merged, baseline="W0", outcome="SLEDAI", group="responder")
    paths = res.write(tmp_path)
    names = {p.name for p in paths}
    assert {
        "changes.csv",
        "tests.csv",
        "correlations.csv",
        "heatmap.png",
        "trajectories_dn.png",
        "scatter_dn.png",
    } <= names
    tests = pd.read_csv(tmp_path / "tests.csv")
    assert list(tests.columns) == [
        "population",
        "visit",
        "group",
        "n",
        "median_change",
        "statistic",
        "p_value",
        "p_adj",
        "min_p",
        "warning",
    ]
    cor = pd.read_csv(tmp_path / "correlations.csv")
    assert list(cor.columns) == [
        "population",
        "outcome",
        "method",
        "visit",
        "n",
        "n_observations",
        "df",
        "r",
        "p_value",
        "p_adj",
        "min_p",
        "warning",
    ]
    assert "groups.csv" in names
    ch = pd.read_csv(tmp_path / "changes.csv")
    assert list(ch.columns[:8]) == [
        "subject",
        "visit",
        "week",
        "population",
        "value",
        "baseline",
        "change",
        "relative_change",
    ]


def test_cli_merge_and_stats(tmp_path):
    from cytophen.cli import main

    pops, clin = _study()
    res_dir = tmp_path / "results"
    res_dir.mkdir()
    pops.drop(columns=["subject", "visit"]).to_csv(res_dir / "populations.csv", index=False)
    clin.to_csv(tmp_path / "clinical.csv", index=False)
    merged = tmp_path / "merged.csv"
    rc = main(
        [
            "merge",
            str(res_dir),
            "--clinical",
            str(tmp_path / "clinical.csv"),
            "--pattern",
            r"(?P<subject>S\d+)_(?P<visit>W\d+)",
            "--out",
            str(merged),
        ]
    )
    assert rc == 0
    m = pd.read_csv(merged)
    assert m["SLEDAI"].notna().all() and len(m) == 10
    rc = main(
        [
            "stats",
            str(merged),
            "--baseline",
            "W0",
            "--outcome",
            "SLEDAI",
            "--group",
            "responder",
            "--out",
            str(tmp_path / "stats"),
        ]
    )
    assert rc == 0
    assert (tmp_path / "stats" / "tests.csv").exists()
    assert (
        main(
            [
                "merge",
                str(tmp_path / "nope"),
                "--clinical",
                str(tmp_path / "clinical.csv"),
                "--out",
                str(merged),
            ]
        )
        == 2
    )
