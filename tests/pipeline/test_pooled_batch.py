"""Pooled data-driven gates in a batch (``pool: subject``): one fit per subject on the pooled
events of its samples, shipped to the workers, recorded in gates.json.

The reference for a pooled gate is an independent route: the subject's files concatenated into one
FCS file and gated alone by :func:`cytophen.gate` (which fits the gate on that file's events).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cytophen
from batch_support import CHANNELS, MARKERS, TEMPLATE_YAML, simulate_events, write_test_fcs
from cytophen.pipeline.inputs import InputError

POOLED_YAML = TEMPLATE_YAML.replace(
    "    gate: {kind: range, dims: [CD3], min: 1000}",
    '    gate: {method: mindensity, dims: [CD3], side: "+", pool: subject}',
).replace("name: batch-test", "name: pooled-test")

#: subject -> per-file (seed, n_b, n_t, n_debris); the subjects differ in their T-cell fraction
DESIGN = {
    "A": [(11, 300, 200, 100), (12, 250, 350, 100), (13, 320, 150, 80)],
    "B": [(21, 150, 600, 100), (22, 200, 500, 120)],
}


def _events(seed, n_b, n_t, n_d, shift):
    ev = simulate_events(seed, n_b, n_t, n_d)
    ev[:, 3] *= shift  # each subject has its own CD3 brightness
    return ev


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooled")
    rows = []
    for subject, files in DESIGN.items():
        shift = 1.0 if subject == "A" else 1.6
        for seed, n_b, n_t, n_d in files:
            p = root / "in" / f"{subject}_{seed}.fcs"
            write_test_fcs(p, _events(seed, n_b, n_t, n_d, shift), CHANNELS, MARKERS)
            rows.append({"file": str(p), "sample": p.stem, "subject": subject})
    manifest = root / "manifest.csv"
    # rows not grouped by subject: groups must not depend on manifest order
    pd.DataFrame(rows[::-1]).to_csv(manifest, index=False)
    tpath = root / "pooled.yaml"
    tpath.write_text(POOLED_YAML)
    return root, manifest, tpath


def _threshold(entry) -> float:
    geom = entry["geometry"]
    assert geom["kind"] == "rectangle", geom
    return float(geom["min"][0])


def test_template_reads_pool(cohort):
    _, _, tpath = cohort
    t = cytophen.load_template(tpath)
    g = t.populations[t.names.index("t_cells")].gate
    assert g.pool == "subject"


def test_same_gate_within_subject_and_equal_to_concatenated_fit(cohort, tmp_path):
    root, manifest, tpath = cohort
    res = cytophen.gate_files(
        [], tpath, manifest=manifest, jobs=1, out=tmp_path / "o", progress=False
    )
    assert res.n_ok == 5 and res.n_failed == 0
    template = cytophen.load_template(tpath)
    thresholds = {}
    for subject, files in DESIGN.items():
        ids = [f"{subject}_{seed}" for seed, *_ in files]
        entries = [res.gates[i]["t_cells"] for i in ids]
        for e in entries:
            assert e["pooled"] is True and e["pool"] == {"column": "subject", "group": subject}
            assert sorted(e["details"]["pooled_samples"]) == sorted(ids)
        ths = {_threshold(e) for e in entries}
        assert len(ths) == 1, f"subject {subject}: different gates {ths}"
        thresholds[subject] = ths.pop()
        # reference: the subject's events concatenated into one file, gated alone
        shift = 1.0 if subject == "A" else 1.6
        ev = np.concatenate([_events(*f, shift) for f in files])
        cat = tmp_path / f"cat_{subject}.fcs"
        write_test_fcs(cat, ev, CHANNELS, MARKERS)
        alone = cytophen.gate(cytophen.read_fcs(cat), template)
        assert _threshold(alone.gates["t_cells"]) == pytest.approx(thresholds[subject], rel=1e-12)
        # and each sample's counts are those of its own events inside the pooled gate
        pops = res.populations.set_index(["sample", "population"])
        for sid, (seed, n_b, n_t, n_d) in zip(ids, files):
            row = pops.loc[(sid, "t_cells")]
            evs = _events(seed, n_b, n_t, n_d, shift)
            # cells polygon: FSC 30k-70k, SSC 5k-30k (debris is outside)
            cells = (evs[:, 0] > 30_000) & (evs[:, 1] > 5_000)
            assert row["count"] == int((cells & (evs[:, 3] >= thresholds[subject])).sum())
            assert row["count"] == n_t  # the simulated truth
    assert thresholds["A"] != thresholds["B"]
    written = json.loads((tmp_path / "o" / "gates.json").read_text())
    assert written["samples"]["B_21"]["t_cells"]["pool"]["group"] == "B"


def test_pooled_is_deterministic_and_same_in_workers(cohort, tmp_path):
    root, manifest, tpath = cohort
    a = cytophen.gate_files([], tpath, manifest=manifest, jobs=1, progress=False)
    b = cytophen.gate_files([], tpath, manifest=manifest, jobs=1, progress=False)
    assert json.dumps(a.gates, sort_keys=True, default=str) == json.dumps(
        b.gates, sort_keys=True, default=str
    )
    # workers only (no gating in the driver): the fitted geometry travels to the pool
    from cytophen.pipeline import executors

    orig = executors.PoolRunner.__init__

    def init(self, *args, **kw):
        orig(self, *args, **kw)
        self.gate_while_starting = False

    executors.PoolRunner.__init__ = init
    try:
        c = cytophen.gate_files([], tpath, manifest=manifest, jobs=2, progress=False)
    finally:
        executors.PoolRunner.__init__ = orig
    assert c.run["options"]["executor"] == "processes"
    for sid in a.gates:
        assert c.gates[sid]["t_cells"]["geometry"] == a.gates[sid]["t_cells"]["geometry"]
    pd.testing.assert_frame_equal(
        a.populations.sort_values(["sample", "population"]).reset_index(drop=True),
        c.populations.sort_values(["sample", "population"]).reset_index(drop=True),
    )


def test_missing_pool_column_is_a_clear_error(cohort, tmp_path, capsys):
    root, manifest, tpath = cohort
    no_col = tmp_path / "m.csv"
    pd.read_csv(manifest).drop(columns="subject").to_csv(no_col, index=False)
    with pytest.raises(InputError, match="subject"):
        cytophen.gate_files([], tpath, manifest=no_col, jobs=1, out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="no manifest"):
        cytophen.gate_files(root / "in", tpath, jobs=1, progress=False)

    from cytophen.cli import main

    code = main(["gate", "--manifest", str(no_col), "-t", str(tpath), "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "'subject'" in err and "manifest" in err
    assert not (tmp_path / "o2").exists()


def test_resume_refits_when_group_changes(cohort, tmp_path):
    root, manifest, tpath = cohort
    out = tmp_path / "o"
    first = cytophen.gate_files([], tpath, manifest=manifest, jobs=1, out=out, progress=False)
    again = cytophen.gate_files(
        [], tpath, manifest=manifest, jobs=1, out=out, resume=True, progress=False
    )
    assert again.run["counts"]["resumed"] == 5
    assert again.gates == first.gates
    # move one file of A to subject B: both groups change, so every sample is recomputed
    m = pd.read_csv(manifest)
    m.loc[m["sample"] == "A_13", "subject"] = "B"
    m2 = tmp_path / "m2.csv"
    m.to_csv(m2, index=False)
    moved = cytophen.gate_files(
        [], tpath, manifest=m2, jobs=1, out=out, resume=True, progress=False
    )
    assert moved.run["counts"]["resumed"] == 0
    assert moved.gates["A_13"]["t_cells"]["pool"]["group"] == "B"
    assert _threshold(moved.gates["A_13"]["t_cells"]) == _threshold(moved.gates["B_21"]["t_cells"])


def test_a_file_lacking_a_marker_fails_alone_and_the_group_pools_the_others(cohort, tmp_path):
    """A file of subject A without CD19 (which b_cells needs): it fails on its own, naming the
    marker, as gated alone; subject A's gate is fitted on its other files, the same gate as
    without that file."""
    root, manifest, tpath = cohort
    ev = _events(14, 300, 200, 100, 1.0)
    bad = root / "in" / "A_14_nocd19.fcs"
    write_test_fcs(bad, np.delete(ev, 2, axis=1), CHANNELS[:2] + CHANNELS[3:],
                   MARKERS[:2] + MARKERS[3:])  # fmt: skip
    m = pd.read_csv(manifest)
    m = pd.concat([m, pd.DataFrame([{"file": str(bad), "sample": "A_14", "subject": "A"}])])
    m2 = tmp_path / "m.csv"
    m.to_csv(m2, index=False)
    res = cytophen.gate_files([], tpath, manifest=m2, jobs=1, progress=False)
    assert res.n_ok == 5 and res.n_failed == 1
    err = res.errors.set_index("sample").loc["A_14"]
    assert err["stage"] == "markers" and "marker 'CD19' is not in the file" in err["message"]
    before = cytophen.gate_files([], tpath, manifest=manifest, jobs=1, progress=False)
    for sid in ("A_11", "A_12", "A_13"):
        entry = res.gates[sid]["t_cells"]
        assert sorted(entry["details"]["pooled_samples"]) == ["A_11", "A_12", "A_13"]
        assert entry["geometry"] == before.gates[sid]["t_cells"]["geometry"]
