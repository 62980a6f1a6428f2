"""Gate labels: each population's name and percent, inside its region.

On a 2-D view a label goes where it fits whole inside its region, on no other label, over the
fewest events (on two lines or one, at the plot's font size, then smaller); failing that, in view
centred in its region; failing that, at the point deepest inside it. On a histogram labels sit
above the bars, centred on the visible part of their region under a bar showing that part.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.transforms import blended_transform_factory

from cytophen.report.regions import (
    FALLBACK_COLOUR,
    GATE_COLOUR,
    Drawn,
    Region,
    counts_2d,
    visible_pieces,
)

__all__ = ["place_2d", "place_1d", "fmt_pct", "label_text"]

#: Label placement grid: cells per axis.
_GRID = 48


def fmt_pct(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.3g}%" if p < 1 else f"{p:.1f}%"


def label_text(r: Region) -> str:
    if not r.name:
        return fmt_pct(r.percent) if r.percent is not None else ""
    return f"{r.name}\n{fmt_pct(r.percent)}"


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


def place_2d(
    ax, drawn: list[Drawn], values, xlim, ylim, fontsize: float, *, avoid_bottom: bool = False
) -> None:
    """Put each labelled region's label inside it: the box where the label fits whole, overlaps
    no other label and covers the fewest events; failing that, the point deepest inside it."""
    from scipy.ndimage import binary_erosion, distance_transform_edt

    g = _GRID
    gx = xlim[0] + (np.arange(g) + 0.5) / g * (xlim[1] - xlim[0])
    gy = ylim[0] + (np.arange(g) + 0.5) / g * (ylim[1] - ylim[0])
    xx, yy = np.meshgrid(gx, gy)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    dens = counts_2d(values[:, 0], values[:, 1], xlim, ylim, g).astype(float)
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
        two = label_text(r)
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


def place_1d(ax, drawn: list[Drawn], xlim, fontsize: float) -> None:
    """Labels above the histogram, centred on the visible part of each region, with a bar over
    that part; labels whose spans overlap are stacked."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    placed: list[tuple[float, float, float]] = []  # (lo, hi, level)
    for d in drawn:
        r = d.region
        pieces = visible_pieces(d, xlim)
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
            _label(ax, (lo + hi) / 2, level, label_text(r), r, fontsize, transform=trans)


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
