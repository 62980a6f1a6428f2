"""The tests behind :mod:`cytophen.clinical.stats`, on plain arrays (one value per subject).

Each returns its statistic, its p-value and ``min_p``: the smallest p-value the test could give
with this many subjects, whatever the data, so that a table can say when no p below 0.05 was
possible. The small-sample tests are exact: their null distributions are enumerated (every
pairing for Spearman, every split into groups for Mann-Whitney), so ties are handled exactly too.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as _st

#: Spearman's p is exact (all n! pairings) up to this many subjects, the t approximation beyond.
SPEARMAN_EXACT_MAX = 8
#: Mann-Whitney's p is exact while the number of splits into the two groups is at most this.
MANN_WHITNEY_EXACT_MAX = 200_000

_NAN = float("nan")


def _finite(*arrays: np.ndarray) -> list[np.ndarray]:
    arrs = [np.asarray(a, dtype=float) for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrs])
    return [a[ok] for a in arrs]


def _two_sided(null: np.ndarray, observed: float, centre: float) -> float:
    """Share of the null distribution at least as far from ``centre`` as ``observed``."""
    dev = np.abs(null - centre)
    tol = 1e-9 * max(1.0, float(np.abs(null).max()))
    return float(np.mean(dev >= abs(observed - centre) - tol))


def wilcoxon_signed_rank(x) -> dict:
    """Two-sided Wilcoxon signed-rank test of ``x`` against zero (scipy, ``method='auto'``:
    exact for n <= 50 without ties or zeros). Zeros are dropped (``zero_method='wilcox'``); ``n``
    counts the finite values, ``min_p = 2 / 2**n_nonzero`` (all changes of one sign)."""
    (x,) = _finite(x)
    nz = int(np.count_nonzero(x))
    out = dict(n=int(x.size), statistic=_NAN, p_value=_NAN, min_p=min(1.0, 2.0 / 2.0**nz))
    if nz == 0:
        out["min_p"] = _NAN
        return out
    res = _st.wilcoxon(x, method="auto", zero_method="wilcox")
    out.update(statistic=float(res.statistic), p_value=float(res.pvalue))
    return out


def spearman(x, y) -> dict:
    """Spearman's rho with a two-sided p: exact for ``n <= SPEARMAN_EXACT_MAX`` (the share of
    the n! pairings of the ranks whose |rho| is at least the observed one; midranks for ties),
    scipy's t approximation beyond. Needs 3 pairs and variation in both."""
    x, y = _finite(x, y)
    n = int(x.size)
    out = dict(n=n, r=_NAN, p_value=_NAN, min_p=_NAN, exact=n <= SPEARMAN_EXACT_MAX)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    rx, ry = _st.rankdata(x), _st.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float(rx @ rx) * float(ry @ ry))
    rho = float(rx @ ry) / scale
    out["r"] = rho
    if n <= SPEARMAN_EXACT_MAX:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.intp)
        null = (ry[perms] @ rx) / scale
        out["p_value"] = _two_sided(null, rho, 0.0)
        out["min_p"] = _two_sided(null, float(np.abs(null).max()), 0.0)
    else:
        out["p_value"] = float(_st.spearmanr(x, y).pvalue)
        out["min_p"] = 0.0
    return out


def rmcorr(subject, x, y) -> dict:
    """Repeated-measures correlation (Bakdash & Marusich 2017, Front. Psychol. 8:456).

    The common within-subject slope: x and y are centred on each subject's own mean, and
    ``r = sum(xc*yc) / sqrt(sum(xc**2) * sum(yc**2))``; ``df = N - k - 1`` for N observations of
    k subjects (subjects with fewer than two observations add nothing and are not counted), and
    ``p`` is the two-sided t test of ``t = r * sqrt(df / (1 - r**2))``.
    """
    subject = np.asarray(subject)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    subject, x, y = subject[ok], x[ok], y[ok]
    codes, inverse, counts = np.unique(subject, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= 2
    k = int((counts >= 2).sum())
    n_obs = int(keep.sum())
    df = n_obs - k - 1
    out = dict(n=k, n_observations=n_obs, df=df, r=_NAN, p_value=_NAN, min_p=_NAN)
    if df < 1:
        return out
    inverse, x, y = inverse[keep], x[keep], y[keep]
    size = np.bincount(inverse).astype(float)
    size[size == 0] = 1.0
    xc = x - (np.bincount(inverse, weights=x) / size)[inverse]
    yc = y - (np.bincount(inverse, weights=y) / size)[inverse]
    sxx, syy = float(xc @ xc), float(yc @ yc)
    out["min_p"] = 0.0
    if sxx <= 0 or syy <= 0:
        return out
    r = float(np.clip((xc @ yc) / math.sqrt(sxx * syy), -1.0, 1.0))
    out["r"] = r
    if abs(r) == 1.0:
        out["p_value"] = 0.0
    else:
        t = r * math.sqrt(df / (1.0 - r * r))
        out["p_value"] = float(2.0 * _st.t.sf(abs(t), df))
    return out


def mann_whitney(a, b) -> dict:
    """Two-sided Mann-Whitney U test of group ``a`` against group ``b``.

    ``U`` counts the pairs in which a's value is the larger (ties count a half). The p-value is
    exact while the splits of the pooled subjects into groups of these sizes number at most
    :data:`MANN_WHITNEY_EXACT_MAX` (the share of splits whose U is at least as far from its mean
    ``n_a * n_b / 2`` as the observed U; midranks for ties), else scipy's normal approximation.
    """
    a, b = _finite(a)[0], _finite(b)[0]
    na, nb = int(a.size), int(b.size)
    out = dict(n_a=na, n_b=nb, U=_NAN, p_value=_NAN, min_p=_NAN, exact=True)
    if na == 0 or nb == 0:
        return out
    pooled = np.concatenate([a, b])
    ranks = _st.rankdata(pooled)
    u = float(ranks[:na].sum() - na * (na + 1) / 2.0)
    out["U"] = u
    centre = na * nb / 2.0
    if math.comb(na + nb, na) <= MANN_WHITNEY_EXACT_MAX:
        splits = np.array(list(itertools.combinations(range(na + nb), na)), dtype=np.intp)
        null = ranks[splits].sum(axis=1) - na * (na + 1) / 2.0
        out["p_value"] = _two_sided(null, u, centre)
        out["min_p"] = _two_sided(null, float(null[np.argmax(np.abs(null - centre))]), centre)
    else:
        out["exact"] = False
        res = _st.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
        out["p_value"] = float(res.pvalue)
        out["min_p"] = 0.0
    return out
