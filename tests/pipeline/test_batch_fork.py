"""Workers forked straight from the ``cytophen`` process: exactly the in-process records, a
crashing sample costs only itself, and only a caller that asks (``start_method='fork'``) forks
(each case runs in a fresh interpreter: the fork needs a process with no other thread and no
numba thread pool)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch_support import make_batch, make_file, write_template

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers are forked from the process on Linux only"
)

_SCRIPT = r"""
import json, os, sys
sys.path.insert(0, {tests!r})
import pandas as pd
import cytophen
from cytophen.pipeline import executors
from batch_support import crash_template, make_template, runner_inputs

template = crash_template(333) if {crash!r} else make_template()
tasks, options = runner_inputs({folder!r})
with executors.PoolRunner(template, options, 2, fork={allow!r}) as runner:
    pooled = {{t.sample: rec for t, rec in runner.run(tasks)}}
    info = runner.describe()
with executors.InlineRunner(template, options) as runner:
    inline = {{t.sample: rec for t, rec in runner.run(tasks)}}
me = ":%d" % os.getpid()
out = {{"info": info, "samples": {{}}}}
for sid, rec in inline.items():
    other = pooled[sid]
    same = other.status == rec.status and other.blake3 == rec.blake3
    if rec.status == "ok" and other.status == "ok":
        same = same and other.table.equals(rec.table) and other.gates == rec.gates
    elif rec.status != "ok" and other.status != "ok":
        same = same and (other.stage, other.message) == (rec.stage, rec.message)
    out["samples"][sid] = {{
        "same": bool(same), "status": other.status, "stage": other.stage,
        "message": other.message, "in_main": (other.worker or "").endswith(me),
    }}
print(json.dumps(out))
"""


def _run(folder: Path, *, allow: bool, crash: bool = False) -> dict:
    code = _SCRIPT.format(tests=str(TESTS), folder=str(folder), allow=allow, crash=crash)
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_forked_workers_gate_exactly_like_one_at_a_time(tmp_path):
    make_batch(tmp_path / "in", n_good=5)  # good files and three bad ones
    res = _run(tmp_path / "in", allow=True)
    assert res["info"]["workers_forked_from_main_process"] is True
    assert res["info"]["samples_gated_in_main_process"] == 0
    samples = res["samples"]
    assert all(s["same"] for s in samples.values()), samples
    assert not any(s["in_main"] for s in samples.values())  # gated in the forked workers
    assert sum(s["status"] == "ok" for s in samples.values()) == 5
    assert sum(s["status"] == "failed" for s in samples.values()) == 3


def test_a_crash_in_a_forked_worker_costs_only_its_sample(tmp_path):
    for i in range(6):
        make_file(tmp_path / "in" / f"s{i}.fcs", 50 + i, 100 + i, 200, 50)
    make_file(tmp_path / "in" / "crasher.fcs", 60, 111, 111, 111)  # 333 events: kills its worker
    res = _run(tmp_path / "in", allow=True, crash=True)
    assert res["info"]["workers_forked_from_main_process"] is True
    assert res["info"]["pool_restarts_after_worker_death"] == 1
    samples = res["samples"]
    crasher = samples.pop("crasher")
    assert crasher["status"] == "failed" and crasher["stage"] == "worker"
    assert "died" in crasher["message"]
    assert all(s["status"] == "ok" and s["same"] for s in samples.values()), samples


def test_workers_are_not_forked_unless_asked(tmp_path):
    """Without ``start_method='fork'`` (a notebook or script) no worker is forked from the
    caller's process: its samples are gated on its threads."""
    make_batch(tmp_path / "in", n_good=3, bad=False)
    res = _run(tmp_path / "in", allow=False)
    assert res["info"]["workers_forked_from_main_process"] is False
    assert res["info"]["threads_in_main_process"] >= 1
    assert all(s["same"] and s["in_main"] for s in res["samples"].values())


def test_cli_forked_outputs_equal_one_job(tmp_path):
    make_batch(tmp_path / "in", n_good=4)
    tpath = write_template(tmp_path)
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    for jobs in (1, 2):
        r = subprocess.run(
            [sys.executable, "-m", "cytophen.cli", "gate", str(tmp_path / "in"), "-t", str(tpath),
             "-o", str(tmp_path / f"out{jobs}"), "-j", str(jobs), "-q"],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert r.returncode == 1, r.stderr  # the three bad files
    run2 = json.loads((tmp_path / "out2" / "run.json").read_text())
    assert run2["options"]["workers_forked_from_main_process"] is True
    for name in ("populations.csv", "populations_wide.csv", "gates.json", "errors.csv"):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes(), (
            name
        )


def _processes_with(marker: str) -> list[int]:
    """Pids whose command line mentions ``marker`` (a unique output folder)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(d.name))
        except OSError:
            continue
    return found


def _wait_gone(marker: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _finished(out: Path) -> list[Path]:
    return list((out / ".cytophen" / "samples").glob("*.json"))


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9 of the main process"])
def test_interrupting_a_forked_batch_leaves_no_worker_behind(tmp_path, how):
    for i in range(30):
        make_file(
            tmp_path / "in" / f"s{i:02d}.fcs", 2000 + i, n_b=30_000, n_t=50_000, n_debris=20_000
        )
    tpath = write_template(tmp_path)
    out = tmp_path / f"out_{how.split()[0]}"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))
    cmd = [sys.executable, "-m", "cytophen.cli", "gate", str(tmp_path / "in"), "-t", str(tpath),
           "-o", str(out), "-j", "2", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    # interrupt once samples are being stored and both workers run (the batch may gate its
    # first samples in its own process while the pool starts: wait for the workers, not a time)
    while (
        (len(_finished(out)) < 2 or len(_processes_with(str(out))) < 3)
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    assert proc.poll() is None, "the batch ended before it could be interrupted"
    assert len(_processes_with(str(out))) == 3  # the batch process and its two forked workers
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole group
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "--resume" in err
        assert "Traceback" not in err  # the workers leave Ctrl-C to the batch process
    else:
        proc.kill()  # the main process only: its workers must not wait for work forever
        proc.communicate(timeout=60)
    assert _wait_gone(str(out), 20) == []
    assert 2 <= len(_finished(out)) < 30 and not (out / "populations.csv").exists()
