"""FlowJo 10 workspace XML elements (populations, boolean nodes, spillover matrices)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd

from cytophen.interop.flowjo._convert import flowjo_name
from cytophen.interop.flowjo._wsp import DATATYPE_NS, GATING_NS, TRANSFORMS_NS

_G = f"{{{GATING_NS}}}"
_T = f"{{{TRANSFORMS_NS}}}"
_D = f"{{{DATATYPE_NS}}}"
NSMAP = {"gating": GATING_NS, "transforms": TRANSFORMS_NS, "data-type": DATATYPE_NS}
#: Prefix of compensated parameters (FlowJo's default).
COMP_PREFIX = "Comp-"


def fmt(v: float) -> str:
    return repr(float(v))


def xml_text(s: str) -> str:
    """``s`` without the characters XML 1.0 cannot hold (FCS TEXT may have any byte)."""
    return "".join(
        c for c in str(s) if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
    )


def subpops(el):
    from lxml import etree

    sub = el.find("Subpopulations")
    if sub is None:
        sub = etree.SubElement(el, "Subpopulations")
    return sub


def bool_el(sub, tag: str, label: str, deps: list[str], count: int | None):
    from lxml import etree

    el = etree.SubElement(
        sub,
        tag,
        name=label,
        annotation="",
        owningGroup="",
        expanded="1",
        sortPriority="10",
        count=str(-1 if count is None else count),
    )
    d = etree.SubElement(el, "Dependents")
    for dep in deps:
        etree.SubElement(d, "Dependent", name=dep)
    return el


def population_el(sub, label, count, kind, params, data, inside, gate_ids, parent):
    from lxml import etree

    el = etree.SubElement(
        sub,
        "Population",
        name=label,
        annotation="",
        owningGroup="",
        expanded="1",
        sortPriority="10",
        count=str(count),
    )
    graph = etree.SubElement(
        el,
        "Graph",
        smoothing="0",
        backColor="#ffffff",
        foreColor="#000000",
        type="Pseudocolor" if len(params) == 2 else "Histogram",
        fast="1",
    )
    for axis, name in zip(("x", "y"), params):
        etree.SubElement(graph, "Axis", dimension=axis, name=name, label="", auto="auto")
    gid = f"ID{uuid.uuid4().int % 2_000_000_000}"
    gate_el = etree.SubElement(el, "Gate")
    gate_el.set(f"{_G}id", gid)
    if parent is not None and parent in gate_ids:
        gate_el.set(f"{_G}parent_id", gate_ids[parent])
    common = {
        "eventsInside": "1" if inside else "0",
        "annoOffsetX": "0",
        "annoOffsetY": "0",
        "tint": "#000000",
        "isTinted": "0",
        "lineWeight": "Normal",
        "userDefined": "1",
    }
    if kind == "rectangle":
        shape = etree.SubElement(
            gate_el, f"{_G}RectangleGate", **common, percentX="0", percentY="0"
        )
        lo, hi = data
        for name, a, b in zip(params, lo, hi):
            d = etree.SubElement(shape, f"{_G}dimension")
            if a is not None:
                d.set(f"{_G}min", fmt(a))
            if b is not None:
                d.set(f"{_G}max", fmt(b))
            etree.SubElement(d, f"{_D}fcs-dimension").set(f"{_D}name", name)
    else:
        shape = etree.SubElement(
            gate_el, f"{_G}PolygonGate", **common, quadId="-1", gateResolution="256"
        )
        for name in params:
            d = etree.SubElement(shape, f"{_G}dimension")
            etree.SubElement(d, f"{_D}fcs-dimension").set(f"{_D}name", name)
        for x, y in data:
            v = etree.SubElement(shape, f"{_G}vertex")
            for c in (x, y):
                etree.SubElement(v, f"{_G}coordinate").set(f"{_D}value", fmt(c))
    return el


def matrix_el(name: str, m: pd.DataFrame):
    from lxml import etree

    dets = [flowjo_name(str(c)) for c in m.columns]
    values = m.to_numpy(dtype=np.float64)
    mid = str(uuid.uuid5(uuid.NAMESPACE_URL, repr((name, dets, values.round(12).tolist()))))
    el = etree.Element(
        f"{_T}spilloverMatrix",
        prefix=COMP_PREFIX,
        name=name,
        editable="1",
        color="#c0c0c0",
        version="FlowJo-10.7.1",
        status="FINALIZED",
        suffix="",
    )
    el.set(f"{_T}id", mid)
    params = etree.SubElement(el, f"{_D}parameters")
    for d in dets:
        p = etree.SubElement(params, f"{_D}parameter", userProvidedCompInfix=COMP_PREFIX + d)
        p.set(f"{_D}name", d)
    for i, d in enumerate(dets):
        row = etree.SubElement(el, f"{_T}spillover", userProvidedCompInfix=COMP_PREFIX + d)
        row.set(f"{_D}parameter", d)
        for j, d2 in enumerate(dets):
            c = etree.SubElement(row, f"{_T}coefficient")
            c.set(f"{_D}parameter", d2)
            c.set(f"{_T}value", fmt(values[i, j]))
    return el
