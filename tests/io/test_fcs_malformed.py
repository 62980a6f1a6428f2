"""Malformed FCS files: real zoo files truncated and corrupted in a temporary folder, and a
hypothesis fuzz test mutating HEADER, TEXT and DATA bytes. Every outcome must be a Sample or a
CytophenError (never a numpy/Python traceback, never a hang) and never allocate beyond the file."""

from __future__ import annotations

import os
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_path
from cytophen.errors import CytophenError, FCSError
from cytophen.io.fcs import read_fcs

FUZZ_FILES = [
    ("fcs_zoo", "flowio", "fcs_files", "variable_int_example.fcs"),  # mixed 16/32-bit ints
    ("fcs_zoo", "flowio", "fcs_files", "data_start_offset_discrepancy_example.fcs"),
    ("fcs_zoo", "fcsparser", "cyflow_cube_8", "cyflow_cube_8.fcs"),  # 8/16/32 mixed, STEXT zip
    ("fcs_zoo", "flowkit", "index_sorted", "index_sorted_example.fcs"),  # big-endian float
    ("fcs_zoo", "fcsparser", "MiltenyiBiotec", "FCS3.1", "SG_2014-09-26_Duplicate_Names.fcs"),
    ("fcs_zoo", "flowcore", "0877408774.B08"),  # FCS 2.0 empty values
    ("fcs_zoo", "flowio", "fcs_files", "coulter.lmd"),  # two data sets
    ("fcs_zoo", "fcsparser", "Cytek_xP5", "Cytek_xP5.fcs"),  # 24-bit
]


def _segments(blob: bytes) -> dict[str, tuple[int, int]]:
    ts, te = int(blob[10:18]), int(blob[18:26])
    return {"header": (0, 58), "text": (ts, te + 1), "data": (te + 1, len(blob))}


def _attempt(path, size, trace=True):
    """Read; return (outcome, seconds, peak traced bytes). Asserts the contract.

    ``trace`` measures the allocation peak with tracemalloc (5x slower, so the fuzz test traces a
    fifth of its cases; every case checks events.nbytes <= 8 x file size)."""
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = read_fcs(path)
        outcome = "sample"
        assert s.events.nbytes <= 8 * size
        assert s.events.shape[1] == len(s.channels) == len(s.markers)
        for k in range(1, 3):  # other data sets too (coulter.lmd)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read_fcs(path, dataset=k)
            except CytophenError:
                break
    except CytophenError as exc:
        outcome = "error"
        assert str(path) in str(exc) or "<FCS data>" in str(exc)
    finally:
        dt = time.perf_counter() - t0
        peak = 0
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    # nothing close to a forged $TOT: memory bounded by the file (events <= 8x bytes, +TEXT objects)
    assert peak <= 16 * size + 8 * 2**20, f"peak {peak} bytes for a {size}-byte file"
    return outcome, dt, peak


def _zoo(parts):
    return shared_path(*parts).read_bytes()


@pytest.mark.parametrize("parts", FUZZ_FILES[:4], ids=lambda p: p[-1])
def test_truncated_at_many_offsets(tmp_path, parts):
    blob = _zoo(parts)
    seg = _segments(blob)
    cuts = sorted(
        set(
            [
                0,
                1,
                3,
                6,
                10,
                30,
                57,
                58,
                seg["text"][0],
                seg["text"][1] - 1,
                seg["text"][1],
                seg["data"][0] + 1,
            ]
            + list(np.linspace(0, len(blob) - 1, 60).astype(int))
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = read_fcs(shared_path(*parts))
    data_needed = len(blob) - 1  # cutting even the last byte loses data or the final delimiter
    for cut in cuts:
        p = tmp_path / f"cut{cut}.fcs"
        p.write_bytes(blob[:cut])
        outcome, _, _ = _attempt(p, max(cut, 1))
        if cut < seg["text"][1]:
            assert outcome == "error", cut
        if outcome == "sample" and cut < data_needed:
            # only acceptable when the bytes cut are beyond the events (padding, CRC, off-by-one)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.testing.assert_array_equal(read_fcs(p).events, full.events)


@pytest.mark.parametrize(
    "old, new, match",
    [
        (b"$DATATYPE/I", b"$DATATYPE/Q", r"\$DATATYPE"),
        (b"$PAR/26", b"$PAR/00", r"\$PAR"),
        (b"$PAR/26", b"$PAR/99", r"\$P27B"),
        (b"$TOT/000002", b"$TOT/999999", r"\$TOT"),
        (b"$BYTEORD/1,2,3,4", b"$BYTEORD/9,9,9,9", r"\$BYTEORD"),
        (b"$P1B/16", b"$P1B/12", r"\$P1B"),
        (b"$MODE/L", b"$MODE/C", r"\$MODE"),
    ],
)
def test_corrupted_keywords_give_named_errors(tmp_path, old, new, match):
    blob = _zoo(FUZZ_FILES[0])
    delim = blob[int(blob[10:18]) : int(blob[10:18]) + 1]
    old, new = old.replace(b"/", delim), new.replace(b"/", delim)
    assert old in blob and len(old) == len(new)  # same length: offsets stay valid
    p = tmp_path / "bad.fcs"
    p.write_bytes(blob.replace(old, new, 1))
    with pytest.raises(FCSError, match=match) as info:
        read_fcs(p)
    assert "bad.fcs" in str(info.value)


def test_not_fcs_and_missing_files(tmp_path):
    for content in (b"", b"FCS", b"GIF89a" + b"\0" * 100, b"FCS9.9    " + b"0" * 48):
        p = tmp_path / "x.fcs"
        p.write_bytes(content)
        with pytest.raises(FCSError) as info:
            read_fcs(p)
        assert "x.fcs" in str(info.value)
    with pytest.raises(FCSError, match="not found"):
        read_fcs(tmp_path / "absent.fcs")
    with pytest.raises(FCSError, match="folder"):
        read_fcs(tmp_path)


_MUTATION = st.tuples(
    st.sampled_from(["header", "text", "text", "data"]),
    st.floats(0, 1, exclude_max=True),
    st.sampled_from(["set", "set", "insert", "delete", "digit", "delim"]),
    st.integers(0, 255),
)


@pytest.mark.slow
def test_fuzz_mutations_header_text_data(tmp_path, capsys):
    """Thousands of mutations (HEADER, TEXT, DATA bytes) of 8 zoo files; CI-friendly (~20 s)."""
    blobs = [_zoo(p) for p in FUZZ_FILES]
    stats = {"cases": 0, "mutations": 0, "sample": 0, "error": 0, "max_s": 0.0, "max_peak": 0}

    @settings(
        max_examples=int(os.environ.get("CYTOPHEN_FCS_FUZZ_EXAMPLES", "2000")),
        derandomize=os.environ.get("CYTOPHEN_FCS_FUZZ_RANDOM") is None,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.integers(0, len(blobs) - 1), st.lists(_MUTATION, min_size=1, max_size=4))
    def run(i, mutations):
        blob = bytearray(blobs[i])
        seg = _segments(bytes(blobs[i]))
        for where, frac, kind, value in mutations:
            a, b = seg[where]
            if b <= a:
                continue
            pos = min(len(blob) - 1, a + int(frac * (b - a)))
            if kind == "set":
                blob[pos] = value
            elif kind == "insert":
                blob[pos:pos] = bytes([value])
            elif kind == "delete":
                del blob[pos]
            elif kind == "digit":
                blob[pos] = ord("0") + value % 10
            else:  # the TEXT delimiter, to mis-pair keys and values
                blob[pos] = blobs[i][seg["text"][0]]
            stats["mutations"] += 1
        p = tmp_path / "fuzz.fcs"
        p.write_bytes(bytes(blob))
        outcome, dt, peak = _attempt(p, len(blob), trace=stats["cases"] % 5 == 0)
        stats["cases"] += 1
        stats[outcome] += 1
        stats["max_s"] = max(stats["max_s"], dt)
        stats["max_peak"] = max(stats["max_peak"], peak)

    run()
    with capsys.disabled():
        print(
            f"\nFCS fuzz: {stats['cases']} cases, {stats['mutations']} byte mutations; "
            f"{stats['sample']} read, {stats['error']} FCSError; slowest {stats['max_s'] * 1000:.1f} ms; "
            f"max traced peak {stats['max_peak'] / 2**20:.1f} MiB"
        )
    wanted = int(os.environ.get("CYTOPHEN_FCS_FUZZ_EXAMPLES", "2000"))
    assert stats["cases"] >= wanted and stats["mutations"] >= stats["cases"]
    assert stats["error"] > 0 and stats["sample"] > 0
