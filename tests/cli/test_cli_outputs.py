"""Every command's outputs are checked before anything is read or written: an output under a
file, in a folder that cannot be written, or of the wrong kind is exit 2 with one line, nothing
half-written, never a traceback. And the options that mean the same on every command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from batch_support import make_batch, make_file, write_template
from cytophen.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid inputs for every command, so that the output is the only thing wrong."""
    root = tmp_path_factory.mktemp("inputs")
    make_batch(root / "fcs", n_good=2, bad=False)
    tpath = write_template(root)
    (root / "merged.csv").write_text("sample,subject,visit,population,percent_of_parent\n")
    (root / "clinical.csv").write_text("subject,visit,SLEDAI\nP1,W0,10\n")
    (root / "match.csv").write_text("file,channel\ng0.fcs,FL1-A\n")
    results = root / "results"
    results.mkdir()
    return root, tpath, results


def _commands(root: Path, tpath: Path, results: Path) -> dict[str, tuple[str, list[str]]]:
    """command -> (kind of output, arguments without the output)."""
    fcs = root / "fcs" / "g0.fcs"
    return {
        "gate": ("dir", ["gate", str(root / "fcs"), "-t", str(tpath), "-j", "1"]),
        "simulate": ("dir", ["simulate", "--panel", "bcell", "--events", "1000"]),
        "demo": ("dir", ["demo", "--events", "1000"]),
        "stats": ("dir", ["stats", str(root / "merged.csv")]),
        "score": ("file", ["score", str(root / "fcs"), "-t", str(tpath)]),
        "merge": ("file", ["merge", str(results), "--clinical", str(root / "clinical.csv")]),
        "report": ("file", ["report", str(results)]),
        "convert": ("file", ["convert", str(tpath), "--format", "gatingml"]),
        "compensation show": ("file", ["compensation", "show", str(fcs)]),
        "compensation compute": (
            "file",
            [
                "compensation",
                "compute",
                "--controls",
                str(root / "fcs"),
                "--unstained",
                "g1.fcs",
                "--match",
                str(root / "match.csv"),
            ],
        ),  # fmt: skip
        "templates copy": ("file", ["templates", "copy", "bcell"]),
    }


COMMANDS = list(_commands(Path("r"), Path("t"), Path("s")))


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a 0555 folder, or (as root, who may write in
    any folder) the kernel's /sys, where not even root can create a file."""
    ro = tmp_path / "read_only"
    ro.mkdir()
    ro.chmod(
        stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    )
    for folder in (ro, Path("/sys")):
        try:
            fd, probe = tempfile.mkstemp(dir=folder)
        except OSError:
            return folder
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no folder here refuses new files (not 0555, not /sys)")


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _run(capsys, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


BAD_OUTPUTS = [
    (command, bad)
    for command in COMMANDS
    for bad in ("under_a_file", "read_only", "wrong_kind")
    if (command, bad) != ("templates copy", "wrong_kind")  # copy into a folder: NAME.yaml in it
]


@pytest.mark.parametrize("command, bad", BAD_OUTPUTS)
def test_bad_output_exits_2_with_one_line_and_writes_nothing(
    command, bad, inputs, tmp_path, capsys, monkeypatch
):
    root, tpath, results = inputs
    kind, args = _commands(root, tpath, results)[command]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # relative defaults (demo/, NAME.yaml) land here, if anywhere
    a_file = work / "notes.txt"
    a_file.write_text("not a folder\n")
    if bad == "under_a_file":
        out = a_file / ("out" if kind == "dir" else "out.csv")
    elif bad == "read_only":
        out = _read_only_folder(tmp_path) / ("out" if kind == "dir" else "out.csv")
    else:  # a file where a folder is wanted, a folder where a file is wanted
        out = a_file if kind == "dir" else work
    before_work, before_inputs = _snapshot(work), _snapshot(root)

    code, err = _run(capsys, [*args, "-o", out])

    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert str(out) in lines[0] and "Traceback" not in err
    assert _snapshot(work) == before_work and _snapshot(root) == before_inputs
    assert a_file.read_text() == "not a folder\n"
    if bad == "read_only" and out.parent != Path("/sys"):
        assert not any(out.parent.iterdir())


def test_read_only_message_says_why(inputs, tmp_path, capsys):
    root, tpath, _ = inputs
    ro = _read_only_folder(tmp_path)
    code, err = _run(capsys, ["gate", root / "fcs", "-t", tpath, "-o", ro / "out"])
    assert code == 2
    assert "cannot write" in err and ("Permission denied" in err or "Read-only" in err), err


def test_gate_default_output_unusable_working_folder_exits_2(inputs, tmp_path, capsys, monkeypatch):
    root, tpath, _ = inputs
    monkeypatch.chdir(_read_only_folder(tmp_path))
    code, err = _run(capsys, ["gate", root / "fcs", "-t", tpath, "-j", "1"])
    assert code == 2 and "batch-test_results" in err and "cannot write" in err, err


def test_gate_resume_needs_out(inputs, tmp_path, capsys, monkeypatch):
    root, tpath, _ = inputs
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, ["gate", root / "fcs", "-t", tpath, "--resume"])
    assert code == 2 and "--resume needs --out" in err
    assert list(tmp_path.iterdir()) == []


def test_every_command_that_writes_takes_o_and_q():
    """-o/--out and -q/--quiet are one option with one meaning wherever they appear."""
    from cytophen.cli import COMMANDS as ALL
    from cytophen.cli import cli

    seen = 0
    for name in ALL:
        cmd = cli.get_command(None, name)
        subs = list(cmd.commands.values()) if hasattr(cmd, "commands") else [cmd]
        for sub in subs:
            opts = {o.name: o for o in sub.params}
            outs = [o for o in sub.params if "--out" in getattr(o, "opts", [])]
            if outs:
                assert outs[0].opts[:2] == ["-o", "--out"], (name, sub.name, outs[0].opts)
                assert "quiet" in opts, (name, sub.name)
                seen += 1
            if "quiet" in opts:
                assert opts["quiet"].opts == ["-q", "--quiet"], (name, sub.name)
                assert (
                    opts["quiet"].help == "Print only warnings and errors (no progress or summary)."
                )
    assert seen >= 11


def test_quiet_commands_print_nothing(inputs, tmp_path, capsys):
    root, tpath, _ = inputs
    code = main(["convert", str(tpath), "-o", str(tmp_path / "t.xml"), "-q"])
    assert code == 0 and (tmp_path / "t.xml").is_file()
    code = main(
        ["simulate", "-o", str(tmp_path / "sim"), "--panel", "treg", "--events", "1000", "-q"]
    )
    assert code == 0 and len(list((tmp_path / "sim").glob("*.fcs"))) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_python_dash_m_cytophen(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))
    r = subprocess.run(
        [sys.executable, "-m", "cytophen", "--version"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0 and r.stdout.startswith("cytophen, version "), r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "cytophen", "gate", "-t", "bcell", "-o", str(tmp_path / "x")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert r.returncode == 2 and "no inputs" in r.stderr
    assert not (tmp_path / "x").exists()


# -- --repairs: the option the truncated-file error names -----------------------------------------


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    """A file cut in half, and how many whole events are left (from its own HEADER offsets)."""
    folder = tmp_path_factory.mktemp("truncated")
    make_file(folder / "whole.fcs", 3)
    data = (folder / "whole.fcs").read_bytes()
    begin = int(data[26:34])  # HEADER: DATA begins at this byte (FCS 3.1 HEADER, bytes 26-33)
    cut = folder / "cut" / "half.fcs"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    n_channels, bytes_per_value = 6, 4  # make_file: 6 float32 channels
    return cut, (len(data) // 2 - begin) // (n_channels * bytes_per_value)


def test_truncated_file_error_names_the_option_that_reads_it(truncated, capsys):
    cut, _ = truncated
    code, err = _run(capsys, ["info", cut])
    assert code == 2 and "--repairs truncated_data" in err


def test_info_repairs_reads_the_complete_events(truncated, capsys):
    cut, n_whole = truncated
    code = main(["info", str(cut), "--json", "--repairs", "truncated_data"])
    out = capsys.readouterr()
    d = json.loads(out.out)
    assert code == 0 and d["events"] == n_whole
    assert any("truncated_data" in w for w in d["warnings"])  # applied, and said so


@pytest.mark.filterwarnings("ignore::cytophen.errors.FCSWarning")  # the repair, as asked
def test_gate_repairs_reaches_the_workers_and_run_json(truncated, tmp_path, capsys):
    cut, n_whole = truncated
    tpath = write_template(tmp_path)
    code, err = _run(
        capsys, ["gate", cut.parent, "-t", tpath, "-o", tmp_path / "strict", "-j", "1"]
    )
    assert code == 1  # the default repairs refuse it: the sample fails, with the option to pass
    assert (
        "--repairs truncated_data" in pd.read_csv(tmp_path / "strict" / "errors.csv")["message"][0]
    )
    out = tmp_path / "repaired"
    code, err = _run(
        capsys,
        ["gate", cut.parent, "-t", tpath, "-o", out, "-j", "1", "--repairs", "truncated_data"],
    )
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"][0]["n_events"] == n_whole
    assert (
        "truncated_data" in run["options"]["repairs"] and "off_by_one" in run["options"]["repairs"]
    )


def test_repairs_none_is_strict_and_unknown_names_exit_2(capsys):
    from cytophen.cli._common import Invalid, parse_repairs
    from cytophen.io.fcs import DEFAULT_REPAIRS, REPAIRS

    assert parse_repairs(None) == DEFAULT_REPAIRS
    assert parse_repairs("truncated_data") == DEFAULT_REPAIRS | {"truncated_data"}
    assert parse_repairs("none") == frozenset()
    assert parse_repairs("none,off_by_one") == {"off_by_one"}
    assert parse_repairs("all") == REPAIRS
    with pytest.raises(Invalid, match="known: "):
        parse_repairs("off_by_two")
    code, err = _run(capsys, ["info", "x.fcs", "--repairs", "off_by_two"])
    assert code == 2 and "off_by_two" in err


def test_repairs_on_every_command_that_reads_fcs_files():
    from cytophen.cli import cli

    readers = {
        ("info",): "info",
        ("compensation", "show"): "show",
        ("compensation", "compute"): "compute",
        ("validate",): "validate",
        ("gate",): "gate",
        ("score",): "score",
        ("convert",): "convert",  # --fcs: the files a FlowJo workspace places the gates on
    }
    for path in readers:
        cmd = cli.get_command(None, path[0])
        if len(path) == 2:
            cmd = cmd.commands[path[1]]
        assert "repairs" in {p.name for p in cmd.params}, path


# -- files and info -------------------------------------------------------------------------------


def test_simulated_and_exported_fcs_follow_the_umask(inputs, tmp_path):
    root, tpath, _ = inputs
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache"))

    def cytophen(*args):
        r = subprocess.run(
            [sys.executable, "-m", "cytophen", *map(str, args)],
            capture_output=True, text=True, env=env, preexec_fn=lambda: os.umask(0o027),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr

    cytophen("simulate", "-o", tmp_path / "sim", "--panel", "treg", "--events", "1000", "-q")
    cytophen("gate", root / "fcs", "-t", tpath, "-o", tmp_path / "out", "-j", "1", "-q",
             "--export-gated", "b_cells")  # fmt: skip
    written = [*(tmp_path / "sim").glob("*.fcs"), *(tmp_path / "out" / "gated").glob("*.fcs")]
    assert len(written) == 3
    for path in [*written, tmp_path / "out" / "populations.csv"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_info_single_data_set_says_just_one(inputs, capsys):
    root, _, _ = inputs
    code = main(["info", str(root / "fcs" / "g0.fcs")])
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("data sets:"))
    assert line.split() == ["data", "sets:", "1"]
