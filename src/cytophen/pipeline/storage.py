"""Atomic output files and the per-sample store that makes batches resumable.

Every file is written to a temporary file in the same folder, flushed to disk and renamed over the
target with :func:`os.replace`, so a reader (or a crash) only ever sees the old file or the new one.

The store keeps each finished sample in one file, ``<out>/.cytophen/samples/<safe_id>.json``: its
record (id, file, BLAKE3 content hash, template hash, options key, gate geometry, timings) and its population
table (columns, dtypes and values, read back exactly), written atomically, so its presence means
the sample is complete. One small JSON per sample costs a fraction of a Parquet file plus a JSON
(which is what earlier versions wrote, and what is still written, and read, for a table whose
column types the JSON form does not cover: ``<safe_id>.parquet`` next to the record).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from cytophen._atomic import atomic_write_bytes, atomic_write_text, atomic_write_with

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "to_jsonable",
    "write_json",
    "write_csv",
    "write_parquet",
    "SampleStore",
]


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths, tuples and NaN into plain JSON values (NaN → null)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    return str(obj)


def write_json(path: str | Path, obj: Any, *, fsync: bool = True) -> None:
    """Atomically write ``obj`` as indented JSON."""
    text = json.dumps(to_jsonable(obj), indent=1, allow_nan=False) + "\n"
    atomic_write_text(path, text, fsync=fsync)


def write_csv(path: str | Path, df) -> None:
    """Atomically write a DataFrame as CSV (no index)."""
    atomic_write_text(path, df.to_csv(index=False))


def write_parquet(path: str | Path, df, *, fsync: bool = True) -> None:
    """Atomically write a DataFrame as Parquet (pyarrow, no index)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue(), fsync=fsync)


#: Column dtypes the store's JSON table form holds exactly (anything else: Parquet).
_JSON_DTYPES = {"object", "Int64", "int64", "float64", "bool"}


def encode_table(df) -> dict[str, Any] | None:
    """A population table as plain JSON values (``columns``, ``dtypes``, ``data`` column by
    column; non-finite floats as the strings ``'nan'``, ``'inf'``, ``'-inf'``), or ``None`` when a
    column's type is not one this form reads back exactly (see :func:`decode_table`)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.RangeIndex):
        return None
    if df.index.start != 0 or df.index.step != 1 or df.columns.has_duplicates:
        return None
    columns, dtypes, data = [], [], []
    for name in df.columns:
        if not isinstance(name, str):
            return None
        col = df[name]
        dt = str(col.dtype)
        if dt not in _JSON_DTYPES:
            return None
        if dt == "object":
            values = col.tolist()
            if not all(type(v) is str for v in values):
                return None
        elif dt == "Int64":
            values = [None if v is pd.NA else int(v) for v in col.tolist()]
        elif dt == "float64":
            values = [v if np.isfinite(v) else str(v) for v in col.tolist()]
        else:  # int64, bool: Python ints and bools
            values = col.tolist()
        columns.append(name)
        dtypes.append(dt)
        data.append(values)
    return {"columns": columns, "dtypes": dtypes, "data": data, "rows": len(df)}


def decode_table(payload: dict[str, Any]):
    """The DataFrame :func:`encode_table` described (same columns, dtypes and values)."""
    import pandas as pd

    cols = {}
    for name, dt, values in zip(payload["columns"], payload["dtypes"], payload["data"]):
        if dt == "Int64":
            cols[name] = pd.array(values, dtype="Int64")
        elif dt == "float64":
            cols[name] = np.array([float(v) for v in values], dtype=np.float64)
        elif dt == "object":
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            cols[name] = arr
        elif dt in _JSON_DTYPES:
            cols[name] = np.array(values, dtype=dt)
        else:
            raise ValueError(f"unknown column type {dt!r}")
    df = pd.DataFrame(cols, index=pd.RangeIndex(int(payload["rows"])))
    if list(df.columns) != list(payload["columns"]):  # pragma: no cover - duplicate names
        raise ValueError("columns do not match")
    return df


def _dumps_fast(obj: Any) -> str:
    """Compact JSON (C encoder); values :func:`to_jsonable` would change go through it first."""

    def default(o):
        return to_jsonable(o)

    try:
        return json.dumps(obj, allow_nan=False, default=default, separators=(",", ":"))
    except ValueError:  # a NaN somewhere: the slow, converting path
        return json.dumps(to_jsonable(obj), allow_nan=False, separators=(",", ":"))


class SampleStore:
    """Finished samples of one output folder (``<out>/.cytophen/samples``)."""

    def __init__(self, out: str | Path):
        self.dir = Path(out) / ".cytophen" / "samples"

    def create(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def _json(self, safe_id: str) -> Path:
        return self.dir / f"{safe_id}.json"

    def _parquet(self, safe_id: str) -> Path:
        return self.dir / f"{safe_id}.parquet"

    def save(self, safe_id: str, record: dict[str, Any], table) -> None:
        """Store one finished sample: one JSON file holding its record and its table (or, for a
        table the JSON form cannot hold exactly, the table as Parquet first, then the record that
        marks it complete).

        Atomic renames without fsync: safe against a crash or kill of the run (what resume is
        for); after a power cut a sample may be missing or unreadable, and is then recomputed."""
        payload = encode_table(table)
        if payload is None:
            write_parquet(self._parquet(safe_id), table, fsync=False)
            write_json(self._json(safe_id), record, fsync=False)
            return
        text = _dumps_fast({**record, "table": payload}) + "\n"
        atomic_write_text(self._json(safe_id), text, fsync=False)
        stale = self._parquet(safe_id)  # from an earlier version's store
        if stale.exists():
            try:
                stale.unlink()
            except OSError:  # pragma: no cover
                pass

    def record(self, safe_id: str) -> dict[str, Any] | None:
        """The stored record of a sample (with its table's JSON form under ``table`` when stored
        that way), or ``None`` when absent or unreadable."""
        p = self._json(safe_id)
        try:
            with open(p, encoding="utf-8") as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict):
            return None
        if not isinstance(rec.get("table"), dict) and not self._parquet(safe_id).is_file():
            return None
        return rec

    def table(self, safe_id: str, record: dict[str, Any] | None = None):
        """The stored population table of a sample (``record``: its stored record, if read
        already)."""
        import pandas as pd

        if record is None:
            record = self.record(safe_id) or {}
        payload = record.get("table")
        if isinstance(payload, dict):
            return decode_table(payload)
        return pd.read_parquet(self._parquet(safe_id))

    def paths(self, safe_id: str) -> tuple[Path, Path]:
        return self._parquet(safe_id), self._json(safe_id)
