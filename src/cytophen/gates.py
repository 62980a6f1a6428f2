"""Gate geometry: what a gate is, independent of any file format.

Semantics follow GatingML 2.0 exactly (see docs/methods.md):

- rectangle / range: ``min <= x < max`` on every dimension; ``None`` bound = open on that side;
- polygon: even-odd (crossing-number) rule, points on edges decided by the half-open crossing test;
- ellipsoid: ``(x - mean)^T inv(cov) (x - mean) <= distance_square``;
- quadrant: a set of named rectangles over the same dimensions (built from dividers or cut points);
- boolean: and / or / not over other populations' memberships, each operand optionally complemented;
- ref: the gates other populations placed in this sample, applied within this population's parent
  (openCyto's ``refGate``), optionally only some dimensions of a rectangular one.

A NaN coordinate is never inside any geometric gate.

Gates evaluate on an ``(n, d)`` float64 array whose columns are the gate's dimensions, already
compensated and transformed as each :class:`Dim` says; the engine (:mod:`cytophen.engine`) builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cytophen.errors import GateError
from cytophen.kernels import gating as _k
from cytophen.transforms import Transform

__all__ = [
    "Dim",
    "RatioDim",
    "Gate",
    "RectangleGate",
    "PolygonGate",
    "EllipsoidGate",
    "QuadrantGate",
    "BooleanGate",
    "RefGate",
    "DataDrivenGate",
    "FitOutcome",
    "gate_from_geometry",
]


@dataclass(frozen=True)
class Dim:
    """One gate dimension.

    Parameters
    ----------
    channel
        Marker or channel name as the template says it (resolved per file by
        :func:`cytophen.markers.resolve`), or the fluorochrome name of a GatingML spectrum matrix.
    transform
        Transform applied after compensation; ``None`` = linear (raw, compensated) units.
    compensation
        ``None`` = the template's default; ``'uncompensated'``; ``'FCS'`` (the file's spillover
        keyword, uncompensated when the file has none, as GatingML says); ``'keyword'`` (the file's
        spillover keyword, an error when absent); or the id of a matrix in ``Template.matrices``.
    """

    channel: str
    transform: Transform | None = None
    compensation: str | None = None

    @property
    def label(self) -> str:
        return self.channel

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "transform": None if self.transform is None else self.transform.to_dict(),
            "compensation": self.compensation,
        }


@dataclass(frozen=True)
class RatioDim:
    """A GatingML ``fratio`` dimension: ``A * (x - B) / (y - C)`` of two channels, then a transform."""

    name: str
    numerator: str
    denominator: str
    A: float = 1.0
    B: float = 0.0
    C: float = 0.0
    transform: Transform | None = None
    compensation: str | None = None

    @property
    def channel(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.name,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "A": self.A,
            "B": self.B,
            "C": self.C,
            "transform": None if self.transform is None else self.transform.to_dict(),
            "compensation": self.compensation,
        }


class Gate:
    """Base class: a region in the space of ``dims``."""

    kind: str
    dims: tuple[Dim | RatioDim, ...]

    def contains(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Boolean membership of each row of ``values`` (``(n, len(dims))`` float64)."""
        raise NotImplementedError

    def geometry(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """JSON-serialisable description of the region (for gates.json, plots and export)."""
        raise NotImplementedError

    @classmethod
    def from_geometry(cls, geometry: dict[str, Any], dims=None) -> Gate:
        """The gate a :meth:`geometry` describes (its inverse; see :func:`gate_from_geometry`)."""
        return gate_from_geometry(geometry, dims)


def _as_dims(dims) -> tuple[Dim | RatioDim, ...]:
    return tuple(d if isinstance(d, (Dim, RatioDim)) else Dim(str(d)) for d in dims)


def _bound(v) -> float | None:
    if v is None:
        return None
    f = float(v)
    if np.isnan(f):
        raise GateError("rectangle", "a bound is NaN")
    return f


#: Relative half-width (scale units) of the band around a transformed rectangle bound.
_BAND = 1e-6


def _band(t: Transform, c: float) -> tuple[float, float] | None:
    """``(x_out, x_in)``: data values below ``x_out`` map below ``c``, at or above ``x_in`` above
    it (``t`` increasing); ``None`` when that cannot be established numerically."""
    if not _monotone(t):
        return None
    delta = _BAND * max(1.0, abs(c))
    with np.errstate(all="ignore"):
        xa, xb = np.asarray(t.inverse(np.array([c - delta, c + delta])), dtype=np.float64)
        if not (np.isfinite(xa) and np.isfinite(xb) and xa < xb):
            return None
        ya, yb = np.asarray(t.apply(np.array([xa, xb])), dtype=np.float64)
    # the scale values at the band's ends must be clearly on their side of the bound
    if not (ya <= c - delta / 2 and yb >= c + delta / 2):
        return None
    return float(xa), float(xb)


def _monotone(t: Transform) -> bool:
    """Scales that never decrease (NaN only for NaN): increasing bijections of the reals, and
    FlowJo's biex and log, increasing between the ends they clamp to. A band is only used after
    :func:`_band` checked it (a bound at a clamped end has none, and is transformed)."""
    from cytophen import transforms as _t

    return type(t) in (
        _t.LinearTransform,
        _t.AsinhTransform,
        _t.LogicleTransform,
        _t.HyperlogTransform,
        _t.FlowJoBiexTransform,
        _t.FlowJoLogTransform,
    )


def _band_pair(t: Transform, lo: float | None, hi: float | None):
    """Bands of a rectangle's lower and upper bound on scale ``t`` (``None`` if either fails)."""
    if not _monotone(t):
        return None
    lo_band = (-np.inf, -np.inf) if lo is None else _band(t, lo)
    hi_band = (np.inf, np.inf) if hi is None else _band(t, hi)
    if lo_band is None or hi_band is None:
        return None
    return lo_band, hi_band


@dataclass(eq=False)
class RectangleGate(Gate):
    """``min <= x < max`` on every dimension; a ``None`` bound is open on that side."""

    dims: tuple
    mins: tuple
    maxs: tuple
    kind: str = field(default="rectangle", init=False)

    def __post_init__(self) -> None:
        self.dims = _as_dims(self.dims)
        self.mins = tuple(_bound(v) for v in self.mins)
        self.maxs = tuple(_bound(v) for v in self.maxs)
        if not (len(self.dims) == len(self.mins) == len(self.maxs)) or not self.dims:
            raise GateError("rectangle", "needs one (min, max) pair per dimension")
        for d, lo, hi in zip(self.dims, self.mins, self.maxs):
            if lo is not None and hi is not None and lo > hi:
                raise GateError("rectangle", f"min {lo} > max {hi} on {d.label}")

    def contains(self, values: np.ndarray) -> np.ndarray:
        lo = np.array([-np.inf if v is None else v for v in self.mins], dtype=np.float64)
        hi = np.array([np.inf if v is None else v for v in self.maxs], dtype=np.float64)
        open_hi = np.array([v is None for v in self.maxs], dtype=np.bool_)
        return _k.points_in_rectangle(np.ascontiguousarray(values, np.float64), lo, hi, open_hi)

    def contains_columns(self, columns: list[np.ndarray]) -> np.ndarray:
        """Same as :meth:`contains`, one array per dimension (each tested alone, then and-ed)."""
        out = None
        for j, c in enumerate(columns):
            lo = np.array([-np.inf if self.mins[j] is None else self.mins[j]], dtype=np.float64)
            hi = np.array([np.inf if self.maxs[j] is None else self.maxs[j]], dtype=np.float64)
            open_hi = np.array([self.maxs[j] is None], dtype=np.bool_)
            v = np.ascontiguousarray(c, dtype=np.float64).reshape(-1, 1)  # a view when possible
            m = _k.points_in_rectangle(v, lo, hi, open_hi)
            out = m if out is None else (out & m)
        return out

    def contains_raw(self, columns: list[np.ndarray]) -> np.ndarray:
        """Same as :meth:`contains_columns`, given each dimension's values *before* its transform.

        A bound on a monotone scale (linear, asinh, logicle, hyperlog) is tested in data units:
        ``x`` well below or above the data value of the bound is decided by comparison alone, and
        only ``x`` within a tiny band around it (the data values whose scale value is within
        ``1e-6 * max(1, |bound|)`` of the bound) is transformed and tested exactly. As the scales
        are increasing and computed to ~1e-12, the membership is the same as transforming every
        value (the band is checked when it is built; without a valid band, every value is
        transformed). Other transforms are applied to the whole column.
        """
        if len(columns) != len(self.dims):
            raise GateError("rectangle", f"needs {len(self.dims)} columns, got {len(columns)}")
        bands = self._data_bands()
        n = np.asarray(columns[0]).shape[0]
        st = np.ones(n, dtype=np.uint8)
        cols: list[np.ndarray] = []
        for j, (d, c) in enumerate(zip(self.dims, columns)):
            x = np.ascontiguousarray(c, dtype=np.float64).reshape(-1)
            lo = -np.inf if self.mins[j] is None else self.mins[j]
            hi = np.inf if self.maxs[j] is None else self.maxs[j]
            has_hi = self.maxs[j] is not None
            if d.transform is None:
                _k.band_update(x, st, 0, lo, lo, hi, hi, has_hi)
            elif bands[j] is None or j >= 7:  # no band (or no state bit left): transform all
                with np.errstate(divide="ignore", invalid="ignore"):
                    x = np.asarray(d.transform.apply(x), dtype=np.float64)
                _k.band_update(x, st, 0, lo, lo, hi, hi, has_hi)
            else:
                (lo_out, lo_in), (hi_in, hi_out) = bands[j]
                _k.band_update(x, st, 2 << j, lo_out, lo_in, hi_in, hi_out, has_hi)
            cols.append(x)
        undecided = np.flatnonzero(st > 1)
        if undecided.size:
            for j, d in enumerate(self.dims):
                bit = np.uint8(2 << j)
                at = undecided[(st[undecided] & bit) != 0]
                if not at.size:
                    continue
                with np.errstate(divide="ignore", invalid="ignore"):
                    y = np.asarray(d.transform.apply(cols[j][at]), dtype=np.float64)
                lo = -np.inf if self.mins[j] is None else self.mins[j]
                ok = y >= lo
                if self.maxs[j] is not None:
                    ok &= y < self.maxs[j]
                st[at[~ok]] = 0
                st[at[ok]] &= ~bit
        return st.view(np.bool_)

    def _data_bands(self) -> list:
        """Per dimension ``((lo_out, lo_in), (hi_in, hi_out))`` in data units, or ``None`` (no
        transform, or one without a band: transform every value). Built once per gate."""
        bands = getattr(self, "_bands", None)
        if bands is None:
            bands = [
                None if d.transform is None else _band_pair(d.transform, self.mins[j], self.maxs[j])
                for j, d in enumerate(self.dims)
            ]
            self._bands = bands
        return bands

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "rectangle",
            "dims": [d.label for d in self.dims],
            "min": list(self.mins),
            "max": list(self.maxs),
        }


@dataclass(eq=False)
class PolygonGate(Gate):
    """A 2-D polygon; even-odd rule, GatingML 2.0 edge semantics."""

    dims: tuple
    vertices: np.ndarray
    kind: str = field(default="polygon", init=False)

    def __post_init__(self) -> None:
        self.dims = _as_dims(self.dims)
        v = np.asarray(self.vertices, dtype=np.float64)
        if len(self.dims) != 2:
            raise GateError("polygon", f"needs exactly 2 dimensions, got {len(self.dims)}")
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise GateError("polygon", f"needs at least 3 (x, y) vertices, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise GateError("polygon", "a vertex is not a finite number")
        self.vertices = v
        self._prepared = _k.PreparedPolygon(v[:, 0], v[:, 1])  # slabs and raster, built once

    def contains(self, values: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(values[:, 0], dtype=np.float64)
        y = np.ascontiguousarray(values[:, 1], dtype=np.float64)
        p = self._prepared
        return _k.points_in_polygon(x, y, p.vx, p.vy, prepared=p)

    def contains_columns(self, columns: list[np.ndarray]) -> np.ndarray:
        """Same as :meth:`contains`, given the x and y arrays (no (n, 2) stack; float32 arrays and
        strided views are read as they are, widened exactly)."""
        x, y = columns[0], columns[1]
        p = self._prepared
        return _k.points_in_polygon(x, y, p.vx, p.vy, prepared=p)

    def contains_raw(self, columns: list[np.ndarray]) -> np.ndarray:
        """Same as :meth:`contains_columns`, given each dimension's values *before* its transform.

        On a monotone scale (see :meth:`RectangleGate.contains_raw`) the events outside the
        vertices' bounding box are rejected in data units, so only the others are transformed
        and tested (the polygon test rejects exactly those events too, before anything else).
        """
        if len(columns) != 2:
            raise GateError("polygon", f"needs 2 columns, got {len(columns)}")
        xs = [np.ascontiguousarray(c, dtype=np.float64).reshape(-1) for c in columns]
        bands = self._bbox_bands()
        cand = None
        if bands is not None:
            st = np.ones(xs[0].shape[0], dtype=np.uint8)
            for x, band in zip(xs, bands):
                if band is not None:
                    (lo_out, lo_in), (hi_in, hi_out) = band
                    _k.band_update(x, st, 0, lo_out, lo_in, hi_in, hi_out, True)
            cand = np.flatnonzero(st)
            if cand.shape[0] == st.shape[0]:
                cand = None
        vals = []
        for d, x in zip(self.dims, xs):
            v = x if cand is None else x[cand]
            if d.transform is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.asarray(d.transform.apply(v), dtype=np.float64)
            vals.append(v)
        inside = self.contains_columns(vals)
        if cand is None:
            return inside
        out = np.zeros(xs[0].shape[0], dtype=np.bool_)
        out[cand] = inside
        return out

    def _bbox_bands(self):
        """Per dimension, the data-unit bands of the bounding box's sides (``None``: no
        transform); ``None`` overall when a transformed dimension has no band."""
        if not hasattr(self, "_bbox"):
            lo = self.vertices.min(axis=0)
            hi = self.vertices.max(axis=0)
            bands = []
            for j, d in enumerate(self.dims):
                if d.transform is None:
                    bands.append(None)
                    continue
                b = _band_pair(d.transform, float(lo[j]), float(hi[j]))
                if b is None:
                    bands = None
                    break
                bands.append(b)
            self._bbox = bands
        return self._bbox

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "polygon",
            "dims": [d.label for d in self.dims],
            "vertices": self.vertices.tolist(),
        }


@dataclass(eq=False)
class EllipsoidGate(Gate):
    """``(x - mean)^T inv(cov) (x - mean) <= distance_square`` in any number of dimensions."""

    dims: tuple
    mean: np.ndarray
    covariance: np.ndarray
    distance_square: float
    kind: str = field(default="ellipsoid", init=False)

    def __post_init__(self) -> None:
        self.dims = _as_dims(self.dims)
        d = len(self.dims)
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.covariance = np.asarray(self.covariance, dtype=np.float64)
        if self.mean.shape != (d,) or self.covariance.shape != (d, d):
            raise GateError("ellipsoid", f"mean must have {d} values and covariance be {d}x{d}")
        try:
            self._inv = np.linalg.inv(self.covariance)
        except np.linalg.LinAlgError as exc:
            raise GateError("ellipsoid", "covariance matrix is singular") from exc
        self.distance_square = float(self.distance_square)

    def contains(self, values: np.ndarray) -> np.ndarray:
        return _k.points_in_ellipsoid(
            np.ascontiguousarray(values, np.float64), self.mean, self._inv, self.distance_square
        )

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "ellipsoid",
            "dims": [d.label for d in self.dims],
            "mean": self.mean.tolist(),
            "covariance": self.covariance.tolist(),
            "distance_square": self.distance_square,
        }


@dataclass(eq=False)
class QuadrantGate(Gate):
    """Named rectangles over the same dimensions (quadrants, or GatingML's banded quadrants).

    Build from two cut points with :meth:`from_cuts`, or from GatingML dividers with
    :meth:`from_dividers`. Each quadrant is evaluated as a :class:`RectangleGate` (``min <= x < max``).
    """

    dims: tuple
    quadrants: dict  # name -> (mins, maxs)
    kind: str = field(default="quadrant", init=False)

    def __post_init__(self) -> None:
        self.dims = _as_dims(self.dims)
        self._rects = {
            name: RectangleGate(self.dims, mins, maxs)
            for name, (mins, maxs) in self.quadrants.items()
        }

    @classmethod
    def from_cuts(
        cls, dims, x_cut: float, y_cut: float, names: dict[str, str] | None = None
    ) -> QuadrantGate:
        """Four quadrants at ``(x_cut, y_cut)``; ``names`` maps ``'++' '+-' '-+' '--'`` (x sign, y sign)."""
        names = names or {s: s for s in ("++", "+-", "-+", "--")}
        spans = {"+": (x_cut, None), "-": (None, x_cut)}
        yspans = {"+": (y_cut, None), "-": (None, y_cut)}
        quads = {}
        for signs, name in names.items():
            (x0, x1), (y0, y1) = spans[signs[0]], yspans[signs[1]]
            quads[name] = ((x0, y0), (x1, y1))
        return cls(dims, quads)

    def rectangle(self, name: str) -> RectangleGate:
        try:
            return self._rects[name]
        except KeyError:
            raise GateError(
                "quadrant", f"no quadrant {name!r}; it has {', '.join(self._rects)}"
            ) from None

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Union of all quadrants (rarely useful; populations select one quadrant)."""
        out = np.zeros(values.shape[0], dtype=np.bool_)
        for r in self._rects.values():
            out |= r.contains(values)
        return out

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "quadrant",
            "dims": [d.label for d in self.dims],
            "quadrants": {
                n: {"min": list(r.mins), "max": list(r.maxs)} for n, r in self._rects.items()
            },
        }


@dataclass(eq=False)
class BooleanGate(Gate):
    """``op`` over other populations: ``operands`` is a list of ``(population_name, complement)``."""

    op: str
    operands: list
    kind: str = field(default="boolean", init=False)

    def __post_init__(self) -> None:
        self.op = self.op.lower()
        self.dims = ()
        self.operands = [(str(n), bool(c)) for n, c in self.operands]
        if self.op not in ("and", "or", "not"):
            raise GateError("boolean", f"operator must be and/or/not, got {self.op!r}")
        if self.op == "not" and len(self.operands) != 1:
            raise GateError("boolean", "'not' takes exactly one operand")
        if self.op in ("and", "or") and len(self.operands) < 2:
            raise GateError("boolean", f"'{self.op}' needs at least two operands")

    def combine(self, memberships: dict[str, np.ndarray]) -> np.ndarray:
        arrays = []
        for name, comp in self.operands:
            m = memberships[name]
            arrays.append(~m if comp else m)
        if self.op == "not":
            return ~arrays[0]
        out = arrays[0].copy()
        for a in arrays[1:]:
            if self.op == "and":
                out &= a
            else:
                out |= a
        return out

    def contains(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise GateError("boolean", "a boolean gate is evaluated from memberships, not coordinates")

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "boolean",
            "op": self.op,
            "operands": [{"population": n, "complement": c} for n, c in self.operands],
        }


@dataclass(eq=False)
class RefGate(Gate):
    """The gates other populations placed (fixed or fitted on this sample), applied again within
    this population's parent, as openCyto's ``refGate``: e.g. a CD38 cut fitted on CD19+ events,
    applied to all CD3- events. ``refs`` is a list of ``(population_name, dims)``: ``dims`` ``None``
    takes the referenced gate whole; a tuple of dimension labels keeps only those dimensions of a
    rectangular gate (range, rectangle, quadrant child). Several references, all rectangular, are
    intersected (:func:`resolve_ref`)."""

    refs: list
    kind: str = field(default="ref", init=False)

    def __post_init__(self) -> None:
        self.dims = ()
        self.refs = [
            (str(n), None if d is None else tuple(str(x) for x in d)) for n, d in self.refs
        ]
        if not self.refs:
            raise GateError("ref", "needs at least one referenced population")
        for n, d in self.refs:
            if d is not None and not d:
                raise GateError("ref", f"dims of the reference to {n!r} is empty")

    def contains(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise GateError("ref", "a ref gate is evaluated from the referenced gates, not coordinates")

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "ref",
            "refs": [
                {"population": n, "dims": None if d is None else list(d)} for n, d in self.refs
            ],
        }


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def resolve_ref(placed: list[tuple[str, Gate]], dims: list, *, population: str = "ref") -> Gate:
    """The one gate a :class:`RefGate` applies: ``placed`` holds each referenced population's name
    and the gate it placed in this sample, ``dims`` the matching entries of ``RefGate.refs``
    (``None`` = the whole gate, else the labels to keep). A single reference is used as it is (or
    restricted to some of its dimensions, rectangles only); several references must all be
    rectangular and give their intersection: one rectangle over every dimension any of them
    bounds (an empty one when two bounds on a dimension do not overlap).

    Raises
    ------
    GateError
        A dimension the referenced gate does not have, a non-rectangular gate cut to some of its
        dimensions or intersected with others, or one marker under two different transforms.
    """
    parts: list[Gate] = []
    for (name, g), labels in zip(placed, dims):
        have = [d.label for d in g.dims]
        if labels is None or list(labels) == have:
            parts.append(g)
            continue
        missing = [x for x in labels if x not in have]
        if missing:
            raise GateError(
                population,
                f"the gate of {name!r} is on {', '.join(have)}; it has no dimension "
                f"{', '.join(missing)}",
            )
        if not isinstance(g, RectangleGate):
            raise GateError(
                population,
                f"only a rectangular gate can be taken on some of its dimensions; the gate of "
                f"{name!r} is {_article(g.kind)} {g.kind} on {', '.join(have)}",
            )
        keep = [have.index(x) for x in labels]
        parts.append(
            RectangleGate(
                [g.dims[i] for i in keep], [g.mins[i] for i in keep], [g.maxs[i] for i in keep]
            )
        )
    if len(parts) == 1:
        return parts[0]
    for (name, _), g in zip(placed, parts):
        if not isinstance(g, RectangleGate):
            raise GateError(
                population,
                f"several references are intersected only when all are rectangular; the gate of "
                f"{name!r} is {_article(g.kind)} {g.kind}",
            )
    order: list[str] = []
    dim_of: dict[str, Dim | RatioDim] = {}
    lo: dict[str, float | None] = {}
    hi: dict[str, float | None] = {}
    for g in parts:
        for d, a, b in zip(g.dims, g.mins, g.maxs):
            if d.label not in dim_of:
                order.append(d.label)
                dim_of[d.label], lo[d.label], hi[d.label] = d, a, b
                continue
            if dim_of[d.label] != d:
                raise GateError(
                    population,
                    f"the referenced gates put {d.label} on different scales (transform or "
                    "compensation); their bounds cannot be intersected",
                )
            if a is not None:
                lo[d.label] = a if lo[d.label] is None else max(lo[d.label], a)
            if b is not None:
                hi[d.label] = b if hi[d.label] is None else min(hi[d.label], b)
    for k in order:  # disjoint bounds: min <= x < min holds for no x
        if lo[k] is not None and hi[k] is not None and hi[k] < lo[k]:
            hi[k] = lo[k]
    return RectangleGate([dim_of[k] for k in order], [lo[k] for k in order], [hi[k] for k in order])


@dataclass(eq=False)
class DataDrivenGate(Gate):
    """A gate placed on each sample by a registered method (see :mod:`cytophen.datadriven`).

    ``method`` names the estimator, ``params`` are its typed arguments, ``side`` selects which side of
    a 1-D cut is the population (``'+'`` = ``[cut, inf)``, ``'-'`` = ``(-inf, cut)``; for 2-D
    threshold pairs two signs such as ``'+-'``). ``pool`` optionally names a manifest column whose
    groups are fitted on pooled events. ``guide`` are other dimensions the method may read to
    decide where the gate goes (the gate itself lives on ``dims``); they are passed to the
    estimator as extra columns when the file has them, and left out when it does not.
    ``fallback_from`` names a population placed earlier on the same sample: where this gate's fit
    falls back, each cut it could not place from the data is taken from that population's gate
    on the same marker instead (still flagged as a fallback).
    """

    dims: tuple
    method: str
    params: dict = field(default_factory=dict)
    side: str | None = None
    pool: str | None = None
    guide: tuple = ()
    fallback_from: str | None = None
    kind: str = field(default="data_driven", init=False)

    def __post_init__(self) -> None:
        self.dims = _as_dims(self.dims)
        self.guide = _as_dims(self.guide) if self.guide else ()

    def contains(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise GateError(self.method, "a data-driven gate must be fitted before it is applied")

    def geometry(self) -> dict[str, Any]:
        return {
            "kind": "data_driven",
            "dims": [d.label for d in self.dims],
            "method": self.method,
            "params": dict(self.params),
            "side": self.side,
            **({"guide": [d.label for d in self.guide]} if self.guide else {}),
            **({"fallback_from": self.fallback_from} if self.fallback_from else {}),
        }


def gate_from_geometry(geometry: dict[str, Any], dims=None, *, population: str = "gate") -> Gate:
    """The gate that :meth:`Gate.geometry` describes: ``gate_from_geometry(g.geometry(), g.dims)``
    gives a gate of the same kind, dimensions and geometry as ``g``.

    Parameters
    ----------
    geometry
        A ``geometry()`` dictionary (``kind`` rectangle, polygon, ellipsoid, quadrant, boolean or
        ref), e.g. an entry of a result's gates.json.
    dims
        The gate's dimensions (:class:`Dim`/:class:`RatioDim`, which carry the transform and
        compensation a geometry only names by label); ``None`` takes plain dimensions named by
        the geometry's ``dims`` labels. Boolean and ref gates have none.
    population
        Named in errors.

    Raises
    ------
    GateError
        An unknown kind (a data-driven gate has no fixed geometry: fit it first), missing fields,
        or ``dims`` that do not match the geometry's labels.
    """
    kind = geometry.get("kind") if isinstance(geometry, dict) else None
    try:
        if kind == "boolean":
            ops = [(o["population"], o.get("complement", False)) for o in geometry["operands"]]
            return BooleanGate(geometry["op"], ops)
        if kind == "ref":
            return RefGate([(r["population"], r.get("dims")) for r in geometry["refs"]])
        if kind not in ("rectangle", "polygon", "ellipsoid", "quadrant"):
            why = (
                "a data-driven gate has no fixed geometry until it is fitted"
                if kind == "data_driven"
                else "expected one of rectangle, polygon, ellipsoid, quadrant, boolean, ref"
            )
            raise GateError(population, f"cannot build a gate of kind {kind!r} ({why})")
        labels = list(geometry["dims"])
        dims = _as_dims(labels if dims is None else dims)
        if [d.label for d in dims] != labels:
            raise GateError(
                population,
                f"the geometry is on {', '.join(labels)}, the dimensions given are "
                f"{', '.join(d.label for d in dims)}",
            )
        if kind == "rectangle":
            return RectangleGate(dims, tuple(geometry["min"]), tuple(geometry["max"]))
        if kind == "polygon":
            return PolygonGate(dims, np.asarray(geometry["vertices"], dtype=np.float64))
        if kind == "ellipsoid":
            return EllipsoidGate(
                dims, geometry["mean"], geometry["covariance"], geometry["distance_square"]
            )
        quads = {n: (tuple(q["min"]), tuple(q["max"])) for n, q in geometry["quadrants"].items()}
        return QuadrantGate(dims, quads)
    except (KeyError, TypeError) as exc:
        raise GateError(population, f"the {kind} geometry lacks or mangles {exc}") from exc


@dataclass
class FitOutcome:
    """What a data-driven gate chose on one sample (or pooled group).

    ``gate`` is the fixed gate it placed (``None`` when it declined, e.g. too few events, in which
    case the population is reported as not measured with ``reason``).
    """

    gate: Gate | None
    fell_back: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
