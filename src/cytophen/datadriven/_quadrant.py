"""Quadrant gates from two 1-D cuts (optionally sequential), and 2-D threshold pairs."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import numpy as np

from cytophen.datadriven._base import (
    QUADRANT_CONSTRAINTS,
    SEED,
    SIGNS,
    FitDeclined,
    GateEstimator,
)
from cytophen.datadriven._constraints import Interval, Options, Rule, Sequence, Signs
from cytophen.datadriven._kde import density, find_peaks
from cytophen.datadriven._registry import CutSpec, make_cut
from cytophen.errors import GateError
from cytophen.gates import Gate, QuadrantGate, RectangleGate

__all__ = ["QuadrantEstimator", "BoxEstimator", "PairEstimator", "GuidedBox", "SIGNS"]


def _peak_distance(x: np.ndarray) -> float:
    """openCyto's score for sequential quadrants: distance between the two highest KDE peaks."""
    grid, y, _ = density(x, adjust=2.0)
    p = find_peaks(grid, y, float(x.min()), float(x.max()), 2)
    return float(abs(grid[p[0]] - grid[p[1]])) if p.size == 2 else 0.0


class QuadrantEstimator(GateEstimator):
    """Four quadrants from a cut on each axis, each cut found by any 1-D method.

    With ``sequential=True`` (openCyto's ``gate_quad_sequential``) the first axis is cut on all
    events and the other axis is cut separately on each side of the first cut, giving four
    rectangles that need not share corners. A side whose cut finds no valley (one population,
    which may be the positive or the negative one) takes the cut fitted on all events instead. ``first='auto'`` cuts first the axis whose two highest
    KDE peaks are further apart.

    Parameters
    ----------
    x, y
        Each axis's 1-D method and its arguments, e.g. ``{method: mindensity, adjust: 1.5}``
        (``method`` defaults to ``mindensity``; ``y`` defaults to ``x``).
    sequential
        Cut the second axis per side of the first.
    first
        ``'auto'``, ``'x'`` or ``'y'``: which axis is cut first when sequential.
    quadrants
        Quadrant name → signs (x sign then y sign, e.g. ``{'naive': '+-'}``); default: the signs
        themselves (``'++' '+-' '-+' '--'``), which is how templates refer to quadrants.
    random_state
        Passed to the 1-D methods that take one.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "quadrant"
    n_dims = 2
    _parameter_constraints = {
        "x": [CutSpec(), None],
        "y": [CutSpec(), None],
        **QUADRANT_CONSTRAINTS,
        "random_state": SEED,
    }

    def __init__(
        self,
        x: dict[str, Any] | None = None,
        y: dict[str, Any] | None = None,
        sequential: bool = False,
        first: Literal["auto", "x", "y"] = "auto",
        quadrants: dict[str, str] | None = None,
        random_state: int = 0,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.x = x
        self.y = y
        self.sequential = sequential
        self.first = first
        self.quadrants = quadrants
        self.random_state = random_state

    def _axis(self, axis: int):
        """A fresh (unfitted) estimator of axis 0 (x) or 1 (y); ``y`` defaults to ``x``."""
        spec = self.x if axis == 0 or self.y is None else self.y
        return make_cut(spec, self.random_state)

    def _own_minimum(self) -> int:
        return max(self._axis(0).required_events(), self._axis(1).required_events())

    def _names(self) -> dict[str, str]:
        return self.quadrants or {s: s for s in SIGNS}

    def fit(self, X) -> QuadrantEstimator:
        self._start()
        X = self._as_matrix(X)
        reasons = []
        self.shared_cuts_: list[str] = []
        self._fallen: list[tuple[int, float]] = []

        def cut(axis: int, rows, side: str | None = None) -> float:
            est = self._axis(axis)
            vals = X[rows, axis]
            if vals.size < est.required_events():
                if rows.all():
                    raise FitDeclined(
                        self.name, f"only {vals.size} events; needs {est.required_events()}"
                    )
                reasons.append(
                    f"{'xy'[axis]}: only {vals.size} events on one side of the first cut "
                    f"(needs {est.required_events()}); that side uses the cut fitted on all events"
                )
                return cut(axis, np.ones(X.shape[0], dtype=bool))
            est.fit(vals)
            if est.fell_back_ and side is not None:
                # no valley on this side of the first cut: which population its one peak is
                # cannot be told from it alone; the cut over all events (if it found a valley)
                # is the boundary the two sides share
                whole = self._axis(axis).fit(X[:, axis])
                if not whole.fell_back_:
                    self.shared_cuts_.append(
                        f"{'xy'[axis]} on the {side} side: {est.reason_}; used the cut fitted "
                        f"on all events ({whole.threshold_:.4g})"
                    )
                    return float(whole.threshold_)
            if est.fell_back_:
                reasons.append(f"{'xy'[axis]}: {est.reason_}")
                self._fallen.append((axis, float(est.threshold_)))
            return float(est.threshold_)

        allrows = np.ones(X.shape[0], dtype=bool)
        if not self.sequential:
            self.x_cut_ = cut(0, allrows)
            self.y_cut_ = cut(1, allrows)
            self.first_ = None
        else:
            if self.first == "auto":
                f = 0 if _peak_distance(X[:, 0]) >= _peak_distance(X[:, 1]) else 1
            else:
                f = "xy".index(self.first)
            c1 = cut(f, allrows)
            lo = X[:, f] < c1
            self.first_ = "xy"[f]
            self.first_cut_ = c1
            self.second_cuts_ = {"-": cut(1 - f, lo, "-"), "+": cut(1 - f, ~lo, "+")}
        if reasons:
            self._fall_back("; ".join(reasons))
        return self

    def fallen_cuts(self) -> list[tuple[int, float]]:
        return list(self._fallen) if self.fell_back_ else []

    def rectangles(self) -> dict[str, tuple[tuple, tuple]]:
        """``signs -> (mins, maxs)`` of the four quadrants."""
        out = {}
        for s in SIGNS:
            sx, sy = s
            if not self.sequential:
                cx, cy = self.x_cut_, self.y_cut_
            elif self.first_ == "x":
                cx, cy = self.first_cut_, self.second_cuts_[sx]
            else:
                cy, cx = self.first_cut_, self.second_cuts_[sy]
            x0, x1 = (cx, None) if sx == "+" else (None, cx)
            y0, y1 = (cy, None) if sy == "+" else (None, cy)
            out[s] = ((x0, y0), (x1, y1))
        return out

    def to_gate(self, dims, side: str | None = None) -> Gate:
        rects = self.rectangles()
        return QuadrantGate(dims, {name: rects[s] for name, s in self._names().items()})


class BoxEstimator(GateEstimator):
    """A box from one 1-D cut per dimension: the template's side gives one sign per dimension
    (``'+-'`` = CD19+ CD3-, ``'++-'`` ...).

    Parameters
    ----------
    side
        One sign per dimension (set from the template's ``side``).
    axes
        Per dimension, the 1-D method and its arguments, e.g.
        ``[{method: mindensity}, {method: tailgate, side: left}]`` (default: mindensity for all).
    sequential
        Fit the cuts one dimension after the other (in the order of the dimensions), each on the
        events already inside the previous cuts, e.g. FoxP3+ first, then CD25 and CD127 on the
        FoxP3+ events only. Otherwise every cut is fitted on all the parent's events.
    random_state
        Passed to the 1-D methods that take one.
    too_few
        With ``sequential``, what happens when too few events are left for a later cut:
        ``'decline'`` (default: the population is not measured) or ``'empty'``: the box is
        placed beyond the data on that dimension (an empty region, e.g. no plasmablasts found in
        a small file), the later cuts are left open, and the fit is flagged ``fell_back_``.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "box"
    n_dims = None
    _parameter_constraints = {
        "side": [Signs(), None],
        "axes": [Sequence([CutSpec()]), None],
        "sequential": ["boolean"],
        "random_state": SEED,
        "too_few": [Options("decline", "empty")],
    }
    _parameter_rules = (
        Rule(
            ("side", "axes"),
            lambda side, axes: side is None or axes is None or len(side) == len(axes),
            "one entry of axes per sign of side",
        ),
    )

    def __init__(
        self,
        side: str | None = None,
        axes: list[dict[str, Any]] | None = None,
        sequential: bool = False,
        random_state: int = 0,
        too_few: Literal["decline", "empty"] = "decline",
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.side = side
        self.axes = axes
        self.sequential = sequential
        self.random_state = random_state
        self.too_few = too_few

    def _cuts(self, d: int) -> list:
        """A fresh (unfitted) estimator per dimension."""
        specs = list(self.axes) if self.axes is not None else [{}] * d
        if len(specs) != d:
            raise GateError(self.name, f"axes has {len(specs)} entries for {d} dimension(s)")
        return [make_cut(spec, self.random_state) for spec in specs]

    def _own_minimum(self) -> int:
        d = len(self.axes) if self.axes is not None else (len(self.side) if self.side else 1)
        return max(est.required_events() for est in self._cuts(d))

    def fit(self, X) -> BoxEstimator:
        self._start()
        X = self._as_matrix(X)
        d = X.shape[1]
        side = self.side
        if not side or len(side) != d:
            raise GateError(
                self.name, f"a threshold box needs one sign per dimension ({d}), got side {side!r}"
            )
        estimators = self._cuts(d)
        cuts, reasons = [], []
        self._fallen = []
        keep = np.ones(X.shape[0], dtype=bool)
        for j in range(d):
            est = estimators[j]
            vals = X[keep, j] if self.sequential else X[:, j]
            if (
                vals.size < est.required_events()
                and self.sequential
                and self.too_few == "empty"
                and j > 0
            ):
                # nothing to find: an empty box (beyond the data on dim j), later dims left open
                lo, hi = float(np.min(X[:, j:], initial=0.0)), float(np.max(X[:, j:], initial=0.0))
                cuts.append(hi + 1.0 if side[j] == "+" else lo - 1.0)
                cuts.extend(lo - 1.0 if s == "+" else hi + 1.0 for s in side[j + 1 :])
                reasons.append(
                    f"dim {j + 1}: only {vals.size} events left (needs {est.required_events()}); "
                    "empty region"
                )
                break
            if vals.size < est.required_events():
                raise FitDeclined(
                    self.name,
                    f"only {vals.size} events left for the cut on dimension {j + 1}; needs {est.required_events()}",
                )
            est.fit(vals)
            c = float(est.threshold_)
            cuts.append(c)
            if est.fell_back_:
                reasons.append(f"dim {j + 1}: {est.reason_}")
                self._fallen.append((j, c))
            keep &= X[:, j] >= c if side[j] == "+" else X[:, j] < c
        self.cuts_ = cuts
        if reasons:
            self._fall_back("; ".join(reasons))
        return self

    def fallen_cuts(self) -> list[tuple[int, float]]:
        return list(self._fallen) if self.fell_back_ else []

    def to_gate(self, dims, side: str | None = None) -> Gate:
        side = side or self.side
        if not side or len(side) != len(self.cuts_) or set(side) - {"+", "-"}:
            raise GateError(
                self.name,
                f"a threshold box needs one sign per dimension ({len(self.cuts_)}), got side {side!r}",
            )
        mins = [c if s == "+" else None for c, s in zip(self.cuts_, side)]
        maxs = [None if s == "+" else c for c, s in zip(self.cuts_, side)]
        return RectangleGate(dims, mins, maxs)


#: Backwards-compatible name.
PairEstimator = BoxEstimator


class GuidedBox(BoxEstimator):
    """A box on two markers placed where a third marker says the cells are.

    The classic example: CD25+ CD127lo on CD25 x CD127, placed where the FoxP3+ cells are. The
    gate lives on its own axes (a rectangle on the gate's dimensions); the guide only decides its
    cut points. On each file:

    1. the guide marker is cut (``guide``: a 1-D method, by default the FoxP3 valley beyond the
       negative population, never inside its 3-SD edge), giving the guide-positive events;
    2. among candidate cuts at the percentiles of each axis (and no cut at all), the pair whose
       box agrees best with the guide-positive events is taken: the largest F-beta score
       (``beta`` > 1 weighs recall over precision, so the box keeps nearly all guide-positive
       cells and leaves the final decision to the guide's own gate below it).

    Without the guide (the file's panel lacks it: the template marks it optional), each axis is
    cut on its own as :class:`BoxEstimator` does with ``axes``, and ``guided_`` is ``False``.

    Parameters
    ----------
    side
        One sign per gate dimension (from the template's ``side``), e.g. ``'+-'``.
    axes
        The unguided 1-D method per dimension (as :class:`BoxEstimator`).
    guide
        The guide's 1-D method and its arguments; the guide-positive events are those at or above
        its cut.
    beta
        Weight of recall in the F-beta score (5: the box keeps nearly every guide-positive cell
        and the guide's own gate below it decides; on the FlowAtlas Treg references, beta 3
        left one file's Treg 2.9 pp below FlowJo's, 5 and 8 none).
    candidates
        Candidate cuts per axis (percentiles from 0.5 to 99.5).
    random_state
        Passed to the 1-D methods that take one.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "guided_box"
    accepts_guide = True
    _parameter_constraints = {
        "guide": [CutSpec(), None],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "candidates": [Interval(Integral, 1, None)],
    }

    def __init__(
        self,
        side: str | None = None,
        axes: list[dict[str, Any]] | None = None,
        guide: dict[str, Any] | None = None,
        beta: float = 5.0,
        candidates: int = 64,
        random_state: int = 0,
        min_events: int | None = None,
    ):
        super().__init__(side=side, axes=axes, random_state=random_state, min_events=min_events)
        self.guide = guide
        self.beta = beta
        self.candidates = candidates

    def fit(self, X) -> GuidedBox:
        self._start()
        self._fallen = []  # the guided cuts are chosen together: none is a per-axis fallback
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 2 and self.side and X.shape[1] == len(self.side) + 1:
            return self._fit_guided(X)
        super().fit(X)
        self.guided_ = False
        return self

    def _guide_cut(self, g: np.ndarray) -> float:
        spec = self.guide or {"method": "mindensity", "adjust": 1.0, "unimodal": "upper_spread"}
        est = make_cut(spec, self.random_state).fit(g[:, None])
        cut = float(est.threshold_)
        if est.name == "mindensity":  # a valley inside the negative cloud is not its edge
            from cytophen.datadriven._cuts import spread_cut

            cut = max(cut, spread_cut(g, float(spec.get("spread", 3.0)), "right")[0])
        return cut

    def _fit_guided(self, X: np.ndarray) -> GuidedBox:
        d = len(self.side)
        if d != 2:
            raise GateError(self.name, f"a guided box needs a side of two signs, got {self.side!r}")
        X = X[np.all(np.isfinite(X), axis=1)]
        if X.shape[0] < self.required_events():
            raise FitDeclined(self.name, f"only {X.shape[0]} events")
        g = X[:, d]
        self.guide_cut_ = self._guide_cut(g)
        target = g >= self.guide_cut_
        self.guide_positive_ = int(target.sum())
        if self.guide_positive_ < 5:
            super().fit(X[:, :d])
            self.guided_ = False
            self._fall_back(f"only {self.guide_positive_} guide-positive events: cut unguided")
            return self
        q = np.linspace(0.5, 99.5, int(self.candidates))
        cuts, bins = [], []
        for j in range(d):
            c = np.r_[-np.inf, np.unique(np.percentile(X[:, j], q)), np.inf]
            cuts.append(c)
            bins.append(np.searchsorted(c, X[:, j], side="right") - 1)
        shape = (cuts[0].size, cuts[1].size)
        every = np.zeros(shape)
        hits = np.zeros(shape)
        np.add.at(every, (bins[0], bins[1]), 1.0)
        np.add.at(hits, (bins[0], bins[1]), target.astype(np.float64))

        def inside(M: np.ndarray) -> np.ndarray:  # events in the box for every pair of cuts
            for axis, sign in enumerate(self.side):
                M = np.moveaxis(M, axis, 0)
                if sign == "+":  # x >= c_i: bins i and above
                    M = M[::-1].cumsum(axis=0)[::-1]
                else:  # x < c_i: bins below i
                    M = np.concatenate([np.zeros_like(M[:1]), M.cumsum(axis=0)[:-1]])
                M = np.moveaxis(M, 0, axis)
            return M

        n_in, hit_in = inside(every), inside(hits)
        b2 = float(self.beta) ** 2
        score = (1.0 + b2) * hit_in / np.maximum(b2 * target.sum() + n_in, 1e-12)
        i, j = np.unravel_index(int(np.argmax(score)), shape)
        self.cuts_ = [float(cuts[0][i]), float(cuts[1][j])]
        self.score_ = float(score[i, j])
        self.guided_ = True
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        side = side or self.side
        mins = [c if s == "+" and np.isfinite(c) else None for c, s in zip(self.cuts_, side)]
        maxs = [c if s == "-" and np.isfinite(c) else None for c, s in zip(self.cuts_, side)]
        return RectangleGate(list(dims)[: len(side)], mins, maxs)
