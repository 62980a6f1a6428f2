"""What a worker does with one sample: hash → read → gate (compensate, transform) → small results.

:func:`run_sample` never raises for a problem with the sample: it returns a record with
``status='failed'``, the ``stage`` that failed and a message, so one bad file never stops a batch.
Only the small population table and the gate geometry travel back to the driver, never the events
or memberships.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cytophen.errors import (
    CompensationError,
    CytophenError,
    FCSError,
    MarkerError,
    TransformError,
)
from cytophen.io.fcs import read_fcs, write_fcs
from cytophen.pipeline.records import PooledFit, SampleRecord, SampleTask, WorkerOptions
from cytophen.pipeline.storage import to_jsonable

__all__ = [
    "run_sample",
    "file_blake3",
    "file_sha256",
    "stage_of",
    "blas_threads",
    "blas_controller",
]


def file_blake3(path: str | Path) -> str:
    """BLAKE3-256 of a file's bytes (hex; ``b3sum`` prints the same), read 1 MiB at a time.

    The content hash of every input (``--resume``, run.json). BLAKE3 is a cryptographic hash like
    SHA-256 and hashes a 14 MB FCS file in about 5 ms instead of 11 ms. Reading in chunks keeps the
    memory it needs at 1 MiB whatever the file's size (a memory map would make the process's
    resident memory as large as the file)."""
    import blake3

    h = blake3.blake3(max_threads=1)
    buf = bytearray(_HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])  # releases the GIL for a chunk this size
    return h.hexdigest()


_HASH_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): compensation matrix files, and stores written by
    cytophen versions that hashed inputs with SHA-256."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def stage_of(exc: BaseException) -> str:
    """The pipeline stage an exception from gating belongs to (the ``stage`` column of errors.csv)."""
    if isinstance(exc, FCSError):
        return "read"
    if isinstance(exc, CompensationError):
        return "compensate"
    if isinstance(exc, MarkerError):
        return "markers"
    if isinstance(exc, TransformError):
        return "transform"
    return "gate"


def _message(exc: BaseException) -> str:
    if isinstance(exc, CytophenError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"{type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=1)
def blas_controller():
    """threadpoolctl's view of this process's BLAS/OpenMP pools (found once per process)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    return ThreadpoolController()


_plot_lock = threading.Lock()
_blas_lock = threading.Lock()
_blas_state: dict[str, Any] = {"depth": 0, "limiter": None}


@contextlib.contextmanager
def blas_threads(n: int | None):
    """Limit BLAS (numpy's matrix products, e.g. compensation) to ``n`` threads in this block.
    Idle BLAS threads spinning next to other workers cost more than they bring on small products.

    The limit is process-wide, so nested and concurrent blocks (samples gated on several threads)
    share one: the first block to enter sets it, the last to leave restores what was there."""
    ctl = blas_controller() if n else None
    if ctl is None:
        yield
        return
    with _blas_lock:
        if _blas_state["depth"] == 0:
            _blas_state["limiter"] = ctl.limit(limits=int(n), user_api="blas")
        _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                limiter, _blas_state["limiter"] = _blas_state["limiter"], None
                limiter.restore_original_limits()


@contextlib.contextmanager
def _numba_threads(n: int | None):
    """Run numba's parallel kernels on ``n`` threads in this thread (restored afterwards): a batch
    is parallel across files, so threads inside each file only contend for the same cores."""
    numba = sys.modules.get("numba")
    from cytophen.kernels._parallel import is_serial_only

    if not n or numba is None or is_serial_only():  # serial kernels only: no pool to size
        yield
        return
    try:
        prev = numba.get_num_threads()
        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    except ValueError:  # pragma: no cover - numba found no threading layer
        yield
        return
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def run_sample(task: SampleTask, template, options: WorkerOptions) -> SampleRecord:
    """Gate one sample; return its record and table (or its error).

    Parameters
    ----------
    task
        The sample (its id, file, ``safe_id``; its own template or pooled gates, if any).
    template
        The batch's :class:`~cytophen.template.Template`.
    options
        How every sample of the batch is gated.

    Returns
    -------
    SampleRecord
        ``status='ok'`` with the ``table`` and ``gates``, or ``'failed'`` with the ``stage`` and
        ``message``; ``blake3``, ``n_events``, ``timings`` and ``worker`` either way.
    """
    t0 = time.perf_counter()
    rec = SampleRecord(
        task.sample, task.file, task.safe_id, worker=f"{socket.gethostname()}:{os.getpid()}"
    )

    def fail(stage: str, exc: BaseException | str) -> SampleRecord:
        rec.stage = stage
        rec.message = exc if isinstance(exc, str) else _message(exc)
        rec.timings["total"] = time.perf_counter() - t0
        return rec

    _drop_stale_files(task, options)
    path = Path(task.file)
    try:
        rec.blake3 = file_blake3(path)
    except FileNotFoundError:
        return fail("read", f"{path}: file not found")
    except OSError as exc:
        return fail("read", f"{path}: cannot be read ({exc.strerror or exc})")

    try:
        sample = read_fcs(
            path,
            repairs=options.repairs,
            markers=options.markers.for_file(path) if options.markers else None,
        )
    except CytophenError as exc:
        return fail("read", exc)
    except Exception as exc:  # noqa: BLE001 - the worker boundary: any file is only this sample's
        return fail("read", f"{path}: not a readable FCS file ({_message(exc)})")
    rec.n_events = sample.n_events
    t1 = time.perf_counter()
    rec.timings["read"] = t1 - t0

    if task.template is not None:  # a file's own template (FlowJo workspaces)
        template = task.template
    _workspace_markers(sample, template)
    from cytophen.engine import gate

    pool = task.pool
    if pool is not None and pool.error is not None:
        return fail("gate", pool.error)
    fitted = pool.fitted if pool is not None else None
    try:
        with _numba_threads(options.threads), blas_threads(options.threads):
            result = gate(
                sample,
                template,
                sample_id=task.sample,
                compensation=options.compensation,
                seed=options.seed,
                fitted=fitted,
                pregated=options.pregated,
                include_hidden=options.include_hidden,
                scale=options.scale,
            )
    except Exception as exc:  # noqa: BLE001 - the worker boundary: recorded with its stage
        return fail(stage_of(exc), exc)
    t2 = time.perf_counter()
    rec.timings["gate"] = t2 - t1

    if options.export_gated:
        try:
            mask = result.membership(options.export_gated)
            _export(sample, mask, Path(options.export_dir), task.safe_id)
        except Exception as exc:  # noqa: BLE001 - the worker boundary: recorded with its stage
            return fail("export", exc)
        rec.timings["export"] = time.perf_counter() - t2

    gates = result.gates
    if fitted:
        gates = _mark_pooled(result, fitted, pool)
    if options.plots:
        _plots(result, task, options, rec)
    rec.status = "ok"
    rec.table = result.table
    rec.gates = to_jsonable(gates)
    if result.scale is not None:
        rec.scale = to_jsonable(result.scale)
    rec.timings["total"] = time.perf_counter() - t0
    return rec


def _workspace_markers(sample, template) -> None:
    """Markers a FlowJo workspace names for channels whose ``$PnS`` the file lacks."""
    names = (getattr(template, "meta", None) or {}).get("markers")
    if names and not all(m.strip() for m in sample.markers):
        sample.markers = [
            m if m.strip() else names.get(c, "") for c, m in zip(sample.channels, sample.markers)
        ]


def _drop_stale_files(task: SampleTask, options: WorkerOptions) -> None:
    """Remove this sample's plots / exported events from an earlier gating when this one makes
    none: a sample's files always belong to its latest gating (what ``--resume`` relies on)."""
    import shutil

    if options.plots_dir and not options.plots:
        shutil.rmtree(Path(options.plots_dir) / task.safe_id, ignore_errors=True)
    if options.export_dir and not options.export_gated:
        with contextlib.suppress(OSError):
            (Path(options.export_dir) / f"{task.safe_id}.fcs").unlink()


def _mark_pooled(result, fitted: dict, pool: PooledFit) -> dict:
    """gates.json entries of pooled gates say so: ``pooled: true`` and the pool column/group."""
    gates = dict(result.gates)
    for pop in result.template.populations:
        entry = gates.get(pop.name)
        if entry is not None and result.template.gate_key(pop.name) in fitted:
            gates[pop.name] = {
                **entry,
                "pooled": True,
                "pool": {"column": pool.column, "group": pool.group},
            }
    return gates


def _plots(result, task: SampleTask, options: WorkerOptions, rec: SampleRecord) -> None:
    """Gating plots of one sample (``OUT/plots/<safe_id>/``); a failure is recorded in the
    record's ``plots_error`` (a flag), never a sample error."""
    t = time.perf_counter()
    try:
        import shutil

        from cytophen.report.plots import save_sample_plots

        # an earlier run's plots of this sample go first: a published generation holds links to
        # those files, and new files (not rewritten ones) leave it as it was
        shutil.rmtree(Path(options.plots_dir) / task.safe_id, ignore_errors=True)
        with _plot_lock:  # matplotlib is not thread-safe: one sample's plots at a time per process
            save_sample_plots(
                result,
                Path(options.plots_dir),
                folder=task.safe_id,
                compensation=options.compensation,
            )
    except Exception as exc:  # noqa: BLE001 - plots are a convenience, the counts are done
        rec.plots_error = _message(exc)
    rec.timings["plots"] = time.perf_counter() - t


def _export(sample, mask, folder: Path, safe_id: str) -> None:
    """Write the events of one population as ``<folder>/<safe_id>.fcs`` in linear units (log
    amplification decoded, gain divided), float32; write_fcs writes atomically."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    idx = np.flatnonzero(mask)
    factors = sample.scale_factors()
    events = np.column_stack(
        [sample.linear_column(i, factors)[idx] for i in range(len(sample.channels))]
    ).astype(np.float32)
    keywords = {k: v for k, v in sample.keywords.items() if not k.startswith("$")}
    write_fcs(
        folder / f"{safe_id}.fcs",
        events,
        list(sample.channels),
        markers=list(sample.markers),
        keywords=keywords,
        spillover=sample.spillover,
    )
