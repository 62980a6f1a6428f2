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

ROOT = Path(__file__).resolve().parents[2]

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


#: Where the 2.0 templates (2-D gates on the views a cytometrist draws, chosen on real files)
#: fall short of the simulator's issue-5 bars at 100 000 events; docs/accuracy.md says why. Each
#: is a strict xfail: the day a bar holds again the test says so.
KNOWN_F1 = {
    "plasmablasts": "a third of the simulator's plasmablasts lie below the CD19 valley of B cells",
    "unswitched_memory": "the IgD+ CD27 valley sits in the memory cloud's lower tail (F1 0.93)",
    "activated_naive": "a sparse CD21lo CD11c+ cloud split by the density basins (F1 0.78)",
}
KNOWN_PP = {
    "lymphocytes": "the simulator counts lymphocyte doublets and dead lymphocytes as lymphocytes",
    "singlets": "percent of a lymphocyte gate without those doublets (follows lymphocytes)",
    "dn2": "DN2 percent of DN off by up to 4 pp on small DN gates",
}


def _known(population: str, known: dict[str, str]):
    if population in known:
        return pytest.param(
            population, marks=pytest.mark.xfail(strict=True, reason=known[population])
        )
    return population


@pytest.mark.slow
@pytest.mark.parametrize("population", [_known(p, KNOWN_F1) for p in MAJOR + RARE])
def test_f1_bar_on_every_file_at_100k_events(scores_100k, population):
    """Issue 5's F1 bar (>= 0.95 major, >= 0.85 rare) on 18 files per panel at 100 000 events."""
    rows = scores_100k[scores_100k["population"] == population]
    assert len(rows) in (18, 36), f"{population} scored on {len(rows)} files"
    bar = 0.95 if population in MAJOR else 0.85
    worst = rows.loc[rows["f1"].idxmin()]
    assert worst["f1"] >= bar, f"{population}: F1 {worst['f1']:.3f} on {worst['file']} (bar {bar})"


@pytest.mark.slow
@pytest.mark.parametrize("population", [_known(p, KNOWN_PP) for p in MAJOR + RARE])
def test_percent_of_parent_within_2pp_at_100k_events(scores_100k, population):
    """Issue 5's percent-of-parent bar (within 2 pp of the truth) on every file."""
    rows = scores_100k[scores_100k["population"] == population]
    worst = rows.loc[rows["abs_error_pp"].idxmax()]
    assert worst["abs_error_pp"] <= 2.0, (
        f"{population}: percent of parent off by {worst['abs_error_pp']:.2f} pp on {worst['file']}"
    )


#: The same at the demo's 30 000 events (seed 0, 16 files), where a DN gate holds 70-500 cells.
KNOWN_F1_30K = {
    "plasmablasts": KNOWN_F1["plasmablasts"],
    "activated_naive": KNOWN_F1["activated_naive"],
}
KNOWN_PP_30K = {
    **{p: KNOWN_PP[p] for p in ("lymphocytes", "singlets", "dn2")},
    "activated_naive": "3.3 pp on one file: the sparse cloud of ~60 cells split",
}


@pytest.mark.slow
@pytest.mark.parametrize("population", [_known(p, KNOWN_F1_30K) for p in MAJOR + RARE])
def test_f1_bar_at_30k_events(scores, population):
    rows = scores[scores["population"] == population]
    assert len(rows) >= 4, f"{population} scored on too few files"
    bar = 0.95 if population in MAJOR else 0.85
    worst = rows.loc[rows["f1"].idxmin()]
    assert worst["f1"] >= bar, f"{population}: F1 {worst['f1']:.3f} on {worst['file']} (bar {bar})"


@pytest.mark.slow
@pytest.mark.parametrize("population", [_known(p, KNOWN_PP_30K) for p in MAJOR + RARE])
def test_percent_of_parent_within_2pp_at_30k_events(scores, population):
    rows = scores[scores["population"] == population]
    worst = rows.loc[rows["abs_error_pp"].idxmax()]
    assert worst["abs_error_pp"] <= 2.0, (
        f"{population}: percent of parent off by {worst['abs_error_pp']:.2f} pp on {worst['file']}"
    )


@pytest.mark.slow
def test_dn1_percent_of_dn_is_not_biased(scores):
    """dn1 is not an issue-5 population, but its percent of DN is a reported result: over this
    test's files it must be unbiased (mean signed error within 1 pp) and F1 >= 0.90 on every
    file."""
    rows = scores[scores["population"] == "dn1"]
    assert len(rows) >= 4
    err = rows["percent_of_parent_gated"] - rows["percent_of_parent_true"]
    assert abs(err.mean()) <= 1.0, f"dn1 % of DN biased by {err.mean():+.2f} pp on average"
    assert rows["f1"].min() >= 0.90, rows.loc[rows["f1"].idxmin(), ["file", "f1"]].to_dict()


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="one 30 000-event file 3.02 pp low (DN of ~100 cells)")
def test_dn1_percent_of_dn_never_far_off(scores):
    rows = scores[scores["population"] == "dn1"]
    err = rows["percent_of_parent_gated"] - rows["percent_of_parent_true"]
    i = err.abs().idxmax()
    assert abs(err[i]) <= 3.0, f"dn1 off by {err[i]:+.2f} pp on {rows.loc[i, 'file']}"


@pytest.mark.slow
def test_no_population_is_silently_unmeasured(scores):
    # every bar population was measured (a declined fit would score F1 0 or NaN percentages)
    sub = scores[scores["population"].isin(MAJOR + RARE)]
    assert sub["percent_of_parent_gated"].notna().all()
