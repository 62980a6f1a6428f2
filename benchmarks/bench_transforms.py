"""Logicle (and hyperlog) transforms: cytophen vs flowutils' C implementation, side by side.

10 M values drawn like fluorescence data (negatives around zero, log-normal positives, a few at the
top of the scale), logicle(T=262144, W=0.5, M=4.5, A=0). cytophen is timed with 1 and 2 numba
threads (flowutils' C is single-threaded); the maximum relative difference to flowutils (relative
to max(|ref|, 1e-6), since the scale crosses zero) is printed with the times.
Hyperlog and the logicle inverse are timed on the same values.

Usage: ``.venv/bin/python benchmarks/bench_transforms.py [--values N] [--repeats R]``
(default 10,000,000 values, median of 3). Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _timing import timed  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))


def values(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    neg = rng.random(n) < 0.4
    v = np.where(neg, rng.normal(0, 300, n), rng.lognormal(7.5, 1.5, n))
    v[::1000] = 262144.0
    return v


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to max(|ref|, 1e-6): the scale crosses zero, where a purely
    relative measure is meaningless."""
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numba
    from flowutils import transforms as fu

    from cytophen.transforms import HyperlogTransform, LogicleTransform

    T, W, M, A = 262144.0, 0.5, 4.5, 0.0
    v = values(args.values)
    logicle = LogicleTransform(T=T, W=W, M=M, A=A)
    hyperlog = HyperlogTransform(T=T, W=W, M=M, A=A)
    maxthreads = numba.config.NUMBA_NUM_THREADS

    cases = [
        ("logicle", lambda: fu._logicle(v, T, M, W, A), lambda: logicle.apply(v)),
        ("logicle inverse", None, None),
        ("hyperlog", lambda: fu._hyperlog(v, T, M, W, A), lambda: hyperlog.apply(v)),
    ]
    y = logicle.apply(v)  # warm-up and inputs of the inverse
    cases[1] = (
        "logicle inverse",
        lambda: fu._logicle_inverse(y, T, M, W, A),
        lambda: logicle.inverse(y),
    )

    print(
        f"transforms on {args.values:,} values, T={T:g} W={W} M={M} A={A}, median of {args.repeats}"
    )
    print(f"{'':36s} {'seconds':>9s} {'vs flowutils':>13s} {'max rel diff':>13s}")
    for name, f_fu, f_ours in cases:
        ref = f_fu()
        got = f_ours()
        diff = max_rel(got, ref)
        t_fu = timed(f_fu, args.repeats)
        print(f"{name + ', flowutils C':36s} {t_fu:9.4f}")
        for th in (1, 2):
            if th > maxthreads:
                continue
            numba.set_num_threads(th)
            t = timed(f_ours, args.repeats)
            print(
                f"{name + f', cytophen {th} thread' + ('s' if th > 1 else ''):36s} {t:9.4f} "
                f"{t_fu / t:12.1f}x {diff:13.2e}"
            )
        numba.set_num_threads(maxthreads)


if __name__ == "__main__":
    main()
