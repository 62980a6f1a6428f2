"""Atomic output files and the per-sample store that makes batches resumable.

Every file is written to a temporary file in the same folder, flushed to disk and renamed over the
target with :func:`os.replace`, so a reader (or a crash) only ever sees the old file or the new one.

The store keeps each finished sample in ``<out>/.cytophen/samples/<safe_id>.parquet`` (its
population table) and ``<safe_id>.json`` (its record: id, file, sha256, template hash, options key,
gate geometry, timings). The JSON is written last, so its presence means the sample is complete.
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
        """Store one finished sample: the table first, then the record that marks it complete.

        Atomic renames without fsync: safe against a crash or kill of the run (what resume is
        for); after a power cut a sample may be missing or unreadable, and is then recomputed."""
        write_parquet(self._parquet(safe_id), table, fsync=False)
        write_json(self._json(safe_id), record, fsync=False)

    def record(self, safe_id: str) -> dict[str, Any] | None:
        """The stored record of a sample, or ``None`` when absent or unreadable."""
        p = self._json(safe_id)
        try:
            with open(p, encoding="utf-8") as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or not self._parquet(safe_id).is_file():
            return None
        return rec

    def table(self, safe_id: str):
        """The stored population table of a sample."""
        import pandas as pd

        return pd.read_parquet(self._parquet(safe_id))

    def paths(self, safe_id: str) -> tuple[Path, Path]:
        return self._parquet(safe_id), self._json(safe_id)
