"""One sample's gates in FlowJo's terms: parameter names, one transform per parameter, and each
fixed gate in data units (ellipses as polygons that hold exactly the sample's events)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cytophen.compensation import GIVEN_MATRIX
from cytophen.gates import EllipsoidGate, PolygonGate, RatioDim, RectangleGate
from cytophen.interop.flowjo._convert import flowjo_name
from cytophen.interop.flowjo._elements import COMP_PREFIX
from cytophen.transforms import (
    AsinhTransform,
    FlowJoBiexTransform,
    FlowJoLogTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
)


# ------------------------------------------------------------------------------------------------
# transforms: cytophen → FlowJo elements
# ------------------------------------------------------------------------------------------------
def _linear_like(t) -> bool:
    return t is None or isinstance(t, LinearTransform)


def _same_shape(a, b) -> bool:
    """Whether gates drawn on scale ``a`` keep their shape on scale ``b`` (straight edges stay
    straight): the same transform, or two affine ones."""
    return (_linear_like(a) and _linear_like(b)) or a == b


def fj_transform(t, top: float) -> tuple[str, dict[str, float]] | None:
    """(FlowJo element, attributes) for a transform; ``None`` when FlowJo has no equal one."""
    if t is None:
        return "linear", {"minRange": 0.0, "maxRange": top, "gain": 1.0}
    if isinstance(t, LinearTransform):
        return "linear", {"minRange": t.A, "maxRange": t.T, "gain": 1.0}
    if isinstance(t, LogicleTransform):
        return "logicle", {"length": 256.0, "T": t.T, "W": t.W, "M": t.M, "A": t.A}
    if isinstance(t, AsinhTransform):
        return "fasinh", {"length": 256.0, "maxRange": t.T, "T": t.T, "M": t.M, "A": t.A, "W": 0.0}
    if isinstance(t, FlowJoBiexTransform):
        return "biex", {
            "length": 256.0,
            "maxRange": t.max_value,
            "neg": t.negative,
            "width": t.width,
            "pos": t.positive,
        }
    if isinstance(t, FlowJoLogTransform):
        return "log", {"offset": t.offset, "decades": t.decades}
    if isinstance(t, LogTransform):  # flog(x) = log10(x / (T 10^-M)) / M above that offset
        return "log", {"offset": t.T * 10.0 ** (-t.M), "decades": t.M}
    return None


def stand_in(t, top: float) -> tuple[str, dict[str, float]]:
    """A FlowJo transform to display a parameter that only rectangles use (any increasing scale
    gives a rectangle the same events; bounds are written in data units)."""
    spec = fj_transform(t, top)
    if spec is not None:
        return spec
    if isinstance(t, HyperlogTransform):
        return "logicle", {"length": 256.0, "T": t.T, "W": t.W, "M": t.M, "A": t.A}
    return "linear", {"minRange": 0.0, "maxRange": top, "gain": 1.0}


# ------------------------------------------------------------------------------------------------
# the writer
# ------------------------------------------------------------------------------------------------
class Refused(Exception):
    """A population FlowJo cannot express (message: why)."""


class SampleWriter:
    """One sample: channels, compensation, transforms and gates in FlowJo's terms."""

    def __init__(self, e: Any, notes: list[str]):
        from cytophen.engine import GateContext

        self.e = e
        self.notes = notes
        self.ctx = GateContext(e.sample, e.template, e.compensation)
        self.matrix: pd.DataFrame | None = None
        self.matrix_name: str | None = None
        self.transforms: dict[str, tuple[Any, bool]] = {}  # FJ param -> (transform, shape-bearing)
        self.top: dict[str, float] = {}

    # -- names ------------------------------------------------------------------------------
    def param(self, d) -> tuple[str, str, bool]:
        """(FlowJo parameter name, FCS channel, compensated) of a dimension on this sample."""
        if isinstance(d, RatioDim):
            raise Refused(f"ratio dimension {d.label} (FlowJo has no ratio parameters in gates)")
        ctx = self.ctx
        i = ctx.index(d.channel)
        channel = self.e.sample.channels[i]
        ref = ctx.comp_ref(d.compensation)
        s = ctx.matrix(ref)
        compensated = s is not None and channel in {str(x) for x in s.index}
        if compensated:
            if list(map(str, s.index)) != list(map(str, s.columns)):
                raise Refused(f"compensation {ref!r} is a spectrum (unmixing) matrix")
            if self.matrix is None:
                self.matrix = s
                self.matrix_name = ref if ref in self.e.template.matrices else "Acquisition-defined"
                if ref == GIVEN_MATRIX:
                    self.matrix_name = "cytophen"
            elif not (
                self.matrix.shape == s.shape
                and np.array_equal(self.matrix.to_numpy(), s.to_numpy())
            ):
                raise Refused("a second compensation matrix on one sample (FlowJo keeps one)")
        fj = flowjo_name(channel)
        name = COMP_PREFIX + fj if compensated else fj
        pnr = self.e.sample.keywords.get(f"$P{i + 1}R")
        try:
            top = float(pnr) if pnr else 262144.0
        except ValueError:
            top = 262144.0
        self.top[name] = self.top[fj] = top
        return name, channel, compensated

    def use(self, param: tuple[str, str, bool], t, shaped: bool) -> None:
        """Record that a gate needs ``param`` on transform ``t`` (``shaped``: polygons). FlowJo
        gives a compensated parameter's transform to its detector too (FlowKit reads it there)."""
        name, channel, compensated = param
        if compensated:
            self._use(flowjo_name(channel), t, shaped)
        self._use(name, t, shaped)

    def _use(self, name: str, t, shaped: bool) -> None:
        have = self.transforms.get(name)
        if shaped and fj_transform(t, 1.0) is None:
            raise Refused(f"transform {getattr(t, 'kind', t)!r} on {name} has no FlowJo equivalent")
        if have is None:
            self.transforms[name] = (t, shaped)
            return
        t0, shaped0 = have
        if shaped and shaped0 and not _same_shape(t0, t):
            raise Refused(
                f"{name} is already drawn on another transform ({getattr(t0, 'kind', t0)}); "
                "FlowJo keeps one per parameter"
            )
        if shaped and not shaped0:
            self.transforms[name] = (t, True)

    # -- gates ------------------------------------------------------------------------------
    def shape(self, g, members: np.ndarray | None):
        """(kind, dims [(param, transform)], data) of a fixed gate in data units."""
        dims = getattr(g, "dims", ())
        if len(dims) > 2:
            raise Refused(
                f"a {len(dims)}-D {g.kind} gate on {', '.join(d.label for d in dims)} (FlowJo "
                "gates are drawn on one or two axes)"
            )
        params = [self.param(d) for d in dims]
        if isinstance(g, RectangleGate):
            for p, d in zip(params, dims):
                self.use(p, d.transform, False)
            lo = [None if v is None else _inverse(d.transform, v) for d, v in zip(dims, g.mins)]
            hi = [None if v is None else _inverse(d.transform, v) for d, v in zip(dims, g.maxs)]
            return "rectangle", [p[0] for p in params], (lo, hi)
        if isinstance(g, EllipsoidGate) and len(dims) == 1:
            r = math.sqrt(g.distance_square * float(g.covariance[0, 0]))
            m = float(g.mean[0])
            self.use(params[0], dims[0].transform, False)
            t = dims[0].transform
            return "rectangle", [params[0][0]], ([_inverse(t, m - r)], [_inverse(t, m + r)])
        if isinstance(g, (PolygonGate, EllipsoidGate)):
            if len(dims) != 2:
                raise Refused(f"a {len(dims)}-D {g.kind} gate")
            for p, d in zip(params, dims):
                self.use(p, d.transform, True)
            verts = g.vertices if isinstance(g, PolygonGate) else self.outline(g, members)
            raw = np.column_stack([_inverse(d.transform, verts[:, j]) for j, d in enumerate(dims)])
            if not np.all(np.isfinite(raw)):
                raise Refused(f"a vertex of the {g.kind} lies outside its transform's range")
            return "polygon", [p[0] for p in params], raw
        raise Refused(f"gate type {type(g).__name__}")

    def outline(self, g: EllipsoidGate, members: np.ndarray | None) -> np.ndarray:
        """A polygon holding exactly the events of the parent (``members``, ``None`` = all) that
        the ellipse holds: the ellipse's circumscribed polygon (tangents at angles that are dense
        where the ellipse crosses the data), cut to a box around every event of the sample (a
        half-space placed as a vast ellipse becomes a polygon the size of the data)."""
        cols = [
            _forward(d.transform, self.ctx.raw_value(d.channel, d.compensation)) for d in g.dims
        ]
        every = np.column_stack(cols)
        vals = every if members is None else every[members]
        want = g.contains(vals)
        box = _box(every)
        w, v = np.linalg.eigh(g.covariance * g.distance_square)
        a = v * np.sqrt(np.maximum(w, 0.0))  # boundary: mean + a @ (cos t, sin t)
        base = 2.0 * np.pi * np.arange(1024) / 1024
        start, width = _angles_of_box(g.mean, a, box)  # where the boundary can cross the data
        k = 256
        while True:
            dense = start + width * np.arange(k + 1) / k
            theta = np.unique(np.mod(np.concatenate([base, dense]), 2 * np.pi))
            verts = _clip_to_box(_circumscribed(g.mean, a, theta), box)
            if len(verts) >= 3:
                got = PolygonGate(g.dims, verts).contains(vals)
                if np.array_equal(got, want):
                    return verts
            if k >= 1 << 16:
                break
            k *= 4
        if len(verts) < 3:  # the ellipse misses every event: its outline alone says so
            return _circumscribed(g.mean, a, base)
        self.notes.append(
            f"sample {self.e.name!r}: an ellipse's outline holds {int((got != want).sum())} "
            "event(s) the ellipse does not"
        )
        return verts


def _box(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box around every finite event (a little wider than they spread)."""
    ok = np.all(np.isfinite(values), axis=1)
    v = values[ok] if ok.any() else np.zeros((1, values.shape[1]))
    lo, hi = v.min(axis=0), v.max(axis=0)
    pad = 0.05 * (hi - lo) + 1e-6 * np.maximum(
        1.0, np.abs(np.concatenate([lo, hi])).reshape(2, -1).max(0)
    )
    return lo - pad, hi + pad


def _angles_of_box(mean: np.ndarray, a: np.ndarray, box) -> tuple[float, float]:
    """(start, width) of the angles (in the ellipse's own circle coordinates) under which the
    box is seen from the ellipse's centre: all of them when the centre is inside the box."""
    lo, hi = box
    if np.all(mean >= lo) and np.all(mean <= hi):
        return 0.0, 2.0 * np.pi
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
    u = np.linalg.solve(a, (corners - mean).T).T
    ang = np.sort(np.mod(np.arctan2(u[:, 1], u[:, 0]), 2 * np.pi))
    gaps = np.diff(np.concatenate([ang, [ang[0] + 2 * np.pi]]))
    j = int(np.argmax(gaps))  # the box lies in the complement of the largest gap
    start = ang[(j + 1) % 4]
    return float(start), float(2 * np.pi - gaps[j])


def _circumscribed(mean: np.ndarray, a: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Vertices of the polygon of the ellipse's tangents at the sorted angles ``theta``
    (consecutive tangents meet at the mid angle, 1 / cos(half the step) out)."""
    nxt = np.roll(theta, -1)
    gap = np.mod(nxt - theta, 2 * np.pi)
    mid = theta + gap / 2
    u = np.column_stack([np.cos(mid), np.sin(mid)]) / np.cos(gap / 2)[:, None]
    return mean + u @ a.T


def _clip_to_box(poly: np.ndarray, box) -> np.ndarray:
    """Sutherland-Hodgman: the convex polygon ``poly`` cut to the box (one side at a time)."""
    lo, hi = box
    for axis, bound, keep_below in (
        (0, hi[0], True),
        (0, lo[0], False),
        (1, hi[1], True),
        (1, lo[1], False),
    ):
        if len(poly) == 0:
            break
        x = poly[:, axis]
        inside = x <= bound if keep_below else x >= bound
        if inside.all():
            continue
        nxt = np.roll(poly, -1, axis=0)
        n_in = np.roll(inside, -1)
        cross = inside != n_in
        t = (bound - x) / np.where(cross, nxt[:, axis] - x, 1.0)
        hit = poly + t[:, None] * (nxt - poly)
        hit[:, axis] = bound
        rows = []
        for i in range(len(poly)):  # per edge: its crossing, then its end point if inside
            if cross[i]:
                rows.append(hit[i])
            if n_in[i]:
                rows.append(nxt[i])
        poly = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    return poly


def _inverse(t, v):
    if t is None:
        return np.asarray(v, dtype=np.float64) if np.ndim(v) else float(v)
    if np.ndim(v):
        return np.asarray(t.inverse(np.asarray(v, dtype=np.float64)), dtype=np.float64)
    return float(np.asarray(t.inverse(np.array([float(v)])), dtype=np.float64)[0])


def _forward(t, v: np.ndarray) -> np.ndarray:
    if t is None:
        return np.asarray(v, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(t.apply(v), dtype=np.float64)
