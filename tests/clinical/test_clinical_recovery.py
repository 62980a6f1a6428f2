"""The study analysis recovers what the simulator built into the lupus cohort (issue 8, item 5).

Responders' DN, switched memory and activated naive B cells fall and transitional B cells rise;
DN change correlates positively with SLEDAI change. Checked twice: on the simulator's per-event
truth (the statistics alone) and on cytophen's own gating of the files (the whole pipeline).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import cytophen
from cytophen.clinical import analyse, merge, read_clinical, read_manifest
from cytophen.simulate import read_truth, simulate_cohort

ROOT = Path(__file__).resolve().parents[2]
FALLING = ("dn", "switched_memory", "activated_naive")
RISING = ("transitional",)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    simulate_cohort(out, seed=11, events=20_000, panels=("bcell",), jobs=2)
    return out


def _truth_table(cohort: Path, template) -> pd.DataFrame:
    rows = []
    for fcs in sorted(cohort.glob("*_bcell.fcs")):
        truth = read_truth(fcs)
        for pop in template.populations:
            if pop.name not in truth.columns:
                continue
            c = int(truth[pop.name].sum())
            parent = pop.parent
            while parent is not None and parent not in truth.columns:  # e.g. the CD3- dump step
                parent = template.population(parent).parent
            pc = int(truth[parent].sum()) if parent else len(truth)
            rows.append(
                dict(
                    sample=fcs.stem,
                    file=str(fcs),
                    population=pop.name,
                    count=c,
                    percent_of_parent=100.0 * c / pc if pc else float("nan"),
                )
            )
    return pd.DataFrame(rows)


def _check_recovery(pops: pd.DataFrame, cohort: Path) -> None:
    merged = merge(
        pops, read_clinical(cohort / "clinical.csv"), read_manifest(cohort / "manifest.csv")
    )
    assert merged.problems[merged.problems["kind"] != "clinical_row_without_samples"].empty, (
        merged.problems
    )
    res = analyse(merged.table, baseline="W0", outcome="SLEDAI", group="responder")
    last = res.tests[(res.tests["group"] == "yes")]
    w20 = last[last["visit"].map(lambda v: str(v).upper() in ("W20", "W020"))].set_index(
        "population"
    )
    assert len(w20), res.tests
    for pop in FALLING:
        assert w20.loc[pop, "median_change"] < 0, (pop, w20.loc[pop].to_dict())
        assert w20.loc[pop, "n"] == 5
    for pop in RISING:
        assert w20.loc[pop, "median_change"] > 0, (pop, w20.loc[pop].to_dict())
    cor = res.correlations.set_index(["method", "population"])
    # within subjects, over all 5 visits of the 6 subjects (df = 30 - 6 - 1), DN falls with SLEDAI
    rm = cor.loc[("rmcorr", "dn")]
    assert rm["df"] == 23 and rm["n"] == 6, rm.to_dict()
    assert rm["r"] > 0.5 and rm["p_adj"] < 0.05, rm.to_dict()
    # one value per subject at the last visit: the same sign, with n = 6 (p is not asserted: with
    # 6 subjects the exact test needs rho >= 0.89 for p < 0.05)
    sp = cor.loc[("spearman", "dn")]
    assert sp["visit"] == "W20" and sp["n"] == 6 and sp["r"] > 0, sp.to_dict()
    # responders against the non-responder: 5 vs 1 subjects can never give p < 0.05, and say so
    g = res.groups[(res.groups["population"] == "dn") & (res.groups["visit"] == "W20")].iloc[0]
    assert (g["n_a"], g["n_b"]) == (1, 5) and g["min_p"] == pytest.approx(1 / 3)
    assert "no p below 0.05 is possible" in g["warning"]
    # the non-responder does not show the responders' fall in DN
    ch = res.changes[(res.changes["population"] == "dn") & (res.changes["group"] == "no")]
    resp = res.changes[(res.changes["population"] == "dn") & (res.changes["group"] == "yes")]
    assert ch["change"].median() > resp["change"].median()


def test_statistics_recover_the_design_from_truth(cohort):
    template = cytophen.load_template(ROOT / "gating_templates" / "bcell.yaml")
    _check_recovery(_truth_table(cohort, template), cohort)


@pytest.mark.slow
def test_whole_pipeline_recovers_the_design(cohort):
    template = cytophen.load_template(ROOT / "gating_templates" / "bcell.yaml")
    files = sorted(cohort.glob("*_bcell.fcs"))
    tables = [cytophen.gate(cytophen.read_fcs(f), template).table for f in files]
    _check_recovery(pd.concat(tables, ignore_index=True), cohort)
