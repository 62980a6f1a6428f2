"""The batch's speed paths give exactly what the plain paths give: samples gated on several threads
of one process, the one-file-per-sample store (and the older two-file store, for resume), the
pinned template hash, and the start-up shortcut that keeps scipy.linalg out of numba's loading.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytophen
from batch_support import make_batch, make_template, runner_inputs
from cytophen.pipeline.storage import SampleStore, decode_table, encode_table

ROOT = Path(__file__).resolve().parents[2]


def _blas_limits():
    from threadpoolctl import threadpool_info

    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_threads_gate_exactly_like_one_thread(tmp_path):
    """jobs=2 without a pool: two threads of this process, large enough files for the parallel
    kernels (launched from both threads at once); every record equals gating one by one."""
    from cytophen.pipeline.executors import InlineRunner, PoolRunner

    make_batch(tmp_path / "in", n_good=6, n_events_scale=150)  # ~110 k events per good file
    template = make_template()
    tasks, options = runner_inputs(tmp_path / "in")
    blas_before = _blas_limits()
    with PoolRunner(template, options, 2) as runner:
        threaded = {t.safe_id: rec for t, rec in runner.run(tasks)}
        assert runner.inline_samples == len(tasks) and runner._pool is None
    after = _blas_limits()
    assert {k: after[k] for k in blas_before} == blas_before  # the batch's BLAS limit is undone
    with InlineRunner(template, options) as runner:
        inline = {t.safe_id: rec for t, rec in runner.run(tasks)}
    assert set(threaded) == set(inline) == {t.safe_id for t in tasks}
    me = f":{os.getpid()}"
    assert all(rec.worker.endswith(me) for rec in threaded.values())
    for sid, rec in inline.items():
        other = threaded[sid]
        assert (other.status, other.blake3) == (rec.status, rec.blake3)
        if rec.status == "ok":
            pd.testing.assert_frame_equal(other.table, rec.table, check_exact=True)
            assert other.gates == rec.gates
        else:
            assert (other.stage, other.message) == (rec.stage, rec.message)
    assert sum(r.status == "ok" for r in inline.values()) == 6


def test_batch_outputs_same_on_threads_and_inline(tmp_path):
    make_batch(tmp_path / "in", n_good=4)
    template = make_template()
    a = cytophen.gate_files(tmp_path / "in", template, jobs=2, out=tmp_path / "a", progress=False)
    cytophen.gate_files(tmp_path / "in", template, jobs=1, out=tmp_path / "b", progress=False)
    assert a.run["options"]["samples_gated_in_main_process"] == 7
    for name in ("populations.csv", "populations_wide.csv", "errors.csv", "gates.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert set(a.populations["template_hash"]) == {template.short_hash}
    # a template cannot be changed, by a batch or anyone: its hash, computed once, stays true
    with pytest.raises(dataclasses.FrozenInstanceError):
        template.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        template.populations[0].hidden = True
    assert set(vars(template)) == {f.name for f in dataclasses.fields(template)} | {"hash"}


def test_store_table_round_trip_is_exact(tmp_path):
    df = pd.DataFrame(
        {
            "sample": ["a", "b/ü", "c"],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "x": [-0.0, float("nan"), float("inf")],
            "y": [0.1 + 0.2, -float("inf"), 1e-320],
            "measured": [True, False, True],
            "n": np.array([1, 2, 3], dtype=np.int64),
            "note": ["", "not measured: x", "é"],
        }
    )
    payload = json.loads(json.dumps(encode_table(df), allow_nan=False))  # plain JSON
    back = decode_table(payload)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert list(back.dtypes) == list(df.dtypes)
    assert np.signbit(back["x"][0]) and back["y"][2] == 1e-320

    store = SampleStore(tmp_path)
    store.create()
    store.save("s1", {"status": "ok", "gates": {"g": {"v": np.float64(1.5)}}}, df)
    assert sorted(p.name for p in store.dir.iterdir()) == ["s1.json"]
    rec = store.record("s1")
    assert rec["gates"] == {"g": {"v": 1.5}}
    pd.testing.assert_frame_equal(store.table("s1", record=rec), df, check_exact=True)

    odd = df.assign(kind=pd.Categorical(["p", "q", "p"]))  # a type the JSON form does not hold
    assert encode_table(odd) is None
    store.save("s2", {"status": "ok"}, odd)
    assert (store.dir / "s2.parquet").is_file()
    pd.testing.assert_frame_equal(store.table("s2"), odd)
    store.save("s2", {"status": "ok"}, df)  # saved again in the JSON form: no stale Parquet
    assert not (store.dir / "s2.parquet").exists()
    pd.testing.assert_frame_equal(store.table("s2"), df)


def test_resume_reads_the_two_file_store_of_earlier_versions(tmp_path):
    """Earlier versions stored <id>.parquet + <id>.json and hashed inputs with SHA-256: such a store
    is resumed (its hashes checked with SHA-256), and a file changed since is recomputed."""
    import hashlib

    from cytophen.pipeline.worker import file_blake3

    make_batch(tmp_path / "in", n_good=4, bad=False)
    template = make_template()
    out = tmp_path / "out"
    first = cytophen.gate_files(tmp_path / "in", template, jobs=1, out=out, progress=False)
    store = SampleStore(out)
    for p in sorted(store.dir.glob("*.json")):  # rewrite as <id>.parquet + <id>.json
        rec = json.loads(p.read_text())
        table = decode_table(rec.pop("table"))
        table.to_parquet(p.with_suffix(".parquet"), index=False)
        del rec["blake3"]
        rec["sha256"] = hashlib.sha256(Path(rec["file"]).read_bytes()).hexdigest()
        p.write_text(json.dumps(rec))
    changed = sorted((tmp_path / "in").glob("*.fcs"))[0]
    changed.write_bytes(changed.read_bytes() + b" ")  # same events, other bytes
    again = cytophen.gate_files(
        tmp_path / "in", template, jobs=1, out=out, resume=True, progress=False
    )
    assert again.run["counts"]["resumed"] == 3 and again.run["counts"]["computed"] == 1
    pd.testing.assert_frame_equal(again.populations, first.populations, check_exact=True)
    for item in again.run["inputs"]:  # run.json carries the BLAKE3 of every input, resumed or not
        assert item["blake3"] == file_blake3(item["file"])


def test_preload_cython_blas_keeps_scipy_linalg_out_of_kernel_loading():
    code = """
import sys
import numpy as np
from cytophen.pipeline._fast_start import speed_up_start
assert speed_up_start(light_kernel_loads=False)["cython_blas"]
from cytophen.kernels import gating as k
v = np.random.default_rng(0).random((100, 2))
m = k.points_in_rectangle(v, np.zeros(2), np.full(2, 0.5), np.zeros(2, dtype=np.bool_))
assert m.sum() == ((v < 0.5).all(axis=1)).sum()
assert "numba.np.arraymath" in sys.modules and "scipy.linalg" not in sys.modules
from numba.np.arraymath import _HAVE_BLAS
assert _HAVE_BLAS  # numba found BLAS all the same
import scipy.linalg, scipy.linalg.cython_blas as cb  # and scipy.linalg still imports normally
assert cb is sys.modules["scipy.linalg.cython_blas"]
assert np.allclose(scipy.linalg.inv(np.diag([2.0, 4.0])), np.diag([0.5, 0.25]))
print("ok")
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_start_shortcuts_checked_against_the_installed_releases():
    """The shortcuts that patch numba's and scipy's internals are checked (by the tests above and
    below) only with the releases pinned in TESTED_RELEASES: an upgrade fails here until it has
    been checked and added there."""
    import numba
    import scipy

    from cytophen.pipeline._fast_start import TESTED_RELEASES

    for lib in (numba, scipy):
        release = ".".join(lib.__version__.split(".")[:2])
        assert release in TESTED_RELEASES[lib.__name__], (lib.__name__, lib.__version__)


def test_start_shortcuts_leave_untested_releases_alone():
    """With a release the shortcuts were not checked against, nothing is patched."""
    code = """
import sys
from cytophen.pipeline import _fast_start
_fast_start.TESTED_RELEASES.update(numba=("0.1",), scipy=("0.1",))
import numba.core.caching as caching
before = caching.Cache.load_overload
done = _fast_start.speed_up_start()
assert not done["cython_blas"] and not done["light_kernel_loads"], done
assert caching.Cache.load_overload is before and "scipy.linalg.cython_blas" not in sys.modules
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_marker_resolution_cache_keeps_errors_exact():
    from cytophen.errors import MarkerError
    from cytophen.markers import resolve

    channels, markers = ["FSC-A", "FL1-A", "FL2-A"], ["", "CD19 PE", "CD3"]
    for _ in range(2):  # the second time from the cache
        assert resolve(channels, markers, "CD19") == 1
        with pytest.raises(MarkerError, match="CD27") as err:
            resolve(channels, markers, "CD27", path="/data/x.fcs")
        assert "x.fcs" in str(err.value)
    assert resolve(channels, ["", "CD27", "CD3"], "CD27") == 1  # another panel: resolved anew


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning: Linux only")
def test_tune_malloc_in_a_process_of_ours():
    code = (
        "import platform; from cytophen.pipeline._fast_start import speed_up_start; "
        "ok = speed_up_start()['malloc']; print(ok == (platform.libc_ver()[0] == 'glibc'))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr


def test_threads_hand_over_to_the_pool_exactly(tmp_path, monkeypatch):
    """A batch long enough to start the pool (thresholds set to 0 here): samples gated on this
    process's threads before the workers are up and by the workers after are all exact."""
    from cytophen.pipeline.executors import InlineRunner, PoolRunner

    make_batch(tmp_path / "in", n_good=10, n_events_scale=20)
    template = make_template()
    tasks, options = runner_inputs(tmp_path / "in")
    monkeypatch.setattr(PoolRunner, "POOL_MIN_REMAINING_S", 0.0)
    monkeypatch.setattr(PoolRunner, "POOL_STARTUP_S", 0.0)
    with PoolRunner(template, options, 2) as runner:
        both = {t.safe_id: rec for t, rec in runner.run(tasks)}
        assert runner._pool is not None  # started after the first samples
        assert runner.describe()["threads_in_main_process"] == 2
    with InlineRunner(template, options) as runner:
        inline = {t.safe_id: rec for t, rec in runner.run(tasks)}
    assert set(both) == set(inline) and len(both) == len(tasks)
    for sid, rec in inline.items():
        assert both[sid].status == rec.status
        if rec.status == "ok":
            pd.testing.assert_frame_equal(both[sid].table, rec.table, check_exact=True)
            assert both[sid].gates == rec.gates


def test_light_numba_cache_loads_gate_exactly_and_skip_the_registries(tmp_path, monkeypatch):
    """In a process of ours, kernels come from numba's cache without numba installing its
    compiler registries first; every count (serial and parallel kernels, a compensated tree)
    equals gating in this process, and a kernel that is not cached is still compiled."""
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")
    make_batch(tmp_path / "in", n_good=2, bad=False, n_events_scale=150)  # > PARALLEL_MIN events
    files = sorted((tmp_path / "in").glob("*.fcs"))
    template = make_template()
    want = [cytophen.gate(cytophen.read_fcs(f), template).table["count"].tolist() for f in files]
    code = f"""
import sys, json
sys.path.insert(0, {str(ROOT / "tests")!r})
from cytophen.pipeline._fast_start import speed_up_start
assert speed_up_start()["light_kernel_loads"] and speed_up_start()["light_kernel_loads"]
import cytophen
from batch_support import make_template
t = make_template()
counts = [cytophen.gate(cytophen.read_fcs(f), t).table["count"].tolist() for f in {list(map(str, files))!r}]
light = "numba.np.arraymath" not in sys.modules
import numba  # a kernel numba has never seen: compiled, with the full registries
@numba.njit
def twice(x):
    return 2 * x
print(json.dumps({{"counts": counts, "light": light, "compiled": twice(21)}}))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"), CYTOPHEN_PARALLEL="always")
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["counts"] == want
    assert got["light"] is True
    assert got["compiled"] == 42
