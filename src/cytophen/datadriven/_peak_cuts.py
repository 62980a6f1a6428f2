"""1-D cuts set from the shape of the peaks: tail gate (where a peak's density flattens), quantile,
peak offset, and the 1-D mixture's cut between two components."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Literal

import numpy as np

from cytophen.datadriven._base import SEED, CutEstimator, FitDeclined
from cytophen.datadriven._constraints import Interval, Options, Rule
from cytophen.datadriven._cuts import FIT_RANGE, MIN_BELOW_MAX, NUMBER, POSITIVE, _truncate
from cytophen.datadriven._kde import density, density_derivative, find_peaks
from cytophen.datadriven._mixture import fit_mixture

__all__ = ["TailGate", "QuantileGate", "PeakOffset", "Mixture1D"]


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
