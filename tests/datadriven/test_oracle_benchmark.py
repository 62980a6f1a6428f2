"""benchmarks/oracle_datadriven.py: the supervised per-file classifier that docs/accuracy.md
compares the shipped templates with. Its template columns must be the product's own scores, and
its classifier must recover classes it is told on data where the answer is known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import cytophen
from cytophen.simulate.files import read_truth, simulate_file
from cytophen.simulate.scoring import score

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def oracle():
    spec = importlib.util.spec_from_file_location(
        "oracle_datadriven", ROOT / "benchmarks" / "oracle_datadriven.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_classifier_recovers_separated_classes_and_skips_unfittable_ones(oracle):
    rng = np.random.default_rng(3)
    centres = {"a": (0.0, 0.0, 0.0), "b": (1.0, 0.0, 0.0), "c": (0.0, 1.0, 0.5)}
    x = [rng.normal(c, 0.08, (n, 3)) for c, n in zip(centres.values(), (2000, 300, 60))]
    # a bimodal class (two clouds): needs more than one component per class
    x.append(np.r_[rng.normal((1, 1, 1), 0.05, (500, 3)), rng.normal((-1, 1, -1), 0.05, (500, 3))])
    x.append(rng.normal((0.5, 0.5, 0.5), 0.01, (3, 3)))  # 3 events: cannot fit a 3-D covariance
    labels = np.repeat(["a", "b", "c", "d", "tiny"], [2000, 300, 60, 1000, 3]).astype(object)
    pred = oracle._classify(np.vstack(x), labels)
    assert "tiny" not in set(pred)
    ok = pred[:-3] == labels[:-3]
    assert ok.mean() > 0.999, ok.mean()
    assert (pred[2300:2360] == "c").all()  # the small class is not swallowed by its neighbours


@pytest.mark.slow
def test_template_columns_are_the_products_scores(oracle, tmp_path):
    rows = []
    for panel in ("bcell", "treg"):
        path = simulate_file(tmp_path / f"s_{panel}.fcs", panel, seed=5, events=30_000)
        got = {
            r["population"]: r for r in oracle.score_file(str(path), str(ROOT / "gating_templates"))
        }
        assert set(got) == {s.population for s in oracle.STEPS if s.panel == panel}
        template = cytophen.load_template(ROOT / "gating_templates" / f"{panel}.yaml")
        sc = score(cytophen.gate(cytophen.read_fcs(path), template), read_truth(path))
        sc = sc.set_index("population")
        for pop, r in got.items():
            assert r["f1_template"] == pytest.approx(sc.loc[pop, "f1"], abs=1e-12), pop
            pp = sc.loc[pop, "percent_of_parent_gated"] - sc.loc[pop, "percent_of_parent_true"]
            assert r["pp_template"] == pytest.approx(pp, abs=1e-9), pop
            rows.append(r)
    # told the truth, the classifier places every one of these populations well on this file
    for r in rows:
        assert r["f1_oracle"] >= r["f1_bar"], (r["population"], r["f1_oracle"])
        assert abs(r["pp_oracle"]) <= 2.0, (r["population"], r["pp_oracle"])
