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

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.transforms import blended_transform_factory

from cytophen.report.labels import label_text, place_1d, place_2d
from cytophen.report.regions import (
    FALLBACK_COLOUR,
    GATE_COLOUR,
    HIGHLIGHT_COLOUR,
    Drawn,
    Region,
    bin_index,
    coords,
    counts_2d,
    ellipse_parameters,
    ellipsoid_slice,
    finite,
    make_drawn,
    rect_bounds,
    regions_of,
    unbounded_in_view,
    visible_pieces,
)
from cytophen.report.ticks import set_data_ticks, view_limits

__all__ = ["Region", "plot_gate", "draw_regions", "ellipse_parameters", "regions_of"]

_CMAP = colormaps["jet"].with_extremes(bad="white")


# ---------------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------------
def _density(ax, x, y, xlim, ylim, bins: int):
    counts = counts_2d(x, y, xlim, ylim, int(bins))
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
    counts = np.bincount(bin_index(x, xlim, nb), minlength=nb) if x.size else np.zeros(nb, int)
    ax.stairs(counts, edges, fill=True, color="#9ecae1", gid="histogram", zorder=1)
    ax.stairs(counts, edges, color="#3182bd", linewidth=0.8, zorder=1)
    top = float(counts.max()) if counts.size and counts.max() > 0 else 1.0
    ax.set_ylim(0, top * 1.5)  # head room for the gate bars and labels
    return top


# ---------------------------------------------------------------------------------------------
# gates
# ---------------------------------------------------------------------------------------------
def _draw_rect_edges(ax, shape, xlim, ylim, colour, ls) -> None:
    """The closed sides of a rectangle (an open side has no edge), each spanning the rectangle."""
    x0, x1, y0, y1 = rect_bounds(shape, xlim, ylim)
    mins, maxs = shape["min"], shape["max"]
    for xv in (finite(mins[0]), finite(maxs[0])):
        if xv is not None:
            ax.plot([xv, xv], [y0, y1], color=colour, ls=ls, lw=1.2, gid="gate-edge", zorder=4)
    for yv in (finite(mins[1]), finite(maxs[1])):
        if yv is not None:
            ax.plot([x0, x1], [yv, yv], color=colour, ls=ls, lw=1.2, gid="gate-edge", zorder=4)


def _draw_outline(ax, d: Drawn, naxes: int, xlim, ylim, values, dims) -> None:
    """A region's visible outline (drawn once per shape)."""
    r = d.region
    colour = FALLBACK_COLOUR if r.fell_back else GATE_COLOUR
    ls = "--" if r.fell_back else "-"
    kind = r.shape.get("kind")
    if naxes == 1:
        for v in (finite(r.shape["min"][0]), finite(r.shape["max"][0])):
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


def _region_patch(ax, d: Drawn, naxes: int) -> None:
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
            for lo, hi in visible_pieces(d, ax.get_xlim()):
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
                coords(r.shape, i)
            make_drawn(r, naxes, (0.0, 1.0), (0.0, 1.0), values)
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
        vertices, cuts = [], []
        for r in regions:
            if r.shape.get("kind") == "ellipsoid" and naxes == 2:
                s = ellipsoid_slice(r.shape, values)
                if s is None or unbounded_in_view(s, *data_lims):
                    continue
            (cuts if r.shape.get("kind") == "rectangle" else vertices).extend(coords(r.shape, i))
        lims.append(
            tuple(given)
            if given is not None
            else view_limits(values[:, i], transforms[i], vertices, cuts)
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
    drawn = [make_drawn(r, naxes, xlim, ylim, values) for r in regions]
    outlined: set[str] = set()
    for dr in drawn:
        key = repr(sorted(dr.region.shape.items(), key=lambda kv: kv[0]))
        if key not in outlined:
            outlined.add(key)
            _draw_outline(ax, dr, naxes, xlim, ylim, values, dims)
        _region_patch(ax, dr, naxes)
    order = sorted(drawn, key=lambda dr: not dr.region.highlight)  # the asked-for label first
    avoid_bottom = bool(note) or (
        bool(reason) and show_reason and any(r.fell_back for r in regions)
    )

    def place() -> None:
        try:
            if naxes == 1:
                place_1d(ax, order, xlim, fontsize)
            else:
                place_2d(ax, order, values, xlim, ylim, fontsize, avoid_bottom=avoid_bottom)
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


def for_notebook(fig: Figure) -> Figure:
    """Let a pyplot-free Figure show itself in a notebook (``_repr_png_``) even when no matplotlib
    backend integration is active; with the inline backend its own formatter is used instead."""

    def _repr_png_() -> bytes:
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    fig._repr_png_ = _repr_png_
    return fig


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
        fig = for_notebook(Figure(figsize=(3.6, 3.3), dpi=100, layout="constrained"))
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
        text = label_text(Region(name, {}, percent))
        ax.text(0.02, 0.98, text, transform=ax.transAxes, fontsize=7, va="top", gid="gate-label")
    return ax
