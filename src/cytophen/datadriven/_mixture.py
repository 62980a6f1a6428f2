"""Finite mixtures for gating: Gaussian (scikit-learn) or multivariate Student-t with fixed ν.

Why two kinds of tails: flow populations have heavier tails than a Gaussian (doublets, spill-over
spread, dim shoulders). A Gaussian mixture then spends extra components on the tails or lets one
broad component swallow a rare population; a t mixture with ν = 4 (the flowClust model openCyto
uses) down-weights those events in the M step (weights ``u = (ν + d) / (ν + δ²)``), so component
means and scale matrices describe the body of each population. ``tails='t'`` is the default;
``tails='gaussian'`` uses :class:`sklearn.mixture.GaussianMixture` as is.

The t mixture is fitted by EM (McLachlan & Peel 2000, ch. 7) started from the Gaussian mixture
fitted with scikit-learn (k-means initialisation, ``random_state``), so it is deterministic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp
from sklearn.mixture import GaussianMixture

__all__ = ["Mixture", "fit_mixture"]


@dataclass
class Mixture:
    """A fitted mixture: weights (K,), means (K, d), scale/covariance matrices (K, d, d)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    tails: str
    nu: float
    n_iter: int
    converged: bool

    def log_components(self, X: np.ndarray) -> np.ndarray:
        """``log(w_k) + log f_k(x)`` for every row of ``X`` (n, K)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        n, d = X.shape
        K = self.weights.size
        out = np.empty((n, K))
        for k in range(K):
            cov = self.covariances[k]
            chol = np.linalg.cholesky(cov)
            z = np.linalg.solve(chol, (X - self.means[k]).T)
            maha = np.sum(z * z, axis=0)
            logdet = 2.0 * np.sum(np.log(np.diag(chol)))
            if self.tails == "gaussian":
                lf = -0.5 * (d * np.log(2 * np.pi) + logdet + maha)
            else:
                nu = self.nu
                lf = (
                    gammaln((nu + d) / 2)
                    - gammaln(nu / 2)
                    - 0.5 * d * np.log(nu * np.pi)
                    - 0.5 * logdet
                    - 0.5 * (nu + d) * np.log1p(maha / nu)
                )
            out[:, k] = np.log(self.weights[k]) + lf
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        lc = self.log_components(X)
        return np.exp(lc - logsumexp(lc, axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.log_components(X), axis=1)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Log mixture density at each row."""
        return logsumexp(self.log_components(X), axis=1)

    def sorted_by_first_mean(self) -> Mixture:
        o = np.argsort(self.means[:, 0], kind="stable")
        return Mixture(
            self.weights[o],
            self.means[o],
            self.covariances[o],
            self.tails,
            self.nu,
            self.n_iter,
            self.converged,
        )


def _init_1d(x: np.ndarray, K: int):
    """flowClust's 1-D start: split at the K-quantiles, per-bin means, variances and weights."""
    qs = np.quantile(x, np.linspace(0, 1, K + 1))
    lab = np.clip(np.searchsorted(qs[1:-1], x, side="right"), 0, K - 1)
    w = np.bincount(lab, minlength=K) / x.size
    mu = np.array([x[lab == k].mean() if np.any(lab == k) else qs[k] for k in range(K)])
    var = np.array([x[lab == k].var() if np.sum(lab == k) > 1 else 0.0 for k in range(K)])
    var = np.maximum(var, 1e-6 * max(np.var(x), 1e-12))
    return w, mu[:, None], var[:, None, None]


#: Events on which the ``n_init`` starts of :func:`fit_mixture` are compared.
INIT_SAMPLE = 5000


def _best_start(X, K, reg, max_iter, random_state, n_init) -> GaussianMixture:
    """An unfitted GaussianMixture started from k-means++ (seed ``random_state``) or, with
    ``n_init > 1``, from the best of ``n_init`` starts compared on a seeded subsample."""
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")

    def model(seed, **start):
        return GaussianMixture(
            K,
            covariance_type="full",
            init_params="k-means++",
            reg_covar=reg,
            max_iter=max_iter,
            tol=1e-4,
            random_state=seed,
            **start,
        )

    if n_init == 1:
        return model(random_state)
    n = X.shape[0]
    sub = X
    if n > INIT_SAMPLE:
        rng = np.random.default_rng(random_state)
        sub = X[np.sort(rng.choice(n, INIT_SAMPLE, replace=False))]
    best, best_ll = None, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n_init):
            g = model(random_state + i).fit(sub)
            ll = float(g.score(sub))
            if ll > best_ll:
                best, best_ll = g, ll
    return model(
        random_state,
        weights_init=best.weights_,
        means_init=best.means_,
        precisions_init=best.precisions_,
    )


def fit_mixture(
    X: np.ndarray,
    n_components: int,
    *,
    tails: str = "t",
    nu: float = 4.0,
    random_state: int = 0,
    max_iter: int = 200,
    tol: float = 1e-5,
    n_init: int = 1,
) -> Mixture:
    """Fit a K-component mixture to ``X`` (n, d).

    Parameters
    ----------
    X
        Finite values, ``n >= n_components * (d + 1)``.
    n_components
        K.
    tails
        ``'t'`` (Student-t components, fixed ``nu``) or ``'gaussian'``.
    nu
        Degrees of freedom of the t components (flowClust's default 4).
    random_state
        Seed of the k-means initialisation (multi-dimensional data; 1-D data starts from quantile bins).
    max_iter, tol
        EM stopping rule: relative change of the log-likelihood below ``tol``.
    n_init
        Number of k-means++ starts (multi-dimensional data). With more than one, each start
        (seeds ``random_state``, ``random_state + 1``, ...) runs the Gaussian EM on the same seeded
        subsample of at most :data:`INIT_SAMPLE` events, and the start of highest log-likelihood
        there begins the fit on all events: a single start can leave a small, well-separated
        cloud (debris next to lymphocytes) without a component of its own, which then widens a
        neighbouring one. Deterministic; costs about ``n_init`` EM runs on the subsample.

    Returns
    -------
    Mixture
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    n, d = X.shape
    K = int(n_components)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    reg = 1e-6 * scale**2
    # for t tails the Gaussian fit is only the starting point of the t EM: a few iterations do
    init_iter = max_iter if tails == "gaussian" else 25
    if d == 1:
        w, mu, cov = _init_1d(X[:, 0], K)
        gm = GaussianMixture(
            K,
            covariance_type="full",
            weights_init=w,
            means_init=mu,
            precisions_init=np.linalg.inv(cov),
            reg_covar=float(reg[0]),
            max_iter=init_iter,
            tol=1e-4,
            random_state=random_state,
        )
    else:
        gm = _best_start(X, K, float(reg.min()), init_iter, random_state, int(n_init))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    w = gm.weights_.copy()
    mu = gm.means_.copy()
    cov = gm.covariances_.copy()
    if tails == "gaussian":
        return Mixture(w, mu, cov, "gaussian", np.inf, int(gm.n_iter_), bool(gm.converged_))
    # EM for the t mixture (fixed nu): one Mahalanobis pass per component and iteration
    mix = Mixture(w, mu, cov, "t", float(nu), 0, False)
    prev = -np.inf
    eye = np.eye(d)
    const = gammaln((nu + d) / 2) - gammaln(nu / 2) - 0.5 * d * np.log(nu * np.pi)
    maha = np.empty((n, K))
    lc = np.empty((n, K))
    for it in range(1, max_iter + 1):
        for k in range(K):
            chol = np.linalg.cholesky(mix.covariances[k])
            z = (X - mix.means[k]) @ np.linalg.inv(chol).T
            maha[:, k] = np.einsum("ij,ij->i", z, z)
            logdet = 2.0 * np.sum(np.log(np.diag(chol)))
            lc[:, k] = (
                np.log(mix.weights[k])
                + const
                - 0.5 * logdet
                - 0.5 * (nu + d) * np.log1p(maha[:, k] / nu)
            )
        top = lc.max(axis=1, keepdims=True)
        tau = np.exp(lc - top)
        tot = tau.sum(axis=1, keepdims=True)
        ll = float(np.sum(np.log(tot) + top))
        tau /= tot
        new_w = np.empty(K)
        new_mu = np.empty((K, d))
        new_cov = np.empty((K, d, d))
        for k in range(K):
            tk = tau[:, k]
            sk = tk.sum()
            if sk <= 1e-9 * n:  # an empty component: keep it, tiny weight
                new_w[k], new_mu[k], new_cov[k] = 1e-12, mix.means[k], mix.covariances[k]
                continue
            tu = tk * ((nu + d) / (nu + maha[:, k]))
            m = (tu @ X) / tu.sum()
            dm = X - m
            c = (dm * tu[:, None]).T @ dm / sk + eye * reg
            new_w[k], new_mu[k], new_cov[k] = sk / n, m, c
        new_w /= new_w.sum()
        converged = np.isfinite(prev) and abs(ll - prev) <= tol * abs(ll)
        mix = Mixture(new_w, new_mu, new_cov, "t", float(nu), it, bool(converged))
        if converged:
            break
        prev = ll
    return mix
