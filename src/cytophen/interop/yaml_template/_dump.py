"""Writing a template as cytophen YAML: loading the text again gives an equal template (the same
:attr:`~cytophen.template.Template.hash`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from cytophen.errors import TemplateError, TemplateProblem
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
    RefGate,
)
from cytophen.interop.yaml_template._checks import _plain
from cytophen.interop.yaml_template._schema import _SIGNS, FORMAT_VERSION
from cytophen.template import Marker, Population, Report, Template
from cytophen.transforms import transform_kind


class _Dumper(yaml.SafeDumper):
    """Safe YAML output; multi-line text as ``|`` blocks."""


def _str_block(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_block)


def template_to_yaml(template: Template) -> str:
    """The YAML text of ``template`` (see :func:`dump_template`)."""
    return yaml.dump(
        _to_doc(template),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        width=110,
        allow_unicode=True,
    )


def dump_template(template: Template, path: str | Path) -> None:
    """Write ``template`` as a cytophen YAML template.

    Loading the file again gives an equal template (same :attr:`~cytophen.template.Template.hash`).
    Matrices are written inline; gates keep their exact geometry and transforms.

    Parameters
    ----------
    template
        Any Template (from YAML, GatingML, FlowJo, or built in Python).
    path
        The ``.yaml`` file to write.

    Raises
    ------
    TemplateError
        When the template holds something the YAML format cannot express (a gate type other than
        cytophen's, one ratio name with two definitions).
    """
    Path(path).write_text(template_to_yaml(template), encoding="utf-8")


def _transform_doc(t) -> dict | None:
    if t is None:
        return None
    d = dict(t.to_dict())
    kind = transform_kind(str(d.pop("kind", "")))
    if kind is None:
        raise TemplateError(f"transform {t.to_dict()!r} cannot be written to YAML (unknown kind)")
    out = {"kind": kind.name}
    for k in kind.params:
        if k in d:
            out[k] = _num(d[k])
    return out


def _tdict(t) -> dict | None:
    return None if t is None else t.to_dict()


def _opt_num(v):
    return None if v is None else _num(v)


def _num(v):
    f = float(v)
    if f == 0 and math.copysign(1.0, f) < 0:
        return f  # -0.0 stays -0.0 (the hash tells them apart)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _to_doc(t: Template) -> dict:
    err = []
    doc: dict[str, Any] = {"format": FORMAT_VERSION, "name": t.name, "version": str(t.version)}
    if t.description:
        doc["description"] = t.description
    meta = {k: v for k, v in (t.meta or {}).items() if k != "quadrant_gates"}
    if meta:
        doc["meta"] = _plain(meta)
    if t.matrices:
        doc["matrices"] = {
            mid: {
                "detectors": [str(c) for c in m.columns],
                **(
                    {"fluorochromes": [str(i) for i in m.index]}
                    if list(m.index) != list(m.columns)
                    else {}
                ),
                "matrix": [[_num(x) for x in row] for row in m.to_numpy(dtype=float)],
            }
            for mid, m in t.matrices.items()
        }
    comp = t.compensation
    doc["compensation"] = "none" if comp == "uncompensated" else comp
    # every channel a gate or statistic uses must be in the panel with the transform its gates use
    panel: dict[str, dict] = {}
    markers = dict(t.markers)
    transforms: dict[str, Any] = {}
    ratios: dict[str, dict[str, Any]] = {}
    for p in t.populations:
        for d in getattr(p.gate, "dims", ()):
            if isinstance(d, RatioDim):
                spec = {
                    "ratio": [d.numerator, d.denominator],
                    "A": _num(d.A),
                    "B": _num(d.B),
                    "C": _num(d.C),
                }
                if ratios.setdefault(d.name, spec) != spec:
                    err.append(
                        f"ratio {d.name!r} is defined twice with different channels or A/B/C"
                    )
            if d.channel not in markers:
                markers[d.channel] = Marker(d.channel, transform=d.transform)
            if d.transform is not None:
                transforms.setdefault(d.channel, d.transform)
        for _, m in p.report.statistics:
            markers.setdefault(m, Marker(m))
    for name, m in markers.items():
        entry: dict[str, Any] = dict(ratios.get(name, {}))
        if m.aliases:
            entry["aliases"] = list(m.aliases)
        tr = m.transform if m.transform is not None else transforms.get(name)
        if tr is not None:
            entry["transform"] = _transform_doc(tr)
        if m.optional:
            entry["optional"] = True
        panel[name] = entry
        markers[name] = Marker(name, m.aliases, tr, m.optional)
    doc["panel"] = panel
    pops: dict[str, dict] = {}
    groups = (t.meta or {}).get("quadrant_gates", {})
    done: set[str] = set()
    for p in t.populations:
        if p.name in done:
            continue
        entry: dict[str, Any] = {}
        if p.parent is not None:
            entry["parent"] = p.parent
        sharing = (
            [q for q in t.populations if q.gate is p.gate and q.quadrant is not None]
            if p.quadrant is not None
            else []
        )
        same = True
        if p.description and not sharing:
            entry["description"] = p.description
        if p.cleanup:
            entry["cleanup"] = True
        group_hidden = all(q.hidden for q in sharing) if sharing else p.hidden
        if group_hidden:
            entry["hidden"] = True
        g = p.gate
        gdoc = _gate_doc(p, g, markers, err)
        if sharing:
            names = {q.name for q in sharing}
            gname = (
                next((k for k, v in groups.items() if set(v) == names), None)
                or f"{p.name}_quadrants"
            )
            dims = [d.channel for d in g.dims]
            shared = _report_doc(p.report)
            same = all(_report_doc(q.report) == shared for q in sharing)
            quads: dict[str, Any] = {}
            by_cuts = isinstance(g, DataDrivenGate) or _quadrant_cuts(g) is not None
            for q in sharing:
                if not by_cuts:  # explicit rectangles (GatingML's banded quadrants)
                    mins, maxs = g.quadrants[q.quadrant]
                    rect: dict[str, Any] = {
                        "min": [_opt_num(v) for v in mins],
                        "max": [_opt_num(v) for v in maxs],
                    }
                    if q.quadrant != q.name:
                        rect["quadrant"] = q.quadrant
                    if q.description:
                        rect["description"] = q.description
                    if q.hidden and not group_hidden:
                        rect["hidden"] = True
                    if not same:
                        rect.update(_report_doc(q.report))
                    quads[q.name] = rect
                    continue
                if q.quadrant not in _SIGNS:
                    err.append(
                        f"quadrant {q.quadrant!r} of {q.name!r} is not a sign pair (++ +- -+ --)"
                    )
                    continue
                signs = " ".join(f"{dims[i]}{q.quadrant[i]}" for i in range(2))
                child: dict[str, Any] = {}
                if (
                    q.description
                    and q.description != signs
                    and not q.description.endswith(f"[{signs}]")
                ):
                    child["description"] = q.description
                if q.hidden and not group_hidden:
                    child["hidden"] = True
                if not same:
                    child.update(_report_doc(q.report))
                quads[q.name] = {"signs": signs, **child} if child else signs
            gdoc["quadrants"] = quads
            done.update(names)
            key = gname
        else:
            key = p.name
            done.add(p.name)
        entry["gate"] = gdoc
        if not sharing or same:
            entry.update(_report_doc(p.report))
        pops[key] = entry
    doc["populations"] = pops
    if err:
        raise TemplateError([TemplateProblem(t.source or "<template>", None, None, e) for e in err])
    return doc


def _report_doc(r: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.percent_of:
        out["percent_of"] = list(r.percent_of)
    if r.statistics:
        stats: dict[str, list[str]] = {}
        for s, m in r.statistics:
            stats.setdefault(s, []).append(m)
        out["statistics"] = stats
    return out


def _dims_doc(gate, markers: dict[str, Marker], gdoc: dict, err: list, name: str) -> None:
    dims = list(gate.dims)
    gdoc["dims"] = [d.channel for d in dims]
    raw = all(d.transform is None for d in dims)
    if raw and any(markers[d.channel].transform is not None for d in dims):
        gdoc["units"] = "raw"
    else:  # dims drawn on another transform than their panel entry's say so in the gate
        over = {}
        for d in dims:
            panel_t = markers[d.channel].transform
            if _tdict(d.transform) != _tdict(panel_t):
                over[d.channel] = "none" if d.transform is None else _transform_doc(d.transform)
        if over:
            gdoc["transforms"] = over
    comps = ["none" if d.compensation == "uncompensated" else d.compensation for d in dims]
    if len(set(comps)) > 1:
        gdoc["compensation"] = comps  # one per dim
    elif comps and comps[0] is not None:
        gdoc["compensation"] = comps[0]


def _gate_doc(p: Population, g: Gate, markers, err) -> dict:
    gdoc: dict[str, Any] = {}
    if isinstance(g, BooleanGate):
        ops = [{"not": n} if c else n for n, c in g.operands]
        gdoc[g.op] = ops[0] if g.op == "not" else ops
        return gdoc
    if isinstance(g, RefGate):
        refs = [n if d is None else {"population": n, "dims": list(d)} for n, d in g.refs]
        gdoc["ref"] = refs[0] if len(refs) == 1 and isinstance(refs[0], str) else refs
        return gdoc
    if isinstance(g, DataDrivenGate):
        gdoc["method"] = g.method
        _dims_doc(g, markers, gdoc, err, p.name)
        if g.side is not None:
            gdoc["side"] = g.side
        if g.params:
            gdoc["args"] = _plain(g.params)
        if g.pool is not None:
            gdoc["pool"] = g.pool
        if g.guide:
            gdoc["guide"] = [d.label for d in g.guide]
        if g.fallback_from is not None:
            gdoc["fallback_from"] = g.fallback_from
        return gdoc
    if isinstance(g, QuadrantGate):
        gdoc["kind"] = "quadrant"
        _dims_doc(g, markers, gdoc, err, p.name)
        cuts = _quadrant_cuts(g)
        if cuts is not None:
            gdoc["cuts"] = [_num(c) for c in cuts]
        return gdoc
    if isinstance(g, RectangleGate):
        gdoc["kind"] = "range" if len(g.dims) == 1 else "rectangle"
        _dims_doc(g, markers, gdoc, err, p.name)
        one = len(g.dims) == 1
        everything = all(v is None for v in (*g.mins, *g.maxs))  # open on all sides: say so
        if everything or any(v is not None for v in g.mins):
            gdoc["min"] = (
                _opt_num(g.mins[0]) if one else [None if v is None else _num(v) for v in g.mins]
            )
        if any(v is not None for v in g.maxs):
            gdoc["max"] = (
                _num(g.maxs[0]) if one else [None if v is None else _num(v) for v in g.maxs]
            )
        return gdoc
    if isinstance(g, PolygonGate):
        gdoc["kind"] = "polygon"
        _dims_doc(g, markers, gdoc, err, p.name)
        gdoc["vertices"] = [[_num(x), _num(y)] for x, y in g.vertices]
        return gdoc
    if isinstance(g, EllipsoidGate):
        gdoc["kind"] = "ellipse"
        _dims_doc(g, markers, gdoc, err, p.name)
        gdoc["mean"] = [_num(x) for x in g.mean]
        gdoc["covariance"] = [[_num(x) for x in r] for r in g.covariance]
        gdoc["distance_square"] = _num(g.distance_square)
        return gdoc
    err.append(f"population {p.name!r}: gate type {type(g).__name__} cannot be written to YAML")
    return gdoc


def _quadrant_cuts(g: QuadrantGate) -> tuple[float, float] | None:
    cx = cy = None
    for code, (mins, maxs) in g.quadrants.items():
        if code not in _SIGNS:
            return None
        x = mins[0] if code[0] == "+" else maxs[0]
        y = mins[1] if code[1] == "+" else maxs[1]
        if x is None or y is None or (cx is not None and (x != cx or y != cy)):
            return None
        cx, cy = x, y
    if cx is None:
        return None
    # exactly the four quadrants around (cx, cy), nothing banded: what ``cuts:`` reloads as
    same = QuadrantGate.from_cuts(g.dims, cx, cy).quadrants
    norm = {k: (tuple(a), tuple(b)) for k, (a, b) in g.quadrants.items()}
    return (float(cx), float(cy)) if norm == same else None
