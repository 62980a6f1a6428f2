"""Writing FCS 3.1 files (:func:`write_fcs`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cytophen._atomic import atomic_write_parts
from cytophen.errors import FCSError
from cytophen.io._fcs_text import _HEADER_BYTES

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
    chans, marks = _check_names(p, arr, channels, markers)
    dt = str(datatype).upper()
    data, bits = _encode(p, arr, dt, datatype)
    text = _Keywords()
    _put_layout(text, data, dt, bits, chans, marks)
    if spillover is not None:
        text.put("$SPILLOVER", _spillover_value(p, spillover))
    _put_given(text, keywords or {}, skip_spillover=spillover is not None)
    items = text.items()
    delimiter = _delimiter(p, items, delimiter)
    data_bytes = data.tobytes()
    header, tb = _header_and_text(p, items, delimiter, len(data_bytes))
    if not p.parent.is_dir():
        raise FCSError(p, "the folder to write into does not exist")
    if len(os.fsencode(p.name)) > 255:
        raise FCSError(p, f"file name too long ({len(os.fsencode(p.name))} bytes; at most 255)")
    # CRC field: zeros = not computed (allowed by FCS 3.1)
    atomic_write_parts(p, (header, tb, data_bytes, b"00000000"), fsync=False)
    return p


def _check_names(
    p: Path, arr: np.ndarray, channels: Sequence[str], markers: Sequence[str | None] | None
) -> tuple[list[str], list[str | None]]:
    """The channel and marker names, checked against the events' shape."""
    if arr.ndim != 2:
        raise FCSError(p, f"events must be a 2-D (events x channels) array, got shape {arr.shape}")
    npar = arr.shape[1]
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
    return chans, marks


def _encode(p: Path, arr: np.ndarray, dt: str, datatype: str) -> tuple[np.ndarray, list[int]]:
    """The events as the little-endian DATA of ``$DATATYPE`` ``dt``, and each channel's ``$PnB``."""
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise FCSError(p, f"events must be real numbers, got dtype {arr.dtype}")
    npar = arr.shape[1]
    if dt == "F":
        return np.ascontiguousarray(arr, dtype="<f4"), [32] * npar
    if dt == "D":
        return np.ascontiguousarray(arr, dtype="<f8"), [64] * npar
    if dt != "I":
        raise FCSError(
            p, f"datatype {datatype!r} not supported; use 'F', 'D' or 'I'", keyword="$DATATYPE"
        )
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
    return np.ascontiguousarray(arr, dtype=f"<u{width // 8}"), [width] * npar


class _Keywords:
    """TEXT keywords in the order first given, looked up ignoring case (the first spelling is
    written, the last value); empty values are left out (FCS 3.1 forbids them)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._spelling: dict[str, str] = {}

    def put(self, key: str, value: object) -> None:
        value = str(value)
        if value == "":
            return
        self._spelling.setdefault(key.upper(), key)
        self._values[key.upper()] = value

    def items(self) -> list[tuple[str, str]]:
        return [(self._spelling[k], v) for k, v in self._values.items()]


def _put_layout(
    text: _Keywords,
    data: np.ndarray,
    dt: str,
    bits: list[int],
    chans: list[str],
    marks: list[str | None],
) -> None:
    """The keywords that describe the DATA segment, and each channel's defaults."""
    n, npar = data.shape
    for key, value in (
        ("$BYTEORD", "1,2,3,4"),
        ("$DATATYPE", dt),
        ("$MODE", "L"),
        ("$NEXTDATA", "0"),
        ("$PAR", npar),
        ("$TOT", n),
    ):
        text.put(key, value)
    for j in range(npar):
        k = j + 1
        if dt == "I":
            rng = 2 ** bits[j]
        else:
            col = data[:, j]
            finite = col[np.isfinite(col)] if n else col
            top = float(finite.max()) if finite.size else 0.0
            rng = 262144 if top <= 262144 else math.ceil(top)
        text.put(f"$P{k}N", chans[j])
        text.put(f"$P{k}B", bits[j])
        text.put(f"$P{k}E", "0,0")
        text.put(f"$P{k}R", rng)
        if marks[j]:
            text.put(f"$P{k}S", marks[j])


def _spillover_value(p: Path, spillover: pd.DataFrame) -> str:
    """``$SPILLOVER``'s value: size, detector names, then the matrix row by row."""
    sp = pd.DataFrame(spillover)
    if sp.shape[0] != sp.shape[1]:
        raise FCSError(p, f"spillover must be square, got {sp.shape}", keyword="$SPILLOVER")
    vals = sp.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise FCSError(p, "spillover has non-finite values", keyword="$SPILLOVER")
    cols = [str(c) for c in sp.columns]
    if any("," in c for c in cols):
        raise FCSError(p, "spillover channel names cannot contain ','", keyword="$SPILLOVER")
    return ",".join([str(len(cols)), *cols, *(_format_float(v) for v in vals.ravel())])


def _put_given(text: _Keywords, keywords: Mapping[str, object], *, skip_spillover: bool) -> None:
    """The caller's keywords, except the layout ones (computed here) and empty ones."""
    for key, value in keywords.items():
        key = str(key).strip()
        ukey = key.upper()
        if not key or ukey in _STRUCTURAL or _is_channel_structural(ukey):
            continue
        if (ukey == "$SPILLOVER" and skip_spillover) or value is None:
            continue
        text.put(key, value)


def _delimiter(p: Path, items: list[tuple[str, str]], delimiter: str | None) -> str:
    """The given TEXT delimiter, checked, or the first that occurs in no keyword or value."""
    if delimiter is None:
        blob = "".join(k + v for k, v in items)
        delimiter = next((d for d in _DELIMITERS if d not in blob), "/")
    if len(delimiter) != 1 or not 1 <= ord(delimiter) <= 126:
        raise FCSError(p, f"delimiter {delimiter!r} must be one ASCII character")
    return delimiter


def _text_segment(items: list[tuple[str, str]], delimiter: str, begin: int, end: int) -> bytes:
    """The TEXT segment with DATA at bytes ``begin..end`` (no ANALYSIS, no supplemental TEXT);
    delimiters inside keys and values doubled."""

    def esc(s: str) -> str:
        return s.replace(delimiter, delimiter * 2)

    d = delimiter
    offsets = (
        f"$BEGINANALYSIS{d}0{d}$ENDANALYSIS{d}0{d}$BEGINSTEXT{d}0{d}$ENDSTEXT{d}0{d}"
        f"$BEGINDATA{d}{begin}{d}$ENDDATA{d}{end}{d}"
    )
    body = "".join(f"{esc(k)}{d}{esc(v)}{d}" for k, v in items)
    return (d + offsets + body).encode("utf-8")


def _header_and_text(
    p: Path, items: list[tuple[str, str]], delimiter: str, nbytes: int
) -> tuple[bytes, bytes]:
    """The HEADER and TEXT segments for ``nbytes`` of DATA right after TEXT. ``$BEGINDATA`` and
    ``$ENDDATA`` are written in TEXT, so its length depends on them: repeat until they agree."""
    text_start = _HEADER_BYTES
    begin = end = 0
    for _ in range(5):
        data_start = text_start + len(_text_segment(items, delimiter, begin, end))
        new_begin = data_start if nbytes else 0
        new_end = data_start + nbytes - 1 if nbytes else 0
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    tb = _text_segment(items, delimiter, begin, end)
    text_end = text_start + len(tb) - 1
    if text_end > 99_999_999:
        raise FCSError(p, "TEXT segment too large for the FCS HEADER (over 99,999,999 bytes)")
    hb, he = (begin, end) if end <= 99_999_999 else (0, 0)  # zeros: the offsets are in TEXT
    header = b"FCS3.1    " + b"".join(
        f"{v:>8d}".encode("ascii") for v in (text_start, text_end, hb, he, 0, 0)
    )
    assert len(header) == _HEADER_BYTES
    return header, tb
