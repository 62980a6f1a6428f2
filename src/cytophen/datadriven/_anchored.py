"""Anchored transitional gate: a small population beyond a robustly fitted main population.

A free mixture (openCyto's ``transitional`` gate) lets every component move, so a rare cloud next
to a big one (CD24hi CD38hi transitional B cells: 5-15 % of naive B cells) is fitted badly: the big
population's heavy tails and the small cloud trade events and the cut wanders. Here the big
population is *anchored*: its location and scatter come from a robust (minimum covariance
determinant) estimate that the small cloud cannot pull, and only the small component is fitted.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Literal

import numpy as np
from scipy import stats

from cytophen.datadriven._base import FitDeclined, GateEstimator
from cytophen.datadriven._constraints import Interval, Options, Sequence
from cytophen.datadriven._halfspace import halfspace_gate
from cytophen.datadriven._student_t import posterior_crossing, t_logpdf
from cytophen.errors import GateError
from cytophen.gates import Gate, PolygonGate

__all__ = ["AnchoredTransitional", "robust_location_scatter"]


def robust_location_scatter(
    X: np.ndarray, support_fraction: float = 0.5, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray, int]:
    """Reweighted minimum-covariance-determinant location and covariance (deterministic).

    Concentration steps (Rousseeuw & Van Driessen 1999) started from the coordinate-wise median and
    the MAD: keep the ``h = ceil(support_fraction·n)`` events of smallest Mahalanobis distance,
    re-estimate mean and covariance on them, until the subset no longer changes. The raw covariance
    is scaled so the median squared distance equals ``χ²_d⁻¹(0.5)``, then the estimate is
    recomputed on the events within ``χ²_d⁻¹(0.975)`` (the reweighting step of scikit-learn's
    ``MinCovDet``, without its random subsets: one start, so it is deterministic and fast).

    Parameters
    ----------
    X
        ``(n, d)`` finite values.
    support_fraction
        Share of the events the raw estimate is computed on (0.5: the highest breakdown point).
    max_iter
        Maximum number of concentration steps.

    Returns
    -------
    location, covariance, n_iter
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    h = min(n, max(d + 1, int(np.ceil(support_fraction * n))))
    mu = np.median(X, axis=0)
    mad = np.median(np.abs(X - mu), axis=0) / 0.6744897501960817
    if np.any(mad <= 0):
        mad = np.where(mad > 0, mad, X.std(axis=0))
    if np.any(mad <= 0):
        raise FitDeclined("anchored_transitional", "a dimension has no spread (all events equal)")
    cov = np.diag(mad**2)
    keep = None
    n_iter = 0
    for step in range(1, int(max_iter) + 1):
        n_iter = step
        d2 = _maha(X, mu, cov)
        new = np.sort(np.argpartition(d2, h - 1)[:h])
        if keep is not None and np.array_equal(new, keep):
            break
        keep = new
        mu = X[keep].mean(axis=0)
        cov = np.cov(X[keep].T, ddof=0).reshape(d, d)
        if np.linalg.det(cov) <= 0:
            raise FitDeclined(
                "anchored_transitional", "the central events have a singular covariance"
            )
    d2 = _maha(X, mu, cov)
    cov = cov * np.median(d2) / stats.chi2.ppf(0.5, d)
    d2 = _maha(X, mu, cov)
    inside = d2 < stats.chi2.ppf(0.975, d)
    if inside.sum() > d + 1:
        mu = X[inside].mean(axis=0)
        cov = np.cov(X[inside].T, ddof=0).reshape(d, d)
    return mu, cov, n_iter


def _maha(X: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky(cov)
    z = np.linalg.solve(L, (X - mu).T)
    return np.einsum("ij,ij->j", z, z)


def _small_posterior(l0: np.ndarray, l1: np.ndarray, w1: float) -> np.ndarray:
    """Posterior of the small component (weight ``w1``, log density ``l1``) against the main
    one (log density ``l0``, already doubled on the half-plane)."""
    a = np.log1p(-w1) + l0
    b = np.log(w1) + l1
    return np.exp(b - np.logaddexp(a, b))


def _clip_box(lo: np.ndarray, hi: np.ndarray, point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Vertices of the rectangle ``[lo, hi]`` cut to the half-plane ``(x - point)·normal >= 0``
    (Sutherland-Hodgman against one edge), counter-clockwise."""
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    s = (box - point) @ normal
    out = []
    for i in range(4):
        j = (i + 1) % 4
        if s[i] >= 0:
            out.append(box[i])
        if s[i] * s[j] < 0:
            t = s[i] / (s[i] - s[j])
            out.append(box[i] + t * (box[j] - box[i]))
    return np.array(out, dtype=np.float64)


class AnchoredTransitional(GateEstimator):
    """Small population beyond a robust main one: a line at the 2-component posterior (hi-hi gates).

    How it decides (all deterministic):

    1. **Anchor.** The main population's location ``μ₀`` and covariance ``Σ₀`` are the reweighted
       MCD estimate (:func:`robust_location_scatter`, ``support_fraction`` of the events): the
       small population and other minor clouds cannot pull them.
    2. **Half-plane.** Only events on the ``direction`` side of ``μ₀`` (``(x−μ₀)·u > 0``) are
       modelled; the main population, symmetric about ``μ₀``, has exactly half its mass there, so
       its density there is ``2·t_ν(x; μ₀, Σ₀(ν−2)/ν)`` (a Student-t with covariance ``Σ₀``).
    3. **Small component.** On those events, EM fits only the weight, mean and scatter of a
       second t_ν component (started from the 10 % of events farthest from ``μ₀``; its scatter is
       ``c·Σ₀`` with only ``c`` free unless ``small_shape='free'``); the main one stays fixed.
    4. **Cut.** The boundary is the line perpendicular to the Fisher direction
       ``w = ((Σ₀+Σ₁)/2)⁻¹(μ₁−μ₀)`` through the point of the segment ``μ₀→μ₁`` where the small
       component's posterior first reaches ``posterior``. The gate is the polygon of the data's
       bounding box (extended by one SD plus the range) on the ``w`` side of that line.

    5. **Refinement on more markers (only when the gate has more than two dimensions).** Steps
       1-4 use the first two dimensions; the others (markers on which the two populations are
       equal or nearly so, e.g. CD19, CD20, CD27, IgD for naive and transitional B cells) carry
       each cell's overall staining brightness, which the first two share. The 2-D fit decides
       *how many* events are gated (``n_start_``: those beyond its line); the markers together
       decide *which*: the events are ranked along the Fisher direction
       ``w = Σ₀ⁿ⁻¹(μ₁ⁿ − μ₀ⁿ)`` (``μ₀ⁿ``, ``Σ₀ⁿ``: the reweighted MCD estimate on all dimensions;
       ``μ₁ⁿ``: the mean of all events weighted by their 2-D small-component posterior) and the
       ``n_start_`` highest are gated: a hyperplane midway between the last gated and the first
       ungated score. The one covariance ``Σ₀ⁿ`` is learned from the thousands of main-population
       events (the small component borrows it), so the brightness correlations it removes are not
       estimated from the few dozen small-population events. The gate is returned as a half-space
       (:class:`~cytophen.gates.EllipsoidGate`, as ``mixture_halfspace``). It falls back
       (flagged) to the 2-D line (as a half-space, with zero weight on the other dimensions) when
       the 2-D fit fell back, when ``w`` does not point to the small component on the first two
       dimensions, or when more than ``max_exchanged`` of the ``n_start_`` events are exchanged
       with events outside the 2-D gate (``exchanged_fraction_``).

    **Fallback (flagged):** when no small component is found (fewer than ``min_small`` events
    expected in it, its mean not beyond ``μ₀`` on every axis in the sense of ``direction`` (e.g.
    higher on both for ``[1, 1]``) or closer to it than
    ``min_separation`` main SDs (Mahalanobis), or its posterior never
    reaching ``posterior`` between the two means), the line is perpendicular to ``direction`` at
    ``μ₀ + fallback_offset·σ_u·u`` (``σ_u`` = the main population's SD along ``u``): a fixed offset
    relative to the found main peak.

    Parameters
    ----------
    direction
        Where the small population lies from the main one, one value per dimension
        (``[1, 1]``: high on both, CD24hi CD38hi; ``[1, -1]``: CD25+ CD127lo).
    support_fraction
        Share of the events the robust main estimate rests on (0.5 tolerates up to half the events
        belonging to other populations).
    nu
        Degrees of freedom of both t components (> 2; 4 as flowClust).
    posterior
        Posterior of the small component at which the line is drawn (0.5 = Bayes boundary).
    min_small
        Fewest events the small component must hold to be believed.
    fallback_offset
        Fallback cut, in main-population SDs along ``direction``.
    max_iter, tol
        EM stopping rule (largest change of the small component's mean, relative to the main
        population's SD).
    min_separation
        Smallest Mahalanobis distance (in main-population SDs) between the two means for the small
        component to count as a separate population; closer, it is a shoulder of the main one
        (heavier or lighter tails than the t_ν model), and the gate falls back.
    small_shape
        ``'main'``: the small component's scatter is ``c·Σ₀`` (same shape and orientation as the
        main population, only its size ``c`` is fitted; stable with a few dozen events);
        ``'free'``: a full scatter matrix is fitted.
    max_exchanged
        Refinement only (more than two dimensions): the largest share of the 2-D gate's events
        the refined hyperplane may exchange for events outside it (0.5 = half); more, and the
        markers describe another split than the 2-D one, so the 2-D line is kept (flagged).
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).

    Notes
    -----
    With two dimensions the gate is the polygon of step 4 (the data's bounding box on the small
    side of the line); with more, a half-space over all of them.
    """

    name = "anchored_transitional"
    n_dims = None
    _parameter_constraints = {
        "direction": [
            Sequence([Interval(Real, None, None)], 2, (lambda v: any(v), "not both 0")),
            None,
        ],
        "support_fraction": [Interval(Real, 0, 1, closed="right")],
        "nu": [Interval(Real, 2, None, closed="neither")],
        "posterior": [Interval(Real, 0, 1, closed="neither")],
        "min_small": [Interval(Integral, 1, None)],
        "fallback_offset": [Interval(Real, None, None)],
        "max_iter": [Interval(Integral, 1, None)],
        "tol": [Interval(Real, 0, None)],
        "small_shape": [Options("main", "free")],
        "min_separation": [Interval(Real, 0, None)],
        "max_exchanged": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
        direction: list[float] | None = None,
        support_fraction: float = 0.5,
        nu: float = 4.0,
        posterior: float = 0.5,
        min_small: int = 10,
        fallback_offset: float = 2.5,
        max_iter: int = 200,
        tol: float = 1e-6,
        small_shape: Literal["main", "free"] = "main",
        min_separation: float = 2.0,
        max_exchanged: float = 0.5,
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.max_exchanged = max_exchanged
        self.min_separation = min_separation
        self.small_shape = small_shape
        self.direction = direction
        self.support_fraction = support_fraction
        self.nu = nu
        self.posterior = posterior
        self.min_small = min_small
        self.fallback_offset = fallback_offset
        self.max_iter = max_iter
        self.tol = tol

    def _direction(self) -> np.ndarray:
        u = np.asarray([1.0, 1.0] if self.direction is None else self.direction, dtype=np.float64)
        return u / np.linalg.norm(u)

    def fit(self, X) -> AnchoredTransitional:
        self._start()
        u = self._direction()
        Xall = self._as_matrix(X)
        if Xall.shape[1] < 2:
            raise GateError(self.name, f"works on 2 or more dimensions, got {Xall.shape[1]}")
        if np.any(Xall.std(axis=0) == 0):
            raise FitDeclined(self.name, "a dimension has no spread (all events equal)")
        X = Xall[:, :2]
        nu = float(self.nu)
        mu0, cov0, _ = robust_location_scatter(X, self.support_fraction)
        scale0 = cov0 * (nu - 2.0) / nu
        sd_u = float(np.sqrt(u @ cov0 @ u))
        self.main_mean_ = mu0
        self.main_covariance_ = cov0
        self.direction_ = u

        H = X[(X - mu0) @ u > 0]
        found = self._fit_small(H, mu0, scale0, nu, sd_u)
        reason = found if isinstance(found, str) else None
        if reason is None:
            mu1, scale1, w1, it, conv = found
            self.small_mean_ = mu1
            self.small_covariance_ = scale1 * nu / (nu - 2.0)
            self.small_weight_ = w1  # share of the half-plane's events
            self.small_fraction_ = w1 * H.shape[0] / X.shape[0]
            self.n_iter_ = it
            self.converged_ = conv
            delta = mu1 - mu0
            normal = np.linalg.solve((cov0 + self.small_covariance_) / 2.0, delta)
            loc = self._crossing(mu0, scale0, mu1, scale1, w1, nu)
            if loc is None:
                reason = (
                    f"the small component's posterior never reaches {self.posterior} between the "
                    "two means"
                )
            elif normal @ u <= 0:
                reason = "the Fisher direction points away from direction"
        if reason is not None:
            normal = u
            loc = mu0 + float(self.fallback_offset) * sd_u * u
            self._fall_back(
                f"{reason}; used the main peak + {self.fallback_offset} SD along direction"
            )
        self.normal_ = normal / np.linalg.norm(normal)
        self.gate_location_ = loc
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = X.std(axis=0, ddof=1) + (hi - lo)
        verts = _clip_box(lo - pad, hi + pad, loc, self.normal_)
        if verts.shape[0] < 3:
            raise FitDeclined(self.name, "the cut line leaves no region inside the data's range")
        if Xall.shape[1] == 2:
            self.vertices_ = verts
        else:
            self._refine(Xall, small=reason is None)
        return self

    def _refine(self, X: np.ndarray, *, small: bool) -> None:
        """Step 5: the events beyond the 2-D line, re-chosen along the n-D Fisher direction."""
        nu = float(self.nu)
        d = X.shape[1]
        n2, loc2 = self.normal_, self.gate_location_
        start = (X[:, :2] - loc2) @ n2 >= 0
        self.line_normal_, self.line_location_ = n2, loc2
        self.n_start_ = int(start.sum())
        self.span_ = float(max(np.ptp(X, axis=0).max(), 1e-3))
        mu0, cov0, _ = robust_location_scatter(X, self.support_fraction)
        self.refine_main_mean_ = mu0
        self.refine_main_covariance_ = cov0
        line = (np.r_[n2, np.zeros(d - 2)], np.r_[loc2, mu0[2:]])
        self.normal_, self.gate_location_ = line
        self.refined_ = False
        if not small:  # the 2-D fit fell back (flagged, with its reason): keep its line
            return
        reason = None
        if self.n_start_ in (0, X.shape[0]):
            reason = f"the 2-D line gates {self.n_start_} of {X.shape[0]} events"
        if reason is None:
            p = self._posterior_2d(X[:, :2], nu)
            mu1 = (p @ X) / p.sum()
            w = np.linalg.solve(cov0, mu1 - mu0)
            self.refine_small_mean_ = mu1
            if w[:2] @ n2 <= 0:
                reason = "the n-D Fisher direction points away from the small component in 2-D"
            else:
                w = w / np.linalg.norm(w)
                s = X @ w
                order = np.sort(s)[::-1]
                k = self.n_start_
                t = 0.5 * (order[k - 1] + order[k])
                refined = s >= t
                moved = float(np.sum(refined & ~start)) / k
                self.exchanged_fraction_ = moved
                if moved > self.max_exchanged:
                    reason = (
                        f"the n-D hyperplane exchanges {moved:.0%} of the 2-D gate's events "
                        f"(> max_exchanged {self.max_exchanged:.0%})"
                    )
                else:
                    self.normal_ = w
                    self.gate_location_ = mu0 + (t - mu0 @ w) * w
        self.refined_ = reason is None
        if reason is not None:
            note = f"{reason}; kept the 2-D line"
            self._fall_back(f"{self.reason_}; {note}" if self.reason_ else note)

    def _posterior_2d(self, X2: np.ndarray, nu: float) -> np.ndarray:
        """Posterior of the small component under the 2-D fit (0 on the main side of ``μ₀``)."""
        mu0, mu1, w1 = self.main_mean_, self.small_mean_, self.small_weight_
        scale0 = self.main_covariance_ * (nu - 2.0) / nu
        scale1 = self.small_covariance_ * (nu - 2.0) / nu
        l0 = np.log(2.0) + t_logpdf(X2, mu0, scale0, nu)
        p = _small_posterior(l0, t_logpdf(X2, mu1, scale1, nu), w1)
        p[(X2 - mu0) @ self.direction_ <= 0] = 0.0
        return p

    def _fit_small(self, H, mu0, scale0, nu, sd_u):
        """EM for the small component on the half-plane events (main fixed); a reason string
        when there is none."""
        n = H.shape[0]
        k0 = max(int(self.min_small), int(np.ceil(0.1 * n)))
        if n < 2 * int(self.min_small) or k0 < 3:
            return f"only {n} events beyond the main peak along direction"
        d2 = _maha(H, mu0, scale0)
        seed_rows = np.argsort(d2, kind="stable")[-k0:]
        mu1 = H[seed_rows].mean(axis=0)
        reg = 1e-6 * np.diag(np.diag(scale0))
        scale1 = np.cov(H[seed_rows].T, ddof=0) * (nu - 2.0) / nu + reg
        w1 = 0.1
        l0 = np.log(2.0) + t_logpdf(H, mu0, scale0, nu)
        conv, n_iter = False, 0
        for n_iter in range(1, int(self.max_iter) + 1):  # noqa: B007 (reported after the loop)
            try:
                l1 = t_logpdf(H, mu1, scale1, nu)
            except np.linalg.LinAlgError:
                return "the small component collapsed (singular scatter)"
            tau = _small_posterior(l0, l1, w1)
            sk = float(tau.sum())
            if sk < 1.0:
                return "the small component emptied"
            uw = tau * (nu + 2.0) / (nu + _maha(H, mu1, scale1))
            new_mu = (uw @ H) / uw.sum()
            dm = H - new_mu
            new_scale = (dm * uw[:, None]).T @ dm / sk + reg
            if self.small_shape == "main":  # Σ₁ = c·Σ₀: only the size c is free
                c = float(np.trace(np.linalg.solve(scale0, new_scale))) / H.shape[1]
                new_scale = c * scale0
            step = float(np.max(np.abs(new_mu - mu1)))
            w1 = min(sk / n, 1.0 - 1e-9)
            mu1, scale1 = new_mu, new_scale
            if step <= self.tol * sd_u:
                conv = True
                break
        if w1 * n < self.min_small:
            return f"the small component holds {w1 * n:.1f} events (< min_small {self.min_small})"
        u = self.direction_
        if not np.all(np.sign(mu1 - mu0)[u != 0] == np.sign(u)[u != 0]):
            return (
                f"the small component (mean {np.round(mu1, 3).tolist()}) is not on the "
                f"direction side of the main peak (mean {np.round(mu0, 3).tolist()}) on every axis"
            )
        sep = float(np.sqrt((mu1 - mu0) @ np.linalg.solve(scale0 * nu / (nu - 2.0), mu1 - mu0)))
        if sep < self.min_separation:
            return (
                f"the small component is only {sep:.2f} main SDs from the main peak "
                f"(< min_separation {self.min_separation}): a shoulder, not a separate population"
            )
        return mu1, scale1, float(w1), n_iter, conv

    def _crossing(self, mu0, scale0, mu1, scale1, w1, nu):
        """First point of the segment μ₀→μ₁ where the small posterior reaches ``posterior``
        (the main density is twice a t density: only the half beyond μ₀ is modelled)."""
        return posterior_crossing(mu0, scale0, mu1, scale1, w1, nu, self.posterior, main_factor=2.0)

    def to_gate(self, dims, side: str | None = None) -> Gate:
        if side is not None and not (set(side) == {"+"} and len(side) in (1, len(dims))):
            raise GateError(self.name, f"a region: side must be '+' or absent, got {side!r}")
        if self.normal_.size == 2:  # two dimensions: the polygon of step 4
            return PolygonGate(dims, self.vertices_)
        return halfspace_gate(dims, self.gate_location_, self.normal_, self.span_)
