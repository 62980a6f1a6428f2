"""Reading and writing FCS files (FCS 2.0, 3.0, 3.1 and 3.2).

Read: list mode data sets of ``$DATATYPE`` I (any whole-byte ``$PnB`` up to 64, 24-bit and mixed
widths included, masked to the next power of two >= ``$PnR`` as FlowIO/fcsparser do), F, D and
fixed-width ASCII (A), both byte orders, FCS 3.2 per-channel ``$PnDATATYPE``, ``$NEXTDATA`` chains
(``dataset=k``), supplemental TEXT. Spillover from ``$SPILLOVER``/``SPILL``/``$SPILL``/``$COMP``
(:func:`parse_spillover_keyword`). Write: FCS 3.1 (:func:`write_fcs`).

Reading is defensive: every deviation from the standard that cytophen knows how to survive is a
*named repair*. The default set of repairs is applied with a loud :class:`~cytophen.errors.FCSWarning`
naming the file and the repair; pass ``repairs=()`` to be strict (each of those deviations then raises
:class:`~cytophen.errors.FCSError` naming the repair that would read it). Nothing is reinterpreted
silently.

Repairs (``REPAIRS``; all but ``truncated_data`` are on by default):

``off_by_one``
    The DATA segment is one byte longer than ``$TOT`` events need (``$ENDDATA`` points one byte
    past the data: MACSQuant, Beckman Coulter). The extra byte is ignored.
``extra_data``
    The DATA segment is longer than ``$TOT`` events need by more than one byte; the first ``$TOT``
    events are read.
``text_offsets``
    The HEADER and TEXT (``$BEGINDATA``/``$ENDDATA``) disagree about where DATA is. The TEXT offsets
    are used when they are consistent with the file (inside it, long enough for ``$TOT`` events),
    else the HEADER's (FlowIO raises here, fcsparser silently trusts the HEADER).
``blank_header_offsets``
    The HEADER's DATA offset fields are blank or not numbers; ``$BEGINDATA``/``$ENDDATA`` are used.
    (Zeros are standard for files over 99,999,999 bytes and need no repair.)
``duplicate_keywords``
    A keyword appears twice in TEXT; the first value is kept.
``latin1_text``
    FCS 3.1/3.2 TEXT holds bytes that are not UTF-8; they are decoded as Latin-1. (FCS 2.0/3.0
    declare no encoding: non-UTF-8 bytes there are read as Latin-1 without a warning.)
``text_format``
    TEXT does not end with its delimiter, or has a key without a value; what can be paired is kept.
``missing_names``
    A ``$PnN`` is missing; the channel is called ``P<n>``.
``truncated_data`` (opt-in)
    The file ends before the DATA segment does; only the complete events present are read.

Two TEXT conventions are told apart by position, not by a repair: a doubled delimiter inside a
value is an escaped delimiter (FCS 3.x, ``GFP//FITC`` is ``GFP/FITC``); a doubled delimiter right
after a keyword is an empty value (FCS 2.0 CellQuest files write ``$P3S`` empty that way).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from cytophen._atomic import atomic_write_parts
from cytophen.errors import FCSError, FCSWarning
from cytophen.io.sample import Sample
from cytophen.markers import relabel

__all__ = [
    "REPAIRS",
    "DEFAULT_REPAIRS",
    "FCSDataSet",
    "read_fcs",
    "read_fcs_datasets",
    "parse_spillover_keyword",
    "find_spillover",
    "write_fcs",
]

REPAIRS: frozenset[str] = frozenset(
    {
        "off_by_one",
        "extra_data",
        "text_offsets",
        "blank_header_offsets",
        "duplicate_keywords",
        "latin1_text",
        "text_format",
        "missing_names",
        "truncated_data",
    }
)
DEFAULT_REPAIRS: frozenset[str] = REPAIRS - {"truncated_data"}

_VERSIONS = ("FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2")
_HEADER_BYTES = 58
_SPILLOVER_KEYS = ("$SPILLOVER", "SPILL", "$SPILL", "SPILLOVER", "$COMP")
_MAX_DATASETS = 10_000
_PADDING = bytes(range(0x21))  # control characters and space


@dataclass
class FCSDataSet:
    """HEADER and TEXT of one data set of an FCS file (no events).

    Attributes
    ----------
    index
        Position in the ``$NEXTDATA`` chain (0 = first).
    offset
        Absolute byte offset of this data set's HEADER in the file.
    version
        ``'FCS2.0'``, ``'FCS3.0'``, ``'FCS3.1'`` or ``'FCS3.2'``.
    text_segment
        Absolute ``(first, last)`` byte of the primary TEXT segment.
    header_data
        ``(first, last)`` DATA offsets as the HEADER gives them (relative to ``offset``), or
        ``None`` when blank/zero.
    keywords
        TEXT keywords as written (``$`` kept), first occurrence of repeated keywords.
    """

    index: int
    offset: int
    version: str
    text_segment: tuple[int, int]
    header_data: tuple[int, int] | None
    header_data_blank: bool
    keywords: dict[str, str]
    _upper: dict[str, str] = field(default_factory=dict, repr=False)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A keyword value, looked up case-insensitively."""
        return self._upper.get(key.upper(), default)

    @property
    def next_offset(self) -> int:
        """``$NEXTDATA`` as an int (0 when absent or unreadable)."""
        value = _parse_int(self.get("$NEXTDATA"))
        return value if value is not None and value > 0 else 0


# --------------------------------------------------------------------------------------------------
# small helpers


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 30:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            return None
        if not math.isfinite(f) or f != int(f):
            return None
        return int(f)


class _Warner:
    """Applies named repairs: warns when allowed, raises FCSError naming the repair otherwise."""

    def __init__(self, path: Path | None, repairs: frozenset[str]):
        self.path = path
        self.repairs = repairs

    def repair(self, name: str, problem: str, *, keyword: str | None = None) -> None:
        if name not in self.repairs:
            raise FCSError(
                self.path,
                f"{problem} (to read it anyway, allow repair {name!r}: --repairs {name} on the "
                "command line, or include it in read_fcs(..., repairs=...))",
                keyword=keyword,
            )
        kw = f" [{keyword}]" if keyword else ""
        where = self.path if self.path is not None else "<FCS data>"
        warnings.warn(f"{where}: {problem}{kw}; repair {name!r} applied", FCSWarning, stacklevel=4)


def _check_repairs(repairs: Iterable[str] | None) -> frozenset[str]:
    if repairs is None:
        return frozenset()
    if isinstance(repairs, str):
        repairs = [repairs]
    chosen = frozenset(repairs)
    unknown = chosen - REPAIRS
    if unknown:
        raise ValueError(f"unknown FCS repairs {sorted(unknown)}; known: {sorted(REPAIRS)}")
    return chosen


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


# --------------------------------------------------------------------------------------------------
# HEADER and TEXT


def _parse_header(path: Path, f: BinaryIO, size: int, base: int) -> tuple[str, list[str]]:
    head = _read_at(f, base, _HEADER_BYTES)
    if not head.startswith(b"FCS"):
        start = head[:6]
        if base == 0:
            raise FCSError(
                path, f"not an FCS file: it starts with {start!r}, expected 'FCS3.1' or similar"
            )
        raise FCSError(path, f"no FCS HEADER at byte {base} (found {start!r})", keyword="$NEXTDATA")
    if len(head) < _HEADER_BYTES:
        raise FCSError(
            path,
            f"file truncated: the HEADER at byte {base} needs {_HEADER_BYTES} bytes, "
            f"only {len(head)} present",
        )
    version = head[:6].decode("ascii", "replace")
    if version not in _VERSIONS:
        raise FCSError(
            path, f"unsupported FCS version {version!r}; expected one of {', '.join(_VERSIONS)}"
        )
    fields = [head[10 + 8 * i : 18 + 8 * i].decode("ascii", "replace") for i in range(6)]
    return version, fields


def _split_text(raw: bytes, warner: _Warner, utf8: bool = True) -> list[str]:
    """TEXT bytes -> alternating key/value tokens (see the module docstring for doubled delimiters).

    ``utf8``: the version mandates UTF-8 (FCS 3.1+), so Latin-1 bytes need the ``latin1_text``
    repair; FCS 2.0/3.0 TEXT has no declared encoding and Latin-1 is read without a warning."""
    delim = raw[:1]
    body = raw[1:]
    last = body.rfind(delim)
    if last >= 0 and last != len(body) - 1 and not body[last + 1 :].translate(None, _PADDING):
        body = body[: last + 1]  # padding (spaces, NULs) after the final delimiter
    parts = body.split(delim)
    tokens: list[bytes] = []
    cur = [parts[0]]  # pieces of the current token, joined by the delimiter (linear time)
    j = 1
    n = len(parts)
    while j < n:
        p = parts[j]
        if p == b"" and j + 1 < n:
            if len(tokens) % 2 == 1:  # inside a value: an escaped delimiter
                cur.append(parts[j + 1])
            else:  # right after a keyword: an empty value (FCS 2.0 style)
                tokens.append(delim.join(cur))
                tokens.append(b"")
                cur = [parts[j + 1]]
            j += 2
            continue
        tokens.append(delim.join(cur))
        cur = [p]
        j += 1
    last_token = delim.join(cur)
    if last_token != b"":
        tokens.append(last_token)
        warner.repair("text_format", "TEXT segment does not end with its delimiter")
    if len(tokens) % 2:
        warner.repair(
            "text_format", f"TEXT keyword {tokens[-1][:40]!r} has no value (odd number of fields)"
        )
        tokens.pop()
    out: list[str] = []
    bad = False
    for t in tokens:
        try:
            out.append(t.decode("utf-8"))
        except UnicodeDecodeError:
            bad = True
            out.append(t.decode("latin-1"))
    if bad and utf8:
        warner.repair("latin1_text", "TEXT is not valid UTF-8; decoded as Latin-1")
    return out


def _parse_text(
    raw: bytes, warner: _Warner, utf8: bool = True
) -> tuple[dict[str, str], dict[str, str]]:
    if len(raw) < 2:
        raise FCSError(warner.path, "TEXT segment is empty")
    tokens = _split_text(raw, warner, utf8)
    keywords: dict[str, str] = {}
    upper: dict[str, str] = {}
    dupes: list[str] = []
    for i in range(0, len(tokens), 2):
        key = tokens[i].strip()
        if not key:
            continue
        ukey = key.upper()
        if ukey in upper:
            dupes.append(key)
            continue
        keywords[key] = tokens[i + 1]
        upper[ukey] = tokens[i + 1]
    if dupes:
        shown = ", ".join(sorted(set(dupes))[:5])
        warner.repair(
            "duplicate_keywords", f"keyword(s) repeated in TEXT: {shown}; first value kept"
        )
    return keywords, upper


def _read_dataset_meta(
    path: Path, f: BinaryIO, size: int, base: int, index: int, warner: _Warner
) -> FCSDataSet:
    version, fields = _parse_header(path, f, size, base)
    ts, te = _parse_int(fields[0]), _parse_int(fields[1])
    if ts is None or te is None:
        raise FCSError(path, f"HEADER TEXT offsets are not numbers: {fields[0]!r}, {fields[1]!r}")
    if ts < _HEADER_BYTES or te <= ts:
        raise FCSError(
            path, f"HEADER TEXT offsets {ts}-{te} are invalid (TEXT must follow the HEADER)"
        )
    if base + te >= size:
        raise FCSError(
            path,
            f"file truncated: TEXT segment ends at byte {base + te} but the file has {size} bytes",
        )
    raw = _read_at(f, base + ts, te - ts + 1)
    utf8 = version >= "FCS3.1"
    keywords, upper = _parse_text(raw, warner, utf8)

    # supplemental TEXT (FCS 3.x): keywords not already in the primary TEXT
    sts, ste = _parse_int(upper.get("$BEGINSTEXT")), _parse_int(upper.get("$ENDSTEXT"))
    if sts and ste and ste > sts and (sts, ste) != (ts, te):
        if base + ste < size and sts >= _HEADER_BYTES:
            stext = _read_at(f, base + sts, ste - sts + 1)
            more: dict[str, str] = {}
            if stext[:1] == raw[:1]:
                try:
                    more, _ = _parse_text(stext, warner, utf8)
                except FCSError:
                    more = {}
            if not more:
                warnings.warn(
                    f"{path}: supplemental TEXT ({sts}-{ste}) is not delimited keywords; ignored",
                    FCSWarning,
                    stacklevel=3,
                )
            for k, v in more.items():
                if k.upper() not in upper:
                    keywords[k] = v
                    upper[k.upper()] = v
        else:
            warnings.warn(
                f"{path}: supplemental TEXT offsets {sts}-{ste} lie outside the file; ignored",
                FCSWarning,
                stacklevel=3,
            )

    ds_, de_ = fields[2].strip(), fields[3].strip()
    hs, he = _parse_int(fields[2]), _parse_int(fields[3])
    blank = (ds_ == "" or de_ == "") or hs is None or he is None
    header_data = None if blank or (hs == 0 and he == 0) else (hs, he)
    return FCSDataSet(
        index=index,
        offset=base,
        version=version,
        text_segment=(base + ts, base + te),
        header_data=header_data,
        header_data_blank=blank,
        keywords=keywords,
        _upper=upper,
    )


def _walk(
    path: Path, f: BinaryIO, size: int, warner: _Warner, stop: int | None
) -> list[FCSDataSet]:
    """Data sets of the $NEXTDATA chain up to index ``stop`` (all if None)."""
    out: list[FCSDataSet] = []
    base = 0
    seen = set()
    while True:
        ds = _read_dataset_meta(path, f, size, base, len(out), warner)
        out.append(ds)
        if stop is not None and len(out) > stop:
            return out
        nxt = ds.next_offset
        if nxt == 0:
            return out
        new_base = base + nxt
        if new_base in seen or new_base <= base or new_base + _HEADER_BYTES > size:
            problem = (
                f"$NEXTDATA of data set {ds.index} points to byte {new_base}, "
                f"outside the file ({size} bytes) or backwards"
            )
            if stop is not None:
                raise FCSError(path, problem, keyword="$NEXTDATA")
            warnings.warn(f"{path}: {problem}; the chain ends here", FCSWarning, stacklevel=3)
            return out
        if len(out) >= _MAX_DATASETS:
            return out
        seen.add(new_base)
        base = new_base


def _open(path: str | os.PathLike) -> tuple[Path, BinaryIO, int]:
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise FCSError(p, "file not found") from None
    except IsADirectoryError:
        raise FCSError(p, "is a folder, not an FCS file") from None
    except OSError as exc:
        raise FCSError(p, f"cannot open: {exc.strerror or exc}") from None
    size = os.fstat(f.fileno()).st_size
    return p, f, size


def read_fcs_datasets(
    path: str | os.PathLike, *, repairs: Iterable[str] | None = DEFAULT_REPAIRS
) -> list[FCSDataSet]:
    """HEADER and TEXT of every data set in an FCS file (follows ``$NEXTDATA``), without events.

    Parameters
    ----------
    path
        The FCS file.
    repairs
        Named repairs allowed while parsing TEXT (see the module docstring).

    Returns
    -------
    list of FCSDataSet
        One entry per data set, first first.

    Raises
    ------
    FCSError
        If the file is not FCS or its first HEADER/TEXT cannot be read.
    """
    chosen = _check_repairs(repairs)
    p, f, size = _open(path)
    with f:
        return _walk(p, f, size, _Warner(p, chosen), None)


# --------------------------------------------------------------------------------------------------
# DATA layout and decoding


@dataclass(frozen=True)
class _Channel:
    kind: str  # 'I', 'F', 'D' or 'A' (fixed-width ASCII)
    nbytes: int
    mask: int | None  # integer bit mask from $PnR, None = keep all bits
    bits: int  # significant bits (for the float32/float64 decision)


def _mask_from_range(pnr: str | None, nbits: int) -> int | None:
    """Bit mask for an integer channel: next power of two >= $PnR, minus one (as FlowIO/fcsparser)."""
    if pnr is None:
        return None
    try:
        r = float(pnr.strip().replace(",", "."))
    except ValueError:
        return None
    if not math.isfinite(r) or r <= 0 or r >= 2.0**nbits:
        return None
    r_int = max(1, math.ceil(r))
    mask = (1 << (r_int - 1).bit_length()) - 1
    return mask if mask < (1 << nbits) - 1 else None


def _layout(ds: FCSDataSet, path: Path) -> tuple[list[_Channel], bool]:
    par = _parse_int(ds.get("$PAR"))
    if par is None:
        raise FCSError(path, "required keyword missing or not a whole number", keyword="$PAR")
    if par < 1:
        raise FCSError(path, f"$PAR is {par}; expected at least one channel", keyword="$PAR")
    if par > len(ds.keywords):
        raise FCSError(
            path,
            f"$PAR says {par} channels but TEXT holds only {len(ds.keywords)} keywords",
            keyword="$PAR",
        )
    mode = (ds.get("$MODE") or "L").strip().upper()
    if mode != "L":
        names = {"C": "correlated histogram", "U": "uncorrelated histogram"}
        raise FCSError(
            path,
            f"$MODE {mode} ({names.get(mode, 'unknown')}) is not supported; only list mode (L)",
            keyword="$MODE",
        )
    datatype = (ds.get("$DATATYPE") or "").strip().upper()
    if datatype not in ("I", "F", "D", "A"):
        raise FCSError(
            path,
            f"$DATATYPE is {datatype or 'missing'!r}; expected I, F, D or A",
            keyword="$DATATYPE",
        )
    channels: list[_Channel] = []
    for n in range(1, par + 1):
        kind = (
            datatype if datatype == "A" else (ds.get(f"$P{n}DATATYPE") or datatype).strip().upper()
        )
        if kind not in ("I", "F", "D", "A"):
            raise FCSError(
                path, f"${'P'}{n}DATATYPE is {kind!r}; expected I, F or D", keyword=f"$P{n}DATATYPE"
            )
        pnb_text = ds.get(f"$P{n}B")
        pnb = _parse_int(pnb_text)
        if kind == "A":  # fixed-width ASCII integers: $PnB is the number of characters
            if pnb is None or not 1 <= pnb <= 20:
                raise FCSError(
                    path,
                    f"ASCII channel {n} has $P{n}B {pnb_text!r}; expected a width of 1-20 characters "
                    "(free-format ASCII, $PnB '*', is not supported)",
                    keyword=f"$P{n}B",
                )
            channels.append(_Channel("A", pnb, None, 24 if pnb <= 7 else 64))
        elif kind == "I":
            if pnb is None or pnb % 8 or not 8 <= pnb <= 64:
                raise FCSError(
                    path,
                    f"integer channel {n} has $P{n}B {pnb_text!r}; expected 8, 16, 24, 32, ... 64 bits",
                    keyword=f"$P{n}B",
                )
            mask = _mask_from_range(ds.get(f"$P{n}R"), pnb)
            bits = pnb if mask is None else mask.bit_length()
            channels.append(_Channel("I", pnb // 8, mask, bits))
        else:
            need = 32 if kind == "F" else 64
            if pnb != need:
                raise FCSError(
                    path,
                    f"$P{n}B is {pnb_text!r} but data type {kind} needs {need} bits",
                    keyword=f"$P{n}B",
                )
            channels.append(_Channel(kind, need // 8, None, 24 if kind == "F" else 53))
    big = False
    if any(c.nbytes > 1 and c.kind != "A" for c in channels):
        order_text = (ds.get("$BYTEORD") or "").replace(" ", "")
        try:
            order = [int(x) for x in order_text.split(",")]
        except ValueError:
            order = []
        if order and order == list(range(1, len(order) + 1)):
            big = False
        elif order and order == list(range(len(order), 0, -1)):
            big = True
        else:
            raise FCSError(
                path,
                f"$BYTEORD {order_text!r} is not supported; expected 1,2,3,4 (little-endian) "
                "or 4,3,2,1 (big-endian)",
                keyword="$BYTEORD",
            )
    return channels, big


def _resolve_data(
    ds: FCSDataSet, path: Path, size: int, event_bytes: int, warner: _Warner
) -> tuple[int, int]:
    """Absolute offset of the first data byte and the number of events to read."""
    tot = _parse_int(ds.get("$TOT"))
    if tot is not None and tot < 0:
        raise FCSError(path, f"$TOT is {tot}; expected a count of events", keyword="$TOT")
    if tot == 0:
        return 0, 0
    base = ds.offset
    b, e = _parse_int(ds.get("$BEGINDATA")), _parse_int(ds.get("$ENDDATA"))
    text_data = None if b is None or e is None or (b == 0 and e == 0) else (b, e)
    hdr = ds.header_data

    def fits(seg: tuple[int, int]) -> bool:
        s, en = seg
        if s < _HEADER_BYTES or en < s or base + en >= size:
            return False
        return tot is None or en - s + 1 >= tot * event_bytes

    if hdr is None and ds.header_data_blank and text_data is not None:
        warner.repair(
            "blank_header_offsets",
            "HEADER DATA offsets are blank; using $BEGINDATA/$ENDDATA",
        )
    if hdr is not None and text_data is not None and hdr != text_data:
        if fits(text_data):
            chosen = text_data
            msg = f"HEADER says DATA is at {hdr[0]}-{hdr[1]}, TEXT says {b}-{e}; using TEXT"
        elif fits(hdr):
            chosen = hdr
            msg = f"HEADER says DATA is at {hdr[0]}-{hdr[1]}, TEXT says {b}-{e}; TEXT does not fit, using HEADER"
        else:
            raise FCSError(
                path,
                f"HEADER ({hdr[0]}-{hdr[1]}) and TEXT ({b}-{e}) DATA offsets disagree and "
                "neither fits the file",
                keyword="$BEGINDATA",
            )
        warner.repair("text_offsets", msg, keyword="$BEGINDATA")
    else:
        chosen = hdr or text_data
    if chosen is None:
        raise FCSError(
            path,
            "no DATA offsets: HEADER fields are blank/zero and TEXT has none",
            keyword="$BEGINDATA",
        )
    start, end = base + chosen[0], base + chosen[1]
    if chosen[0] < _HEADER_BYTES or end < start:
        raise FCSError(
            path, f"DATA offsets {chosen[0]}-{chosen[1]} are invalid", keyword="$BEGINDATA"
        )
    if start >= size:
        raise FCSError(
            path,
            f"file has TEXT but no DATA: DATA should start at byte {start} but the file has {size} bytes",
            keyword="$BEGINDATA",
        )
    length = end - start + 1
    available = size - start
    if tot is None:
        tot = min(length, available) // event_bytes
        if tot * event_bytes != length:
            warner.repair(
                "extra_data",
                f"$TOT missing and DATA length {length} is not a multiple of {event_bytes} bytes per event",
                keyword="$TOT",
            )
    need = tot * event_bytes
    if end >= size:
        whole = available // event_bytes
        if need <= available:
            # the declared segment runs past the end but the events are all there
            warner.repair(
                "extra_data" if length > need + 1 else "off_by_one",
                f"DATA segment is declared to end at byte {end}, past the end of the file ({size} bytes), "
                f"but all {tot} events are present",
                keyword="$ENDDATA",
            )
            return start, tot
        warner.repair(
            "truncated_data",
            f"file truncated: $TOT is {tot} events ({need} bytes) but the file holds only {whole} "
            f"complete events after byte {start}",
            keyword="$TOT",
        )
        return start, whole
    if length == need:
        return start, tot
    if length == need + 1:
        warner.repair(
            "off_by_one",
            f"DATA segment is 1 byte longer than {tot} events need ($ENDDATA off by one)",
            keyword="$ENDDATA",
        )
        return start, tot
    if length > need:
        warner.repair(
            "extra_data",
            f"DATA segment is {length} bytes but {tot} events need only {need}; reading {tot} events",
            keyword="$TOT",
        )
        return start, tot
    whole = length // event_bytes
    warner.repair(
        "truncated_data",
        f"$TOT is {tot} events ({need} bytes) but the DATA segment holds only {length} bytes "
        f"({whole} complete events)",
        keyword="$TOT",
    )
    return start, whole


def _int_dtype(nbytes: int, big: bool) -> np.dtype:
    return np.dtype(f"u{nbytes}").newbyteorder(">" if big else "<")


def _decode(raw: np.ndarray, n: int, channels: list[_Channel], big: bool) -> np.ndarray:
    """Raw DATA bytes (``n`` events) -> (n, p) float32/float64 array, vectorised per channel."""
    p = len(channels)
    exact32 = all(c.kind != "D" and c.bits <= 24 for c in channels)
    out_dtype = np.dtype(np.float32 if exact32 else np.float64)
    if n == 0:
        return np.empty((0, p), dtype=out_dtype)
    kinds = {c.kind for c in channels}
    widths = {c.nbytes for c in channels}
    event_bytes = sum(c.nbytes for c in channels)
    uniform = len(kinds) == 1 and len(widths) == 1
    w = channels[0].nbytes
    if uniform and kinds <= {"F", "D"}:
        if big:
            raw.view(np.dtype(f"u{w}")).byteswap(inplace=True)
        values = raw.view(np.dtype(f"f{w}")).reshape(n, p)
        return values if values.dtype == out_dtype else values.astype(out_dtype)
    if uniform and kinds == {"I"} and w in (1, 2, 4, 8):
        ints = raw.view(np.dtype(f"u{w}"))
        if big and w > 1:
            ints.byteswap(inplace=True)
        ints = ints.reshape(n, p)
        if any(c.mask is not None for c in channels):
            full = (1 << (8 * w)) - 1
            masks = np.array(
                [full if c.mask is None else c.mask for c in channels], dtype=ints.dtype
            )
            np.bitwise_and(ints, masks, out=ints)
        return ints.astype(out_dtype)
    out = np.empty((n, p), dtype=out_dtype)
    offset = 0
    for j, c in enumerate(channels):
        if c.kind == "A":
            text = np.ndarray(
                (n,), dtype=f"S{c.nbytes}", buffer=raw, offset=offset, strides=(event_bytes,)
            )
            try:
                col = np.char.strip(text).astype(np.float64)
            except ValueError:
                raise ValueError(f"channel {j + 1} holds text that is not a number") from None
        elif c.kind in ("F", "D"):
            dt = np.dtype(f"f{c.nbytes}").newbyteorder(">" if big else "<")
            col = np.ndarray((n,), dtype=dt, buffer=raw, offset=offset, strides=(event_bytes,))
        elif c.nbytes in (1, 2, 4, 8):
            col = np.ndarray(
                (n,),
                dtype=_int_dtype(c.nbytes, big),
                buffer=raw,
                offset=offset,
                strides=(event_bytes,),
            )
        else:  # 24, 40, 48, 56-bit integers: assemble from bytes
            b = np.ndarray(
                (n, c.nbytes), dtype=np.uint8, buffer=raw, offset=offset, strides=(event_bytes, 1)
            )
            order = range(c.nbytes) if big else range(c.nbytes - 1, -1, -1)
            acc_t = np.uint32 if c.nbytes < 4 else np.uint64
            acc = np.zeros(n, dtype=acc_t)
            for k in order:
                acc <<= acc_t(8)
                acc |= b[:, k]
            col = acc
        if c.mask is not None:
            col = col & col.dtype.type(c.mask)
        out[:, j] = col
        offset += c.nbytes
    return out


# --------------------------------------------------------------------------------------------------
# spillover


def _spill_warn(path, keyword, problem) -> None:
    where = path if path is not None else "<FCS data>"
    kw = f" [{keyword}]" if keyword else ""
    warnings.warn(f"{where}: spillover {problem}{kw}; ignored", FCSWarning, stacklevel=3)


def parse_spillover_keyword(
    text: str | None,
    *,
    path: str | os.PathLike | None = None,
    keyword: str | None = None,
    channels: Sequence[str] | None = None,
) -> pd.DataFrame | None:
    """Parse a ``$SPILLOVER`` / ``SPILL`` / ``$SPILL`` / ``$COMP`` keyword value.

    The format is ``n,name_1,...,name_n,s_11,s_12,...,s_nn`` (row-major: row *i* is the spill of
    the dye primarily measured in detector *i* into every detector). Numbers written with decimal
    commas (BD FACSDiva in some locales: the value list then has ``2 n^2`` fields) are read too.
    ``$COMP`` values without names are matched to ``channels`` when its ``n`` equals their number.

    Parameters
    ----------
    text
        The keyword's value.
    path, keyword
        Named in warnings.
    channels
        The file's ``$PnN`` names, for nameless ``$COMP`` matrices.

    Returns
    -------
    pandas.DataFrame or None
        ``n x n`` float64 matrix, index and columns the detector names; ``None`` (with an
        :class:`~cytophen.errors.FCSWarning`) when the value is empty or malformed. Never raises.

    Examples
    --------
    >>> float(parse_spillover_keyword("2,FL1-A,FL2-A,1,0.1,0.02,1").loc["FL1-A", "FL2-A"])
    0.1
    """
    if text is None or not str(text).strip():
        return None
    tokens = [t.strip() for t in str(text).strip().strip(",").split(",")]
    n = _parse_int(tokens[0]) if tokens else None
    if n is None or n < 1 or n > 1000:
        _spill_warn(path, keyword, f"does not start with a matrix size (found {tokens[0][:20]!r})")
        return None
    rest = tokens[1:]

    def numbers(items: list[str]) -> list[float] | None:
        try:
            vals = [float(x) for x in items]
        except ValueError:
            return None
        return vals if all(math.isfinite(v) for v in vals) else None

    names: list[str] | None
    if len(rest) >= n + n * n and numbers(rest[:n]) is None:
        names, vals_text = rest[:n], rest[n:]
    elif len(rest) in (n * n, 2 * n * n) and numbers(rest) is not None:
        names, vals_text = None, rest
    else:
        names, vals_text = rest[:n], rest[n:]
    values = None
    if len(vals_text) == n * n:
        values = numbers(vals_text)
    elif len(vals_text) == 2 * n * n:
        joined = [f"{a}.{b}" for a, b in zip(vals_text[::2], vals_text[1::2])]
        if all(b.isdigit() for b in vals_text[1::2]):
            values = numbers(joined)
    if values is None:
        _spill_warn(
            path,
            keyword,
            f"is malformed: n={n} needs {n} names and {n * n} numbers, found {len(rest)} fields",
        )
        return None
    if names is None:
        if channels is not None and len(channels) == n:
            names = list(channels)
        else:
            _spill_warn(path, keyword, f"has no channel names and n={n} does not match the file")
            return None
    if len(set(names)) != n or any(not nm for nm in names):
        _spill_warn(path, keyword, "names are empty or repeated")
        return None
    matrix = np.asarray(values, dtype=np.float64).reshape(n, n)
    return pd.DataFrame(matrix, index=list(names), columns=list(names))


def find_spillover(
    keywords: Mapping[str, str],
    *,
    path: str | os.PathLike | None = None,
    channels: Sequence[str] | None = None,
) -> tuple[str | None, pd.DataFrame | None]:
    """The first well-formed spillover matrix among ``$SPILLOVER``, ``SPILL``, ``$SPILL``,
    ``SPILLOVER``, ``$COMP`` (keys matched case-insensitively).

    Returns
    -------
    (keyword, DataFrame) or (None, None)
    """
    upper: dict[str, tuple[str, str]] = {}
    for k, v in keywords.items():
        uk = k.upper()
        if uk in _SPILLOVER_KEYS and uk not in upper:
            upper[uk] = (k, v)
    for key in _SPILLOVER_KEYS:
        if key in upper:
            name, value = upper[key]
            df = parse_spillover_keyword(value, path=path, keyword=name, channels=channels)
            if df is not None:
                return name, df
    return None, None


# --------------------------------------------------------------------------------------------------
# reading


def read_fcs(
    path: str | os.PathLike,
    *,
    dataset: int = 0,
    repairs: Iterable[str] | None = DEFAULT_REPAIRS,
    markers: Mapping[str, str] | None = None,
) -> Sample:
    """Read one data set of an FCS 2.0/3.0/3.1/3.2 file.

    Parameters
    ----------
    path
        The file (any extension: ``.fcs``, ``.lmd``, ``.B08`` ...).
    dataset
        Which data set of a ``$NEXTDATA`` chain to read (0 = first).
    repairs
        Named repairs allowed (see :data:`REPAIRS` and the module docstring); each applied repair
        warns with :class:`~cytophen.errors.FCSWarning`. ``()`` is strict.
    markers
        ``{channel: marker}`` for files without ``$PnS`` (or with wrong ones): these names replace
        the file's for those channels (``$PnN`` matched exactly, or ignoring case and punctuation,
        so FlowJo's ``_`` for ``/`` matches). See :func:`cytophen.markers.read_marker_csv` for a
        CSV with a row per channel, optionally per file.

    Returns
    -------
    Sample
        ``events`` is ``(n_events, n_channels)``: float32 when every channel fits it exactly (F,
        and integers of at most 24 significant bits after the ``$PnR`` mask), float64 otherwise.
        Integer values are masked to the next power of two >= ``$PnR`` (as FlowIO and fcsparser do).

    Raises
    ------
    FCSError
        Not an FCS file, truncated, unsupported layout, inconsistent keywords, a data set that does
        not exist ... naming the file and keyword. Never a numpy error.

    Examples
    --------
    >>> s = read_fcs("data1.fcs")  # doctest: +SKIP
    >>> s.events.shape, s.channels[:2]  # doctest: +SKIP
    ((13367, 8), ['FSC-H', 'SSC-H'])
    """
    chosen = _check_repairs(repairs)
    markers_map = markers
    if isinstance(dataset, bool) or not isinstance(dataset, (int, np.integer)) or dataset < 0:
        raise FCSError(Path(path), f"dataset must be a whole number >= 0, got {dataset!r}")
    p, f, size = _open(path)
    warner = _Warner(p, chosen)
    with f:
        chain = _walk(p, f, size, warner, int(dataset))
        if len(chain) <= dataset:
            n = len(chain)
            raise FCSError(
                p,
                f"data set {dataset} requested but the file has {n} data set{'s' if n != 1 else ''} "
                f"(0..{n - 1})",
                keyword="$NEXTDATA",
            )
        ds = chain[int(dataset)]
        layout, big = _layout(ds, p)
        event_bytes = sum(c.nbytes for c in layout)
        start, n_events = _resolve_data(ds, p, size, event_bytes, warner)
        nbytes = n_events * event_bytes
        raw = np.empty(nbytes, dtype=np.uint8)
        if nbytes:
            f.seek(start)
            got = f.readinto(memoryview(raw))
            if got != nbytes:
                raise FCSError(
                    p, f"file truncated: read {got} of {nbytes} DATA bytes", keyword="$TOT"
                )
    try:
        events = _decode(raw, n_events, layout, big)
    except ValueError as exc:  # ASCII data that is not numbers
        raise FCSError(p, f"DATA cannot be decoded: {exc}", keyword="$DATATYPE") from None

    names: list[str] = []
    markers: list[str] = []
    for n in range(1, len(layout) + 1):
        name = ds.get(f"$P{n}N")
        if name is None or not name.strip():
            warner.repair(
                "missing_names", f"channel {n} has no $P{n}N; called 'P{n}'", keyword=f"$P{n}N"
            )
            name = f"P{n}"
        names.append(name)
        markers.append(ds.get(f"$P{n}S") or "")
    if markers_map:
        markers = relabel(names, markers, dict(markers_map), path=p, source="the markers mapping")
    _, spill = find_spillover(ds.keywords, path=p, channels=names)
    return Sample(
        events=events,
        channels=names,
        markers=markers,
        keywords=dict(ds.keywords),
        spillover=spill,
        path=p,
        dataset=int(dataset),
    )


# --------------------------------------------------------------------------------------------------
# writing

_STRUCTURAL = {
    "$BEGINANALYSIS",
    "$ENDANALYSIS",
    "$BEGINSTEXT",
    "$ENDSTEXT",
    "$BEGINDATA",
    "$ENDDATA",
    "$BYTEORD",
    "$DATATYPE",
    "$MODE",
    "$NEXTDATA",
    "$PAR",
    "$TOT",
}
_DELIMITERS = ["/", "|", "\\", "!", "^", "~", "\x1e"]


def _is_channel_structural(ukey: str) -> bool:
    if not ukey.startswith("$P"):
        return False
    rest = ukey[2:]
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return digits > 0 and rest[digits:] in ("N", "B", "DATATYPE")


def _format_float(v: float) -> str:
    return repr(float(v))


def write_fcs(
    path: str | os.PathLike,
    events: np.ndarray,
    channels: Sequence[str],
    *,
    markers: Sequence[str | None] | None = None,
    keywords: Mapping[str, object] | None = None,
    spillover: pd.DataFrame | None = None,
    datatype: str = "F",
    delimiter: str | None = None,
) -> Path:
    """Write events as an FCS 3.1 file (atomically: a temporary file then ``os.replace``).

    Parameters
    ----------
    path
        Where to write.
    events
        ``(n_events, n_channels)`` numeric array.
    channels
        ``$PnN`` names (unique, non-empty).
    markers
        ``$PnS`` names; ``''``/``None`` writes none for that channel.
    keywords
        Extra TEXT keywords (e.g. ``$CYT``, ``$DATE``, a read sample's ``keywords``). Layout
        keywords (``$TOT``, ``$PAR``, ``$DATATYPE``, ``$BEGINDATA``..., ``$PnN``, ``$PnB``) are
        computed here and given ones are ignored; ``$PnR``, ``$PnE``, ``$PnG``, ``$PnS`` given here
        override the defaults. Keywords with empty values are skipped (FCS 3.1 forbids them).
    spillover
        Written as ``$SPILLOVER`` (columns are the detector names).
    datatype
        ``'F'`` (float32, the default), ``'D'`` (float64) or ``'I'`` (unsigned integers, 16 or 32
        bits; values must be whole numbers >= 0).
    delimiter
        TEXT delimiter; by default the first of ``/ | \\ ! ^ ~`` that occurs in no keyword or value
        (delimiters inside values are escaped by doubling either way).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FCSError
        Events, channels or keywords that cannot be written (named).

    Examples
    --------
    >>> write_fcs("out.fcs", np.zeros((10, 2)), ["FSC-A", "CD3"])  # doctest: +SKIP
    """
    p = Path(path)
    arr = np.asarray(events)
    if arr.ndim != 2:
        raise FCSError(p, f"events must be a 2-D (events x channels) array, got shape {arr.shape}")
    n, npar = arr.shape
    chans = [str(c) for c in channels]
    if len(chans) != npar:
        raise FCSError(p, f"{len(chans)} channel names for {npar} event columns", keyword="$PnN")
    if any(not c.strip() for c in chans) or len(set(chans)) != len(chans):
        raise FCSError(p, "channel names must be unique and non-empty", keyword="$PnN")
    if npar == 0:
        raise FCSError(p, "at least one channel is needed", keyword="$PAR")
    marks = list(markers) if markers is not None else [None] * npar
    if len(marks) != npar:
        raise FCSError(p, f"{len(marks)} marker names for {npar} channels", keyword="$PnS")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise FCSError(p, f"events must be real numbers, got dtype {arr.dtype}")
    dt = str(datatype).upper()
    if dt == "F":
        data = np.ascontiguousarray(arr, dtype="<f4")
        bits = [32] * npar
    elif dt == "D":
        data = np.ascontiguousarray(arr, dtype="<f8")
        bits = [64] * npar
    elif dt == "I":
        if arr.size and (
            not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.floor(arr))
        ):
            raise FCSError(
                p, "datatype 'I' needs whole numbers >= 0 in every event", keyword="$DATATYPE"
            )
        top = float(arr.max()) if arr.size else 0.0
        if top >= 2**32:
            raise FCSError(p, f"value {top:g} does not fit 32-bit integers", keyword="$DATATYPE")
        width = 16 if top < 2**16 else 32
        data = np.ascontiguousarray(arr, dtype=f"<u{width // 8}")
        bits = [width] * npar
    else:
        raise FCSError(
            p, f"datatype {datatype!r} not supported; use 'F', 'D' or 'I'", keyword="$DATATYPE"
        )

    text: dict[str, str] = {}
    order: list[str] = []

    def put(key: str, value: object) -> None:
        value = str(value)
        if value == "":
            return
        if key.upper() not in text:
            order.append(key)
        text[key.upper()] = value

    text["$BYTEORD"] = "1,2,3,4"
    text["$DATATYPE"] = dt
    text["$MODE"] = "L"
    text["$NEXTDATA"] = "0"
    text["$PAR"] = str(npar)
    text["$TOT"] = str(n)
    for key in ("$BYTEORD", "$DATATYPE", "$MODE", "$NEXTDATA", "$PAR", "$TOT"):
        order.append(key)
    for j in range(npar):
        k = j + 1
        col = data[:, j]
        if dt == "I":
            rng = 2 ** bits[j]
        else:
            finite = col[np.isfinite(col)] if n else col
            top = float(finite.max()) if finite.size else 0.0
            rng = 262144 if top <= 262144 else math.ceil(top)
        put(f"$P{k}N", chans[j])
        put(f"$P{k}B", bits[j])
        put(f"$P{k}E", "0,0")
        put(f"$P{k}R", rng)
        if marks[j]:
            put(f"$P{k}S", marks[j])
    if spillover is not None:
        sp = pd.DataFrame(spillover)
        if sp.shape[0] != sp.shape[1]:
            raise FCSError(p, f"spillover must be square, got {sp.shape}", keyword="$SPILLOVER")
        vals = sp.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(vals)):
            raise FCSError(p, "spillover has non-finite values", keyword="$SPILLOVER")
        cols = [str(c) for c in sp.columns]
        if any("," in c for c in cols):
            raise FCSError(p, "spillover channel names cannot contain ','", keyword="$SPILLOVER")
        put(
            "$SPILLOVER",
            ",".join([str(len(cols)), *cols, *(_format_float(v) for v in vals.ravel())]),
        )
    for key, value in (keywords or {}).items():
        key = str(key).strip()
        if not key:
            continue
        ukey = key.upper()
        if ukey in _STRUCTURAL or _is_channel_structural(ukey):
            continue
        if ukey == "$SPILLOVER" and spillover is not None:
            continue
        if value is None or str(value) == "":
            continue
        if ukey not in text:
            order.append(key)
        text[ukey] = str(value)

    spelled = {k.upper(): k for k in order}
    items = [(spelled[k.upper()], text[k.upper()]) for k in order]
    if delimiter is None:
        blob = "".join(k + v for k, v in items)
        delimiter = next((d for d in _DELIMITERS if d not in blob), "/")
    if len(delimiter) != 1 or not 1 <= ord(delimiter) <= 126:
        raise FCSError(p, f"delimiter {delimiter!r} must be one ASCII character")

    def esc(s: str) -> str:
        return s.replace(delimiter, delimiter * 2)

    data_bytes = data.tobytes()
    nbytes = len(data_bytes)

    def build(begin: int, end: int) -> bytes:
        body = "".join(f"{esc(k)}{delimiter}{esc(v)}{delimiter}" for k, v in items)
        offsets = (
            f"$BEGINANALYSIS{delimiter}0{delimiter}$ENDANALYSIS{delimiter}0{delimiter}"
            f"$BEGINSTEXT{delimiter}0{delimiter}$ENDSTEXT{delimiter}0{delimiter}"
            f"$BEGINDATA{delimiter}{begin}{delimiter}$ENDDATA{delimiter}{end}{delimiter}"
        )
        return (delimiter + offsets + body).encode("utf-8")

    text_start = _HEADER_BYTES
    begin = end = 0
    for _ in range(5):
        tb = build(begin, end)
        data_start = text_start + len(tb)
        new_begin = data_start if nbytes else 0
        new_end = data_start + nbytes - 1 if nbytes else 0
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    tb = build(begin, end)
    text_end = text_start + len(tb) - 1
    if text_end > 99_999_999:
        raise FCSError(p, "TEXT segment too large for the FCS HEADER (over 99,999,999 bytes)")
    hb, he = (begin, end) if end <= 99_999_999 else (0, 0)
    header = b"FCS3.1    " + b"".join(
        f"{v:>8d}".encode("ascii") for v in (text_start, text_end, hb, he, 0, 0)
    )
    assert len(header) == _HEADER_BYTES

    if not p.parent.is_dir():
        raise FCSError(p, "the folder to write into does not exist")
    if len(os.fsencode(p.name)) > 255:
        raise FCSError(p, f"file name too long ({len(os.fsencode(p.name))} bytes; at most 255)")
    # CRC field: zeros = not computed (allowed by FCS 3.1)
    atomic_write_parts(p, (header, tb, data_bytes, b"00000000"), fsync=False)
    return p
