"""Gate regions of a plot: what each population is on a view, in data coordinates.

A :class:`Region` is one population on a view: a rectangle (open sides reach far beyond any
event), a polygon, an ellipse, one quadrant of a quadrant gate, or the outside of one of those (a
``not`` gate). :func:`make_drawn` makes it concrete for the view's limits: its path (2-D) or
interval (1-D), and a membership test. Drawing is in :mod:`cytophen.report.draw`, labels in
:mod:`cytophen.report.labels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.patches import Ellipse
from matplotlib.path import Path as MplPath

__all__ = ["Region", "regions_of", "ellipse_parameters"]

GATE_COLOUR = "black"
FALLBACK_COLOUR = "#d62728"
HIGHLIGHT_COLOUR = "#1f77b4"
#: Open sides of a rectangle reach this many view spans beyond the view (far beyond any event).
_FAR = 1e3
#: An ellipsoid whose slice through the view is larger than this many times the data's span on an
#: axis is drawn as its boundary line across the view (e.g. ``mixture_halfspace``'s ball).
_UNBOUNDED_SPAN = 50.0


@dataclass
class Region:
    """One population's region on a view.

    Parameters
    ----------
    name
        Label text (the population); ``None`` draws the region's outline unlabelled (an unnamed
        quadrant).
    shape
        One region's geometry, in transformed units: ``{"kind": "rectangle", "min", "max"}``,
        ``{"kind": "polygon", "vertices"}`` or ``{"kind": "ellipsoid", "mean", "covariance",
        "distance_square"}``.
    percent
        Percent of parent, written under the name.
    outside
        The population is the parent's events *outside* ``shape`` (a ``not`` gate).
    highlight
        Fill the region (the population asked for).
    fell_back
        Its data-driven gate fell back: dashed red.
    """

    name: str | None
    shape: dict
    percent: float | None = None
    outside: bool = False
    highlight: bool = False
    fell_back: bool = False


def regions_of(
    geometry: dict | None,
    *,
    name: str | None = None,
    percent: float | None = None,
    quadrant: str | None = None,
    quadrant_labels: dict[str, str] | None = None,
    quadrant_percents: dict[str, float] | None = None,
    fell_back: bool = False,
) -> list[Region]:
    """The regions of one gate's geometry (a quadrant gate gives one per quadrant: those
    ``quadrant_labels`` names are labelled, or all of them by their key when it is ``None``)."""
    if not geometry or geometry.get("kind") not in (
        "rectangle",
        "polygon",
        "ellipsoid",
        "quadrant",
    ):
        return []
    if geometry["kind"] != "quadrant":
        return [Region(name, geometry, percent, fell_back=fell_back)]
    out = []
    pcts = quadrant_percents or {}
    for key, q in (geometry.get("quadrants") or {}).items():
        label = key if quadrant_labels is None else quadrant_labels.get(key)
        shape = {"kind": "rectangle", "min": q["min"], "max": q["max"]}
        out.append(
            Region(
                label,
                shape,
                pcts.get(key),
                highlight=quadrant is not None and key == quadrant,
                fell_back=fell_back,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------------
def bin_index(v: np.ndarray, lim: tuple[float, float], nb: int) -> np.ndarray:
    return np.clip(((v - lim[0]) / (lim[1] - lim[0]) * nb).astype(np.int64), 0, nb - 1)


def counts_2d(x, y, xlim, ylim, nb: int) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not x.size:
        return np.zeros((nb, nb), dtype=np.int64)
    ix, iy = bin_index(x, xlim, nb), bin_index(y, ylim, nb)
    return np.bincount(iy * nb + ix, minlength=nb * nb).reshape(nb, nb)


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------
def finite(v) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None


def coords(shape: dict, axis: int) -> list[float]:
    """Finite coordinates of a shape along one axis (what may widen the view)."""
    kind = shape.get("kind")
    out: list[float] = []
    if kind == "rectangle":
        for key in ("min", "max"):
            vals = shape.get(key) or []
            if axis < len(vals) and finite(vals[axis]) is not None:
                out.append(float(vals[axis]))
    elif kind == "polygon":
        out = [float(v[axis]) for v in shape.get("vertices", [])]
    elif kind == "ellipsoid":
        mean = np.asarray(shape["mean"], dtype=float)
        cov = np.asarray(shape["covariance"], dtype=float)
        if axis < mean.size:
            r = math.sqrt(max(float(shape["distance_square"]) * cov[axis, axis], 0.0))
            out = [mean[axis] - r, mean[axis] + r]
    return [v for v in out if np.isfinite(v)]


def far_range(lims) -> tuple[float, float]:
    span = lims[1] - lims[0]
    return lims[0] - _FAR * span, lims[1] + _FAR * span


def rect_bounds(shape: dict, xlim, ylim) -> tuple[float, float, float, float]:
    mins, maxs = shape["min"], shape["max"]
    fx, fy = far_range(xlim), far_range(ylim)
    x0 = finite(mins[0]) if finite(mins[0]) is not None else fx[0]
    x1 = finite(maxs[0]) if finite(maxs[0]) is not None else fx[1]
    y0 = finite(mins[1]) if finite(mins[1]) is not None else fy[0]
    y1 = finite(maxs[1]) if finite(maxs[1]) is not None else fy[1]
    return x0, x1, y0, y1


def ellipse_parameters(
    mean, covariance, distance_square
) -> tuple[tuple[float, float], float, float, float]:
    """``(centre, width, height, angle_degrees)`` of the 2-D ellipse ``d² <= distance_square``.

    For more than two dimensions this is the shadow (projection) of the ellipsoid on the first two:
    the ellipse of the 2x2 sub-covariance with the same ``distance_square``.
    """
    mean = np.asarray(mean, dtype=float)[:2]
    cov = np.asarray(covariance, dtype=float)[:2, :2]
    w, v = np.linalg.eigh(cov)
    w = np.clip(w, 0.0, None)
    r2 = float(distance_square)
    width = 2.0 * math.sqrt(r2 * w[1])
    height = 2.0 * math.sqrt(r2 * w[0])
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))
    return (float(mean[0]), float(mean[1])), width, height, angle


def ellipsoid_slice(shape: dict, values: np.ndarray):
    """The 2-D slice of an ellipsoid through the first two axes, at the events' median of the
    other dimensions: ``(centre, precision, r2)`` with ``(a - centre)' precision (a - centre) <=
    r2`` inside, or ``None`` when the slice is empty."""
    mean = np.asarray(shape["mean"], dtype=float)
    cov = np.asarray(shape["covariance"], dtype=float)
    r2 = float(shape["distance_square"])
    prec = np.linalg.inv(cov)
    if mean.size == 2:
        return mean, prec, r2
    rest = values[:, 2:]
    b = np.array([np.nanmedian(rest[:, j]) if np.isfinite(rest[:, j]).any() else mean[2 + j]
                  for j in range(rest.shape[1])])  # fmt: skip
    db = b - mean[2:]
    paa, pab = prec[:2, :2], prec[:2, 2:]
    centre = mean[:2] - np.linalg.solve(paa, pab @ db)
    r2_slice = r2 - float(db @ np.linalg.solve(cov[2:, 2:], db))
    return (centre, paa, r2_slice) if r2_slice > 0 else None


def unbounded_in_view(slice_, xlim, ylim) -> bool:
    """Whether the slice's ellipse is far larger than the view (its boundary is a line there)."""
    if slice_ is None:
        return False
    _, prec, r2 = slice_
    w = np.linalg.eigvalsh(prec)
    if w.min() <= 0:
        return True
    semi = math.sqrt(r2 / w.min())
    span = max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    return semi > _UNBOUNDED_SPAN * span


@dataclass
class Drawn:
    """A region made concrete on one view: its path in data coordinates (2-D) or its interval
    (1-D), and a membership test for label placement."""

    region: Region
    path: MplPath | None = None
    interval: tuple[float, float] | None = None
    slice_: Any = None  # an unbounded ellipsoid's slice: membership by its quadratic form

    def inside(self, pts: np.ndarray) -> np.ndarray:
        if self.interval is not None:
            a, b = self.interval
            m = (pts[:, 0] >= a) & (pts[:, 0] < b)
        elif self.slice_ is not None:
            c, prec, r2 = self.slice_
            d = pts - c
            m = np.einsum("ij,jk,ik->i", d, prec, d) <= r2
        elif self.path is not None:
            m = self.path.contains_points(pts)
        else:
            m = np.zeros(len(pts), dtype=bool)
        return ~m if self.region.outside else m


def make_drawn(region: Region, naxes: int, xlim, ylim, values) -> Drawn:
    shape = region.shape
    kind = shape.get("kind")
    if naxes == 1:
        if kind != "rectangle":
            raise ValueError(f"a {kind} gate cannot be drawn on a histogram")
        fx = far_range(xlim)
        lo, hi = finite(shape["min"][0]), finite(shape["max"][0])
        return Drawn(region, interval=(fx[0] if lo is None else lo, fx[1] if hi is None else hi))
    if kind == "rectangle":
        x0, x1, y0, y1 = rect_bounds(shape, xlim, ylim)
        path = MplPath([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], closed=True)
        return Drawn(region, path=path)
    if kind == "polygon":
        verts = np.asarray(shape["vertices"], dtype=float)
        return Drawn(region, path=MplPath(np.vstack([verts, verts[:1]]), closed=True))
    if kind == "ellipsoid":
        slice_ = ellipsoid_slice(shape, values)
        if len(shape["mean"]) > 2 or unbounded_in_view(slice_, xlim, ylim):
            if slice_ is None:
                return Drawn(region)
            if unbounded_in_view(slice_, xlim, ylim):
                return Drawn(region, slice_=slice_)
        centre, w, h, ang = ellipse_parameters(
            shape["mean"], shape["covariance"], shape["distance_square"]
        )
        e = Ellipse(centre, w, h, angle=ang)
        return Drawn(region, path=e.get_patch_transform().transform_path(e.get_path()))
    raise ValueError(f"cannot draw a gate of kind {kind!r}")


def visible_pieces(d: Drawn, xlim) -> list[tuple[float, float]]:
    """The parts of a 1-D region inside the view."""
    a, b = d.interval
    lo, hi = xlim
    pieces = (
        [(lo, min(a, hi)), (max(b, lo), hi)] if d.region.outside else [(max(a, lo), min(b, hi))]
    )
    return [(p, q) for p, q in pieces if q > p]
