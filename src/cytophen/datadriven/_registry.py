"""The one place mapping method names (as templates write them) to estimator classes, and nested
1-D specs (``{method: mindensity, adjust: 1}``) to estimators."""

from __future__ import annotations

import difflib
from typing import Any

from cytophen.datadriven._base import CutEstimator, GateEstimator
from cytophen.datadriven._constraints import Constraint
from cytophen.errors import GateError

__all__ = ["available_methods", "get_method", "check_params", "register", "CutSpec", "make_cut"]

_REGISTRY: dict[str, type[GateEstimator]] = {}
#: Other names templates may use (openCyto's names) -> registered name.
ALIASES: dict[str, str] = {
    "flowclust": "mixture_ellipse",
    "flowclust_2d": "mixture_ellipse",
    "flowclust_1d": "mixture_1d",
    "tail": "tailgate",
    "quadrant_sequential": "quadrant",
}


def register(cls: type[GateEstimator]) -> type[GateEstimator]:
    """Register an estimator class under ``cls.name`` (a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> dict[str, str]:
    """Registered data-driven methods (and their aliases), sorted: ``{name: one-line summary}``.

    Iterating gives the names; an alias's summary says which method it stands for.
    """
    out = {}
    for name in sorted({*_REGISTRY, *ALIASES}):
        if name in _REGISTRY:
            doc = (_REGISTRY[name].__doc__ or "").strip().splitlines()
            out[name] = doc[0] if doc else ""
        elif ALIASES[name] in _REGISTRY:
            out[name] = f"alias of {ALIASES[name]}"
    return out


def get_method(method: str) -> type[GateEstimator]:
    """The estimator class registered as ``method`` or an alias (a :class:`GateError` with
    suggestions if none)."""
    try:
        return _REGISTRY[ALIASES.get(method, method)]
    except (KeyError, TypeError):
        raise GateError(str(method), _unknown_method(method)) from None


def _unknown_method(method: str) -> str:
    close = difflib.get_close_matches(str(method), available_methods(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown data-driven method {method!r}; {hint}available: {', '.join(sorted(_REGISTRY))}"


class CutSpec(Constraint):
    """A nested 1-D method: ``{method: <a registered 1-D method>, <its arguments>}`` (``method``
    defaults to ``mindensity``), its arguments checked by that method's own constraints."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, dict) and not cut_spec_problems(value)

    def inner_problems(self, value: Any) -> list[tuple[str, str]] | None:
        if not isinstance(value, dict):
            return None
        return [("", p) for p in cut_spec_problems(value)] or None

    def __str__(self) -> str:
        return "a 1-D method {method: <name>, <its arguments>}"

    @property
    def plural(self) -> str:
        return "1-D methods {method: <name>, <its arguments>}"


def cut_spec_problems(spec: dict[str, Any]) -> list[str]:
    """Problems of a nested 1-D cut spec (empty list = valid); see :class:`CutSpec`."""
    method = spec.get("method", "mindensity")
    if not isinstance(method, str) or ALIASES.get(method, method) not in _REGISTRY:
        return [_unknown_method(method)]
    cls = get_method(method)
    if not issubclass(cls, CutEstimator):
        return [f"{method} does not find a 1-D cut point"]
    return cls.param_problems({k: v for k, v in spec.items() if k != "method"})


def make_cut(spec: dict[str, Any] | None, random_state: int = 0) -> CutEstimator:
    """The unfitted 1-D estimator a cut spec describes (the one place nested per-axis methods are
    built: quadrant axes, box axes, a guided box's guide, the half-space's first cut).

    Parameters
    ----------
    spec
        ``{method: <1-D method>, <its arguments>}``; ``None`` or ``{}``: ``mindensity``.
    random_state
        Given to the method if it takes one and the spec does not set it.

    Raises
    ------
    GateError
        Naming every problem of the spec.
    """
    params = dict(spec or {})
    problems = cut_spec_problems(params)
    method = params.pop("method", "mindensity")
    if problems:
        raise GateError(str(method), "; ".join(problems))
    cls = get_method(method)
    if "random_state" in cls.param_names():
        params.setdefault("random_state", random_state)
    return cls(**params)


def check_params(method: str, params: dict[str, Any] | None) -> list[str]:
    """Problems with ``params`` for ``method`` (empty list = valid).

    Checks that the method exists, that every argument is known (with a did-you-mean suggestion)
    and that each value is one the method accepts (its ``_parameter_constraints``: ranges,
    options, list shapes, nested 1-D methods checked the same way, and rules between arguments;
    the estimator applies the same checks when it fits). Every method also takes
    ``min_events`` and ``max_fit_events``; 1-D methods also take the quadrant keys
    ``quadrants``, ``sequential`` and ``first`` (used when their gate has two dimensions).

    Parameters
    ----------
    method
        A registered name (see :func:`available_methods`).
    params
        The template's arguments for it.

    Returns
    -------
    list of str
        One message per problem, each naming the argument, what was expected and what was given.

    Examples
    --------
    >>> check_params("mindensity", {"adjsut": 2})  # doctest: +SKIP
    ["unknown argument 'adjsut' for mindensity (did you mean 'adjust'?); it takes: ..."]  # doctest: +SKIP
    >>> check_params("quadrant", {"x": {"min_depth": 1.5}})  # doctest: +SKIP
    ["x: argument 'min_depth' of mindensity must be a number within [0, 1), got float 1.5"]  # doctest: +SKIP
    """
    if not isinstance(method, str) or ALIASES.get(method, method) not in _REGISTRY:
        return [_unknown_method(method)]
    if params is None:
        return []
    if not isinstance(params, dict):
        return [f"arguments of {method} must be a mapping, got {type(params).__name__}"]
    return get_method(method).param_problems(params, template=True)
