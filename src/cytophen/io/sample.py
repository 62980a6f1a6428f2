"""The Sample: one data set of one FCS file, as read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Sample"]


@dataclass(eq=False)
class Sample:
    """Events and metadata of one FCS data set.

    Attributes
    ----------
    events
        ``(n_events, n_channels)`` array of the values as stored in the file (integers masked to
        ``$PnR`` bits, converted to float). float32 where the stored type fits it exactly, else float64.
    channels
        ``$PnN`` names, one per column.
    markers
        ``$PnS`` names, ``''`` where absent.
    keywords
        Every TEXT keyword, keys as written (``$`` prefix kept), values as strings.
    spillover
        The spillover matrix from ``$SPILLOVER`` / ``SPILL`` / ``$SPILL`` / ``$COMP`` as a
        DataFrame (rows: source channels, columns: detector channels), or ``None``.
    path
        The file this came from, if any.
    dataset
        Index of the data set in the file (0 = first).
    """

    events: np.ndarray
    channels: list[str]
    markers: list[str]
    keywords: dict[str, str] = field(default_factory=dict)
    spillover: pd.DataFrame | None = None
    path: Path | None = None
    dataset: int = 0

    def __post_init__(self) -> None:
        if self.events.ndim != 2 or self.events.shape[1] != len(self.channels):
            raise ValueError(
                f"events shape {self.events.shape} does not match {len(self.channels)} channels"
            )
        if len(self.markers) != len(self.channels):
            raise ValueError("markers and channels must have the same length")
        if not isinstance(self.keywords, _Keywords):
            self.keywords = _Keywords(self.keywords)

    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    @property
    def id(self) -> str:
        """A default sample id: the file stem, else ``$FIL``, else ``'sample'``."""
        if self.path is not None:
            return self.path.stem
        return self.keywords.get("$FIL", "sample") or "sample"

    def channel_index(self, name: str) -> int:
        """Column index of the channel whose ``$PnN`` is exactly ``name``."""
        return self.channels.index(name)

    def keyword(self, key: str, default: str | None = None) -> str | None:
        """A keyword value, looked up case-insensitively (``$tot`` finds ``$TOT``)."""
        kw = self.keywords
        if key in kw:
            return kw[key]
        if not isinstance(kw, _Keywords):  # a plain dict assigned after construction
            kw = self.keywords = _Keywords(kw)
        return kw.get_any_case(key, default)

    def scale_factors(self) -> list[tuple[str, float, float]]:
        """Per channel, how stored values become linear values: ``(kind, a, b)``.

        ``kind`` is ``'log'`` for log-amplified channels (``$PnE`` = ``f1,f2`` with f1 > 0:
        value = ``f2 * 10**(f1 * x / $PnR)``, f2 = 0 read as 1), ``'gain'`` for linear channels with
        ``$PnG`` (value = x / gain), ``'time'`` for the time channel with ``$TIMESTEP``
        (value = x * timestep), ``'none'`` otherwise.
        """
        out: list[tuple[str, float, float]] = []
        timestep = _to_float(self.keyword("$TIMESTEP"))
        for i, name in enumerate(self.channels):
            n = i + 1
            pne = self.keyword(f"$P{n}E")
            f1 = f2 = 0.0
            if pne:
                parts = pne.replace(" ", "").split(",")
                if len(parts) == 2:
                    f1 = _to_float(parts[0]) or 0.0
                    f2 = _to_float(parts[1]) or 0.0
            if f1 > 0:
                rng = _to_float(self.keyword(f"$P{n}R")) or 1.0
                out.append(("log", f1 / rng, f2 if f2 > 0 else 1.0))
                continue
            if name.lower() == "time" and timestep:
                out.append(("time", timestep, 0.0))
                continue
            gain = _to_float(self.keyword(f"$P{n}G"))
            if gain and gain != 1.0:
                out.append(("gain", gain, 0.0))
                continue
            out.append(("none", 1.0, 0.0))
        return out

    def linear_column(
        self, index: int, factors: list[tuple[str, float, float]] | None = None
    ) -> np.ndarray:
        """One channel in linear units (log amplification decoded, gain divided, time scaled), float64.

        This is the scale gates and compensation work on, as FlowKit/FlowJo and GatingML 2.0 do.
        ``factors`` is :meth:`scale_factors` if the caller already has it (it reads every keyword).
        """
        x = np.array(
            self.events[:, index], dtype=np.float64
        )  # the one copy: a fresh float64 column
        kind, a, b = (factors if factors is not None else self.scale_factors())[index]
        return scale_in_place(x, kind, a, b)

    def __repr__(self) -> str:
        src = self.path.name if self.path is not None else "<memory>"
        return (
            f"Sample({src!r}, events={self.n_events}, channels={len(self.channels)}, "
            f"spillover={'yes' if self.spillover is not None else 'no'})"
        )


class _Keywords(dict):
    """TEXT keywords as written, with an index by upper-case name kept in step with every change,
    so that a case-insensitive look-up costs the same for 20 keywords as for 80 000 (a file with
    20 000 channels looks up four per channel)."""

    __slots__ = ("_upper",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reindex()

    def _reindex(self) -> None:
        upper: dict = {}
        for k in self:
            upper.setdefault(_fold(k), k)  # the first spelling wins
        self._upper = upper

    def get_any_case(self, key, default=None):
        """The value of ``key`` in any letter case (the first spelling written wins)."""
        k = self._upper.get(_fold(key))
        return self[k] if k is not None else default

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self._upper.setdefault(_fold(key), key)

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        if self._upper.get(_fold(key)) == key:
            self._reindex()

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def _changed(name):  # noqa: N805 - wraps the dict methods that change several keys at once
        method = getattr(dict, name)

        def wrapper(self, *args, **kwargs):
            out = method(self, *args, **kwargs)
            self._reindex()
            return out

        wrapper.__name__ = name
        return wrapper

    update = _changed("update")
    pop = _changed("pop")
    popitem = _changed("popitem")
    clear = _changed("clear")
    __ior__ = _changed("__ior__")
    del _changed

    def __reduce__(self):
        return (type(self), (dict(self),))

    def copy(self):
        return type(self)(self)


def _fold(key):
    return key.upper() if isinstance(key, str) else key


def scale_in_place(x: np.ndarray, kind: str, a: float, b: float) -> np.ndarray:
    """Apply one channel's :meth:`Sample.scale_factors` entry to a fresh float64 column, in place."""
    if kind == "log":
        x *= a
        np.power(10.0, x, out=x)
        x *= b
    elif kind == "gain":
        x /= a
    elif kind == "time":
        x *= a
    return x


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        v = float(str(value).strip().replace(",", "."))
    except ValueError:
        return None
    return v if math.isfinite(v) else None
