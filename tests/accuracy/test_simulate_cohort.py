"""The study cohort preset and the ``cytophen simulate`` / ``cytophen score`` commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import cytophen
from cytophen.cli import main
from cytophen.simulate import read_truth, simulate_sample
from cytophen.simulate.cohort import HELIOS_GAINERS, RESPONDERS, SUBJECTS, VISITS

EVENTS = 4000
TREG = str(Path(__file__).resolve().parents[2] / "gating_templates" / "treg.yaml")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    rc = main(
        ["simulate", "--out", str(out), "--cohort", "study", "--events", str(EVENTS), "--seed", "1"]
    )
    assert rc == 0
    return out


def _fraction(path, child, parent) -> float:
    t = read_truth(path)
    return t[child].sum() / max(1, t[parent].sum())


def test_cohort_files_manifest_and_clinical(cohort):
    man = pd.read_csv(cohort / "manifest.csv")
    assert list(man.columns) == ["sample", "file", "subject", "visit", "week", "panel"]
    assert len(man) == 6 * 5 * 2
    assert set(man["subject"]) == set(SUBJECTS)
    assert sorted(set(man["week"])) == [0, 1, 4, 12, 20]
    assert "P01_W00_bcell.fcs" in set(man["file"]) and "P06_W20_treg.fcs" in set(man["file"])
    for f in man["file"]:
        assert (cohort / f).exists()
        assert (cohort / f.replace(".fcs", ".truth.parquet")).exists()
    s = cytophen.read_fcs(cohort / "P03_W04_treg.fcs")
    assert s.n_events == EVENTS and "FoxP3" in s.markers and s.spillover is not None
    assert s.keyword("$SRC") == "P03" and s.keyword("VISIT") == "W4"

    cl = pd.read_csv(cohort / "clinical.csv", keep_default_na=False)
    assert list(cl.columns) == [
        "subject",
        "visit",
        "week",
        "SLEDAI",
        "PGA",
        "prednisone_mg",
        "sri4",
        "responder",
    ]
    assert len(cl) == 30
    assert set(cl.loc[cl["responder"] == "yes", "subject"]) == set(RESPONDERS)
    assert set(cl.loc[cl["responder"] == "no", "subject"]) == set(SUBJECTS) - set(RESPONDERS)
    # SRI-4 is assessed from week 12 on, and agrees with the SLEDAI drop of >= 4
    assert (cl.loc[cl["week"] < 12, "sri4"] == "").all()
    late = cl[cl["week"] >= 12]
    assert set(late["sri4"]) <= {"responder", "non_responder"}
    base = cl[cl["week"] == 0].set_index("subject")["SLEDAI"]
    drop = base[late["subject"]].to_numpy() - late["SLEDAI"].to_numpy()
    assert (drop[(late["sri4"] == "responder").to_numpy()] >= 4).all()
    assert (late.loc[drop < 4, "sri4"] == "non_responder").all()
    assert set(late.loc[late["responder"] == "yes", "sri4"]) == {"responder"}
    assert set(late.loc[late["responder"] == "no", "sri4"]) == {"non_responder"}
    # the merge of the clinical stage accepts both tables as written
    from cytophen.clinical import merge

    pops = pd.DataFrame({"sample": man["sample"], "population": "x", "count": 1})
    res = merge(pops, cl, man)
    assert res.ok, res.problems


def test_responders_b_cell_trajectories_from_truth(cohort):
    """DN, switched memory and activated naive fall and transitional rises in responders (pooled
    truth counts W0 vs W20); the non-responder's DN does not fall by half."""

    def pooled(subjects, week, child, parent):
        k = n = 0
        for s in subjects:
            t = read_truth(cohort / f"{s}_W{week:02d}_bcell.fcs")
            k += int(t[child].sum())
            n += int(t[parent].sum())
        return k / n

    for child, parent, direction in [
        ("dn", "non_plasmablast_b", -1),
        ("switched_memory", "non_plasmablast_b", -1),
        ("activated_naive", "naive", -1),
        ("transitional", "naive", +1),
    ]:
        w0, w20 = pooled(RESPONDERS, 0, child, parent), pooled(RESPONDERS, 20, child, parent)
        assert direction * (w20 - w0) > 0.2 * w0, (child, w0, w20)
    nr = [s for s in SUBJECTS if s not in RESPONDERS]
    assert pooled(nr, 20, "dn", "non_plasmablast_b") > 0.6 * pooled(
        nr, 0, "dn", "non_plasmablast_b"
    )


def test_helios_gainers(cohort):
    for s in HELIOS_GAINERS:
        w0 = _fraction(cohort / f"{s}_W00_treg.fcs", "helios_pos_treg", "treg")
        w20 = _fraction(cohort / f"{s}_W20_treg.fcs", "helios_pos_treg", "treg")
        assert w20 > w0 + 0.12, (s, w0, w20)


def test_dn_change_correlates_with_sledai_change(cohort):
    cl = pd.read_csv(cohort / "clinical.csv", keep_default_na=False).set_index(["subject", "visit"])
    d_dn, d_sledai = [], []
    for s in SUBJECTS:
        base = _fraction(cohort / f"{s}_W00_bcell.fcs", "dn", "non_plasmablast_b")
        for visit, week in VISITS[1:]:
            d_dn.append(
                _fraction(cohort / f"{s}_W{week:02d}_bcell.fcs", "dn", "non_plasmablast_b") - base
            )
            d_sledai.append(cl.loc[(s, visit), "SLEDAI"] - cl.loc[(s, "W0"), "SLEDAI"])
    rho, p = spearmanr(d_dn, d_sledai)
    assert rho > 0.5 and p < 0.01


def test_cohort_is_deterministic(cohort, tmp_path):
    rc = main(
        [
            "simulate",
            "--out",
            str(tmp_path),
            "--cohort",
            "study",
            "--events",
            str(EVENTS),
            "--seed",
            "1",
            "--panel",
            "treg",
        ]
    )
    assert rc == 0
    for name in ("P02_W04_treg.fcs", "P02_W04_treg.truth.parquet", "clinical.csv"):
        assert (tmp_path / name).read_bytes() == (cohort / name).read_bytes()
    assert not (tmp_path / "P02_W04_bcell.fcs").exists()


def test_simulate_cli_files(tmp_path):
    rc = main(
        [
            "simulate",
            "--out",
            str(tmp_path),
            "--panel",
            "bcell",
            "--files",
            "2",
            "--events",
            "1500",
            "--seed",
            "7",
        ]
    )
    assert rc == 0
    for seed in (7, 8):
        s = cytophen.read_fcs(tmp_path / f"sim_bcell_s{seed}.fcs")
        np.testing.assert_array_equal(
            s.events, simulate_sample("bcell", seed=seed, events=1500).events
        )
        assert s.keyword("SIM_SEED") == str(seed)
    assert not list(tmp_path.glob("*treg*"))


def test_simulate_cli_bad_invocation(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), "--panel", "tcell"]) == 2
    assert main(["simulate", "--out", str(tmp_path), "--events", "0"]) == 2


def test_score_cli(cohort, tmp_path, capsys):
    files = [str(cohort / "P01_W00_treg.fcs"), str(cohort / "P05_W20_treg.fcs")]
    out = tmp_path / "scores.csv"
    rc = main(["score", "--template", TREG, *files, "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out)
    assert {
        "sample",
        "population",
        "f1",
        "precision",
        "recall",
        "abs_error_pp",
        "percent_of_parent_true",
        "percent_of_parent_gated",
    } <= set(df.columns)
    assert set(df["sample"]) == {"P01_W00_treg", "P05_W20_treg"}
    assert set(df["population"]) == {
        "lymphocytes",
        "singlets",
        "live",
        "t_cells",
        "cd4",
        "cd8",
        "treg",
        "helios_pos_treg",
        "helios_neg_treg",
    }
    printed = capsys.readouterr().out
    assert "f1_mean" in printed and "t_cells" in printed


def test_score_cli_file_without_truth(cohort, tmp_path, capsys):
    shutil.copy(cohort / "P01_W00_treg.fcs", tmp_path / "lonely_treg.fcs")
    shutil.copy(cohort / "P01_W01_treg.fcs", tmp_path / "P01_W01_treg.fcs")
    shutil.copy(cohort / "P01_W01_treg.truth.parquet", tmp_path / "P01_W01_treg.truth.parquet")
    rc = main(
        [
            "score",
            "--template",
            TREG,
            str(tmp_path / "lonely_treg.fcs"),
            str(tmp_path / "P01_W01_treg.fcs"),
        ]
    )
    assert rc == 1
    assert "no ground truth next to it" in capsys.readouterr().err
    assert main(["score", "--template", TREG, str(tmp_path / "none")]) == 2
