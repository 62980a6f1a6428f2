"""Two populations split by a hyperplane on several markers, started from a 1-D cut on the first.

Why: a 1-D cut uses one marker's information only. When two populations also differ (less) on
other markers, e.g. unswitched memory vs naive B cells (CD27, and also CD24 and CD38), the cells
of the smaller population that fall across the 1-D valley (dim cells, compensation spread) are
still recognisable on the other markers. Fitting a free mixture in several dimensions is fragile
(the components may split a heterogeneous population along another marker instead), so the
mixture is started from, and anchored to, the 1-D cut the template would otherwise use.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import gammaln

from cytophen.datadriven._base import SEED, GateEstimator
from cytophen.datadriven._constraints import Interval, Options
from cytophen.datadriven._registry import CutSpec, make_cut
from cytophen.datadriven._student_t import posterior_crossing
from cytophen.errors import GateError
from cytophen.gates import EllipsoidGate, Gate

__all__ = ["MixtureHalfspace", "HALFSPACE_RADIUS"]

#: The half-space is placed as an n-D ball of this radius (in units of the data's largest span)
#: whose surface touches the hyperplane at the cut point: inside the data's range the surface
#: departs from the plane by less than ``d * span / (2 * HALFSPACE_RADIUS)`` (2e-4 logicle units
#: for 3 logicle dimensions), and an ellipsoid is a gate every consumer (GatingML 2.0) knows.
HALFSPACE_RADIUS = 1.0e4


def halfspace_gate(dims, point: np.ndarray, normal: np.ndarray, span: float) -> EllipsoidGate:
    """The half-space ``(x - point)·normal >= 0`` as the ball of radius ``HALFSPACE_RADIUS *
    span`` whose surface touches the hyperplane at ``point`` (``normal`` of unit length)."""
    r = HALFSPACE_RADIUS * span
    return EllipsoidGate(dims, point + r * normal, np.eye(normal.size), r * r)


def _t_logpdf_maha(X: np.ndarray, mu: np.ndarray, scale: np.ndarray, nu: float):
    """Student-t log density and squared Mahalanobis distance, from one Cholesky factor."""
    d = X.shape[1]
    L = np.linalg.cholesky(scale)
    z = solve_triangular(L, (X - mu).T, lower=True, check_finite=False)
    m = np.einsum("ij,ij->j", z, z)
    lp = (
        gammaln((nu + d) / 2)
        - gammaln(nu / 2)
        - 0.5 * d * np.log(nu * np.pi)
        - np.sum(np.log(np.diag(L)))
        - 0.5 * (nu + d) * np.log1p(m / nu)
    )
    return lp, m


class MixtureHalfspace(GateEstimator):
    """The side of a Fisher hyperplane between two t components started from a 1-D cut.

    How it decides (deterministic; no random start):

    1. **1-D cut.** The first dimension is cut by ``cut`` (any registered 1-D method, default
       ``mindensity``): the events above it start the positive component, the rest the negative.
    2. **Two t components.** EM for a 2-component Student-t mixture (fixed ``nu``, full scatter
       matrices) on all dimensions, started from the two sides' means, covariances and shares.
    3. **Hyperplane.** Normal ``w = ((Σ₀+Σ₁)/2)⁻¹(μ₁−μ₀)`` (Fisher's direction, Σ the component
       covariances), through the point of the segment ``μ₀→μ₁`` where the positive component's
       posterior first reaches ``posterior`` (0.5 = Bayes boundary, which minimises the events
       put on the wrong side). Side ``'+'``: the positive component's side; ``'-'`` the other
       (templates may write the sign once per dimension: ``'+++'``, ``'---'``).

    **Fallback (flagged):** the gate is the 1-D cut itself (the hyperplane ``x₀ = cut``) when
    either side of the cut holds fewer than ``min_side`` events, EM moves the positive
    component's mean below the negative one's on the first dimension or leaves it fewer than
    ``min_side`` events, ``w`` does not increase with the first dimension, the posterior never
    reaches ``posterior`` between the means, or the hyperplane puts more than ``max_moved`` of the
    events on the other side than the 1-D cut does (the mixture then describes another split,
    e.g. of a heterogeneous population along another marker, not a refinement of the cut).
    ``moved_fraction`` (recorded) is that share.

    The half-space is returned as an :class:`~cytophen.gates.EllipsoidGate` (a ball of radius
    ``HALFSPACE_RADIUS`` × the data's span touching the plane at the cut point; see
    :data:`HALFSPACE_RADIUS`).

    Parameters
    ----------
    cut
        The first dimension's 1-D method and its arguments, e.g.
        ``{method: mindensity, gate_range: [0.25, 0.55]}`` (``method`` defaults to mindensity).
    nu
        Degrees of freedom of both t components (> 2).
    posterior
        Posterior of the positive component at which the hyperplane is drawn.
    max_moved
        Largest share of the events the hyperplane may move across the 1-D cut (0.1 = 10 %).
    min_side
        Fewest events each side of the 1-D cut (and the fitted positive component) must hold.
    max_iter, tol
        EM stopping rule: largest change of a mean, relative to the first dimension's SD.
    random_state
        Passed to the 1-D method if it takes one.
    too_few
        What happens with fewer events than the method needs (``min_events``, or the 1-D cut's
        own minimum): ``'decline'`` (default: the population is not measured) or ``'empty'``: the
        half-space is placed beyond the data on the first dimension (an empty region, e.g. no
        plasmablasts in a small file, so that a population built on it stays measured), flagged
        ``fell_back_``. Set ``min_events`` too to choose the count below which it is empty.
    min_events
        Fewest finite events the gate is fitted on (fewer: not measured); ``None``: the
        method's own minimum (see :meth:`~GateEstimator.required_events`).
    """

    name = "mixture_halfspace"
    n_dims = None
    _parameter_constraints = {
        "cut": [CutSpec(), None],
        "nu": [Interval(Real, 2, None, closed="neither")],
        "posterior": [Interval(Real, 0, 1, closed="neither")],
        "min_side": [Interval(Integral, 2, None)],
        "max_moved": [Interval(Real, 0, 1, closed="right")],
        "max_iter": [Interval(Integral, 1, None)],
        "tol": [Interval(Real, 0, None)],
        "random_state": SEED,
        "too_few": [Options("decline", "empty")],
    }

    def __init__(
        self,
        cut: dict[str, Any] | None = None,
        nu: float = 4.0,
        posterior: float = 0.5,
        min_side: int = 10,
        max_moved: float = 0.1,
        max_iter: int = 200,
        tol: float = 1e-6,
        random_state: int = 0,
        too_few: Literal["decline", "empty"] = "decline",
        min_events: int | None = None,
    ):
        self.min_events = min_events
        self.cut = cut
        self.nu = nu
        self.posterior = posterior
        self.min_side = min_side
        self.max_moved = max_moved
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.too_few = too_few

    def _first_cut(self):
        return make_cut(self.cut, self.random_state)

    def _needed(self) -> int:
        """Events below which ``too_few`` applies: ``min_events`` (default 50), and at least the
        1-D cut's own minimum."""
        own = self.default_min_events if self.min_events is None else int(self.min_events)
        return max(own, self._first_cut().required_events())

    def required_events(self) -> int:
        # with too_few='empty' the estimator itself places an empty region below its minimum
        if self.too_few == "empty":
            return 0
        return int(self.min_events) if self.min_events is not None else self._needed()

    def fit(self, X) -> MixtureHalfspace:
        self._start()
        self.empty_ = False
        if self.too_few == "empty":
            Xa = np.asarray(X, dtype=np.float64)
            if Xa.ndim == 2 and Xa.shape[1] >= 2:
                Xa = Xa[np.all(np.isfinite(Xa), axis=1)]
                if Xa.shape[0] < self._needed():
                    return self._empty(Xa)
        X = self._as_matrix(X)
        n, d = X.shape
        if d < 2:
            raise GateError(self.name, f"works on 2 or more dimensions, got {d}")
        cut = float(self._first_cut().fit(X[:, :1]).threshold_)
        self.first_cut_ = cut
        hi = X[:, 0] > cut
        sd0 = float(X[:, 0].std()) or 1.0
        e0 = np.zeros(d)
        e0[0] = 1.0
        reason = None
        if min(int(hi.sum()), int((~hi).sum())) < int(self.min_side):
            reason = (
                f"{int(hi.sum())} / {int((~hi).sum())} events above / below the first cut "
                f"(< min_side {self.min_side})"
            )
        else:
            found = self._em(X, hi, sd0)
            if isinstance(found, str):
                reason = found
            else:
                mu0, s0, mu1, s1, w1, it, conv = found
                nu = float(self.nu)
                c0, c1 = s0 * nu / (nu - 2.0), s1 * nu / (nu - 2.0)
                normal = np.linalg.solve((c0 + c1) / 2.0, mu1 - mu0)
                loc = self._crossing(mu0, s0, mu1, s1, w1)
                self.means_ = np.vstack([mu0, mu1])
                self.covariances_ = np.stack([c0, c1])
                self.weights_ = np.array([1.0 - w1, w1])
                self.n_iter_ = it
                self.converged_ = conv
                if normal[0] <= 0:
                    reason = "the discriminant direction does not increase with the first dimension"
                elif loc is None:
                    reason = (
                        f"the positive component's posterior never reaches {self.posterior} "
                        "between the two means"
                    )
                else:
                    moved = float(np.mean(((X - loc) @ normal >= 0) != hi))
                    self.moved_fraction_ = moved
                    if moved > self.max_moved:
                        reason = (
                            f"the hyperplane moves {moved:.1%} of the events across the 1-D cut "
                            f"(> max_moved {self.max_moved:.0%}): another split, not a refinement"
                        )
        if reason is not None:
            normal, loc = e0, np.r_[cut, X[:, 1:].mean(axis=0)]
            self._fall_back(f"{reason}; used the 1-D cut on the first dimension")
        self.normal_ = normal / np.linalg.norm(normal)
        self.point_ = loc
        self.span_ = float(max(np.ptp(X, axis=0).max(), 1e-3))
        return self

    def _empty(self, X: np.ndarray) -> MixtureHalfspace:
        """Too few events: a half-space beyond the data on the first dimension (no event of the
        parent inside, whichever side the template asks for; see :meth:`to_gate`)."""
        n, d = X.shape
        x0 = X[:, 0]
        self.empty_ = True
        self.empty_bounds_ = (
            float(np.min(x0, initial=0.0)) - 1.0,
            float(np.max(x0, initial=0.0)) + 1.0,
        )
        self.first_cut_ = None
        self.normal_ = np.eye(d)[0]
        self.point_ = np.r_[self.empty_bounds_[1], X[:, 1:].mean(axis=0) if n else np.zeros(d - 1)]
        self.span_ = float(max(np.ptp(X, axis=0).max(), 1e-3)) if n else 1.0
        self._fall_back(f"only {n} events (needs {self._needed()}); empty region")
        return self

    def _em(self, X, hi, sd0):
        """EM of the two t components from the two sides of the cut; a reason string on failure."""
        n, d = X.shape
        nu = float(self.nu)
        reg = 1e-6 * np.diag(np.maximum(X.var(axis=0), 1e-12))
        mus = [X[~hi].mean(axis=0), X[hi].mean(axis=0)]
        ss = [np.cov(X[s].T, ddof=0).reshape(d, d) * (nu - 2.0) / nu + reg for s in (~hi, hi)]
        w1 = float(hi.mean())
        conv, it = False, 0
        for it in range(1, int(self.max_iter) + 1):  # noqa: B007 (reported after the loop)
            try:
                (l0, m0), (l1, m1) = (_t_logpdf_maha(X, mus[k], ss[k], nu) for k in (0, 1))
            except np.linalg.LinAlgError:
                return "a component collapsed (singular scatter)"
            a = np.log1p(-w1) + l0
            b = np.log(w1) + l1
            tau1 = np.exp(b - np.logaddexp(a, b))
            new_mu, new_s = [], []
            for tk, mk in ((1.0 - tau1, m0), (tau1, m1)):
                sk = float(tk.sum())
                if sk < 1.0:
                    return "a component emptied"
                u = tk * (nu + d) / (nu + mk)
                m = (u @ X) / u.sum()
                dm = X - m
                new_mu.append(m)
                new_s.append((dm * u[:, None]).T @ dm / sk + reg)
            step = max(float(np.max(np.abs(new_mu[k] - mus[k]))) for k in (0, 1))
            mus, ss, w1 = new_mu, new_s, min(max(float(tau1.mean()), 1e-9), 1.0 - 1e-9)
            if step <= self.tol * sd0:
                conv = True
                break
        if mus[1][0] <= mus[0][0]:
            return (
                "the positive component's mean fell below the negative one's on the first dimension"
            )
        if w1 * n < int(self.min_side):
            return f"the positive component holds {w1 * n:.1f} events (< min_side {self.min_side})"
        return mus[0], ss[0], mus[1], ss[1], w1, it, conv

    def _crossing(self, mu0, s0, mu1, s1, w1):
        """First point of the segment μ₀→μ₁ where the positive posterior reaches ``posterior``."""
        return posterior_crossing(mu0, s0, mu1, s1, w1, float(self.nu), self.posterior)

    def to_gate(self, dims, side: str | None = None) -> Gate:
        d = self.normal_.size
        s = side or "+"
        if len(s) == d and len(set(s)) == 1:  # one sign per dimension, as templates write it
            s = s[0]
        if s not in ("+", "-"):
            raise GateError(
                self.name,
                f"side must be '+' or '-' (or that sign once per dimension, e.g. {'-' * d!r}), "
                f"got {side!r}",
            )
        n = self.normal_ if s == "+" else -self.normal_
        point = self.point_
        if self.empty_ and s == "-":  # beyond the data on the low side instead
            point = np.r_[self.empty_bounds_[0], self.point_[1:]]
        return halfspace_gate(dims, point, n, self.span_)
