"""What travels between a batch, its runners and their workers, as typed records.

The batch hands each runner one :class:`SampleTask` per sample and the :class:`WorkerOptions`
every sample is gated with; a worker gates a task and hands back one :class:`SampleRecord`. The
records are what the batch stores for ``--resume`` (:meth:`SampleRecord.to_store`) and what
run.json lists per input (:meth:`SampleRecord.run_entry`), in the formats docs/batch.md describes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cytophen.io.fcs import DEFAULT_REPAIRS

if TYPE_CHECKING:
    import pandas as pd

    from cytophen.markers import MarkerMap
    from cytophen.template import Template

__all__ = ["WorkerOptions", "PooledFit", "SampleTask", "SampleRecord"]


@dataclass(frozen=True)
class WorkerOptions:
    """How every sample of a batch is gated (see :func:`cytophen.pipeline.batch.gate_files`).

    Attributes
    ----------
    compensation
        The engine's compensation override (:func:`cytophen.pipeline.batch.compensation_option`).
    seed
        Seed of the data-driven gates.
    threads
        numba and BLAS threads per sample (a batch is parallel across files: 1).
    export_gated, export_dir
        The population whose events are written to ``<export_dir>/<safe_id>.fcs`` (or ``None``).
    plots, plots_dir
        Whether each sample's gating plots are drawn into ``<plots_dir>/<safe_id>/``.
    repairs, pregated, include_hidden, scale
        As :func:`cytophen.gate` / :func:`cytophen.read_fcs`.
    markers
        Marker names for channels without ``$PnS`` (or ``None``).
    """

    compensation: Any = None
    seed: int = 0
    threads: int = 1
    export_gated: str | None = None
    export_dir: str | None = None
    plots: bool = False
    plots_dir: str | None = None
    repairs: Iterable[str] | None = DEFAULT_REPAIRS
    pregated: str | None = None
    include_hidden: bool = False
    scale: str = "auto"
    markers: MarkerMap | None = None


@dataclass(frozen=True)
class PooledFit:
    """The pooled gates of a sample's group: ``fitted`` (by gate key), or why the group's fit
    failed (``error``: every sample of the group then fails at the ``gate`` stage)."""

    column: str
    group: str
    fitted: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class SampleTask:
    """One sample to gate.

    Attributes
    ----------
    sample, file, safe_id
        The sample id, its FCS file, and the id made safe for file names
        (:func:`cytophen.pipeline.inputs.safe_name`).
    template
        The file's own template (a FlowJo workspace's sample), or ``None``: the batch's.
    pool
        The pooled gates of its group, if the template pools any.
    """

    sample: str
    file: str
    safe_id: str
    template: Template | None = None
    pool: PooledFit | None = None


#: Fields of a record the store keeps in this order (what earlier versions wrote, too).
_STORED = ("sample", "file", "safe_id", "blake3", "n_events", "timings", "worker")


@dataclass
class SampleRecord:
    """What gating one sample gave: its population table and gate geometry, or why it failed.

    Attributes
    ----------
    sample, file, safe_id
        As the task.
    status
        ``'ok'`` or ``'failed'``.
    stage, message
        When failed: the stage (the ``stage`` column of errors.csv) and what went wrong.
    blake3, n_events
        The file's BLAKE3-256 and its number of events (``None`` when not read that far).
    timings
        Seconds per step (``read``, ``gate``, ``export``, ``plots``, ``total``).
    worker
        ``host:pid`` of the process that gated it.
    table, gates
        When ok: the population table and each population's gates.json entry.
    scale
        The scale detected and applied for ``auto`` transforms, if any.
    plots_error
        Why its plots could not be drawn (the sample is still ok).
    resumed
        Taken from the output folder's store instead of gated in this run.
    options
        When ok: the options key it was gated with (what ``--resume`` compares).
    export_gated
        When ok: the population whose events were exported.
    """

    sample: str
    file: str
    safe_id: str
    status: str = "failed"
    stage: str | None = None
    message: str | None = None
    blake3: str | None = None
    n_events: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    worker: str | None = None
    table: pd.DataFrame | None = field(default=None, repr=False)
    gates: dict[str, Any] = field(default_factory=dict, repr=False)
    scale: dict[str, Any] | None = None
    plots_error: str | None = None
    resumed: bool = False
    options: dict[str, Any] | None = None
    export_gated: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failed(cls, task: SampleTask, stage: str, message: str, **kwargs: Any) -> SampleRecord:
        """The record of a sample that failed at ``stage`` before any worker could say more."""
        return cls(task.sample, task.file, task.safe_id, stage=stage, message=message, **kwargs)

    def to_store(self) -> dict[str, Any]:
        """The record as the output folder's store keeps it (a finished sample, without its
        table; JSON values)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _STORED}
        if self.plots_error:
            out["plots_error"] = self.plots_error
        out["status"] = self.status
        out["gates"] = self.gates
        if self.scale is not None:
            out["scale"] = self.scale
        out.update(computed=True, options=self.options, export_gated=self.export_gated)
        return out

    @classmethod
    def from_store(cls, stored: dict[str, Any], *, file: str, table) -> SampleRecord:
        """A stored record (:meth:`to_store`, or an earlier version's), resumed with ``table``."""
        return cls(
            sample=stored.get("sample"),
            file=file,
            safe_id=stored.get("safe_id"),
            status=stored.get("status", "failed"),
            blake3=stored.get("blake3"),
            n_events=stored.get("n_events"),
            timings=stored.get("timings", {}),
            worker=stored.get("worker"),
            table=table,
            gates=stored.get("gates", {}),
            scale=stored.get("scale"),
            plots_error=stored.get("plots_error"),
            resumed=True,
            options=stored.get("options"),
            export_gated=stored.get("export_gated"),
        )

    def run_entry(self) -> dict[str, Any]:
        """This sample's entry of run.json's ``inputs`` (its file, hash and status)."""
        return {
            "sample": self.sample,
            "file": self.file,
            "safe_id": self.safe_id,
            "blake3": self.blake3,
            "n_events": self.n_events,
            "status": self.status,
            "resumed": self.resumed,
            "worker": self.worker,
            **({"plots_error": self.plots_error} if self.plots_error else {}),
            **({"scale": self.scale} if self.scale else {}),
            "timings": self.timings,
        }
