"""Imported by the batch pool's fork server (and nothing else): load numba's target registries and
the serial gate/transform kernels from the on-disk cache once, so that every worker forked from
the server starts warm instead of paying that load (about 0.4 s CPU) itself.

Only serial kernels run here (inputs below ``PARALLEL_MIN``), so no numba thread pool exists in
the fork server when it forks. Any problem is ignored: workers then simply load what they need.
"""

from __future__ import annotations


def warm() -> None:
    """Run each common kernel once on a small synthetic input."""
    import numpy as np

    from cytophen.pipeline._fast_start import preload_cython_blas, tune_malloc

    tune_malloc()  # inherited by the workers forked from this server
    preload_cython_blas()
    from cytophen.kernels import gating as k
    from cytophen.transforms import LogicleTransform

    n = 20_000  # large enough for the polygon's raster path, below PARALLEL_MIN
    rng = np.random.default_rng(0)
    v = rng.random((n, 2))
    k.points_in_rectangle(v, np.zeros(2), np.ones(2), np.zeros(2, dtype=np.bool_))
    vx = np.array([0.1, 0.9, 0.5])
    vy = np.array([0.1, 0.1, 0.9])
    k.points_in_polygon(v[:, 0].copy(), v[:, 1].copy(), vx, vy)
    k.points_in_ellipsoid(v, np.full(2, 0.5), np.eye(2), 0.1)
    LogicleTransform().apply(v[:, 0])


try:
    warm()
except Exception:  # pragma: no cover - never let warming up break a batch
    pass
