"""One run per output folder, outputs replaced as one set: a second run is refused (or waits)
while the first holds the folder, a ``kill -9`` at any write step leaves the folder showing one
run's outputs (the earlier run's or the new run's, never a mix), and ``--resume`` then gives the
tables an uninterrupted run gives. Stale temporary files are removed by the next run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import cytophen
from batch_support import TEMPLATE_YAML, make_file
from cytophen._atomic import is_temp_name
from cytophen.pipeline.outdir import OUTPUTS, FolderInUseError, OutputFolder

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))

#: ``python WRAPPER gate ...``: the cytophen command, stopped (SIGSTOP) just before it writes its
#: populations.csv when CYTOPHEN_TEST_STOP is set.
WRAPPER = textwrap.dedent(
    """
    import os, signal, sys
    from cytophen.pipeline import batch
    real = batch.write_csv
    def write_csv(path, df):
        if os.environ.get("CYTOPHEN_TEST_STOP") and path.name == "populations.csv":
            os.kill(os.getpid(), signal.SIGSTOP)
        real(path, df)
    batch.write_csv = write_csv
    from cytophen.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two good files and one truncated file; template A, and B with another CD19 cut (so that
    B's counts differ from A's)."""
    root = tmp_path_factory.mktemp("outdir")
    make_file(root / "in" / "g0.fcs", 11, n_b=200, n_t=300)
    make_file(root / "in" / "g1.fcs", 12, n_b=250, n_t=250)
    good = (root / "in" / "g1.fcs").read_bytes()
    (root / "in" / "cut.fcs").write_bytes(good[: len(good) // 2])
    a = root / "a.yaml"
    a.write_text(TEMPLATE_YAML)
    b = root / "b.yaml"
    b.write_text(
        TEMPLATE_YAML.replace("name: batch-test", "name: batch-test-b").replace(
            "min: [1000, null]", "min: [5000, null]"
        )
    )
    wrapper = root / "wrapper.py"
    wrapper.write_text(WRAPPER)
    return root, a, b, wrapper


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def _wait_stopped(proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _stopped(proc.pid):
        assert proc.poll() is None, "the first run ended before its write"
        assert time.monotonic() < deadline, "the first run never reached its write"
        time.sleep(0.01)


def _shown_template(out: Path) -> str:
    """The one template every output of ``out`` comes from (asserting they agree)."""
    run = json.loads((out / "run.json").read_text())
    gates = json.loads((out / "gates.json").read_text())
    pops = pd.read_csv(out / "populations.csv")
    pq = pd.read_parquet(out / "populations.parquet")
    names = {run["template"]["name"], gates["template"], *pops["template"], *pq["template"]}
    assert len(names) == 1, f"outputs of two runs mixed: {names}"
    return names.pop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see SIGSTOP")
def test_second_run_refused_or_waits_while_first_writes(inputs, tmp_path):
    root, a, b, wrapper = inputs
    out = tmp_path / "res"
    gate = [sys.executable, str(wrapper), "gate", str(root / "in"), "-j", "1", "-o", str(out)]

    first = subprocess.Popen([*gate, "-t", str(a), "-q"], env=dict(ENV, CYTOPHEN_TEST_STOP="1"))
    try:
        _wait_stopped(first)  # stopped at its write: the race made deterministic
        second = subprocess.run([*gate, "-t", str(b)], env=ENV, capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"PID {first.pid}" in second.stderr and "started" in second.stderr
        assert "--wait" in second.stderr
        # the refused run wrote nothing: every stored sample is the first run's
        stored = [json.loads(p.read_text()) for p in (out / ".cytophen/samples").glob("*.json")]
        assert stored and {s["options"]["template_hash"] for s in stored} == {
            cytophen.load_template(a).hash
        }
    finally:
        os.kill(first.pid, signal.SIGCONT)
        first.wait(120)
    assert first.returncode == 1  # the truncated file
    assert _shown_template(out) == "batch-test"

    # --wait: the second run waits for the first, then replaces its outputs
    first = subprocess.Popen([*gate, "-t", str(a), "-q"], env=dict(ENV, CYTOPHEN_TEST_STOP="1"))
    try:
        _wait_stopped(first)
        waiting = subprocess.Popen([*gate, "-t", str(b), "--wait"], env=ENV,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        lines = [waiting.stderr.readline() for _ in range(3)]  # template:, output:, waiting
        line = next((x for x in lines if x.startswith("waiting")), lines)
        assert "waiting for the run holding the output folder" in line and str(first.pid) in line
        assert waiting.poll() is None
    finally:
        os.kill(first.pid, signal.SIGCONT)
        first.wait(120)
    waiting.communicate(timeout=120)
    assert first.returncode == 1 and waiting.returncode == 1
    assert _shown_template(out) == "batch-test-b"


def test_lock_dies_with_its_process(tmp_path):
    out = tmp_path / "res"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from cytophen.pipeline.outdir import OutputFolder
            OutputFolder({str(out)!r}).acquire()
            print("held", flush=True)
            time.sleep(600)
            """)],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUseError, match=f"PID {holder.pid} on "):
            OutputFolder(out).acquire()
    finally:
        holder.kill()  # kill -9: no chance to release anything
        holder.wait()
    folder = OutputFolder(out)
    folder.acquire()  # free again
    with pytest.raises(FolderInUseError):  # and two holders in one process exclude each other
        OutputFolder(out).acquire()
    folder.release()
    OutputFolder(out).acquire()


# ------------------------------------------------------------------------------------------------
# kill -9 at every write step
# ------------------------------------------------------------------------------------------------
#: Runs in its own process (kernels loaded once, no thread pool started) and forks one child per
#: run: run A (with exported events) twice, then run B (another template, no export) over it. A child runs the batch with every call that changes the file system (os.replace, rename,
#: link, symlink, unlink, rmdir, mkdir) counted, and kills itself with SIGKILL just before the
#: call numbered ``kill_at``. For each kill point the folder is copied as the kill left it (for
#: the test to check), then the run is finished with --resume.
DRIVER = textwrap.dedent(
    """
    import json, os, shutil, signal, sys
    import cytophen
    from cytophen.kernels._parallel import serial_only

    with serial_only():  # the kernels, loaded here once for every child
        import cytophen.pipeline._warm

    args = json.loads(sys.argv[1])
    WATCHED = ("replace", "rename", "link", "symlink", "unlink", "rmdir", "mkdir")

    def child(out, template, kill_at, resume):
        export = "b_cells" if template == args["a"] else None
        calls = [0]
        for name in WATCHED:
            real = getattr(os, name)
            def wrapped(*a, _real=real, **k):
                calls[0] += 1
                if calls[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return _real(*a, **k)
            setattr(os, name, wrapped)
        cytophen.gate_files(args["inputs"], template, jobs=1, out=out, resume=resume,
                            progress=False, export_gated=export)
        return calls[0]

    def run(out, template, kill_at=0, resume=False):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, str(child(out, template, kill_at, resume)).encode())
            os._exit(0)
        os.close(w)
        n = os.read(r, 100)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        return {"killed": os.WIFSIGNALED(status), "steps": int(n) if n else None}

    tmp, a, b = args["tmp"], args["a"], args["b"]
    start = os.path.join(tmp, "start")  # run A twice: a current and an earlier generation
    for folder, template, times in ((start, a, 2), (os.path.join(tmp, "ref_b"), b, 1)):
        for _ in range(times):
            assert not run(folder, template)["killed"]
    probe = os.path.join(tmp, "probe")
    shutil.copytree(start, probe, symlinks=True)
    steps = run(probe, b)["steps"]
    results = []
    for k in range(1, steps + 1):
        out = os.path.join(tmp, f"k{k}")
        shutil.copytree(start, out, symlinks=True)
        killed = run(out, b, kill_at=k)["killed"]
        shutil.copytree(out, out + "-killed", symlinks=True)
        resumed = run(out, b, resume=True)
        results.append({"k": k, "killed": killed, "resume_killed": resumed["killed"]})
    print(json.dumps({"steps": steps, "results": results}))
    """
)


def _tables(out: Path) -> dict:
    return {
        **{
            n: (out / n).read_bytes()
            for n in ("populations.csv", "populations_wide.csv", "errors.csv", "gates.json")
        },  # fmt: skip
        "parquet": pd.read_parquet(out / "populations.parquet"),
        "gated": {p.name: p.read_bytes() for p in sorted((out / "gated").iterdir())}
        if (out / "gated").exists()
        else {},
        "template": json.loads((out / "run.json").read_text())["template"]["hash"],
    }


def _same(got: dict, want: dict) -> bool:
    return all(
        got[k].equals(want[k]) if isinstance(want[k], pd.DataFrame) else got[k] == want[k]
        for k in want
    )


def _check_clean(out: Path) -> None:
    """After a finished run: no temporary file anywhere, the earlier generation kept at most,
    every output a link that resolves."""
    left = [p for p in out.rglob("*") if is_temp_name(p.name)]
    assert not left, f"temporary files left: {left}"
    assert len(list((out / ".cytophen" / "generations").iterdir())) <= 2
    for name in OUTPUTS:
        assert (out / name).is_symlink() and (out / name).exists(), name
    for name in ("plots", "gated"):  # present when the run wrote them, never dangling
        assert (out / name).exists() or not (out / name).is_symlink(), name


@pytest.mark.slow
def test_kill_9_at_every_write_step_then_resume(inputs, tmp_path):
    root, a, b, _ = inputs
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    arg = json.dumps({"inputs": str(root / "in"), "a": str(a), "b": str(b), "tmp": str(tmp_path)})
    r = subprocess.run([sys.executable, str(driver), arg], capture_output=True, text=True,
                       timeout=1200, env=ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    steps = report["steps"]
    assert steps > 20
    want_a, want_b = _tables(tmp_path / "start"), _tables(tmp_path / "ref_b")
    assert want_a["populations.csv"] != want_b["populations.csv"]
    assert _same(_tables(tmp_path / "probe"), want_b)

    shown = {"A": 0, "B": 0}
    for res in report["results"]:
        k = res["k"]
        assert res["killed"] and not res["resume_killed"], res
        # right after the kill: the folder shows run A whole, or run B whole
        got = _tables(tmp_path / f"k{k}-killed")
        if _same(got, want_a):
            shown["A"] += 1
        else:
            assert _same(got, want_b), f"kill at step {k} of {steps}: outputs of two runs mixed"
            shown["B"] += 1
        # --resume finished run B: the tables of the uninterrupted run, nothing stale left
        assert _same(_tables(tmp_path / f"k{k}"), want_b), f"kill at step {k}: resume differs"
        _check_clean(tmp_path / f"k{k}")
    assert shown["A"] and shown["B"]  # kills before and after the switch were both exercised


def test_stale_temporary_files_are_removed_and_others_kept(inputs, tmp_path):
    root, a, _, _ = inputs
    out = tmp_path / "res"
    cytophen.gate_files(root / "in", a, jobs=1, out=out, progress=False, export_gated="b_cells")
    meta = out / ".cytophen"
    stale = [
        out / ".errors.csv.k2j3h4g5.tmp",  # a flat-layout table write
        meta / "samples" / ".g0.json.abcdefgh.tmp",
        meta / "gated" / ".g0.fcs.12345678.tmp",  # a partial export
        meta / ".current.0badf00d.tmp",
    ]
    for p in stale:
        p.write_bytes(b"partial")
    orphan = meta / "generations" / "20000101T000000-1-abcdef"  # a run killed before its switch
    orphan.mkdir()
    (orphan / "populations.csv").write_text("partial")
    foreign = out / ".notes.txt.abcdefgh.tmp"  # not ours: left alone
    foreign.write_text("someone else's")
    res = cytophen.gate_files(root / "in", a, jobs=1, out=out, progress=False, resume=True,
                              export_gated="b_cells")  # fmt: skip
    assert res.run["counts"]["resumed"] == 2
    assert not any(p.exists() for p in stale) and not orphan.exists()
    assert foreign.exists()
    foreign.unlink()
    _check_clean(out)


def test_a_folder_written_before_generations_is_adopted(inputs, tmp_path):
    """Results written with real files (earlier cytophen versions): --resume reuses their
    samples, plots included, and the folder then has the generation layout."""
    root, a, _, _ = inputs
    out = tmp_path / "res"
    first = cytophen.gate_files(root / "in", a, jobs=1, out=out, progress=False, plots=True)
    want = (out / "populations.csv").read_bytes()
    gen = (out / ".cytophen" / "current").resolve()
    for name in OUTPUTS:  # rebuild the flat layout
        (out / name).unlink()
        shutil.copy(gen / name, out / name)
    (out / "plots").unlink()
    shutil.move(out / ".cytophen" / "plots", out / "plots")
    (out / ".cytophen" / "current").unlink()
    shutil.rmtree(out / ".cytophen" / "generations")
    assert (out / "plots" / "g0" / "plots.json").is_file()

    res = cytophen.gate_files(root / "in", a, jobs=1, out=out, progress=False, plots=True,
                              resume=True)  # fmt: skip
    assert res.run["counts"]["resumed"] == first.n_ok == 2
    assert (out / "populations.csv").read_bytes() == want
    assert (out / "plots" / "g0" / "plots.json").is_file() and (out / "plots").is_symlink()
    _check_clean(out)


def test_reader_sees_one_generation(inputs, tmp_path):
    """load_results reads the generation ``current`` points to, resolved once."""
    from cytophen.report.html import load_results

    root, a, b, _ = inputs
    out = tmp_path / "res"
    cytophen.gate_files(root / "in", a, jobs=1, out=out, progress=False)
    res_a = load_results(out)
    cytophen.gate_files(root / "in", b, jobs=1, out=out, progress=False)
    res_b = load_results(out)
    assert set(res_a.populations["template"]) == {"batch-test"}
    assert set(res_b.populations["template"]) == {"batch-test-b"}
    assert res_b.run["template"]["name"] == "batch-test-b"


def test_resume_never_reuses_plots_of_an_earlier_gating(inputs, tmp_path):
    """Plots drawn with template A, the samples then gated with B without plots: resuming B with
    plots draws B's plots instead of taking A's."""
    root, a, b, _ = inputs
    out = tmp_path / "res"
    cytophen.gate_files(root / "in", a, jobs=1, out=out, progress=False, plots=True)
    cytophen.gate_files(root / "in", b, jobs=1, out=out, progress=False)
    assert not (out / "plots").exists()
    res = cytophen.gate_files(root / "in", b, jobs=1, out=out, progress=False, plots=True,
                              resume=True)  # fmt: skip
    assert res.run["counts"]["resumed"] == 0  # the plots had to be drawn
    hash_b = cytophen.load_template(b).hash
    for sample in ("g0", "g1"):
        meta = json.loads((out / "plots" / sample / "plots.json").read_text())
        assert meta["template_hash"] == hash_b
