"""Applying a Template to a Sample: compensation → transforms → gate tree → GatingResult.

One code path for the CLI, notebooks and batch runs:

- :mod:`._context` — :class:`GateContext`: the values each gate needs from one sample
  (channels resolved, compensated, transformed; cached, at a parent's rows only where possible);
- :mod:`._tree` — :class:`TreeEvaluator`: one walk of the gate tree over one sample with every
  rule (not measured, skipped clean-up steps, pregated files, booleans, refs, quadrants, fits),
  and :func:`gate`;
- :mod:`._table` — the tidy population table;
- :mod:`._pooled` — pooled fitting: one evaluator per sample, driven population by population.

A child's membership is always within its parent's.
"""

from __future__ import annotations

from cytophen.engine._context import GateContext
from cytophen.engine._pooled import fit_groups, fit_pooled, gate_pooled
from cytophen.engine._tree import (
    PlaceHook,
    TreeEvaluator,
    check_population,
    fit_on_sample,
    gate,
)
from cytophen.gates import FitOutcome

__all__ = [
    "gate",
    "GateContext",
    "TreeEvaluator",
    "PlaceHook",
    "fit_on_sample",
    "check_population",
    "fit_pooled",
    "fit_groups",
    "gate_pooled",
    "FitOutcome",
]
