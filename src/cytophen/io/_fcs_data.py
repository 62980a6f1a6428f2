"""The DATA segment of an FCS data set: the layout its keywords describe (``$DATATYPE``,
``$PnB``, ``$PnR``, ``$BYTEORD``), where it lies (HEADER or TEXT offsets, named repairs), and
decoding it into an events array."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cytophen.errors import FCSError
from cytophen.io._fcs_text import _HEADER_BYTES, FCSDataSet, _parse_int, _Warner

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
