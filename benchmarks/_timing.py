"""Timing helper shared by the benchmark scripts (they run with benchmarks/ on sys.path)."""

from __future__ import annotations

import statistics
import time


def timed(f, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``f``, in seconds."""
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
