"""The gate tree of a template: populations (quadrant children included) in one namespace,
their parents, boolean operands and references checked, ordered parents first, cycles reported."""

from __future__ import annotations

from dataclasses import dataclass, field

from cytophen.gates import BooleanGate, DataDrivenGate, EllipsoidGate, Gate, PolygonGate, RefGate
from cytophen.interop.yaml_template._checks import Checker, _describe, _did_you_mean
from cytophen.interop.yaml_template._gates import GateReader
from cytophen.interop.yaml_template._reader import Pos, _Map
from cytophen.interop.yaml_template._schema import _POP_KEYS, _ROOT
from cytophen.template import Population, Report


@dataclass
class _PopSpec:
    name: str
    pos: Pos
    parent: str | None
    parent_pos: Pos
    description: str = ""
    gate: Gate | None = None
    quadrant: str | None = None
    group: str | None = None  # quadrant entry it comes from
    percent_of: list[tuple[str, Pos]] = field(default_factory=list)
    statistics: list[tuple[str, str]] = field(default_factory=list)
    operands: list[tuple[str, Pos]] = field(default_factory=list)  # boolean operands / ref targets
    cleanup: bool = False
    hidden: bool = False


class TreeReader(Checker):
    """Reads ``populations:``; quadrant gates are in ``quadrant_groups`` (gate name -> children)."""

    def __init__(self, gates: GateReader):
        super().__init__(gates.file, gates.problems)
        self.gates = gates
        self.panel = gates.panel
        self.quadrant_groups: dict[str, list[str]] = {}

    def read_populations(self, value, pos: Pos) -> list[Population]:
        if not self.expect(value, dict, pos, "populations"):
            return []
        if not value:
            self.err(pos, "no populations defined")
            return []
        specs: list[_PopSpec] = []
        entry_pos: dict[str, Pos] = {}
        for name, entry in value.items():
            kpos = value.kpos[name]
            if not isinstance(name, str) or not name.strip():
                self.err(kpos, f"population name must be text, got {_describe(name)}")
                continue
            if name == _ROOT:
                self.err(kpos, "'root' is reserved for all events; rename the population")
                continue
            if not self.expect(entry, dict, value.vpos[name], f"population {name!r}"):
                continue
            specs.extend(self.read_population(name, entry, kpos))
            entry_pos[name] = kpos
        # names: populations and quadrant children share one namespace
        by_name: dict[str, _PopSpec] = {}
        for s in specs:
            if s.name in by_name:
                first = by_name.get(s.name)
                where = f" (first defined at line {first.pos[0]})" if first and first.pos else ""
                self.err(
                    s.pos,
                    f"duplicate population name {s.name!r}{where}",
                    "population names must be unique",
                )
                continue
            by_name[s.name] = s
        groups = set(self.quadrant_groups)
        for g in groups:
            if g in by_name:
                self.err(entry_pos.get(g), f"quadrant gate {g!r} has the same name as a population")
        names = list(by_name)
        unresolved: set[tuple] = set()
        for s in by_name.values():
            what_op = (
                "referenced population"
                if isinstance(s.gate, RefGate)
                else "fallback_from population"
                if isinstance(s.gate, DataDrivenGate)
                else "boolean operand"
            )
            refs = ([(s.parent, s.parent_pos, "parent")] if s.parent is not None else []) + [
                (o, p, what_op) for o, p in s.operands
            ]
            who = s.group or s.name  # quadrant children share their gate's parent and keys
            for ref, rpos, what in refs:
                if ref in by_name or (ref, rpos, what) in unresolved:
                    continue
                unresolved.add((ref, rpos, what))
                if ref in groups:
                    self.err(
                        rpos,
                        f"{what} {ref!r} of {who!r} is a quadrant gate, not a population",
                        f"use one of its quadrants: {', '.join(self.quadrant_groups[ref])}",
                    )
                else:
                    self.err(
                        rpos,
                        f"{what} {ref!r} of {who!r} is not a population of this template",
                        _did_you_mean(ref, names + [_ROOT]),
                    )
        order = self._order(by_name)
        if order is None:
            return []
        fallback_checked: set[int] = set()  # quadrant children share one gate
        for s in by_name.values():
            if isinstance(s.gate, RefGate):
                self.check_refs(s, by_name)
            elif isinstance(s.gate, DataDrivenGate) and s.gate.fallback_from is not None:
                if id(s.gate) not in fallback_checked:
                    fallback_checked.add(id(s.gate))
                    self.check_fallback_from(s, by_name)
        # percent_of must name an ancestor
        for s in by_name.values():
            anc = _ancestors(s.name, by_name)
            for a, apos in s.percent_of:
                if a not in by_name:
                    self.err(
                        apos,
                        f"percent_of {a!r} of {s.name!r} is not a population",
                        _did_you_mean(a, names),
                    )
                elif a not in anc:
                    self.err(
                        apos,
                        f"percent_of {a!r} is not an ancestor of {s.name!r}",
                        f"its ancestors are: {', '.join(anc) or 'none (it is a top-level population)'}",
                    )
        pops = []
        for name in order:
            s = by_name[name]
            if s.gate is None:
                if not self.failed:  # never silently dropped
                    self.err(s.pos, f"the gate of {name!r} could not be read")
                continue
            pops.append(
                Population(
                    name=s.name,
                    parent=s.parent,
                    gate=s.gate,
                    quadrant=s.quadrant,
                    report=Report(
                        percent_of=tuple(a for a, _ in s.percent_of), statistics=tuple(s.statistics)
                    ),
                    description=s.description,
                    cleanup=s.cleanup,
                    hidden=s.hidden,
                )
            )
        return pops

    def _order(self, by_name: dict[str, _PopSpec]) -> list[str] | None:
        """Parents and boolean operands first, otherwise in the order written; cycles reported."""
        deps = {
            n: {
                d
                for d in ([s.parent] if s.parent else []) + [o for o, _ in s.operands]
                if d in by_name
            }
            for n, s in by_name.items()
        }
        done: list[str] = []
        placed: set[str] = set()
        remaining = list(by_name)
        while remaining:
            progress = False
            for n in list(remaining):
                if deps[n] <= placed:
                    done.append(n)
                    placed.add(n)
                    remaining.remove(n)
                    progress = True
            if not progress:
                reported: set[str] = set()
                for n in remaining:
                    if n in reported:
                        continue
                    cycle = _find_cycle(n, deps)
                    if cycle:
                        reported.update(cycle)
                        s = by_name[cycle[0]]
                        self.err(
                            s.parent_pos or s.pos,
                            "cycle in the gate tree: "
                            + " -> ".join([*cycle, cycle[0]])
                            + " (each population followed by its parent or operand)",
                            "a population cannot be its own ancestor or boolean operand",
                        )
                return None
        return done

    def read_population(self, name: str, entry: _Map, kpos: Pos) -> list[_PopSpec]:
        self.unknown_keys(entry, _POP_KEYS, f"population {name!r}")
        parent = entry.get("parent", None)
        ppos = entry.vpos.get("parent", kpos)
        if parent is not None and not isinstance(parent, str):
            self.err(ppos, f"parent of {name!r} must be a population name, got {_describe(parent)}")
            parent = None
        if parent == _ROOT:
            parent = None
        description = entry.get("description", "")
        if "description" in entry and not self.expect(
            description, str, entry.vpos["description"], "description"
        ):
            description = ""
        percent_of = self.read_percent_of(entry, name)
        statistics = self.panel.read_statistics(entry, name)
        base = dict(
            parent=parent,
            parent_pos=ppos,
            description=description,
            percent_of=percent_of,
            statistics=statistics,
            cleanup=self.read_flag(entry, "cleanup"),
            hidden=self.read_flag(entry, "hidden"),
        )
        if "gate" not in entry:
            self.err(entry.pos, f"population {name!r} has no 'gate'")
            return [_PopSpec(name, kpos, **base)]
        gspec, gpos = entry["gate"], entry.vpos["gate"]
        if not isinstance(gspec, dict):
            self.err(
                gpos,
                f"gate of {name!r} must be a mapping (kind:/method:/and:/or:/not:), got {_describe(gspec)}",
            )
            return [_PopSpec(name, kpos, **base)]
        gate, children, operands = self.gates.read_gate(name, gspec, gpos)
        if children is not None:
            self.quadrant_groups[name] = [c[0] for c in children]
            out = []
            for child, code, (signs, cpos), extra in children:
                desc = f"{description} [{signs}]" if description else str(signs)
                out.append(
                    _PopSpec(
                        child,
                        cpos,
                        quadrant=code,
                        group=name,
                        gate=gate,
                        operands=operands,
                        **{**base, "description": desc, **extra},
                    )
                )
            return out
        return [_PopSpec(name, kpos, gate=gate, operands=operands, **base)]

    def check_fallback_from(self, s: _PopSpec, by_name: dict[str, _PopSpec]) -> None:
        """``fallback_from`` names a population whose gate has a cut on one of this gate's dims."""
        target, tpos = s.operands[0]
        t = by_name.get(target)
        if t is None or t.gate is None:
            return  # reported already
        if isinstance(t.gate, (BooleanGate, RefGate)):
            self.err(
                tpos,
                f"fallback_from of {s.name!r}: {target!r} is a {t.gate.kind} population; it "
                "must place a gate with cuts of its own",
            )
            return
        have = {d.label for d in t.gate.dims}
        mine = [d.label for d in s.gate.dims]
        if not have & set(mine):
            self.err(
                tpos,
                f"fallback_from of {s.name!r}: the gate of {target!r} is on "
                f"{', '.join(sorted(have))}, none of {', '.join(mine)}",
            )

    def check_refs(self, s: _PopSpec, by_name: dict[str, _PopSpec]) -> None:
        """Each reference is a population with a geometric gate, ``dims`` are its dims, and only
        rectangular gates are cut to some dims or intersected (fitted gates: when applied)."""
        several = len(s.gate.refs) > 1
        for (target, dims), (_, ip) in zip(s.gate.refs, s.operands):
            t = by_name.get(target)
            if t is None or t.gate is None:
                continue  # reported already
            if isinstance(t.gate, BooleanGate):
                self.err(
                    ip,
                    f"ref of {s.name!r}: {target!r} is a boolean population and places no "
                    "gate of its own",
                    "refer to the populations it combines",
                )
                continue
            if isinstance(t.gate, RefGate):
                continue  # checked against the gates it refers to when applied
            have = [d.label for d in getattr(t.gate, "dims", ())]
            bad = [d for d in (dims or ()) if d not in have]
            if bad:
                self.err(
                    ip,
                    f"ref of {s.name!r}: the gate of {target!r} is on {', '.join(have)}, "
                    f"not on {', '.join(bad)}",
                    _did_you_mean(bad[0], have),
                )
            elif (
                dims is not None
                and list(dims) != have
                and isinstance(t.gate, (PolygonGate, EllipsoidGate))
            ):
                self.err(
                    ip,
                    f"ref of {s.name!r}: only a range, rectangle or quadrant gate can be taken on "
                    f"some of its dims; the gate of {target!r} is a {t.gate.kind}",
                    "leave out dims to reuse the whole gate",
                )
            elif several and isinstance(t.gate, (PolygonGate, EllipsoidGate)):
                self.err(
                    ip,
                    f"ref of {s.name!r}: several references are intersected only when all are "
                    f"rectangular; the gate of {target!r} is a {t.gate.kind}",
                    "refer to it alone, or combine populations with a boolean gate",
                )


def _ancestors(name: str, by_name: dict[str, _PopSpec]) -> list[str]:
    out: list[str] = []
    seen = {name}
    p = by_name[name].parent
    while p is not None and p in by_name and p not in seen:
        out.append(p)
        seen.add(p)
        p = by_name[p].parent
    return out[::-1]


def _find_cycle(start: str, deps: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []
    on: set[str] = set()

    def visit(n: str) -> list[str] | None:
        if n in on:
            return path[path.index(n) :]
        on.add(n)
        path.append(n)
        for d in sorted(deps.get(n, ())):
            c = visit(d)
            if c:
                return c
        path.pop()
        on.discard(n)
        return None

    return visit(start)
