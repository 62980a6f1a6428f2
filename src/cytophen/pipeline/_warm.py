"""Imported by the batch pool's fork server, and by the ``cytophen gate`` process just before it
forks its workers (and nothing else): load numba's kernels from the on-disk cache once, on
synthetic data, so that every worker forked afterwards starts warm instead of paying that load
itself.

Only serial kernels run here (inputs below ``PARALLEL_MIN``), so no numba thread pool exists
when the process forks. Any problem is ignored: workers then simply load what they need.
"""

from __future__ import annotations


def warm() -> None:
    """Run each common kernel once on a small synthetic input."""
    import numpy as np

    from cytophen.pipeline._fast_start import speed_up_start

    speed_up_start(light_kernel_loads=False)  # inherited by the workers forked from this server
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
    _gate_synthetic(rng)


def _gate_synthetic(rng) -> None:
    """One small synthetic sample through the engine: compensation at a parent's rows, row
    gathers, logicle and its inverse, rectangle bands, a polygon and an ellipse on logicle axes
    (float32 events, as FCS files store them)."""
    import numpy as np
    import pandas as pd

    from cytophen.engine import gate
    from cytophen.gates import Dim, EllipsoidGate, PolygonGate, RectangleGate
    from cytophen.io.sample import Sample
    from cytophen.template import Population, Template
    from cytophen.transforms import LogicleTransform

    n = 5_000
    ev = np.column_stack([rng.uniform(0, 1000, n), rng.lognormal(6, 1.5, (n, 3))]).astype(
        np.float32
    )
    ch = ["FSC-A", "FL1-A", "FL2-A", "FL3-A"]
    lg = LogicleTransform()
    dets = ch[1:]
    spill = pd.DataFrame(np.eye(3) + 0.05 * (1 - np.eye(3)), index=dets, columns=dets)

    def f(c):
        return Dim(c, transform=lg, compensation="m")

    pops = [
        Population(
            "a", None, PolygonGate((Dim("FSC-A"), Dim("FL1-A")), [(0, 0), (900, 0), (500, 1e5)])
        ),
        Population("b", "a", RectangleGate((f("FL1-A"), f("FL2-A")), (0.2, None), (None, 0.9))),
        Population(
            "c", "b", PolygonGate((f("FL2-A"), f("FL3-A")), [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)])
        ),
        Population(
            "d", "b", EllipsoidGate((f("FL2-A"), f("FL3-A")), [0.5, 0.5], np.eye(2) * 0.01, 1.0)
        ),
    ]
    gate(
        Sample(ev, ch, [""] * 4, {}),
        Template("warm", pops, compensation="uncompensated", matrices={"m": spill}),
    )


try:
    warm()
except Exception:  # noqa: BLE001 # pragma: no cover - warming up is an optimisation: it never
    pass  # breaks a batch (workers then load what they need)
