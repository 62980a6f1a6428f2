"""Finding a batch's inputs: files, folders and manifests → one :class:`SampleInput` per sample.

Rules (see docs/batch.md):

- a file is used as given (whatever its extension; a non-FCS file then fails at the ``read`` stage);
- a folder is searched recursively for ``*.fcs`` / ``*.FCS`` / ``*.lmd`` (any case), skipping hidden
  folders (such as a results folder's ``.cytophen/``) and the output folder itself;
- a ``.csv`` path is a manifest: a ``file`` column (relative paths are relative to the manifest's
  folder), an optional ``sample`` column, and any other columns as metadata carried into the tables;
- the sample id is the manifest's ``sample``, else the file stem. Ids must be unique: two files with
  the same stem in different folders are an :class:`InputError` (give them ids with a manifest);
- every id also gets a ``safe_id`` for file names: only ``[A-Za-z0-9._-]``, no leading dot, at most
  80 characters, plus a short hash of the id whenever anything had to change (or two ids differ only
  in case), so nothing an id says can reach outside the output folder or collide with another sample.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytophen._names import safe_name, short_hash
from cytophen.errors import InputError

__all__ = [
    "InputError",
    "SampleInput",
    "discover",
    "select_samples",
    "read_manifest",
    "safe_name",
    "FCS_SUFFIXES",
]

#: File name endings a folder search picks up (compared case-insensitively).
FCS_SUFFIXES = (".fcs", ".lmd")


@dataclass(frozen=True)
class SampleInput:
    """One sample of a batch.

    Attributes
    ----------
    sample
        Sample id as it appears in the tables (the manifest's ``sample``, else the file stem).
    path
        Absolute path of the FCS file.
    safe_id
        The id made safe for file names (see :func:`safe_name`), unique within the batch.
    metadata
        Manifest columns other than ``file`` and ``sample`` (empty without a manifest).
    """

    sample: str
    path: Path
    safe_id: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _assign_safe_ids(ids: Sequence[str]) -> list[str]:
    names = [safe_name(i) for i in ids]
    folded: dict[str, list[int]] = {}
    for k, n in enumerate(names):
        folded.setdefault(n.casefold(), []).append(k)
    for group in folded.values():
        if len(group) > 1:  # ids differing only in case: case-insensitive file systems would clash
            for k in group:
                names[k] = f"{names[k]}-{short_hash(ids[k])}"
    if len({n.casefold() for n in names}) != len(names):  # pragma: no cover - needs a sha256 clash
        raise InputError("two sample ids map to the same output file name; rename one of them")
    return names


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _scan_folder(folder: Path, exclude: Path | None) -> list[Path]:
    found = []
    for p in folder.rglob("*"):
        if p.suffix.lower() not in FCS_SUFFIXES or not p.is_file() or _is_hidden(p, folder):
            continue
        rp = p.resolve()
        if exclude is not None and (rp == exclude or exclude in rp.parents):
            continue
        found.append(rp)
    return sorted(found)


def _clean(value: Any) -> Any:
    """Manifest cell → plain Python value (NaN → None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def read_manifest(path: str | Path) -> list[tuple[Path, str | None, dict[str, Any]]]:
    """Rows of a manifest CSV as ``(absolute file path, sample id or None, metadata)``.

    Parameters
    ----------
    path
        A CSV with a ``file`` column (relative paths are taken relative to the manifest's folder),
        an optional ``sample`` column and any metadata columns. Column names are matched
        case-insensitively for ``file`` and ``sample``.

    Raises
    ------
    InputError
        The file is not a readable CSV, has no ``file`` column, or a row has an empty ``file``.
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise InputError(f"manifest {path} not found") from None
    except (OSError, ValueError, csv.Error) as exc:  # pandas' ParserError is a ValueError
        raise InputError(f"manifest {path}: cannot be read as CSV ({exc})") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "file" not in cols:
        raise InputError(
            f"manifest {path}: needs a 'file' column (the FCS file of each row); it has: "
            f"{', '.join(map(str, df.columns)) or 'no columns'}"
        )
    file_col = cols["file"]
    sample_col = cols.get("sample")
    meta_cols = [c for c in df.columns if c not in (file_col, sample_col)]
    # metadata keeps pandas' type inference (numbers stay numbers); file/sample stay text
    typed = pd.read_csv(path) if meta_cols else None
    rows = []
    for i, rec in enumerate(df.itertuples(index=False)):
        values = dict(zip(df.columns, rec))
        f = values[file_col]
        if f is None or (isinstance(f, float) and math.isnan(f)) or not str(f).strip():
            raise InputError(f"manifest {path}, line {i + 2}: empty 'file' cell")
        fp = Path(str(f).strip()).expanduser()
        if not fp.is_absolute():
            fp = path.resolve().parent / fp
        sid = values.get(sample_col) if sample_col is not None else None
        sid = (
            None
            if sid is None or (isinstance(sid, float) and math.isnan(sid))
            else str(sid).strip()
        )
        meta = {str(c): _clean(typed.iloc[i][c]) for c in meta_cols} if typed is not None else {}
        rows.append((fp.resolve(), sid or None, meta))
    return rows


def select_samples(
    samples: list[SampleInput], columns: list[str], where: dict[str, str]
) -> list[SampleInput]:
    """The samples whose manifest metadata match every ``column: value`` of ``where`` (values
    compared as text, as the manifest wrote them).

    Raises
    ------
    InputError
        A column the manifest does not have, or no sample left.
    """
    for col, value in where.items():
        if col not in columns:
            have = ", ".join(columns) or "none: give a manifest"
            raise InputError(f"--where {col}={value}: no column {col!r} in the manifest ({have})")
    kept = [
        s for s in samples if all(str(s.metadata.get(c, "")) == str(v) for c, v in where.items())
    ]
    if not kept:
        seen = {c: sorted({str(s.metadata.get(c, "")) for s in samples}) for c in where}
        said = "; ".join(f"{c}: {', '.join(v[:10])}" for c, v in seen.items())
        cond = " and ".join(f"{c}={v}" for c, v in where.items())
        raise InputError(f"--where {cond}: no sample matches (values present: {said})")
    return kept


def discover(
    paths: Iterable[str | Path],
    *,
    manifest: str | Path | None = None,
    exclude: str | Path | None = None,
    reserved_columns: Iterable[str] = (),
) -> tuple[list[SampleInput], list[str]]:
    """Expand ``paths`` (files, folders, manifest CSVs) into the batch's samples.

    Parameters
    ----------
    paths
        Files, folders (searched recursively for ``*.fcs``/``*.lmd``) and manifest ``.csv`` files.
    manifest
        A manifest giving sample ids and metadata. Without ``paths`` its rows are the inputs; with
        ``paths`` it is matched to those files by absolute path, else by file name.
    exclude
        A folder never searched (the output folder).
    reserved_columns
        Result-table columns a manifest's metadata columns may not reuse.

    Returns
    -------
    samples, metadata_columns
        The samples in input order and the metadata column names (manifest order).

    Raises
    ------
    InputError
        A path does not exist, nothing was found, a manifest is unusable, or two samples share an id.
    """
    excl = Path(exclude).resolve() if exclude is not None else None
    entries: list[tuple[Path, str | None, dict[str, Any]]] = []
    meta_cols: list[str] = []

    def add_meta_cols(rows):
        for _, _, meta in rows:
            for c in meta:
                if c not in meta_cols:
                    meta_cols.append(c)

    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise InputError(f"input {raw} does not exist")
        if p.is_dir():
            found = _scan_folder(p, excl)
            if not found:
                raise InputError(f"folder {raw} holds no *.fcs or *.lmd files")
            entries.extend((f, None, {}) for f in found)
        elif p.suffix.lower() == ".csv":
            rows = read_manifest(p)
            add_meta_cols(rows)
            entries.extend(rows)
        else:
            entries.append((p.resolve(), None, {}))

    if manifest is not None:
        rows = read_manifest(manifest)
        add_meta_cols(rows)
        if not entries:
            entries = rows
        else:
            by_path = {r[0]: r for r in rows}
            by_name: dict[str, list] = {}
            for r in rows:
                by_name.setdefault(r[0].name, []).append(r)
            merged = []
            for f, sid, meta in entries:
                hit = by_path.get(f)
                if hit is None and len(by_name.get(f.name, ())) == 1:
                    hit = by_name[f.name][0]
                merged.append((f, hit[1], hit[2]) if hit is not None else (f, sid, meta))
            entries = merged

    if not entries:
        raise InputError("no input files: give FCS files, folders or a manifest CSV")

    reserved = {c.lower() for c in reserved_columns}
    clash = [c for c in meta_cols if c.lower() in reserved]
    if clash:
        raise InputError(
            f"manifest column(s) {', '.join(clash)} clash with result-table columns; rename them"
        )

    # the same file named twice (a folder and a file in it) counts once
    seen: set[Path] = set()
    unique = []
    for e in entries:
        if e[0] not in seen:
            seen.add(e[0])
            unique.append(e)

    ids = [sid if sid is not None else f.stem for f, sid, _ in unique]
    by_id: dict[str, list[Path]] = {}
    for sid, (f, _, _) in zip(ids, unique):
        by_id.setdefault(sid, []).append(f)
    dups = {k: v for k, v in by_id.items() if len(v) > 1}
    if dups:
        lines = [f"  {k!r}: {', '.join(map(str, v))}" for k, v in list(dups.items())[:10]]
        raise InputError(
            "sample ids must be unique, but these are used by more than one file:\n"
            + "\n".join(lines)
            + "\ngive each file its own id with a manifest CSV (columns: file, sample)"
        )
    safe = _assign_safe_ids(ids)
    samples = [
        SampleInput(sid, f, s, {c: meta.get(c) for c in meta_cols})
        for sid, (f, _, meta), s in zip(ids, unique, safe)
    ]
    return samples, meta_cols
