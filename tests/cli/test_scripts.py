"""The batch API in an ordinary script (no ``if __name__ == "__main__":`` guard), the per-sample time
limit, a lost Dask scheduler, one file without a pool, and the per-user kernel cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import cytophen
from batch_support import make_file, write_template

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))

NO_GUARD = textwrap.dedent(
    """
    import json, os, sys
    import cytophen
    from cytophen.pipeline.executors import PoolRunner

    init = PoolRunner.__init__
    def __init__(self, *args, **kwargs):  # every sample to worker processes, as in a long batch
        init(self, *args, **kwargs)
        self.gate_while_starting = False
    PoolRunner.__init__ = __init__
    print("script body runs", flush=True)
    src, template, out = sys.argv[1:4]
    runs = {
        "pool": dict(jobs=2, plots=True),
        "dask": dict(jobs=2, scheduler="local"),
        "timed": dict(jobs=2, time_limit=300),
    }
    for name, kw in runs.items():
        res = cytophen.gate_files(src, template, out=os.path.join(out, name), progress=False, **kw)
        print(name, res.n_ok, res.n_failed, flush=True)
    print("main pid", os.getpid())
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripts")
    for i in range(6):
        make_file(root / "in" / f"s{i}.fcs", 40 + i, n_b=400 + 10 * i, n_t=600)
    return root, write_template(root)


@pytest.mark.slow
def test_plain_script_without_main_guard(files, tmp_path):
    """jobs=2 with plots (worker processes), the local Dask scheduler and the time limit from a
    script that has no __main__ guard: the script runs once, no traceback, the tables equal a
    one-at-a-time run's."""
    root, tpath = files
    script = tmp_path / "analysis.py"
    script.write_text(NO_GUARD)
    r = subprocess.run(
        [sys.executable, str(script), str(root / "in"), str(tpath), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("script body runs") == 1, r.stdout  # never re-run by a worker
    assert "Traceback" not in r.stderr and "BrokenProcessPool" not in r.stderr, r.stderr
    for name in ("pool", "dask", "timed"):
        assert f"{name} 6 0" in r.stdout

    main_pid = r.stdout.split("main pid")[1].split()[0]
    ref = cytophen.gate_files(root / "in", tpath, jobs=1, progress=False).populations
    for name in ("pool", "dask", "timed"):
        out = tmp_path / "out" / name
        run = json.loads((out / "run.json").read_text())
        pids = {i["worker"].rsplit(":", 1)[1] for i in run["inputs"]}
        assert main_pid not in pids, f"{name}: gated in the script's own process"
        pops = pd.read_csv(out / "populations.csv")
        pd.testing.assert_frame_equal(
            pops[["sample", "population", "count"]],
            ref[["sample", "population", "count"]].astype({"count": "int64"}),
        )
    assert len(list((tmp_path / "out" / "pool" / "plots").iterdir())) == 6


TIMED = textwrap.dedent(
    """
    import sys, time
    import cytophen.engine as engine
    real = engine.gate
    def gate(sample, template, **kw):  # one sample that never finishes
        if kw.get("sample_id") == "s3":
            time.sleep(3600)
        return real(sample, template, **kw)
    engine.gate = gate
    from cytophen.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_time_limit_stops_one_sample(files, tmp_path):
    """--time-limit: the sample that never finishes becomes an errors.csv row (stage timeout);
    the others are gated as without a limit."""
    root, tpath = files
    wrapper = tmp_path / "timed.py"
    wrapper.write_text(TIMED)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(wrapper), "gate", str(root / "in"), "-t", str(tpath), "-o",
         str(out), "-j", "2", "--time-limit", "5"],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    errors = pd.read_csv(out / "errors.csv")
    assert errors["sample"].tolist() == ["s3"] and errors["stage"].tolist() == ["timeout"]
    assert "time limit of 5 s" in errors["message"][0]
    pops = pd.read_csv(out / "populations.csv")
    ref = cytophen.gate_files(root / "in", tpath, jobs=1, progress=False).populations
    ref = ref[ref["sample"] != "s3"].reset_index(drop=True)
    assert pops["count"].tolist() == ref["count"].astype(int).tolist()
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["samples_timed_out"] == 1 and run["options"]["time_limit_s"] == 5


def test_time_limit_options_are_checked(files, tmp_path):
    root, tpath = files
    with pytest.raises(cytophen.CytophenError, match="time limit cannot be used with a Dask"):
        cytophen.gate_files(root / "in", tpath, scheduler="local", time_limit=10,
                            out=tmp_path / "o")  # fmt: skip
    with pytest.raises(cytophen.CytophenError, match="time_limit"):
        cytophen.gate_files(root / "in", tpath, time_limit=0, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_lost_dask_scheduler_is_named(files, tmp_path, monkeypatch):
    """The scheduler dies after the first sample: the samples left are errors saying the
    connection to the scheduler was lost, not that a worker died."""
    pytest.importorskip("distributed")
    from cytophen.pipeline import _dask_local
    from cytophen.pipeline.storage import SampleStore

    root, tpath = files
    proc, address = _dask_local.start(1)
    real_save = SampleStore.save

    def save_then_lose_scheduler(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        if proc.poll() is None:
            proc.kill()  # the scheduler's process, with its workers' nanny
            proc.wait()

    monkeypatch.setattr(SampleStore, "save", save_then_lose_scheduler)
    try:
        res = cytophen.gate_files(root / "in", tpath, scheduler=address, out=tmp_path / "o",
                                  progress=False)  # fmt: skip
    finally:
        _dask_local.stop(proc)
    assert res.n_ok >= 1 and res.n_failed >= 1
    assert set(res.errors["stage"]) == {"scheduler"}
    assert all("connection to the Dask scheduler" in m for m in res.errors["message"])
    assert not any("worker process" in m for m in res.errors["message"])


def test_one_file_is_gated_without_a_pool(files, tmp_path):
    root, tpath = files
    res = cytophen.gate_files(root / "in" / "s0.fcs", tpath, out=tmp_path / "o", progress=False)
    assert res.run["options"]["executor"] == "inline"


def test_kernel_cache_in_the_user_cache_folder(tmp_path):
    code = "import os, cytophen, numba; print(os.environ['NUMBA_CACHE_DIR']); print(numba.config.CACHE_DIR)"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)  # fmt: skip
    want = str(tmp_path / "xdg" / "cytophen" / "numba")
    assert r.returncode == 0 and r.stdout.split() == [want, want], r.stderr
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")  # the user's choice wins
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)  # fmt: skip
    assert r.stdout.split() == [str(tmp_path / "mine")] * 2
