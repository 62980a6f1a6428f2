"""The lymphocyte cloud on forward x side scatter, found from the density of each file."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import chi2

from cytophen.datadriven._base import FitDeclined, GateEstimator
from cytophen.datadriven._constraints import Interval, Options
from cytophen.datadriven._quadrant import BoxEstimator
from cytophen.errors import GateError
from cytophen.gates import Gate, PolygonGate

__all__ = ["ScatterCloud", "CornerCloud", "density_basins", "cloud_polygon", "clouds"]


def _ascent_basins(D: np.ndarray) -> np.ndarray:
    """Each grid cell's basin: the local maximum reached by steepest ascent over the 8
    neighbours (a discrete watershed), as the flat index of that maximum."""
    H, W = D.shape
    idx = np.arange(H * W).reshape(H, W)
    pad = np.pad(D, 1, constant_values=-np.inf)
    padi = np.pad(idx, 1, constant_values=-1)
    best = D.copy()
    ptr = idx.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            nb = pad[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
            ni = padi[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
            up = nb > best
            best = np.where(up, nb, best)
            ptr = np.where(up, ni, ptr)
    p = ptr.ravel()
    while True:  # pointer jumping: every cell points to its peak after log2(path) rounds
        q = p[p]
        if np.array_equal(q, p):
            return p.reshape(H, W)
        p = q


def _merge_shallow(D: np.ndarray, B: np.ndarray, ratio: float) -> np.ndarray:
    """Merge basins separated by a shallow saddle: two basins are one cloud when the highest
    pass between them is at least ``ratio`` x the lower of their two peaks (KDE ripples inside a
    cloud make such basins; a real valley between clouds is deeper)."""
    H, W = D.shape
    lab = B.ravel()
    d = D.ravel()
    idx = np.arange(H * W).reshape(H, W)
    pairs_a, pairs_b, heights = [], [], []
    for s1, s2 in (
        ((slice(None), slice(0, W - 1)), (slice(None), slice(1, W))),
        ((slice(0, H - 1), slice(None)), (slice(1, H), slice(None))),
        ((slice(0, H - 1), slice(0, W - 1)), (slice(1, H), slice(1, W))),
        ((slice(0, H - 1), slice(1, W)), (slice(1, H), slice(0, W - 1))),
    ):
        a, b = idx[s1].ravel(), idx[s2].ravel()
        cross = lab[a] != lab[b]
        a, b = a[cross], b[cross]
        pairs_a.append(np.minimum(lab[a], lab[b]))
        pairs_b.append(np.maximum(lab[a], lab[b]))
        heights.append(np.minimum(d[a], d[b]))
    if not pairs_a or not sum(x.size for x in pairs_a):
        return B
    pa, pb, h = np.concatenate(pairs_a), np.concatenate(pairs_b), np.concatenate(heights)
    key = pa.astype(np.int64) * (H * W) + pb
    order = np.lexsort((-h, key))
    key, pa, pb, h = key[order], pa[order], pb[order], h[order]
    first = np.r_[True, key[1:] != key[:-1]]  # the highest pass of each pair of basins
    pa, pb, h = pa[first], pb[first], h[first]
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for i in np.argsort(-h, kind="stable"):
        ra, rb = root(int(pa[i])), root(int(pb[i]))
        if ra != rb and h[i] >= ratio * min(d[ra], d[rb]):
            hi, lo = (ra, rb) if d[ra] >= d[rb] else (rb, ra)
            parent[lo] = hi
    if not parent:
        return B
    peaks = np.unique(lab)
    mapped = np.array([root(int(p)) for p in peaks])
    return mapped[np.searchsorted(peaks, lab)].reshape(H, W)


def density_basins(
    X: np.ndarray, *, bins: int = 100, merge: float = 0.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A smoothed 2-D histogram of ``X`` cut into density basins.

    The smoothing is half Scott's rule per axis (``0.5 sd n^(-1/6)``), so that it follows the
    number of events; basins separated by a shallow pass are merged (:func:`_merge_shallow`).

    Returns
    -------
    D, B, xedges, yedges
        Density (bins x bins), basin label of each cell (the flat index of its peak), bin edges.
    """
    lo = np.percentile(X, 0.1, axis=0)
    hi = np.percentile(X, 99.9, axis=0)
    hi = np.where(hi > lo, hi, lo + 1e-9)
    Hh, ex, ey = np.histogram2d(X[:, 0], X[:, 1], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    width = np.array([ex[1] - ex[0], ey[1] - ey[0]])
    sigma = 0.5 * X.std(axis=0) * X.shape[0] ** (-1.0 / 6.0) / width
    D = ndi.gaussian_filter(Hh, np.maximum(sigma, 0.5))
    return D, _merge_shallow(D, _ascent_basins(D), merge), ex, ey


def cloud_polygon(Xo, D, B, ex, ey, eb, peak, core, quantile, n_vertices, name):
    """The gate of one density cloud: a Gaussian fitted to its core (density >= ``core`` x its
    peak; the covariance of a Gaussian truncated there corrected to the whole one's), its
    ``quantile`` ellipse cut back to the cloud's basin along rays from the centre.

    Returns ``(vertices, mean, covariance)``."""
    nb = D.shape[0]
    ix = np.clip(((Xo[:, 0] - ex[0]) / (ex[1] - ex[0])).astype(np.int64), 0, nb - 1)
    iy = np.clip(((Xo[:, 1] - ey[0]) / (ey[1] - ey[0])).astype(np.int64), 0, nb - 1)
    height = float(D.ravel()[peak])
    sel = (eb == peak) & (D[ix, iy] >= core * height)
    if sel.sum() < 10:
        raise FitDeclined(name, f"the chosen cloud's core holds only {int(sel.sum())} events")
    mean = Xo[sel].mean(axis=0)
    cov = np.cov(Xo[sel].T)
    # E[r^2] of a 2-D Gaussian truncated where its density is core x peak (r^2 <= c)
    c = -2.0 * np.log(core)
    cov = cov / ((2.0 - c * core / (1.0 - core)) / 2.0)
    try:
        inv = np.linalg.inv(cov)
    except np.linalg.LinAlgError:
        raise FitDeclined(name, "the cloud's core is degenerate") from None
    limit = chi2.ppf(quantile, 2)
    theta = np.linspace(0.0, 2.0 * np.pi, n_vertices, endpoint=False)
    dirs = np.c_[np.cos(theta), np.sin(theta)]
    rmax = np.sqrt(limit / np.einsum("ij,jk,ik->i", dirs, inv, dirs))
    steps = np.linspace(0.0, 1.0, 201)[1:]
    pts = mean + dirs[:, None, :] * rmax[:, None, None] * steps[None, :, None]
    gx = np.floor((pts[..., 0] - ex[0]) / (ex[1] - ex[0])).astype(np.int64)
    gy = np.floor((pts[..., 1] - ey[0]) / (ey[1] - ey[0])).astype(np.int64)
    inside_grid = (gx >= 0) & (gx < nb) & (gy >= 0) & (gy < nb)
    basin = B == peak
    ok = inside_grid & basin[np.clip(gx, 0, nb - 1), np.clip(gy, 0, nb - 1)]
    ok |= ~inside_grid  # beyond the grid (the outer 0.1 %) the ellipse alone decides
    out = ~ok
    first = np.where(out.any(axis=1), out.argmax(axis=1), steps.size)
    r = np.where(first == 0, steps[0], steps[np.maximum(first - 1, 0)]) * rmax
    return mean + dirs * r[:, None], mean, cov


def clouds(X: np.ndarray, bins: int, merge: float):
    """Density basins of ``X`` and, per cloud, its peak position and share of the events:
    ``(D, B, ex, ey, eb, peaks, mass, pxy)`` (``eb``: each event's basin)."""
    D, B, ex, ey = density_basins(X, bins=bins, merge=merge)
    ix = np.clip(((X[:, 0] - ex[0]) / (ex[1] - ex[0])).astype(np.int64), 0, bins - 1)
    iy = np.clip(((X[:, 1] - ey[0]) / (ey[1] - ey[0])).astype(np.int64), 0, bins - 1)
    eb = B[ix, iy]
    peaks, mass = np.unique(eb, return_counts=True)
    cx, cy = 0.5 * (ex[:-1] + ex[1:]), 0.5 * (ey[:-1] + ey[1:])
    pxy = np.c_[cx[peaks // bins], cy[peaks % bins]]
    return D, B, ex, ey, eb, peaks, mass / X.shape[0], pxy


class ScatterCloud(GateEstimator):
    """The lymphocyte cloud on FSC x SSC: the least granular large cloud, to the valleys around it.

    Cells of one type form one cloud on forward x side scatter; lymphocytes are the cloud with the
    lowest side scatter for their size (monocytes and granulocytes are more granular, debris and
    dead cells sit at the bottom of the FSC scale with relatively more SSC). On each file:

    1. a smoothed 2-D density of the on-scale events is cut into basins (discrete watershed), and
       basins separated only by a shallow pass (``merge``) are one cloud;
    2. among clouds holding at least ``min_mass`` of the events and clear of the FSC floor (their
       peak above the floor by at least ``debris`` x the distance from the floor to the peak of
       the heaviest cloud: debris and dead cells sit near the floor, cut by the acquisition
       threshold),
       the one whose peak has the lowest SSC / FSC ratio is taken (``pick='least_granular'``;
       ``'largest'`` takes the heaviest);
    3. a Gaussian is fitted to the cloud's core (the events where the density is at least ``core``
       x its peak; the covariance of a core truncated at that level is corrected to the whole
       Gaussian's), and the gate is its ``quantile`` ellipse, cut back to the cloud's basin so
       that it stops at the density valleys to the neighbouring clouds.

    The gate is a polygon (star-shaped around the cloud's centre, ``n_vertices`` vertices).
    Nothing is an absolute position: it works on any instrument's scatter scale.

    Parameters
    ----------
    quantile
        Probability mass of the fitted Gaussian the ellipse holds (0.995: the whole cloud).
    core
        Density level, relative to the cloud's peak, that defines its core.
    merge
        Basins whose pass is at least this fraction of the lower peak are merged.
    min_mass
        Smallest fraction of the on-scale events a cloud must hold to be chosen.
    debris
        A cloud whose peak is less than this fraction of the way from the FSC floor (the 0.5th
        percentile of the on-scale events) to the heaviest cloud's peak is debris.
    pick
        ``'least_granular'`` (lymphocytes) or ``'largest'``.
    bins
        Grid resolution per axis.
    n_vertices
        Vertices of the polygon.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "scatter_cloud"
    n_dims = 2
    default_min_events = 200
    _parameter_constraints = {
        "quantile": [Interval(Real, 0, 1, closed="neither")],
        "core": [Interval(Real, 0, 1, closed="neither")],
        "merge": [Interval(Real, 0, 1, closed="right")],
        "min_mass": [Interval(Real, 0, 1)],
        "debris": [Interval(Real, 0, 1, closed="left")],
        "pick": [Options("least_granular", "largest")],
        "bins": [Interval(Integral, 2, None)],
        "n_vertices": [Interval(Integral, 3, None)],
    }

    def __init__(
        self,
        quantile: float = 0.999,
        core: float = 0.25,
        merge: float = 0.6,
        min_mass: float = 0.02,
        debris: float = 0.25,
        pick: Literal["least_granular", "largest"] = "least_granular",
        bins: int = 100,
        n_vertices: int = 120,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.quantile = quantile
        self.core = core
        self.merge = merge
        self.min_mass = min_mass
        self.debris = debris
        self.pick = pick
        self.bins = bins
        self.n_vertices = n_vertices

    def fit(self, X) -> ScatterCloud:
        self._start()
        X = self._as_matrix(X)
        on = np.all(X > 0, axis=1) & np.all(X < np.max(X, axis=0), axis=1)  # not saturated
        need = self.required_events()
        Xo = X[on] if on.sum() >= need else X
        if Xo.shape[0] < need:
            raise FitDeclined(self.name, f"only {Xo.shape[0]} on-scale events")
        D, B, ex, ey, eb, peaks, mass, pxy = clouds(Xo, int(self.bins), float(self.merge))
        cand = np.flatnonzero((mass >= self.min_mass) & (pxy[:, 0] > 0))
        if cand.size == 0:
            cand = np.array([int(np.argmax(mass))])
            self._fall_back(f"no cloud holds {self.min_mass:.0%} of the events; took the largest")
        if self.pick == "largest":
            i = int(cand[np.argmax(mass[cand])])
        else:  # least_granular, among the clouds clear of the FSC floor (debris sits on it)
            floor = float(np.percentile(Xo[:, 0], 0.5))
            heaviest = float(pxy[cand[np.argmax(mass[cand])], 0])
            cells = cand[pxy[cand, 0] >= floor + self.debris * (heaviest - floor)]
            if cells.size:
                cand = cells
            ratio = pxy[cand, 1] / np.maximum(pxy[cand, 0], 1e-12)
            i = int(cand[np.argmin(ratio)])
        self.vertices_, self.mean_, self.covariance_ = cloud_polygon(
            Xo,
            D,
            B,
            ex,
            ey,
            eb,
            int(peaks[i]),
            self.core,
            self.quantile,
            int(self.n_vertices),
            self.name,
        )
        self.peak_ = pxy[i]
        self.mass_ = float(mass[i])
        self.clouds_ = int(cand.size)
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        if side not in (None, "+"):
            raise GateError(self.name, f"a scatter cloud has no side {side!r} (it is a region)")
        return PolygonGate(dims, self.vertices_.tolist())


class CornerCloud(BoxEstimator):
    """A cloud in one corner of a 2-D view, to the density valleys around it (activated naive
    B cells: the CD21lo CD11c+ cloud beside the CD21+ CD11c- naive cells).

    The view's smoothed density is cut into clouds as for :class:`ScatterCloud`; the heaviest is
    the main population. The events outside its basin and beyond its peak on both axes in the
    direction of the gate's side (``'-+'``: lower x, higher y) are smoothed again on their own (a
    sparse cloud beside a dense one fragments at the dense one's bandwidth), and their heaviest
    cloud, if it holds at least ``min_mass`` of all events, is the population. Its gate is the
    polygon of :class:`ScatterCloud`: a Gaussian fitted to the cloud's core, its ``quantile``
    ellipse cut back to the cloud's basin. Without such a cloud (the cells form a smear, or none are there)
    the gate is the box of the ``axes`` cuts, as :class:`BoxEstimator` with ``sequential``,
    flagged.

    Parameters
    ----------
    side
        Two signs, the corner (from the template's ``side``).
    axes
        The 1-D method per dimension for the box without a cloud.
    quantile, core, merge, bins, n_vertices
        As :class:`ScatterCloud`.
    min_mass
        Smallest share of the events a cloud must hold.
    """

    name = "corner_cloud"
    n_dims = 2
    _parameter_constraints = {
        "quantile": [Interval(Real, 0, 1, closed="neither")],
        "core": [Interval(Real, 0, 1, closed="neither")],
        "merge": [Interval(Real, 0, 1, closed="right")],
        "min_mass": [Interval(Real, 0, 1)],
        "bins": [Interval(Integral, 2, None)],
        "n_vertices": [Interval(Integral, 3, None)],
    }

    def __init__(
        self,
        side: str | None = None,
        axes: list[dict[str, Any]] | None = None,
        quantile: float = 0.999,
        core: float = 0.25,
        merge: float = 0.6,
        min_mass: float = 0.01,
        bins: int = 100,
        n_vertices: int = 120,
        random_state: int = 0,
        min_events: int | None = None,
    ):
        super().__init__(
            side=side,
            axes=axes,
            sequential=True,
            random_state=random_state,
            too_few="empty",
            min_events=min_events,
        )
        self.quantile = quantile
        self.core = core
        self.merge = merge
        self.min_mass = min_mass
        self.bins = bins
        self.n_vertices = n_vertices

    def fit(self, X) -> CornerCloud:
        self._start()
        X = self._as_matrix(X)
        if not self.side or len(self.side) != 2:
            raise GateError(
                self.name, f"a corner cloud needs a side of two signs, got {self.side!r}"
            )
        sign = np.array([1.0 if c == "+" else -1.0 for c in self.side])
        _, _, _, _, eb, peaks, mass, pxy = clouds(X, int(self.bins), float(self.merge))
        main = int(np.argmax(mass))
        # the events beyond the main cloud's peak in the corner's direction, outside its basin,
        # smoothed on their own (a sparse cloud next to a dense one fragments at the dense
        # one's bandwidth)
        corner = (eb != peaks[main]) & np.all((X - pxy[main]) * sign > 0, axis=1)
        self.polygon_ = None
        need = max(20, int(np.ceil(self.min_mass * X.shape[0])))
        if corner.sum() >= need:
            sub = X[corner]
            D, B, ex, ey, sb, speaks, smass, spxy = clouds(sub, int(self.bins), float(self.merge))
            k = int(np.argmax(smass))
            if smass[k] * sub.shape[0] >= need:
                try:
                    poly, _, _ = cloud_polygon(
                        sub, D, B, ex, ey, sb, int(speaks[k]), self.core, self.quantile,
                        int(self.n_vertices), self.name,
                    )  # fmt: skip
                except FitDeclined:
                    poly = None
                if poly is not None:
                    self.polygon_ = poly
                    self.peak_ = spxy[k]
                    self.mass_ = float(smass[k] * sub.shape[0] / X.shape[0])
                    return self
        reason = "no separate cloud in that corner; box from the axes' cuts"
        super().fit(X)
        self._fall_back(f"{reason}: {self.reason_}" if self.reason_ else reason)
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        if self.polygon_ is not None:
            return PolygonGate(list(dims), self.polygon_.tolist())
        return super().to_gate(dims, side)
