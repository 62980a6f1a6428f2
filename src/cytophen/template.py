"""The Template: a gating strategy as data, whatever file format it came from.

YAML (:mod:`cytophen.interop.yaml_template`), GatingML 2.0 (:mod:`cytophen.interop.gatingml`) and
FlowJo workspaces (:mod:`cytophen.interop.flowjo`) all load into this one object, and
:func:`cytophen.gate` applies it to a :class:`~cytophen.io.sample.Sample`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytophen.errors import TemplateError, TemplateProblem
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    Gate,
    QuadrantGate,
    RatioDim,
    RefGate,
)
from cytophen.transforms import Transform

__all__ = ["Marker", "Report", "Population", "Template", "STATISTICS"]

#: Fluorescence statistics a template may request (computed on compensated, untransformed values).
STATISTICS = ("median", "mean", "geometric_mean", "robust_cv", "cv", "sd")


@dataclass
class Marker:
    """One entry of a template's panel.

    ``transform`` is the scale gates on this marker use by default (and plots draw);
    ``optional`` markers may be absent from a file (dependent populations are then "not measured").
    """

    name: str
    aliases: tuple[str, ...] = ()
    transform: Transform | None = None
    optional: bool = False


@dataclass
class Report:
    """What to report for a population beyond count / percent of parent / percent of total."""

    percent_of: tuple[str, ...] = ()
    statistics: tuple[tuple[str, str], ...] = ()  # (statistic, marker)


@dataclass
class Population:
    """A node of the gate tree: ``gate`` applied within ``parent`` (``None`` = all events)."""

    name: str
    parent: str | None
    gate: Gate
    quadrant: str | None = None
    report: Report = field(default_factory=Report)
    description: str = ""


@dataclass
class Template:
    """A gating strategy.

    Attributes
    ----------
    name, version
        Identify the strategy; both go into every result with :attr:`hash`.
    populations
        Gate tree in an order where every parent (and boolean operand) comes first.
    markers
        The panel by marker name (aliases, default transform, optional).
    compensation
        Default compensation for dimensions that do not say: ``'FCS'`` (file keyword if present),
        ``'keyword'`` (file keyword, required), ``'uncompensated'``, or a key of ``matrices``.
    matrices
        Named spillover matrices (DataFrame: index = output names, columns = detector names).
    """

    name: str
    populations: list[Population]
    version: str = "1"
    markers: dict[str, Marker] = field(default_factory=dict)
    compensation: str = "FCS"
    matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    description: str = ""
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- structure -------------------------------------------------------------------------
    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.populations]

    def children(self, name: str | None) -> list[Population]:
        return [p for p in self.populations if p.parent == name]

    def ancestors(self, name: str) -> list[str]:
        """Names from the root down to the parent of ``name``."""
        chain = []
        p = self.population(name).parent
        while p is not None:
            chain.append(p)
            p = self.population(p).parent
        return chain[::-1]

    def path(self, name: str) -> str:
        return "/" + "/".join([*self.ancestors(name), name])

    def validate(self) -> None:
        """Check names, parents, boolean operands and order; raise :class:`TemplateError`."""
        src = self.source or "<template>"
        problems: list[TemplateProblem] = []
        seen: set[str] = set()
        for p in self.populations:
            if p.name in seen:
                problems.append(TemplateProblem(src, None, None, f"duplicate population {p.name!r}"))
            if p.parent is not None and p.parent not in seen:
                known = p.parent in {q.name for q in self.populations}
                msg = (
                    f"population {p.name!r} comes before its parent {p.parent!r}"
                    if known
                    else f"population {p.name!r} has unknown parent {p.parent!r}"
                )
                problems.append(TemplateProblem(src, None, None, msg))
            if isinstance(p.gate, BooleanGate):
                for op, _ in p.gate.operands:
                    if op not in seen:
                        problems.append(
                            TemplateProblem(src, None, None, f"boolean {p.name!r} refers to unknown or later population {op!r}")
                        )
            if isinstance(p.gate, RefGate):
                for ref, _ in p.gate.refs:
                    if ref not in seen:
                        problems.append(
                            TemplateProblem(src, None, None, f"ref gate {p.name!r} refers to unknown or later population {ref!r}")
                        )
                    elif isinstance(self.population(ref).gate, BooleanGate):
                        problems.append(
                            TemplateProblem(src, None, None, f"ref gate {p.name!r} refers to {ref!r}, a boolean population, which places no gate of its own")
                        )
            if isinstance(p.gate, QuadrantGate) or (
                isinstance(p.gate, DataDrivenGate) and p.quadrant is not None
            ):
                if p.quadrant is None:
                    problems.append(TemplateProblem(src, None, None, f"population {p.name!r} uses a quadrant gate but names no quadrant"))
            seen.add(p.name)
        if problems:
            raise TemplateError(problems)

    # -- identity --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A canonical, JSON-serialisable description (the basis of :attr:`hash`)."""

        def dim(d):
            return d.to_dict() if isinstance(d, (Dim, RatioDim)) else str(d)

        pops = []
        for p in self.populations:
            g = p.gate
            entry = {
                "name": p.name,
                "parent": p.parent,
                "quadrant": p.quadrant,
                "gate": _jsonable(g.geometry()),
                "dims": [dim(d) for d in getattr(g, "dims", ())],
                "percent_of": list(p.report.percent_of),
                "statistics": [list(s) for s in p.report.statistics],
            }
            if isinstance(g, DataDrivenGate):
                entry["pool"] = g.pool
            pops.append(entry)
        return {
            "name": self.name,
            "version": self.version,
            "compensation": self.compensation,
            "matrices": {
                k: {"index": list(m.index), "columns": list(m.columns), "values": m.to_numpy().tolist()}
                for k, m in self.matrices.items()
            },
            "markers": {
                k: {
                    "aliases": list(m.aliases),
                    "optional": m.optional,
                    "transform": None if m.transform is None else m.transform.to_dict(),
                }
                for k, m in self.markers.items()
                if _marker_informative(m, self.populations)
            },
            "populations": pops,
        }

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical description: same gating → same hash, whatever the file format."""
        pinned = self.__dict__.get("_pinned_hash")  # set while a batch gates (template unchanged)
        if pinned is not None:
            return pinned
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def marker_for(self, channel: str) -> Marker | None:
        return self.markers.get(channel)

    def to_yaml(self, path: str | Path) -> None:
        """Write as a cytophen YAML template (see docs/templates.md)."""
        from cytophen.interop.yaml_template import dump_template

        dump_template(self, path)

    def to_gatingml(self, path: str | Path) -> None:
        """Write as GatingML 2.0 XML where every gate is expressible there."""
        from cytophen.interop.gatingml import export_gatingml

        export_gatingml(self, path)

    def __repr__(self) -> str:
        return f"Template({self.name!r}, version={self.version!r}, populations={len(self.populations)})"


def _marker_informative(m: Marker, populations: list[Population]) -> bool:
    """Whether a panel entry says more than the gates already do (aliases, optional, or a default
    transform no gate on that marker uses): only those enter the canonical description, so a
    template converted between formats (e.g. GatingML -> YAML, which lists every gated marker in
    its panel) keeps its hash."""
    if m.aliases or m.optional:
        return True
    if m.transform is None:
        return False
    mine = m.transform.to_dict()
    return not any(
        isinstance(d, Dim) and d.channel == m.name and d.transform is not None and d.transform.to_dict() == mine
        for p in populations
        for d in getattr(p.gate, "dims", ())
    )


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj
