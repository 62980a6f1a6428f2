"""Which plots a result needs: its gates grouped into views, as FlowJo lays them out.

One panel per (parent population, axes): quadrant children share their quadrant plot, sibling
gates on the same axes share one plot, and a ``not X`` population is drawn as the outside of ``X``
on ``X``'s plot. Populations the result hides (helper populations) get no panel of their own; a
population whose parent is a hidden helper is drawn on the helper's events, and the panel's title
says so. Clean-up steps skipped on the file and pregated populations have no gate to draw.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cytophen.errors import ReportError

__all__ = ["GatePanel", "Member", "gate_panels", "boolean_expression", "percent_of_parent"]


@dataclass
class Member:
    """One population drawn on a panel.

    ``gate`` is the gate as drawn (a ref gate: the dimensions of the gates it refers to);
    ``entry`` is the result's ``gates`` entry of the population whose geometry is drawn (for a
    ``not X`` population, ``X``'s); ``outside_of`` names ``X``; ``labelled`` is ``False`` for a
    hidden population drawn only as the shape a ``not`` gate is the outside of.
    """

    population: str
    gate: Any
    entry: dict
    quadrant: str | None = None
    outside_of: str | None = None
    labelled: bool = True


@dataclass
class GatePanel:
    """One plot: a parent's events on one pair of axes (or one axis), with the populations gated
    there."""

    key: str
    populations: list[str]
    parent: str | None
    gate: Any
    entry: dict = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    title: str = ""

    @property
    def geometry(self) -> dict | None:
        return self.entry.get("geometry")

    @property
    def kind(self) -> str:
        g = self.geometry
        return g.get("kind", "") if g else ""

    @property
    def data_driven(self) -> bool:
        return any(bool(m.entry.get("data_driven")) for m in self.members) or bool(
            self.entry.get("data_driven")
        )

    @property
    def fell_back(self) -> bool:
        return any(bool(m.entry.get("fell_back")) for m in self.members) or bool(
            self.entry.get("fell_back")
        )

    @property
    def reason(self) -> str:
        reasons = [
            str(m.entry.get("reason") or "") for m in self.members if m.entry.get("fell_back")
        ]
        if not reasons and self.entry.get("fell_back"):
            reasons = [str(self.entry.get("reason") or "")]
        return "; ".join(dict.fromkeys(r for r in reasons if r))

    @property
    def drawn(self) -> bool:
        """Whether any population of the panel has a geometry on this sample (else it was not
        measured here)."""
        return any(m.entry.get("geometry") for m in self.members)


def table_row(result, pop: str) -> dict:
    t = result.table
    r = t[t["population"] == pop]
    return r.iloc[0].to_dict() if len(r) else {}


def percent_of_parent(result, pop: str) -> float | None:
    """A population's percent of parent: the table's, or (a hidden population, absent from the
    table) from the memberships; ``None`` when not measured."""
    row = table_row(result, pop)
    if row:
        try:
            f = float(row.get("percent_of_parent"))
        except (TypeError, ValueError):
            return None
        return f if np.isfinite(f) else None
    m = result.memberships.get(pop)
    if m is None or str(result.notes.get(pop, "")).startswith("not measured"):
        return None
    parent = template_of(result).population(pop).parent
    n = int(result.memberships[parent].sum()) if parent is not None else int(result.n_events)
    return 100.0 * int(m.sum()) / n if n else None


def template_of(result):
    t = getattr(result, "template", None)
    if t is None:
        raise ReportError(
            f"result for sample {result.sample_id!r} has no template attached; gate with "
            "cytophen.gate(sample, template) to plot it"
        )
    return t


def boolean_expression(gate) -> str:
    ops = [("not " if c else "") + n for n, c in gate.operands]
    return f" {gate.op} ".join(ops) if gate.op != "not" else f"not {ops[0]}"


def _outside_of(gate) -> str | None:
    """``X`` when a boolean gate is ``not X`` (or ``and``/``or`` of the single operand ``not X``)."""
    if getattr(gate, "kind", "") != "boolean" or len(gate.operands) != 1:
        return None
    name, complement = gate.operands[0]
    return name if (gate.op == "not") != bool(complement) else None


def _view_key(parent: str | None, gate) -> tuple:
    dims = []
    for d in getattr(gate, "dims", ()):
        t = getattr(d, "transform", None)
        try:
            tkey = repr(sorted(t.to_dict().items())) if t is not None else None
        except Exception:  # noqa: BLE001 - a transform without to_dict: compare by identity
            tkey = id(t)
        dims.append((d.label, tkey))
    return (parent, tuple(dims))


@dataclass
class _DrawnRef:
    """A ref gate as drawn: the dimensions (with their transforms) of the gates it refers to."""

    dims: tuple
    kind: str = "ref"


def _ref_as_drawn(template, name: str) -> _DrawnRef:
    g = template.population(name).gate
    by_label: dict[str, Any] = {}
    for ref, labels in g.refs:
        rg = template.population(ref).gate
        if getattr(rg, "kind", "") == "ref":
            rg = _ref_as_drawn(template, ref)
        have = {d.label: d for d in rg.dims}
        for label in labels if labels is not None else list(have):  # resolve_ref's order
            if label in have:
                by_label.setdefault(label, have[label])
    return _DrawnRef(tuple(by_label.values()))


def helper_title(template, parent: str | None, width: int = 44) -> str:
    """The title of a panel: its parent population; a hidden helper parent is named as such,
    with what it holds (its description, or its boolean expression)."""
    if parent is None:
        return "all events"
    try:
        p = template.population(parent)
    except Exception:  # noqa: BLE001 - a parent the template does not know: its name
        return parent
    if not p.hidden:
        return parent
    what = p.description or (
        boolean_expression(p.gate) if getattr(p.gate, "kind", "") == "boolean" else ""
    )
    text = f"{parent} (hidden helper{': ' + what if what else ''})"
    return "\n".join(textwrap.wrap(text, width=width)) or text


def gate_panels(
    result, *, include_hidden: bool = False
) -> tuple[list[GatePanel], list[tuple[str, str]]]:
    """The result's plots in tree order, and the boolean populations no plot can show.

    Returns
    -------
    panels
        One :class:`GatePanel` per parent and axes: quadrant children, sibling gates on the same
        axes and ``not`` gates of a sibling share one.
    booleans
        ``(name, expression)`` of the other boolean populations.

    The populations the result hides (``result.hidden``) are left out unless ``include_hidden``
    (a hidden gate still appears, unlabelled, as the shape a shown ``not`` gate is the outside
    of); so are those it applied no gate for (clean-up steps skipped on the file, pregated
    populations: the table's note says why).
    """
    template = template_of(result)
    hidden = set() if include_hidden else set(getattr(result, "hidden", ()))
    panels: dict[tuple, GatePanel] = {}
    where: dict[str, GatePanel] = {}  # population -> its panel
    nots: list = []
    booleans: list[tuple[str, str]] = []
    for pop in template.populations:
        entry = result.gates.get(pop.name) or {}
        if entry.get("skipped") or entry.get("pregated"):
            continue
        g = pop.gate
        if getattr(g, "kind", "") == "boolean":
            if _outside_of(g) is not None:
                nots.append(pop)
            elif pop.name not in hidden:
                booleans.append((pop.name, boolean_expression(g)))
            continue
        if getattr(g, "kind", "") == "ref":  # drawn as the gate it applied, on its dimensions
            g = _ref_as_drawn(template, pop.name)
        key = _view_key(pop.parent, g)
        if key not in panels:
            panels[key] = GatePanel(
                key=pop.name,
                populations=[],
                parent=pop.parent,
                gate=g,
                entry=dict(entry),
                title=helper_title(template, pop.parent),
            )
        panels[key].members.append(
            Member(pop.name, g, dict(entry), pop.quadrant, labelled=pop.name not in hidden)
        )
        where[pop.name] = panels[key]
    for pop in nots:
        x = _outside_of(pop.gate)
        panel = where.get(x)
        base = next((m for m in panel.members if m.population == x), None) if panel else None
        if panel is None or base is None or panel.parent != pop.parent:
            if pop.name not in hidden:
                booleans.append((pop.name, boolean_expression(pop.gate)))
            continue
        panel.members.append(
            Member(
                pop.name,
                base.gate,
                base.entry,
                base.quadrant,
                outside_of=x,
                labelled=pop.name not in hidden,
            )  # fmt: skip
        )
    out = []
    for panel in panels.values():
        needed = {m.outside_of for m in panel.members if m.labelled and m.outside_of}
        panel.members = [m for m in panel.members if m.labelled or m.population in needed]
        panel.populations = [m.population for m in panel.members if m.labelled]
        if panel.populations:
            first = next(m for m in panel.members if m.labelled)
            panel.key = first.population
            panel.entry = dict(first.entry)
            out.append(panel)
    return out, booleans
