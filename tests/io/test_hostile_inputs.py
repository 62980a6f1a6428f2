"""Inputs built to exhaust time or memory stay bounded: a template whose YAML aliases expand
exponentially, an oversized template, a file with 20 000 channels, long output names, a sparse
input file, control characters in names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytophen
from batch_support import (
    CHANNELS,
    MARKERS,
    TEMPLATE_YAML,
    make_template,
    simulate_events,
    write_template,
)
from cytophen.errors import FCSError, TemplateError

ROOT = Path(__file__).resolve().parents[2]


def _alias_bomb(levels: int = 8, fan: int = 10) -> str:
    """700 bytes of YAML that expand to fan**levels values (10**8 here)."""
    lines = ["meta:", "  a0: &a0 [" + ", ".join(["x"] * fan) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_under_a_memory_limit(tmp_path):
    """The bomb under ``meta:`` of an otherwise valid template: exit 2 with a message, inside a
    1 GiB address-space limit (expanding it took 7 GB)."""
    bomb = _alias_bomb()
    assert len(bomb) < 800
    tpath = tmp_path / "bomb.yaml"
    tpath.write_text(TEMPLATE_YAML + bomb)
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from cytophen.cli import main
        sys.exit(main(["validate", {str(tpath)!r}]))
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache")),
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "aliases" in r.stdout + r.stderr and "MemoryError" not in r.stderr
    assert "Traceback" not in r.stderr
    # the same template without the bomb is valid: the refusal is the bomb's, not the template's
    ok = tmp_path / "ok.yaml"
    ok.write_text(TEMPLATE_YAML + "meta:\n  a: &a [x, y]\n  b: [*a, *a]\n")
    assert cytophen.load_template(ok).meta["b"] == [["x", "y"], ["x", "y"]]


def test_oversized_template_is_refused_before_parsing(tmp_path):
    from cytophen.interop.yaml_template import MAX_TEMPLATE_BYTES

    big = tmp_path / "big.yaml"
    filler = "# " + "x" * 98 + "\n"
    big.write_text(TEMPLATE_YAML + filler * (MAX_TEMPLATE_BYTES // len(filler) + 1))
    with pytest.raises(TemplateError, match="MiB"):
        cytophen.load_template(big)
    r = subprocess.run(
        [sys.executable, "-m", "cytophen.cli", "gate", str(tmp_path), "-t", str(big),
         "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache")),
    )  # fmt: skip
    assert r.returncode == 2 and "MiB" in r.stderr and not (tmp_path / "out").exists()


def test_twenty_thousand_channels(tmp_path, monkeypatch):
    """One FCS file with 20 000 channels (the template's five among them, the rest filler, every
    other one with a gain): read, gated with the counts the file was made with, and the keyword
    index built once, not once per channel (which made scale_factors quadratic)."""
    from cytophen.io import sample as sample_mod

    n_extra = 20_000 - len(CHANNELS)
    events = simulate_events(3, 30, 50, 20)
    extra = np.full((events.shape[0], n_extra), 10.0, dtype=np.float32)
    channels = [*CHANNELS, *(f"X{i}" for i in range(n_extra))]
    markers = [*MARKERS, *(f"m{i}" for i in range(n_extra))]
    keywords = {}
    for n in range(len(CHANNELS) + 2, 20_001, 2):  # every other filler channel: gain 2
        keywords[f"$P{n}G"] = "2"
    path = tmp_path / "wide.fcs"
    cytophen.write_fcs(path, np.hstack([events, extra]), channels, markers=markers,
                       keywords=keywords)  # fmt: skip

    builds = []
    original = sample_mod._Keywords._reindex

    def counting(self):
        builds.append(len(self))
        original(self)

    monkeypatch.setattr(sample_mod._Keywords, "_reindex", counting)
    s = cytophen.read_fcs(path)
    assert len(s.channels) == 20_000
    factors = s.scale_factors()
    assert s.keyword("$p20000g") == "2" and s.keyword("$P19999G") is None
    assert len(builds) == 1  # the index was built once for 80 000 look-ups
    assert factors[19_999] == ("gain", 2.0, 0.0) and factors[19_998][0] == "none"
    assert s.linear_column(19_999)[0] == 5.0  # 10 stored / gain 2

    table = cytophen.gate(s, make_template()).table.set_index("population")
    assert table.loc["b_cells", "count"] == 30 and table.loc["t_cells", "count"] == 50
    assert table.loc["cells", "count"] == 80


def test_keyword_index_follows_changes():
    s = cytophen.Sample(
        np.zeros((1, 1), dtype=np.float32), ["A"], [""], keywords={"$TOT": "1", "Custom": "x"}
    )
    assert s.keyword("$tot") == "1" and s.keyword("CUSTOM") == "x"
    s.keywords["$Fil"] = "f.fcs"
    del s.keywords["Custom"]
    s.keywords.update({"New": "n"})
    assert s.keyword("$FIL") == "f.fcs" and s.keyword("custom") is None and s.keyword("NEW") == "n"
    s.keywords = {"$Date": "today"}  # a plain dict assigned later
    assert s.keyword("$DATE") == "today"
    import pickle

    assert pickle.loads(pickle.dumps(s.keywords)) == {"$Date": "today"}


@pytest.mark.parametrize("length", [240, 241, 250, 255])
def test_write_fcs_names_up_to_the_file_system_limit(tmp_path, length):
    """A file name of 241-255 bytes made the temporary name too long (a raw OSError)."""
    path = tmp_path / ("a" * (length - 4) + ".fcs")
    cytophen.write_fcs(path, np.ones((3, 2), dtype=np.float32), ["A", "B"])
    assert cytophen.read_fcs(path).n_events == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left


def test_write_fcs_name_over_the_limit_is_a_clear_error(tmp_path):
    with pytest.raises(FCSError, match="file name too long"):
        cytophen.write_fcs(tmp_path / ("a" * 252 + ".fcs"), np.ones((3, 2), np.float32), ["A", "B"])


def test_blake3_reads_in_chunks(tmp_path):
    """The hash of a sparse 512 MiB file with 1 MiB of data equals the one-shot hash, and the
    hashing process does not grow by the file's size (a memory map made its RSS the file's)."""
    import blake3

    from cytophen.pipeline.worker import _HASH_CHUNK, file_blake3

    small = tmp_path / "small.bin"
    data = np.random.default_rng(0).bytes(3 * _HASH_CHUNK + 17)
    small.write_bytes(data)
    assert file_blake3(small) == blake3.blake3(data).hexdigest()

    sparse = tmp_path / "sparse.fcs"
    with open(sparse, "wb") as fh:
        fh.write(data[: 1 << 20])
        fh.truncate(512 << 20)
    script = textwrap.dedent(
        f"""
        import resource
        from cytophen.pipeline.worker import file_blake3
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(file_blake3({str(sparse)!r}))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    digest, grown_kb = r.stdout.split()
    h = blake3.blake3()
    h.update(data[: 1 << 20])
    h.update(bytes((512 << 20) - (1 << 20)))
    assert digest == h.hexdigest()
    assert int(grown_kb) < 64 * 1024  # KiB: far below the 512 MiB the file spans


def test_control_characters_never_reach_the_terminal(tmp_path):
    """A file whose name carries a terminal escape (set the window title) and a bidi override:
    the failure summary prints them as escapes."""
    bad = tmp_path / "in" / "evil\x1b]0;owned\x07\u202e.fcs"
    bad.parent.mkdir()
    bad.write_bytes(b"not an FCS file")
    tpath = write_template(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "cytophen.cli", "gate", str(bad.parent), "-t", str(tpath),
         "-o", str(tmp_path / "out"), "-j", "1"],
        capture_output=True, timeout=120,
        env=dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache")),
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert b"\x1b" not in r.stderr and b"\x07" not in r.stderr
    assert "\u202e".encode() not in r.stderr
    assert b"evil\\x1b]0;owned\\x07\\u202e" in r.stderr


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_fixed_gate_on_a_channel_without_finite_values_is_flagged(tmp_path, fill):
    """CD3 (FL2-A) all NaN or infinite: the gates on it are 'not measured' with the channel
    named, instead of 0 % or 100 %; the scatter gate is unaffected."""
    events = simulate_events(5, 300, 500, 200)
    events[:, 3] = fill
    path = tmp_path / "dead.fcs"
    cytophen.write_fcs(path, events, CHANNELS, markers=MARKERS)
    table = cytophen.gate(cytophen.read_fcs(path), make_template()).table.set_index("population")
    assert table.loc["cells", "count"] == 800 and table.loc["cells", "measured"]
    for pop in ("b_cells", "t_cells"):
        assert not table.loc[pop, "measured"] and pd.isna(table.loc[pop, "count"])
        assert "no finite value in channel(s) FL2-A (CD3 PE)" in table.loc[pop, "note"]
    assert not table.loc["non_b", "measured"]  # NOT of an unmeasured gate


def test_partly_missing_values_are_gated_as_usual(tmp_path):
    events = simulate_events(5, 300, 500, 200)
    events[::2, 3] = np.nan  # half the CD3 values
    path = tmp_path / "half.fcs"
    cytophen.write_fcs(path, events, CHANNELS, markers=MARKERS)
    table = cytophen.gate(cytophen.read_fcs(path), make_template()).table.set_index("population")
    assert table["measured"].all() and (table["note"] == "").all()
