"""1-D cuts at a valley of the density: mindensity, valley, spread; and what the 1-D cut methods
share (constraints, the fitting range). Cuts set from a peak's shape are in :mod:`._peak_cuts`."""

from __future__ import annotations

from numbers import Real
from typing import Literal, get_args

import numpy as np

from cytophen.datadriven._base import CutEstimator, FitDeclined
from cytophen.datadriven._constraints import Interval, Options, Rule, Sequence
from cytophen.datadriven._kde import density, find_peaks, find_valleys

__all__ = ["MinDensity", "Valley", "Spread", "spread_cut"]


#: Shared constraints: a number, a bandwidth multiplier, the fit-only range.
NUMBER = [Interval(Real, None, None)]
POSITIVE = [Interval(Real, 0, None, closed="neither")]
FIT_RANGE = {"min": [*NUMBER, None], "max": [*NUMBER, None]}
MIN_BELOW_MAX = Rule(
    ("min", "max"), lambda lo, hi: lo is None or hi is None or lo < hi, "min must be below max"
)


def _truncate(name: str, x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """openCyto's ``min``/``max``: drop events outside ``[lo, hi]`` for fitting only."""
    if lo is not None:
        x = x[x >= lo]
    if hi is not None:
        x = x[x <= hi]
    if x.size < 2:
        raise FitDeclined(name, f"fewer than 2 events within the fitting range min={lo}, max={hi}")
    return x


def _significant_peaks(y: np.ndarray, peaks: np.ndarray, min_depth: float) -> np.ndarray:
    """The peaks (order kept) whose prominence is at least ``min_depth`` x their height."""
    if min_depth <= 0 or peaks.size < 2:
        return peaks
    from scipy.signal import peak_prominences

    prom = peak_prominences(y, peaks)[0]
    return peaks[prom >= min_depth * y[peaks]]


def _heavy_peaks(grid: np.ndarray, y: np.ndarray, peaks: np.ndarray, min_mass: float) -> np.ndarray:
    """The peaks (order kept) whose basin holds at least ``min_mass`` of the density's mass; a
    basin runs between the lowest points separating a peak from its neighbouring peaks."""
    if min_mass <= 0 or peaks.size < 2:
        return peaks
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(grid))])
    total = cum[-1] if cum[-1] > 0 else 1.0
    order = np.sort(peaks)
    cuts = [0]
    for a, b in zip(order[:-1], order[1:]):
        cuts.append(int(a + np.argmin(y[a : b + 1])))
    cuts.append(y.size - 1)
    mass = {int(p): (cum[cuts[i + 1]] - cum[cuts[i]]) / total for i, p in enumerate(order)}
    keep = [p for p in peaks if mass[int(p)] >= min_mass]
    return np.asarray(keep, dtype=peaks.dtype) if keep else peaks[:1]


def _deep_valleys(y: np.ndarray, valleys: np.ndarray, min_depth: float) -> np.ndarray:
    """The valleys (order kept) at least ``min_depth`` (relative) below the highest density on
    each side."""
    if min_depth <= 0 or valleys.size == 0:
        return valleys
    left = np.maximum.accumulate(y)
    right = np.maximum.accumulate(y[::-1])[::-1]
    return valleys[y[valleys] <= (1.0 - min_depth) * np.minimum(left[valleys], right[valleys])]


def drop_edge_piles(x: np.ndarray) -> np.ndarray:
    """``x`` without the pile-ups at its minimum and maximum (saturated or clipped events: at
    least 3 and 0.1 % of the events sharing the extreme value exactly); they are no population,
    but a KDE makes a peak of them."""
    for edge in (x.max(), x.min()) if x.size else ():
        at = x == edge
        n = int(at.sum())
        if n >= 3 and n >= 0.001 * x.size and n < x.size:
            x = x[~at]
    return x


#: What a 1-D valley method does without a valley (``unimodal``; see :class:`MinDensity`).
Unimodal = Literal[
    "upper_tail", "lower_tail", "range_low", "range_high", "upper_spread", "lower_spread",
    "skew_spread",
]  # fmt: skip


def spread_cut(
    x: np.ndarray, k: float, tail: str, *, adjust: float = 1.0, peak: float | None = None
) -> tuple[float, float, float]:
    """Cut ``k`` robust standard deviations beyond a population's mode.

    The population is the highest KDE peak (or the one at ``peak``); its spread is measured on
    the half away from ``tail`` only (``'right'``: the values below the mode), where other
    populations do not reach: ``sd = median(|x - mode|) / 0.6745`` over that half (a half-normal's
    median is 0.6745 sd). Returns ``(cut, mode, sd)``; ``tail='right'`` gives ``mode + k sd``,
    ``'left'`` gives ``mode - k sd``.
    """
    if peak is None:
        grid, y, _ = density(x, adjust=adjust)
        peak = float(grid[int(np.argmax(y))])
    half = peak - x[x < peak] if tail == "right" else x[x > peak] - peak
    if half.size < 2:
        half = np.abs(x - peak)
    sd = float(np.median(half)) / 0.6745
    if not sd > 0:
        sd = float(np.std(x)) or 1e-9
    return (peak + k * sd if tail == "right" else peak - k * sd), float(peak), sd


def _wider_side(x: np.ndarray, peak: float, ratio: float = 2.0) -> str:
    """``'lower_spread'`` when the half of ``x`` below ``peak`` is at least ``ratio`` times as
    wide as the half above it (robust SDs), else ``'upper_spread'``."""
    below, above = peak - x[x < peak], x[x > peak] - peak
    if below.size < 2 or above.size < 2:
        return "upper_spread"
    return "lower_spread" if np.median(below) >= ratio * np.median(above) else "upper_spread"


class Spread(CutEstimator):
    """A cut ``k`` robust SDs beyond the main population: "positive = brighter than (nearly) all
    of the negative cells".

    For a marker whose positive cells are a shoulder or a tail of a large negative population
    (FoxP3 in CD4 T cells, CD11c in B cells, CD38hi), where a density valley may not exist.
    The main population is the highest KDE peak; its spread comes from its other side, which the
    positive cells do not reach (see :func:`spread_cut`).

    Parameters
    ----------
    k
        How many robust SDs beyond the mode (3: about 1 in 700 events of a normal negative
        population passes).
    tail
        ``'right'``: the positive cells are brighter than the main population (cut = mode + k sd;
        the gate's ``'+'`` side is the tail); ``'left'``: dimmer (cut = mode - k sd, e.g. "CD127lo"
        below a CD127+ majority).
    adjust
        Bandwidth multiplier of the KDE that finds the mode.
    min, max
        Drop events outside ``[min, max]`` before fitting.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "spread"
    _parameter_constraints = {
        "k": POSITIVE,
        "tail": [Options("right", "left")],
        "adjust": POSITIVE,
        **FIT_RANGE,
    }
    _parameter_rules = (MIN_BELOW_MAX,)

    def __init__(
        self,
        k: float = 3.0,
        tail: Literal["right", "left"] = "right",
        adjust: float = 1.0,
        min: float | None = None,
        max: float | None = None,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.k = k
        self.tail = tail
        self.adjust = adjust
        self.min = min
        self.max = max

    def fit(self, X) -> Spread:
        self._start()
        x = _truncate(self.name, self._as_matrix(X)[:, 0], self.min, self.max)
        cut, mode, sd = spread_cut(x, float(self.k), self.tail, adjust=self.adjust)
        self.mode_ = mode
        self.sd_ = sd
        self.threshold_ = float(cut)
        return self


class MinDensity(CutEstimator):
    """openCyto's ``mindensity``: the deepest KDE valley between the two highest peaks.

    Parameters
    ----------
    gate_range
        ``[lo, hi]``: only valleys with ``lo <= v < hi`` are candidates (default: the data range).
    adjust
        Bandwidth multiplier of the R-compatible KDE (openCyto's default 2).
    min, max
        Drop events outside ``[min, max]`` before fitting (the gate still applies to all events).
    unimodal
        What to do when there are fewer than two peaks or no valley in ``gate_range`` (the fit is
        flagged ``fell_back_`` either way): ``'upper_tail'`` (default) cuts where the density right
        of the highest peak falls below ``tail_tol`` × its height (the peak is the negative
        population); ``'lower_tail'`` mirrors that (the peak is the positive population);
        ``'range_low'`` / ``'range_high'`` are openCyto's fallbacks (the low / high end of
        ``gate_range``); ``'upper_spread'`` cuts ``spread`` robust SDs above the highest peak
        (the peak is the negative population, see :class:`Spread`) and ``'lower_spread'`` the
        same below it (the peak is the positive population, e.g. IgD+ among B cells);
        ``'skew_spread'`` lets the data say which: the cells that form no peak of their own widen
        the peak on their side, so when one half of the peak is at least twice as wide as the
        other (robust SDs of each half) the cut is ``spread`` SDs of the narrow half beyond the
        peak on the wide side, and otherwise ``'upper_spread'``. The cut is clipped into
        ``gate_range`` when one is given.
    tail_tol
        Relative density level used by the tail fallbacks.
    spread
        Robust SDs used by the spread fallbacks.
    min_depth
        KDE ripples are not peaks and valleys: a peak counts only if its prominence (how far it
        rises above the higher of the two minima that separate it from higher ground, as
        :func:`scipy.signal.peak_prominences`) is at least ``min_depth`` times its height, and a
        valley only if it lies at least ``min_depth`` (relative) below the highest density on
        each side of it. A flat-topped cloud can show two ripple peaks a fraction of a percent
        apart; openCyto (``min_depth: 0``) then cuts at the ripple inside the cloud (seen on a
        simulated IgD+ CD27 distribution: a 1 %-deep ripple in the naive cloud was chosen over the
        real valley, and 340 naive cells were called memory). Default 0.02: on small parents
        real boundaries can be shallow (CD19 of 200 CD3- events: a 4 %-deep dip between the B
        and non-B clouds at the default bandwidth), so the threshold stays well below that.
    valley
        Which valley is the cut when there are several: ``'between_highest'`` (openCyto's rule:
        the deepest valley between the two highest peaks) or ``'prominent'``: the valley that
        separates the most: the largest drop from the lower of the highest densities on its
        two sides. Two ripple peaks on the flat top of one cloud are the two highest peaks, and
        the shallow dip between them is openCyto's cut; the valley between that cloud and the
        next is far more prominent. With ``'prominent'``, ``'upper'`` and ``'lower'`` the
        candidates are only the lowest points between two kept peaks (a wiggle in the sparse tail
        of a cloud is no boundary). ``'upper'`` / ``'lower'``: of the valleys at least half as
        prominent as the most prominent one, the highest / lowest (a small dim population between
        the negative and the bright positive cloud is then left out / taken in).
    negative_edge
        When set (``k``), the cut is never above the negative population's ``k``-SD edge: the
        lower of the two peaks beside the valley plus ``k`` robust SDs of its own lower half
        (:func:`spread_cut`). Dim positive cells (CD19-dim plasmablasts among CD19+ B cells) sit
        in the valley between a dim negative and a bright positive cloud.
    edge_piles
        Leave out of the fit the events piled up at the data's maximum or minimum (saturated or
        clipped values: a peak of the KDE, no population).
    min_mass
        A peak counts only if its basin (from the valley on its left to the valley on its right)
        holds at least this fraction of the events: a handful of outliers off the side of one
        cloud makes a prominent but tiny peak, and a valley next to it is no boundary between
        populations. Default 0 (openCyto's rule: any peak).
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "mindensity"
    _parameter_constraints = {
        "gate_range": [
            Sequence(NUMBER, 2, (lambda v: v[0] < v[1], "the first below the second")),
            None,
        ],
        "adjust": POSITIVE,
        **FIT_RANGE,
        "unimodal": [Options(*get_args(Unimodal))],
        "tail_tol": [Interval(Real, 0, 1, closed="neither")],
        "min_depth": [Interval(Real, 0, 1, closed="left")],
        "spread": POSITIVE,
        "min_mass": [Interval(Real, 0, 0.5, closed="left")],
        "valley": [Options("between_highest", "prominent", "upper", "lower")],
        "negative_edge": [*POSITIVE, None],
        "edge_piles": ["boolean"],
    }
    _parameter_rules = (MIN_BELOW_MAX,)

    def __init__(
        self,
        gate_range: list[float] | None = None,
        adjust: float = 2.0,
        min: float | None = None,
        max: float | None = None,
        unimodal: Unimodal = "upper_tail",
        tail_tol: float = 0.01,
        min_depth: float = 0.02,
        spread: float = 3.0,
        min_mass: float = 0.0,
        valley: Literal["between_highest", "prominent", "upper", "lower"] = "between_highest",
        negative_edge: float | None = None,
        edge_piles: bool = False,
        min_events: int | None = None,
    ):
        self.edge_piles = edge_piles
        self.min_events = min_events
        self.spread = spread
        self.min_mass = min_mass
        self.valley = valley
        self.negative_edge = negative_edge
        self.min_depth = min_depth
        self.gate_range = gate_range
        self.adjust = adjust
        self.min = min
        self.max = max
        self.unimodal = unimodal
        self.tail_tol = tail_tol

    def fit(self, X) -> MinDensity:
        self._start()
        x = _truncate(self.name, self._as_matrix(X)[:, 0], self.min, self.max)
        if self.edge_piles:
            x = drop_edge_piles(x)
        grid, y, bw = density(x, adjust=self.adjust)
        xmin, xmax = float(x.min()), float(x.max())
        if self.gate_range is not None:
            lo, hi = (float(v) for v in self.gate_range)
        else:
            lo, hi = xmin, xmax
        peaks = _significant_peaks(y, find_peaks(grid, y, xmin, xmax), self.min_depth)
        peaks = _heavy_peaks(grid, y, peaks, float(self.min_mass))
        self.bandwidth_ = bw
        self.peaks_ = grid[peaks]
        self.gate_range_ = [lo, hi]
        if peaks.size < 2:
            self.threshold_ = self._fallback(
                grid, y, peaks, lo, hi, f"{peaks.size} density peak(s)", x
            )
            return self
        if self.valley == "between_highest":  # openCyto: every valley of the density
            valleys = _deep_valleys(y, find_valleys(grid, y, lo, hi), self.min_depth)
        else:  # only the valleys that separate two kept peaks: the lowest point between them
            order = np.sort(peaks)
            low = [int(a + np.argmin(y[a : b + 1])) for a, b in zip(order[:-1], order[1:])]
            valleys = np.array([v for v in low if lo <= grid[v] < hi], dtype=np.int64)
            valleys = _deep_valleys(y, valleys, self.min_depth)
        if valleys.size == 0:
            self.threshold_ = self._fallback(
                grid, y, peaks, lo, hi, "no density valley within gate_range", x
            )
        else:
            v = self._choose(grid, y, peaks, valleys)
            cut = float(grid[v])
            if self.negative_edge is not None:
                left = peaks[peaks < v]
                if left.size:
                    neg = int(left[np.argmax(y[left])])
                    edge = spread_cut(x, float(self.negative_edge), "right", peak=float(grid[neg]))
                    self.negative_edge_ = float(edge[0])
                    cut = min(cut, self.negative_edge_)
            self.threshold_ = cut
        return self

    def _choose(self, grid, y, peaks, valleys) -> int:
        if valleys.size == 1:
            return int(valleys[0])
        if self.valley in ("prominent", "upper", "lower"):
            left = np.maximum.accumulate(y)
            right = np.maximum.accumulate(y[::-1])[::-1]
            drop = np.minimum(left[valleys], right[valleys]) - y[valleys]
            if self.valley == "prominent":
                return int(valleys[np.argmax(drop)])
            strong = valleys[drop >= 0.5 * drop.max()]
            return int(strong.max() if self.valley == "upper" else strong.min())
        p1, p2 = sorted(grid[peaks[:2]])
        between = [v for v in valleys if p1 <= grid[v] < p2]
        return int(between[0] if between else valleys[0])

    def _fallback(self, grid, y, peaks, lo, hi, why: str, x: np.ndarray) -> float:
        mode = self.unimodal
        if mode == "range_low":
            cut = lo
        elif mode == "range_high":
            cut = hi
        elif mode in ("upper_tail", "lower_tail"):
            top = int(peaks[0]) if peaks.size else int(np.argmax(y))
            level = self.tail_tol * y[top]
            if mode == "upper_tail":
                idx = np.flatnonzero((np.arange(y.size) > top) & (y < level))
                cut = float(grid[idx[0]] if idx.size else grid[-1])
            else:
                idx = np.flatnonzero((np.arange(y.size) < top) & (y < level))
                cut = float(grid[idx[-1]] if idx.size else grid[0])
            if self.gate_range is not None:
                cut = float(np.clip(cut, lo, hi))
        else:  # upper_spread, lower_spread, skew_spread
            top = int(peaks[0]) if peaks.size else int(np.argmax(y))
            if mode == "skew_spread":
                mode = _wider_side(x, float(grid[top]))
            tail = "right" if mode == "upper_spread" else "left"
            cut = spread_cut(x, float(self.spread), tail, peak=float(grid[top]))[0]
            if self.gate_range is not None:
                cut = float(np.clip(cut, lo, hi))
        self._fall_back(f"{why}: cut placed by the {mode!r} rule at {cut:.4g}")
        return cut


class Valley(MinDensity):
    """cytophen's valley cut: :class:`MinDensity` with defaults chosen for real files.

    The most prominent density valley (not openCyto's deepest valley between the two highest
    peaks, which a ripple on a flat-topped cloud wins), peaks that hold at least 1 % of the events,
    the R bandwidth unscaled (``adjust`` 1: openCyto's 2 merges a small population into the big
    one's flank), saturated or clipped events piled up at the data's edges left out of the fit,
    and without a valley the ``spread`` rule from the one peak: ``upper_spread``
    when that peak is the negative population (the default), ``lower_spread`` when it is the
    positive one (IgD among B cells). Parameters as :class:`MinDensity`.
    """

    name = "valley"

    def __init__(
        self,
        gate_range: list[float] | None = None,
        adjust: float = 1.0,
        min: float | None = None,
        max: float | None = None,
        unimodal: Unimodal = "upper_spread",
        tail_tol: float = 0.01,
        min_depth: float = 0.02,
        spread: float = 3.0,
        min_mass: float = 0.01,
        valley: Literal["between_highest", "prominent", "upper", "lower"] = "prominent",
        negative_edge: float | None = None,
        edge_piles: bool = True,
        min_events: int | None = None,
    ):
        super().__init__(
            gate_range=gate_range,
            adjust=adjust,
            min=min,
            max=max,
            unimodal=unimodal,
            tail_tol=tail_tol,
            min_depth=min_depth,
            spread=spread,
            min_mass=min_mass,
            valley=valley,
            negative_edge=negative_edge,
            edge_piles=edge_piles,
            min_events=min_events,
        )
