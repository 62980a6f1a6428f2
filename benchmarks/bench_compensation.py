"""Compensation of 2 M x 12 events: cytophen.compensation.compensate vs the peers, side by side.

Compared: a plain matrix product by the precomputed inverse (``X @ inv(S)``, the target),
``numpy.linalg.solve`` as flowutils.compensate / FlowKit do, and cytophen's ``compensate`` (which
inverts the matrix on every call, as the engine calls it). Results are checked to agree.
BLAS threads are limited to 1 and then 2 with threadpoolctl.

Usage: ``.venv/bin/python benchmarks/bench_compensation.py [--events N] [--repeats R]``
(default 2,000,000 events, median of 5). Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _timing import timed  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--channels", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import pandas as pd
    from flowutils.compensate import compensate as fu_compensate
    from threadpoolctl import threadpool_limits

    from cytophen.compensation import compensate

    rng = np.random.default_rng(0)
    k = args.channels
    S = np.eye(k) + rng.uniform(0, 0.2, (k, k)) * (rng.random((k, k)) < 0.4) * (1 - np.eye(k))
    names = [f"FL{i + 1}-A" for i in range(k)]
    df = pd.DataFrame(S, index=names, columns=names)
    X = rng.lognormal(6, 1.5, (args.events, k))
    inv = np.linalg.inv(S)

    ref = X @ inv
    assert np.allclose(compensate(X, df), ref, rtol=1e-10, atol=1e-8)
    assert np.allclose(fu_compensate(X, S), ref, rtol=1e-10, atol=1e-8)

    print(f"compensation of {args.events:,} x {k} float64 events, median of {args.repeats}")
    print(f"{'':44s} {'seconds':>9s} {'vs X @ inv(S)':>14s}")
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            t_mm = timed(lambda: X @ inv, args.repeats)
            rows = [
                ("X @ inv(S), inverse precomputed (target)", t_mm),
                (
                    "numpy.linalg.solve (flowutils/FlowKit)",
                    timed(lambda: fu_compensate(X, S), args.repeats),
                ),
                (
                    "cytophen compensate (inverts each call)",
                    timed(lambda: compensate(X, df), args.repeats),
                ),
            ]
        print(f"-- BLAS threads: {threads}")
        for name, t in rows:
            print(f"{name:44s} {t:9.4f} {t_mm / t:13.2f}x")


if __name__ == "__main__":
    main()
