"""Polygon gate kernel: cytophen.kernels.gating.points_in_polygon vs flowutils' C points_in_polygon.

10 M events, an 8-vertex polygon (the size of a lymphocyte/transitional gate), events from a
seeded mixture so that part of them fall inside, part near the edges and part outside the
bounding box. Both results are checked identical before timing. cytophen is timed with 1 and 2
numba threads; flowutils is single-threaded C. Also shown: the time to read the two coordinate
arrays once (a floor for any kernel).

Usage: ``.venv/bin/python benchmarks/bench_polygon.py [--events N] [--repeats R]``
(default 10,000,000 events, median of 5). Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _timing import timed  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

VERTICES = np.array(
    [
        [20000, 10000],
        [60000, 5000],
        [110000, 20000],
        [130000, 60000],
        [115000, 100000],
        [70000, 110000],
        [30000, 90000],
        [15000, 50000],
    ],
    dtype=np.float64,
)


def events(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = rng.random(n) < 0.6
    x = np.where(cells, rng.normal(70000, 25000, n), rng.uniform(0, 262144, n))
    y = np.where(cells, rng.normal(55000, 25000, n), rng.uniform(0, 262144, n))
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import numba
    from flowutils.gating import points_in_polygon as fu_pip

    from cytophen.kernels.gating import points_in_polygon

    x, y = events(args.events)
    pts = np.column_stack([x, y])  # flowutils wants (n, 2)
    vx, vy = VERTICES[:, 0].copy(), VERTICES[:, 1].copy()

    ours = points_in_polygon(x, y, vx, vy)  # warm-up (loads the cached compile)
    theirs = fu_pip(VERTICES, pts)
    assert np.array_equal(ours, theirs), "results differ"

    t_read = timed(lambda: (x.sum(), y.sum()), args.repeats)
    t_fu = timed(lambda: fu_pip(VERTICES, pts), args.repeats)
    rows = [("flowutils C points_in_polygon", t_fu)]
    maxthreads = numba.config.NUMBA_NUM_THREADS
    for th in (1, 2):
        if th > maxthreads:
            continue
        numba.set_num_threads(th)
        rows.append(
            (
                f"cytophen points_in_polygon, {th} thread{'s' if th > 1 else ''}",
                timed(lambda: points_in_polygon(x, y, vx, vy), args.repeats),
            )
        )
    numba.set_num_threads(maxthreads)

    print(
        f"points_in_polygon: {args.events:,} events, {len(VERTICES)}-vertex polygon, "
        f"{int(ours.sum()):,} inside (identical results), median of {args.repeats}"
    )
    print(f"{'':44s} {'seconds':>9s} {'vs flowutils':>13s}")
    for name, t in rows:
        print(f"{name:44s} {t:9.4f} {t_fu / t:12.1f}x")
    print(f"{'(reading x and y once: numpy sum)':44s} {t_read:9.4f}")


if __name__ == "__main__":
    main()
