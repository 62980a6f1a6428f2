"""Sample manifests: which subject and visit each sample belongs to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cytophen.errors import ClinicalError

__all__ = ["read_manifest", "manifest_from_pattern", "manifest_from_keywords", "parse_visit"]

_VISIT = re.compile(
    r"^\s*(?:(?P<base>baseline|bl|screening|pre)|(?:w|wk|week|v|visit|d|day|m|month)?[\s_\-]*(?P<num>[+-]?\d+(?:\.\d+)?))\s*$",
    re.IGNORECASE,
)
_UNIT = re.compile(r"^\s*(?P<u>w|wk|week|d|day|m|month)", re.IGNORECASE)


def parse_visit(visit) -> float | None:
    """The study week a visit label stands for, or ``None`` when it does not parse.

    ``'W0'``, ``'W00'``, ``'wk 4'``, ``'Week 12'``, ``'12'`` → weeks; ``'D14'``/``'day 14'`` → 2.0;
    ``'M3'``/``'month 3'`` → 13.04 (months × 30.44 / 7); ``'baseline'``/``'BL'`` → 0.
    """
    if visit is None or (isinstance(visit, float) and pd.isna(visit)):
        return None
    if isinstance(visit, (int, float)):
        return float(visit)
    text = str(visit)
    m = _VISIT.match(text)
    if not m:
        return None
    if m.group("base"):
        return 0.0
    num = float(m.group("num"))
    unit = _UNIT.match(text)
    u = unit.group("u").lower() if unit else "w"
    if u in ("d", "day"):
        return num / 7.0
    if u in ("m", "month"):
        return round(num * 30.44 / 7.0, 2)
    return num


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV: a ``file`` column (name or path) and/or a ``sample`` column, plus any
    metadata columns (subject, visit, panel, ...).

    Raises
    ------
    ClinicalError
        When the file cannot be read or has neither a ``file`` nor a ``sample`` column, or when
        sample ids repeat.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ClinicalError(f"manifest not found: {p}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ClinicalError(f"{p}: not a readable CSV manifest ({exc})") from None
    df.columns = [c.strip() for c in df.columns]
    if "file" not in df.columns and "sample" not in df.columns:
        raise ClinicalError(
            f"{p}: a manifest needs a 'file' or 'sample' column; it has: {', '.join(df.columns)}"
        )
    if "sample" not in df.columns:
        df.insert(0, "sample", [Path(f).stem for f in df["file"]])
    dup = df["sample"][df["sample"].duplicated()].unique().tolist()
    if dup:
        raise ClinicalError(f"{p}: sample ids repeat: {', '.join(map(str, dup))}")
    return df


def manifest_from_pattern(names: Iterable[str], pattern: str) -> pd.DataFrame:
    """Build a manifest from file names (or sample ids) with a regex of named groups.

    >>> manifest_from_pattern(["P01_W04_bcell.fcs"], r"(?P<subject>P\\d+)_(?P<visit>W\\d+)")
        sample               file subject visit
    0  P01_W04_bcell  P01_W04_bcell.fcs     P01   W04
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ClinicalError(f"invalid filename pattern {pattern!r}: {exc}") from None
    if not rx.groupindex:
        raise ClinicalError(
            f"filename pattern {pattern!r} has no named groups such as (?P<subject>...)"
        )
    rows, unmatched = [], []
    for name in names:
        base = Path(str(name)).name
        m = rx.search(base)
        if m is None:
            unmatched.append(base)
            continue
        rows.append(
            {
                "sample": Path(base).stem if base.lower().endswith((".fcs", ".lmd")) else base,
                "file": base,
                **m.groupdict(),
            }
        )
    if unmatched:
        raise ClinicalError(
            f"filename pattern {pattern!r} does not match: {', '.join(unmatched[:10])}"
            + (" ..." if len(unmatched) > 10 else "")
        )
    return pd.DataFrame(rows)


def manifest_from_keywords(paths: Iterable[str | Path], mapping: Mapping[str, str]) -> pd.DataFrame:
    """Build a manifest from FCS keywords: ``mapping`` is column → keyword, e.g.
    ``{"subject": "PATIENT ID", "visit": "$SRC"}`` (keywords looked up case-insensitively)."""
    from cytophen.io.fcs import read_fcs

    rows = []
    for p in paths:
        s = read_fcs(p)
        row = {"sample": Path(p).stem, "file": Path(p).name}
        for col, kw in mapping.items():
            v = s.keyword(kw)
            if v is None:
                raise ClinicalError(f"{p}: keyword {kw!r} (for column {col!r}) is not in the file")
            row[col] = v
        rows.append(row)
    return pd.DataFrame(rows)
