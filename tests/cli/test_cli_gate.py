"""``cytophen gate`` as a user runs it: a real subprocess, exit codes, outputs, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import cytophen
from batch_support import make_batch, make_file, write_template

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=120, env=None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    return subprocess.run(
        [sys.executable, "-m", "cytophen.cli", "gate", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    truth = make_batch(root / "in", n_good=4)
    return root, truth, write_template(root)


def test_cli_mixed_batch_exit_1(data):
    root, truth, tpath = data
    out = root / "out"
    r = run_cli(root / "in", "--template", tpath, "--out", out, "--jobs", "2")
    assert r.returncode == 1, r.stderr
    errors = pd.read_csv(out / "errors.csv")
    assert sorted(errors["sample"]) == ["no_cd19", "notes", "truncated"]
    assert "3 failed" in r.stderr and "errors.csv" in r.stderr
    assert "\r" not in r.stderr  # no progress bar when stderr is not a terminal
    pops = pd.read_parquet(out / "populations.parquet")
    template = cytophen.load_template(tpath)
    for stem in truth:
        alone = cytophen.gate(
            cytophen.read_fcs(root / "in" / f"{stem}.fcs"), template, sample_id=stem
        ).table
        pd.testing.assert_frame_equal(pops[pops["sample"] == stem].reset_index(drop=True), alone)
    assert json.loads((out / "run.json").read_text())["counts"]["failed"] == 3


def test_cli_all_ok_exit_0_quiet(data, tmp_path):
    root, truth, tpath = data
    files = [root / "in" / f"{s}.fcs" for s in truth]
    r = run_cli(*files, "-t", tpath, "-o", tmp_path / "out", "-j", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    assert len(pd.read_csv(tmp_path / "out" / "populations.csv")) == 4 * len(truth)


def test_cli_invalid_template_exit_2_nothing_written(data, tmp_path, capsys):
    root, truth, tpath = data
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        tpath.read_text().replace(
            "parent: cells\n    gate: {kind: range", "parent: cels\n    gate: {kind: range"
        )
    )
    out = tmp_path / "out"
    code, err = main_inprocess(capsys, root / "in", "--template", bad, "--out", out)
    assert code == 2
    assert "bad.yaml" in err and "cels" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--compensation", "bogus"], "compensation"),
        (["--export-gated", "nope"], "nope"),
        (["--scheduler", "nowhere"], "scheduler"),
    ],
)
def test_cli_bad_options_exit_2(data, tmp_path, capsys, extra, message):
    root, truth, tpath = data
    out = tmp_path / "out"
    code, err = main_inprocess(capsys, root / "in", "--template", tpath, "--out", out, *extra)
    assert code == 2, err
    assert message in err
    assert not out.exists()


def test_cli_bad_inputs_exit_2(data, tmp_path, capsys):
    root, truth, tpath = data
    out = tmp_path / "out"
    code, err = main_inprocess(capsys, tmp_path / "missing", "--template", tpath, "--out", out)
    assert code == 2 and "does not exist" in err
    code, err = main_inprocess(capsys, "--template", tpath, "--out", out)
    assert code == 2 and "no inputs" in err
    code, err = main_inprocess(capsys, root / "in", "--out", out)
    assert code == 2 and "--template" in err
    make_file(tmp_path / "a" / "S1.fcs", 1)
    make_file(tmp_path / "b" / "S1.fcs", 2)
    code, err = main_inprocess(
        capsys, tmp_path / "a", tmp_path / "b", "--template", tpath, "--out", out
    )
    assert code == 2 and "unique" in err
    assert not out.exists()


def test_cli_report_flag(data, tmp_path, capsys):
    root, truth, tpath = data
    files = [root / "in" / f"{s}.fcs" for s in truth]
    code, err = main_inprocess(
        capsys, *files, "-t", tpath, "-o", tmp_path / "out", "-j", "1", "--report"
    )
    assert code == 0, err
    try:
        from cytophen.report.html import write_report  # noqa: F401
    except ImportError:
        assert "warning: --report" in err
    else:
        assert any(p.suffix == ".html" for p in (tmp_path / "out").rglob("*")), err
    # --report draws every sample's gating plots in the workers (one PNG per gate)
    for stem in truth:
        index = json.loads((tmp_path / "out" / "plots" / stem / "plots.json").read_text())
        pngs = list((tmp_path / "out" / "plots" / stem).glob("*.png"))
        assert len(pngs) == len(index["plots"]) >= 3
        assert not any(p.get("error") for p in index["plots"]), index


def test_plot_failure_is_a_flag_not_a_sample_error(data, tmp_path, capsys, monkeypatch):
    import cytophen.report.plots

    def boom(*a, **k):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(cytophen.report.plots, "save_sample_plots", boom)
    root, truth, tpath = data
    files = [root / "in" / f"{s}.fcs" for s in truth]
    code, err = main_inprocess(
        capsys, *files, "-t", tpath, "-o", tmp_path / "out", "-j", "1", "--plots"
    )
    assert code == 0, err
    assert "plots failed for 4 sample(s)" in err
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["counts"]["ok"] == 4 and run["options"]["plots"] is True
    assert all("no fonts" in i["plots_error"] for i in run["inputs"])


def main_inprocess(capsys, *args) -> tuple[int, str]:
    """``cytophen gate ARGS`` in this process (fast; exit code and stderr)."""
    from cytophen.cli import main

    code = main(["gate", *map(str, args)])
    return code, capsys.readouterr().err


def _finished(out: Path) -> list[Path]:
    d = out / ".cytophen" / "samples"
    return sorted(d.glob("*.json")) if d.is_dir() else []


@pytest.mark.slow
def test_cli_resume_after_kill(tmp_path):
    n_files = 40
    for i in range(n_files):
        make_file(
            tmp_path / "in" / f"s{i:02d}.fcs",
            1000 + i,
            n_b=40_000 + 97 * i,
            n_t=60_000,
            n_debris=20_000,
        )
    tpath = write_template(tmp_path)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))
    cmd = [
        sys.executable,
        "-m",
        "cytophen.cli",
        "gate",
        str(tmp_path / "in"),
        "-t",
        str(tpath),
        "-j",
        "1",
        "-q",
    ]

    # the reference: an uninterrupted run
    full = subprocess.run(
        [*cmd, "-o", str(tmp_path / "full")], env=env, capture_output=True, timeout=300
    )
    assert full.returncode == 0, full.stderr

    out = tmp_path / "out"
    proc = subprocess.Popen([*cmd, "-o", str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while len(_finished(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: no chance to clean up
        proc.wait()
    done = _finished(out)
    assert 3 <= len(done) < n_files, "the run was not interrupted mid-way"
    assert not (out / "populations.csv").exists()
    assert all("table" in json.loads(p.read_text()) for p in done)  # a record holds its table
    before = {p.name: p.stat().st_mtime_ns for p in done}

    # Ctrl-C: exit 130, a message saying how to go on, finished samples kept, no final tables
    out_int = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [*cmd, "-o", str(out_int)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(_finished(out_int)) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err
    assert 1 <= len(_finished(out_int)) < n_files and not (out_int / "populations.csv").exists()

    r = subprocess.run(
        [*cmd, "-o", str(out), "--resume"], env=env, capture_output=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["resumed"] == len(done)
    assert run["counts"]["computed"] == n_files - len(done)
    for p in done:  # finished samples were not recomputed
        assert p.stat().st_mtime_ns == before[p.name]
    for name in ("populations.csv", "populations_wide.csv", "errors.csv"):
        assert (out / name).read_text() == (tmp_path / "full" / name).read_text(), name
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "populations.parquet"),
        pd.read_parquet(tmp_path / "full" / "populations.parquet"),
    )


@pytest.mark.slow
def test_cli_scheduler_local_same_tables(data, tmp_path):
    pytest.importorskip("distributed")
    root, truth, tpath = data
    r = run_cli(
        root / "in",
        "-t",
        tpath,
        "-o",
        tmp_path / "dask",
        "--scheduler",
        "local",
        "-j",
        "1",
        timeout=180,
    )
    assert r.returncode == 1, r.stderr
    p = run_cli(root / "in", "-t", tpath, "-o", tmp_path / "pool", "-j", "2")
    assert p.returncode == 1, p.stderr
    for name in ("populations.csv", "errors.csv", "populations_wide.csv"):
        assert (tmp_path / "dask" / name).read_text() == (tmp_path / "pool" / name).read_text(), (
            name
        )
    run = json.loads((tmp_path / "dask" / "run.json").read_text())
    assert run["options"]["executor"] == "dask"


def test_cli_second_run_does_not_compile(data, tmp_path):
    """numba kernels are compiled once and cached on disk: a repeated run (main process and pool
    workers) only loads them."""
    root, truth, tpath = data
    env = {"NUMBA_DEBUG_CACHE": "1"}
    args = [root / "in" / "g0.fcs", root / "in" / "g1.fcs", "-t", tpath, "-j", "1", "-q"]
    first = run_cli(*args, "-o", tmp_path / "a", env=dict(os.environ, **env))
    assert first.returncode == 0, first.stderr
    second = run_cli(*args, "-o", tmp_path / "b", env=dict(os.environ, **env))
    assert second.returncode == 0, second.stderr
    log = second.stdout + second.stderr
    assert "data loaded from" in log  # the cache is in use ...
    assert "data saved to" not in log  # ... and nothing was compiled again


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Four good files of two 'panels', a manifest naming each row's panel and template."""
    from batch_support import TEMPLATE_YAML

    root = tmp_path_factory.mktemp("study")
    truth = make_batch(root / "in", n_good=4, bad=False)
    tpl = {}
    for panel in ("pa", "pb"):
        tpl[panel] = root / f"{panel}.yaml"
        tpl[panel].write_text(TEMPLATE_YAML.replace("name: batch-test", f"name: tmpl-{panel}"))
    rows = [("g0", "pa"), ("g1", "pb"), ("g2", "pa"), ("g3", "pb")]
    pd.DataFrame(
        {
            "file": [f"in/{s}.fcs" for s, _ in rows],
            "panel": [p for _, p in rows],
            "tmpl": [str(tpl[p]) for _, p in rows],  # ('template' is a result column)
        }
    ).to_csv(root / "manifest.csv", index=False)
    return root, truth, rows


def test_a_study_in_one_command_gates_each_row_with_the_template_it_names(study):
    root, truth, rows = study
    out = root / "out_study"
    r = run_cli(root / "manifest.csv", "--template-from", "tmpl", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    for panel in ("pa", "pb"):
        pops = pd.read_csv(out / panel / "populations.csv")
        assert sorted(pops["sample"].unique()) == [s for s, p in rows if p == panel]
        assert set(pops["template"]) == {f"tmpl-{panel}"}
        for s in pops["sample"].unique():  # counts as a run of that panel alone would give
            got = pops[pops["sample"] == s].set_index("population")["count"]
            assert got["b_cells"] == truth[s]["b_cells"]
        run = json.loads((out / panel / "run.json").read_text())
        assert run["options"]["where"] == {"tmpl": str(root / f"{panel}.yaml")}


def test_where_keeps_the_rows_of_one_panel(study):
    root, truth, rows = study
    tpl = root / "pa.yaml"
    out = root / "out_where"
    r = run_cli(root / "manifest.csv", "-t", tpl, "--where", "panel=pb", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    pops = pd.read_csv(out / "populations.csv")
    assert sorted(pops["sample"].unique()) == ["g1", "g3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "pannel=pa"], "no column 'pannel' in the manifest (panel, tmpl)"),
        (["--where", "panel=pc"], "no sample matches (values present: panel: pa, pb)"),
        (["--where", "panel"], "expected COLUMN=VALUE"),
        (["--template-from", "panel"], "--template-from panel = 'pa': "),
        ([], "give one of --template T or --template-from COLUMN"),
    ],
)
def test_bad_study_options_are_refused_before_anything_is_written(study, args, message):
    root, _, _ = study
    out = root / "out_bad"
    extra = ["-t", root / "pa.yaml"] if args and args[0] == "--where" else []
    r = run_cli(root / "manifest.csv", *extra, *args, "--out", out, "-q")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists()
