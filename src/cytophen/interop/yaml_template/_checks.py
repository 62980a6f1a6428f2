"""What every part of the template reader shares: the problems found so far, and the checks that
report one (a key not allowed here, a value of the wrong type, a number that is not one)."""

from __future__ import annotations

import difflib
import math

from cytophen.errors import TemplateProblem
from cytophen.interop.yaml_template._reader import Pos, _Map
from cytophen.interop.yaml_template._schema import _YAML12_FLOAT


class Checker:
    """Reports problems of one template file into a list shared by every reader of that file."""

    def __init__(self, file: str, problems: list[TemplateProblem]):
        self.file = file
        self.problems = problems

    # -- reporting ---------------------------------------------------------------------------
    def err(
        self, pos: Pos, message: str, suggestion: str | None = None, *, severity: str = "error"
    ) -> None:
        line, col = pos if pos is not None else (None, None)
        prob = TemplateProblem(self.file, line, col, message, suggestion, severity=severity)
        if prob not in self.problems:  # a YAML anchor used many times reports once
            self.problems.append(prob)

    @property
    def failed(self) -> bool:
        """Whether an error (not only warnings) was reported."""
        return any(p.severity == "error" for p in self.problems)

    def unknown_keys(self, m: _Map, allowed, where: str) -> None:
        for k in m:
            if k not in allowed:
                self.err(
                    m.kpos.get(k),
                    f"unknown key {k!r} in {where}",
                    _did_you_mean(str(k), allowed) or f"allowed: {', '.join(allowed)}",
                )

    def expect(self, value, types, pos: Pos, what: str) -> bool:
        if isinstance(value, bool) and bool not in _as_tuple(types):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            self.err(pos, f"{what} must be {_type_words(types)}, got {_describe(value)}")
        return ok

    def number(self, value, pos: Pos, what: str, *, allow_none: bool = False) -> float | None:
        if value is None and allow_none:
            return None
        if isinstance(value, str) and _YAML12_FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.2 reads 1e5 / 4.0e8 as numbers; PyYAML (1.1) as text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            extra = " or null (open)" if allow_none else ""
            self.err(pos, f"{what} must be a number{extra}, got {_describe(value)}")
            return None
        f = float(value)
        if not math.isfinite(f):
            self.err(pos, f"{what} must be a finite number, got {value!r}")
            return None
        return f

    # -- keys of a population (and of a quadrant child) ---------------------------------------
    def read_flag(self, entry: _Map, key: str) -> bool:
        """A ``true``/``false`` population key (``cleanup``, ``hidden``); absent = false."""
        v = entry.get(key, False)
        if key in entry and not self.expect(v, bool, entry.vpos[key], key):
            return False
        return bool(v)

    def read_percent_of(self, entry: _Map, name: str) -> list[tuple[str, Pos]]:
        if "percent_of" not in entry:
            return []
        v, pos = entry["percent_of"], entry.vpos["percent_of"]
        if isinstance(v, str):
            return [(v, pos)]
        if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
            self.err(pos, f"percent_of of {name!r} must be a list of ancestor population names")
            return []
        return [(a, v.ipos[i]) for i, a in enumerate(v)]


def _did_you_mean(word: str, choices) -> str | None:
    choices = [str(c) for c in choices]
    low = {c.lower(): c for c in choices}
    if word.lower() in low and low[word.lower()] != word:
        return f"did you mean {low[word.lower()]!r}?"
    m = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not m:
        m = [low[x] for x in difflib.get_close_matches(word.lower(), list(low), n=1, cutoff=0.6)]
    return f"did you mean {m[0]!r}?" if m else None


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _type_words(types) -> str:
    words = {
        str: "text",
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        dict: "a mapping",
        list: "a list",
    }
    return " or ".join(words.get(t, t.__name__) for t in _as_tuple(types))


def _describe(v) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v!r}"
