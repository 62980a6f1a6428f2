"""Common base of the data-driven gate estimators."""

from __future__ import annotations

import inspect
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from cytophen._plain import plain
from cytophen.datadriven._constraints import Interval, Mapping, Options, Rule, param_problems
from cytophen.errors import FitDeclined, GateError
from cytophen.gates import Gate, RectangleGate

__all__ = ["GateEstimator", "CutEstimator", "FitDeclined", "SIGNS", "QUADRANT_CONSTRAINTS"]

#: Quadrants by their signs, x sign first.
SIGNS = ("++", "+-", "-+", "--")

#: The quadrant arguments: of the ``quadrant`` method, and of a 1-D method whose gate has two
#: dimensions (it then becomes a quadrant estimator).
QUADRANT_CONSTRAINTS: dict[str, list] = {
    "quadrants": [Mapping([str], [Options(*SIGNS)]), None],
    "sequential": ["boolean"],
    "first": [Options("auto", "x", "y")],
}

#: A seed: what numpy's and scikit-learn's random generators accept.
SEED = [Interval(Integral, 0, 2**32 - 1)]


class GateEstimator:
    """scikit-learn-style base: ``__init__`` stores parameters, :meth:`fit` learns, learned values
    end in ``_``.

    Subclasses set ``name`` (the registry name), ``n_dims`` (1, 2 or ``None`` = any),
    ``default_min_events`` (the smallest number of finite events
    :func:`cytophen.datadriven.fit_gate` lets them fit when the ``min_events`` argument is not
    given; fewer → the population is not measured) and ``_parameter_constraints``: for each
    constructor argument the values it may take (see :mod:`cytophen.datadriven._constraints`),
    merged with those of the base classes. ``_parameter_rules`` tie arguments together. Both are
    checked by :meth:`param_problems`, for a template's arguments and at the start of ``fit``.
    """

    name: ClassVar[str] = ""
    n_dims: ClassVar[int | None] = 1
    default_min_events: ClassVar[int] = 50
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "min_events": [Interval(Integral, 1, None), None]
    }
    _parameter_rules: ClassVar[tuple[Rule, ...]] = ()
    #: Arguments a template may give besides the constructor's (used by ``fit_gate``).
    _template_constraints: ClassVar[dict[str, list]] = {
        "max_fit_events": [Interval(Integral, 1, None)]
    }

    _signature: ClassVar[inspect.Signature]

    min_events: int | None
    #: Whether ``fit`` takes guide columns after the gate's own (a ``guide:`` in the template).
    accepts_guide: ClassVar[bool] = False

    fell_back_: bool
    reason_: str

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._signature = inspect.signature(cls.__init__)  # read on every fit: once per class

    # -- parameters ------------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        return [p for p in cls._signature.parameters if p != "self"]

    @classmethod
    def _merged(cls, attr: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for k in reversed(cls.__mro__):
            out.update(vars(k).get(attr, {}))
        return out

    @classmethod
    def parameter_constraints(cls) -> dict[str, list]:
        """The constraints of each constructor argument (declared on this class or a base)."""
        merged = cls._merged("_parameter_constraints")
        return {n: merged[n] for n in cls.param_names() if n in merged}

    @classmethod
    def param_problems(cls, params: dict[str, Any], *, template: bool = False) -> list[str]:
        """Every problem of ``params`` as arguments of this method (empty list = valid).

        ``template``: also accept the keys a template may add (``max_fit_events``; for 1-D
        methods the quadrant keys). See :func:`cytophen.datadriven.check_params`.
        """
        constraints = cls.parameter_constraints()
        if template:
            constraints.update(cls._merged("_template_constraints"))
        names = set(cls.param_names())
        rules = [
            r
            for k in cls.__mro__
            for r in vars(k).get("_parameter_rules", ())
            if names.issuperset(r.names)
        ]
        defaults = {
            n: p.default for n, p in cls._signature.parameters.items() if p.default is not p.empty
        }
        return param_problems(constraints, params, cls.name, rules=rules, defaults=defaults)

    def _validate_params(self) -> None:
        problems = self.param_problems(self.get_params())
        if problems:
            raise GateError(self.name, "; ".join(problems))

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        return {k: getattr(self, k) for k in self.param_names()}

    def __repr__(self) -> str:
        sig = self._signature
        changed = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if sig.parameters[k].default is inspect.Parameter.empty
            or sig.parameters[k].default != v
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def required_events(self) -> int:
        """Smallest number of finite events this configuration can be fitted on: ``min_events``
        when given, else the method's own minimum."""
        return int(self.min_events) if self.min_events is not None else self._own_minimum()

    def _own_minimum(self) -> int:
        return self.default_min_events

    # -- helpers -----------------------------------------------------------------------------
    def _as_matrix(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise GateError(self.name, f"expected an (n, d) array of events, got shape {X.shape}")
        if self.n_dims is not None and X.shape[1] != self.n_dims:
            raise GateError(self.name, f"works on {self.n_dims} dimension(s), got {X.shape[1]}")
        X = X[np.all(np.isfinite(X), axis=1)]
        if X.shape[0] < 2:
            raise FitDeclined(self.name, f"only {X.shape[0]} finite event(s) to fit")
        return X

    def _start(self) -> None:
        """Begin a fit: check the arguments (a :class:`GateError` naming each bad one)."""
        self._validate_params()
        self.fell_back_ = False
        self.reason_ = ""

    def _fall_back(self, reason: str) -> None:
        self.fell_back_ = True
        self.reason_ = reason

    def fit(self, X) -> GateEstimator:  # pragma: no cover - abstract
        raise NotImplementedError

    def fallen_cuts(self) -> list[tuple[int, float]]:
        """``(dimension, cut)`` of each cut this fit placed by a fallback rule instead of from
        a landmark of the data (a template's ``fallback_from`` may replace them); empty for
        methods whose gate is not made of cuts."""
        return []

    def to_gate(self, dims, side: str | None = None) -> Gate:  # pragma: no cover - abstract
        """The fixed gate (over ``dims``) this fitted estimator chose."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable learned values (what gates.json records)."""
        out: dict[str, Any] = {}
        for k, v in vars(self).items():
            if k.endswith("_") and not k.startswith("_") and k not in ("fell_back_", "reason_"):
                out[k.rstrip("_")] = plain(v)
        return out


class CutEstimator(GateEstimator):
    """A 1-D method that learns one cut point ``threshold_``: the gate is ``[cut, inf)`` for side
    ``'+'`` and ``(-inf, cut)`` for side ``'-'``."""

    _template_constraints = QUADRANT_CONSTRAINTS
    threshold_: float

    def fallen_cuts(self) -> list[tuple[int, float]]:
        return [(0, float(self.threshold_))] if self.fell_back_ else []

    def to_gate(self, dims, side: str | None = None) -> Gate:
        side = side or "+"
        if side not in ("+", "-"):
            raise GateError(self.name, f"side must be '+' or '-' for a 1-D cut, got {side!r}")
        cut = float(self.threshold_)
        return (
            RectangleGate(dims, [cut], [None])
            if side == "+"
            else RectangleGate(dims, [None], [cut])
        )
