"""Accuracy of the shipped templates' data-driven gates against the simulator's per-event truth.

A fresh, CI-sized cohort is simulated (``cytophen.simulate.simulate_cohort``: file-to-file drift,
subject-specific frequencies) and a subset of its files is gated with gating_templates/bcell.yaml
and treg.yaml exactly as shipped. Every score is computed by ``cytophen.simulate.score`` against the
truth the simulator wrote; the bars are those of issue 5. The full-cohort table is in
docs/accuracy.md (``benchmarks/bench_datadriven.py --accuracy DIR``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import cytophen
from cytophen.simulate.cohort import simulate_cohort
from cytophen.simulate.files import read_truth
from cytophen.simulate.scoring import score

ROOT = Path(__file__).resolve().parents[1]

MAJOR = ["lymphocytes", "singlets", "live", "b_cells", "cd4", "naive", "unswitched_memory",
         "switched_memory", "dn"]  # fmt: skip
RARE = ["transitional", "plasmablasts", "activated_naive", "dn2", "treg", "helios_pos_treg"]


def _scored(out: Path, picked: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for panel in ("bcell", "treg"):
        template = cytophen.load_template(ROOT / "gating_templates" / f"{panel}.yaml")
        for f in picked.loc[picked["panel"] == panel, "file"]:
            r = cytophen.gate(cytophen.read_fcs(out / f), template)
            sc = score(r, read_truth(out / f))
            sc["file"] = f
            frames.append(sc)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("cohort")
    cohort = simulate_cohort(out, seed=0, events=30_000, jobs=2)  # the cohort of docs/accuracy.md
    man = cohort.manifest
    return _scored(
        out, man[man["subject"].isin(["P01", "P04", "P05", "P06"]) & man["week"].isin([1, 4])]
    )


@pytest.fixture(scope="module")
def scores_100k(tmp_path_factory) -> pd.DataFrame:
    """Seed 22 at 100 000 events per file: a cohort no gate was chosen on (simulated after the
    last template change), acquired at the depth a rare-B-cell panel is run at, where the small
    parents (DN: 200-800 events) no longer make one cell worth 0.5-1.5 pp."""
    out = tmp_path_factory.mktemp("cohort100k")
    man = simulate_cohort(out, seed=22, events=100_000, jobs=2).manifest
    return _scored(out, man[man["week"].isin([1, 4, 12])])


@pytest.mark.slow
@pytest.mark.parametrize("population", MAJOR + RARE)
def test_membership_f1_and_percent_of_parent_meet_the_issue_bar(scores, population):
    """The issue-5 bar itself (F1 >= 0.95 major / 0.85 rare, percent of parent within 2 pp on
    every file), for every population of the bar."""
    rows = scores[scores["population"] == population]
    assert len(rows) >= 4, f"{population} scored on too few files"
    _assert_bar(rows, population)


@pytest.mark.slow
@pytest.mark.parametrize("population", MAJOR + RARE)
def test_every_bar_on_every_file_at_100k_events(scores_100k, population):
    """The issue-5 bar, with no exception, on 18 files per panel of a cohort at 100 000 events."""
    rows = scores_100k[scores_100k["population"] == population]
    assert len(rows) in (18, 36), f"{population} scored on {len(rows)} files"  # one or both panels
    _assert_bar(rows, population)


def _assert_bar(rows: pd.DataFrame, population: str) -> None:
    """F1 >= 0.95 (major) / 0.85 (rare) and percent of parent within 2 pp, on every row."""
    bar = 0.95 if population in MAJOR else 0.85
    worst = rows.loc[rows["f1"].idxmin()]
    assert worst["f1"] >= bar, f"{population}: F1 {worst['f1']:.3f} on {worst['file']} (bar {bar})"
    worst = rows.loc[rows["abs_error_pp"].idxmax()]
    assert worst["abs_error_pp"] <= 2.0, (
        f"{population}: percent of parent off by {worst['abs_error_pp']:.2f} pp on {worst['file']}"
    )


@pytest.mark.slow
def test_dn1_percent_of_dn_is_not_biased(scores):
    """dn1 is not an issue-5 population, but its percent of DN is a reported result: over this
    test's files it must be unbiased (mean signed error within 1 pp; the former CD21/CD11c box
    was 1.5 pp low here), never far off (3 pp) and still F1 >= 0.90 on every file."""
    rows = scores[scores["population"] == "dn1"]
    assert len(rows) >= 4
    err = rows["percent_of_parent_gated"] - rows["percent_of_parent_true"]
    assert abs(err.mean()) <= 1.0, f"dn1 % of DN biased by {err.mean():+.2f} pp on average"
    i = err.abs().idxmax()
    assert abs(err[i]) <= 3.0, f"dn1 off by {err[i]:+.2f} pp on {rows.loc[i, 'file']}"
    assert rows["f1"].min() >= 0.90, rows.loc[rows["f1"].idxmin(), ["file", "f1"]].to_dict()


@pytest.mark.slow
def test_no_population_is_silently_unmeasured(scores):
    # every bar population was measured (a declined fit would score F1 0 or NaN percentages)
    sub = scores[scores["population"].isin(MAJOR + RARE)]
    assert sub["percent_of_parent_gated"].notna().all()
