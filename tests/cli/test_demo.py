"""``cytophen demo``: end to end on a small cohort, and stages that are missing are skipped."""

from __future__ import annotations

import pandas as pd
import pytest

from cytophen.cli import demo as demo_mod
from cytophen.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # templates must be found from anywhere
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--events", "1500", "--jobs", "1"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "Where to look" in printed
    assert len(list((out / "data").glob("*.fcs"))) == 60
    for panel in ("bcell", "treg"):
        pops = pd.read_csv(out / "results" / panel / "populations.csv")
        assert pops["sample"].nunique() == 30
    scores = pd.read_csv(out / "results" / "truth_scores.csv")
    assert {"panel", "sample", "population", "f1", "abs_error_pp"} <= set(scores.columns)
    # the shipped templates find the big populations of the simulated files
    big = scores[scores["population"].isin(["live", "b_cells", "t_cells", "cd4", "cd8"])]
    assert big["f1"].min() > 0.9, big
    merged = pd.read_csv(out / "analysis" / "merged.csv")
    assert {"SLEDAI", "responder", "subject", "visit"} <= set(merged.columns)
    # the report has each sample's gating plots (drawn in the gating workers) and, when the
    # statistics stage ran, the longitudinal plots
    for panel in ("bcell", "treg"):
        res = out / "results" / panel
        assert len(list((res / "plots").glob("*/plots.json"))) == 30
        html = (res / "report.html").read_text()
        assert "<img" in html and "plots.json" not in html
        if list((out / "analysis" / "stats").rglob("*.png")):
            assert "Longitudinal plots" in html
    for line in printed.splitlines():
        if line.strip().startswith(("failed",)):
            pytest.fail(f"a demo stage failed: {line}")


def test_demo_skips_missing_stages_and_exits_0(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo_mod, "find_template", lambda name: None)
    rc = main(["demo", "--out", str(tmp_path / "d"), "--events", "1000", "--jobs", "1"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "skipped: gating_templates/bcell.yaml not found" in printed
    assert "skipped: nothing was gated" in printed
    assert (tmp_path / "d" / "data" / "manifest.csv").exists()
    assert "Where to look" in printed


def test_demo_survives_a_failing_stage(tmp_path, capsys, monkeypatch):
    import cytophen.simulate

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cytophen.simulate, "simulate_cohort", boom)
    status = demo_mod.run_demo(tmp_path / "d", events=1000)
    assert status == {"1/6 simulate the study cohort": "failed"}
    assert "failed: RuntimeError: disk on fire" in capsys.readouterr().out
