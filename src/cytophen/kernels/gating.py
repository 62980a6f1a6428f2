"""Gate membership kernels. PLACEHOLDER numpy versions; the numba kernels replace these.

Signatures (the contract the gate classes rely on):
- points_in_rectangle(values (n,d) f8, lo (d,) f8, hi (d,) f8, open_hi (d,) bool) -> (n,) bool
- points_in_polygon(x (n,) f8, y (n,) f8, vx (m,) f8, vy (m,) f8) -> (n,) bool
- points_in_ellipsoid(values (n,d) f8, mean (d,) f8, inv_cov (d,d) f8, d2 f8) -> (n,) bool
NaN never inside.
"""

from __future__ import annotations

import numpy as np


def points_in_rectangle(values, lo, hi, open_hi):
    ok = np.ones(values.shape[0], dtype=np.bool_)
    for j in range(values.shape[1]):
        c = values[:, j]
        ok &= c >= lo[j]
        ok &= (c < hi[j]) | (open_hi[j] & ~np.isnan(c))
    return ok


def points_in_polygon(x, y, vx, vy):
    inside = np.zeros(x.shape[0], dtype=np.bool_)
    m = vx.shape[0]
    for i in range(m):
        x1, y1, x2, y2 = vx[i], vy[i], vx[(i + 1) % m], vy[(i + 1) % m]
        if y1 == y2:
            continue
        cond = (y1 <= y) != (y2 <= y)
        xint = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (x < xint)
    return inside


def points_in_ellipsoid(values, mean, inv_cov, d2):
    z = values - mean
    dist = np.einsum("ij,jk,ik->i", z, inv_cov, z)
    return dist <= d2
