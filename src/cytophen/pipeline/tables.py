"""What a batch returns and writes as tables: :class:`BatchResult`, the column sets of the
population and error tables, and the wide (one row per sample) table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["BatchResult", "wide_table", "ERROR_COLUMNS", "BASE_COLUMNS"]

#: Columns of errors.csv.
ERROR_COLUMNS = ["sample", "file", "stage", "message"]
#: Columns every population table starts with (docs/architecture.md).
BASE_COLUMNS = [
    "sample", "file", "population", "parent", "path", "count", "parent_count",
    "percent_of_parent", "percent_of_total",
]  # fmt: skip
_TAIL_COLUMNS = ["measured", "note", "template", "template_version", "template_hash"]
#: Columns that are not per-population statistics (left out of the wide table).
_NOT_STATS = {"sample", "file", "population", "parent", "path", *_TAIL_COLUMNS}


@dataclass
class BatchResult:
    """What a batch produced.

    Attributes
    ----------
    populations
        Tidy table: one row per sample x population (the columns of ``GatingResult.table``, then
        the manifest's metadata columns), samples in input order.
    errors
        One row per failed sample: ``sample, file, stage, message``.
    gates
        Per sample id, per population: the geometry the gate used (for data-driven gates what was
        fitted on that sample, ``fell_back`` and ``reason``).
    n_ok, n_failed
        Samples gated / failed.
    run
        The provenance written to run.json.
    out
        The output folder, if any.
    """

    populations: pd.DataFrame
    errors: pd.DataFrame
    gates: dict[str, dict[str, Any]]
    n_ok: int
    n_failed: int
    run: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None

    @property
    def wide(self) -> pd.DataFrame:
        """One row per sample, one column per ``<population>.<statistic>``."""
        return wide_table(self.populations, self.run.get("metadata_columns", []))

    @property
    def ok(self) -> bool:
        """``True`` when every sample was gated."""
        return self.n_failed == 0

    def __repr__(self) -> str:
        where = f", out={str(self.out)!r}" if self.out is not None else ""
        return f"BatchResult(ok={self.n_ok}, failed={self.n_failed}, rows={len(self.populations)}{where})"


def wide_table(populations: pd.DataFrame, metadata_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Pivot a tidy population table to one row per sample and one column per
    ``<population>.<statistic>`` (``count``, ``percent_of_parent``, ``percent_of_total``,
    ``percent_of_<ancestor>``, ``<statistic>_<marker>``), populations in template order."""
    meta = [c for c in metadata_columns if c in populations.columns]
    if populations.empty:
        return pd.DataFrame(columns=["sample", "file", *meta])
    stats = [
        c for c in populations.columns
        if c not in _NOT_STATS and c not in meta and c != "parent_count"
    ]  # fmt: skip
    samples = list(dict.fromkeys(populations["sample"]))
    pops = list(dict.fromkeys(populations["population"]))
    first = populations.drop_duplicates("sample").set_index("sample")
    out = {"sample": samples, "file": first.loc[samples, "file"].tolist()}
    for c in meta:
        out[c] = first.loc[samples, c].tolist()
    cols: dict[str, Any] = {}
    for pop in pops:
        sub = populations[populations["population"] == pop].set_index("sample")
        for s in stats:
            if sub[s].isna().all() and s not in ("count", "percent_of_parent", "percent_of_total"):
                continue  # a percent_of/statistic column another population asked for
            cols[f"{pop}.{s}"] = sub[s].reindex(samples).to_numpy()
    wide = pd.DataFrame(out)
    if cols:
        wide = pd.concat([wide, pd.DataFrame(cols)], axis=1)
    return wide
