"""The HEADER and TEXT of an FCS file: the data sets of a ``$NEXTDATA`` chain, their keywords,
and the named repairs (:data:`REPAIRS`) that reading may apply."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cytophen.errors import FCSError, FCSWarning

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


def check_repairs(repairs: Iterable[str] | None) -> frozenset[str]:
    """The set of named FCS repairs ``repairs`` asks for (a name, names or ``None``).

    Raises
    ------
    ValueError
        A name that is not one of :data:`REPAIRS`.
    """
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
    chosen = check_repairs(repairs)
    p, f, size = _open(path)
    with f:
        return _walk(p, f, size, _Warner(p, chosen), None)
