"""Common base of the data-driven gate estimators."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from cytophen.errors import GateError
from cytophen.gates import Gate, RectangleGate

__all__ = ["GateEstimator", "CutEstimator", "FitDeclined"]


class FitDeclined(GateError):
    """An estimator cannot place its gate on these events (too few, degenerate); the population is
    then reported as "not measured" with this reason, never guessed."""

    def __init__(self, method: str, reason: str):
        self.reason = reason
        super().__init__(method, reason)


class GateEstimator:
    """scikit-learn-style base: ``__init__`` stores parameters, :meth:`fit` learns, learned values
    end in ``_``.

    Subclasses set ``name`` (the registry name), ``n_dims`` (1, 2 or ``None`` = any) and
    ``min_events`` (the smallest number of finite events :func:`cytophen.datadriven.fit_gate` lets
    them fit; fewer → the population is not measured).
    """

    name: ClassVar[str] = ""
    n_dims: ClassVar[int | None] = 1
    min_events: ClassVar[int] = 50

    fell_back_: bool
    reason_: str

    # -- parameters ------------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        return {k: getattr(self, k) for k in self.param_names()}

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if sig.parameters[k].default is inspect.Parameter.empty
            or sig.parameters[k].default != v
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def required_events(self) -> int:
        """Smallest number of finite events this configuration can be fitted on."""
        return int(self.min_events)

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
        self.fell_back_ = False
        self.reason_ = ""

    def _fall_back(self, reason: str) -> None:
        self.fell_back_ = True
        self.reason_ = reason

    def fit(self, X) -> GateEstimator:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_gate(self, dims, side: str | None = None) -> Gate:  # pragma: no cover - abstract
        """The fixed gate (over ``dims``) this fitted estimator chose."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable learned values (what gates.json records)."""
        out: dict[str, Any] = {}
        for k, v in vars(self).items():
            if k.endswith("_") and not k.startswith("_") and k not in ("fell_back_", "reason_"):
                out[k.rstrip("_")] = _jsonable(v)
        return out


class CutEstimator(GateEstimator):
    """A 1-D method that learns one cut point ``threshold_``: the gate is ``[cut, inf)`` for side
    ``'+'`` and ``(-inf, cut)`` for side ``'-'``."""

    threshold_: float

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


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(a) for a in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(a) for k, a in v.items()}
    return v
