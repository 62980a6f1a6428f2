"""FCS reading against the fcs_zoo reference set (../shared/data/fcs_zoo, facts from its MANIFEST).

Expected values come from facts.csv ($TOT, $PnN written in each file, computed by an independent
reader), FlowIO's truth arrays, FlowIO 1.4 itself where it can decode a file, and the first rows that
fcsparser's own tests pin for the 24-bit Cytek file.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import cytophen
from conftest import SHARED_DATA, shared_path
from cytophen.errors import CytophenError, FCSError, FCSWarning
from cytophen.io.fcs import read_fcs, read_fcs_datasets

UNREADABLE = {
    "fcs_zoo/fcsparser/corrupted/corrupted.fcs",
    "fcs_zoo/fcsparser/cytek-nl-2000/sample_header.fcs",
}


def _facts() -> list[dict]:
    p = SHARED_DATA / "fcs_zoo" / "facts.csv"
    if not p.exists():
        return []
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))


FACTS = _facts()
READABLE = [r for r in FACTS if r["path"] not in UNREADABLE]


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FCSWarning)
        return read_fcs(path, **kw)


def test_facts_present():
    p = shared_path("fcs_zoo", "facts.csv")
    assert p.exists() and len(FACTS) >= 38


@pytest.mark.parametrize("row", READABLE, ids=[r["path"].split("/", 1)[1] for r in READABLE])
def test_zoo_file_gives_tot_events_and_pnn_channels(row):
    path = shared_path(row["path"])
    s = _read(path)
    assert s.n_events == int(row["tot"])
    assert s.channels == row["pnn"].split(";")
    assert len(s.markers) == int(row["par"])
    # $PnS as facts.csv lists them ('' where absent; joined with ';', which some markers contain)
    assert ";".join(s.markers) == row["pns"]
    assert s.events.dtype in (np.float32, np.float64)
    assert s.events.shape == (int(row["tot"]), int(row["par"]))
    assert s.path == path


@pytest.mark.parametrize("row", READABLE, ids=[r["path"].split("/", 1)[1] for r in READABLE])
def test_zoo_values_equal_flowio_where_flowio_decodes(row):
    """FlowIO 1.4 (with its offset workarounds) is an independent decoder of the same bytes."""
    flowio = pytest.importorskip("flowio")
    path = shared_path(row["path"])
    if int(row["n_datasets"]) > 1:
        pytest.skip("multi data set file: see test_coulter_both_datasets_equal_flowio")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = flowio.FlowData(
                str(path), ignore_offset_error=True, ignore_offset_discrepancy=True
            ).as_array(preprocess=False)
    except Exception as exc:  # flowio cannot decode 24-bit or blank-offset files
        pytest.skip(f"flowio cannot decode this file: {type(exc).__name__}")
    s = _read(path)
    np.testing.assert_array_equal(s.events.astype(np.float64), ref)


def test_data1_equals_flowio_truth_and_linear_column_matches_preprocessed():
    s = _read(shared_path("fcs_zoo", "flowio", "fcs_files", "data1.fcs"))
    truth = np.load(shared_path("fcs_zoo", "flowio", "truth", "data1_original_events.npy"))
    np.testing.assert_array_equal(s.events, truth)
    pre = np.load(shared_path("fcs_zoo", "flowio", "truth", "data1_preprocessed.npy"))
    lin = np.column_stack([s.linear_column(i) for i in range(s.events.shape[1])])
    np.testing.assert_allclose(lin, pre, rtol=1e-12, atol=0)
    # FCS 2.0 empty values written as doubled delimiters: $P3S.. are empty, keys not merged
    assert s.keyword("$P6N") == "FL2-A"


def test_b01_linear_column_matches_preprocessed_truth_exactly():
    s = _read(shared_path("fcs_zoo", "flowio", "fcs_files", "B01 KC-A-W---91-US.fcs"))
    pre = np.load(
        shared_path("fcs_zoo", "flowio", "truth", "B01 KC-A-W---91-US_preprocessed_events.npy")
    )
    lin = np.column_stack([s.linear_column(i) for i in range(s.events.shape[1])])
    np.testing.assert_array_equal(lin, pre)
    assert s.spillover is not None and s.spillover.shape == (8, 8)


def test_cytek_24bit_first_rows_as_fcsparser_tests_pin():
    s = _read(shared_path("fcs_zoo", "fcsparser", "Cytek_xP5", "Cytek_xP5.fcs"))
    np.testing.assert_array_equal(s.events[0], [0, 286, 164, 154, 54, 470, 1023, 770])
    np.testing.assert_array_equal(s.events[1], [0, 171, 128, 153, 199, 91, 211, 12])
    assert s.events.dtype == np.float32  # 24-bit integers are exact in float32


def test_flowcal_data003_24bit_within_range():
    s = _read(shared_path("fcs_zoo", "flowcal", "Data003.fcs"))
    assert s.events.shape == (25000, 8)
    for i in range(8):
        top = float(s.keyword(f"$P{i + 1}R"))
        assert 0 <= s.events[:, i].min() and s.events[:, i].max() < top


def test_offset_discrepancy_files_repair_with_warning_to_variable_int_events():
    """Decision: HEADER/TEXT DATA-offset disagreement is repaired (TEXT offsets, which fit the file)
    with a loud FCSWarning; strict mode (repairs=()) raises naming the keyword."""
    ref = _read(shared_path("fcs_zoo", "flowio", "fcs_files", "variable_int_example.fcs"))
    for name in (
        "data_start_offset_discrepancy_example.fcs",
        "data_stop_offset_discrepancy_example.fcs",
    ):
        path = shared_path("fcs_zoo", "flowio", "fcs_files", name)
        with pytest.warns(FCSWarning, match="text_offsets"):
            s = read_fcs(path)
        np.testing.assert_array_equal(s.events, ref.events)
        with pytest.raises(FCSError, match="HEADER says DATA") as info:
            read_fcs(path, repairs=())
        assert name in str(info.value)


def test_variable_int_mixed_widths_masked_by_pnr():
    s = _read(shared_path("fcs_zoo", "flowio", "fcs_files", "variable_int_example.fcs"))
    assert s.events.shape == (2, 26)
    assert s.keyword("$P26B") == "32"
    # every value below its channel's $PnR rounded up to a power of two
    for i in range(26):
        r = float(s.keyword(f"$P{i + 1}R"))
        assert s.events[:, i].max() < 2 ** np.ceil(np.log2(r))


def test_bitmask_file_all_values_528():
    s = _read(shared_path("fcs_zoo", "fcsparser", "fake_bitmask_error", "fcs1_cleaned.lmd"))
    assert s.events.shape == (50000, 7)
    assert np.all(s.events == 528)


def test_blank_header_offsets_equal_fortessa():
    ref = _read(
        shared_path(
            "fcs_zoo", "fcsparser", "Fortessa", "FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs"
        )
    )
    path = shared_path("fcs_zoo", "fcsparser", "fake_large_fcs", "fake_large_fcs.fcs")
    with pytest.warns(FCSWarning, match="blank"):
        s = read_fcs(path)
    np.testing.assert_array_equal(s.events, ref.events)
    with pytest.raises(FCSError, match="blank_header_offsets"):
        read_fcs(path, repairs=())


def test_off_by_one_enddata_warns_and_strict_raises():
    path = shared_path(
        "fcs_zoo",
        "fcsparser",
        "MiltenyiBiotec",
        "FCS3.1",
        "EY_2013-07-19_PBS_FCS_3.1_Well_A1.001.fcs",
    )
    with pytest.warns(FCSWarning, match="off_by_one"):
        s = read_fcs(path)
    assert s.n_events == 10000
    assert s.spillover is None  # malformed $SPILLOVER (6 names, no coefficients) -> warning, None
    with pytest.raises(FCSError, match="off_by_one"):
        read_fcs(path, repairs=())


def test_duplicate_keyword_keeps_first_and_escaped_delimiters():
    path = shared_path(
        "fcs_zoo", "fcsparser", "MiltenyiBiotec", "FCS3.1", "SG_2014-09-26_Duplicate_Names.fcs"
    )
    with pytest.warns(FCSWarning, match=r"\$VOL"):
        s = read_fcs(path)
    raw = path.read_bytes()
    first = raw.index(b"/$VOL/") + len(b"/$VOL/")
    assert s.keyword("$VOL") == raw[first : raw.index(b"/", first)].decode()
    assert s.markers[7] == "GFP/FITC-A"  # written as GFP//FITC-A
    assert s.keyword("$P4F") == "561//10 nm"  # written as 561////10 nm


def test_non_utf8_fcs20_text_read_as_latin1_without_warning():
    """FCS 2.0 declares no TEXT encoding: CellQuest's 0xAA ('Pro(TM)') is Latin-1, no repair."""
    path = shared_path("fcs_zoo", "fcsparser", "FACSCaliburHTS", "Sample_Well_A02.fcs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = read_fcs(path, repairs=())
    assert any("\xaa" in v for v in s.keywords.values())


def test_flowcore_doubled_delimiters_are_empty_values():
    s = _read(shared_path("fcs_zoo", "flowcore", "0877408774.B08"))
    assert s.channels[5] == "FL1-A"
    assert s.markers[2] == "" and s.markers[3] == ""
    assert s.keyword("$P3S") == ""


def test_coulter_both_datasets_equal_flowio():
    flowio = pytest.importorskip("flowio")
    path = shared_path("fcs_zoo", "flowio", "fcs_files", "coulter.lmd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refs = flowio.read_multiple_data_sets(str(path), ignore_offset_error=True)
    assert len(refs) == 2
    for k in (0, 1):
        s = _read(path, dataset=k)
        assert s.dataset == k
        assert s.n_events == 18110
        np.testing.assert_array_equal(
            s.events.astype(np.float64), refs[k].as_array(preprocess=False)
        )
    assert _read(path, dataset=0).keywords != _read(path, dataset=1).keywords
    metas = read_fcs_datasets(path)
    assert [m.version for m in metas] == ["FCS2.0", "FCS3.0"]
    with pytest.raises(FCSError, match=r"has 2 data sets") as info:
        read_fcs(path, dataset=2)
    assert "coulter.lmd" in str(info.value)


def test_corrupted_file_clean_error_naming_file():
    path = shared_path("fcs_zoo", "fcsparser", "corrupted", "corrupted.fcs")
    with pytest.raises(FCSError, match="not an FCS file") as info:
        read_fcs(path)
    assert str(path) in str(info.value)


def test_header_only_file_clean_error_naming_file():
    path = shared_path("fcs_zoo", "fcsparser", "cytek-nl-2000", "sample_header.fcs")
    with pytest.raises(FCSError, match="no DATA") as info:
        _read(path)
    assert str(path) in str(info.value)
    # its TEXT is still readable on its own
    meta = read_fcs_datasets(path)
    assert meta[0].get("$TOT") == "20000"


def test_spillover_keywords_match_facts():
    checked = 0
    for row in READABLE:
        keys = row["spillover_keys"]
        s = _read(shared_path(row["path"]))
        if keys.startswith(("SPILL (", "$SPILLOVER (", "DET_SPILL")) and "MALFORMED" not in keys:
            size = int(keys.split("(")[1].split("x")[0])
            assert s.spillover is not None and s.spillover.shape == (size, size), row["path"]
            assert list(s.spillover.columns) == list(s.spillover.index)
            if "identity" in keys:
                np.testing.assert_array_equal(s.spillover.to_numpy(), np.eye(size))
            checked += 1
        elif not keys or "ANALOG_COMP" in keys or "DFCiTOj" in keys or "MALFORMED" in keys:
            assert s.spillover is None, row["path"]
    assert checked >= 10


def test_top_level_read_fcs_delegates():
    s = cytophen.read_fcs(shared_path("fcs_zoo", "flowkit", "test_data_2d_01.fcs"))
    assert s.events.shape == (10000, 2) and s.events.dtype == np.float32


def test_every_zoo_file_gives_sample_or_cytophen_error():
    for row in FACTS:
        path = shared_path(row["path"])
        try:
            _read(path)
        except CytophenError as exc:
            assert row["path"] in UNREADABLE, exc


def test_keyword_lookup_is_case_insensitive_and_follows_changes():
    """Sample.keyword: exact spelling first, else the first spelling of the same key in any case;
    its index follows keywords added, removed or renamed after the first look-up."""
    import numpy as np

    from cytophen.io.sample import Sample

    s = Sample(np.zeros((2, 2)), ["a", "b"], ["", ""], {"$TOT": "2", "$tot": "3", "Foo": "x"})
    assert s.keyword("$tot") == "3" and s.keyword("$Tot") == "2" and s.keyword("FOO") == "x"
    assert s.keyword("$P9G") is None and s.keyword("$P9G", "1") == "1"
    s.keywords["$P9G"] = "2.5"
    assert s.keyword("$p9g") == "2.5"
    del s.keywords["Foo"]
    assert s.keyword("foo") is None
    s.keywords["$TOT"] = "9"  # a new value under a known key
    assert s.keyword("$ToT") == "9"
