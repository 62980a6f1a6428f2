"""Per-channel scale transforms (GatingML 2.0 parametrisations, FlowJo's variants) and inverses.

Every transform maps float64 arrays of any shape to float64 arrays of the same shape, has an
``inverse`` (for plot axes and for drawing gates in data units), and round-trips through a small
JSON-serialisable dict::

    >>> t = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    >>> y = t.apply(np.array([-100.0, 0.0, 1000.0, 262144.0]))
    >>> transform_from_dict(t.to_dict()) == t
    True

Definitions (x = data value, GatingML 2.0 section 6; FlowJo as FlowKit implements it):

===================  ====================================================================
``linear``           ``flin(x, T, A) = (x + A) / (T + A)``
``log``              ``flog(x, T, M) = log10(x / T) / M + 1`` (NaN for x < 0, -inf at 0)
``asinh``            ``fasinh(x, T, M, A) = (asinh(x sinh(M ln10) / T) + A ln10) / ((M + A) ln10)``
``logicle``          root y of ``a e^{by} - c e^{-dy} - f = x`` (Parks et al. 2006)
``hyperlog``         root y of ``a e^{by} + c y - f = x`` (Bagwell 2005)
``flowjo_biex``      FlowJo 10's biex: linear interpolation in its 4097-point look-up table,
                     clamped to the table's ends (as FlowKit's ``WSPBiexTransform``)
``flowjo_log``       ``log10(max(x, offset) / offset) / decades`` (FlowKit ``WSPLogTransform``)
``auto``             resolved per file (:mod:`cytophen.scaling`): one of the above
===================  ====================================================================

NaN stays NaN in every transform. Logicle and hyperlog agree with flowutils' C code to ~1e-12
relative (the same root, see :mod:`cytophen.kernels.transforms`); unlike flowutils they return NaN
for NaN (flowutils returns -1) and ±inf for ±inf.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from cytophen.errors import TransformError

__all__ = [
    "Transform",
    "LinearTransform",
    "LogTransform",
    "AsinhTransform",
    "LogicleTransform",
    "HyperlogTransform",
    "FlowJoBiexTransform",
    "FlowJoLogTransform",
    "AutoTransform",
    "TransformKind",
    "TRANSFORM_KINDS",
    "TRANSFORMS",
    "transform_kind",
    "kind_of",
    "gatingml_kind",
    "transform_from_dict",
]

_LN10 = math.log(10.0)


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _number(kind: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TransformError(
            f"{kind} transform: parameter {name} must be a number, got {value!r}"
        ) from None
    if not math.isfinite(v):
        raise TransformError(f"{kind} transform: parameter {name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class Transform:
    """Base class, and the identity transform (``kind = 'identity'``).

    Subclasses are frozen dataclasses whose fields are the parameters; ``to_dict`` returns
    ``{"kind": kind, **parameters}`` and :func:`transform_from_dict` rebuilds the object.
    """

    kind: ClassVar[str] = "identity"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform data values ``x`` (any shape) to the scale; float64 out."""
        return np.array(x, dtype=np.float64)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Data values of scale values ``y`` (any shape); float64 out."""
        return np.array(y, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., parameters...}``, JSON-serialisable."""
        d: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            if f.init:
                d[f.name] = getattr(self, f.name)
        return d

    def _check(self) -> None:
        for f in fields(self):
            if f.init:
                object.__setattr__(self, f.name, _number(self.kind, f.name, getattr(self, f.name)))


@dataclass(frozen=True)
class LinearTransform(Transform):
    """GatingML ``flin``: ``(x + A) / (T + A)``; FlowJo's linear is ``T = maxRange, A = minRange``.

    Parameters
    ----------
    T
        Top of scale (``> 0``).
    A
        Offset (``T + A`` must be positive).
    """

    T: float = 262144.0
    A: float = 0.0
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        self._check()
        if self.T <= 0:
            raise TransformError(f"linear transform: T must be > 0, got {self.T}")
        if self.T + self.A <= 0:
            raise TransformError(f"linear transform: T + A must be > 0, got T={self.T}, A={self.A}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (_f64(x) + self.A) / (self.T + self.A)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return _f64(y) * (self.T + self.A) - self.A


@dataclass(frozen=True)
class LogTransform(Transform):
    """GatingML ``flog``: ``log10(x / T) / M + 1`` (NaN for negative x, -inf at 0).

    Parameters
    ----------
    T
        Top of scale (``> 0``), maps to 1.
    M
        Decades (``> 0``); ``T / 10**M`` maps to 0.
    """

    T: float = 262144.0
    M: float = 4.5
    kind: ClassVar[str] = "log"

    def __post_init__(self) -> None:
        self._check()
        if self.T <= 0 or self.M <= 0:
            raise TransformError(f"log transform: T and M must be > 0, got T={self.T}, M={self.M}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (1.0 / self.M) * np.log10(_f64(x) / self.T) + 1.0

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self.T * 10.0 ** ((_f64(y) - 1.0) * self.M)


@dataclass(frozen=True)
class AsinhTransform(Transform):
    """GatingML ``fasinh``: ``(asinh(x sinh(M ln10) / T) + A ln10) / ((M + A) ln10)``.

    Parameters
    ----------
    T
        Top of scale (``> 0``), maps to 1.
    M
        Decades of the positive range (``> 0``).
    A
        Additional negative decades (``>= 0``; 0 maps to ``A / (M + A)``).
    """

    T: float = 262144.0
    M: float = 4.5
    A: float = 0.0
    kind: ClassVar[str] = "asinh"

    def __post_init__(self) -> None:
        self._check()
        if self.T <= 0 or self.M <= 0:
            raise TransformError(
                f"asinh transform: T and M must be > 0, got T={self.T}, M={self.M}"
            )
        if self.A < 0 or self.A > self.M:
            raise TransformError(
                f"asinh transform: A must be in [0, M], got A={self.A}, M={self.M}"
            )

    def apply(self, x: np.ndarray) -> np.ndarray:
        pre = np.sinh(self.M * np.log(10)) / self.T
        return (np.arcsinh(_f64(x) * pre) + self.A * np.log(10)) / ((self.M + self.A) * np.log(10))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        pre = np.sinh(self.M * np.log(10)) / self.T
        return np.sinh(_f64(y) * ((self.M + self.A) * np.log(10)) - self.A * np.log(10)) / pre


def _check_biexponential(
    kind: str, T: float, W: float, M: float, A: float, *, w_zero: bool
) -> None:
    if T <= 0:
        raise TransformError(f"{kind} transform: T (top of scale) must be > 0, got {T}")
    if M <= 0:
        raise TransformError(f"{kind} transform: M (decades) must be > 0, got {M}")
    if W < 0 or (W == 0 and not w_zero):
        raise TransformError(
            f"{kind} transform: W (linearisation width) must be {'>= 0' if w_zero else '> 0'}, got {W}"
        )
    if 2 * W > M:
        raise TransformError(f"{kind} transform: W={W} is too large for M={M} (need 2W <= M)")
    if -A > W or A + W > M - W:
        raise TransformError(
            f"{kind} transform: A={A} is out of range for W={W}, M={M} (need -W <= A <= M - 2W)"
        )


@dataclass(frozen=True)
class LogicleTransform(Transform):
    """GatingML ``logicle`` (Parks, Roederer & Moore 2006), computed by a numba kernel.

    Parameters
    ----------
    T
        Top of scale data value (``> 0``), maps to 1.
    W
        Width of the linear region in decades (``0 <= 2W <= M``; ``W = 0`` is arcsinh).
    M
        Decades of the full scale (``> 0``), typically 4.5.
    A
        Additional negative decades (``-W <= A <= M - 2W``).

    Notes
    -----
    ``apply`` solves the biexponential for every value: a log-spaced look-up table gives a guess
    within ~1e-6, one Halley step makes it exact (agreement with flowutils' C solver to ~1e-12
    relative). ``inverse`` is closed-form.
    """

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    kind: ClassVar[str] = "logicle"
    _consts: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        _check_biexponential("logicle", self.T, self.W, self.M, self.A, w_zero=True)

    def _k(self):
        if self._consts is None:
            from cytophen.kernels import transforms as kt

            p, taylor = kt.logicle_params(self.T, self.W, self.M, self.A)
            object.__setattr__(self, "_consts", (p, taylor, kt.logicle_table(p, taylor)))
        return self._consts

    def _asinh(self) -> AsinhTransform:
        # W = 0: the biexponential is 2 a e^{b x1} sinh(b (y - x1)), i.e. exactly fasinh(T, M, A)
        return AsinhTransform(T=self.T, M=self.M, A=self.A)

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.W == 0:
            return self._asinh().apply(x)
        from cytophen.kernels import transforms as kt

        p, taylor, table = self._k()
        return kt.logicle_scale(x, p, taylor, table=table)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        if self.W == 0:
            return self._asinh().inverse(y)
        from cytophen.kernels import transforms as kt

        p, taylor, _ = self._k()
        return kt.logicle_inverse(y, p, taylor)

    def __getstate__(self):  # do not pickle the derived table (rebuilt on first use)
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_consts", None)


@dataclass(frozen=True)
class HyperlogTransform(Transform):
    """GatingML ``hyperlog`` (Bagwell 2005), computed by a numba kernel.

    Parameters
    ----------
    T, W, M, A
        As for :class:`LogicleTransform`, with ``W > 0``.
    """

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    kind: ClassVar[str] = "hyperlog"
    _consts: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        _check_biexponential("hyperlog", self.T, self.W, self.M, self.A, w_zero=False)

    def _k(self):
        if self._consts is None:
            from cytophen.kernels import transforms as kt

            object.__setattr__(self, "_consts", kt.hyperlog_params(self.T, self.W, self.M, self.A))
        return self._consts

    def apply(self, x: np.ndarray) -> np.ndarray:
        from cytophen.kernels import transforms as kt

        p, taylor = self._k()
        return kt.hyperlog_scale(x, p, taylor)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        from cytophen.kernels import transforms as kt

        p, taylor = self._k()
        return kt.hyperlog_inverse(y, p, taylor)

    __getstate__ = LogicleTransform.__getstate__
    __setstate__ = LogicleTransform.__setstate__


def _log_root(b: float, w: float) -> float:
    """Root used by FlowJo's biex table (the safeguarded Newton of cytolib / FlowKit)."""
    x_lo = 0.0
    x_hi = b
    d = (x_lo + x_hi) / 2
    dx = abs(int(x_lo - x_hi))
    dx_last = dx
    fb = -2 * np.log(b) + w * b
    f = 2.0 * np.log(d) + w * b + fb
    df = 2 / d + w
    if w == 0:
        return b
    for _ in range(100):
        if (((d - x_hi) * df - f) - ((d - x_lo) * df - f)) > 0 or abs(2 * f) > abs(dx_last * df):
            dx = (x_hi - x_lo) / 2
            d = x_lo + dx
            if d == x_lo:
                return d
        else:
            dx = f / df
            t = d
            d -= dx
            if d == t:
                return d
        if abs(dx) < 1.0e-12:
            return d
        dx_last = dx
        f = 2 * np.log(d) + w * d + fb
        df = 2 / d + w
        if f < 0:
            x_lo = d
        else:
            x_hi = d
    return d


def _flowjo_biex_table(
    neg: float, width_basis: float, pos: float, max_value: float, channel_range: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """FlowJo 10's biex look-up table: (data values, channel values), both ascending."""
    ln10 = np.log(10.0)
    width = np.log10(-width_basis)
    decades = pos - width / 2
    extra = max(neg, 0.0) + width / 2
    zero_point = int((extra * channel_range) / (extra + decades))
    zero_point = int(min(zero_point, channel_range / 2))
    if zero_point > 0:
        decades = extra * channel_range / zero_point
    width = width / (2 * decades)
    positive_range = ln10 * decades
    minimum = max_value / np.exp(positive_range)
    negative_range = _log_root(positive_range, width)
    n_points = channel_range + 1
    step = (n_points - 1) / (n_points - 1)
    idx = np.arange(n_points)
    positive = np.exp(idx / float(n_points) * positive_range)
    negative = np.exp(idx / float(n_points) * -negative_range)
    channels = idx * step
    s = np.exp((positive_range + negative_range) * (width + extra / decades))
    negative *= s
    s = positive[zero_point] - negative[zero_point]
    positive[zero_point:] = positive[zero_point:] - negative[zero_point:]
    positive[zero_point:] = minimum * (positive[zero_point:] - s)
    below = np.arange(zero_point)
    positive[below] = -positive[2 * zero_point - below]
    return positive, channels.astype(np.float64)


@dataclass(frozen=True)
class FlowJoBiexTransform(Transform):
    """FlowJo 10's biexponential (``<transforms:biex>``), as FlowKit's ``WSPBiexTransform``.

    Output is in FlowJo channel units (0 .. 4096); values beyond the table are clamped to its ends.

    Parameters
    ----------
    negative
        Extra negative decades (``neg``, ``>= 0``).
    width
        Width basis (``width``, negative, e.g. -10).
    positive
        Positive decades (``pos``, ``> 0``).
    max_value
        Top of the data range (``maxRange``, ``> 0``).
    """

    negative: float = 0.0
    width: float = -10.0
    positive: float = 4.418540
    max_value: float = 262144.000029
    kind: ClassVar[str] = "flowjo_biex"
    _lut: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        if self.width >= 0:
            raise TransformError(
                f"flowjo_biex transform: width must be negative (e.g. -10), got {self.width}"
            )
        if self.positive <= 0 or self.max_value <= 0 or self.negative < 0:
            raise TransformError(
                "flowjo_biex transform: need positive > 0, max_value > 0 and negative >= 0, got "
                f"positive={self.positive}, max_value={self.max_value}, negative={self.negative}"
            )
        if np.log10(-self.width) / 2 >= self.positive:
            raise TransformError(
                f"flowjo_biex transform: width {self.width} is too large for positive={self.positive}"
            )

    def _table(self):
        if self._lut is None:
            x, y = _flowjo_biex_table(self.negative, self.width, self.positive, self.max_value)
            object.__setattr__(self, "_lut", (x, y))
        return self._lut

    def apply(self, x: np.ndarray) -> np.ndarray:
        xs, ys = self._table()
        return np.interp(_f64(x), xs, ys)  # NaN stays NaN; clamped to the table's ends

    def inverse(self, y: np.ndarray) -> np.ndarray:
        xs, ys = self._table()
        return np.interp(_f64(y), ys, xs)

    def __getstate__(self):
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_lut", None)


@dataclass(frozen=True)
class FlowJoLogTransform(Transform):
    """FlowJo 10's log (``<transforms:log>``): ``log10(max(x, offset) / offset) / decades``.

    Parameters
    ----------
    offset
        Smallest value shown (``> 0``); smaller values are clamped to it (scale 0).
    decades
        Decades shown (``> 0``).
    """

    offset: float = 1.0
    decades: float = 4.5
    kind: ClassVar[str] = "flowjo_log"

    def __post_init__(self) -> None:
        self._check()
        if self.offset <= 0 or self.decades <= 0:
            raise TransformError(
                f"flowjo_log transform: offset and decades must be > 0, got offset={self.offset}, "
                f"decades={self.decades}"
            )

    def apply(self, x: np.ndarray) -> np.ndarray:
        v = _f64(x)
        clamped = np.where(v < self.offset, self.offset, v)
        return 1.0 / self.decades * (np.log10(clamped) - np.log10(self.offset))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self.offset * 10.0 ** (_f64(y) * self.decades)


@dataclass(frozen=True)
class AutoTransform(Transform):
    """A template transform resolved per file by :mod:`cytophen.scaling`: logicle for linear
    fluorescence, a rescaling for files already transformed, linear for scatter.

    Parameters
    ----------
    M
        Decades of the logicle built for linear fluorescence (and of a logicle-scaled file).
    """

    M: float = 4.5
    kind: ClassVar[str] = "auto"

    def __post_init__(self) -> None:
        self._check()
        if not 0 < self.M <= 10:
            raise TransformError(f"auto transform: M (decades) must be in (0, 10], got {self.M}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        raise TransformError(
            "an 'auto' transform has no fixed formula: it is resolved against each file "
            "(cytophen.scaling.resolve_auto)"
        )

    inverse = apply


@dataclass(frozen=True)
class TransformKind:
    """One kind of transform: its class, and how templates and GatingML 2.0 spell it.

    Attributes
    ----------
    name
        What a template writes (``kind: logicle``); FlowJo's biexponential is ``biex`` there,
        although its class says ``flowjo_biex``.
    cls
        The :class:`Transform` subclass.
    aliases
        Other spellings accepted on reading (GatingML function names, FlowJo's).
    param_aliases
        Other spellings of parameters accepted on reading (FlowJo's XML attributes).
    gatingml
        The GatingML 2.0 transformation element, or ``None`` when GatingML has none.
    """

    name: str
    cls: type[Transform]
    aliases: tuple[str, ...] = ()
    param_aliases: Mapping[str, str] = field(default_factory=dict)
    gatingml: str | None = None

    @property
    def params(self) -> dict[str, float]:
        """Parameters with their defaults, in the order the class takes them."""
        return {f.name: f.default for f in fields(self.cls) if f.init}


#: Every transform kind a template may declare, in the order messages list them.
TRANSFORM_KINDS: tuple[TransformKind, ...] = (
    TransformKind("linear", LinearTransform, ("flin",), gatingml="flin"),
    TransformKind("log", LogTransform, ("flog",), gatingml="flog"),
    TransformKind("asinh", AsinhTransform, ("fasinh",), gatingml="fasinh"),
    TransformKind("logicle", LogicleTransform, gatingml="logicle"),
    TransformKind("hyperlog", HyperlogTransform, gatingml="hyperlog"),
    TransformKind(
        "biex",
        FlowJoBiexTransform,
        ("biexponential", "flowjo_biex", "flowjobiex"),
        {"neg": "negative", "pos": "positive", "maxValue": "max_value"},
    ),
    TransformKind("flowjo_log", FlowJoLogTransform),
    TransformKind("auto", AutoTransform),
)

#: Transform classes by ``kind`` (what ``to_dict()["kind"]`` says), the identity included.
TRANSFORMS: dict[str, type[Transform]] = {
    Transform.kind: Transform,
    **{k.cls.kind: k.cls for k in TRANSFORM_KINDS},
}

_BY_WORD: dict[str, TransformKind] = {w: k for k in TRANSFORM_KINDS for w in (k.name, *k.aliases)}
_BY_CLASS_KIND: dict[str, TransformKind] = {k.cls.kind: k for k in TRANSFORM_KINDS}
_BY_GATINGML: dict[str, TransformKind] = {k.gatingml: k for k in TRANSFORM_KINDS if k.gatingml}


def transform_kind(word: str) -> TransformKind | None:
    """The kind a template's ``kind:`` names (any case; ``-`` for ``_``; aliases and class
    kinds accepted), or ``None``.

    Examples
    --------
    >>> transform_kind("FlowJo-Biex").name
    'biex'
    """
    return _BY_WORD.get(word.strip().lower().replace("-", "_"))


def kind_of(transform: Transform) -> TransformKind | None:
    """The kind of a transform object, by its ``kind`` (``None`` for the identity)."""
    return _BY_CLASS_KIND.get(getattr(transform, "kind", None))


def gatingml_kind(element: str) -> TransformKind | None:
    """The kind of a GatingML 2.0 transformation element (``flin``, ``logicle``...), or ``None``."""
    return _BY_GATINGML.get(element)


def transform_from_dict(d: dict[str, Any]) -> Transform:
    """Rebuild a transform from :meth:`Transform.to_dict` output.

    Parameters
    ----------
    d
        ``{"kind": name, parameter: value, ...}``; kinds are the keys of :data:`TRANSFORMS`.

    Returns
    -------
    Transform

    Raises
    ------
    TransformError
        Unknown kind, unknown or missing parameters, or invalid values.
    """
    if not isinstance(d, dict) or "kind" not in d:
        raise TransformError(f"a transform must be a mapping with a 'kind', got {d!r}")
    kind = d["kind"]
    cls = TRANSFORMS.get(kind)
    if cls is None:
        raise TransformError(
            f"unknown transform kind {kind!r}; expected one of {', '.join(TRANSFORMS)}"
        )
    params = {k: v for k, v in d.items() if k != "kind"}
    allowed = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TransformError(
            f"{kind} transform: unknown parameter(s) {', '.join(unknown)}; expected {', '.join(allowed) or 'none'}"
        )
    return cls(**params)
