"""Batch gating from Python: cytophen.gate_files (process pool, in-process, Dask), outputs, resume
bookkeeping, manifests, compensation override and sanitised sample ids.

Expected counts come from how the test files were simulated (batch_support: every event's
population is known) and from gating each file alone with cytophen.gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import blake3
import numpy as np
import pandas as pd
import pytest

import cytophen
from batch_support import (
    CHANNELS,
    MARKERS,
    make_batch,
    make_file,
    make_template,
    runner_inputs,
    simulate_events,
    write_template,
    write_test_fcs,
)
from cytophen.pipeline.inputs import InputError, discover, safe_name


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    truth = make_batch(root / "in", n_good=5)
    tpath = write_template(root)
    return root, truth, tpath


@pytest.fixture(scope="module")
def pool_run(batch):
    """jobs=2: a batch this small is gated by the main process alone (the pool would not pay for
    its start-up); the pool proper is compared with in-process gating in
    test_pool_workers_gate_in_their_own_processes."""
    root, truth, tpath = batch
    res = cytophen.gate_files(root / "in", tpath, jobs=2, out=root / "out_pool", progress=False)
    return res


def _alone(path: Path, template, sample_id: str) -> pd.DataFrame:
    return cytophen.gate(cytophen.read_fcs(path), template, sample_id=sample_id).table


def test_mixed_batch_fault_isolation(batch, pool_run):
    root, truth, tpath = batch
    res = pool_run
    assert res.n_ok == 5 and res.n_failed == 3
    errs = res.errors.set_index("sample")
    assert set(errs.index) == {"truncated", "notes", "no_cd19"}
    assert errs.loc["truncated", "stage"] == "read"
    assert errs.loc["notes", "stage"] == "read"
    assert errs.loc["no_cd19", "stage"] == "markers"
    assert "CD19" in errs.loc["no_cd19", "message"]
    for sid in errs.index:  # each message names the file
        assert Path(errs.loc[sid, "file"]).name in errs.loc[sid, "message"]
    # good results: the simulator's truth ...
    pops = res.populations
    for stem, t in truth.items():
        got = pops[pops["sample"] == stem].set_index("population")["count"]
        for pop in ("cells", "b_cells", "t_cells", "non_b"):
            assert got[pop] == t[pop], (stem, pop)
    # ... and exactly what gating each file alone gives
    template = cytophen.load_template(tpath)
    for stem in truth:
        f = root / "in" / f"{stem}.fcs"
        expected = _alone(f, template, stem)
        got = pops[pops["sample"] == stem].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)


def test_outputs_written(batch, pool_run):
    root, truth, tpath = batch
    out = root / "out_pool"
    for name in (
        "populations.csv",
        "populations.parquet",
        "populations_wide.csv",
        "gates.json",
        "errors.csv",
        "run.json",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    csv = pd.read_csv(out / "populations.csv")
    pq = pd.read_parquet(out / "populations.parquet")
    assert len(csv) == len(pq) == 5 * 4
    assert list(csv.columns[:9]) == [
        "sample", "file", "population", "parent", "path", "count", "parent_count",
        "percent_of_parent", "percent_of_total",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(pq, pool_run.populations)
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors.columns) == ["sample", "file", "stage", "message"] and len(errors) == 3

    wide = pd.read_csv(out / "populations_wide.csv").set_index("sample")
    assert list(wide.index) == [f"g{i}" for i in range(5)]
    for stem, t in truth.items():
        assert wide.loc[stem, "b_cells.count"] == t["b_cells"]
        assert wide.loc[stem, "b_cells.percent_of_parent"] == pytest.approx(
            100 * t["b_cells"] / t["cells"]
        )
        assert wide.loc[stem, "non_b.percent_of_cells"] == pytest.approx(
            100 * t["non_b"] / t["cells"]
        )
    assert "b_cells.median_CD19" in wide.columns and "t_cells.median_CD19" not in wide.columns

    gates = json.loads((out / "gates.json").read_text())
    assert set(gates["samples"]) == set(truth)
    g0 = gates["samples"]["g0"]
    assert g0["cells"]["geometry"]["kind"] == "polygon"
    assert g0["b_cells"]["geometry"]["min"] == [1000.0, None]

    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == {"total": 8, "ok": 5, "failed": 3, "resumed": 0, "computed": 8}
    tmpl = cytophen.load_template(tpath)
    assert run["template"]["hash"] == tmpl.hash and run["template"]["name"] == "batch-test"
    by_sample = {i["sample"]: i for i in run["inputs"]}
    g1 = root / "in" / "g1.fcs"
    assert by_sample["g1"]["blake3"] == blake3.blake3(g1.read_bytes()).hexdigest()
    assert run["options"]["executor"] == "processes" and run["options"]["workers"] == 2
    assert run["versions"]["numpy"] == np.__version__


def test_inline_equals_pool(batch, pool_run):
    root, truth, tpath = batch
    res = cytophen.gate_files(root / "in", tpath, jobs=1, progress=False)
    assert res.out is None and res.run["options"]["executor"] == "inline"
    pd.testing.assert_frame_equal(res.populations, pool_run.populations)
    pd.testing.assert_frame_equal(res.errors, pool_run.errors)


def test_dask_cluster_equals_pool(batch, pool_run):
    distributed = pytest.importorskip("distributed")
    root, truth, tpath = batch
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        res = cytophen.gate_files(
            root / "in", tpath, scheduler=address, out=root / "out_dask", progress=False
        )
    assert res.run["options"]["executor"] == "dask" and res.run["options"]["scheduler"] == address
    pd.testing.assert_frame_equal(res.populations, pool_run.populations)
    pd.testing.assert_frame_equal(res.errors, pool_run.errors)
    for name in ("populations.csv", "errors.csv", "populations_wide.csv"):
        assert (root / "out_dask" / name).read_text() == (root / "out_pool" / name).read_text()


def test_bad_scheduler_address_writes_nothing(batch, tmp_path):
    root, truth, tpath = batch
    with pytest.raises(InputError, match="cannot connect to the Dask scheduler"):
        cytophen.gate_files(
            root / "in" / "g0.fcs", tpath, scheduler="tcp://127.0.0.1:9", out=tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()


_WITHOUT_DASK = """
import sys
sys.path.insert(0, {tests!r})
if {hide!r}:
    sys.modules["distributed"] = sys.modules["dask"] = None  # as if the extra were not installed
import cytophen
from cytophen.pipeline.batch import gate_files
from batch_support import make_template
res = gate_files({folder!r}, make_template(), jobs=2, out={out!r}, progress=False)
assert res.n_ok == 3 and res.n_failed == 0, res
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed") and sys.modules[m]))
try:
    gate_files({folder!r}, make_template(), scheduler="local", out={out!r} + "2", progress=False)
    said = None
except cytophen.CytophenError as exc:
    said = str(exc)
print(repr(said))
"""


@pytest.mark.parametrize("hide", [False, True], ids=["installed", "not_installed"])
def test_dask_is_an_optional_extra(tmp_path, hide):
    """Importing cytophen and gating files never imports dask; without the extra installed, a
    Dask scheduler is refused before anything is written, naming the extra."""
    import subprocess
    import sys

    make_batch(tmp_path / "in", n_good=3, bad=False)
    tests = str(Path(__file__).resolve().parents[1])
    code = _WITHOUT_DASK.format(
        tests=tests, hide=hide, folder=str(tmp_path / "in"), out=str(tmp_path / "o")
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    imported, said = r.stdout.strip().splitlines()[-2:]
    assert imported == "[]"  # after import cytophen and a batch on threads / processes
    if hide:
        assert "pip install 'cytophen[dask]'" in said
        assert not (tmp_path / "o2").exists()
    else:
        assert said == "None"  # a local cluster gated the batch


def test_resume_skips_finished_and_recomputes_changed(tmp_path):
    truth = make_batch(tmp_path / "in", n_good=4, bad=False)
    template = make_template()
    out = tmp_path / "out"
    first = cytophen.gate_files(tmp_path / "in", template, jobs=1, out=out, progress=False)
    store = out / ".cytophen" / "samples"
    mtimes = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    # change one file's content and add a new one; resume recomputes exactly those two
    make_file(tmp_path / "in" / "g2.fcs", seed=999, n_b=123, n_t=456, n_debris=10)
    make_file(tmp_path / "in" / "g9.fcs", seed=998, n_b=50, n_t=60, n_debris=10)
    again = cytophen.gate_files(
        tmp_path / "in", template, jobs=1, out=out, resume=True, progress=False
    )
    assert again.run["counts"]["resumed"] == 3 and again.run["counts"]["computed"] == 2
    for stem in ("g0", "g1", "g3"):  # one file per finished sample: record and table
        assert (store / f"{stem}.json").stat().st_mtime_ns == mtimes[f"{stem}.json"]
    counts = again.populations.set_index(["sample", "population"])["count"]
    assert counts[("g2", "b_cells")] == 123 and counts[("g9", "t_cells")] == 60
    assert counts[("g0", "b_cells")] == truth["g0"]["b_cells"]
    unchanged = first.populations[first.populations["sample"] != "g2"].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        again.populations[~again.populations["sample"].isin(["g2", "g9"])].reset_index(drop=True),
        unchanged,
    )
    # a different template (hash) recomputes everything
    other = make_template(name="batch-test-2")
    third = cytophen.gate_files(
        tmp_path / "in", other, jobs=1, out=out, resume=True, progress=False
    )
    assert third.run["counts"]["resumed"] == 0 and third.run["counts"]["computed"] == 5


def test_errors_csv_header_only_when_all_ok(tmp_path):
    make_batch(tmp_path / "in", n_good=2, bad=False)
    res = cytophen.gate_files(
        tmp_path / "in", make_template(), jobs=1, out=tmp_path / "out", progress=False
    )
    assert res.ok and res.n_failed == 0
    assert (tmp_path / "out" / "errors.csv").read_text().strip() == "sample,file,stage,message"


def test_manifest_ids_and_metadata(tmp_path):
    truth = make_batch(tmp_path / "in", n_good=3, bad=False)
    man = tmp_path / "manifest.csv"
    pd.DataFrame(
        {
            "file": ["in/g0.fcs", "in/g1.fcs", str(tmp_path / "in" / "g2.fcs")],
            "sample": ["P01_d0", "P01_w4", "P02_d0"],
            "subject": ["P01", "P01", "P02"],
            "day": [0, 28, 0],
        }
    ).to_csv(man, index=False)
    res = cytophen.gate_files(man, make_template(), jobs=1, out=tmp_path / "out", progress=False)
    pops = res.populations
    assert list(dict.fromkeys(pops["sample"])) == ["P01_d0", "P01_w4", "P02_d0"]
    assert list(pops.columns[-2:]) == ["subject", "day"]
    row = pops[(pops["sample"] == "P01_w4") & (pops["population"] == "b_cells")].iloc[0]
    assert row["subject"] == "P01" and row["day"] == 28 and row["count"] == truth["g1"]["b_cells"]
    wide = pd.read_csv(tmp_path / "out" / "populations_wide.csv")
    assert list(wide.columns[:4]) == ["sample", "file", "subject", "day"]
    # a manifest row whose file is missing is that sample's error, not the batch's
    with_missing = tmp_path / "manifest2.csv"
    with_missing.write_text(man.read_text() + "in/gone.fcs,P03_d0,P03,0\n")
    res3 = cytophen.gate_files(with_missing, make_template(), jobs=1, progress=False)
    assert res3.n_ok == 3 and res3.errors[["sample", "stage"]].values.tolist() == [
        ["P03_d0", "read"]
    ]
    assert "gone.fcs" in res3.errors["message"][0]
    # --manifest next to PATHS: matched by file, ids and metadata from the manifest
    res2 = cytophen.gate_files(
        [tmp_path / "in"], make_template(), manifest=man, jobs=1, progress=False
    )
    pd.testing.assert_frame_equal(res2.populations, pops)


def test_manifest_missing_file_column_and_metadata_clash(tmp_path):
    make_batch(tmp_path / "in", n_good=1, bad=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,sample\nin/g0.fcs,a\n")
    with pytest.raises(InputError, match="needs a 'file' column"):
        cytophen.gate_files(bad, make_template(), out=tmp_path / "o")
    clash = tmp_path / "clash.csv"
    clash.write_text("file,count\nin/g0.fcs,3\n")
    with pytest.raises(InputError, match="count"):
        cytophen.gate_files(clash, make_template(), out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_duplicate_stems_are_an_error(tmp_path):
    make_file(tmp_path / "day1" / "S1.fcs", 1)
    make_file(tmp_path / "day2" / "S1.fcs", 2)
    with pytest.raises(InputError, match="unique") as info:
        discover([tmp_path])
    assert "day1" in str(info.value) and "day2" in str(info.value) and "manifest" in str(info.value)


def test_folder_scan_is_recursive_and_skips_outputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/x.fcs", "a/b/y.FCS", "a/b/z.lmd", "a/notes.txt"):
        (tmp_path / p).write_bytes(b"x")
    (tmp_path / "a" / "out" / "gated").mkdir(parents=True)
    (tmp_path / "a" / "out" / "gated" / "x2.fcs").write_bytes(b"x")
    (tmp_path / "a" / ".cytophen").mkdir()
    (tmp_path / "a" / ".cytophen" / "h.fcs").write_bytes(b"x")
    samples, _ = discover([tmp_path / "a"], exclude=tmp_path / "a" / "out")
    assert sorted(s.sample for s in samples) == ["x", "y", "z"]


def test_safe_name_cannot_escape_or_collide():
    hostile = [
        "../../etc/x",
        "..",
        ".",
        "",
        "a/b",
        "a\\b",
        "a_b",
        "CON",
        "nul.txt",
        "x" * 300,
        "é",
        "S1",
        "s1",
    ]
    names = [safe_name(h) for h in hostile]
    for n in names:
        assert n and n == Path(n).name and not n.startswith(".")
        assert all(c.isalnum() and c.isascii() or c in "._-" for c in n)
        assert len(n) <= 90
    assert len(set(names)) == len(names)
    assert safe_name("P01_d0") == "P01_d0"  # ordinary ids stay readable
    # ids differing only in case get distinct names on case-insensitive file systems too
    samples_ids = discover_ids(["S1", "s1"])
    assert len({s.casefold() for s in samples_ids}) == 2


def discover_ids(ids):
    from cytophen.pipeline.inputs import _assign_safe_ids

    return _assign_safe_ids(ids)


def test_hostile_ids_stay_inside_out(tmp_path):
    # a file whose keywords say $FIL=../../etc/x, and manifest ids that try to escape or collide
    ev = simulate_events(5, 100, 100, 50)
    write_test_fcs(tmp_path / "evil.fcs", ev, CHANNELS, MARKERS, keywords={"$FIL": "../../etc/x"})
    make_file(tmp_path / "a.fcs", 6, 80, 90, 10)
    make_file(tmp_path / "b.fcs", 7, 70, 60, 10)
    man = tmp_path / "m.csv"
    pd.DataFrame(
        {"file": ["evil.fcs", "a.fcs", "b.fcs"], "sample": ["../../etc/x", "../x", "..\\x"]}
    ).to_csv(man, index=False)
    out = tmp_path / "deep" / "out"
    res = cytophen.gate_files(
        man, make_template(), jobs=1, out=out, export_gated="b_cells", progress=False
    )
    assert res.n_ok == 3
    assert set(res.populations["sample"]) == {"../../etc/x", "../x", "..\\x"}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    outside = [p for p in written if out not in p.parents and p.parent != tmp_path]
    assert outside == []
    gated = sorted((out / "gated").iterdir())
    assert len(gated) == 3
    counts = {}
    for p in gated:
        counts[p.name] = cytophen.read_fcs(p).n_events
    assert sorted(counts.values()) == [70, 80, 100]
    assert len(list((out / ".cytophen" / "samples").glob("*.json"))) == 3


def test_compensation_override(tmp_path):
    # FL1 (CD19) spills 20 % into FL2 (CD3): uncompensated, bright B cells look CD3+;
    # compensating with the matrix from a CSV recovers the simulated populations exactly.
    true = simulate_events(11, 300, 400, 100)
    spill = np.eye(len(CHANNELS))
    spill[2, 3] = 0.2
    observed = true.astype(np.float64) @ spill
    write_test_fcs(tmp_path / "in" / "s.fcs", observed, CHANNELS, MARKERS)
    mat = pd.DataFrame(spill[2:4, 2:4], index=["FL1-A", "FL2-A"], columns=["FL1-A", "FL2-A"])
    mat.to_csv(tmp_path / "spill.csv")
    t = make_template()
    raw = cytophen.gate_files(tmp_path / "in", t, jobs=1, progress=False).populations.set_index(
        "population"
    )
    assert raw.loc["t_cells", "count"] > 400  # spillover made B cells look CD3+
    comp = cytophen.gate_files(
        tmp_path / "in", t, jobs=1, compensation=str(tmp_path / "spill.csv"), progress=False
    ).populations.set_index("population")
    assert comp.loc["t_cells", "count"] == 400 and comp.loc["b_cells", "count"] == 300
    # 'keyword' on files without a spillover keyword: each such file fails at the compensate stage
    kw = cytophen.gate_files(tmp_path / "in", t, jobs=1, compensation="keyword", progress=False)
    assert kw.n_failed == 1 and kw.errors["stage"].tolist() == ["compensate"]
    with pytest.raises(cytophen.CompensationError):
        cytophen.gate_files(tmp_path / "in", t, compensation="bogus")


def test_invalid_options_raise_before_writing(tmp_path):
    make_batch(tmp_path / "in", n_good=1, bad=False)
    with pytest.raises(cytophen.TemplateError, match="no such population"):
        cytophen.gate_files(
            tmp_path / "in", make_template(), out=tmp_path / "o", export_gated="nope"
        )
    with pytest.raises(InputError, match="does not exist"):
        cytophen.gate_files(tmp_path / "missing", make_template(), out=tmp_path / "o")
    with pytest.raises(InputError, match="resume"):
        cytophen.gate_files(tmp_path / "in", make_template(), resume=True)
    with pytest.raises(InputError, match="start_method must be one of forkserver, fork"):
        cytophen.gate_files(
            tmp_path / "in", make_template(), out=tmp_path / "o", start_method="spawn"
        )
    assert not (tmp_path / "o").exists()


def test_pool_workers_gate_in_their_own_processes(batch):
    """The process pool proper (no help from the main process) gives exactly the inline records."""
    import os

    from cytophen.pipeline.executors import InlineRunner, PoolRunner

    root, truth, tpath = batch
    template = cytophen.load_template(tpath)
    tasks, options = runner_inputs(root / "in")
    with PoolRunner(template, options, 2) as runner:
        runner.gate_while_starting = False
        pooled = {t.safe_id: rec for t, rec in runner.run(tasks)}
    with InlineRunner(template, options) as runner:
        inline = {t.safe_id: rec for t, rec in runner.run(tasks)}
    assert set(pooled) == set(inline) == {t.safe_id for t in tasks}
    me = f":{os.getpid()}"
    assert all(not rec.worker.endswith(me) for rec in pooled.values())
    assert all(rec.worker.endswith(me) for rec in inline.values())
    for sid, rec in inline.items():
        other = pooled[sid]
        assert other.status == rec.status and other.blake3 == rec.blake3
        if rec.status == "ok":
            pd.testing.assert_frame_equal(other.table, rec.table)
            assert other.gates == rec.gates
        else:
            assert (other.stage, other.message) == (rec.stage, rec.message)


def test_worker_death_is_one_error_row(tmp_path):
    """A sample that kills its worker process becomes a stage='worker' error; the pool is restarted
    and every other sample is gated, exactly as in-process."""
    from batch_support import crash_template
    from cytophen.pipeline.executors import InlineRunner, PoolRunner

    for i in range(6):
        make_file(tmp_path / "in" / f"s{i}.fcs", 50 + i, 100 + i, 200, 50)
    make_file(tmp_path / "in" / "crasher.fcs", 60, 111, 111, 111)  # 333 events
    template = crash_template(333)
    tasks, options = runner_inputs(tmp_path / "in")
    with PoolRunner(template, options, 2) as runner:
        runner.gate_while_starting = False
        pooled = {t.sample: rec for t, rec in runner.run(tasks)}
        assert runner.restarts == 1
    with InlineRunner(template, options) as runner:
        inline = {t.sample: rec for t, rec in runner.run(tasks)}
    assert set(pooled) == {t.sample for t in tasks}
    assert pooled["crasher"].status == "failed" and pooled["crasher"].stage == "worker"
    assert "died" in pooled["crasher"].message
    for sid in (f"s{i}" for i in range(6)):
        assert pooled[sid].status == "ok", pooled[sid]
        pd.testing.assert_frame_equal(pooled[sid].table, inline[sid].table)


def test_progress_bar_on_in_notebooks_and_terminals_only(monkeypatch):
    import sys
    import types

    from cytophen.pipeline.progress import _progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert _progress_bar(3, True).disable  # a pipe or a log file: no bar
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    bar = _progress_bar(3, True)  # a Jupyter kernel: tqdm.auto's widget (or text) bar
    assert not bar.disable
    bar.close()
    assert _progress_bar(3, False).disable  # progress=False / --quiet


def test_pool_starts_only_when_it_pays():
    from cytophen.pipeline.executors import PoolRunner
    from cytophen.pipeline.records import WorkerOptions

    r = PoolRunner(None, WorkerOptions(), 2)
    assert not r._worth_starting([0.6], 500)  # the first sample (kernel loading) says nothing
    # 31 samples left at 40 ms: 1.2 s here, 0.6 s saved by a second worker < the pool's start-up
    assert not r._worth_starting([0.6, 0.04, 0.04], 31)
    # 198 samples left at 150 ms on 2 threads: 15 s, as fast here as in a pool
    assert not r._worth_starting([0.9, 0.15, 0.15], 198)
    # 2000 samples left: 150 s, long enough for worker processes (and their crash isolation)
    assert r._worth_starting([0.9, 0.15, 0.15], 2000)
    # with plots (drawn one sample at a time per process) the pool pays once it saves start-up
    p = PoolRunner(None, WorkerOptions(plots=True), 2)
    assert not p._worth_starting([0.6, 0.04, 0.04], 31)
    assert p._worth_starting([0.9, 0.15, 0.15], 198)
