"""Gate membership kernels (numba, compiled once and cached on disk).

Signatures (the contract the gate classes rely on):

- ``points_in_rectangle(values (n,d) f8, lo (d,) f8, hi (d,) f8, open_hi (d,) bool) -> (n,) bool``
- ``points_in_polygon(x (n,) f8, y (n,) f8, vx (m,) f8, vy (m,) f8) -> (n,) bool``
- ``points_in_ellipsoid(values (n,d) f8, mean (d,) f8, inv_cov (d,d) f8, d2 f8) -> (n,) bool``
- ``band_update(x (n,) f8, st (n,) u1, bit, lo_out, lo_in, hi_in, hi_out, has_hi)``: one
  dimension of a rectangle whose bounds carry an uncertainty band, in place on ``st``

``points_in_polygon`` also reads float32 and strided coordinates as they are (widened exactly).

NaN is never inside. Semantics follow GatingML 2.0 as FlowKit/flowutils implement it:

- rectangle: ``lo <= x < hi`` per dimension (``open_hi`` = no upper bound, ``lo = -inf`` = no lower one);
- polygon: even-odd parity of Dan Sunday's winding-number crossing test with the half-open rule
  (an edge counts when ``ay <= y < by`` going up with the point strictly left of it, or
  ``by <= y < ay`` going down with the point strictly right of it), exactly as flowutils'
  C ``points_in_polygon`` (the same ``is_left`` arithmetic, so edge and vertex points agree bit
  for bit);
- ellipsoid: ``(x - mean)^T inv_cov (x - mean) <= d2`` (inclusive).

The polygon kernel is fast because it does little per event:

1. a bounding-box rejection (in data units, as flowutils);
2. for large inputs, a 256 x 256 raster of the bounding box whose cells are classified once as
   *out*, *in* or *boundary*; a cell is boundary when any edge passes within 1e-3 cells of it
   (conservative rasterisation), so an event in any other cell has its cell centre's parity;
3. events in boundary cells (a few percent) get the exact test: a binary search for the horizontal
   *slab* between two consecutive vertex ordinates, then the edges spanning that slab (usually
   two). Inside a slab the half-open rule reduces to "the edge spans the slab", so this equals the
   full loop; an event whose ordinate equals a vertex ordinate takes the full Sunday loop.

Points on edges and vertices always lie in boundary cells, so they always get the exact test.
Large inputs are split into chunks processed in parallel.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from cytophen.kernels._parallel import parallel_ok, run_dynamic

__all__ = [
    "points_in_rectangle",
    "points_in_polygon",
    "points_in_ellipsoid",
    "band_update",
    "PARALLEL_MIN",
]

#: Inputs with at least this many events use the parallel kernels.
PARALLEL_MIN = 100_000
_CHUNK = 16_384


_dynamic = run_dynamic


# --------------------------------------------------------------------------------------------
# rectangle
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True)
def _rect_range(values, lo, hi, open_hi, out, start, stop):
    d = values.shape[1]
    for i in range(start, stop):
        ok = True
        for j in range(d):
            v = values[i, j]
            if not (v >= lo[j]):  # also rejects NaN
                ok = False
                break
            if not open_hi[j] and not (v < hi[j]):
                ok = False
                break
        out[i] = ok


@nb.njit(cache=True, nogil=True)
def _rect_serial(values, lo, hi, open_hi, out):
    _rect_range(values, lo, hi, open_hi, out, 0, values.shape[0])


@nb.njit(cache=True, nogil=True, parallel=True)
def _rect_parallel(values, lo, hi, open_hi, out):
    n = values.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _rect_range(values, lo, hi, open_hi, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


def points_in_rectangle(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, open_hi: np.ndarray
) -> np.ndarray:
    """Events inside an axis-aligned box, ``lo <= x < hi`` in every dimension.

    Parameters
    ----------
    values
        ``(n, d)`` float64 event values.
    lo, hi
        ``(d,)`` bounds; ``lo = -inf`` means no lower bound.
    open_hi
        ``(d,)`` bool; ``True`` means no upper bound in that dimension (``hi`` ignored).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` bool; NaN in any gated dimension is outside.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (n, d), got shape {values.shape}")
    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    open_hi = np.ascontiguousarray(open_hi, dtype=np.bool_)
    if not (lo.shape == hi.shape == open_hi.shape == (values.shape[1],)):
        raise ValueError("lo, hi and open_hi must have one entry per column of values")
    out = np.empty(values.shape[0], dtype=np.bool_)
    if parallel_ok(values.shape[0], PARALLEL_MIN):
        _dynamic(_rect_parallel, values, lo, hi, open_hi, out)
    else:
        _rect_serial(values, lo, hi, open_hi, out)
    return out


#: Band updates of at least this many events run in parallel (a pass is memory-bound; on 2
#: cores a smaller one gains less than waking the pool costs).
BAND_PARALLEL_MIN = 4_000_000


@nb.njit(cache=True, nogil=True)
def _band_range(x, lo_out, lo_in, hi_in, hi_out, has_hi, bit, st, start, stop):
    for i in range(start, stop):
        s = st[i]
        if s == 0:
            continue
        v = x[i]
        if not (v >= lo_out) or (has_hi and not (v < hi_out)):  # NaN fails the first test
            st[i] = 0
        elif not (v >= lo_in) or (has_hi and not (v < hi_in)):
            st[i] = s | bit


@nb.njit(cache=True, nogil=True)
def _band_serial(x, lo_out, lo_in, hi_in, hi_out, has_hi, bit, st):
    _band_range(x, lo_out, lo_in, hi_in, hi_out, has_hi, bit, st, 0, x.shape[0])


@nb.njit(cache=True, nogil=True, parallel=True)
def _band_parallel(x, lo_out, lo_in, hi_in, hi_out, has_hi, bit, st):
    n = x.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _band_range(
            x, lo_out, lo_in, hi_in, hi_out, has_hi, bit, st, c * _CHUNK, min(n, (c + 1) * _CHUNK)
        )


def band_update(
    x: np.ndarray,
    st: np.ndarray,
    bit: int,
    lo_out: float,
    lo_in: float,
    hi_in: float = np.inf,
    hi_out: float = np.inf,
    has_hi: bool = False,
) -> None:
    """One dimension of a rectangle test with an uncertainty band per bound, in place on ``st``.

    ``st`` (``uint8``, one per event) is 0 for events already outside; for the others, ``x`` is
    tested: ``x < lo_out``, ``x >= hi_out`` (when ``has_hi``) or NaN sets 0 (outside);
    otherwise ``lo_out <= x < lo_in`` or ``hi_in <= x < hi_out`` sets ``bit`` (undecided: the
    caller tests those events exactly); otherwise ``st`` is kept. With ``lo_out == lo_in`` and
    ``hi_in == hi_out`` this is exactly the rectangle rule ``lo <= x < hi``.

    Used to test rectangles drawn on a monotone scale in data units: the band is the data-unit
    interval that maps to within a tiny distance of the bound (see
    :meth:`cytophen.gates.RectangleGate.contains_raw`).
    """
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    if st.dtype != np.uint8 or st.shape != x.shape or not st.flags.c_contiguous:
        raise ValueError("st must be a contiguous uint8 array with one entry per value")
    args = (
        x,
        float(lo_out),
        float(lo_in),
        float(hi_in),
        float(hi_out),
        bool(has_hi),
        np.uint8(bit),
        st,
    )
    if parallel_ok(x.shape[0], BAND_PARALLEL_MIN):
        _dynamic(_band_parallel, *args)
    else:
        _band_serial(*args)


# --------------------------------------------------------------------------------------------
# polygon
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True, inline="always")
def _is_left(ax, ay, bx, by, px, py):
    # flowutils' point_is_left, same operation order
    return ((bx - ax) * (py - ay)) - ((px - ax) * (by - ay))


@nb.njit(cache=True, nogil=True)
def _winding_parity(px, py, vx, vy):
    """Full Sunday winding-number loop (flowutils ``calc_wind_count``); returns ``wind`` odd."""
    m = vx.shape[0]
    wind = 0
    for i in range(m):
        ax = vx[i]
        ay = vy[i]
        j = i + 1 if i < m - 1 else 0
        bx = vx[j]
        by = vy[j]
        if ay <= py:
            if py < by:
                if _is_left(ax, ay, bx, by, px, py) > 0:
                    wind += 1
        else:
            if by <= py:
                if _is_left(ax, ay, bx, by, px, py) < 0:
                    wind -= 1
    return (wind & 1) != 0


@nb.njit(cache=True, nogil=True)
def _slab_parity(px, py, vx, vy, ys, slab_ptr, slab_edges):
    """Exact parity for a point inside the bounding box (slab search, full loop on vertex rows)."""
    m = vx.shape[0]
    nys = ys.shape[0]
    lo = 0
    hi = nys
    while lo < hi:  # first index with ys[k] >= py
        mid = (lo + hi) >> 1
        if ys[mid] < py:
            lo = mid + 1
        else:
            hi = mid
    if lo < nys and ys[lo] == py:
        return _winding_parity(px, py, vx, vy)
    s = lo - 1  # ys[s] < py < ys[s + 1]
    inside = False
    for k in range(slab_ptr[s], slab_ptr[s + 1]):
        e = slab_edges[k]
        ax = vx[e]
        ay = vy[e]
        e2 = e + 1 if e < m - 1 else 0
        bx = vx[e2]
        by = vy[e2]
        isl = _is_left(ax, ay, bx, by, px, py)
        if ay < by:
            if isl > 0:
                inside = not inside
        else:
            if isl < 0:
                inside = not inside
    return inside


@nb.njit(cache=True, nogil=True)
def _build_raster(vx, vy, bbox, ys, slab_ptr, slab_edges, grid):
    """Classify each cell of a ``g x g`` grid over the bounding box: 0 out, 1 in, 2 boundary.

    A cell is *boundary* when any edge passes within ``margin`` cells of it (conservative row-wise
    rasterisation of every edge); any other cell lies wholly on one side of every edge, so its
    centre's exact parity holds for every point in it.
    """
    g = grid.shape[0]
    m = vx.shape[0]
    min_x = bbox[0]
    min_y = bbox[2]
    sx = g / (bbox[1] - bbox[0])
    sy = g / (bbox[3] - bbox[2])
    margin = 1e-3
    for i in range(g):
        for j in range(g):
            grid[i, j] = 0
    for e in range(m):
        e2 = e + 1 if e < m - 1 else 0
        ax = (vx[e] - min_x) * sx
        ay = (vy[e] - min_y) * sy
        bx = (vx[e2] - min_x) * sx
        by = (vy[e2] - min_y) * sy
        ylo = min(ay, by)
        yhi = max(ay, by)
        r0 = max(int(np.floor(ylo - margin)), 0)
        r1 = min(int(np.floor(yhi + margin)), g - 1)
        for r in range(r0, r1 + 1):
            # x-extent of the segment within the band [r - margin, r + 1 + margin]
            b0 = max(r - margin, ylo)
            b1 = min(r + 1 + margin, yhi)
            if ay == by:
                xa = min(ax, bx)
                xb = max(ax, bx)
            else:
                t0 = (b0 - ay) / (by - ay)
                t1 = (b1 - ay) / (by - ay)
                x0 = ax + t0 * (bx - ax)
                x1 = ax + t1 * (bx - ax)
                xa = min(x0, x1)
                xb = max(x0, x1)
            c0 = max(int(np.floor(xa - margin)), 0)
            c1 = min(int(np.floor(xb + margin)), g - 1)
            for c in range(c0, c1 + 1):
                grid[r, c] = 2
    for r in range(g):
        cy = min_y + (r + 0.5) / sy
        for c in range(g):
            if grid[r, c] != 2:
                cx = min_x + (c + 0.5) / sx
                grid[r, c] = 1 if _slab_parity(cx, cy, vx, vy, ys, slab_ptr, slab_edges) else 0


@nb.njit(cache=True, nogil=True)
def _poly_exact_range(x, y, vx, vy, bbox, ys, slab_ptr, slab_edges, out, start, stop):
    min_x = bbox[0]
    max_x = bbox[1]
    min_y = bbox[2]
    max_y = bbox[3]
    for i in range(start, stop):
        px = x[i]
        py = y[i]
        # bounding box, in data units as flowutils (NaN fails every comparison)
        if px >= min_x and px <= max_x and py >= min_y and py <= max_y:
            out[i] = _slab_parity(px, py, vx, vy, ys, slab_ptr, slab_edges)
        else:
            out[i] = 0


@nb.njit(cache=True, nogil=True)
def _poly_grid_codes(x, y, bbox, grid, out, start, stop, todo):
    """Pass 1, branch-free: the raster code (0 out, 1 in, 2 boundary) of each event; the
    positions of boundary events are appended to ``todo``; returns how many there are."""
    min_x = bbox[0]
    max_x = bbox[1]
    min_y = bbox[2]
    max_y = bbox[3]
    g = grid.shape[0]
    sx = g / (max_x - min_x)
    sy = g / (max_y - min_y)
    top = g - 1.0
    flat = grid.ravel()
    n_todo = 0
    for i in range(start, stop):
        px = x[i]
        py = y[i]
        inb = (px >= min_x) & (px <= max_x) & (py >= min_y) & (py <= max_y)
        # clamp before the integer conversion; the comparisons also map NaN to 0
        u = (px - min_x) * sx
        v = (py - min_y) * sy
        u = u if u > 0.0 else 0.0
        v = v if v > 0.0 else 0.0
        u = u if u < top else top
        v = v if v < top else top
        code = flat[np.int64(v) * g + np.int64(u)] * np.uint8(inb)
        out[i] = code
        todo[n_todo] = i
        n_todo += code >> 1
    return n_todo


@nb.njit(cache=True, nogil=True)
def _poly_range(x, y, vx, vy, bbox, ys, slab_ptr, slab_edges, grid, out, start, stop):
    if grid.shape[0] == 0:
        _poly_exact_range(x, y, vx, vy, bbox, ys, slab_ptr, slab_edges, out, start, stop)
        return
    todo = np.empty(stop - start + 1, dtype=np.int64)
    n_todo = _poly_grid_codes(x, y, bbox, grid, out, start, stop, todo)
    for k in range(n_todo):  # pass 2: events near an edge get the exact test
        i = todo[k]
        out[i] = _slab_parity(x[i], y[i], vx, vy, ys, slab_ptr, slab_edges)


@nb.njit(cache=True, nogil=True)
def _poly_serial(x, y, vx, vy, bbox, ys, slab_ptr, slab_edges, grid, out):
    _poly_range(x, y, vx, vy, bbox, ys, slab_ptr, slab_edges, grid, out, 0, x.shape[0])


@nb.njit(cache=True, nogil=True, parallel=True)
def _poly_parallel(x, y, vx, vy, bbox, ys, slab_ptr, slab_edges, grid, out):
    n = x.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _poly_range(
            x,
            y,
            vx,
            vy,
            bbox,
            ys,
            slab_ptr,
            slab_edges,
            grid,
            out,
            c * _CHUNK,
            min(n, (c + 1) * _CHUNK),
        )


def _polygon_slabs(vx: np.ndarray, vy: np.ndarray):
    """Bounding box, sorted distinct vertex ordinates and, per slab, the edges spanning it (CSR)."""
    bbox = np.array([vx.min(), vx.max(), vy.min(), vy.max()], dtype=np.float64)
    ys = np.unique(vy)
    by = np.roll(vy, -1)
    lo_e = np.minimum(vy, by)
    hi_e = np.maximum(vy, by)
    nslab = max(ys.shape[0] - 1, 0)
    ptr = np.zeros(nslab + 1, dtype=np.int64)
    edges: list[int] = []
    for s in range(nslab):
        span = np.nonzero((lo_e <= ys[s]) & (hi_e >= ys[s + 1]))[0]
        edges.extend(int(e) for e in span)
        ptr[s + 1] = len(edges)
    return bbox, ys, ptr, np.asarray(edges, dtype=np.int64)


def _grid_ok(bbox: np.ndarray, g: int) -> bool:
    """Whether a ``g x g`` raster of this bounding box has finite, positive cell scales."""
    if not (bbox[1] > bbox[0] and bbox[3] > bbox[2]) or not np.all(np.isfinite(bbox)):
        return False
    with np.errstate(all="ignore"):
        scale = g / np.array([bbox[1] - bbox[0], bbox[3] - bbox[2]])
    return bool(np.all(np.isfinite(scale)))


#: Calls with at least this many events use the raster (building it costs about as much as
#: testing 200 k events exactly); so do all calls of a polygon once it has tested twice as many.
RASTER_MIN = 100_000


def _grid_size(n: int, bbox: np.ndarray, grid: int | None, pays: bool | None = None) -> int:
    """Raster resolution: none for small inputs or a degenerate bounding box, else 256 x 256."""
    if pays is None:
        pays = n >= RASTER_MIN
    g = (256 if pays else 0) if grid is None else int(grid)
    return g if g > 0 and _grid_ok(bbox, g) else 0


class PreparedPolygon:
    """A polygon's slab index and (built on first need) its look-up raster, reusable across calls.

    A gate applied to many samples builds these once instead of once per sample (building the
    256 x 256 raster costs about as much as testing 200 k events exactly).
    """

    def __init__(self, vx: np.ndarray, vy: np.ndarray):
        self.vx = np.ascontiguousarray(vx, dtype=np.float64).reshape(-1)
        self.vy = np.ascontiguousarray(vy, dtype=np.float64).reshape(-1)
        self.slabs = _polygon_slabs(self.vx, self.vy)
        self._rasters: dict[int, np.ndarray] = {}
        self._tested = 0  # events tested against this polygon so far

    def raster_pays(self, n: int) -> bool:
        """Whether a raster is worth using for a call with ``n`` events: a large call, or a
        polygon that has already tested enough events (a gate applied to sample after sample of
        a batch) for one raster, built once, to pay for itself over the calls to come."""
        self._tested += n
        return n >= RASTER_MIN or self._tested >= 2 * RASTER_MIN

    def raster(self, g: int) -> np.ndarray:
        if g not in self._rasters:
            r = np.empty((g, g), dtype=np.uint8)
            if g > 0:
                bbox, ys, ptr, edges = self.slabs
                _build_raster(self.vx, self.vy, bbox, ys, ptr, edges, r)
            self._rasters[g] = r
        return self._rasters[g]


def _coordinates(a) -> np.ndarray:
    """Event coordinates as the polygon kernels read them: a 1-D float32 or float64 array, strided
    or not, is used as it is (float32 is widened exactly inside the kernel, so a column view of
    a float32 event block needs no copy); anything else becomes contiguous float64."""
    a = np.asarray(a)
    if a.ndim == 1 and a.dtype in (np.float32, np.float64) and a.dtype.isnative:
        return a
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


def points_in_polygon(
    x: np.ndarray,
    y: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    *,
    grid: int | None = None,
    prepared: PreparedPolygon | None = None,
) -> np.ndarray:
    """Events inside a polygon: even-odd rule, GatingML 2.0 / flowutils edge semantics.

    Parameters
    ----------
    x, y
        ``(n,)`` event coordinates, float64 or float32 (widened exactly; strided views are read
        in place).
    vx, vy
        ``(m,)`` float64 vertex coordinates, ``m >= 3``; the polygon closes itself (last → first).
        Self-crossing polygons are allowed (even-odd parity decides).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` bool, identical to ``flowutils.gating.points_in_polygon`` (including points on
        edges and vertices); NaN is outside.

    Other Parameters
    ----------------
    grid
        Raster resolution of the look-up accelerating large inputs (``0`` = exact tests only;
        ``None`` = automatic). The answer does not depend on it.
    prepared
        :class:`PreparedPolygon` of the same vertices, to reuse its slabs and raster.
    """
    x = _coordinates(x)
    y = _coordinates(y)
    vx = np.ascontiguousarray(vx, dtype=np.float64).reshape(-1)
    vy = np.ascontiguousarray(vy, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.shape[0]} vs {y.shape[0]})")
    if vx.shape != vy.shape or vx.shape[0] < 3:
        raise ValueError("a polygon needs at least 3 vertices with one x and one y each")
    out = np.empty(x.shape[0], dtype=np.uint8)
    if x.shape[0] == 0:
        return out.view(np.bool_)
    if prepared is None:
        prepared = PreparedPolygon(vx, vy)
    bbox, ys, ptr, edges = prepared.slabs
    pays = prepared.raster_pays(x.shape[0]) if grid is None else None
    raster = prepared.raster(_grid_size(x.shape[0], bbox, grid, pays))
    if parallel_ok(x.shape[0], PARALLEL_MIN):
        _dynamic(_poly_parallel, x, y, vx, vy, bbox, ys, ptr, edges, raster, out)
    else:
        _poly_serial(x, y, vx, vy, bbox, ys, ptr, edges, raster, out)
    return out.view(np.bool_)


# --------------------------------------------------------------------------------------------
# ellipsoid
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True)
def _ell_range(values, mean, inv_cov, d2, out, start, stop):
    d = values.shape[1]
    z = np.empty(d, dtype=np.float64)
    for i in range(start, stop):
        for k in range(d):
            z[k] = values[i, k] - mean[k]
        dist = 0.0
        for j in range(d):
            r = 0.0
            for k in range(d):
                r += z[k] * inv_cov[k, j]
            dist += r * z[j]
        out[i] = dist <= d2  # NaN compares False


@nb.njit(cache=True, nogil=True)
def _ell_serial(values, mean, inv_cov, d2, out):
    _ell_range(values, mean, inv_cov, d2, out, 0, values.shape[0])


@nb.njit(cache=True, nogil=True, parallel=True)
def _ell_parallel(values, mean, inv_cov, d2, out):
    n = values.shape[0]
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(nchunks):
        _ell_range(values, mean, inv_cov, d2, out, c * _CHUNK, min(n, (c + 1) * _CHUNK))


def points_in_ellipsoid(
    values: np.ndarray, mean: np.ndarray, inv_cov: np.ndarray, d2: float
) -> np.ndarray:
    """Events inside an ellipsoid, ``(x - mean)^T inv_cov (x - mean) <= d2``.

    Parameters
    ----------
    values
        ``(n, d)`` float64 event values.
    mean
        ``(d,)`` centre.
    inv_cov
        ``(d, d)`` inverse covariance matrix.
    d2
        Squared Mahalanobis distance of the boundary (inclusive).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` bool; NaN is outside.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (n, d), got shape {values.shape}")
    d = values.shape[1]
    mean = np.ascontiguousarray(mean, dtype=np.float64).reshape(-1)
    inv_cov = np.ascontiguousarray(inv_cov, dtype=np.float64)
    if mean.shape != (d,) or inv_cov.shape != (d, d):
        raise ValueError(f"mean must have {d} values and inv_cov be {d}x{d}")
    out = np.empty(values.shape[0], dtype=np.bool_)
    if parallel_ok(values.shape[0], PARALLEL_MIN):
        _dynamic(_ell_parallel, values, mean, inv_cov, float(d2), out)
    else:
        _ell_serial(values, mean, inv_cov, float(d2), out)
    return out
