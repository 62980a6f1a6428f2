"""The subject is the unit: statistics on hand-built cohorts whose answers are worked out in the
comments (rank sums, counted permutations, within-subject sums of squares), never recomputed
with cytophen's own functions."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as _st

from cytophen.clinical import analyse, changes, common_visit, correlations, group_tests

# Six subjects, visits W0, W4, W12. Changes from baseline of population "a" (x) and of SLEDAI (y)
# at W4 and W12 (baseline values: population 20 % for everyone, SLEDAI 12):
#
#   subject  x (W4, W12)  y (W4, W12)  group
#   S1       -1, -2       -2,  -4      no
#   S2       -2, -4       -3,  -6      yes
#   S3       -3, -3       -4,  -2      no
#   S4        0, -6       -1,  -8      yes
#   S5        2, -8        1, -10      yes
#   S6       -2, -1       -3,   0      no
A_X = {"S1": (-1, -2), "S2": (-2, -4), "S3": (-3, -3), "S4": (0, -6), "S5": (2, -8), "S6": (-2, -1)}
Y = {"S1": (-2, -4), "S2": (-3, -6), "S3": (-4, -2), "S4": (-1, -8), "S5": (1, -10), "S6": (-3, 0)}
# Population "b": the reverse of SLEDAI at W12 (its W4 values are not used by any assertion).
B_X = {"S1": (-1, -4), "S2": (-1, -3), "S3": (-2, -5), "S4": (-1, -2), "S5": (0, 1), "S6": (-3, -6)}
GROUP = {"S1": "no", "S2": "yes", "S3": "no", "S4": "yes", "S5": "yes", "S6": "no"}


def _merged(with_helper: bool = True) -> pd.DataFrame:
    rows = []
    pops = {"a": A_X, "b": B_X}
    if with_helper:
        pops["h"] = A_X  # a helper population: same values as "a", hidden
    for subj in A_X:
        for j, (vis, week) in enumerate((("W0", 0), ("W4", 4), ("W12", 12))):
            sledai = 12 + (0 if j == 0 else Y[subj][j - 1])
            for pop, x in pops.items():
                rows.append(
                    dict(
                        sample=f"{subj}_{vis}",
                        subject=subj,
                        visit=vis,
                        week=week,
                        population=pop,
                        percent_of_parent=20.0 + (0 if j == 0 else x[subj][j - 1]),
                        hidden=pop == "h",
                        SLEDAI=sledai,
                        responder=GROUP[subj],
                    )
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def result():
    return analyse(_merged(), baseline="W0", outcome="SLEDAI", group="responder")


def test_helper_populations_are_left_out(result):
    assert result.helpers == ["h"]
    for t in (result.changes, result.tests, result.groups, result.correlations):
        assert set(t["population"]) == {"a", "b"}


def test_spearman_one_value_per_subject_at_the_last_common_visit(result):
    cor = result.correlations.set_index(["method", "population"])
    a = cor.loc[("spearman", "a")]
    # Every subject has W4 and W12, so the visit is W12.
    # a at W12: x = -2 -4 -3 -6 -8 -1 (S1..S6) ranks 5 3 4 2 1 6; y = -4 -6 -2 -8 -10 0 ranks
    # 4 3 5 2 1 6; d = 1 0 -1 0 0 0, sum d^2 = 2: rho = 1 - 6*2 / (6*35) = 33/35.
    # Exact p: of the 6! = 720 pairings, sum d^2 <= 2 for the identity and the 5 swaps of
    # neighbours (6), and by symmetry 6 reach rho <= -33/35: p = 12/720 = 1/60.
    assert (a["visit"], a["n"]) == ("W12", 6)
    assert a["r"] == pytest.approx(33 / 35)
    assert a["p_value"] == pytest.approx(1 / 60)
    # b at W12: x = -4 -3 -5 -2 1 -6 ranks 3 4 2 5 6 1, y ranks 4 3 5 2 1 6: every rank sum is 7,
    # rho = -1; only the reversal and the identity reach |rho| = 1: p = 2/720 = 1/360.
    b = cor.loc[("spearman", "b")]
    assert b["r"] == pytest.approx(-1.0) and b["p_value"] == pytest.approx(1 / 360)
    # BH over a and b only (the helper h, a copy of a, is out): sorted p 1/360, 1/60 ->
    # 1/360 * 2/1 = 1/180 and 1/60 * 2/2 = 1/60. With h counted b's would be 3/360 = 1/120.
    assert b["p_adj"] == pytest.approx(1 / 180) and a["p_adj"] == pytest.approx(1 / 60)
    # smallest possible exact p with 6 subjects: 2/720
    assert a["min_p"] == pytest.approx(2 / 720) and a["warning"] == ""


def test_rmcorr_states_its_degrees_of_freedom(result):
    rm = result.correlations.set_index(["method", "population"]).loc[("rmcorr", "a")]
    # Each subject's 3 visits (baseline = 0 change) centred on the subject's mean:
    #   S1 x 0 -1 -2 -> 1 0 -1, y 0 -2 -4 -> 2 0 -2: Sxx 2, Syy 8, Sxy 4
    #   S2 x 0 -2 -4 -> 2 0 -2, y 0 -3 -6 -> 3 0 -3: Sxx 8, Syy 18, Sxy 12
    #   S3 x 0 -3 -3 -> 2 -1 -1, y 0 -4 -2 -> 2 -2 0: Sxx 6, Syy 8, Sxy 6
    #   S4 x 0 0 -6 -> 2 2 -4, y 0 -1 -8 -> 3 2 -5: Sxx 24, Syy 38, Sxy 30
    #   S5 x 0 2 -8 -> 2 4 -6, y 0 1 -10 -> 3 4 -7: Sxx 56, Syy 74, Sxy 64
    #   S6 x 0 -2 -1 -> 1 -1 0, y 0 -3 0 -> 1 -2 1: Sxx 2, Syy 6, Sxy 3
    # r = 119 / sqrt(98 * 152); df = 18 observations - 6 subjects - 1 = 11;
    # p = two-sided t tail of t = r * sqrt(df / (1 - r^2)) with 11 df.
    r = 119 / math.sqrt(98 * 152)
    t = r * math.sqrt(11 / (1 - r * r))
    assert (rm["n"], rm["n_observations"], rm["df"]) == (6, 18, 11)
    assert rm["r"] == pytest.approx(r)
    assert rm["p_value"] == pytest.approx(2 * _st.t.sf(t, 11))
    assert rm["visit"] == "all"


def test_wilcoxon_against_baseline_and_bh_without_helpers(result):
    t = result.tests
    t = t[(t["group"] == "all") & (t["visit"] == "W12")].set_index("population")
    # a at W12: all 6 changes negative: W+ = 0, exact p = 2 * 1/2^6 = 1/32.
    # b at W12: only S5 (+1, the smallest |change|, rank 1) is positive: W+ = 1; the subsets of
    # ranks with sum <= 1 are {} and {1}: p = 2 * 2/64 = 1/16.
    assert t.loc["a", "p_value"] == pytest.approx(1 / 32)
    assert t.loc["b", "p_value"] == pytest.approx(1 / 16)
    # BH: 1/32 * 2/1 = 1/16, 1/16 * 2/2 = 1/16. With the helper (another 1/32) a's would be 3/64.
    assert t.loc["a", "p_adj"] == pytest.approx(1 / 16)
    assert t.loc["b", "p_adj"] == pytest.approx(1 / 16)
    # 6 subjects: min p 2/64 < 0.05, no warning; 3 subjects per group: 2/8, warned
    assert t.loc["a", "n"] == 6 and t.loc["a", "warning"] == ""
    yes = result.tests[(result.tests["group"] == "yes") & (result.tests["visit"] == "W12")]
    assert (yes["n"] == 3).all() and yes["min_p"].tolist() == pytest.approx([0.25, 0.25])
    assert yes["warning"].str.contains("no p below 0.05 is possible").all()


def test_groups_compared_directly_and_small_n_warned(result):
    g = result.groups[result.groups["visit"] == "W12"].set_index("population")
    a = g.loc["a"]
    # a at W12: no = S1 S3 S6 (-2 -3 -1), yes = S2 S4 S5 (-4 -6 -8): every "no" change is the
    # larger, U(no) = 9 of 3*3 pairs. Of the C(6,3) = 20 splits only this one and its mirror
    # (U = 0) are that extreme: p = 2/20 = 0.1, which is also the smallest possible p.
    assert (a["group_a"], a["group_b"], a["n_a"], a["n_b"]) == ("no", "yes", 3, 3)
    assert a["U"] == 9 and a["p_value"] == pytest.approx(0.1) and bool(a["exact"])
    assert a["min_p"] == pytest.approx(0.1)
    assert a["warning"] == "n = 3 vs 3: no p below 0.05 is possible (smallest 0.1)"
    assert a["median_change_a"] == -2 and a["median_change_b"] == -6
    assert any("groups.csv" in w and "n = 3 vs 3" in w for w in result.warnings())


def test_exact_mann_whitney_with_eight_subjects():
    # 4 vs 4: C(8,4) = 70 splits. yes = -5 -4 -3 -1, no = -2 0 1 2: pooled ranks 1..8, yes has
    # ranks 1 2 3 5 (sum 11), U(no) = 16 - 1 = 15 of 16 pairs (U(yes) = 11 - 10 = 1). Splits with
    # U(yes) <= 1: {1,2,3,4} and {1,2,3,5}; with the mirror side p = 4/70. Smallest p = 2/70.
    ch = pd.DataFrame(
        {
            "subject": [f"S{i}" for i in range(8)],
            "population": "p",
            "visit": "W12",
            "week": 12,
            "change": [-5, -4, -3, -1, -2, 0, 1, 2],
            "group": ["yes"] * 4 + ["no"] * 4,
        }
    )
    row = group_tests(ch).iloc[0]
    assert (row["group_a"], row["n_a"], row["n_b"]) == ("no", 4, 4)
    assert row["U"] == 15 and row["p_value"] == pytest.approx(4 / 70)
    assert row["min_p"] == pytest.approx(2 / 70) and row["warning"] == ""


def test_visit_choice_and_missing_subjects():
    merged = _merged(with_helper=False)
    # S6 misses W12: W12 has 5 subjects, W4 all 6, so the last common visit is W4
    merged = merged[~((merged["subject"] == "S6") & (merged["visit"] == "W12"))]
    ch = changes(merged, outcome="SLEDAI")
    assert common_visit(ch, "SLEDAI") == "W4"
    cor = correlations(ch, "SLEDAI", at_visit="week 12").set_index(["method", "population"])
    a = cor.loc[("spearman", "a")]
    # a at W12 without S6: x -2 -4 -3 -6 -8, y -4 -6 -2 -8 -10: ranks 5 3 4 2 1 vs 4 3 5 2 1,
    # sum d^2 = 2, rho = 1 - 12/120 = 0.9; pairings of 5 with sum d^2 <= 2: 1 + 4, p = 10/120
    assert (a["visit"], a["n"]) == ("W12", 5)
    assert a["r"] == pytest.approx(0.9) and a["p_value"] == pytest.approx(10 / 120)
    # rmcorr: S6 keeps W0 and W4 (2 observations): 17 observations, 6 subjects, df = 10
    rm = cor.loc[("rmcorr", "a")]
    assert (rm["n"], rm["n_observations"], rm["df"]) == (6, 17, 10)


def test_cli_states_n_and_warns_on_stderr(tmp_path, capsys):
    from cytophen.cli import main

    path = tmp_path / "merged.csv"
    _merged().to_csv(path, index=False)
    rc = main(
        ["stats", str(path), "--group", "responder", "--visit", "W4", "--out", str(tmp_path / "s")]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "left out 1 helper population(s): h" in err
    assert "warning: groups.csv" in err and "n = 3 vs 3: no p below 0.05 is possible" in err
    cor = pd.read_csv(tmp_path / "s" / "correlations.csv")
    assert set(cor.loc[cor["method"] == "spearman", "visit"]) == {"W4"}
    assert (tmp_path / "s" / "groups.csv").exists()
    assert main(["stats", str(path), "--visit", "W99", "--out", str(tmp_path / "s2")]) == 2
    assert "visit 'W99' has no changes from baseline" in capsys.readouterr().err
