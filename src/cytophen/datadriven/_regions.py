"""Multi-dimensional methods: mixture ellipse, transitional polygon, singlet band, boundary box."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Literal

import numpy as np
from scipy import stats

from cytophen.datadriven._base import SEED, FitDeclined, GateEstimator
from cytophen.datadriven._constraints import Interval, Options, Rule, Sequence
from cytophen.datadriven._mixture import fit_mixture
from cytophen.errors import GateError
from cytophen.gates import EllipsoidGate, Gate, PolygonGate, RectangleGate

__all__ = ["MixtureEllipse", "Transitional", "SingletGate", "BoundaryGate"]


def _region_side(name: str, side: str | None) -> None:
    if side not in (None, "+"):
        raise GateError(
            name, f"a {name} gate is a region: side must be '+' or absent, got {side!r}"
        )


def _select(name: str, mix, target) -> int:
    if target is None:
        return int(np.argmax(mix.weights))
    t = np.asarray(target, dtype=np.float64)
    if t.shape != (mix.means.shape[1],):
        raise GateError(name, f"target must have {mix.means.shape[1]} values, got {list(target)!r}")
    return int(np.argmin(np.linalg.norm(mix.means - t, axis=1)))


NUMBER = [Interval(Real, None, None)]
PROBABILITY = [Interval(Real, 0, 1, closed="neither")]


class _MixtureRegion(GateEstimator):
    n_dims = None
    _parameter_constraints = {
        "K": [Interval(Integral, 1, None)],
        "target": [Sequence(NUMBER), None],
        "quantile": PROBABILITY,
        "tails": [Options("t", "gaussian")],
        "nu": [Interval(Real, 0, None, closed="neither")],
        "random_state": SEED,
    }

    def _own_minimum(self) -> int:
        return max(self.default_min_events, 25 * int(self.K))

    def _fit_mixture(self, X):
        K = int(self.K)
        n_init = getattr(self, "n_init", 1)
        if X.shape[1] < 2:
            raise GateError(self.name, f"works on 2 or more dimensions, got {X.shape[1]}")
        if np.any(X.std(axis=0) == 0):
            raise FitDeclined(self.name, "a dimension has no spread (all events equal)")
        mix = fit_mixture(
            X,
            K,
            tails=self.tails,
            nu=self.nu,
            random_state=self.random_state,
            n_init=n_init,
        )
        k = _select(self.name, mix, self.target)
        self.means_ = mix.means
        self.weights_ = mix.weights
        self.component_ = k
        self.converged_ = mix.converged
        return mix, k


class MixtureEllipse(_MixtureRegion):
    """Ellipse (ellipsoid) of one mixture component: openCyto's ``gate_flowclust_2d``.

    The component is the one whose mean is nearest (Euclidean) to ``target``, or the heaviest when
    no target is given. The region is ``(x-μ)ᵀΣ⁻¹(x-μ) <= c`` with ``c = d·F⁻¹(quantile; d, ν)``
    for t components (the exact ``quantile`` contour of a multivariate t) and ``χ²_d⁻¹(quantile)``
    for Gaussian ones.

    Parameters
    ----------
    K
        Number of mixture components.
    target
        Approximate location of the population (one value per dimension, transformed units).
    quantile
        Probability mass of the chosen component inside the ellipse.
    tails, nu
        Component family (see :mod:`cytophen.datadriven._mixture`).
    random_state
        Seed of the k-means initialisation.
    n_init
        Number of k-means++ starts compared (best log-likelihood on a seeded subsample of at most
        5 000 events) before the fit on all events; 1 = one start. See
        :func:`cytophen.datadriven._mixture.fit_mixture`.
    doublets_quantile
        Also take in the component's doublets: on **linear** area scales (FSC-A/SSC-A) two cells
        stuck together have the summed signal, so their cloud is centred on ``2μ`` with covariance
        ``2Σ``. When given, the gate is the convex hull (a polygon) of the ellipse and of that
        doublet ellipse at this probability (same component family). Lymphocyte gates whose
        population counts doublets of lymphocytes (removed later by the singlet gate) use it.
    merge
        Merge every component whose mean lies inside the chosen ellipse into it (moment
        matching) before drawing the contour: a heavy-tailed cloud fitted as a core plus a broad
        component is then gated as one population.
    dead_scale, dead_quantile
        Also take in the component's dead cells: on **linear** area scales dying cells of the same
        kind are smaller and more granular, their cloud centred on ``Dμ`` with covariance ``DΣD``
        for ``D = diag(dead_scale)`` (e.g. ``[0.7, 1.3]``: FSC x0.7, SSC x1.3). When both are
        given, the gate is the union (a polygon) of the region above (ellipse, or hull with the
        doublet ellipse) and the convex hull of the ellipse and that ellipse at probability
        ``dead_quantile``. A lymphocyte gate whose population counts the dead
        lymphocytes (removed later by the viability gate) uses it: without it the dead cells at
        the cloud's low-FSC edge are cut off and the live share of the singlets is too high.
        The ratio is that of the component's own mean, so it follows scatter gains file by file.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "mixture_ellipse"
    _parameter_constraints = {
        "doublets_quantile": [*PROBABILITY, None],
        "merge": ["boolean"],
        "dead_scale": [Sequence([Interval(Real, 0, None, closed="neither")], 2), None],
        "dead_quantile": [*PROBABILITY, None],
        "n_init": [Interval(Integral, 1, None)],
    }
    _parameter_rules = (
        Rule(
            ("dead_scale", "dead_quantile"),
            lambda scale, q: (scale is None) == (q is None),
            "dead_scale and dead_quantile go together",
        ),
    )

    def __init__(
        self,
        K: int = 2,
        target: list[float] | None = None,
        quantile: float = 0.95,
        tails: Literal["t", "gaussian"] = "t",
        nu: float = 4.0,
        random_state: int = 0,
        doublets_quantile: float | None = None,
        merge: bool = False,
        dead_scale: list[float] | None = None,
        dead_quantile: float | None = None,
        n_init: int = 1,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.n_init = n_init
        self.merge = merge
        self.dead_scale = dead_scale
        self.dead_quantile = dead_quantile
        self.K = K
        self.target = target
        self.quantile = quantile
        self.tails = tails
        self.nu = nu
        self.random_state = random_state
        self.doublets_quantile = doublets_quantile

    def fit(self, X) -> MixtureEllipse:
        self._start()
        X = self._as_matrix(X)
        mix, k = self._fit_mixture(X)
        d = X.shape[1]

        def contour(q: float) -> float:
            return float(
                d * stats.f.ppf(q, d, mix.nu) if mix.tails == "t" else stats.chi2.ppf(q, d)
            )

        self.mean_ = mix.means[k]
        self.covariance_ = mix.covariances[k]
        self.distance_square_ = contour(self.quantile)
        if self.merge:
            # a heavy-tailed cloud is often fitted as a core plus a broad component: merge every
            # component whose mean lies inside the chosen ellipse (moment matching)
            inv = np.linalg.inv(self.covariance_)
            dm = mix.means - self.mean_
            inside = np.einsum("ij,jk,ik->i", dm, inv, dm) <= self.distance_square_
            inside[k] = True
            w = mix.weights[inside] / mix.weights[inside].sum()
            mu = w @ mix.means[inside]
            dd = mix.means[inside] - mu
            cov = np.einsum("i,ijk->jk", w, mix.covariances[inside]) + (dd * w[:, None]).T @ dd
            self.merged_components_ = np.flatnonzero(inside)
            self.mean_, self.covariance_ = mu, cov
        dead = self.dead_scale is not None
        if dead:
            if d != 2:
                raise GateError(self.name, f"dead_scale works on 2 dimensions, got {d}")
            scale = np.asarray(self.dead_scale, float)
            q = self.dead_quantile
        if self.doublets_quantile is not None or dead:
            if self.doublets_quantile is not None and d != 2:
                raise GateError(self.name, f"doublets_quantile works on 2 dimensions, got {d}")
            from scipy.spatial import ConvexHull

            core = _ellipse_points(self.mean_, self.covariance_, self.distance_square_)
            pts = core
            if self.doublets_quantile is not None:
                pts = np.r_[
                    core,
                    _ellipse_points(
                        2 * self.mean_, 2 * self.covariance_, contour(self.doublets_quantile)
                    ),
                ]
            hull = pts[ConvexHull(pts).vertices]
            if dead:
                # union (not hull) of the two hulls: one hull of all three ellipses would add a
                # wedge above the cloud, between the dead and the doublet ellipses
                D = np.diag(scale)
                self.dead_mean_ = D @ self.mean_
                pts = np.r_[
                    core, _ellipse_points(self.dead_mean_, D @ self.covariance_ @ D, contour(q))
                ]
                hull = _star_union([hull, pts[ConvexHull(pts).vertices]], self.mean_)
            self.vertices_ = hull
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        _region_side(self.name, side)
        if self.doublets_quantile is not None or self.dead_quantile is not None:
            return PolygonGate(dims, self.vertices_)
        return EllipsoidGate(dims, self.mean_, self.covariance_, self.distance_square_)


def _radial_extent(poly: np.ndarray, center: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Distance from ``center`` (inside the convex polygon ``poly``) to its boundary along each
    direction ``theta``."""
    u = np.c_[np.cos(theta), np.sin(theta)][:, None, :]
    a = (poly - center)[None, :, :]
    e = (np.roll(poly, -1, axis=0) - poly)[None, :, :]

    def cross(p, q):
        return p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]

    den = cross(u, e)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cross(a, e) / den  # along the ray
        s = cross(a, u) / den  # along the edge
    hit = (den != 0) & (s >= -1e-12) & (s <= 1 + 1e-12) & (t > 0)
    return np.where(hit, t, np.inf).min(axis=1)


def _star_union(polys: list[np.ndarray], center: np.ndarray, n: int = 360) -> np.ndarray:
    """Polygon of the union of convex polygons that all contain ``center``: the union is
    star-shaped around it, its boundary the largest extent of any of them in each direction.

    The directions are a grid of ``n``, every vertex of every polygon, and the directions where
    the outermost polygon changes (found by bisection): between two of them the boundary is one
    straight edge, so the union is exact up to the bisection's 1e-12 rad."""
    two_pi = 2 * np.pi
    angles = [np.linspace(0.0, two_pi, n, endpoint=False)]
    angles += [np.mod(np.arctan2(p[:, 1] - center[1], p[:, 0] - center[0]), two_pi) for p in polys]
    theta = np.unique(np.concatenate(angles))

    def extents(th: np.ndarray) -> np.ndarray:
        return np.array([_radial_extent(p, center, th) for p in polys])

    owner = extents(theta).argmax(axis=0)
    nxt = np.roll(np.arange(theta.size), -1)
    extra = []
    for i in np.flatnonzero(owner != owner[nxt]):  # the outermost polygon changes in (i, i+1)
        lo, hi = theta[i], theta[nxt[i]] + (two_pi if nxt[i] == 0 else 0.0)
        a, b = owner[i], owner[nxt[i]]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            r = extents(np.array([mid]))[:, 0]
            if r[a] >= r[b]:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-12:
                break
        extra.append(np.mod(0.5 * (lo + hi), two_pi))
    theta = np.unique(np.r_[theta, extra])
    r = extents(theta).max(axis=0)
    v = center + r[:, None] * np.c_[np.cos(theta), np.sin(theta)]
    # most directions land on a straight edge: drop the vertices in line with both neighbours
    a, c = np.roll(v, 1, axis=0), np.roll(v, -1, axis=0)
    cross = (v[:, 0] - a[:, 0]) * (c[:, 1] - v[:, 1]) - (v[:, 1] - a[:, 1]) * (c[:, 0] - v[:, 0])
    size = np.linalg.norm(v - a, axis=1) * np.linalg.norm(c - v, axis=1)
    return v[np.abs(cross) > 1e-9 * size]


def _ellipse_points(mean: np.ndarray, cov: np.ndarray, c: float, n: int = 72) -> np.ndarray:
    """``n`` points on the contour ``(x-μ)ᵀΣ⁻¹(x-μ) = c``."""
    th = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    L = np.linalg.cholesky(cov)
    return mean + np.sqrt(c) * (L @ np.vstack([np.cos(th), np.sin(th)])).T


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


class Transitional(_MixtureRegion):
    """openCyto's transitional gate (``gate_flowclust_2d(transitional=TRUE)``): a polygon cutting
    the target component across its major axis and extending to the far corner of the data.

    Geometry, exactly as openCyto: eigenvectors of the component's Σ turned into the upper
    half-plane; the axis is the eigenvector pointing into the first quadrant (or both rotated so the
    major one has angle ``angle``), scaled by ``√(λ·χ²₂⁻¹(quantile))``; the cut line passes through
    ``μ + translation·axis`` along the perpendicular axis; the polygon closes through the corner of
    the data's bounding box in the direction of the angle. The bounding box is the fitted events'
    range extended by one standard deviation **plus the range** on each side (openCyto extends by
    one SD only; the gate fitted on a subsample is applied to all events, whose range is wider).

    Parameters
    ----------
    K, target, tails, nu, random_state
        As :class:`MixtureEllipse`.
    quantile
        Size of the axes (χ²₂ quantile).
    translation
        Where along the major axis the cut line sits (0 = through the mean; negative = towards the
        population's low end).
    angle
        Direction of the gate in radians (openCyto's ``transitional_angle``); ``None`` = the
        eigenvector pointing into the first quadrant.
    cut
        ``'translation'`` (openCyto: the line at ``translation``); ``'mindensity'``: the line at
        the deepest density valley of the events projected on the axis, beyond the component's
        mean (``translation`` is then the fallback, flagged, when there is no valley);
        ``'mixture'``: the boundary of a 2-component t mixture of those projections;
        ``'posterior'``: walking from the mean along the axis, the first point where the fitted
        2-D mixture gives the chosen component a posterior below 0.5 (the line then follows the
        other components, e.g. the transitional cloud, file by file).
    adjust
        Bandwidth multiplier of the projection's KDE (``cut='mindensity'``).
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).

    Used for CD24hi CD38hi transitional B cells and CD25+ CD127lo Tregs.
    """

    name = "transitional"
    _parameter_constraints = {
        "translation": NUMBER,
        "angle": [*NUMBER, None],
        "cut": [Options("translation", "mindensity", "mixture", "posterior")],
        "adjust": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        K: int = 2,
        target: list[float] | None = None,
        quantile: float = 0.95,
        translation: float = 0.25,
        angle: float | None = None,
        cut: Literal["translation", "mindensity", "mixture", "posterior"] = "translation",
        adjust: float = 1.0,
        tails: Literal["t", "gaussian"] = "t",
        nu: float = 4.0,
        random_state: int = 0,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.K = K
        self.target = target
        self.quantile = quantile
        self.translation = translation
        self.angle = angle
        self.cut = cut
        self.adjust = adjust
        self.tails = tails
        self.nu = nu
        self.random_state = random_state

    def fit(self, X) -> Transitional:
        self._start()
        X = self._as_matrix(X)
        if X.shape[1] != 2:
            raise GateError(self.name, f"works on exactly 2 dimensions, got {X.shape[1]}")
        mix, k = self._fit_mixture(X)
        r = stats.chi2.ppf(self.quantile, 2)
        mu = mix.means[k]
        vals, vecs = np.linalg.eigh(mix.covariances[k])
        order = np.argsort(vals)[::-1]
        lam = vals[order]
        u = [vecs[:, order[0]].copy(), vecs[:, order[1]].copy()]
        for i in range(2):
            if np.arctan2(u[i][1], u[i][0]) < 0:  # into the upper half-plane
                u[i] = -u[i]
        ang = [float(np.arctan2(v[1], v[0]) % (2 * np.pi)) for v in u]
        if self.angle is None:
            pos = [i for i in range(2) if 0.0 <= ang[i] <= np.pi / 2]
            i = pos[0]  # exactly one, unless the axes are the coordinate axes: then the major one
            theta = ang[i]
            axis = np.sqrt(lam[i] * r) * u[i]
            axis_perp = np.sqrt(lam[1 - i] * r) * u[1 - i]
            if axis[0] * axis_perp[1] - axis[1] * axis_perp[0] < 0:  # perp = axis turned left
                axis_perp = -axis_perp
        else:
            theta = float(self.angle) % (2 * np.pi)
            u1 = _rot(theta - ang[0]) @ u[0]
            u2 = _rot(theta - np.pi / 2 - ang[1]) @ u[1]
            axis = np.sqrt(lam[0] * r) * u1
            axis_perp = -np.sqrt(lam[1] * r) * u2
        translation = float(self.translation)
        if self.cut == "mindensity":
            from cytophen.datadriven._cuts import MinDensity

            length = float(np.linalg.norm(axis))
            proj = (X - mu) @ (axis / length)
            top, md = float(proj.max()), None
            if top != 0:  # 0: no event beyond the mean, so no valley there
                md = MinDensity(
                    adjust=self.adjust, gate_range=sorted([0.0, top]), unimodal="range_high"
                ).fit(proj)
            if md is None or md.fell_back_:
                self._fall_back(
                    f"no density valley along the axis beyond the mean; used translation={translation}"
                )
            else:
                translation = md.threshold_ / length
        elif self.cut == "mixture":
            from cytophen.datadriven._peak_cuts import Mixture1D

            length = float(np.linalg.norm(axis))
            proj = (X - mu) @ (axis / length)
            m1 = Mixture1D(K=2, random_state=self.random_state).fit(proj)
            if m1.threshold_ <= 0 or m1.fell_back_:
                self._fall_back(
                    f"no second component along the axis beyond the mean; used translation={translation}"
                )
            else:
                translation = m1.threshold_ / length
        elif self.cut == "posterior":
            length = float(np.linalg.norm(axis))
            u = axis / length
            span = float(np.max((X - mu) @ u))
            ts = np.linspace(0.0, max(span, length), 2001)
            post = mix.predict_proba(mu + ts[:, None] * u)[:, k]
            below = np.flatnonzero(post < 0.5)
            if below.size == 0:
                self._fall_back(
                    f"the chosen component dominates the whole axis; used translation={translation}"
                )
            else:
                translation = float(ts[below[0]]) / length
        self.translation_ = translation
        loc = mu + translation * axis
        lo = X.min(axis=0)
        hi = X.max(axis=0)
        pad = X.std(axis=0, ddof=1) + (hi - lo)
        x_min, y_min = lo - pad
        x_max, y_max = hi + pad
        v1 = loc + axis_perp
        v5 = loc - axis_perp
        if theta <= np.pi / 2:
            v2, v3, v4 = (v1[0], y_max), (x_max, y_max), (x_max, v5[1])
        elif theta <= np.pi:
            v2, v3, v4 = (x_min, v1[1]), (x_min, y_max), (v5[0], y_max)
        elif theta <= 3 * np.pi / 2:
            v2, v3, v4 = (v1[0], y_min), (x_min, y_min), (x_min, v5[1])
        else:
            v2, v3, v4 = (x_max, v1[1]), (x_max, y_min), (v5[0], y_min)
        self.mean_ = mu
        self.covariance_ = mix.covariances[k]
        self.angle_ = theta
        self.gate_location_ = loc
        self.vertices_ = np.array([v1, v2, v3, v4, v5], dtype=np.float64)
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        _region_side(self.name, side)
        return PolygonGate(dims, self.vertices_)


class SingletGate(GateEstimator):
    """Singlets from area vs height (openCyto's ``gate_singlet``).

    Robust regression ``height ~ 1 + area`` by Huber IRLS (OLS start; scale ``median|r|/0.6745``;
    weights ``min(1, 1.345/|r/s|)``; at most ``maxit`` iterations, stop when the residuals change by
    ≤ 1e-4 relative), then a normal prediction band at level ``prediction_level`` evaluated at the
    smallest and largest area: ``ŷ ± z·√(s²·x₀ᵀ(XᵀX)⁻¹x₀ + s²/w)`` with ``w = 1`` (or the robust
    weight of that event when ``wider_gate``). The gate is the polygon
    ``(a_min, lwr), (a_min, upr), (a_max, upr), (a_max, lwr)``.

    Dimensions: ``[area, height]`` (e.g. FSC-A, FSC-H).

    Parameters
    ----------
    prediction_level
        Level of the prediction band.
    maxit
        Maximum IRLS iterations (openCyto's default 5).
    wider_gate
        Use the robust weights of the extreme events in the band (wider).
    extend
        Extend the band linearly beyond the fitted area range by this fraction of that range on
        each side (0 = exactly openCyto; a small value keeps events whose area lies just outside the
        range of a subsample).
    psi
        ``'huber'`` (openCyto) or ``'bisquare'`` (Tukey, c = 4.685): Huber's convex loss does not
        resist leverage, so many doublets at large area can tilt the line; bisquare started from
        ``start='ratio'`` ignores them.
    start
        ``'ols'`` (openCyto) or ``'ratio'`` (line through the origin with slope median(height/area)).
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "singlet"
    n_dims = 2
    _parameter_constraints = {
        "prediction_level": PROBABILITY,
        "maxit": [Interval(Integral, 0, None)],
        "wider_gate": ["boolean"],
        "extend": [Interval(Real, 0, None)],
        "psi": [Options("huber", "bisquare")],
        "start": [Options("ols", "ratio")],
    }

    def __init__(
        self,
        prediction_level: float = 0.99,
        maxit: int = 5,
        wider_gate: bool = False,
        extend: float = 0.0,
        psi: Literal["huber", "bisquare"] = "huber",
        start: Literal["ols", "ratio"] = "ols",
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.prediction_level = prediction_level
        self.maxit = maxit
        self.wider_gate = wider_gate
        self.extend = extend
        self.psi = psi
        self.start = start

    def fit(self, X) -> SingletGate:
        self._start()
        X = self._as_matrix(X)
        a, h = X[:, 0], X[:, 1]
        if np.ptp(a) == 0:
            raise FitDeclined(self.name, "all events have the same area: no regression possible")
        D = np.column_stack([np.ones_like(a), a])
        if self.start == "ratio" and np.any(a > 0):
            beta = np.array([0.0, float(np.median(h[a > 0] / a[a > 0]))])
        else:
            beta = np.linalg.lstsq(D, h, rcond=None)[0]
        r = h - D @ beta
        w = np.ones_like(a)
        s = float(np.median(np.abs(r)) / 0.6745)
        self.n_iter_ = 0
        for it in range(1, int(self.maxit) + 1):
            s = float(np.median(np.abs(r)) / 0.6745)
            if s == 0:
                break
            if self.psi == "huber":
                with np.errstate(divide="ignore"):
                    w = np.minimum(1.0, 1.345 / np.abs(r / s))
            else:
                u = r / (4.685 * s)
                w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
            sw = np.sqrt(w)
            beta = np.linalg.lstsq(D * sw[:, None], h * sw, rcond=None)[0]
            r_new = h - D @ beta
            self.n_iter_ = it
            denom = np.linalg.norm(r)
            done = denom == 0 or np.linalg.norm(r_new - r) / denom <= 1e-4
            r = r_new
            if done:
                break
        s = float(np.median(np.abs(r)) / 0.6745) if s > 0 else 0.0
        xtx_inv = np.linalg.inv(D.T @ D)
        z = stats.norm.ppf(0.5 + self.prediction_level / 2)
        i_min, i_max = int(np.argmin(a)), int(np.argmax(a))
        span = a[i_max] - a[i_min]
        pts = [a[i_min] - self.extend * span, a[i_max] + self.extend * span]
        band = []
        for x0, i in zip(pts, (i_min, i_max)):
            v = np.array([1.0, x0])
            wp = w[i] if self.wider_gate else 1.0
            se = np.sqrt(s**2 * v @ xtx_inv @ v + s**2 / max(wp, 1e-12))
            yhat = float(v @ beta)
            band.append((x0, yhat - z * se, yhat + z * se))
        (a0, l0, u0), (a1, l1, u1) = band
        if not (u0 > l0 and u1 > l1):
            raise FitDeclined(
                self.name, "the prediction band has zero width (no scatter around the fit)"
            )
        self.coef_ = beta
        self.scale_ = s
        self.vertices_ = np.array([[a0, l0], [a0, u0], [a1, u1], [a1, l1]], dtype=np.float64)
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        _region_side(self.name, side)
        return PolygonGate(dims, self.vertices_)


class BoundaryGate(GateEstimator):
    """Drop saturated and off-scale events: the rectangle ``min <= x < max`` on every dimension.

    Parameters
    ----------
    min, max
        One bound per dimension (``None`` entries = decide from the data). E.g. ``$PnR``-like
        maxima: ``max: [262144, 262144]``.
    drop_saturated
        Where ``max`` is not given: if 2 or more events sit exactly at the observed maximum (a
        pile-up: saturated detector), that value becomes the (exclusive) upper bound, removing them;
        otherwise the dimension stays open above.
    drop_low
        Likewise for a pile-up at the observed minimum (off-scale low), removed by an inclusive
        lower bound just above it.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "boundary"
    n_dims = None
    default_min_events = 1
    _parameter_constraints = {
        "min": [Sequence([*NUMBER, None]), None],
        "max": [Sequence([*NUMBER, None]), None],
        "drop_saturated": ["boolean"],
        "drop_low": ["boolean"],
    }

    def __init__(
        self,
        min: list[float | None] | None = None,
        max: list[float | None] | None = None,
        drop_saturated: bool = True,
        drop_low: bool = False,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.min = min
        self.max = max
        self.drop_saturated = drop_saturated
        self.drop_low = drop_low

    def fit(self, X) -> BoundaryGate:
        self._start()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        d = X.shape[1]
        mins = list(self.min) if self.min is not None else [None] * d
        maxs = list(self.max) if self.max is not None else [None] * d
        if len(mins) != d or len(maxs) != d:
            raise GateError(self.name, f"min and max need one value per dimension ({d})")
        X = X[np.all(np.isfinite(X), axis=1)]
        self.saturated_high_ = [0] * d
        self.saturated_low_ = [0] * d
        for j in range(d):
            col = X[:, j]
            if col.size == 0:
                continue
            if maxs[j] is None and self.drop_saturated:
                top = col.max()
                c = int(np.count_nonzero(col == top))
                if c >= 2:
                    maxs[j] = float(top)
                    self.saturated_high_[j] = c
            if mins[j] is None and self.drop_low:
                bot = col.min()
                c = int(np.count_nonzero(col == bot))
                if c >= 2:
                    mins[j] = float(np.nextafter(bot, np.inf))
                    self.saturated_low_[j] = c
        self.mins_ = [None if v is None else float(v) for v in mins]
        self.maxs_ = [None if v is None else float(v) for v in maxs]
        return self

    def to_gate(self, dims, side: str | None = None) -> Gate:
        _region_side(self.name, side)
        return RectangleGate(dims, self.mins_, self.maxs_)
