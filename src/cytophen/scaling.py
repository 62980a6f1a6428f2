"""What scale a file's values are on, and the ``auto`` transform that adapts a template to it.

Real files come in several states, and ``$PnR`` does not tell them apart (transformed exports still
say 262144):

============  ==================================================================================
``linear``    linear values: raw 18-bit data, compensated data with negatives, log-amplified
              channels already decoded (1 to 10 000)
``logicle``   already transformed by logicle (flowCore / openCyto): fluorescence on 0 to ~4.5
              decades
``channel``   already transformed onto FlowJo's display channels: 0 to 4096 (or 0 to 1024)
============  ==================================================================================

:func:`detect_scale` decides this once per file from its fluorescence channels (scatter and time
are always linear). A template marker with ``transform: auto`` then gets, on each file:

* fluorescence, ``linear`` file: logicle with ``T`` = the channel's top of scale (``$PnR``, or the
  decoded top of a log-amplified channel), ``M`` = 4.5 and ``W`` estimated from the channel's
  negative values as flowCore's ``estimateLogicle`` does (``W = (M - log10(T / |r|)) / 2`` with
  ``r`` the 5th percentile of the negative values; 0 without negatives; at most 2);
* fluorescence, ``logicle`` file: ``x / M`` (the file is already on logicle decades);
* fluorescence, ``channel`` file: ``x / 4096`` (or ``x / 1024``);
* scatter: ``x / T``, linear.

Every case lands on the same 0-1 display scale as cytophen's logicle, so data-driven gates, which
place themselves from landmarks of each file (peaks, valleys, spreads), see comparable pictures.
The transform each file actually used is recorded with its result.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cytophen.errors import TransformError
from cytophen.transforms import AutoTransform, LinearTransform, LogicleTransform, Transform

if TYPE_CHECKING:
    from cytophen.io.sample import Sample

__all__ = ["InputScale", "ScaleInfo", "detect_scale", "resolve_auto", "SCALES"]

InputScale = Literal["linear", "logicle", "channel"]
#: The input scales a file can be on (see the module docstring); ``auto`` detects.
SCALES: tuple[str, ...] = ("auto", "linear", "logicle", "channel")

_SCATTER = re.compile(r"^\s*(fsc|ssc|fs|ss)(\b|[\s\-_])", re.IGNORECASE)
_NOT_MEASURED = re.compile(r"^\s*(time|event|original_id|index|sortclassifier)", re.IGNORECASE)

#: Fluorescence values on logicle decades stay at or below this (M is 4.5 almost everywhere).
_LOGICLE_TOP = 8.0
#: FlowJo's channel scale ends at 4096 (old exports: 1024); allow the odd event just above it.
_CHANNEL_TOPS = (1024.0, 4096.0)
_CHANNEL_SLACK = 1.05
#: Rows looked at to decide (a deterministic stride through the file).
_ROWS = 20_000


@dataclass(frozen=True)
class ScaleInfo:
    """What :func:`detect_scale` decided for one file, and why."""

    scale: InputScale
    detected: bool  # False when the caller said which scale applies
    channel_top: float  # 4096 or 1024 for 'channel' files, else nan
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "detected": self.detected,
            "channel_top": None if math.isnan(self.channel_top) else self.channel_top,
            "reason": self.reason,
        }


def is_scatter(channel: str) -> bool:
    """``FSC-A``, ``SSC-H``, ``FSC``, ``FS INT`` ...: scatter, always on a linear scale."""
    return bool(_SCATTER.match(channel))


def _fluorescence(sample: Sample) -> list[int]:
    return [
        i for i, c in enumerate(sample.channels) if not is_scatter(c) and not _NOT_MEASURED.match(c)
    ]


def _rows(n: int) -> slice:
    return slice(None) if n <= _ROWS else slice(0, n, int(math.ceil(n / _ROWS)))


def detect_scale(sample: Sample, scale: str = "auto") -> ScaleInfo:
    """Decide whether ``sample`` holds linear, logicle-transformed or channel-scale values.

    Parameters
    ----------
    sample
        The file, as read.
    scale
        ``'auto'`` (detect) or one of ``'linear'``, ``'logicle'``, ``'channel'`` (the caller knows).

    Returns
    -------
    ScaleInfo
        The decision with a one-line reason (recorded in results).

    Notes
    -----
    Each fluorescence channel is classed by the 99.9th percentile of its values: at most 8 is
    logicle decades; above that and at most 4096 (or 1024) x 1.05 with ``$PnR`` of at least 16384
    is FlowJo's channel scale; anything else is linear. A majority of logicle channels makes a
    logicle file; a file is on the channel scale only if no channel is linear (a dim linear
    channel can stay below 4096, a channel-scale one never goes above it).
    """
    if scale not in SCALES:
        raise TransformError(f"input scale must be one of {', '.join(SCALES)}, got {scale!r}")
    fl = _fluorescence(sample)
    if scale != "auto":
        top = float("nan")
        if scale == "channel":
            top = _channel_top(sample, fl)
        return ScaleInfo(scale, False, top, f"given: {scale}")  # type: ignore[arg-type]
    if not fl or sample.n_events == 0:
        return ScaleInfo("linear", True, float("nan"), "no fluorescence values to look at")
    rows = _rows(sample.n_events)
    factors = sample.scale_factors()
    votes = {"linear": 0, "logicle": 0, "channel": 0}
    for i in fl:
        x = np.asarray(sample.events[rows, i], dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        hi = float(np.percentile(x, 99.9))
        pnr = _pnr(sample, i)
        if factors[i][0] == "log":
            votes["linear"] += 1
        elif hi <= _LOGICLE_TOP:
            votes["logicle"] += 1
        elif hi <= _CHANNEL_TOPS[-1] * _CHANNEL_SLACK and (pnr is None or pnr >= 16384):
            votes["channel"] += 1
        else:
            votes["linear"] += 1
    summary = ", ".join(f"{v} {k}" for k, v in votes.items() if v)
    total = sum(votes.values())
    if total and votes["logicle"] * 2 > total:
        reason = f"fluorescence at most ~{_LOGICLE_TOP:g}: already logicle-transformed ({summary})"
        return ScaleInfo("logicle", True, float("nan"), reason)
    if total and votes["channel"] and votes["linear"] == 0:
        top = _channel_top(sample, fl)
        reason = (
            f"fluorescence within 0-{top:g} while $PnR is larger: FlowJo channel scale ({summary})"
        )
        return ScaleInfo("channel", True, top, reason)
    return ScaleInfo("linear", True, float("nan"), f"linear values ({summary})")


def _channel_top(sample: Sample, fl: list[int]) -> float:
    if not fl or sample.n_events == 0:
        return _CHANNEL_TOPS[-1]
    rows = _rows(sample.n_events)
    hi = max(float(np.nanmax(sample.events[rows, i])) for i in fl)
    return _CHANNEL_TOPS[0] if hi <= _CHANNEL_TOPS[0] * _CHANNEL_SLACK else _CHANNEL_TOPS[-1]


def _pnr(sample: Sample, i: int) -> float | None:
    raw = sample.keyword(f"$P{i + 1}R")
    try:
        v = float(str(raw).strip().replace(",", ".")) if raw is not None else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) and v > 0 else None


def linear_top(sample: Sample, i: int) -> float:
    """Top of scale of channel ``i`` in linear units: ``$PnR`` (over its gain), or for a
    log-amplified channel the decoded top ``f2 * 10**f1``; the largest value if neither is known."""
    kind, a, b = sample.scale_factors()[i]
    pnr = _pnr(sample, i)
    if kind == "log" and pnr is not None:
        return float(b * 10.0 ** (a * pnr))
    if pnr is not None:
        return float(pnr / a) if kind == "gain" else float(pnr)
    x = np.asarray(sample.events[:, i], dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.max(np.abs(x))) if x.size and np.max(np.abs(x)) > 0 else 1.0


def logicle_width(values: np.ndarray, T: float, M: float) -> float:
    """flowCore's ``estimateLogicle`` linearisation width for these values.

    ``W = (M - log10(T / |r|)) / 2`` with ``r`` the 5th percentile of the negative values, clipped
    to ``[0, 2]`` (and to ``M / 2``); 0 when fewer than 0.1 % of the values are negative.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    neg = v[v < 0]
    if v.size == 0 or neg.size < max(1, 0.001 * v.size):
        return 0.0
    r = abs(float(np.percentile(neg, 5.0)))
    if r <= 0 or T <= r:
        return 0.0
    w = (M - math.log10(T / r)) / 2.0
    return float(min(max(w, 0.0), 2.0, M / 2.0))


def resolve_auto(
    t: AutoTransform, sample: Sample, index: int, values: np.ndarray, info: ScaleInfo
) -> Transform:
    """The fixed transform ``t`` becomes for channel ``index`` of ``sample``.

    ``values`` are the channel's linear values as gates see them (compensated where the template
    compensates): the logicle width comes from their negative spread.
    """
    channel = sample.channels[index]
    if is_scatter(channel):
        return LinearTransform(T=linear_top(sample, index), A=0.0)
    if info.scale == "logicle":
        return LinearTransform(T=t.M, A=0.0)
    if info.scale == "channel":
        return LinearTransform(T=info.channel_top, A=0.0)
    T = linear_top(sample, index)
    return LogicleTransform(T=T, W=logicle_width(values, T, t.M), M=t.M, A=0.0)
