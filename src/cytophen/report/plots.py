"""Gating plots: every gate drawn on its parent population, as a flow cytometrist expects to see it.

- 2-D gates: the parent's events as a pseudocolour density (a 2-D histogram with a modest number of
  bins, coloured on a log scale, empty bins white, as FlowJo shows them); 1-D gates: a histogram.
- Axes are the template's transformed scales (each :class:`~cytophen.gates.Dim` carries its
  transform); tick labels are in data units: on logicle / log-like axes the decades
  (``0``, ``10^2``, ``10^3`` ... and negative decades), placed at ``transform.apply(value)``.
- The gate is drawn as it was used on that sample (``GatingResult.gates[pop]['geometry']``): a
  data-driven gate shows the fixed geometry it chose, dashed in red with a "fell back" badge when
  its method fell back.

Everything is drawn on :class:`matplotlib.figure.Figure` objects (no pyplot state), so plotting is
safe in worker processes and figures display in notebooks.

>>> result = cytophen.gate(sample, template)      # doctest: +SKIP
>>> result.plot()                                  # doctest: +SKIP  (whole hierarchy)
>>> result.plot("switched_memory")                 # doctest: +SKIP  (one gate)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from cytophen._atomic import atomic_write_bytes
from cytophen.errors import CytophenError, ReportError

__all__ = [
    "plot_result",
    "plot_gate",
    "plot_hierarchy",
    "save_sample_plots",
    "axis_ticks",
    "gate_panels",
    "ellipse_parameters",
    "safe_name",
    "GatePanel",
    "LOW_COUNT",
]

#: Populations with fewer events than this are flagged as too few to trust (the Poisson CV of a
#: count n is 1/sqrt(n): above 10 % below 100 events).
LOW_COUNT = 100

_LINEAR_KINDS = {"identity", "linear", "lin", "flin", "scale", "none"}
_GATE_COLOUR = "black"
_FALLBACK_COLOUR = "#d62728"
_CMAP = colormaps["jet"]


# ---------------------------------------------------------------------------------------------
# ticks in data units
# ---------------------------------------------------------------------------------------------
def _apply(transform, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if transform is None:
        return x
    with np.errstate(all="ignore"):
        return np.asarray(transform.apply(np.atleast_1d(x)), dtype=np.float64).reshape(x.shape)


def _inverse(transform, y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if transform is None:
        return y
    with np.errstate(all="ignore"):
        return np.asarray(transform.inverse(np.atleast_1d(y)), dtype=np.float64).reshape(y.shape)


def _is_linear(transform) -> bool:
    return transform is None or str(getattr(transform, "kind", "")).lower() in _LINEAR_KINDS


def _linear_label(v: float, vmax: float) -> str:
    if v == 0:
        return "0"
    if vmax >= 1e4:
        return f"{v / 1000:g}K"
    return f"{v:g}"


def _decade_label(v: float) -> str:
    if v == 0:
        return "0"
    k = int(round(math.log10(abs(v))))
    return f"${'-' if v < 0 else ''}10^{{{k}}}$"


def axis_ticks(
    transform, lo: float, hi: float, *, min_separation: float = 0.1
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Tick positions and labels in data units for an axis drawn on a transformed scale.

    Parameters
    ----------
    transform
        The axis' :class:`~cytophen.transforms.Transform` (``apply``/``inverse``), or ``None`` for a
        linear axis in data units.
    lo, hi
        Axis limits on the transformed scale.
    min_separation
        On decade axes, labelled ticks closer than this fraction of the axis to an already kept
        tick (``0`` first, then the largest decades) become unlabelled minor ticks, so the decades
        that crowd the linear region of a logicle axis do not overlap.

    Returns
    -------
    positions, labels, minor
        Major tick positions (transformed scale), their labels (``'0'``, ``'$10^{3}$'``,
        ``'$-10^{2}$'`` on decade axes; ``'50K'`` style on linear axes) and minor tick positions.

    Examples
    --------
    >>> pos, labels, minor = axis_ticks(None, 0, 250000)
    >>> labels[:3]
    ['0', '50K', '100K']
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if hi <= lo:
        return np.array([lo]), [_linear_label(float(_inverse(transform, lo)), 1.0)], np.array([])
    if not _is_linear(transform):
        out = _decade_ticks(transform, lo, hi, min_separation)
        if out is not None:
            return out
    dlo, dhi = (float(v) for v in _inverse(transform, [lo, hi]))
    if not (np.isfinite(dlo) and np.isfinite(dhi)) or dhi <= dlo:
        dlo, dhi = lo, hi
        transform = None
    values = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(dlo, dhi)
    pos = _apply(transform, values)
    keep = np.isfinite(pos) & (pos >= lo - 1e-9 * (hi - lo)) & (pos <= hi + 1e-9 * (hi - lo))
    values, pos = values[keep], pos[keep]
    vmax = float(np.max(np.abs(values))) if values.size else 1.0
    return pos, [_linear_label(float(v), vmax) for v in values], np.array([])


def _thin(pos: np.ndarray, gap: float) -> np.ndarray:
    """Drop minor ticks closer than ``gap`` to the previous kept one (they only make a smudge)."""
    kept: list[float] = []
    for p in pos:
        if not kept or p - kept[-1] >= gap:
            kept.append(float(p))
    return np.array(kept)


def _decade_ticks(transform, lo, hi, min_sep):
    dlo, dhi = (float(v) for v in _inverse(transform, [lo, hi]))
    if not np.isfinite(dhi) or dhi <= 0:
        return None
    if not np.isfinite(dlo):
        dlo = 0.0
    kmax = math.floor(math.log10(dhi) + 1e-9)
    kmin = math.floor(math.log10(dlo) - 1e-9) if dlo > 0 else 0
    cand = [float(10.0**k) for k in range(kmax, kmin - 1, -1)]
    neg = []
    if dlo < 0:
        neg = [-float(10.0**k) for k in range(math.floor(math.log10(-dlo)), -1, -1)]
    ordered = ([0.0] if dlo <= 0 <= dhi else []) + cand + neg
    span = hi - lo
    kept_v: list[float] = []
    kept_p: list[float] = []
    minor: list[float] = []
    for v in ordered:
        p = float(_apply(transform, v))
        if not np.isfinite(p) or p < lo - 1e-9 * span or p > hi + 1e-9 * span:
            continue
        if all(abs(p - q) >= min_sep * span for q in kept_p):
            kept_v.append(v)
            kept_p.append(p)
        else:
            minor.append(p)
    if len(kept_p) < 2:
        return None
    mags = []
    for k in range(min(kmin, 0), kmax + 1):
        for m in range(2, 10):
            mags.append(m * 10.0**k)
    extra = _apply(transform, np.array(mags + [-m for m in mags]))
    extra = extra[np.isfinite(extra) & (extra >= lo) & (extra <= hi)]
    minor_all = _thin(np.unique(np.concatenate([np.array(minor), extra])), 0.012 * span)
    order = np.argsort(kept_p)
    pos = np.array(kept_p)[order]
    labels = [_decade_label(kept_v[i]) for i in order]
    return pos, labels, minor_all


# ---------------------------------------------------------------------------------------------
# drawing one gate on an axes
# ---------------------------------------------------------------------------------------------
def _finite(v) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None


def _gate_coords(geometry: dict | None, axis: int) -> list[float]:
    """Finite coordinates of the gate along one axis (so the view always shows the gate)."""
    if not geometry:
        return []
    kind = geometry.get("kind")
    out: list[float] = []
    if kind == "rectangle":
        for key in ("min", "max"):
            vals = geometry.get(key) or []
            if axis < len(vals) and _finite(vals[axis]) is not None:
                out.append(float(vals[axis]))
    elif kind == "polygon":
        out = [float(v[axis]) for v in geometry.get("vertices", [])]
    elif kind == "ellipsoid":
        mean = np.asarray(geometry["mean"], dtype=float)
        cov = np.asarray(geometry["covariance"], dtype=float)
        if axis < mean.size:
            r = math.sqrt(max(float(geometry["distance_square"]) * cov[axis, axis], 0.0))
            out = [mean[axis] - r, mean[axis] + r]
    elif kind == "quadrant":
        for q in (geometry.get("quadrants") or {}).values():
            for key in ("min", "max"):
                vals = q.get(key) or []
                if axis < len(vals) and _finite(vals[axis]) is not None:
                    out.append(float(vals[axis]))
    return [v for v in out if np.isfinite(v)]


def _top_of(transform) -> float | None:
    """The top of a transform's scale (its ``T`` parameter) on the transformed axis, if it has one."""
    if transform is None:
        return None
    try:
        d = transform.to_dict()
    except Exception:  # noqa: BLE001 - a transform without to_dict simply has no known top
        return None
    for key in ("T", "t", "top"):
        if key in d:
            try:
                top = float(_apply(transform, float(d[key])))
            except (TypeError, ValueError):
                return None
            return top if np.isfinite(top) else None
    return None


def _limits(values: np.ndarray, transform, gate_coords: Sequence[float]) -> tuple[float, float]:
    """Axis range on the transformed scale.

    A transform with a known top (its ``T``) gets a fixed range, the same for every sample so that
    drift between samples shows (events beyond it pile up on the edge bins, as in FlowJo): from the
    scale's bottom (``0``, or a little below data zero for scales centred on it) to the top. Without
    a known top the range follows the data (0.2-99.9 percentiles). The gate is always in view.
    """
    gate = [float(c) for c in gate_coords if np.isfinite(c)]
    top = _top_of(transform)
    zero = float(_apply(transform, 0.0)) if transform is not None else 0.0
    if top is not None:
        if _is_linear(transform):
            lo = zero if np.isfinite(zero) else 0.0
        else:
            lo = min(0.0, zero - 0.1 * (top - zero)) if np.isfinite(zero) else 0.0
        lo, hi = min([lo, *gate]), max([top, *gate])
    else:
        v = values[np.isfinite(values)]
        pts = list(gate)
        if v.size:
            plo, phi = np.percentile(v, [0.2, 99.9]) if v.size > 50 else (v.min(), v.max())
            pts += [float(plo), float(phi)]
            if _is_linear(transform) and np.isfinite(zero) and v.min() >= zero:
                pts.append(zero)
        if not pts:
            return 0.0, 1.0
        lo, hi = min(pts), max(pts)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return lo - pad, hi + pad


def _density(ax, x, y, xlim, ylim, bins: int) -> Any:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nb = int(bins)
    counts = np.zeros((nb, nb), dtype=np.int64)
    if x.size:
        ix = np.clip(((x - xlim[0]) / (xlim[1] - xlim[0]) * nb).astype(np.int64), 0, nb - 1)
        iy = np.clip(((y - ylim[0]) / (ylim[1] - ylim[0]) * nb).astype(np.int64), 0, nb - 1)
        counts = np.bincount(iy * nb + ix, minlength=nb * nb).reshape(nb, nb)
    img = np.ma.masked_equal(counts.astype(float), 0.0)
    vmax = max(float(counts.max()) if counts.size else 1.0, 2.0)
    cmap = _CMAP.with_extremes(bad="white")
    return ax.imshow(
        img,
        origin="lower",
        extent=(xlim[0], xlim[1], ylim[0], ylim[1]),
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        norm=LogNorm(vmin=1.0, vmax=vmax),
        rasterized=True,
        gid="density",
    )


def _histogram(ax, x, xlim, bins: int) -> float:
    x = x[np.isfinite(x)]
    nb = int(bins)
    edges = np.linspace(xlim[0], xlim[1], nb + 1)
    counts = np.zeros(nb, dtype=np.int64)
    if x.size:
        ix = np.clip(((x - xlim[0]) / (xlim[1] - xlim[0]) * nb).astype(np.int64), 0, nb - 1)
        counts = np.bincount(ix, minlength=nb)
    ax.stairs(counts, edges, fill=True, color="#9ecae1", gid="histogram")
    ax.stairs(counts, edges, color="#3182bd", linewidth=0.8)
    top = float(counts.max()) if counts.size and counts.max() > 0 else 1.0
    ax.set_ylim(0, top * 1.45)
    return top


def _label(ax, x, y, text, colour, ha="left", va="bottom") -> None:
    ax.text(
        x,
        y,
        text,
        fontsize=7,
        color=colour,
        ha=ha,
        va=va,
        clip_on=True,
        gid="gate-label",
        bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
    )


def _fmt_pct(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.3g}%" if p < 1 else f"{p:.1f}%"


def _draw_rect_2d(ax, mins, maxs, xlim, ylim, colour, ls, highlight=True):
    x0, y0 = _finite(mins[0]), _finite(mins[1])
    x1, y1 = _finite(maxs[0]), _finite(maxs[1])
    big = 1e3 * max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    fx0 = x0 if x0 is not None else xlim[0] - big
    fx1 = x1 if x1 is not None else xlim[1] + big
    fy0 = y0 if y0 is not None else ylim[0] - big
    fy1 = y1 if y1 is not None else ylim[1] + big
    if highlight:
        ax.add_patch(
            Rectangle(
                (fx0, fy0), fx1 - fx0, fy1 - fy0, fc=colour, ec="none", alpha=0.06, gid="gate-fill"
            )
        )
    # only the closed sides are drawn: an open side has no edge
    for xv in (x0, x1):
        if xv is not None:
            ax.plot([xv, xv], [fy0, fy1], color=colour, ls=ls, lw=1.2, gid="gate-edge")
    for yv in (y0, y1):
        if yv is not None:
            ax.plot([fx0, fx1], [yv, yv], color=colour, ls=ls, lw=1.2, gid="gate-edge")
    cx = min(max(fx0, xlim[0]), xlim[1])
    cy = min(max(fy1, ylim[0]), ylim[1])
    return cx, cy


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


#: An ellipsoid whose slice through the view is larger than this many times the data's span on an
#: axis is drawn as its boundary line across the view (e.g. ``mixture_halfspace``'s ball).
_UNBOUNDED_SPAN = 50.0


def _kind_of(geometry: dict | None) -> str | None:
    return geometry.get("kind") if geometry else None


def _ellipsoid_slice(geometry: dict, values: np.ndarray):
    """The 2-D slice of an ellipsoid gate through the first two axes, at the events' median of the
    other dimensions: ``(centre, precision, r2)`` with ``(a - centre)' precision (a - centre) <=
    r2`` inside, or ``None`` when the slice is empty."""
    mean = np.asarray(geometry["mean"], dtype=float)
    cov = np.asarray(geometry["covariance"], dtype=float)
    r2 = float(geometry["distance_square"])
    prec = np.linalg.inv(cov)
    if mean.size == 2:
        return mean, prec, r2
    rest = values[:, 2:]
    b = np.array([np.nanmedian(rest[:, j]) if np.isfinite(rest[:, j]).any() else mean[2 + j]
                  for j in range(rest.shape[1])])  # fmt: skip
    db = b - mean[2:]
    paa, pab = prec[:2, :2], prec[:2, 2:]
    centre = mean[:2] - np.linalg.solve(paa, pab @ db)
    # the quadratic form at b, minimised over the plotted axes
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
    semi = math.sqrt(r2 / w.min())  # the longest semi-axis
    span = max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    return semi > _UNBOUNDED_SPAN * span


def _draw_ellipse_slice(ax, slice_, xlim, ylim, colour, ls) -> None:
    """The boundary of a slice ellipse within the view, from its quadratic form on a grid
    (a matplotlib Ellipse of radius 10^4 x the view is drawn with Bezier arcs whose error exceeds
    the view itself)."""
    centre, prec, r2 = slice_
    gx = np.linspace(xlim[0], xlim[1], 241)
    gy = np.linspace(ylim[0], ylim[1], 241)
    xx, yy = np.meshgrid(gx - centre[0], gy - centre[1])
    q = prec[0, 0] * xx * xx + 2.0 * prec[0, 1] * xx * yy + prec[1, 1] * yy * yy
    # scaled so the zero level is well conditioned whatever the ellipse's size
    ax.contour(gx, gy, (q - r2) / r2, levels=[0.0], colors=[colour], linestyles=[ls],
               linewidths=1.2)  # fmt: skip


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
        Gate name and percent of parent, written next to the gate.
    quadrant, quadrant_labels, quadrant_percents
        For quadrant gates: the quadrant to highlight, a label per quadrant (e.g. population names)
        and a percent per quadrant.
    title
        Axes title (the parent population, by convention).
    fell_back, reason
        A data-driven gate that fell back is drawn dashed red with a "fell back" badge.
    bins
        Bins per axis of the density (or histogram); kept modest on purpose.
    limits
        ``(lo, hi)`` per axis on the transformed scale; default from the data, the gate and the
        transform's range.
    minor_ticks
        Draw unlabelled minor ticks (2-9 x each decade); thumbnails skip them (they are a large
        part of the drawing time).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on (``ax.figure`` is the figure).
    """
    if ax is None:
        fig = Figure(figsize=(3.6, 3.3), dpi=100, layout="constrained")
        ax = fig.add_subplot()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    d = values.shape[1]
    transforms = list(transforms) if transforms is not None else [None] * d
    transforms += [None] * (d - len(transforms))
    dims = list(dims) if dims is not None else [f"dim {i + 1}" for i in range(d)]
    colour = _FALLBACK_COLOUR if fell_back else _GATE_COLOUR
    ls = "--" if fell_back else "-"
    geometry = geometry or None
    kind = geometry.get("kind") if geometry else None
    naxes = 1 if d == 1 else 2
    slice_ = None
    unbounded = False
    if kind == "ellipsoid" and naxes == 2:
        slice_ = _ellipsoid_slice(geometry, values)
        data_lims = [_limits(values[:, i], transforms[i], []) for i in range(2)]
        unbounded = _unbounded_in_view(slice_, *data_lims)
    lims = []
    for i in range(naxes):
        given = limits[i] if limits is not None and i < len(limits) else None
        # a half-space's ball is far larger than the data: the view follows the data
        coords = [] if unbounded else _gate_coords(geometry, i)
        lims.append(
            tuple(given) if given is not None else _limits(values[:, i], transforms[i], coords)
        )
    xlim = lims[0]
    text = name if name else ""
    if percent is not None:
        text = f"{text}\n{_fmt_pct(percent)}" if text else _fmt_pct(percent)

    if naxes == 1:
        ytop = _histogram(ax, values[:, 0], xlim, bins)
        if kind in ("rectangle",) and geometry.get("min"):
            lo, hi = _finite(geometry["min"][0]), _finite(geometry["max"][0])
            a = lo if lo is not None else xlim[0]
            b = hi if hi is not None else xlim[1]
            ax.axvspan(a, b, color=colour, alpha=0.08, gid="gate-fill")
            for v in (lo, hi):
                if v is not None:
                    ax.axvline(v, color=colour, ls=ls, lw=1.2, gid="gate-edge")
            ax.plot([a, b], [ytop * 1.1] * 2, color=colour, lw=1.2, ls=ls, gid="gate-bar")
            if text:
                _label(ax, min(max(a, xlim[0]), xlim[1]), ytop * 1.12, text, colour)
        ax.set_ylabel("events", fontsize=8)
    else:
        ylim = lims[1]
        _density(ax, values[:, 0], values[:, 1], xlim, ylim, bins)
        if kind == "rectangle":
            cx, cy = _draw_rect_2d(ax, geometry["min"], geometry["max"], xlim, ylim, colour, ls)
            if text:
                _label(ax, cx, cy, text, colour, va="top")
        elif kind == "polygon":
            verts = np.asarray(geometry["vertices"], dtype=float)
            ax.add_patch(
                Polygon(verts, closed=True, fill=False, ec=colour, ls=ls, lw=1.2, gid="gate-edge")
            )
            top = verts[np.argmax(verts[:, 1])]
            if text:
                _label(ax, top[0], top[1], text, colour)
        elif kind == "ellipsoid" and unbounded:
            _draw_ellipse_slice(ax, slice_, xlim, ylim, colour, ls)
            if text:
                _label(ax, xlim[0] + 0.05 * (xlim[1] - xlim[0]), ylim[1], text, colour, va="top")
            note = "half-space boundary"
            if len(geometry["mean"]) > 2:
                others = ", ".join(dims[2:]) if len(dims) > 2 else "other dims"
                note += f" at median {others}"
            ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=6, color="dimgray")
        elif kind == "ellipsoid":
            centre, w, h, ang = ellipse_parameters(
                geometry["mean"], geometry["covariance"], geometry["distance_square"]
            )
            ax.add_patch(
                Ellipse(
                    centre, w, h, angle=ang, fill=False, ec=colour, ls=ls, lw=1.2, gid="gate-edge"
                )
            )
            ytop = centre[1] + math.sqrt(
                float(geometry["distance_square"]) * float(np.asarray(geometry["covariance"])[1, 1])
            )
            if text:
                _label(ax, centre[0], ytop, text, colour, ha="center")
            if len(geometry["mean"]) > 2:
                ax.text(
                    0.02,
                    0.02,
                    f"projection of a {len(geometry['mean'])}-D ellipsoid",
                    transform=ax.transAxes,
                    fontsize=6,
                    color="dimgray",
                )
        elif kind == "quadrant":
            quads = geometry.get("quadrants") or {}
            labels = quadrant_labels or {}
            pcts = quadrant_percents or {}
            for qname, q in quads.items():
                sel = quadrant is None or qname == quadrant
                cx, cy = _draw_rect_2d(
                    ax,
                    q["min"],
                    q["max"],
                    xlim,
                    ylim,
                    colour,
                    ls,
                    highlight=sel and quadrant is not None,
                )
                qx0 = _finite(q["min"][0])
                qy0 = _finite(q["min"][1])
                # put each quadrant's label in its outer corner
                lx = (
                    xlim[1] - 0.02 * (xlim[1] - xlim[0])
                    if qx0 is not None
                    else xlim[0] + 0.02 * (xlim[1] - xlim[0])
                )
                ly = (
                    ylim[1] - 0.02 * (ylim[1] - ylim[0])
                    if qy0 is not None
                    else ylim[0] + 0.02 * (ylim[1] - ylim[0])
                )
                t = labels.get(qname, qname)
                if qname in pcts:
                    t = f"{t}\n{_fmt_pct(pcts[qname])}"
                _label(
                    ax,
                    lx,
                    ly,
                    t,
                    colour if sel else "dimgray",
                    ha="right" if qx0 is not None else "left",
                    va="top" if qy0 is not None else "bottom",
                )
        ax.set_ylim(*ylim)
        _set_ticks(ax.yaxis, transforms[1], ylim, minor_ticks)
        ax.set_ylabel(dims[1] if len(dims) > 1 else "", fontsize=8)
    ax.set_xlim(*xlim)
    _set_ticks(ax.xaxis, transforms[0], xlim, minor_ticks)
    ax.set_xlabel(dims[0], fontsize=8)
    ax.tick_params(labelsize=7)
    if geometry is None and naxes == 2 and text:
        ax.text(0.02, 0.98, text, transform=ax.transAxes, fontsize=7, va="top")
    if fell_back:
        ax.text(
            0.98,
            0.98,
            "fell back",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="white",
            gid="fell-back",
            bbox={"boxstyle": "round,pad=0.2", "fc": _FALLBACK_COLOUR, "ec": "none"},
        )
        if reason:
            short = reason if len(reason) <= 48 else reason[:45] + "..."
            ax.text(
                0.98,
                0.88,
                short,
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=5.5,
                color=_FALLBACK_COLOUR,
                clip_on=True,
            )
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def _set_ticks(axis, transform, lims, minor_ticks: bool = True) -> None:
    pos, labels, minor = axis_ticks(transform, lims[0], lims[1])
    axis.set_ticks(pos, labels)
    if minor_ticks:
        axis.set_ticks(minor, minor=True)


# ---------------------------------------------------------------------------------------------
# from a GatingResult
# ---------------------------------------------------------------------------------------------
@dataclass
class GatePanel:
    """One gate of a result, ready to draw: the gate, the populations it defines, what it used."""

    key: str
    populations: list[str]
    parent: str | None
    gate: Any
    entry: dict = field(default_factory=dict)

    @property
    def geometry(self) -> dict | None:
        return self.entry.get("geometry")

    @property
    def kind(self) -> str:
        g = self.geometry
        return g.get("kind", "") if g else ""

    @property
    def data_driven(self) -> bool:
        return bool(self.entry.get("data_driven"))

    @property
    def fell_back(self) -> bool:
        return bool(self.entry.get("fell_back"))

    @property
    def reason(self) -> str:
        return str(self.entry.get("reason") or "")


def gate_panels(
    result, *, include_hidden: bool = False
) -> tuple[list[GatePanel], list[tuple[str, str]]]:
    """The result's gates in tree order, one panel per gate (quadrant children share one), and the
    boolean populations as ``(name, expression)`` text; the populations the result hides
    (``result.hidden``: helper populations) are left out unless ``include_hidden``, and so are
    those it applied no gate for (clean-up steps skipped on the file, pregated populations: the
    table's note says why)."""
    template = _template_of(result)
    hidden = set() if include_hidden else set(getattr(result, "hidden", ()))
    panels: dict[int, GatePanel] = {}
    booleans: list[tuple[str, str]] = []
    for pop in template.populations:
        entry = result.gates.get(pop.name) or {}
        if pop.name in hidden or entry.get("skipped") or entry.get("pregated"):
            continue
        g = pop.gate
        if getattr(g, "kind", "") == "boolean":
            ops = [("not " if c else "") + n for n, c in g.operands]
            expr = f" {g.op} ".join(ops) if g.op != "not" else f"not {ops[0]}"
            booleans.append((pop.name, expr))
            continue
        if getattr(g, "kind", "") == "ref":  # drawn as the gate it applied, on its dimensions
            g = _ref_as_drawn(template, pop.name)
        k = id(g)
        if k not in panels:
            panels[k] = GatePanel(
                key=pop.name,
                populations=[],
                parent=pop.parent,
                gate=g,
                entry=dict(result.gates.get(pop.name) or {}),
            )
        panels[k].populations.append(pop.name)
    return list(panels.values()), booleans


@dataclass
class _DrawnRef:
    """A ref gate as drawn: the dimensions (with their transforms) of the gates it refers to."""

    dims: tuple
    kind: str = "ref"


def _ref_as_drawn(template, name: str) -> _DrawnRef:
    g = template.population(name).gate
    by_label: dict[str, Any] = {}
    for ref, labels in g.refs:
        rg = template.population(ref).gate
        if getattr(rg, "kind", "") == "ref":
            rg = _ref_as_drawn(template, ref)
        have = {d.label: d for d in rg.dims}
        for label in labels if labels is not None else list(have):  # resolve_ref's order
            if label in have:
                by_label.setdefault(label, have[label])
    return _DrawnRef(tuple(by_label.values()))


def _template_of(result):
    t = getattr(result, "template", None)
    if t is None:
        raise ReportError(
            f"result for sample {result.sample_id!r} has no template attached; gate with "
            "cytophen.gate(sample, template) to plot it"
        )
    return t


def _row(result, pop: str) -> dict:
    t = result.table
    r = t[t["population"] == pop]
    return r.iloc[0].to_dict() if len(r) else {}


def _percent(result, pop: str) -> float | None:
    v = _row(result, pop).get("percent_of_parent")
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _axis_label(ctx, dim) -> str:
    label = dim.label
    if ctx is None or not hasattr(dim, "channel") or getattr(dim, "numerator", None):
        return label
    try:
        i = ctx.index(dim.channel)
    except Exception:  # noqa: BLE001 - a fluorochrome of a spectrum matrix has no single channel
        return label
    ch, mk = ctx.sample.channels[i], ctx.sample.markers[i]
    if ch == label:
        return f"{label} ({mk})" if mk and mk != label else label
    return f"{label} ({ch})"


def _safe_panel(
    ax, result, ctx, panel: GatePanel, *, highlight: str | None, bins: int, minor_ticks: bool = True
) -> str:
    """Draw a panel; a gate that cannot be drawn becomes a panel saying why (one odd gate must not
    cost a sample all its plots). Returns the problem, or ``''``."""
    try:
        _draw_panel(ax, result, ctx, panel, highlight=highlight, bins=bins, minor_ticks=minor_ticks)
        return ""
    except Exception as exc:  # noqa: BLE001 - reported on the panel and in plots.json
        problem = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CytophenError) else str(exc)
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel.parent or "all events", fontsize=8)
        ax.text(
            0.5,
            0.5,
            f"{panel.key}: cannot draw\n{problem[:120]}",
            ha="center",
            va="center",
            fontsize=6.5,
            wrap=True,
            transform=ax.transAxes,
            color=_FALLBACK_COLOUR,
            gid="plot-error",
        )
        return problem


def _draw_panel(
    ax, result, ctx, panel: GatePanel, *, highlight: str | None, bins: int, minor_ticks: bool = True
) -> None:
    parent_name = panel.parent or "all events"
    title = parent_name if panel.parent else "all events"
    pops = panel.populations
    measured = all(bool(_row(result, p).get("measured", True)) for p in pops)
    geometry = panel.geometry
    if not measured and geometry is None:
        note = _row(result, pops[0]).get("note") or "not measured"
        ax.text(
            0.5,
            0.5,
            f"{panel.key}\n{note}",
            ha="center",
            va="center",
            fontsize=7,
            wrap=True,
            transform=ax.transAxes,
            color="dimgray",
        )
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    g = panel.gate
    dims = list(getattr(g, "dims", ()))
    if geometry is not None and geometry.get("kind") == "ellipsoid":
        dims = dims[: len(geometry["mean"])]
    # an n-D ellipsoid is drawn as its slice at the other dimensions' median: all its dimensions
    shown = dims if _kind_of(geometry) == "ellipsoid" else dims[:2]
    vals = np.column_stack([ctx.value(d) for d in shown])
    if panel.parent is not None:
        vals = vals[result.membership(panel.parent)]
    labels = [_axis_label(ctx, d) for d in shown]
    transforms = [getattr(d, "transform", None) for d in shown]
    kw: dict[str, Any] = {}
    kind = geometry.get("kind") if geometry else None
    if kind == "quadrant":
        template = result.template
        qmap = {template.population(p).quadrant: p for p in pops}
        kw["quadrant_labels"] = {q: p for q, p in qmap.items()}
        kw["quadrant_percents"] = {
            q: pc for q, p in qmap.items() if (pc := _percent(result, p)) is not None
        }
        kw["quadrant"] = (
            result.template.population(highlight).quadrant if highlight in pops else None
        )
    else:
        kw["name"] = pops[0]
        kw["percent"] = _percent(result, pops[0])
    plot_gate(
        vals,
        geometry,
        ax=ax,
        dims=labels,
        transforms=transforms,
        title=title,
        fell_back=panel.fell_back,
        reason=panel.reason,
        bins=bins,
        minor_ticks=minor_ticks,
        **kw,
    )


def _context(result, compensation):
    if getattr(result, "sample", None) is None:
        raise ReportError(
            f"result for sample {result.sample_id!r} carries no events (it was loaded from a table "
            "or gated without keeping the sample); re-gate the FCS file with cytophen.gate to plot it"
        )
    from cytophen.engine import GateContext

    return GateContext(result.sample, _template_of(result), compensation)


def _for_notebook(fig: Figure) -> Figure:
    """Let a pyplot-free Figure show itself in a notebook (``_repr_png_``) even when no matplotlib
    backend integration is active; with the inline backend its own formatter is used instead."""

    def _repr_png_() -> bytes:
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    fig._repr_png_ = _repr_png_
    return fig


def _find(result, population: str) -> str:
    names = list(result.memberships)
    if population in names:
        return population
    low = {n.lower(): n for n in names}
    if population.lower() in low:
        return low[population.lower()]
    raise ReportError(
        f"no population {population!r} in this result; the template has: {', '.join(names)}"
    )


def plot_result(
    result,
    population: str | None = None,
    *,
    compensation=None,
    bins: int = 128,
    ncols: int | None = None,
    panel_size: tuple[float, float] = (3.2, 3.0),
    dpi: int = 100,
) -> Figure:
    """Gating plot of one population's gate, or of the whole hierarchy.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` from :func:`cytophen.gate` (it keeps the sample).
    population
        A population name (case-insensitive); ``None`` draws every gate in tree order.
    compensation
        The same override given to :func:`cytophen.gate`, if any.
    bins
        Bins per axis of the density plots.
    ncols
        Panels per row of the hierarchy figure (default up to 4).
    panel_size, dpi
        Size of one panel in inches, and resolution.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = cytophen.gate(sample, template).plot("DN")   # doctest: +SKIP
    >>> fig.savefig("dn.png")                              # doctest: +SKIP
    """
    if population is None:
        return plot_hierarchy(
            result,
            compensation=compensation,
            bins=bins,
            ncols=ncols,
            panel_size=panel_size,
            dpi=dpi,
        )
    name = _find(result, population)
    panels, booleans = gate_panels(result, include_hidden=True)  # asked for by name
    fig = Figure(figsize=panel_size, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    for p in panels:
        if name in p.populations:
            _draw_panel(ax, result, _context(result, compensation), p, highlight=name, bins=bins)
            fig.suptitle(f"{result.sample_id}", fontsize=8)
            return _for_notebook(fig)
    expr = dict(booleans).get(name, "")
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        f"{name} = {expr}\n{_fmt_pct(_percent(result, name))} of parent",
        ha="center",
        va="center",
        fontsize=9,
        transform=ax.transAxes,
    )
    return _for_notebook(fig)


def plot_hierarchy(
    result,
    *,
    compensation=None,
    bins: int = 128,
    ncols: int | None = None,
    panel_size: tuple[float, float] = (3.2, 3.0),
    dpi: int = 100,
) -> Figure:
    """Every gate of a sample, one panel per gate in tree order; boolean populations as text.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` that keeps its sample.
    compensation, bins, ncols, panel_size, dpi
        As in :func:`plot_result`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels, booleans = gate_panels(result)
    n = len(panels) + (1 if booleans else 0)
    ncols = ncols or max(1, min(4, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(
        figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.3), dpi=dpi, layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    ctx = _context(result, compensation) if panels else None
    for ax, p in zip(axes, panels):
        _safe_panel(ax, result, ctx, p, highlight=None, bins=bins)
    rest = list(axes[len(panels) :])
    if booleans:
        ax = rest.pop(0)
        ax.axis("off")
        lines = ["Boolean populations"] + [
            f"{name} = {expr}: {_fmt_pct(_percent(result, name))}" for name, expr in booleans
        ]
        ax.text(
            0.0,
            1.0,
            "\n".join(lines),
            va="top",
            ha="left",
            fontsize=7,
            transform=ax.transAxes,
            gid="booleans",
        )
    for ax in rest:
        ax.axis("off")
    fig.suptitle(
        f"{result.sample_id} - {result.template_name} v{result.template_version}", fontsize=9
    )
    return _for_notebook(fig)


# ---------------------------------------------------------------------------------------------
# files for the batch and the report
# ---------------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """A file-name-safe version of a sample id or gate name (used for plot folders)."""
    s = _UNSAFE.sub("_", str(text)).strip("._") or "x"
    return s[:120]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, fsync=False)


def save_sample_plots(
    result,
    out_dir: str | os.PathLike,
    *,
    folder: str | None = None,
    compensation=None,
    bins: int = 96,
    panel_size: tuple[float, float] = (2.9, 2.7),
    dpi: int = 80,
) -> list[Path]:
    """Write one small PNG per gate of a sample (for the HTML report), plus a ``plots.json`` index.

    Called by the batch runner in each worker (so events need not be stored): files go to
    ``out_dir/<sample>/<NN>_<gate>.png`` where ``out_dir`` is the run's plot folder
    (``RESULTS/plots``) and ``<sample>`` is :func:`safe_name` of the sample id. Writes are atomic;
    re-running overwrites.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` that keeps its sample.
    out_dir
        The run's plot folder.
    folder
        Name of the sample's sub-folder (the batch passes its ``safe_id``); default
        :func:`safe_name` of the sample id. The report finds plots through ``plots.json``, so any
        unique name works.
    compensation
        The compensation override given to :func:`cytophen.gate`, if any.
    bins, panel_size, dpi
        Density bins per axis, panel size in inches and resolution (small on purpose: 500
        samples x 10 gates must stay light).

    Returns
    -------
    list of pathlib.Path
        The PNG files written, then ``plots.json``.
    """
    import io

    out = Path(out_dir) / (folder or safe_name(result.sample_id))
    panels, booleans = gate_panels(result)
    ctx = _context(result, compensation) if panels else None
    written: list[Path] = []
    index = []
    for i, p in enumerate(panels):
        fig = Figure(figsize=panel_size, dpi=dpi)
        fig.subplots_adjust(left=0.24, bottom=0.19, right=0.96, top=0.9)
        ax = fig.add_subplot()
        problem = _safe_panel(ax, result, ctx, p, highlight=None, bins=bins, minor_ticks=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        fname = f"{i:02d}_{safe_name(p.key)}.png"
        _atomic_write_bytes(out / fname, buf.getvalue())
        written.append(out / fname)
        index.append(
            {
                "gate": p.key,
                "populations": p.populations,
                "parent": p.parent,
                "file": fname,
                "kind": p.kind,
                "data_driven": p.data_driven,
                "fell_back": p.fell_back,
                "reason": p.reason,
                "percent_of_parent": {q: _percent(result, q) for q in p.populations},
                "error": problem,
            }
        )
    meta = {
        "sample": result.sample_id,
        "file": result.file,
        "template": result.template_name,
        "template_version": result.template_version,
        "template_hash": result.template_hash,
        "plots": index,
        "booleans": [{"population": n, "expression": e} for n, e in booleans],
    }
    _atomic_write_bytes(out / "plots.json", json.dumps(meta, indent=1, default=str).encode())
    written.append(out / "plots.json")
    return written
