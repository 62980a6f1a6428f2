"""How the parallel kernels are launched (shared by the gating and transform kernels)."""

from __future__ import annotations

import os

# Idle OpenMP workers sleep instead of spinning (unless the user chose a policy). With GNU
# OpenMP's default spin-wait, a worker keeps its core busy for a while after each parallel
# kernel; on a 2-core machine that core is the one the next serial step (numpy, the next
# population's gather) needs, and a parallel kernel launched while the machine is busy waited
# ~6 ms on average for a spinning-then-descheduled worker (measured: 12 us when passive). Read
# by libgomp when numba first starts its thread pool, so it must be set before that.
if not any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import time  # noqa: E402

import numba as nb  # noqa: E402

try:
    _NCPU = len(os.sched_getaffinity(0))
except (AttributeError, OSError):  # pragma: no cover - not Linux
    _NCPU = os.cpu_count() or 1
_LOAD = {"checked": -1e9, "busy": False}


def machine_busy() -> bool:
    """Whether more tasks are runnable than there are cores (1-minute load average above the
    core count + 0.5, checked at most once a second; set ``CYTOPHEN_PARALLEL=always`` to ignore).

    A parallel kernel cannot gain when every core is taken (a worker waits for a time slice, and
    on 2 cores the whole kernel waits for it); kernels then run on the calling thread. The
    results are the same either way (same per-event code).
    """
    if os.environ.get("CYTOPHEN_PARALLEL", "auto").lower() == "always":
        return False
    now = time.monotonic()
    if now - _LOAD["checked"] > 1.0:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover
            load = 0.0
        _LOAD["checked"] = now
        _LOAD["busy"] = load > _NCPU + 0.5
    return bool(_LOAD["busy"])


#: Set while a process must not start numba's thread pool (see :func:`serial_only`).
_SERIAL_ONLY = {"on": False}


def parallel_ok(n: int, minimum: int) -> bool:
    """Whether a kernel over ``n`` events should run its parallel version: at least ``minimum``
    events, more than one numba thread, and cores to spare (:func:`machine_busy`)."""
    if _SERIAL_ONLY["on"]:
        return False
    return n >= minimum and nb.get_num_threads() > 1 and not machine_busy()


class serial_only:
    """Within this block every kernel runs its serial version and numba's thread pool is not
    started (not even asked for its size): a process about to fork must not have it."""

    def __enter__(self):
        self._prev = _SERIAL_ONLY["on"]
        _SERIAL_ONLY["on"] = True
        return self

    def __exit__(self, *exc):
        _SERIAL_ONLY["on"] = self._prev
        return False


def is_serial_only() -> bool:
    """Whether kernels run their serial versions only (see :class:`serial_only`,
    :func:`stay_serial`)."""
    return _SERIAL_ONLY["on"]


def stay_serial() -> None:
    """Run only serial kernels for the rest of this process (a batch worker process: one sample
    at a time on one core, no numba thread pool)."""
    _SERIAL_ONLY["on"] = True


def run_dynamic(kernel, *args) -> None:
    """Run a parallel kernel with its chunks handed out dynamically (one at a time), so a busy
    core delays only the chunks it is working on. (Set from Python: inside a kernel it would
    prevent on-disk caching.)"""
    old = nb.get_parallel_chunksize()
    nb.set_parallel_chunksize(1)
    try:
        kernel(*args)
    finally:
        nb.set_parallel_chunksize(old)
