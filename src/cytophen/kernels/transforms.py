"""Logicle and hyperlog kernels (numba, compiled once and cached on disk).

Both scales are defined implicitly: the scale value ``y`` of a data value ``v`` is the root of
``B(y) = v`` where ``B`` is the biexponential (logicle, Parks et al. 2006:
``B(y) = a e^{by} - c e^{-dy} - f``) or the exponential-plus-linear function of hyperlog
(Bagwell 2005: ``EH(y) = a e^{by} + c y - f``). The parameters are derived from the GatingML 2.0
``T, W, M, A`` exactly as the Moore-Parks reference code (and flowutils' C port of it) does,
including the 16-term Taylor series about ``x1`` (data zero) used near zero.

Logicle, fast path (:func:`logicle_scale`): a table indexed by the top bits of ``|v|``'s IEEE-754
pattern (exponent + 7 mantissa bits: 128 cells per octave, log-spaced) gives a linear
interpolation of the root within about 1e-6; one Halley step (cubic convergence, the same formula
as the reference solver) then makes it exact to a few ulps. The step needs ``a e^{bx}`` and
``c e^{-dx}``: the table stores them at the cell's node ``x_k`` and the kernel multiplies by
``e^{b (x - x_k)}`` from a short Taylor polynomial (``|b (x - x_k)| < 0.02``), so no ``exp`` is
called per value. Values outside the table (below ``2**-30 T``, beyond ``2**6 T``, inf, NaN) use
the reference iteration.
Negative values are reflected (``y(-v) = 2 x1 - y(v)``), zero maps to ``x1``, NaN stays NaN.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from cytophen.kernels._parallel import parallel_ok, run_dynamic

__all__ = [
    "logicle_params",
    "hyperlog_params",
    "logicle_scale",
    "logicle_inverse",
    "hyperlog_scale",
    "hyperlog_inverse",
    "PARALLEL_MIN",
]

#: Inputs with at least this many values use the parallel kernels.
PARALLEL_MIN = 50_000
_CHUNK = 16_384


_TAYLOR = 16
_DBL_EPS = np.finfo(np.float64).eps

# parameter vector layout
_A, _B, _C, _D, _F, _W, _X0, _X1, _X2, _XT, _INV, _T = range(12)
_NP = 12
_SHIFT = 45  # keep exponent + 7 mantissa bits: 128 table cells per octave
_OCT_LO = -30  # table covers |v| in [T * 2**-30, T * 2**6)
_OCT_HI = 6


_dynamic = run_dynamic


def _solve_d(b: float, w: float) -> float:
    """The logicle ``d`` for given ``b, w``: root of ``2 (ln d - ln b) + w (b + d) = 0``.

    A line-by-line port of the reference RTSAFE solver (Newton with bisection safeguard), so that
    the parameters agree with flowutils to the last bit.
    """
    if w == 0:
        return b
    tolerance = 2 * b * _DBL_EPS
    d_lo = 0.0
    d_hi = b
    d = (d_lo + d_hi) / 2
    last_delta = d_hi - d_lo
    f_b = -2 * math.log(b) + w * b
    f = 2 * math.log(d) + w * d + f_b
    last_f = math.nan
    for _ in range(1, 40):
        df = 2 / d + w
        if ((d - d_hi) * df - f) * ((d - d_lo) * df - f) >= 0 or abs(1.9 * f) > abs(
            last_delta * df
        ):
            delta = (d_hi - d_lo) / 2
            d = d_lo + delta
            if d == d_lo:
                return d
        else:
            delta = f / df
            t = d
            d -= delta
            if d == t:
                return d
        if abs(delta) < tolerance:
            return d
        last_delta = delta
        f = 2 * math.log(d) + w * d + f_b
        if f == 0 or f == last_f:
            return d
        last_f = f
        if f < 0:
            d_lo = d
        else:
            d_hi = d
    return d


def logicle_params(T: float, W: float, M: float, A: float) -> tuple[np.ndarray, np.ndarray]:
    """Derived logicle constants ``(p, taylor)`` from GatingML ``T, W, M, A`` (no validation here).

    ``p`` holds ``a, b, c, d, f, w, x0, x1, x2, xTaylor, -, T``; ``taylor`` the 16 series
    coefficients about ``x1``.
    """
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * math.log(10.0)
    d = _solve_d(b, w)
    c_a = math.exp(x0 * (b + d))
    mf_a = math.exp(b * x1) - c_a / math.exp(d * x1)
    a = T / ((math.exp(b) - mf_a) - c_a / math.exp(d))
    c = c_a * a
    f = -mf_a * a
    x_taylor = x1 + w / 4
    pos = a * math.exp(b * x1)
    neg = -c / math.exp(d * x1)
    taylor = np.empty(_TAYLOR, dtype=np.float64)
    for i in range(_TAYLOR):
        pos *= b / (i + 1)
        neg *= -d / (i + 1)
        taylor[i] = pos + neg
    taylor[1] = 0.0  # exact result of the logicle condition
    p = np.zeros(_NP, dtype=np.float64)
    p[[_A, _B, _C, _D, _F, _W, _X0, _X1, _X2, _XT, _T]] = [
        a,
        b,
        c,
        d,
        f,
        w,
        x0,
        x1,
        x2,
        x_taylor,
        T,
    ]
    return p, taylor


def hyperlog_params(T: float, W: float, M: float, A: float) -> tuple[np.ndarray, np.ndarray]:
    """Derived hyperlog constants ``(p, taylor)`` (same layout as :func:`logicle_params`; ``p[10]``
    is the data value at ``x0`` used for the initial guess)."""
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * math.log(10)
    e0 = math.exp(b * x0)
    c_a = e0 / w
    f_a = math.exp(b * x1) + c_a * x1
    a = T / (math.exp(b) + c_a - f_a)
    c = c_a * a
    f = f_a * a
    x_taylor = x1 + w / 4
    coef = a * math.exp(b * x1)
    taylor = np.empty(_TAYLOR, dtype=np.float64)
    for i in range(_TAYLOR):
        coef *= b / (i + 1)
        taylor[i] = coef
    taylor[0] += c
    # data value at x0, as the reference computes it (note: its series skips taylor[1])
    is_neg = x0 < x1
    tx0 = 2 * x1 - x0 if is_neg else x0
    if tx0 < x_taylor:
        xs = tx0 - x1
        s = taylor[_TAYLOR - 1] * xs
        for i in range(_TAYLOR - 2, 1, -1):
            s = (s + taylor[i]) * xs
        inverse = (s * xs + taylor[0]) * xs
    else:
        inverse = a * math.exp(b * tx0) + c * tx0
    if is_neg:
        inverse = -inverse
    p = np.zeros(_NP, dtype=np.float64)
    p[[_A, _B, _C, _D, _F, _W, _X0, _X1, _X2, _XT, _INV, _T]] = [
        a,
        b,
        c,
        0.0,
        f,
        w,
        x0,
        x1,
        x2,
        x_taylor,
        inverse,
        T,
    ]
    return p, taylor


# --------------------------------------------------------------------------------------------
# logicle
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _series_biex(p, taylor, scale):
    # Taylor series about x1; taylor[1] is identically zero (logicle condition) and skipped
    x = scale - p[_X1]
    s = taylor[_TAYLOR - 1] * x
    for i in range(_TAYLOR - 2, 1, -1):
        s = (s + taylor[i]) * x
    return (s * x + taylor[0]) * x


@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _halley_step(p, taylor, x, value):
    a = p[_A]
    b = p[_B]
    c = p[_C]
    d = p[_D]
    ae2bx = a * math.exp(b * x)
    ce2mdx = c / math.exp(d * x)
    if x < p[_XT]:
        y = _series_biex(p, taylor, x) - value
    else:
        y = (ae2bx + p[_F]) - (ce2mdx + value)
    abe2bx = b * ae2bx
    cde2mdx = d * ce2mdx
    dy = abe2bx + cde2mdx
    ddy = b * abe2bx - d * cde2mdx
    return y / (dy * (1 - y * ddy / (2 * dy * dy)))


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _logicle_one_ref(p, taylor, value):
    """Reference algorithm for one value (flowutils' ``scale``), with NaN/inf passed through."""
    if value == 0:
        return p[_X1]
    if value != value:
        return value
    negative = value < 0
    if negative:
        value = -value
    if value == math.inf:
        return -math.inf if negative else math.inf
    if value < p[_F]:
        x = p[_X1] + value / taylor[0]
    else:
        x = math.log(value / p[_A]) / p[_B]
    tolerance = 3 * _DBL_EPS
    if x > 1:
        tolerance = 3 * x * _DBL_EPS
    for _ in range(60):
        delta = _halley_step(p, taylor, x, value)
        x -= delta
        if abs(delta) < tolerance:
            break
    return 2 * p[_X1] - x if negative else x


@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _expm_small(z):
    # e^z for |z| <= 0.02 (degree-8 Taylor polynomial; truncation < 1e-19 relative)
    return 1.0 + z * (
        1.0
        + z
        * (
            0.5
            + z
            * (
                1.0 / 6
                + z
                * (
                    1.0 / 24
                    + z * (1.0 / 120 + z * (1.0 / 720 + z * (1.0 / 5040 + z * (1.0 / 40320))))
                )
            )
        )
    )


@nb.njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def _logicle_table_pass(v, vbits, p, taylor, table, key0, out, start, stop):
    """Pass 1, branch-light: table guess + one Halley step for every value; returns how many
    values lie outside the table (zero, tiny, huge, inf, NaN) and need pass 2."""
    ncell = table.shape[0]
    x1 = p[_X1]
    b = p[_B]
    d = p[_D]
    f = p[_F]
    xt = p[_XT]
    n_out = 0
    for i in range(start, stop):
        value = v[i]
        k = ((vbits[i] & 0x7FFFFFFFFFFFFFFF) >> _SHIFT) - key0
        n_out += (k < 0) | (k >= ncell)
        k = min(max(k, 0), ncell - 1)
        av = abs(value)
        # guess: linear interpolation in the cell (error ~1e-6)
        delta = table[k, 1] * (av - table[k, 2])
        x = table[k, 0] + delta
        # one Halley step; a e^{bx} and c e^{-dx} from the cell's node values times e^{small}
        ae2bx = table[k, 3] * _expm_small(b * delta)
        ce2mdx = table[k, 4] * _expm_small(-d * delta)
        if x < xt:  # near data zero: the Taylor series (no cancellation)
            y = _series_biex(p, taylor, x) - av
        else:
            y = (ae2bx + f) - (ce2mdx + av)
        abe2bx = b * ae2bx
        cde2mdx = d * ce2mdx
        dy = abe2bx + cde2mdx
        ddy = b * abe2bx - d * cde2mdx
        x -= 2 * y * dy / (2 * dy * dy - y * ddy)  # Halley: y / (dy (1 - y ddy / (2 dy^2)))
        out[i] = 2 * x1 - x if value < 0 else x
    return n_out


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _logicle_range(v, vbits, p, taylor, table, key0, out, start, stop):
    if _logicle_table_pass(v, vbits, p, taylor, table, key0, out, start, stop) == 0:
        return
    ncell = table.shape[0]
    for i in range(start, stop):  # pass 2: values outside the table, reference iteration
        k = ((vbits[i] & 0x7FFFFFFFFFFFFFFF) >> _SHIFT) - key0
        if k < 0 or k >= ncell:
            out[i] = _logicle_one_ref(p, taylor, v[i])


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _logicle_serial(v, vbits, p, taylor, table, key0, out):
    _logicle_range(v, vbits, p, taylor, table, key0, out, 0, v.shape[0])


@nb.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def _logicle_parallel(v, vbits, p, taylor, table, key0, out):
    n = v.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _logicle_range(v, vbits, p, taylor, table, key0, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _logicle_ref_array(v, p, taylor, out):
    for i in range(v.shape[0]):
        out[i] = _logicle_one_ref(p, taylor, v[i])


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _build_table(p, taylor, nodes, table):
    # nodes: node values v_k (k = 0..ncell); table[k] = (x_k, slope_k, v_k, a e^{b x_k}, c e^{-d x_k})
    ncell = table.shape[0]
    xs = np.empty(ncell + 1, dtype=np.float64)
    for k in range(ncell + 1):
        xs[k] = _logicle_one_ref(p, taylor, nodes[k])
    for k in range(ncell):
        table[k, 0] = xs[k]
        table[k, 1] = (xs[k + 1] - xs[k]) / (nodes[k + 1] - nodes[k])
        table[k, 2] = nodes[k]
        table[k, 3] = p[_A] * math.exp(p[_B] * xs[k])
        table[k, 4] = p[_C] / math.exp(p[_D] * xs[k])


def _logicle_table(p: np.ndarray, taylor: np.ndarray) -> tuple[np.ndarray, int]:
    T = p[_T]
    lo = np.array([T * 2.0**_OCT_LO], dtype=np.float64).view(np.int64)[0] >> _SHIFT
    hi = np.array([T * 2.0**_OCT_HI], dtype=np.float64).view(np.int64)[0] >> _SHIFT
    keys = np.arange(lo, hi + 1, dtype=np.int64)
    nodes = (keys << _SHIFT).view(np.float64)
    table = np.empty((keys.shape[0] - 1, 5), dtype=np.float64)
    _build_table(p, taylor, nodes, table)
    return table, int(lo)


def logicle_scale(
    values: np.ndarray, p: np.ndarray, taylor: np.ndarray, *, table=None, exact: bool = False
) -> np.ndarray:
    """Logicle scale of ``values`` (any shape, float64 result) for constants from
    :func:`logicle_params`.

    ``table`` (from :func:`logicle_table`) may be passed to reuse it; ``exact=True`` uses the
    reference iteration for every value (for testing the fast path).
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    shape = v.shape
    v = v.reshape(-1)
    out = np.empty_like(v)
    if exact:
        _logicle_ref_array(v, p, taylor, out)
        return out.reshape(shape)
    if table is None:
        table = logicle_table(p, taylor)
    tab, key0 = table
    vbits = v.view(np.int64)
    if parallel_ok(v.shape[0], PARALLEL_MIN):
        _dynamic(_logicle_parallel, v, vbits, p, taylor, tab, key0, out)
    else:
        _logicle_serial(v, vbits, p, taylor, tab, key0, out)
    return out.reshape(shape)


def logicle_table(p: np.ndarray, taylor: np.ndarray) -> tuple[np.ndarray, int]:
    """The interpolation table of the fast logicle path (about 180 KB; build once per transform)."""
    return _logicle_table(p, taylor)


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _logicle_inv_range(y, p, taylor, out, start, stop):
    x1 = p[_X1]
    for i in range(start, stop):
        value = y[i]
        negative = value < x1
        if negative:
            value = 2 * x1 - value
        if value < p[_XT]:
            inv = _series_biex(p, taylor, value)
        else:
            inv = (p[_A] * math.exp(p[_B] * value) + p[_F]) - p[_C] / math.exp(p[_D] * value)
        out[i] = -inv if negative else inv


@nb.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def _logicle_inv_parallel(y, p, taylor, out):
    n = y.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _logicle_inv_range(y, p, taylor, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _logicle_inv_serial(y, p, taylor, out):
    _logicle_inv_range(y, p, taylor, out, 0, y.shape[0])


def _elementwise(serial, parallel, values, p: np.ndarray, taylor: np.ndarray) -> np.ndarray:
    """Apply a per-value kernel pair to an array of any shape: float64, flattened, parallel for
    large inputs, reshaped back."""
    x = np.ascontiguousarray(values, dtype=np.float64)
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    if parallel_ok(flat.shape[0], PARALLEL_MIN):
        _dynamic(parallel, flat, p, taylor, out)
    else:
        serial(flat, p, taylor, out)
    return out.reshape(x.shape)


def logicle_inverse(values: np.ndarray, p: np.ndarray, taylor: np.ndarray) -> np.ndarray:
    """Data values of logicle scale values (closed form; the series near ``x1``)."""
    return _elementwise(_logicle_inv_serial, _logicle_inv_parallel, values, p, taylor)


# --------------------------------------------------------------------------------------------
# hyperlog
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _taylor_full(p, taylor, scale):
    x = scale - p[_X1]
    s = taylor[_TAYLOR - 1] * x
    for i in range(_TAYLOR - 2, -1, -1):
        s = (s + taylor[i]) * x
    return s


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _hyperlog_one(p, taylor, value):
    if value == 0:
        return p[_X1]
    if value != value:
        return value
    negative = value < 0
    if negative:
        value = -value
    if value == math.inf:
        return -math.inf if negative else math.inf
    a = p[_A]
    b = p[_B]
    c = p[_C]
    if value < p[_INV]:
        x = p[_X1] + value * p[_W] / p[_INV]
    else:
        x = math.log(value / a) / b
    tolerance = 3 * _DBL_EPS
    for _ in range(60):
        ae2bx = a * math.exp(b * x)
        if x < p[_XT]:
            y = _taylor_full(p, taylor, x) - value
        else:
            y = (ae2bx + c * x) - (p[_F] + value)
        abe2bx = b * ae2bx
        dy = abe2bx + c
        ddy = b * abe2bx
        delta = y / (dy * (1 - y * ddy / (2 * dy * dy)))
        x -= delta
        if abs(delta) < tolerance:
            break
    return 2 * p[_X1] - x if negative else x


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _hyperlog_range(v, p, taylor, out, start, stop):
    for i in range(start, stop):
        out[i] = _hyperlog_one(p, taylor, v[i])


@nb.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def _hyperlog_parallel(v, p, taylor, out):
    n = v.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _hyperlog_range(v, p, taylor, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _hyperlog_serial(v, p, taylor, out):
    _hyperlog_range(v, p, taylor, out, 0, v.shape[0])


def hyperlog_scale(values: np.ndarray, p: np.ndarray, taylor: np.ndarray) -> np.ndarray:
    """Hyperlog scale of ``values`` for constants from :func:`hyperlog_params` (Halley iteration)."""
    return _elementwise(_hyperlog_serial, _hyperlog_parallel, values, p, taylor)


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _hyperlog_inv_range(y, p, taylor, out, start, stop):
    x1 = p[_X1]
    for i in range(start, stop):
        value = y[i]
        negative = value < x1
        if negative:
            value = 2 * x1 - value
        if value < p[_XT]:
            inv = _taylor_full(p, taylor, value)
        else:
            inv = (p[_A] * math.exp(p[_B] * value) + p[_C] * value) - p[_F]
        out[i] = -inv if negative else inv


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _hyperlog_inv_serial(y, p, taylor, out):
    _hyperlog_inv_range(y, p, taylor, out, 0, y.shape[0])


@nb.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def _hyperlog_inv_parallel(y, p, taylor, out):
    n = y.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _hyperlog_inv_range(y, p, taylor, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


def hyperlog_inverse(values: np.ndarray, p: np.ndarray, taylor: np.ndarray) -> np.ndarray:
    """Data values of hyperlog scale values (closed form; the series near ``x1``)."""
    return _elementwise(_hyperlog_inv_serial, _hyperlog_inv_parallel, values, p, taylor)
