"""Where samples are gated: in this process, in a local process pool, or on a Dask cluster.

Each runner is a context manager (connect / start on enter, shut down on exit) whose
:meth:`~Runner.run` yields ``(task, record)`` pairs (:class:`~cytophen.pipeline.records.SampleTask`,
:class:`~cytophen.pipeline.records.SampleRecord`) as samples finish, in completion order. A worker
that dies (killed, out of memory, crashed) becomes a ``stage='worker'`` error for the samples it
took down; everything else carries on.

Worker processes come from a fork server (:mod:`cytophen._mp`), or, when the caller says so with
``start_method='fork'`` (the ``cytophen gate`` command: a process cytophen owns from start to
end), are forked straight from the batch process.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from cytophen.errors import InputError
from cytophen.pipeline.records import SampleRecord, SampleTask, WorkerOptions
from cytophen.pipeline.worker import run_sample

__all__ = [
    "Runner",
    "InlineRunner",
    "PoolRunner",
    "TimedRunner",
    "DaskRunner",
    "make_runner",
    "default_jobs",
    "START_METHODS",
    "check_dask_installed",
    "check_reachable",
]

#: What ``start_method`` may say: ``'forkserver'`` (the default: worker processes come from a fork
#: server, never from the caller's process) or ``'fork'`` (forked straight from this process when
#: that is safe: only for a process cytophen owns from start to end, such as ``cytophen gate``).
START_METHODS = ("forkserver", "fork")
#: In a worker forked from the batch process: the template and options it gates with (set by
#: :func:`_forked_worker_init` from the pool's arguments, which fork hands over without pickling).
_FORKED: dict[str, Any] = {}


def _can_fork_now() -> bool:
    """Whether workers can be forked from this process now: Linux with the ``fork`` start
    method, no other thread alive (a lock held by another thread at fork time would stay held
    in the child) and no numba thread pool started yet (GNU OpenMP cannot be used after fork)."""
    if sys.platform not in ("linux",):
        return False
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods() or threading.active_count() != 1:
        return False
    from numba.np.ufunc import parallel

    return not getattr(parallel, "_is_initialized", True)  # unknown: assume the pool exists


def _forked_worker_init(parent: int, template, options: WorkerOptions) -> None:
    """First thing in a forked worker: keep the batch's template and options (inherited, never
    pickled), die with the batch process (a ``kill -9`` of ``cytophen`` must not leave its workers
    waiting for work forever) and leave Ctrl-C to it (it stops the workers itself; no traceback
    from every worker)."""
    import signal

    _FORKED.update(template=template, options=options)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not glibc: the pipe's end stops them
        pass
    if os.getppid() != parent:  # the batch process died before the line above
        os._exit(1)
    from cytophen.kernels._parallel import stay_serial

    stay_serial()  # one sample at a time per worker, on one core: no numba pool


def _run_forked(task: SampleTask) -> SampleRecord:
    """:func:`run_sample` in a worker forked from the batch process (template and options are
    the parent's, inherited)."""
    return run_sample(task, _FORKED["template"], _FORKED["options"])


def _fork_pool(workers: int, template, options: WorkerOptions):
    """A pool of ``workers`` processes forked from this one as it is now (modules imported,
    template loaded), each set up by :func:`_forked_worker_init`."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("fork"),
        initializer=_forked_worker_init,
        initargs=(os.getpid(), template, options),
    )


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def _threads_ok() -> bool:
    """Whether several threads of this process may run numba's parallel kernels at once: the tbb
    and omp threading layers allow it, numba's fallback ``workqueue`` does not (it aborts)."""
    try:
        import numba
        from numba.np.ufunc import parallel

        parallel._launch_threads()  # what the first parallel kernel would do anyway
        return numba.threading_layer() in ("tbb", "omp")
    except ValueError:  # pragma: no cover - numba found no threading layer at all
        return False


def _blas_threads_for_batch(n):
    """BLAS limited to ``n`` threads while this process gates (see worker.blas_threads)."""
    from cytophen.pipeline.worker import blas_threads

    return blas_threads(n)


def _worker_failure(task: SampleTask, exc: BaseException) -> SampleRecord:
    return SampleRecord.failed(
        task,
        "worker",
        f"the worker process gating this sample died ({type(exc).__name__}: {exc})",
    )


class Runner:
    """Base class: ``with runner: for task, rec in runner.run(tasks): ...``."""

    kind = "base"
    workers = 1
    #: whether its worker processes were forked straight from this process
    forked_workers = False

    def __init__(self, template, options: WorkerOptions):
        self.template = template
        self.options = options

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, tasks: list[SampleTask]) -> Iterator[tuple[SampleTask, SampleRecord]]:
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        return {"executor": self.kind, "workers": self.workers}


class InlineRunner(Runner):
    """Gate samples one after the other in this process (``jobs=1``: no start-up cost at all)."""

    kind = "inline"

    def run(self, tasks):
        with _blas_threads_for_batch(self.options.threads):  # set once, not per sample
            for task in tasks:
                yield task, run_sample(task, self.template, self.options)


def _ready_worker() -> int:
    """Runs once in each new pool worker: the worker is up (imports done)."""
    return os.getpid()


class PoolRunner(Runner):
    """``jobs`` threads in this process, then (for long batches) a
    :class:`concurrent.futures.ProcessPoolExecutor` of ``jobs`` workers (fork server on POSIX,
    spawn elsewhere; see :mod:`cytophen._mp`); each thread or worker reads its own file, so memory is bounded by jobs x one
    file.

    Starting worker processes costs about a second of CPU (a fresh interpreter imports numpy,
    pandas and numba, and loads the kernels), more than a small batch takes. So this process
    starts by gating samples itself, on ``jobs`` threads: the kernels, reading, hashing and
    compensation release the GIL, so threads use the cores with no start-up at all. From the time
    samples take it estimates the rest of the batch, and starts the pool only when that is long
    (``POOL_MIN_REMAINING_S``: worker processes then pay for their start-up with their own GIL and,
    should a sample crash its process, by isolating it). While the workers start it keeps gating;
    once they are all up, the remaining samples go to the pool and this process only collects
    results. A small batch is thus gated here from start to end.
    """

    kind = "processes"
    #: CPU seconds a pool costs to start (fork server + worker start-up)
    POOL_STARTUP_S = 1.5
    #: start the pool only when the rest of the batch would take longer than this on this
    #: process's threads (seconds): below, threads are as fast and start-up is all loss
    POOL_MIN_REMAINING_S = 60.0

    def __init__(self, template, options: WorkerOptions, jobs: int, *, fork: bool = False):
        super().__init__(template, options)
        self.workers = jobs
        #: fork the workers straight from this process when it is safe (``start_method='fork'``)
        self.fork = fork
        self.inline_samples = 0
        self.threads = 0  # threads this process gated on (0: none)
        self.restarts = 0
        #: gate in this process while deciding/starting (set False to use only the workers)
        self.gate_while_starting = True
        self._pool = None
        self._ctx = None
        self._starter: threading.Thread | None = None
        self._ready_futures: list = []
        self.forked_workers = False  # workers forked straight from this process

    def __enter__(self):
        return self  # multiprocessing is imported only if a pool is started (see _new_pool)

    def _context(self):
        if self._ctx is None:
            from cytophen._mp import worker_context

            self._ctx = worker_context()  # workers that never re-run the caller's script
        return self._ctx

    def _start(self) -> None:
        """Create the pool and start its workers from a background thread."""
        if self._pool is not None:
            return
        self._pool = self._new_pool(self.workers)
        self._starter = threading.Thread(
            target=self._start_workers, name="cytophen-pool-start", daemon=True
        )
        self._starter.start()

    def _start_workers(self) -> None:
        try:
            self._ready_futures = [self._pool.submit(_ready_worker) for _ in range(self.workers)]
        except RuntimeError:  # pragma: no cover - the pool broke (BrokenProcessPool) or shut down
            self._ready_futures = []

    def _ready(self) -> bool:
        if self._starter is None or self._starter.is_alive():
            return False
        return all(f.done() for f in self._ready_futures)

    def _worth_starting(self, times: list[float], n_left: int) -> bool:
        """Whether the remaining ``n_left`` samples, at the pace of ``times`` (seconds per sample
        on one of this process's ``workers`` threads; the first sample, which loads the kernels,
        left out), take long enough here to pay for starting the pool."""
        if len(times) < 2:
            return False
        per_sample = statistics.median(times[1:])
        if self.options.plots:  # plots are drawn one at a time per process (matplotlib):
            # worker processes draw them in parallel, so they pay once the time saved does
            return per_sample * n_left * (1 - 1 / self.workers) > self.POOL_STARTUP_S
        left = per_sample * n_left / self.workers
        return left > max(self.POOL_MIN_REMAINING_S, self.POOL_STARTUP_S)

    def __exit__(self, exc_type, exc, tb):
        pool, self._pool = self._pool, None
        if pool is None:
            return None
        if self._starter is not None:
            self._starter.join()
        if exc_type is not None:  # interrupted: stop now, finished samples are already stored
            # (taken before shutdown(), which forgets them)
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                with contextlib.suppress(OSError, ValueError):  # already gone, or closed
                    p.terminate()
        else:
            pool.shutdown(wait=True)
        return None

    def run(self, tasks):
        pending = list(tasks)
        forked = False
        if self.fork and _can_fork_now():
            self._warm_up()
            if _can_fork_now():
                self._pool, forked = self._fork_pool(), True
            else:  # pragma: no cover - warming up started a thread: no fork after all
                yield from self._run_here(pending)
        elif not self.gate_while_starting:
            self._start()
        else:
            yield from self._run_here(pending)
        if not pending:
            return
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        try:
            if forked:
                futures = {self._pool.submit(_run_forked, t): t for t in pending}
            else:
                futures = {
                    self._pool.submit(run_sample, t, self.template, self.options): t
                    for t in pending
                }
        except BrokenProcessPool:
            # the workers could not even start (e.g. a __main__ they cannot re-import, such as
            # `python -` from stdin): gate the rest here rather than lose the batch
            self.inline_samples += len(pending)
            for task in pending:
                yield task, run_sample(task, self.template, self.options)
            return
        broken = []
        for fut in as_completed(futures):
            task = futures.pop(fut)
            try:
                rec = fut.result()
            except BrokenProcessPool:  # a worker died: this task and every one still queued
                broken.append(task)
                continue
            except Exception as exc:  # noqa: BLE001 # pragma: no cover - whatever the worker
                # raised outside run_sample's own net (a result that cannot be pickled, ...) is
                # this sample's error, never the batch's
                rec = _worker_failure(task, exc)
            yield task, rec
        if broken:
            self.restarts += 1
            yield from self._retry(sorted(broken, key=pending.index))

    def _run_here(self, pending: list[SampleTask]):
        """Gate from the front of ``pending`` on ``workers`` threads of this process until the
        pool, once started, is ready (numba loads each kernel once, under its own lock); yield
        ``(task, record)`` as samples finish. Samples still in ``pending`` are left to the pool."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        def timed(task):
            t0 = time.perf_counter()
            rec = run_sample(task, self.template, self.options)
            return rec, time.perf_counter() - t0

        times: list[float] = []
        n_threads = max(1, self.workers) if _threads_ok() else 1
        self.threads = n_threads
        running: dict[Any, tuple[int, SampleTask]] = {}
        seq = 0
        ex = ThreadPoolExecutor(n_threads, thread_name_prefix="cytophen-gate")
        try:
            with _blas_threads_for_batch(self.options.threads):
                while pending or running:
                    while pending and len(running) < n_threads and not self._ready():
                        task = pending.pop(0)
                        running[ex.submit(timed, task)] = (seq, task)
                        seq += 1
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in sorted(done, key=lambda f: running[f][0]):
                        task = running.pop(fut)[1]
                        rec, dt = fut.result()
                        times.append(dt)
                        self.inline_samples += 1
                        yield task, rec
                    if self._pool is None and self._worth_starting(times, len(pending)):
                        self._start()
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

    def _warm_up(self) -> None:
        """Load the common kernels here, on synthetic data, before forking the workers: they
        inherit them loaded instead of each loading them. No sample is gated in this process
        (a sample that crashes its process must cost only itself), serial kernels only and
        numba's thread count left alone, so that no thread pool exists at fork time."""
        from cytophen.kernels._parallel import serial_only

        try:
            with serial_only():
                import cytophen.pipeline._warm  # noqa: F401 - its import runs the warm-up once
            from cytophen.gates import DataDrivenGate
            from cytophen.pipeline.worker import blas_controller

            blas_controller()  # threadpoolctl's scan of the loaded libraries, done once here

            if any(isinstance(p.gate, DataDrivenGate) for p in self.template.populations):
                import cytophen.datadriven  # noqa: F401 - the estimators, scikit-learn, scipy
        except Exception:  # noqa: BLE001 - warming up is an optimisation, never a failure
            pass

    def _fork_pool(self):
        """A pool whose ``workers`` processes are forked from this one as it is now (modules
        imported, template loaded): no interpreter start-up, no pickled template per sample.
        Forked processes share no Python lock with this one, so every sample really runs in
        parallel (threads of one process share the GIL), and a sample that crashes its process
        costs only itself (the pool is rebuilt, see :meth:`_retry`)."""
        self.forked_workers = True
        return _fork_pool(self.workers, self.template, self.options)

    def _new_pool(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=workers, mp_context=self._context())

    def _retry(self, tasks):
        """After a worker died: run the affected samples again in a fresh pool, at most one per
        worker in flight; when the pool breaks again, the samples that were in flight are retried
        one at a time, so only the sample that kills its worker is reported (stage 'worker')."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        todo = list(tasks)
        suspects = []
        while todo:
            pool = self._new_pool(self.workers)
            running = {}
            try:
                while todo or running:
                    while todo and len(running) < self.workers:
                        t = todo.pop(0)
                        running[pool.submit(run_sample, t, self.template, self.options)] = t
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    failed = False
                    for fut in done:
                        task = running.pop(fut)
                        try:
                            rec = fut.result()
                        except BrokenProcessPool:
                            suspects.append(task)
                            failed = True
                            continue
                        yield task, rec
                    if failed:
                        suspects.extend(running.values())
                        running = {}
                        break
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        for task in suspects:  # one at a time: a crash now can only be this sample's
            pool = self._new_pool(1)
            try:
                rec = pool.submit(run_sample, task, self.template, self.options).result()
            except BrokenProcessPool as exc:
                rec = _worker_failure(task, exc)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            yield task, rec

    def describe(self):
        return {
            "executor": self.kind,
            "workers": self.workers,
            "samples_gated_in_main_process": self.inline_samples,
            "threads_in_main_process": self.threads,
            "workers_forked_from_main_process": self.forked_workers,
            "pool_restarts_after_worker_death": self.restarts,
        }


def _timeout_failure(task: SampleTask, limit: float) -> SampleRecord:
    return SampleRecord.failed(
        task,
        "timeout",
        f"stopped after the time limit of {limit:g} s per sample (reading, gating and plots)",
    )


class TimedRunner(PoolRunner):
    """Every sample in a worker process (forked from this one where possible, see
    :class:`PoolRunner`), stopped once it has run ``time_limit`` seconds: the sample becomes a
    ``stage='timeout'`` error, its worker is killed, and the samples the other workers were gating
    are gated again in fresh ones. (A thread cannot be stopped inside a compiled kernel; a process
    can.) Deadlines count from when a worker takes the sample, workers being started first."""

    def __init__(
        self, template, options: WorkerOptions, jobs: int, time_limit: float, *, fork: bool = False
    ):
        super().__init__(template, options, jobs, fork=fork)
        self.time_limit = float(time_limit)
        self.timed_out = 0

    def run(self, tasks):
        todo = list(tasks)
        suspects: list[SampleTask] = []
        while todo:
            yield from self._round(todo, self.workers, suspects)
        for task in suspects:  # after a crash: one at a time, so that a crash is this sample's
            yield from self._round([task], 1, None)

    def _round(self, todo, workers: int, suspects):
        """Gate samples from the front of ``todo`` on a fresh pool of ``workers`` until ``todo``
        is empty or the pool has to go (a sample timed out, a worker died)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pool, submit = self._timed_pool(workers)
        running: dict[Any, tuple[SampleTask, float]] = {}
        clean = False
        try:
            wait([pool.submit(_ready_worker) for _ in range(workers)])  # started, then timed
            while todo or running:
                while todo and len(running) < workers:
                    task = todo.pop(0)
                    running[submit(pool, task)] = (task, time.monotonic() + self.time_limit)
                first = min(deadline for _, deadline in running.values())
                done, _ = wait(
                    running, timeout=max(0.0, first - time.monotonic()), return_when=FIRST_COMPLETED
                )
                crashed = []
                for fut in done:
                    task, _ = running.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool as exc:
                        crashed.append((task, exc))
                        continue
                    yield task, rec
                if crashed:
                    if suspects is None:  # the only sample in flight: it crashed its worker
                        for task, exc in crashed:
                            yield task, _worker_failure(task, exc)
                    else:
                        self.restarts += 1
                        suspects.extend(t for t, _ in crashed)
                        suspects.extend(t for t, _ in running.values())
                    return
                now = time.monotonic()
                late = [f for f, (_, deadline) in running.items() if deadline <= now]
                if late:
                    for fut in late:
                        task, _ = running.pop(fut)
                        self.timed_out += 1
                        yield task, _timeout_failure(task, self.time_limit)
                    todo[:0] = [t for t, _ in running.values()]  # again, in a fresh pool
                    return
            clean = True
        finally:
            if not clean:  # a sample still running: its worker must not go on
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    with contextlib.suppress(OSError, ValueError):  # already gone, or closed
                        proc.kill()
            pool.shutdown(wait=True, cancel_futures=True)

    def _timed_pool(self, workers: int):
        if self.fork and _can_fork_now():
            self._warm_up()
        if self.fork and _can_fork_now():
            self.forked_workers = True
            pool = _fork_pool(workers, self.template, self.options)
            return pool, lambda p, t: p.submit(_run_forked, t)
        pool = self._new_pool(workers)
        return pool, lambda p, t: p.submit(run_sample, t, self.template, self.options)

    def describe(self):
        return {
            **super().describe(),
            "time_limit_s": self.time_limit,
            "samples_timed_out": self.timed_out,
        }


class DaskRunner(Runner):
    """Run on dask.distributed: ``'local'`` starts a LocalCluster of ``jobs`` single-threaded worker
    processes (from a process of its own, so that its workers never re-run the caller's script);
    an address (``tcp://host:8786``) connects to a running scheduler; a
    ``distributed.Client`` is used as given. Workers must see the input files at the same paths."""

    kind = "dask"

    def __init__(self, template, options: WorkerOptions, scheduler, jobs: int):
        super().__init__(template, options)
        self.scheduler = scheduler
        self.workers = jobs
        self._own: list[Any] = []
        self._cluster = None  # the local cluster's process
        self.client = None
        self.address = None

    def __enter__(self):
        check_dask_installed()
        from distributed import Client

        if isinstance(self.scheduler, Client):
            self.client = self.scheduler
        elif self.scheduler == "local":  # in a process of its own (see _dask_local)
            from cytophen.pipeline import _dask_local

            try:
                self._cluster, address = _dask_local.start(self.workers)
            except RuntimeError as exc:
                raise InputError(f"--scheduler local: {exc}") from None
            self.client = Client(address, timeout="20s")
            self._own.append(self.client)
        else:
            check_reachable(str(self.scheduler))
            try:
                self.client = Client(str(self.scheduler), timeout="20s")
            except (OSError, ValueError) as exc:  # timed out, refused, closed; a bad address
                raise InputError(
                    f"cannot connect to the Dask scheduler at {self.scheduler} ({exc}); expected "
                    "'local' or a running scheduler's address such as tcp://host:8786"
                ) from None
            self._own.append(self.client)
        self.address = self.client.scheduler.address
        with contextlib.suppress(OSError):  # the count only describes the run
            self.workers = len(self.client.scheduler_info().get("workers", {})) or self.workers
        return self

    def __exit__(self, *exc):
        for obj in self._own:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 # pragma: no cover - closing a client whose
                pass  # connection broke may fail in any way; the batch's outcome stands
        self._own = []
        if self._cluster is not None:
            from cytophen.pipeline import _dask_local

            _dask_local.stop(self._cluster)
            self._cluster = None
        return None

    def run(self, tasks):
        from distributed import as_completed

        tref = self.client.scatter(self.template, broadcast=True, hash=False)
        tag = uuid.uuid4().hex[:8]
        futures = {
            self.client.submit(
                run_sample, t, tref, self.options, pure=False, key=f"cytophen-{t.safe_id}-{tag}"
            ): t
            for t in tasks
        }
        try:
            for fut in as_completed(list(futures)):
                task = futures.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connection, or
                    # whatever the worker raised: this sample's error, never the batch's
                    rec = self._failure(task, exc)
                fut.release()
                yield task, rec
        finally:
            for fut in futures:
                fut.cancel()

    def _failure(self, task: SampleTask, exc: BaseException) -> SampleRecord:
        """The record of a sample Dask could not gate, saying whether its worker died or the
        connection to the scheduler was lost (then every sample still running fails so)."""
        from distributed.comm.core import CommClosedError

        text = str(exc)
        lost = (
            "scheduler-connection-lost" in text
            or isinstance(exc, (CommClosedError, ConnectionError))
            or getattr(self.client, "status", "running") != "running"
        )
        if not lost:
            return _worker_failure(task, exc)
        return SampleRecord.failed(
            task,
            "scheduler",
            f"the connection to the Dask scheduler at {self.address} was lost while this sample "
            "was queued or gated; it was not gated (rerun with --resume to gate it)",
        )

    def describe(self):
        return {"executor": self.kind, "workers": self.workers, "scheduler": self.address}


def check_dask_installed() -> None:
    """Raise :class:`InputError` when dask.distributed (the ``dask`` extra) is not installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("distributed") is not None
    except ValueError:  # pragma: no cover - a module without a spec in sys.modules
        found = "distributed" in sys.modules
    if not found:
        raise InputError(
            "a Dask scheduler needs dask.distributed, an optional part of cytophen: "
            "pip install 'cytophen[dask]'"
        )


def check_reachable(address: str) -> None:
    """Fail fast (instead of Dask's retry loop) when a tcp:// scheduler refuses connections."""
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        if "://" not in address:
            raise InputError(
                f"--scheduler {address!r}: expected 'local' or a scheduler address such as tcp://host:8786"
            )
        return
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise InputError(f"--scheduler {address!r}: expected tcp://host:port")
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise InputError(
            f"cannot connect to the Dask scheduler at {address} ({exc.strerror or exc}); is it "
            "running and reachable from here?"
        ) from None


def make_runner(
    template,
    options: WorkerOptions,
    *,
    jobs: int | None,
    scheduler,
    n_tasks: int,
    time_limit: float | None = None,
    start_method: str = "forkserver",
) -> Runner:
    """The runner for ``jobs`` / ``scheduler`` (``jobs=1`` or a single sample → in this process;
    a ``time_limit`` → always worker processes, see :class:`TimedRunner`); ``start_method`` is
    where worker processes come from (:data:`START_METHODS`)."""
    if start_method not in START_METHODS:
        raise InputError(
            f"start_method must be one of {', '.join(START_METHODS)}, got {start_method!r}"
        )
    fork = start_method == "fork"
    jobs = default_jobs() if not jobs or jobs < 1 else int(jobs)
    if scheduler is not None and scheduler != "":
        if time_limit is not None:
            raise InputError("a per-sample time limit cannot be used with a Dask scheduler")
        return DaskRunner(template, options, scheduler, jobs)
    if time_limit is not None:
        return TimedRunner(template, options, max(1, min(jobs, n_tasks)), time_limit, fork=fork)
    if jobs == 1 or n_tasks <= 1:
        return InlineRunner(template, options)
    return PoolRunner(template, options, min(jobs, n_tasks), fork=fork)
