"""Student-t pieces shared by the anchored transitional and half-space estimators: the log density
of a multivariate t, and where the posterior of one t component against another crosses a level
on the segment between their centres."""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import gammaln

__all__ = ["posterior_crossing", "t_logpdf"]


def posterior_crossing(mu0, scale0, mu1, scale1, w1, nu, posterior, *, main_factor=1.0):
    """First point of the segment μ₀→μ₁ where the posterior of component 1 (weight ``w1``,
    t_ν(μ₁, scale1)) against component 0 (weight ``1 − w1``, ``main_factor`` × t_ν(μ₀, scale0))
    reaches ``posterior``: a grid of 401 steps, then Brent's method in the first step that reaches
    it. ``None`` when it is never reached; μ₀ when it is reached there already."""
    lp = np.log(posterior) - np.log1p(-posterior)

    def logit(s: float | np.ndarray) -> np.ndarray:
        P = mu0 + np.atleast_1d(s)[:, None] * (mu1 - mu0)
        return (
            np.log(w1)
            + t_logpdf(P, mu1, scale1, nu)
            - np.log1p(-w1)
            - np.log(main_factor)
            - t_logpdf(P, mu0, scale0, nu)
            - lp
        )

    s = np.linspace(0.0, 1.0, 401)
    above = np.flatnonzero(logit(s) >= 0)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return mu0.copy()
    root = optimize.brentq(lambda t: float(logit(t)[0]), s[i - 1], s[i], xtol=1e-10)
    return mu0 + root * (mu1 - mu0)


def t_logpdf(X: np.ndarray, mu: np.ndarray, scale: np.ndarray, nu: float) -> np.ndarray:
    """Log density of a multivariate Student-t with scale matrix ``scale``."""
    d = X.shape[1]
    L = np.linalg.cholesky(scale)
    z = np.linalg.solve(L, (X - mu).T)
    m = np.einsum("ij,ij->j", z, z)
    return (
        gammaln((nu + d) / 2)
        - gammaln(nu / 2)
        - 0.5 * d * np.log(nu * np.pi)
        - np.sum(np.log(np.diag(L)))
        - 0.5 * (nu + d) * np.log1p(m / nu)
    )
