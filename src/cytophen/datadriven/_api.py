"""fit_gate: from a template's DataDrivenGate and a sample's parent events to a fixed gate."""

from __future__ import annotations

from typing import Any

import numpy as np

from cytophen._plain import plain
from cytophen.datadriven._base import QUADRANT_CONSTRAINTS, CutEstimator, FitDeclined
from cytophen.datadriven._quadrant import BoxEstimator, QuadrantEstimator
from cytophen.datadriven._registry import check_params, get_method, make_cut
from cytophen.errors import GateError
from cytophen.gates import DataDrivenGate, FitOutcome

__all__ = ["fit_gate", "build_estimator", "DEFAULT_MAX_FIT_EVENTS", "subsample_indices"]

#: Events a gate is fitted on at most (a seeded subsample of the parent; the gate then applies to
#: all events). Override per gate with ``max_fit_events``.
DEFAULT_MAX_FIT_EVENTS = 50_000


def subsample_indices(n: int, cap: int, seed: int) -> np.ndarray:
    """Sorted indices of a uniform draw of ``min(n, cap)`` of ``n`` events (``default_rng(seed)``)."""
    if n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=cap, replace=False))


def build_estimator(gate: DataDrivenGate, *, seed: int = 0):
    """The (unfitted) estimator a data-driven gate describes, after validating its arguments.

    A 1-D method on a gate with two dimensions becomes a :class:`QuadrantEstimator` (its quadrant
    keys: ``quadrants``, ``sequential``, ``first``), or, when the gate's side has two signs such as
    ``'+-'`` and no quadrants are named, a :class:`BoxEstimator` (one cut per dimension). A box
    method (``box``, ``guided_box``) takes its signs from the gate's side.

    Returns
    -------
    estimator, min_events, max_fit_events
        ``min_events``: the fewest finite events it is fitted on (``required_events()``: the
        ``min_events`` argument, else the method's own minimum).
    """
    method = gate.method
    params = dict(gate.params or {})
    problems = check_params(method, params)
    if problems:
        raise GateError(method, "; ".join(problems))
    cls = get_method(method)
    cap = int(params.pop("max_fit_events", DEFAULT_MAX_FIT_EVENTS))
    d = len(gate.dims)
    if issubclass(cls, CutEstimator):
        est = _cut_estimator(cls, params, gate, seed)
    elif issubclass(cls, BoxEstimator):
        if "side" in params and params["side"] != gate.side:
            raise GateError(method, "the box's signs come from the gate's side")
        params["side"] = gate.side
        params.setdefault("random_state", seed)
        est = cls(**params)
    else:
        if cls.n_dims is not None and cls.n_dims != d:
            raise GateError(method, f"works on {cls.n_dims} dimension(s), the gate has {d}")
        if "random_state" in cls.param_names() and "random_state" not in params:
            params["random_state"] = seed
        est = cls(**params)
    return est, est.required_events(), cap


def _cut_estimator(cls, params: dict[str, Any], gate: DataDrivenGate, seed: int):
    """A 1-D method's estimator: on one dimension itself, on more a box or quadrants of it (the
    gate's ``min_events`` then applies to the whole box, each axis keeping its own minimum)."""
    method, d = gate.method, len(gate.dims)
    quad = {k: params.pop(k) for k in QUADRANT_CONSTRAINTS if k in params}
    if d == 1:
        if quad:
            raise GateError(method, f"{', '.join(quad)} only apply to a gate with two dimensions")
        return make_cut({"method": cls.name, **params}, seed)
    min_events = params.pop("min_events", None)
    axis = {"method": cls.name, **params}
    if gate.side is not None and len(gate.side) == d and not quad.get("quadrants"):
        if quad:
            raise GateError(
                method, f"{', '.join(quad)} do not apply to a threshold box (side {gate.side!r})"
            )
        return BoxEstimator(
            side=gate.side, axes=[axis] * d, random_state=seed, min_events=min_events
        )
    if d == 2:
        return QuadrantEstimator(x=axis, random_state=seed, min_events=min_events, **quad)
    raise GateError(
        method,
        f"a 1-D method on {d} dimensions needs a side with one sign per dimension, got {gate.side!r}",
    )


def fit_gate(gate: DataDrivenGate, values, *, seed: int = 0) -> FitOutcome:
    """Fit a data-driven gate on one sample's (or a pooled group's) parent events.

    Non-finite rows are dropped (and counted), fewer than the method's minimum of finite events
    declines the fit (``FitOutcome(gate=None, reason=...)``: the population is reported "not
    measured", never guessed), more than ``max_fit_events`` (default 50 000) are subsampled with
    ``np.random.default_rng(seed)``. Same data + parameters + seed → the same gate.

    Parameters
    ----------
    gate
        The template's gate (method name, typed arguments, side, dimensions).
    values
        ``(n_parent, len(gate.dims))`` float64, compensated and transformed as the dims say.
    seed
        Seed of the subsample and of randomised initialisations.

    Returns
    -------
    FitOutcome
        ``gate``: a fixed gate over ``gate.dims`` (1-D cut with side ``'+'`` →
        ``RectangleGate(dims, [cut], [None])``, ``'-'`` → ``RectangleGate(dims, [None], [cut])``;
        quadrant methods → :class:`~cytophen.gates.QuadrantGate` with the template's quadrant
        names); ``fell_back`` and ``reason``; ``details`` with the learned values (cut points,
        peaks, means, vertices), the effective parameters, ``n_input``, ``n_nonfinite``, ``n_fit``.

    Examples
    --------
    >>> from cytophen.gates import DataDrivenGate
    >>> g = DataDrivenGate(["CD19"], "mindensity", side="+")
    >>> x = np.r_[np.random.default_rng(0).normal(0, 1, 5000), np.random.default_rng(1).normal(6, 1, 5000)]
    >>> out = fit_gate(g, x[:, None], seed=0)
    >>> 2.0 < out.gate.mins[0] < 4.0
    True
    """
    X = np.asarray(values, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    d = len(gate.dims)
    g = len(gate.guide)
    widths = (d, d + g) if g else (d,)
    if X.ndim != 2 or X.shape[1] not in widths:
        labels = [x.label for x in (*gate.dims, *gate.guide)]
        raise GateError(
            gate.method,
            f"expected values of shape (n, {' or '.join(map(str, widths))}) for "
            f"{labels}, got {X.shape}",
        )
    est, need, cap = build_estimator(gate, seed=seed)
    if g and not getattr(est, "accepts_guide", False):
        raise GateError(gate.method, f"{gate.method} takes no guide markers")
    finite = np.all(np.isfinite(X), axis=1)
    n_input = int(X.shape[0])
    n_finite = int(finite.sum())
    details: dict[str, Any] = {
        "method": gate.method,
        "params": plain(dict(gate.params or {})),
        "estimator": repr(est),
        "n_input": n_input,
        "n_nonfinite": n_input - n_finite,
        "min_events": need,
        "max_fit_events": cap,
        "seed": int(seed),
    }
    if g:
        details["guided_by"] = [x.label for x in gate.guide] if X.shape[1] > d else []
    if n_finite < need:
        details["n_fit"] = 0
        return FitOutcome(
            None,
            fell_back=False,
            reason=f"only {n_finite} finite events in the parent; {gate.method} needs at least {need} (min_events)",
            details=details,
        )
    Xf = X[finite] if n_finite < n_input else X
    idx = subsample_indices(n_finite, cap, seed)
    Xs = Xf[idx] if idx.size < n_finite else Xf
    details["n_fit"] = int(Xs.shape[0])
    try:
        est.fit(Xs)
    except FitDeclined as exc:
        return FitOutcome(None, fell_back=False, reason=exc.reason, details=details)
    placed = est.to_gate(gate.dims, gate.side)
    details.update(plain(est.summary()))
    details["fixed_params"] = plain(est.get_params())
    reason = est.reason_
    if est.fell_back_:
        details["fallen_cuts"] = [[int(a), float(c)] for a, c in est.fallen_cuts()]
    if n_input > n_finite:
        note = f"{n_input - n_finite} non-finite event(s) dropped before fitting"
        reason = f"{reason}; {note}" if reason else note
    return FitOutcome(placed, fell_back=bool(est.fell_back_), reason=reason, details=details)
