"""Drawing gates on their parent's events, as a flow cytometrist expects to see them.

- 2-D views: the parent's events as a pseudocolour density (a 2-D histogram with a modest number of
  bins, coloured on a log scale, empty bins white, as FlowJo shows them); 1-D views: a histogram.
- Each population is a *region* of the view: a rectangle (open sides are not drawn), a polygon, an
  ellipse, one quadrant of a quadrant gate, or the outside of another region (``not`` gates).
  Several regions share one view (quadrants, sibling gates on the same axes, FlowJo's layout).
- Every region is also drawn as an invisible patch with ``gid`` ``region:<population>`` (or
  ``region-outside:<population>`` for the outside of a shape) whose path is the region in data
  coordinates: the population is the parent's events inside it.
- Labels (name and percent) are placed inside their region, where the events are sparsest, and
  never on top of one another.
- The view follows the data (:func:`~cytophen.report.ticks.view_limits`); gate outlines are clipped
  to it. Ticks are in data units (decades on logicle / log axes), chosen at draw time so their
  labels never overlap.
- A gate whose data-driven method fell back is dashed red, with a "fell back" badge.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.transforms import blended_transform_factory

from cytophen.report.ticks import set_data_ticks, view_limits

__all__ = ["Region", "plot_gate", "draw_regions", "ellipse_parameters", "regions_of"]

GATE_COLOUR = "black"
FALLBACK_COLOUR = "#d62728"
HIGHLIGHT_COLOUR = "#1f77b4"
_CMAP = colormaps["jet"].with_extremes(bad="white")
#: Open sides of a rectangle reach this many view spans beyond the view (far beyond any event).
_FAR = 1e3
#: Label placement grid: cells per axis.
_GRID = 48
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
    if not geometry or geometry.get("kind") not in ("rectangle", "polygon", "ellipsoid", "quadrant"):
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
def _bin_index(v: np.ndarray, lim: tuple[float, float], nb: int) -> np.ndarray:
    return np.clip(((v - lim[0]) / (lim[1] - lim[0]) * nb).astype(np.int64), 0, nb - 1)


def _counts_2d(x, y, xlim, ylim, nb: int) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not x.size:
        return np.zeros((nb, nb), dtype=np.int64)
    ix, iy = _bin_index(x, xlim, nb), _bin_index(y, ylim, nb)
    return np.bincount(iy * nb + ix, minlength=nb * nb).reshape(nb, nb)


def _density(ax, x, y, xlim, ylim, bins: int):
    counts = _counts_2d(x, y, xlim, ylim, int(bins))
    img = np.ma.masked_equal(counts.astype(float), 0.0)
    vmax = max(float(counts.max()) if counts.size else 1.0, 2.0)
    return ax.imshow(
        img,
        origin="lower",
        extent=(xlim[0], xlim[1], ylim[0], ylim[1]),
        aspect="auto",
        interpolation="nearest",
        cmap=_CMAP,
        norm=LogNorm(vmin=1.0, vmax=vmax),
        rasterized=True,
        gid="density",
        zorder=1,
    )


def _histogram(ax, x, xlim, bins: int) -> float:
    x = x[np.isfinite(x)]
    nb = int(bins)
    edges = np.linspace(xlim[0], xlim[1], nb + 1)
    counts = np.bincount(_bin_index(x, xlim, nb), minlength=nb) if x.size else np.zeros(nb, int)
    ax.stairs(counts, edges, fill=True, color="#9ecae1", gid="histogram", zorder=1)
    ax.stairs(counts, edges, color="#3182bd", linewidth=0.8, zorder=1)
    top = float(counts.max()) if counts.size and counts.max() > 0 else 1.0
    ax.set_ylim(0, top * 1.5)  # head room for the gate bars and labels
    return top


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------
def _finite(v) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None


def _coords(shape: dict, axis: int) -> list[float]:
    """Finite coordinates of a shape along one axis (what may widen the view)."""
    kind = shape.get("kind")
    out: list[float] = []
    if kind == "rectangle":
        for key in ("min", "max"):
            vals = shape.get(key) or []
            if axis < len(vals) and _finite(vals[axis]) is not None:
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


def _far(lims) -> tuple[float, float]:
    span = lims[1] - lims[0]
    return lims[0] - _FAR * span, lims[1] + _FAR * span


def _rect_bounds(shape: dict, xlim, ylim) -> tuple[float, float, float, float]:
    mins, maxs = shape["min"], shape["max"]
    fx, fy = _far(xlim), _far(ylim)
    x0 = _finite(mins[0]) if _finite(mins[0]) is not None else fx[0]
    x1 = _finite(maxs[0]) if _finite(maxs[0]) is not None else fx[1]
    y0 = _finite(mins[1]) if _finite(mins[1]) is not None else fy[0]
    y1 = _finite(maxs[1]) if _finite(maxs[1]) is not None else fy[1]
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


def _ellipsoid_slice(shape: dict, values: np.ndarray):
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


def _unbounded_in_view(slice_, xlim, ylim) -> bool:
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
class _Drawn:
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


def _make_drawn(region: Region, naxes: int, xlim, ylim, values) -> _Drawn:
    shape = region.shape
    kind = shape.get("kind")
    if naxes == 1:
        if kind != "rectangle":
            raise ValueError(f"a {kind} gate cannot be drawn on a histogram")
        fx = _far(xlim)
        lo, hi = _finite(shape["min"][0]), _finite(shape["max"][0])
        return _Drawn(region, interval=(fx[0] if lo is None else lo, fx[1] if hi is None else hi))
    if kind == "rectangle":
        x0, x1, y0, y1 = _rect_bounds(shape, xlim, ylim)
        path = MplPath([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], closed=True)
        return _Drawn(region, path=path)
    if kind == "polygon":
        verts = np.asarray(shape["vertices"], dtype=float)
        return _Drawn(region, path=MplPath(np.vstack([verts, verts[:1]]), closed=True))
    if kind == "ellipsoid":
        slice_ = _ellipsoid_slice(shape, values)
        if len(shape["mean"]) > 2 or _unbounded_in_view(slice_, xlim, ylim):
            if slice_ is None:
                return _Drawn(region)
            if _unbounded_in_view(slice_, xlim, ylim):
                return _Drawn(region, slice_=slice_)
        centre, w, h, ang = ellipse_parameters(
            shape["mean"], shape["covariance"], shape["distance_square"]
        )
        e = Ellipse(centre, w, h, angle=ang)
        return _Drawn(region, path=e.get_patch_transform().transform_path(e.get_path()))
    raise ValueError(f"cannot draw a gate of kind {kind!r}")


def _draw_rect_edges(ax, shape, xlim, ylim, colour, ls) -> None:
    """The closed sides of a rectangle (an open side has no edge), each spanning the rectangle."""
    x0, x1, y0, y1 = _rect_bounds(shape, xlim, ylim)
    mins, maxs = shape["min"], shape["max"]
    for xv in (_finite(mins[0]), _finite(maxs[0])):
        if xv is not None:
            ax.plot([xv, xv], [y0, y1], color=colour, ls=ls, lw=1.2, gid="gate-edge", zorder=4)
    for yv in (_finite(mins[1]), _finite(maxs[1])):
        if yv is not None:
            ax.plot([x0, x1], [yv, yv], color=colour, ls=ls, lw=1.2, gid="gate-edge", zorder=4)


def _draw_outline(ax, d: _Drawn, naxes: int, xlim, ylim, values, dims) -> None:
    """A region's visible outline (drawn once per shape)."""
    r = d.region
    colour = FALLBACK_COLOUR if r.fell_back else GATE_COLOUR
    ls = "--" if r.fell_back else "-"
    kind = r.shape.get("kind")
    if naxes == 1:
        for v in (_finite(r.shape["min"][0]), _finite(r.shape["max"][0])):
            if v is not None:
                ax.axvline(v, color=colour, ls=ls, lw=1.2, gid="gate-edge", zorder=4)
        return
    if kind == "rectangle":
        _draw_rect_edges(ax, r.shape, xlim, ylim, colour, ls)
    elif kind == "polygon":
        verts = np.asarray(r.shape["vertices"], dtype=float)
        ax.add_patch(Polygon(verts, closed=True, fill=False, ec=colour, ls=ls, lw=1.2,
                             gid="gate-edge", zorder=4))  # fmt: skip
    elif kind == "ellipsoid" and d.slice_ is not None:
        centre, prec, r2 = d.slice_
        gx = np.linspace(xlim[0], xlim[1], 241)
        gy = np.linspace(ylim[0], ylim[1], 241)
        xx, yy = np.meshgrid(gx - centre[0], gy - centre[1])
        q = prec[0, 0] * xx * xx + 2.0 * prec[0, 1] * xx * yy + prec[1, 1] * yy * yy
        # scaled so the zero level is well conditioned whatever the ellipse's size
        ax.contour(gx, gy, (q - r2) / r2, levels=[0.0], colors=[colour], linestyles=[ls],
                   linewidths=1.2, zorder=4)  # fmt: skip
        note = "half-space boundary"
        if len(r.shape["mean"]) > 2:
            others = ", ".join(dims[2:]) if len(dims) > 2 else "other dims"
            note += f" at median {others}"
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=6, color="dimgray")
    elif kind == "ellipsoid":
        centre, w, h, ang = ellipse_parameters(
            r.shape["mean"], r.shape["covariance"], r.shape["distance_square"]
        )
        ax.add_patch(Ellipse(centre, w, h, angle=ang, fill=False, ec=colour, ls=ls, lw=1.2,
                             gid="gate-edge", zorder=4))  # fmt: skip
        if len(r.shape["mean"]) > 2:
            ax.text(0.02, 0.02, f"projection of a {len(r.shape['mean'])}-D ellipsoid",
                    transform=ax.transAxes, fontsize=6, color="dimgray")  # fmt: skip


def _region_patch(ax, d: _Drawn, naxes: int) -> None:
    """The region as an invisible patch in data coordinates (what the population is), plus a
    light fill when it is the population asked for."""
    r = d.region
    pop = r.name or ""
    gid = f"region-outside:{pop}" if r.outside else f"region:{pop}"
    if naxes == 1 and d.interval is not None:
        a, b = d.interval
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        ax.add_patch(Rectangle((a, 0), b - a, 1, transform=trans, fc="none", ec="none",
                               gid=gid, zorder=0))  # fmt: skip
        if r.highlight:
            for lo, hi in _visible_pieces(d, ax.get_xlim()):
                ax.add_patch(Rectangle((lo, 0), hi - lo, 1, transform=trans, fc=HIGHLIGHT_COLOUR,
                                       alpha=0.12, ec="none", gid="gate-fill", zorder=0))  # fmt: skip
        return
    if d.path is None:
        return
    ax.add_patch(PathPatch(d.path, fc="none", ec="none", gid=gid, zorder=0))
    if r.highlight:
        path = d.path
        if r.outside:  # the view with the shape as a hole (opposite winding: non-zero fill)
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            outer = MplPath([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], closed=True)
            inner = d.path.vertices
            if _signed_area(inner) > 0:
                inner = inner[::-1]
            path = MplPath.make_compound_path(outer, MplPath(inner, closed=True))
        ax.add_patch(PathPatch(path, fc=HIGHLIGHT_COLOUR, alpha=0.12, ec="none",
                               gid="gate-fill", zorder=2))  # fmt: skip


def _signed_area(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _visible_pieces(d: _Drawn, xlim) -> list[tuple[float, float]]:
    """The parts of a 1-D region inside the view."""
    a, b = d.interval
    lo, hi = xlim
    pieces = [(lo, min(a, hi)), (max(b, lo), hi)] if d.region.outside else [(max(a, lo), min(b, hi))]
    return [(p, q) for p, q in pieces if q > p]


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------
def _fmt_pct(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.3g}%" if p < 1 else f"{p:.1f}%"


def _label_text(r: Region) -> str:
    if not r.name:
        return _fmt_pct(r.percent) if r.percent is not None else ""
    return f"{r.name}\n{_fmt_pct(r.percent)}"


def _text_cells(text: str, fontsize: float, ax_px: tuple[float, float], dpi: float):
    """A label's size in grid cells (generous: the label must fit inside its region)."""
    lines = text.split("\n")
    w_pt = 0.6 * fontsize * max(len(s) for s in lines) + 3
    h_pt = 1.2 * fontsize * len(lines) + 3
    wpx, hpx = w_pt * dpi / 72.0, h_pt * dpi / 72.0
    return (
        max(1, math.ceil(wpx / max(ax_px[0], 1.0) * _GRID)),
        max(1, math.ceil(hpx / max(ax_px[1], 1.0) * _GRID)),
    )


def _box_sums(a: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Sum of ``a`` over every ``bh x bw`` box, indexed by the box's lower-left cell."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s[1:, 1:] = np.cumsum(np.cumsum(a, axis=0), axis=1)
    return s[bh:, bw:] - s[:-bh, bw:] - s[bh:, :-bw] + s[:-bh, :-bw]


def _place_2d(
    ax, drawn: list[_Drawn], values, xlim, ylim, fontsize: float, *, avoid_bottom: bool = False
) -> None:
    """Put each labelled region's label inside it: the box where the label fits whole, overlaps
    no other label and covers the fewest events; failing that, the point deepest inside it."""
    from scipy.ndimage import binary_erosion, distance_transform_edt

    g = _GRID
    gx = xlim[0] + (np.arange(g) + 0.5) / g * (xlim[1] - xlim[0])
    gy = ylim[0] + (np.arange(g) + 0.5) / g * (ylim[1] - ylim[0])
    xx, yy = np.meshgrid(gx, gy)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    dens = _counts_2d(values[:, 0], values[:, 1], xlim, ylim, g).astype(float)
    dens /= max(dens.sum(), 1.0)
    dpi = ax.figure.figure.dpi  # the root figure's (the axes may be in a subfigure)
    ax_px = (ax.bbox.width, ax.bbox.height)
    taken = np.zeros((g, g), dtype=bool)
    edge = np.zeros((g, g), dtype=bool)  # one cell off the frame (the label's box is padded)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    if avoid_bottom:  # the fell-back reason or a note is written there
        edge[: max(2, g // 14), :] = True
    free = (~edge).astype(float)
    small = max(fontsize - 1.5, 5.0)
    for d in drawn:
        r = d.region
        if not r.name:
            continue
        mask = d.inside(pts).reshape(g, g)
        core = binary_erosion(mask)  # cells wholly inside: a label box never touches the gate
        two = _label_text(r)
        one = two.replace("\n", " ")
        spot = None
        # a box wholly inside the region, on no other label, over the fewest events: the label
        # on two lines or one, at the font size, then smaller
        for text, fs in ((two, fontsize), (one, fontsize), (two, small), (one, small)):
            bw, bh = _text_cells(text, fs, ax_px, dpi)
            if bw > g - 2 or bh > g - 2:
                continue
            area = bh * bw
            whole = (
                (_box_sums(free, bh, bw) >= area - 0.5)
                & (_box_sums((core & ~edge).astype(float), bh, bw) >= area - 0.5)
                & (_box_sums(taken.astype(float), bh, bw) < 0.5)
            )
            if whole.any():
                cost = np.where(whole, _box_sums(dens, bh, bw), np.inf)
                iy, ix = np.unravel_index(int(np.argmin(cost)), cost.shape)
                spot = (iy, ix, bh, bw)
                break
        if spot is None:  # a box in view centred in the region, as little outside it as can be
            text, fs = two, small
            bw, bh = _text_cells(text, fs, ax_px, dpi)
            if bw <= g - 2 and bh <= g - 2:
                area = bh * bw
                in_view = _box_sums(free, bh, bw) >= area - 0.5
                inside = _box_sums((mask & ~edge).astype(float), bh, bw)
                overlap = _box_sums(taken.astype(float), bh, bw)
                cy, cx = bh // 2, bw // 2
                centre_in = mask[cy : cy + in_view.shape[0], cx : cx + in_view.shape[1]]
                cost = (area - inside) / area + 2.0 * overlap / area + _box_sums(dens, bh, bw)
                cost = np.where(in_view & centre_in, cost, np.inf)
                if np.isfinite(cost).any():
                    iy, ix = np.unravel_index(int(np.argmin(cost)), cost.shape)
                    spot = (iy, ix, bh, bw)
        if spot is None and mask.any():  # the deepest point: the label spills over the edge
            depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            iy, ix = np.unravel_index(int(np.argmax(depth)), depth.shape)
            spot = (iy, ix, 1, 1)
        if spot is None:  # the region lies outside the view: name it at the nearest edge
            has = d.path is not None
            x = float(np.clip(np.mean(d.path.vertices[:, 0]), *xlim)) if has else xlim[0]
            y = float(np.clip(np.mean(d.path.vertices[:, 1]), *ylim)) if has else ylim[1]
            _label(ax, x, y, text + " (off scale)", r, fs)
            continue
        iy, ix, bh_, bw_ = spot
        taken[max(iy - 1, 0) : iy + bh_ + 1, max(ix - 1, 0) : ix + bw_ + 1] = True
        # anchored at the centre of the box's centre cell: a point of the region
        x = xlim[0] + (ix + bw_ // 2 + 0.5) / g * (xlim[1] - xlim[0])
        y = ylim[0] + (iy + bh_ // 2 + 0.5) / g * (ylim[1] - ylim[0])
        _label(ax, x, y, text, r, fs)


def _place_1d(ax, drawn: list[_Drawn], xlim, fontsize: float) -> None:
    """Labels above the histogram, centred on the visible part of each region, with a bar over
    that part; labels whose spans overlap are stacked."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    placed: list[tuple[float, float, float]] = []  # (lo, hi, level)
    for d in drawn:
        r = d.region
        pieces = _visible_pieces(d, xlim)
        if not pieces:
            continue
        lo, hi = max(pieces, key=lambda p: p[1] - p[0])
        level = 0.9
        while any(a < hi and lo < b and abs(lv - level) < 1e-9 for a, b, lv in placed):
            level -= 0.13
        placed.append((lo, hi, level))
        colour = FALLBACK_COLOUR if r.fell_back else GATE_COLOUR
        for p, q in pieces:
            ax.plot([p, q], [level - 0.075] * 2, transform=trans, color=colour, lw=1.0,
                    ls="--" if r.fell_back else "-", gid="gate-bar", zorder=4)  # fmt: skip
        if r.name:
            _label(ax, (lo + hi) / 2, level, _label_text(r), r, fontsize, transform=trans)


def _label(ax, x, y, text, r: Region, fontsize: float, transform=None) -> None:
    colour = FALLBACK_COLOUR if r.fell_back else GATE_COLOUR
    ax.text(
        x,
        y,
        text,
        fontsize=fontsize,
        color=colour,
        ha="center",
        va="center",
        clip_on=True,
        gid="gate-label",
        fontweight="bold" if r.highlight else "normal",
        linespacing=1.05,
        zorder=6,
        bbox={"boxstyle": "square,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.7},
        **({"transform": transform} if transform is not None else {}),
    )


# ---------------------------------------------------------------------------------------------
# one view
# ---------------------------------------------------------------------------------------------
def _drawable(regions, naxes: int, values) -> tuple[list[Region], list[str]]:
    """The regions whose geometry can be drawn, and why the others cannot (one malformed gate
    must not cost its siblings their plot)."""
    good, bad = [], []
    for r in regions:
        try:
            for i in range(naxes):
                _coords(r.shape, i)
            _make_drawn(r, naxes, (0.0, 1.0), (0.0, 1.0), values)
        except Exception as exc:  # noqa: BLE001 - reported on the plot and to the caller
            bad.append(f"{r.name or 'a gate'}: cannot draw ({type(exc).__name__}: {exc})")
            continue
        good.append(r)
    return good, bad


def draw_regions(
    ax,
    values: np.ndarray,
    regions: Sequence[Region],
    *,
    dims: Sequence[str] | None = None,
    transforms: Sequence[Any] | None = None,
    title: str | None = None,
    reason: str = "",
    show_reason: bool = True,
    bins: int = 128,
    limits: Sequence[tuple[float, float] | None] | None = None,
    minor_ticks: bool = True,
    fontsize: float = 7.0,
    note: str = "",
    fell_back: bool = False,
    labels_later: list | None = None,
    problems: list | None = None,
):
    """Draw regions (populations) on the events of their parent: the engine of :func:`plot_gate`.

    ``values`` are ``(n, d)`` parent events on the view's dimensions (transformed): ``d == 1`` is a
    histogram, ``d >= 2`` a density of the first two (an ellipsoid's further dimensions are
    sliced at their median). Labels are sized to the axes: in a figure whose layout engine will
    still resize them, pass a list as ``labels_later`` and call what it receives once the layout
    is done (``fig.get_layout_engine().execute(fig)``). A region that cannot be drawn (a
    malformed geometry) is left out and said so on the plot, and in ``problems`` if given.
    Returns the axes.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    d = values.shape[1]
    transforms = list(transforms) if transforms is not None else [None] * d
    transforms += [None] * (d - len(transforms))
    dims = list(dims) if dims is not None else [f"dim {i + 1}" for i in range(d)]
    naxes = 1 if d == 1 else 2
    regions, bad = _drawable(regions, naxes, values)
    if problems is not None:
        problems += bad
    # an unbounded ellipsoid (a half-space's ball) must not widen the view: the data decide it
    data_lims = [view_limits(values[:, i], transforms[i]) for i in range(naxes)]
    lims = []
    for i in range(naxes):
        given = limits[i] if limits is not None and i < len(limits) else None
        coords, cuts = [], []
        for r in regions:
            if r.shape.get("kind") == "ellipsoid" and naxes == 2:
                s = _ellipsoid_slice(r.shape, values)
                if s is None or _unbounded_in_view(s, *data_lims):
                    continue
            (cuts if r.shape.get("kind") == "rectangle" else coords).extend(_coords(r.shape, i))
        lims.append(
            tuple(given)
            if given is not None
            else view_limits(values[:, i], transforms[i], coords, cuts)
        )
    xlim = lims[0]
    ylim = lims[1] if naxes == 2 else None
    ax.set_xlim(*xlim)
    if naxes == 1:
        _histogram(ax, values[:, 0], xlim, bins)
        ax.set_ylabel("events", fontsize=fontsize + 1)
    else:
        ax.set_ylim(*ylim)
        _density(ax, values[:, 0], values[:, 1], xlim, ylim, bins)
    drawn = [_make_drawn(r, naxes, xlim, ylim, values) for r in regions]
    outlined: set[str] = set()
    for dr in drawn:
        key = repr(sorted(dr.region.shape.items(), key=lambda kv: kv[0]))
        if key not in outlined:
            outlined.add(key)
            _draw_outline(ax, dr, naxes, xlim, ylim, values, dims)
        _region_patch(ax, dr, naxes)
    order = sorted(drawn, key=lambda dr: not dr.region.highlight)  # the asked-for label first
    avoid_bottom = bool(note) or (bool(reason) and show_reason and any(r.fell_back for r in regions))

    def place() -> None:
        try:
            if naxes == 1:
                _place_1d(ax, order, xlim, fontsize)
            else:
                _place_2d(ax, order, values, xlim, ylim, fontsize, avoid_bottom=avoid_bottom)
        except Exception as exc:  # noqa: BLE001 - the plot stands without its labels; say so
            ax.text(0.5, 0.5, f"labels could not be placed: {type(exc).__name__}: {exc}"[:90],
                    transform=ax.transAxes, ha="center", fontsize=6, color=FALLBACK_COLOUR,
                    gid="plot-error", wrap=False)  # fmt: skip

    if labels_later is None:
        place()
    else:
        labels_later.append(place)
    set_data_ticks(ax.xaxis, transforms[0], minor_ticks=minor_ticks, fontsize=fontsize)
    ax.set_xlabel(dims[0], fontsize=fontsize + 1)
    if naxes == 2:
        set_data_ticks(ax.yaxis, transforms[1], minor_ticks=minor_ticks, fontsize=fontsize)
        ax.set_ylabel(dims[1] if len(dims) > 1 else "", fontsize=fontsize + 1)
    else:
        ax.tick_params(axis="y", labelsize=fontsize)
    if title:
        ax.set_title(title, fontsize=fontsize + 1, loc="left")
    if fell_back or any(r.fell_back for r in regions):
        ax.text(1.0, 1.012, "fell back", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=fontsize, color="white", gid="fell-back",
                bbox={"boxstyle": "round,pad=0.2", "fc": FALLBACK_COLOUR, "ec": "none"})  # fmt: skip
        if reason and show_reason:
            short = reason if len(reason) <= 70 else reason[:67] + "..."
            ax.text(0.01, 0.01, short, transform=ax.transAxes, ha="left", va="bottom",
                    fontsize=fontsize - 1.5, color=FALLBACK_COLOUR, clip_on=True, zorder=7,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.7})  # fmt: skip
    if bad:
        ax.text(0.5, 0.5, "\n".join(textwrap.fill(b[:160], 48) for b in bad), transform=ax.transAxes,
                ha="center", va="center", fontsize=fontsize - 1, color=FALLBACK_COLOUR, zorder=8,
                gid="plot-error", bbox={"fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
    if note:
        ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom",
                fontsize=fontsize - 1.5, color="dimgray", zorder=7)  # fmt: skip
    return ax


def plot_gate(
    values: np.ndarray,
    geometry: dict | None,
    *,
    ax=None,
    dims: Sequence[str] | None = None,
    transforms: Sequence[Any] | None = None,
    name: str | None = None,
    percent: float | None = None,
    quadrant: str | None = None,
    quadrant_labels: dict[str, str] | None = None,
    quadrant_percents: dict[str, float] | None = None,
    title: str | None = None,
    fell_back: bool = False,
    reason: str = "",
    bins: int = 128,
    limits: Sequence[tuple[float, float] | None] | None = None,
    minor_ticks: bool = True,
):
    """Draw one gate on the events of its parent population.

    Parameters
    ----------
    values
        ``(n, d)`` parent events on the gate's (compensated, transformed) dimensions; ``d`` is 1
        (histogram) or >= 2 (density of the first two dimensions).
    geometry
        The gate as used: ``GatingResult.gates[pop]['geometry']`` (``kind`` rectangle, polygon,
        ellipsoid or quadrant, in transformed units), or ``None`` to draw the events only.
    ax
        A matplotlib Axes to draw on; a new :class:`~matplotlib.figure.Figure` is made otherwise.
    dims, transforms
        Axis labels and the transform of each axis (for tick labels in data units).
    name, percent
        Gate name and percent of parent, written inside the gate.
    quadrant, quadrant_labels, quadrant_percents
        For quadrant gates: the quadrant to highlight, a label per quadrant (population names;
        quadrants it does not name are drawn unlabelled; ``None`` labels each by its key) and a
        percent per quadrant.
    title
        Axes title (the parent population, by convention).
    fell_back, reason
        A data-driven gate that fell back is drawn dashed red with a "fell back" badge and the
        reason.
    bins
        Bins per axis of the density (or histogram); kept modest on purpose.
    limits
        ``(lo, hi)`` per axis on the transformed scale; default from the data
        (:func:`~cytophen.report.ticks.view_limits`).
    minor_ticks
        Draw unlabelled minor ticks (2-9 x each decade).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on (``ax.figure`` is the figure).
    """
    if ax is None:
        fig = Figure(figsize=(3.6, 3.3), dpi=100, layout="constrained")
        ax = fig.add_subplot()
    regions = regions_of(
        geometry,
        name=name,
        percent=percent,
        quadrant=quadrant,
        quadrant_labels=quadrant_labels,
        quadrant_percents=quadrant_percents,
        fell_back=fell_back,
    )
    draw_regions(
        ax,
        values,
        regions,
        dims=dims,
        transforms=transforms,
        title=title,
        reason=reason,
        bins=bins,
        limits=limits,
        minor_ticks=minor_ticks,
        fell_back=fell_back,
    )
    if not regions and (name or percent is not None):
        text = _label_text(Region(name, {}, percent))
        ax.text(0.02, 0.98, text, transform=ax.transAxes, fontsize=7, va="top", gid="gate-label")
    return ax
