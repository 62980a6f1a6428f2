"""What the data-driven estimators' arguments may be: declared once per class, checked by one function.

In the manner of scikit-learn's ``_parameter_constraints``: an estimator class declares
``_parameter_constraints = {argument: [constraint, ...]}`` and a value is valid when it satisfies
one constraint of its list. :func:`param_problems` checks a mapping of arguments against them
(template validation, ``check_params``) and the estimator checks its own values with the same
function at the start of ``fit``. Arguments that must agree with each other (``neg < K``) are
:class:`Rule` objects in the class's ``_parameter_rules``.

Constraints: :class:`Interval` (integers or real numbers, open or closed ends), :class:`Options`
(a set of words), ``"boolean"``, ``None`` (null is allowed), ``str`` (any text), :class:`Signs`
(``'+-'``), :class:`Sequence` (a list, optionally of a fixed length, with a rule over its items)
and :class:`Mapping`. A nested estimator's arguments (a 1-D cut spec) are checked by a constraint
that reports the nested problems (``_registry.CutSpec``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "Constraint",
    "Interval",
    "Options",
    "Signs",
    "Sequence",
    "Mapping",
    "Rule",
    "describe",
    "param_problems",
]


class Constraint:
    """One kind of valid value: :meth:`is_satisfied_by`, and a description for messages."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def inner_problems(self, value: Any) -> list[tuple[str, str]] | None:
        """For a value of this kind whose parts are wrong (a nested estimator's arguments):
        ``(path, problem)`` pairs, the path relative to the value (``''``, ``'[0]'``); ``None``
        when the value is not of this kind at all."""
        return None

    @property
    def plural(self) -> str:
        """The description of several such values (``'numbers > 0'``)."""
        return f"values that are {self}"


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


class Interval(Constraint):
    """A finite number (``Real``) or integer (``Integral``) between ``low`` and ``high`` (``None``:
    unbounded); ``closed`` says which ends belong to it: ``'both'``, ``'left'``, ``'right'`` or
    ``'neither'``. Booleans, NaN and infinities are never numbers here."""

    def __init__(self, kind: type, low: float | None, high: float | None, closed: str = "both"):
        if kind not in (Integral, Real):
            raise ValueError(f"kind must be Integral or Real, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both, left, right or neither, got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if not _is_number(value) or not isinstance(value, self.kind) or not math.isfinite(value):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low if left else value <= self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    def _range(self) -> str:
        lo, hi = self.low, self.high
        if lo is None and hi is None:
            return ""
        if hi is None:
            return f" >= {lo}" if self.closed in ("both", "left") else f" > {lo}"
        if lo is None:
            return f" <= {hi}" if self.closed in ("both", "right") else f" < {hi}"
        a = "[" if self.closed in ("both", "left") else "("
        b = "]" if self.closed in ("both", "right") else ")"
        return f" within {a}{lo}, {hi}{b}"

    def __str__(self) -> str:
        return ("an integer" if self.kind is Integral else "a number") + self._range()

    @property
    def plural(self) -> str:
        return ("integers" if self.kind is Integral else "numbers") + self._range()


class Options(Constraint):
    """One of a few words (``Options('t', 'gaussian')``)."""

    def __init__(self, *words: str):
        self.words = words

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.words

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(w) for w in self.words)

    @property
    def plural(self) -> str:
        return "words among " + ", ".join(repr(w) for w in self.words)


class Signs(Constraint):
    """A text of ``+`` and ``-`` signs, one per dimension (``'+-'``)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value) and not set(value) - {"+", "-"}

    def __str__(self) -> str:
        return "a text of '+' and '-' signs (one per dimension)"


class _Boolean(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def __str__(self) -> str:
        return "true or false"

    @property
    def plural(self) -> str:
        return "booleans"


class _Null(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "null"

    @property
    def plural(self) -> str:
        return "nulls"


class _Text(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value)

    def __str__(self) -> str:
        return "a name"

    @property
    def plural(self) -> str:
        return "names"


def _make(constraint: Any) -> Constraint:
    if isinstance(constraint, Constraint):
        return constraint
    if constraint is None:
        return _Null()
    if constraint == "boolean":
        return _Boolean()
    if constraint is str:
        return _Text()
    raise ValueError(f"not a parameter constraint: {constraint!r}")


def _satisfied(constraints: Iterable[Any], value: Any) -> bool:
    return any(_make(c).is_satisfied_by(value) for c in constraints)


def describe(constraints: Iterable[Any], *, plural: bool = False) -> str:
    """``'a number > 0 or null'``: what satisfies one of ``constraints`` (null said last;
    ``plural``: ``'(numbers or nulls)'``, as the items of a list)."""
    made = sorted((_make(c) for c in constraints), key=lambda c: isinstance(c, _Null))
    text = " or ".join(c.plural if plural else str(c) for c in made)
    return f"({text})" if plural and len(made) > 1 else text


class Sequence(Constraint):
    """A list (or tuple) whose items each satisfy one of ``items``; ``length`` fixes how many,
    and ``rule = (holds, text)`` must hold over the whole list (``text`` says it: ``'the first
    below the second'``)."""

    def __init__(
        self,
        items: list[Any],
        length: int | None = None,
        rule: tuple[Callable[[list], bool], str] | None = None,
    ):
        self.items, self.length, self.rule = items, length, rule

    def _shape_ok(self, value: Any) -> bool:
        return isinstance(value, (list, tuple)) and (
            self.length is None or len(value) == self.length
        )

    def is_satisfied_by(self, value: Any) -> bool:
        return (
            self._shape_ok(value)
            and all(_satisfied(self.items, v) for v in value)
            and (self.rule is None or bool(self.rule[0](list(value))))
        )

    def inner_problems(self, value: Any) -> list[tuple[str, str]] | None:
        if not self._shape_ok(value):
            return None
        out = []
        for i, v in enumerate(value):
            if _satisfied(self.items, v):
                continue
            inner = _inner(self.items, v)
            if inner is None:
                return None
            out += [(f"[{i}]{path}", problem) for path, problem in inner]
        return out or None

    def __str__(self) -> str:
        n = f"{self.length} " if self.length is not None else ""
        rule = f" ({self.rule[1]})" if self.rule is not None else ""
        return f"a list of {n}{describe(self.items, plural=True)}{rule}"


class Mapping(Constraint):
    """A mapping whose keys satisfy one of ``keys`` and values one of ``values``."""

    def __init__(self, keys: list[Any], values: list[Any]):
        self.keys, self.values = keys, values

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, dict) and all(
            _satisfied(self.keys, k) and _satisfied(self.values, v) for k, v in value.items()
        )

    def __str__(self) -> str:
        return f"a mapping from {describe(self.keys, plural=True)} to {describe(self.values)}"


def _inner(constraints: Iterable[Any], value: Any) -> list[tuple[str, str]] | None:
    for c in constraints:
        inner = _make(c).inner_problems(value)
        if inner:
            return inner
    return None


@dataclass(frozen=True)
class Rule:
    """Arguments that must agree: ``holds(*values of names)`` is true for valid values; ``text``
    says the rule (``'neg must be below K'``)."""

    names: tuple[str, ...]
    holds: Callable[..., bool]
    text: str


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {value!r}"


def param_problems(
    constraints: dict[str, list[Any]],
    params: dict[str, Any],
    where: str,
    *,
    rules: Iterable[Rule] = (),
    defaults: dict[str, Any] | None = None,
) -> list[str]:
    """Every problem of ``params`` against ``constraints`` (empty list = valid).

    Each message names the argument, what it must be and what it is; an unknown argument gets a
    did-you-mean suggestion and the list of known ones; a nested estimator's problems are
    prefixed with where they are (``'axes[1]: ...'``). ``rules`` are checked over ``defaults``
    updated with ``params`` when their own arguments are valid.
    """
    problems: list[str] = []
    bad: set[str] = set()
    for key, value in params.items():
        if key not in constraints:
            close = difflib.get_close_matches(str(key), list(constraints), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"unknown argument {key!r} for {where}{hint}; it takes: {', '.join(constraints)}"
            )
            bad.add(key)
        elif not _satisfied(constraints[key], value):
            bad.add(key)
            inner = _inner(constraints[key], value)
            if inner:
                problems += [f"{key}{path}: {problem}" for path, problem in inner]
            else:
                problems.append(
                    f"argument {key!r} of {where} must be {describe(constraints[key])}, "
                    f"{_got(value)}"
                )
    values = {**(defaults or {}), **params}
    for rule in rules:
        if bad.intersection(rule.names) or not all(n in values for n in rule.names):
            continue
        args = [values[n] for n in rule.names]
        if not rule.holds(*args):
            names = " and ".join(repr(n) for n in rule.names)
            given = ", ".join(f"{n}={v!r}" for n, v in zip(rule.names, args))
            problems.append(f"arguments {names} of {where}: {rule.text}, got {given}")
    return problems
