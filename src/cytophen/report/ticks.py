"""Axes of gating plots: tick labels in data units on transformed scales, and ranges from the data.

- :func:`axis_ticks`: tick positions (on the transformed scale) and labels in data units: decades
  (``0``, ``10^2``, ``10^3`` ... and negative decades) on logicle / log-like axes, ``50K`` style on
  linear ones.
- :class:`DataTicks`: the same as a matplotlib locator evaluated when the figure is drawn, so the
  labels kept never overlap at the axis' real size (a thumbnail keeps fewer decades than a
  full-size plot).
- :func:`view_limits`: an axis range that follows the parent's events; a gate may widen it a
  little, never stretch it (a polygon whose vertices reach far beyond the data is clipped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import Formatter, Locator, MaxNLocator

__all__ = ["axis_ticks", "view_limits", "set_data_ticks", "DataTicks"]

_LINEAR_KINDS = {"identity", "linear", "lin", "flin", "scale", "none"}
#: Estimated extent of a tick label, in multiples of its font size: width of the widest decade
#: label (``-10^4``) on x axes, height of a label with a superscript on y axes, plus a gap.
_LABEL_WIDTH = 3.4
_LABEL_HEIGHT = 1.9


def apply(transform, x) -> np.ndarray:
    """``transform.apply(x)`` as float64 of ``x``'s shape (``None``: identity)."""
    x = np.asarray(x, dtype=np.float64)
    if transform is None:
        return x
    with np.errstate(all="ignore"):
        return np.asarray(transform.apply(np.atleast_1d(x)), dtype=np.float64).reshape(x.shape)


def inverse(transform, y) -> np.ndarray:
    """``transform.inverse(y)`` as float64 of ``y``'s shape (``None``: identity)."""
    y = np.asarray(y, dtype=np.float64)
    if transform is None:
        return y
    with np.errstate(all="ignore"):
        return np.asarray(transform.inverse(np.atleast_1d(y)), dtype=np.float64).reshape(y.shape)


def is_linear(transform) -> bool:
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
    transform, lo: float, hi: float, *, min_separation: float = 0.1, max_labels: int = 6
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
        Labelled ticks closer than this fraction of the axis to an already kept tick (``0`` first,
        then the largest decades) become unlabelled minor ticks, so the decades that crowd the
        linear region of a logicle axis never overlap.
    max_labels
        At most this many labels on a linear axis.

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
        return np.array([lo]), [_linear_label(float(inverse(transform, lo)), 1.0)], np.array([])
    if not is_linear(transform):
        out = _decade_ticks(transform, lo, hi, min_separation)
        if out is not None:
            return out
    dlo, dhi = (float(v) for v in inverse(transform, [lo, hi]))
    if not (np.isfinite(dlo) and np.isfinite(dhi)) or dhi <= dlo:
        dlo, dhi = lo, hi
        transform = None
    nbins = max(1, min(int(max_labels) - 1, int(1.0 / max(min_separation, 1e-3))))
    values = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(dlo, dhi)
    pos = apply(transform, values)
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
    dlo, dhi = (float(v) for v in inverse(transform, [lo, hi]))
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
        p = float(apply(transform, v))
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
    extra = apply(transform, np.array(mags + [-m for m in mags]))
    extra = extra[np.isfinite(extra) & (extra >= lo) & (extra <= hi)]
    minor_all = _thin(np.unique(np.concatenate([np.array(minor), extra])), 0.012 * span)
    order = np.argsort(kept_p)
    pos = np.array(kept_p)[order]
    labels = [_decade_label(kept_v[i]) for i in order]
    return pos, labels, minor_all


# ---------------------------------------------------------------------------------------------
# ticks computed at draw time, for the axis' real size
# ---------------------------------------------------------------------------------------------
class DataTicks(Locator):
    """Major (or minor) ticks of :func:`axis_ticks` for the axis' size when it is drawn.

    The separation between labels is the label's extent (its font size times an estimate of the
    widest decade label on x, of a superscripted label's height on y) over the axis length, so a
    small thumbnail keeps fewer labels than a full-size plot and labels never overlap.
    """

    def __init__(self, transform, *, minor: bool = False, fontsize: float = 7.0):
        self.transform = transform
        self.minor = minor
        self.fontsize = float(fontsize)
        self.labels: dict[float, str] = {}

    def _separation(self) -> float:
        axis = self.axis
        if axis is None or axis.axes is None:
            return 0.1
        box = axis.axes.bbox
        is_x = axis.axis_name == "x"
        length_px = box.width if is_x else box.height
        dpi = axis.axes.figure.dpi if axis.axes.figure is not None else 100.0
        if not np.isfinite(length_px) or length_px <= 1:
            return 0.1
        extent_pt = self.fontsize * (_LABEL_WIDTH if is_x else _LABEL_HEIGHT)
        return float(min(0.5, max(0.04, extent_pt * dpi / 72.0 / length_px)))

    def tick_values(self, vmin, vmax):
        pos, labels, minor = axis_ticks(
            self.transform, vmin, vmax, min_separation=self._separation()
        )
        self.labels = {float(p): lab for p, lab in zip(pos, labels)}
        return minor if self.minor else pos

    def __call__(self):
        vmin, vmax = self.axis.get_view_interval()
        return self.tick_values(vmin, vmax)


class _DataTickLabels(Formatter):
    """Labels of the positions a :class:`DataTicks` chose."""

    def __init__(self, locator: DataTicks):
        self.locator = locator

    def __call__(self, x, pos=None):
        labels = self.locator.labels
        if not labels:
            return ""
        near = min(labels, key=lambda p: abs(p - x))
        return labels[near] if abs(near - x) <= 1e-9 * max(1.0, abs(x)) else ""


def set_data_ticks(axis, transform, *, minor_ticks: bool = True, fontsize: float = 7.0) -> None:
    """Put data-unit ticks (:class:`DataTicks`) on a matplotlib axis (``ax.xaxis``/``ax.yaxis``)."""
    major = DataTicks(transform, fontsize=fontsize)
    axis.set_major_locator(major)
    axis.set_major_formatter(_DataTickLabels(major))
    if minor_ticks and not is_linear(transform):
        axis.set_minor_locator(DataTicks(transform, minor=True, fontsize=fontsize))
    else:
        axis.set_minor_locator(_NoTicks())
    axis.set_tick_params(labelsize=fontsize)


class _NoTicks(Locator):
    def __call__(self):
        return []

    def tick_values(self, vmin, vmax):
        return []


# ---------------------------------------------------------------------------------------------
# axis range
# ---------------------------------------------------------------------------------------------
def _top_of(transform) -> float | None:
    """The top of a transform's scale (its ``T``) on the transformed axis, if it has one."""
    if transform is None:
        return None
    try:
        d = transform.to_dict()
    except Exception:  # noqa: BLE001 - a transform without to_dict simply has no known top
        return None
    for key in ("T", "t", "top"):
        if key in d:
            try:
                top = float(apply(transform, float(d[key])))
            except (TypeError, ValueError):
                return None
            return top if np.isfinite(top) else None
    return None


#: A gate's vertices may widen the data's range by at most this fraction of it on each side;
#: beyond that the gate is clipped (the drawing follows the data, not the gate's far vertices).
GATE_REACH = 0.3
#: A cut (a side of a rectangle or quadrant) is shown up to this many times the data's range
#: beyond it: where a cut sits, even above every event, is what a reviewer must see.
CUT_REACH = 2.0


def view_limits(
    values: np.ndarray, transform, gate_coords: Sequence[float] = (), cuts: Sequence[float] = ()
) -> tuple[float, float]:
    """Axis range on the transformed scale, from the parent's events.

    The range spans the events (0.1 to 99.9 percentiles, all of them when there are few; events
    more than half the 5-95 % range beyond it are left out of view), from
    zero on a linear axis whose events are all positive and start near it (scatter), padded by
    5 %, and never beyond the transform's top of scale by more than the padding. Gate vertices
    (``gate_coords``) within :data:`GATE_REACH` of that range widen it so the gate is in view;
    vertices further out do not (the gate is clipped). Cuts widen it up to :data:`CUT_REACH`.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    top = _top_of(transform)
    zero = float(apply(transform, 0.0))
    if not v.size:
        if top is not None and np.isfinite(zero) and top > zero:
            lo, hi = (zero if is_linear(transform) else zero - 0.1 * (top - zero)), top
        else:
            lo, hi = 0.0, 1.0
    else:
        if v.size >= 1000:
            # the 0.1-99.9 % range, but events far off the body of the data (junk at -7e6 on
            # 1.6 % of a real file's scatter events) do not stretch the axis more than half the
            # 5-95 % range beyond it (for normal data the 0.1-99.9 % range lies within that)
            p = np.percentile(v, [0.1, 5.0, 95.0, 99.9])
            body = p[2] - p[1]
            lo = float(max(p[0], p[1] - 0.5 * body))
            hi = float(min(p[3], p[2] + 0.5 * body))
        else:
            lo, hi = float(v.min()), float(v.max())
        if is_linear(transform) and np.isfinite(zero) and v.min() >= zero and hi > zero:
            if lo - zero < 0.35 * (hi - zero):
                lo = zero
    span = hi - lo
    if span <= 0:
        scale = (top - zero) if top is not None and np.isfinite(zero) and top > zero else 0.0
        span = 0.1 * scale if scale > 0 else max(abs(hi) * 0.2, 1.0)
        lo, hi = lo - span / 2, hi + span / 2
    pad = 0.05 * span
    lo, hi = lo - pad, hi + pad
    if top is not None and hi > top + pad:
        hi = top + pad
    dlo, dhi = lo, hi
    for coords, reach in ((gate_coords, GATE_REACH * span), (cuts, CUT_REACH * span)):
        for c in coords:
            c = float(c)
            if not np.isfinite(c):
                continue
            if dlo - reach <= c < lo:
                lo = c - 0.03 * span
            elif hi < c <= dhi + reach:
                hi = c + 0.03 * span
    # a cut near or beyond an end of the view leaves room for the label of the region past it
    room = 0.14 * (hi - lo)
    for c in cuts:
        c = float(c)
        if np.isfinite(c) and dlo - CUT_REACH * span <= c < lo + room:
            lo = min(lo, c - room)
        if np.isfinite(c) and hi - room < c <= dhi + CUT_REACH * span:
            hi = max(hi, c + room)
    return lo, hi
