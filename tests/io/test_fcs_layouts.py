"""FCS layouts the zoo lacks, built byte by byte here (FCS 3.2 per-channel $PnDATATYPE, widths,
byte orders, $NEXTDATA chains, ASCII-less edge cases). The bytes are packed value by value with
``struct``/``int.to_bytes`` following the FCS 3.1/3.2 text, independently of cytophen's reader."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

from cytophen.errors import FCSError, FCSWarning
from cytophen.io.fcs import read_fcs


def pack_events(rows, kinds, widths, big):
    """Pack events value by value: kinds 'I'/'F'/'D', widths in bits."""
    out = bytearray()
    order = "big" if big else "little"
    for row in rows:
        for v, k, w in zip(row, kinds, widths):
            if k == "I":
                out += int(v).to_bytes(w // 8, order)
            elif k == "F":
                out += struct.pack((">" if big else "<") + "f", v)
            else:
                out += struct.pack((">" if big else "<") + "d", v)
    return bytes(out)


def build_fcs(
    keywords, data, *, version="FCS3.1", delim="/", header_data=None, text_data=True, pad=0
):
    """One data set: HEADER (58 bytes), TEXT at 58, DATA after it. Offsets are written in TEXT
    ($BEGINDATA/$ENDDATA, fixed width so the length is known) and in the HEADER."""

    def text(begin, end):
        items = list(keywords)
        if text_data:
            items += [("$BEGINDATA", f"{begin:020d}"), ("$ENDDATA", f"{end:020d}")]
        body = "".join(f"{k}{delim}{str(v).replace(delim, delim * 2)}{delim}" for k, v in items)
        return (delim + body).encode("latin-1")

    t = text(0, 0)
    tstart = 58
    tend = tstart + len(t) - 1
    dstart = tend + 1 + pad
    dend = dstart + len(data) - 1
    t = text(dstart, dend)
    hd = header_data if header_data is not None else (dstart, dend)
    head = f"{version:<10}" + "".join(f"{v:>8}" for v in (tstart, tend, hd[0], hd[1], 0, 0))
    assert len(head) == 58
    return head.encode("ascii") + t + b" " * pad + data


def channel_keywords(names, widths, ranges, extra=()):
    kw = []
    for i, (n, w, r) in enumerate(zip(names, widths, ranges), start=1):
        kw += [(f"$P{i}N", n), (f"$P{i}B", str(w)), (f"$P{i}R", str(r)), (f"$P{i}E", "0,0")]
    return kw + list(extra)


def base_keywords(n_events, par, datatype, big, mode="L"):
    return [
        ("$BYTEORD", "4,3,2,1" if big else "1,2,3,4"),
        ("$DATATYPE", datatype),
        ("$MODE", mode),
        ("$NEXTDATA", "0"),
        ("$PAR", str(par)),
        ("$TOT", str(n_events)),
    ]


def write(tmp_path, name, blob):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


@pytest.mark.parametrize("big", [False, True])
def test_fcs32_per_channel_datatype_mixing_i_f_d(tmp_path, big):
    rng = np.random.default_rng(1)
    n = 257
    ints = rng.integers(0, 1024, n)
    floats = rng.normal(100, 50, n).astype(np.float32)
    doubles = rng.normal(0, 1e6, n)
    ints32 = rng.integers(0, 2**32, n, dtype=np.uint64)
    rows = list(zip(ints.tolist(), floats.tolist(), doubles.tolist(), ints32.tolist()))
    kinds, widths = ["I", "F", "D", "I"], [16, 32, 64, 32]
    data = pack_events(rows, kinds, widths, big)
    kw = base_keywords(n, 4, "I", big) + channel_keywords(
        ["FSC-A", "CD3", "CD19", "Time"],
        widths,
        [1024, 262144, 262144, 2**32],
        extra=[
            ("$P2DATATYPE", "F"),
            ("$P3DATATYPE", "D"),
            ("$P4DATATYPE", "I"),
            ("$P2S", "CD3 BV421"),
        ],
    )
    p = write(tmp_path, "fcs32.fcs", build_fcs(kw, data, version="FCS3.2"))
    s = read_fcs(p)
    assert s.events.dtype == np.float64  # a D channel and 32 significant integer bits
    np.testing.assert_array_equal(s.events[:, 0], ints)
    np.testing.assert_array_equal(s.events[:, 1], floats)
    np.testing.assert_array_equal(s.events[:, 2], doubles)
    np.testing.assert_array_equal(s.events[:, 3], ints32.astype(np.float64))
    assert s.markers == ["", "CD3 BV421", "", ""]


def test_fcs32_f_default_with_one_integer_channel_stays_float32(tmp_path):
    n = 10
    rows = [(float(i) + 0.5, i * 3) for i in range(n)]
    data = pack_events(rows, ["F", "I"], [32, 8], False)
    kw = (
        base_keywords(n, 2, "F", False)
        + channel_keywords(["A", "B"], [32, 8], [262144, 256])
        + [("$P2DATATYPE", "I")]
    )
    s = read_fcs(write(tmp_path, "f.fcs", build_fcs(kw, data, version="FCS3.2")))
    assert s.events.dtype == np.float32
    np.testing.assert_array_equal(s.events, np.array(rows, dtype=np.float32))


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(
    "widths", [[24, 24, 24], [8, 16, 32], [16, 24, 8], [32, 32, 32], [64, 8, 40]]
)
def test_integer_widths_and_byte_orders(tmp_path, big, widths):
    rng = np.random.default_rng(sum(widths))
    n = 100
    cols = [rng.integers(0, 2 ** min(w, 62), n, dtype=np.uint64) for w in widths]
    rows = list(zip(*[c.tolist() for c in cols]))
    data = pack_events(rows, ["I"] * 3, widths, big)
    kw = base_keywords(n, 3, "I", big) + channel_keywords(
        ["a", "b", "c"], widths, [2**w for w in widths]
    )
    s = read_fcs(write(tmp_path, "i.fcs", build_fcs(kw, data)))
    expect = np.column_stack(cols).astype(np.float64)
    np.testing.assert_array_equal(s.events.astype(np.float64), expect)
    assert s.events.dtype == (np.float32 if max(widths) <= 24 else np.float64)


@pytest.mark.parametrize("big", [False, True])
def test_pnr_bitmask_next_power_of_two(tmp_path, big):
    # values with bits set above $PnR: masked to next power of two >= $PnR, minus 1 (FlowIO/fcsparser)
    rows = [(0xFFFF, 1024 + 5, 70000, 0xFFFFFF)]
    widths = [16, 16, 32, 24]
    ranges = [1000, 1024, 65536, 1025]
    data = pack_events(rows, ["I"] * 4, widths, big)
    kw = base_keywords(1, 4, "I", big) + channel_keywords(list("abcd"), widths, ranges)
    s = read_fcs(write(tmp_path, "m.fcs", build_fcs(kw, data)))
    # 1000 -> 1024 -> 0x3FF; 1024 -> 0x3FF; 65536 -> 0xFFFF; 1025 -> 2048 -> 0x7FF
    np.testing.assert_array_equal(s.events[0], [0x3FF, 5, 70000 & 0xFFFF, 0x7FF])
    assert s.events.dtype == np.float32  # masks leave at most 16 significant bits


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("datatype", ["F", "D"])
def test_float_and_double_byte_orders(tmp_path, big, datatype):
    rng = np.random.default_rng(3)
    n, p = 50, 3
    vals = rng.normal(0, 1000, (n, p))
    if datatype == "F":
        vals = vals.astype(np.float32)
    vals[0, 0] = np.nan
    vals[1, 1] = -0.0
    w = 32 if datatype == "F" else 64
    data = pack_events(vals.tolist(), [datatype] * p, [w] * p, big)
    kw = base_keywords(n, p, datatype, big) + channel_keywords(list("xyz"), [w] * p, [262144] * p)
    s = read_fcs(write(tmp_path, "f.fcs", build_fcs(kw, data, version="FCS3.0")))
    assert s.events.dtype == (np.float32 if datatype == "F" else np.float64)
    np.testing.assert_array_equal(s.events, vals)
    assert s.events.flags.writeable


def test_pnb_not_matching_datatype_is_an_error(tmp_path):
    data = pack_events([(1.0, 2.0)], ["F", "F"], [32, 32], False)
    kw = base_keywords(1, 2, "F", False) + channel_keywords(["a", "b"], [32, 16], [1, 1])
    p = write(tmp_path, "bad.fcs", build_fcs(kw, data))
    with pytest.raises(FCSError, match=r"\$P2B") as info:
        read_fcs(p)
    assert info.value.keyword == "$P2B" and "bad.fcs" in str(info.value)


@pytest.mark.parametrize("mode", ["C", "U"])
def test_histogram_modes_unsupported(tmp_path, mode):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False, mode=mode) + channel_keywords(
        ["a", "b"], [16, 16], [1024, 1024]
    )
    with pytest.raises(FCSError, match="list mode") as info:
        read_fcs(write(tmp_path, "h.fcs", build_fcs(kw, data, version="FCS2.0")))
    assert info.value.keyword == "$MODE"


def test_unsupported_byte_order(tmp_path):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    kw[0] = ("$BYTEORD", "3,4,1,2")
    with pytest.raises(FCSError, match="BYTEORD"):
        read_fcs(write(tmp_path, "b.fcs", build_fcs(kw, data)))


def test_fixed_width_ascii_data(tmp_path):
    rows = [(12, 3, 1023), (0, 999, 7)]
    widths = [4, 3, 4]
    data = "".join(f"{v:>{w}}" for r in rows for v, w in zip(r, widths)).encode("ascii")
    kw = base_keywords(2, 3, "A", False) + channel_keywords(["a", "b", "c"], widths, [1024] * 3)
    s = read_fcs(write(tmp_path, "asc.fcs", build_fcs(kw, data, version="FCS2.0")))
    np.testing.assert_array_equal(s.events, rows)
    assert s.events.dtype == np.float32
    # free-format ASCII ($PnB '*') and non-numbers are clean errors
    kw_free = [(k, "*" if k == "$P2B" else v) for k, v in kw]
    with pytest.raises(FCSError, match="free-format"):
        read_fcs(write(tmp_path, "free.fcs", build_fcs(kw_free, data, version="FCS2.0")))
    bad = data.replace(b"999", b"x9y")
    with pytest.raises(FCSError, match="not a number"):
        read_fcs(write(tmp_path, "bad.fcs", build_fcs(kw, bad, version="FCS2.0")))


def test_nextdata_chain_of_three_handmade(tmp_path):
    blobs = []
    for k in range(3):
        rows = [(k * 10 + i, k) for i in range(k + 2)]
        data = pack_events(rows, ["I", "I"], [16, 16], False)
        kw = base_keywords(len(rows), 2, "I", False) + channel_keywords(
            [f"a{k}", "b"], [16, 16], [65536] * 2
        )
        blobs.append((kw, data))
    # build back to front so each $NEXTDATA is known
    out = b""
    for kw, data in reversed(blobs):
        nxt = 0 if not out else None
        kw = [(k, v) for k, v in kw if k != "$NEXTDATA"]
        # fixed width $NEXTDATA so the length does not depend on its value
        first = build_fcs(kw + [("$NEXTDATA", f"{0:010d}")], data)
        nxt = 0 if not out else len(first)
        first = build_fcs(kw + [("$NEXTDATA", f"{nxt:010d}")], data)
        out = first + out
    p = write(tmp_path, "chain.fcs", out)
    for k in range(3):
        s = read_fcs(p, dataset=k)
        assert s.channels == [f"a{k}", "b"]
        np.testing.assert_array_equal(s.events[:, 0], [k * 10 + i for i in range(k + 2)])
    with pytest.raises(FCSError, match=r"has 3 data sets \(0\.\.2\)"):
        read_fcs(p, dataset=3)


def test_nextdata_pointing_outside_is_clean_error(tmp_path):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    kw[3] = ("$NEXTDATA", "99999999")
    p = write(tmp_path, "n.fcs", build_fcs(kw, data))
    assert read_fcs(p).n_events == 1  # data set 0 is fine
    with pytest.raises(FCSError, match="NEXTDATA"):
        read_fcs(p, dataset=1)


def test_forged_tot_never_allocates_beyond_file(tmp_path):
    data = pack_events([(1, 2)] * 4, ["I", "I"], [16, 16], False)
    kw = base_keywords(10**15, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    p = write(tmp_path, "forged.fcs", build_fcs(kw, data))
    with pytest.raises(FCSError, match=r"\$TOT"):
        read_fcs(p)
    # even with the opt-in truncated_data repair only the events present are read
    with pytest.warns(FCSWarning, match="truncated_data"):
        s = read_fcs(p, repairs={"truncated_data"})
    assert s.n_events == 4


def test_missing_tot_counts_events_from_data_length(tmp_path):
    data = pack_events([(1, 2), (3, 4), (5, 6)], ["I", "I"], [16, 16], False)
    kw = [k for k in base_keywords(3, 2, "I", False) if k[0] != "$TOT"]
    kw += channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    s = read_fcs(write(tmp_path, "nt.fcs", build_fcs(kw, data, version="FCS2.0")))
    np.testing.assert_array_equal(s.events, [[1, 2], [3, 4], [5, 6]])


def test_zero_events(tmp_path):
    kw = base_keywords(0, 2, "F", False) + channel_keywords(["a", "b"], [32, 32], [1, 1])
    s = read_fcs(write(tmp_path, "z.fcs", build_fcs(kw, b"", header_data=(0, 0), text_data=False)))
    assert s.events.shape == (0, 2)


def test_missing_pns_gives_empty_marker_and_missing_pnn_repaired(tmp_path):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    kw = [k for k in kw if k[0] != "$P2N"] + [("$P1S", "CD4")]
    with pytest.warns(FCSWarning, match="P2N"):
        s = read_fcs(write(tmp_path, "m.fcs", build_fcs(kw, data)))
    assert s.channels == ["a", "P2"] and s.markers == ["CD4", ""]


def test_other_delimiter_and_escapes(tmp_path):
    data = pack_events([(1.5,)], ["F"], [32], False)
    kw = (
        base_keywords(1, 1, "F", False)
        + channel_keywords(["FL1|A"], [32], [262144])
        + [
            ("$P1S", "CD3|CD8"),
            ("NOTE", "a||b"),
        ]
    )
    s = read_fcs(write(tmp_path, "d.fcs", build_fcs(kw, data, delim="|")))
    assert s.channels == ["FL1|A"] and s.markers == ["CD3|CD8"] and s.keyword("NOTE") == "a||b"


def test_header_text_offsets_beyond_file(tmp_path):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    blob = bytearray(build_fcs(kw, data))
    blob[18:26] = b"99999999"
    with pytest.raises(FCSError, match="TEXT"):
        read_fcs(write(tmp_path, "t.fcs", bytes(blob)))


def test_strict_mode_reads_a_clean_file_without_warnings(tmp_path):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    p = write(tmp_path, "c.fcs", build_fcs(kw, data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = read_fcs(p, repairs=())
    assert s.events.tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="unknown FCS repairs"):
        read_fcs(p, repairs={"no_such_repair"})


def test_latin1_in_fcs31_text_is_a_named_repair(tmp_path):
    data = pack_events([(1, 2)], ["I", "I"], [16, 16], False)
    kw = base_keywords(1, 2, "I", False) + channel_keywords(["a", "b"], [16, 16], [1024, 1024])
    p = write(tmp_path, "l.fcs", build_fcs(kw + [("$OP", "Zo\xeb")], data))  # latin-1 byte 0xEB
    with pytest.warns(FCSWarning, match="latin1_text"):
        s = read_fcs(p)
    assert s.keyword("$OP") == "Zo\xeb"
    with pytest.raises(FCSError, match="latin1_text"):
        read_fcs(p, repairs=())
