"""1-D cut-point methods: mindensity, tail gate, quantile, peak offset, 1-D mixture."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Literal, get_args

import numpy as np

from cytophen.datadriven._base import SEED, CutEstimator, FitDeclined
from cytophen.datadriven._constraints import Interval, Options, Rule, Sequence
from cytophen.datadriven._kde import density, density_derivative, find_peaks, find_valleys
from cytophen.datadriven._mixture import fit_mixture

__all__ = [
    "MinDensity",
    "TailGate",
    "QuantileGate",
    "PeakOffset",
    "Mixture1D",
    "Spread",
    "spread_cut",
]


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


def _tail_right(
    grid: np.ndarray, df: np.ndarray, ref: float, tol_abs: float, descent_abs: float = 0.0
) -> tuple[float, bool]:
    """First grid point right of the steepest descent after ``ref`` where ``f' >= -tol_abs``.

    The descent is the first local minimum of ``f'`` right of ``ref`` with ``f' < -descent_abs``
    (``descent_abs = 0``: any negative one, openCyto's rule)."""
    right = grid > ref
    d2 = np.diff(np.sign(np.diff(df)))
    valleys = np.flatnonzero(d2 == 2) + 1
    valleys = valleys[right[valleys] & (df[valleys] < -descent_abs)]
    if valleys.size:
        start = int(valleys.min())
    else:
        cand = np.flatnonzero(right)
        if cand.size == 0:
            return float(grid[-1]), True
        start = int(cand[np.argmin(df[cand])])
    flat = np.flatnonzero((np.arange(grid.size) > start) & (df >= -tol_abs))
    if flat.size == 0:
        return float(grid[-1]), True
    return float(grid[flat[0]]), False


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
        "unimodal": [
Options(*get_args(Unimodal))
        ],
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


class TailGate(CutEstimator):
    """Tail gate (openCyto's ``gate_tail``, first-derivative method): beyond the reference peak,
    after the density's steepest descent, the first point where the slope has flattened to
    ``tol`` × max|f'|.

    Parameters
    ----------
    num_peaks
        Keep the ``num_peaks`` highest KDE peaks; they are then ordered by location.
    ref_peak
        Which of them (1-based, left to right) is the reference.
    tol
        Flatness level, **relative** to the largest |f'| (openCyto's ``auto_tol`` behaviour; an
        absolute tolerance depends on the scale and is one cause of the instability users reported).
    side
        ``'right'``: the tail right of the peak (e.g. dim/dead-cell exclusion); ``'left'`` mirrors.
    adjust
        Bandwidth multiplier (``bw.nrd0`` × adjust; openCyto used a plug-in bandwidth).
    bias
        Added to the cut.
    min, max
        Drop events outside ``[min, max]`` before fitting.
    min_descent
        The descent the tail starts after is the first local minimum of f' beyond the peak that
        is steeper than ``min_descent`` × max|f'| (default 0: any, openCyto's rule). On a small,
        flat-topped negative cloud a ripple of the KDE inside the cloud is such a minimum, and
        the cut then lands inside the cloud; ``0.2``–``0.3`` skips the ripples.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "tailgate"
    _parameter_constraints = {
        "num_peaks": [Interval(Integral, 1, None)],
        "ref_peak": [Interval(Integral, 1, None)],
        "tol": [Interval(Real, 0, 1, closed="left")],
        "side": [Options("right", "left")],
        "adjust": POSITIVE,
        "bias": NUMBER,
        **FIT_RANGE,
        "min_descent": [Interval(Real, 0, 1, closed="left")],
    }
    _parameter_rules = (MIN_BELOW_MAX,)

    def __init__(
        self,
        num_peaks: int = 1,
        ref_peak: int = 1,
        tol: float = 0.01,
        side: Literal["right", "left"] = "right",
        adjust: float = 1.0,
        bias: float = 0.0,
        min: float | None = None,
        max: float | None = None,
        min_descent: float = 0.0,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.num_peaks = num_peaks
        self.ref_peak = ref_peak
        self.tol = tol
        self.min_descent = min_descent
        self.side = side
        self.adjust = adjust
        self.bias = bias
        self.min = min
        self.max = max

    def fit(self, X) -> TailGate:
        self._start()
        x = _truncate(self.name, self._as_matrix(X)[:, 0], self.min, self.max)
        grid, f, df = density_derivative(x, adjust=self.adjust)
        peaks = find_peaks(grid, f, float(x.min()), float(x.max()), self.num_peaks)
        if peaks.size == 0:
            peaks = np.array([int(np.argmax(f))])
        locs = np.sort(grid[peaks])
        k = self.ref_peak
        if k > locs.size:
            self._fall_back(
                f"asked for reference peak {k} but found {locs.size} peak(s); used peak {locs.size}"
            )
            k = locs.size
        ref = float(locs[k - 1])
        tol_abs = self.tol * float(np.max(np.abs(df)))
        descent_abs = self.min_descent * float(np.max(np.abs(df)))
        if self.side == "right":
            cut, edge = _tail_right(grid, df, ref, tol_abs, descent_abs)
        else:
            cut, edge = _tail_right(-grid[::-1], -df[::-1], -ref, tol_abs, descent_abs)
            cut = -cut
        if edge:
            self._fall_back(
                "the density never flattened beyond the reference peak; cut at the data edge"
            )
        self.peaks_ = locs
        self.reference_peak_ = ref
        self.threshold_ = cut + self.bias
        return self


class QuantileGate(CutEstimator):
    """``cut = quantile(x, probs)`` (R type 7 = numpy's linear method), openCyto's ``gate_quantile``.

    Parameters
    ----------
    probs
        Probability in [0, 1].
    min, max
        Drop events outside ``[min, max]`` before fitting.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "quantile"
    default_min_events = 20
    _parameter_constraints = {"probs": [Interval(Real, 0, 1)], **FIT_RANGE}
    _parameter_rules = (MIN_BELOW_MAX,)

    def __init__(
        self,
        probs: float = 0.999,
        min: float | None = None,
        max: float | None = None,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.probs = probs
        self.min = min
        self.max = max

    def fit(self, X) -> QuantileGate:
        self._start()
        x = _truncate(self.name, self._as_matrix(X)[:, 0], self.min, self.max)
        self.threshold_ = float(np.quantile(x, self.probs))
        return self


class PeakOffset(CutEstimator):
    """A cut at a fixed offset from a found KDE peak ("CD38hi = above the 2nd mode + 0.3").

    Parameters
    ----------
    peak
        Which peak, counted by location among the kept peaks: 1 = leftmost, 2 = second, ...;
        -1 = rightmost, -2 = second from the right.
    offset
        Added to the peak's location (in the gate's transformed units; may be negative).
    num_peaks
        Keep at most this many peaks (the highest); ``None`` = all above ``min_height``.
    min_height
        Ignore peaks lower than this fraction of the highest peak (noise wiggles).
    adjust
        Bandwidth multiplier of the KDE.
    min, max
        Drop events outside ``[min, max]`` before fitting.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).

    If fewer peaks exist than ``peak`` asks for, the nearest existing one is used and the fit is
    flagged ``fell_back_``.
    """

    name = "peak_offset"
    _parameter_constraints = {
        "peak": [Interval(Integral, 1, None), Interval(Integral, None, -1)],
        "offset": NUMBER,
        "num_peaks": [Interval(Integral, 1, None), None],
        "min_height": [Interval(Real, 0, 1)],
        "adjust": POSITIVE,
        **FIT_RANGE,
    }
    _parameter_rules = (MIN_BELOW_MAX,)

    def __init__(
        self,
        peak: int = -1,
        offset: float = 0.0,
        num_peaks: int | None = None,
        min_height: float = 0.05,
        adjust: float = 2.0,
        min: float | None = None,
        max: float | None = None,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.peak = peak
        self.offset = offset
        self.num_peaks = num_peaks
        self.min_height = min_height
        self.adjust = adjust
        self.min = min
        self.max = max

    def fit(self, X) -> PeakOffset:
        self._start()
        x = _truncate(self.name, self._as_matrix(X)[:, 0], self.min, self.max)
        grid, y, _ = density(x, adjust=self.adjust)
        peaks = find_peaks(grid, y, float(x.min()), float(x.max()), self.num_peaks)
        if peaks.size == 0:
            peaks = np.array([int(np.argmax(y))])
        peaks = peaks[y[peaks] >= self.min_height * y[peaks[0]]]
        locs = np.sort(grid[peaks])
        n = locs.size
        i = self.peak - 1 if self.peak > 0 else n + self.peak
        if not 0 <= i < n:
            j = int(np.clip(i, 0, n - 1))
            self._fall_back(
                f"asked for peak {self.peak} but found {n} peak(s); used peak {j + 1} of {n}"
            )
            i = j
        self.peaks_ = locs
        self.peak_location_ = float(locs[i])
        self.threshold_ = float(locs[i] + self.offset)
        return self


class Mixture1D(CutEstimator):
    """1-D mixture cut point (openCyto's ``gate_flowclust_1d``).

    Fits ``K`` components (Student-t with ``nu`` degrees of freedom by default, see
    :mod:`cytophen.datadriven._mixture`), sorts them by mean, and cuts between the ``neg``-th and
    the next component.

    Parameters
    ----------
    K
        Number of mixture components.
    neg
        Number of components on the negative side (1 <= neg < K).
    tails
        ``'t'`` (default, robust to heavy tails and outliers) or ``'gaussian'``.
    nu
        Degrees of freedom of the t components.
    cutpoint
        ``'boundary'`` (openCyto's default: midpoint between the largest event assigned to the
        negative side and the smallest assigned to the positive side, among events between the two
        means), ``'posterior'`` (where the posterior of the positive side reaches 0.5) or
        ``'min_density'`` (lowest mixture density between the two means).
    cut_min, cut_max
        Clamp the cut into this range.
    min, max
        Drop events outside ``[min, max]`` before fitting.
    random_state
        Seed (the 1-D start is deterministic quantile bins; kept for a uniform interface).
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "mixture_1d"
    _parameter_constraints = {
        "K": [Interval(Integral, 2, None)],
        "neg": [Interval(Integral, 1, None)],
        "tails": [Options("t", "gaussian")],
        "nu": POSITIVE,
        "cutpoint": [Options("boundary", "posterior", "min_density")],
        "cut_min": [*NUMBER, None],
        "cut_max": [*NUMBER, None],
        **FIT_RANGE,
        "random_state": SEED,
    }
    _parameter_rules = (
        MIN_BELOW_MAX,
        Rule(("neg", "K"), lambda neg, K: neg < K, "neg must be below K"),
        Rule(
            ("cut_min", "cut_max"),
            lambda lo, hi: lo is None or hi is None or lo <= hi,
            "cut_min must not be above cut_max",
        ),
    )

    def __init__(
        self,
        K: int = 2,
        neg: int = 1,
        tails: Literal["t", "gaussian"] = "t",
        nu: float = 4.0,
        cutpoint: Literal["boundary", "posterior", "min_density"] = "boundary",
        cut_min: float | None = None,
        cut_max: float | None = None,
        min: float | None = None,
        max: float | None = None,
        random_state: int = 0,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.K = K
        self.neg = neg
        self.tails = tails
        self.nu = nu
        self.cutpoint = cutpoint
        self.cut_min = cut_min
        self.cut_max = cut_max
        self.min = min
        self.max = max
        self.random_state = random_state

    def _own_minimum(self) -> int:
        return max(self.default_min_events, 25 * int(self.K))

    def fit(self, X) -> Mixture1D:
        self._start()
        K = int(self.K)
        x = _truncate(self.name, self._as_matrix(X)[:, 0], self.min, self.max)
        if np.unique(x).size < K:
            raise FitDeclined(
                self.name, f"fewer than {K} distinct values: cannot fit {K} components"
            )
        mix = fit_mixture(
            x, K, tails=self.tails, nu=self.nu, random_state=self.random_state
        ).sorted_by_first_mean()
        mu = mix.means[:, 0]
        a, b = float(mu[self.neg - 1]), float(mu[self.neg])
        grid = np.linspace(a, b, 513)
        post_up = mix.predict_proba(grid)[:, self.neg :].sum(axis=1)
        cross = np.flatnonzero(post_up >= 0.5)
        posterior_cut = float(grid[cross[0]]) if cross.size else 0.5 * (a + b)
        method = self.cutpoint
        if method == "boundary":
            xb = x[(x > a) & (x < b)]
            up = mix.predict(xb) >= self.neg if xb.size else np.zeros(0, bool)
            if xb.size and up.any() and (~up).any():
                cut = 0.5 * (float(xb[~up].max()) + float(xb[up].min()))
            else:
                cut = posterior_cut
                self._fall_back(
                    "no events between the two component means to place a boundary; used the posterior crossing"
                )
        elif method == "posterior":
            cut = posterior_cut
        else:  # min_density
            cut = float(grid[np.argmin(mix.score_samples(grid))])
        if self.cut_min is not None and cut < self.cut_min:
            cut = float(self.cut_min)
            self._fall_back(f"cut clamped to cut_min={self.cut_min}")
        if self.cut_max is not None and cut > self.cut_max:
            cut = float(self.cut_max)
            self._fall_back(f"cut clamped to cut_max={self.cut_max}")
        self.means_ = mu
        self.weights_ = mix.weights
        self.scales_ = np.sqrt(mix.covariances[:, 0, 0])
        self.threshold_ = float(cut)
        self.converged_ = mix.converged
        return self
