"""Data-driven gates: small estimators registered by name, fitted on each sample's parent events.

SKELETON: the data-driven-gates helper fills this package. Contract used by the engine:

fit_gate(gate: cytophen.gates.DataDrivenGate, values: (n_parent, d) float64, *, seed: int)
    -> cytophen.engine.FitOutcome(gate=<fixed Gate with gate.dims> or None, fell_back, reason, details)
"""

from __future__ import annotations


def fit_gate(gate, values, *, seed: int = 0):
    raise NotImplementedError("data-driven gates are not implemented yet")
