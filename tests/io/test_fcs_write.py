"""write_fcs (FCS 3.1) round trips, read back by cytophen and by independent readers (FlowIO,
fcsparser), and parse_spillover_keyword on the keyword variants found in the wild."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import cytophen
from conftest import shared_path
from cytophen.errors import FCSError, FCSWarning
from cytophen.io.fcs import parse_spillover_keyword, read_fcs, write_fcs


def _events(n=1000, p=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1000, 300, (n, p)).astype(np.float32)


@pytest.mark.parametrize("datatype", ["F", "D", "I"])
def test_round_trip_exact(tmp_path, datatype):
    ev = _events().astype(np.float64)
    if datatype == "F":
        ev = ev.astype(np.float32)
    elif datatype == "I":
        ev = np.abs(np.round(ev))
    channels = ["FSC-A", "SSC-A", "FL1-A", "Time"]
    markers = ["", None, "CD19 PE", ""]
    p = write_fcs(
        tmp_path / "rt.fcs",
        ev,
        channels,
        markers=markers,
        datatype=datatype,
        keywords={"$CYT": "cytophen-sim", "$DATE": "01-JAN-2026", "MY KEY": "x"},
    )
    s = read_fcs(p, repairs=())
    np.testing.assert_array_equal(s.events, ev)
    assert s.channels == channels
    assert s.markers == ["", "", "CD19 PE", ""]
    assert s.keyword("$CYT") == "cytophen-sim" and s.keyword("MY KEY") == "x"
    assert s.keyword("$DATATYPE") == datatype
    assert s.path.read_bytes()[:6] == b"FCS3.1"


def test_round_trip_spillover_exact_and_keywords_escaped(tmp_path):
    names = ["FL1-A", "FL2-A", "FL3-A"]
    spill = pd.DataFrame(
        [[1.0, 0.123456789012345, 0.01], [0.2, 1.0, 1 / 3], [0.0, 0.05, 1.0]],
        index=names,
        columns=names,
    )
    ev = _events(p=3)
    kw = {"NOTE": "a/b//c", "$SRC": "/leading/slash", "TRAIL": "end/"}
    p = write_fcs(tmp_path / "s.fcs", ev, names, spillover=spill, keywords=kw, delimiter="/")
    raw = p.read_bytes()
    assert b"a//b////c" in raw  # delimiters in values doubled
    s = read_fcs(p, repairs=())
    pd.testing.assert_frame_equal(s.spillover, spill)
    assert s.keyword("NOTE") == "a/b//c" and s.keyword("TRAIL") == "end/"
    # default delimiter avoids characters used in values: even a leading '/' survives
    p2 = write_fcs(tmp_path / "s2.fcs", ev, names, spillover=spill, keywords=kw)
    s2 = read_fcs(p2, repairs=())
    assert s2.keyword("$SRC") == "/leading/slash" and s2.keyword("NOTE") == "a/b//c"


def test_written_file_read_by_flowio_and_fcsparser(tmp_path):
    flowio = pytest.importorskip("flowio")
    fcsparser = pytest.importorskip("fcsparser")
    ev = _events(n=500, p=3)
    names = ["FSC-A", "CD3", "CD4"]
    spill = pd.DataFrame(np.eye(3) + 0.01, index=names, columns=names)
    p = write_fcs(
        tmp_path / "x.fcs", ev, names, markers=["", "CD3 FITC", "CD4 PE"], spillover=spill
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fd = flowio.FlowData(str(p))
        np.testing.assert_array_equal(fd.as_array(preprocess=False), ev.astype(np.float64))
        assert fd.pnn_labels == names
        meta, df = fcsparser.parse(str(p), reformat_meta=True)
    np.testing.assert_array_equal(df.to_numpy(), ev)
    assert meta["$P2S"] == "CD3 FITC"


def test_re_export_of_zoo_sample_preserves_values_and_scaling(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FCSWarning)
        s = read_fcs(shared_path("fcs_zoo", "flowio", "fcs_files", "data1.fcs"))
    p = write_fcs(
        tmp_path / "data1_copy.fcs", s.events, s.channels, markers=s.markers, keywords=s.keywords
    )
    t = read_fcs(p, repairs=())
    np.testing.assert_array_equal(t.events, s.events)
    for i in range(len(s.channels)):  # $PnE/$PnG/$PnR carried over -> same linear values
        np.testing.assert_array_equal(t.linear_column(i), s.linear_column(i))


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "a.fcs"
    write_fcs(p, _events(n=10, p=2), ["a", "b"])
    before = p.read_bytes()
    with pytest.raises(FCSError):
        write_fcs(p, _events(n=10, p=2), ["a", "a"])  # duplicate names
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.fcs"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_file_has_the_umasks_permissions(tmp_path, umask, mode):
    # a fresh process, so that the umask is the one it starts with (as a user's shell would set)
    p = tmp_path / "perm.fcs"
    code = f"import numpy as np, cytophen; cytophen.write_fcs({str(p)!r}, np.zeros((3, 1)), ['a'])"
    subprocess.run([sys.executable, "-c", code], check=True, preexec_fn=lambda: os.umask(umask))
    assert stat.S_IMODE(p.stat().st_mode) == mode  # not mkstemp's 0600


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"events": np.zeros(5), "channels": ["a"]}, "2-D"),
        ({"events": np.zeros((5, 2)), "channels": ["a"]}, "1 channel names for 2"),
        ({"events": np.full((2, 1), -1.0), "channels": ["a"], "datatype": "I"}, "whole numbers"),
        ({"events": np.zeros((2, 1)), "channels": ["a"], "datatype": "Q"}, "not supported"),
        ({"events": np.zeros((2, 1)), "channels": ["a"], "markers": ["x", "y"]}, "marker names"),
    ],
)
def test_write_errors_are_fcserrors(tmp_path, kwargs, match):
    with pytest.raises(FCSError, match=match):
        write_fcs(tmp_path / "e.fcs", **kwargs)


def test_zero_events_round_trip(tmp_path):
    p = write_fcs(tmp_path / "z.fcs", np.zeros((0, 3), np.float32), ["a", "b", "c"])
    assert read_fcs(p, repairs=()).events.shape == (0, 3)


def test_top_level_write_fcs(tmp_path):
    ev = _events(n=3, p=2)
    cytophen.write_fcs(tmp_path / "t.fcs", ev, ["x", "y"])
    np.testing.assert_array_equal(cytophen.read_fcs(tmp_path / "t.fcs").events, ev)


# ---------------------------------------------------------------------------------------------
# parse_spillover_keyword


def test_spillover_basic_layout_rows_are_sources():
    df = parse_spillover_keyword("2,FL1-A,FL2-A,1,0.1,0.02,1")
    assert list(df.index) == ["FL1-A", "FL2-A"] and list(df.columns) == ["FL1-A", "FL2-A"]
    assert df.loc["FL1-A", "FL2-A"] == 0.1 and df.loc["FL2-A", "FL1-A"] == 0.02


def test_spillover_decimal_commas():
    # a DIVA-style value in a decimal-comma locale: every number split into two fields
    df = parse_spillover_keyword("2,FITC-A,PE-A,1,0,0,125,0,02,1,0")
    np.testing.assert_array_equal(df.to_numpy(), [[1.0, 0.125], [0.02, 1.0]])


def test_spillover_identity_and_whitespace():
    df = parse_spillover_keyword(" 3, A , B , C ,1,0,0,0,1,0,0,0,1 ")
    np.testing.assert_array_equal(df.to_numpy(), np.eye(3))
    assert list(df.columns) == ["A", "B", "C"]


@pytest.mark.parametrize(
    "text",
    [
        "6,a,b,c,d,e,f",
        "x,1,2",
        "2,a,b,1,0,0",
        "2,a,a,1,0,0,1",
        "2,a,b,1,zero,0,1",
        "0",
        "2,a,b,1,nan,0,1",
        ",",
    ],
)
def test_spillover_malformed_warns_and_returns_none(text):
    with pytest.warns(FCSWarning, match="spillover"):
        assert parse_spillover_keyword(text, path="f.fcs", keyword="$SPILLOVER") is None


def test_spillover_empty_is_none_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_spillover_keyword("") is None
        assert parse_spillover_keyword(None) is None


def test_comp_without_names_uses_channels_when_sizes_match():
    df = parse_spillover_keyword("2,1,0.5,0,1", keyword="$COMP", channels=["FL1", "FL2"])
    assert list(df.columns) == ["FL1", "FL2"] and df.loc["FL1", "FL2"] == 0.5
    with pytest.warns(FCSWarning):
        assert (
            parse_spillover_keyword("2,1,0.5,0,1", keyword="$COMP", channels=["a", "b", "c"])
            is None
        )


def test_unicode_keywords_round_trip(tmp_path):
    kw = {"$OP": "Zoë Müller", "$PROJ": "CD45RA µ-beads", "COMMENT": "5 µl / test"}
    p = write_fcs(
        tmp_path / "u.fcs", _events(n=5, p=2), ["a", "b"], markers=["CD3 α", ""], keywords=kw
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # valid UTF-8: no latin-1 repair
        s = read_fcs(p)
    assert {k: s.keyword(k) for k in kw} == kw
    assert s.markers == ["CD3 α", ""]
