"""The one place mapping method names (as templates write them) to estimator classes."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from cytophen.datadriven._base import GateEstimator
from cytophen.errors import GateError

__all__ = ["available_methods", "get_method", "check_params", "register", "COMMON_PARAMS"]

_REGISTRY: dict[str, type[GateEstimator]] = {}
#: Other names templates may use (openCyto's names) -> registered name.
ALIASES: dict[str, str] = {
    "flowclust": "mixture_ellipse",
    "flowclust_2d": "mixture_ellipse",
    "flowclust_1d": "mixture_1d",
    "tail": "tailgate",
    "quadrant_sequential": "quadrant",
}

#: Keys every method accepts (handled by :func:`cytophen.datadriven.fit_gate`, not the estimator):
#: ``min_events`` (fewer finite parent events → not measured), ``max_fit_events`` (subsample cap).
COMMON_PARAMS: dict[str, Any] = {"min_events": int, "max_fit_events": int}

#: Keys a 1-D cut method accepts when its gate has two dimensions and defines quadrants.
QUADRANT_PARAMS: dict[str, Any] = {
    "quadrants": dict[str, str] | None,
    "sequential": bool,
    "first": Literal["auto", "x", "y"],
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


def _hints(cls) -> dict[str, Any]:
    mod = __import__(cls.__module__, fromlist=["_"])
    return typing.get_type_hints(cls.__init__, globalns=vars(mod))


def _type_ok(value, tp) -> bool:
    if tp is Any:
        return True
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        return (
            isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value)
            if args
            else isinstance(value, (list, tuple))
        )
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            return False
        if not args:
            return True
        return all(_type_ok(k, args[0]) and _type_ok(v, args[1]) for k, v in value.items())
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def describe_type(tp) -> str:
    """Readable name of an annotation: ``'float or null'``, ``"one of 't', 'gaussian'"``."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {describe_type(args[0])}" if args else "a list"
    if origin is dict:
        return (
            f"a mapping of {describe_type(args[0])} to {describe_type(args[1])}"
            if args
            else "a mapping"
        )
    return getattr(tp, "__name__", str(tp))


def _check(where: str, params: dict[str, Any], hints: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in params.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), hints, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"unknown argument {key!r} for {where}{hint}; it takes: {', '.join(hints)}"
            )
        elif not _type_ok(value, hints[key]):
            problems.append(
                f"argument {key!r} of {where} must be {describe_type(hints[key])}, "
                f"got {type(value).__name__} {value!r}"
            )
    return problems


def check_params(method: str, params: dict[str, Any] | None) -> list[str]:
    """Problems with ``params`` for ``method`` (empty list = valid).

    Checks that the method exists, that every argument is known (with a did-you-mean suggestion)
    and that each value has the type the estimator's ``__init__`` annotation says. The common keys
    ``min_events`` and ``max_fit_events`` are accepted by every method; 1-D methods also accept the
    quadrant keys ``quadrants``, ``sequential`` and ``first`` (used when their gate has two
    dimensions).

    Parameters
    ----------
    method
        A registered name (see :func:`available_methods`).
    params
        The template's arguments for it.

    Returns
    -------
    list of str
        One message per problem, each naming the argument and what was expected.

    Examples
    --------
    >>> check_params("mindensity", {"adjsut": 2})  # doctest: +SKIP
    ["unknown argument 'adjsut' for mindensity (did you mean 'adjust'?); it takes: ..."]  # doctest: +SKIP
    """
    if not isinstance(method, str) or ALIASES.get(method, method) not in _REGISTRY:
        return [_unknown_method(method)]
    if params is None:
        return []
    if not isinstance(params, dict):
        return [f"arguments of {method} must be a mapping, got {type(params).__name__}"]
    cls = get_method(method)
    hints = {k: v for k, v in _hints(cls).items() if k != "return"}
    hints.update(COMMON_PARAMS)
    from cytophen.datadriven._base import CutEstimator

    if issubclass(cls, CutEstimator):
        hints.update(QUADRANT_PARAMS)
    problems = _check(method, params, hints)
    # nested per-axis specs of the quadrant method: {method: name, ...its arguments}
    specs: list[tuple[str, Any]] = []
    if getattr(cls, "name", "") == "quadrant":
        specs = [(a, params.get(a)) for a in ("x", "y")]
    elif getattr(cls, "name", "") == "box" and isinstance(params.get("axes"), list):
        specs = [(f"axes[{i}]", a) for i, a in enumerate(params["axes"])]
    if specs:
        for axis, sub in specs:
            if isinstance(sub, dict):
                sub = dict(sub)
                m = sub.pop("method", "mindensity")
                sub_problems = check_params(m, sub)
                if not sub_problems and not issubclass(get_method(m), CutEstimator):
                    sub_problems = [f"{m} does not find a 1-D cut point"]
                problems += [f"{axis}: {p}" for p in sub_problems]
    return problems
