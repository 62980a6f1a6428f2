"""GatingML 2.0 import and export.

Import validates the XML against the GatingML 2.0 schemas and reads it with lxml
(:mod:`cytophen.interop._gml_read`) straight into cytophen's own gate model (:mod:`cytophen.gates`);
gating then runs on cytophen's engine and kernels.

Mapping (GatingML 2.0 → cytophen):

- ``RectangleGate`` → :class:`~cytophen.gates.RectangleGate` (``min <= x < max``, missing bound open);
- ``PolygonGate`` → :class:`~cytophen.gates.PolygonGate`; ``EllipsoidGate`` →
  :class:`~cytophen.gates.EllipsoidGate` (any number of dimensions);
- ``QuadrantGate`` → one :class:`~cytophen.gates.QuadrantGate` shared by one population per
  ``Quadrant`` (population name = quadrant id). A divider with several values cuts its dimension into
  bands; each quadrant's ``position/@location`` picks one band per divider; a divider a quadrant does not
  mention leaves that dimension open;
- ``BooleanGate`` (and/or/not, ``use-as-complement``) → :class:`~cytophen.gates.BooleanGate`;
- ``parent_id`` → ``Population.parent``; population names are the gate ids;
- ``spectrumMatrix`` → ``Template.matrices[id]`` (index = fluorochromes, columns = detectors); each
  dimension keeps its ``compensation-ref`` (``'uncompensated'``, ``'FCS'`` or a matrix id);
- ``flin``/``flog``/``fasinh``/``logicle``/``hyperlog`` → the transforms of :mod:`cytophen.transforms`;
  a ``new-dimension`` referring to an ``fratio`` → :class:`~cytophen.gates.RatioDim`.

Export (:func:`export_gatingml`) writes the same elements back with :mod:`xml.etree.ElementTree`; what
GatingML cannot express (data-driven gates that were not frozen, FlowJo-specific transforms,
quadrants spanning several bands) raises a :class:`~cytophen.errors.TemplateError` naming the
population.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from cytophen.errors import GateError, TemplateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    EllipsoidGate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
    RefGate,
    resolve_ref,
)
from cytophen.interop._gml_read import (
    _COMP_KEYWORDS,
    CYTOPHEN_NS,
    DATATYPE_NS,
    GATING_NS,
    TRANSFORMS_NS,
    parse,
)
from cytophen.template import Population, Template
from cytophen.transforms import kind_of

__all__ = [
    "load_gatingml",
    "export_gatingml",
    "frozen_template",
    "dependency_order",
    "GATING_NS",
    "TRANSFORMS_NS",
    "DATATYPE_NS",
]

_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


def _xml_id(name: str) -> str:
    """An XML NCName made from ``name`` (other characters become ``_``)."""
    out = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))
    return out if out and _NCNAME.fullmatch(out) else "_" + out


# ------------------------------------------------------------------------------------------------
# transforms: cytophen objects -> GatingML elements
# ------------------------------------------------------------------------------------------------
def _gml_transform(t, where: str) -> tuple[str, dict[str, float]]:
    """(GatingML element, its parameters) of a cytophen transform."""
    kind = kind_of(t)
    if kind is None or kind.gatingml is None:
        raise TemplateError(
            f"{where}: transform {t.kind!r} ({type(t).__name__}) has no GatingML 2.0 equivalent; "
            "GatingML expresses flin, flog, fasinh, logicle and hyperlog",
        )
    d = t.to_dict()
    return kind.gatingml, {n: float(d[n]) for n in kind.params}


# ------------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------------
def load_gatingml(path: str | Path, *, name: str | None = None) -> Template:
    """Load a GatingML 2.0 document as a :class:`~cytophen.template.Template`.

    Parameters
    ----------
    path
        The ``.xml`` file.
    name
        Template name (default: the file stem).

    Returns
    -------
    Template
        One population per gate (per quadrant for quadrant gates), named by gate / quadrant id, in an
        order where parents and boolean operands come first.

    Raises
    ------
    TemplateError
        The file is not GatingML 2.0, or uses something cytophen cannot represent.

    Examples
    --------
    >>> t = load_gatingml("gates.xml")                      # doctest: +SKIP
    >>> cytophen.gate(cytophen.read_fcs("data1.fcs"), t).table  # doctest: +SKIP
    """
    p = Path(path)
    src = str(p)
    if not p.is_file():
        raise TemplateError("file not found (expected a GatingML 2.0 .xml file)", file=src)
    pops, matrices = parse(p)
    pops = dependency_order(pops, src)
    return Template(
        name=name or p.stem,
        populations=pops,
        compensation="FCS",
        matrices=matrices,
        description=f"imported from GatingML 2.0 file {p.name}",
        source=src,
        meta={"format": "gatingml2", "file": src},
    )


def dependency_order(pops: list[Population], src: str) -> list[Population]:
    """Order populations so parents and boolean operands come first (stable otherwise)."""
    by_name = {p.name: p for p in pops}
    done: set[str] = set()
    out: list[Population] = []
    visiting: set[str] = set()

    def visit(p: Population) -> None:
        if p.name in done:
            return
        if p.name in visiting:
            raise TemplateError(f"gate {p.name!r} depends on itself (cycle)", file=src)
        visiting.add(p.name)
        deps = [p.parent] if p.parent is not None else []
        if isinstance(p.gate, BooleanGate):
            deps += [n for n, _ in p.gate.operands]
        for dname in deps:
            if dname not in by_name:
                raise TemplateError(
                    f"gate {p.name!r} refers to {dname!r}, which is not a gate or quadrant id "
                    "of the file",
                    file=src,
                )
            visit(by_name[dname])
        visiting.discard(p.name)
        done.add(p.name)
        out.append(p)

    for p in pops:
        visit(p)
    return out


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    v = float(v)
    if math.isinf(v):
        return "INF" if v > 0 else "-INF"  # xs:double spelling
    return repr(v)


class _Writer:
    def __init__(self, template: Template):
        self.t = template
        ET.register_namespace("gating", GATING_NS)
        ET.register_namespace("transforms", TRANSFORMS_NS)
        ET.register_namespace("data-type", DATATYPE_NS)
        ET.register_namespace("cytophen", CYTOPHEN_NS)
        self.root = ET.Element(f"{{{GATING_NS}}}Gating-ML")
        self.transform_ids: dict[str, str] = {}
        self.ratio_ids: dict[str, str] = {}
        self.used_matrices: list[str] = []
        self.transform_els: list[ET.Element] = []
        # GatingML ids are XML NCNames: population names that are not get a sanitised id, and the
        # name is kept in the gate's custom_info (read back by load_gatingml)
        self.taken: set[str] = set()
        self.ids: dict[str, str] = {}
        for n in template.names:
            self.ids[n] = n if _NCNAME.fullmatch(n) else self._fresh(_xml_id(n))
            self.taken.add(self.ids[n])

    # -- ids -------------------------------------------------------------------------------
    def _fresh(self, base: str) -> str:
        base = _xml_id(base)
        cand, i = base, 1
        while cand in self.taken:
            i += 1
            cand = f"{base}_{i}"
        self.taken.add(cand)
        return cand

    def comp_ref(self, ref: str | None, where: str) -> str:
        ref = self.t.compensation if ref is None else ref
        if ref == "keyword":
            return "FCS"
        if ref in _COMP_KEYWORDS:
            return ref
        if ref in self.t.matrices:
            if ref not in self.used_matrices:
                self.used_matrices.append(ref)
            return ref
        raise TemplateError(
            f"population {where!r}: compensation {ref!r} is not a matrix of the template"
        )

    def transform_ref(self, t, where: str) -> str | None:
        if t is None:
            return None
        element, params = _gml_transform(t, f"population {where!r}")
        key = repr((element, sorted(params.items())))
        if key not in self.transform_ids:
            tid = self._fresh(f"{element}_" + "_".join(f"{params[k]:g}" for k in params))
            self.transform_ids[key] = tid
            el = ET.Element(f"{{{TRANSFORMS_NS}}}transformation", {f"{{{TRANSFORMS_NS}}}id": tid})
            ET.SubElement(
                el,
                f"{{{TRANSFORMS_NS}}}{element}",
                {f"{{{TRANSFORMS_NS}}}{k}": _fmt(v) for k, v in params.items()},
            )
            self.transform_els.append(el)
        return self.transform_ids[key]

    def ratio_ref(self, d: RatioDim) -> str:
        key = repr((d.numerator, d.denominator, d.A, d.B, d.C))
        if key not in self.ratio_ids:
            rid = self._fresh(d.name)
            self.ratio_ids[key] = rid
            el = ET.Element(f"{{{TRANSFORMS_NS}}}transformation", {f"{{{TRANSFORMS_NS}}}id": rid})
            fr = ET.SubElement(
                el,
                f"{{{TRANSFORMS_NS}}}fratio",
                {
                    f"{{{TRANSFORMS_NS}}}{k}": _fmt(v)
                    for k, v in (("A", d.A), ("B", d.B), ("C", d.C))
                },
            )
            for ch in (d.numerator, d.denominator):
                ET.SubElement(fr, f"{{{DATATYPE_NS}}}fcs-dimension", {f"{{{DATATYPE_NS}}}name": ch})
            self.transform_els.append(el)
        return self.ratio_ids[key]

    # -- dimensions ------------------------------------------------------------------------
    def dimension(
        self, parent: ET.Element, tag: str, d, where: str, extra: dict[str, str]
    ) -> ET.Element:
        attrs = {f"{{{GATING_NS}}}compensation-ref": self.comp_ref(d.compensation, where)}
        tref = self.transform_ref(d.transform, where)
        if tref is not None:
            attrs[f"{{{GATING_NS}}}transformation-ref"] = tref
        attrs.update(extra)
        el = ET.SubElement(parent, f"{{{GATING_NS}}}{tag}", attrs)
        if isinstance(d, RatioDim):
            ET.SubElement(
                el,
                f"{{{DATATYPE_NS}}}new-dimension",
                {f"{{{DATATYPE_NS}}}transformation-ref": self.ratio_ref(d)},
            )
        else:
            ET.SubElement(
                el, f"{{{DATATYPE_NS}}}fcs-dimension", {f"{{{DATATYPE_NS}}}name": d.channel}
            )
        return el

    # -- gates -----------------------------------------------------------------------------
    def placed(self, name: str):
        """The fixed gate population ``name`` applies (a quadrant child's rectangle, a ref gate
        resolved from the gates it refers to)."""
        pop = self.t.population(name)
        g = pop.gate
        if isinstance(g, QuadrantGate):
            return g.rectangle(pop.quadrant)
        if isinstance(g, RefGate):
            try:
                return resolve_ref(
                    [(r, self.placed(r)) for r, _ in g.refs],
                    [d for _, d in g.refs],
                    population=name,
                )
            except GateError as exc:
                raise TemplateError(str(exc)) from exc
        return g  # a data-driven gate never gets here: write() refuses it first, in tree order

    def gate_el(
        self, kind: str, name: str | None, parent: str | None, *, gid: str | None = None, names=()
    ) -> ET.Element:
        gid = self.ids[name] if gid is None else gid
        attrs = {f"{{{GATING_NS}}}id": gid}
        if parent is not None:
            attrs[f"{{{GATING_NS}}}parent_id"] = self.ids[parent]
        el = ET.SubElement(self.root, f"{{{GATING_NS}}}{kind}", attrs)
        renamed = [(self.ids[n], n) for n in ([name] if name is not None else list(names))]
        renamed = [(i, n) for i, n in renamed if i != n]
        if renamed:
            info = ET.SubElement(el, f"{{{DATATYPE_NS}}}custom_info")
            for i, n in renamed:
                ET.SubElement(info, f"{{{CYTOPHEN_NS}}}name", {"id": i, "name": n})
        return el

    def write(self) -> ET.Element:
        gates_done: dict[int, str] = {}
        for pop in self.t.populations:
            g = pop.gate
            where = pop.name
            if isinstance(g, DataDrivenGate):
                raise TemplateError(
                    f"population {where!r} uses the data-driven gate {g.method!r}, which GatingML 2.0 "
                    "cannot express; freeze it first: frozen_template(cytophen.gate(sample, "
                    "template)) holds the gates fitted on that sample"
                )
            if isinstance(g, QuadrantGate):
                if _grid(g, [p for p in self.t.populations if p.gate is g]):
                    if id(g) not in gates_done:
                        gates_done[id(g)] = self.quadrant(pop, g)
                    continue
                # sequential quadrants (a cut per side of the first) are no grid of dividers:
                # each child is written as the rectangle it is
                g = g.rectangle(pop.quadrant)
            if isinstance(g, RefGate):  # GatingML has no reference gate: write what it applies
                g = self.placed(pop.name)
            if isinstance(g, BooleanGate):
                el = self.gate_el("BooleanGate", pop.name, pop.parent)
                op = ET.SubElement(el, f"{{{GATING_NS}}}{g.op}")
                for name, complement in g.operands:
                    attrs = {f"{{{GATING_NS}}}ref": self.ids[name]}
                    if complement:
                        attrs[f"{{{GATING_NS}}}use-as-complement"] = "true"
                    ET.SubElement(op, f"{{{GATING_NS}}}gateReference", attrs)
            elif isinstance(g, RectangleGate):
                el = self.gate_el("RectangleGate", pop.name, pop.parent)
                for d, lo, hi in zip(g.dims, g.mins, g.maxs):
                    extra = {}
                    if lo is not None and lo != -math.inf:
                        extra[f"{{{GATING_NS}}}min"] = _fmt(lo)
                    if hi is not None:
                        extra[f"{{{GATING_NS}}}max"] = _fmt(hi)
                    if not extra:  # open on both sides: GatingML needs a bound; -INF keeps NaN out
                        extra[f"{{{GATING_NS}}}min"] = "-INF"
                    self.dimension(el, "dimension", d, where, extra)
            elif isinstance(g, PolygonGate):
                el = self.gate_el("PolygonGate", pop.name, pop.parent)
                for d in g.dims:
                    self.dimension(el, "dimension", d, where, {})
                for x, y in g.vertices:
                    v = ET.SubElement(el, f"{{{GATING_NS}}}vertex")
                    for c in (x, y):
                        ET.SubElement(
                            v, f"{{{GATING_NS}}}coordinate", {f"{{{DATATYPE_NS}}}value": _fmt(c)}
                        )
            elif isinstance(g, EllipsoidGate):
                el = self.gate_el("EllipsoidGate", pop.name, pop.parent)
                for d in g.dims:
                    self.dimension(el, "dimension", d, where, {})
                mean = ET.SubElement(el, f"{{{GATING_NS}}}mean")
                for c in g.mean:
                    ET.SubElement(
                        mean, f"{{{GATING_NS}}}coordinate", {f"{{{DATATYPE_NS}}}value": _fmt(c)}
                    )
                cov = ET.SubElement(el, f"{{{GATING_NS}}}covarianceMatrix")
                for row in g.covariance:
                    r = ET.SubElement(cov, f"{{{GATING_NS}}}row")
                    for c in row:
                        ET.SubElement(
                            r, f"{{{GATING_NS}}}entry", {f"{{{DATATYPE_NS}}}value": _fmt(c)}
                        )
                ds = ET.SubElement(el, f"{{{GATING_NS}}}distanceSquare")
                ds.set(f"{{{DATATYPE_NS}}}value", _fmt(g.distance_square))
            else:
                raise TemplateError(
                    f"population {where!r}: gate type {type(g).__name__} cannot be written as GatingML 2.0"
                )
        # matrices and transforms go first, as in the reference files
        head: list[ET.Element] = [
            self.matrix_el(m) for m in self.used_matrices
        ] + self.transform_els
        for i, el in enumerate(head):
            self.root.insert(i, el)
        return self.root

    def quadrant(self, first: Population, g: QuadrantGate) -> str:
        members = [p for p in self.t.populations if p.gate is g]
        parents = {p.parent for p in members}
        if len(parents) != 1:
            raise TemplateError(
                f"populations {', '.join(p.name for p in members)} share one quadrant gate but have "
                "different parents; GatingML quadrants share their gate's parent"
            )
        if any(isinstance(d, RatioDim) for d in g.dims):
            raise TemplateError(
                f"population {first.name!r}: a quadrant divider on a ratio dimension is not supported "
                "(GatingML readers, FlowKit's included, take fcs-dimension dividers only); use "
                "rectangle gates on the ratio instead"
            )
        gid = self._fresh(f"{first.name}_quadrants")
        el = self.gate_el(
            "QuadrantGate", None, first.parent, gid=gid, names=[p.name for p in members]
        )
        ndim = len(g.dims)
        rects = {p.name: g.rectangle(p.quadrant) for p in members}
        div_ids = []
        div_values: list[list[float]] = []
        for k, d in enumerate(g.dims):
            vals = sorted(
                {float(v) for r in rects.values() for v in (r.mins[k], r.maxs[k]) if v is not None}
            )
            div_values.append(vals)
            if not vals:
                div_ids.append(None)
                continue
            did = self._fresh(f"{gid}_div{k + 1}")
            div_ids.append(did)
            div = self.dimension(el, "divider", d, first.name, {f"{{{GATING_NS}}}id": did})
            for v in vals:
                ET.SubElement(div, f"{{{GATING_NS}}}value").text = _fmt(v)
        for name, r in rects.items():
            q = ET.SubElement(
                el, f"{{{GATING_NS}}}Quadrant", {f"{{{GATING_NS}}}id": self.ids[name]}
            )
            for k in range(ndim):
                lo, hi, vals = r.mins[k], r.maxs[k], div_values[k]
                if lo is None and hi is None:
                    continue
                # the band [lo, hi) must be exactly one band between consecutive divider values
                i_lo = -1 if lo is None else vals.index(float(lo))
                i_hi = len(vals) if hi is None else vals.index(float(hi))
                if i_hi != i_lo + 1:
                    raise TemplateError(
                        f"population {name!r}: its quadrant spans more than one band of the dividers "
                        f"on {g.dims[k].label}, which GatingML quadrants cannot express"
                    )
                loc = float(lo) if lo is not None else float(hi) - max(1.0, abs(float(hi)))
                ET.SubElement(
                    q,
                    f"{{{GATING_NS}}}position",
                    {
                        f"{{{GATING_NS}}}divider_ref": div_ids[k],
                        f"{{{GATING_NS}}}location": _fmt(loc),
                    },
                )
        return gid

    def matrix_el(self, mid: str) -> ET.Element:
        m = self.t.matrices[mid]
        el = ET.Element(f"{{{TRANSFORMS_NS}}}spectrumMatrix", {f"{{{TRANSFORMS_NS}}}id": mid})
        for tag, names in (("fluorochromes", m.index), ("detectors", m.columns)):
            sub = ET.SubElement(el, f"{{{TRANSFORMS_NS}}}{tag}")
            for n in names:
                ET.SubElement(
                    sub, f"{{{DATATYPE_NS}}}fcs-dimension", {f"{{{DATATYPE_NS}}}name": str(n)}
                )
        for row in m.to_numpy(dtype=np.float64):
            sp = ET.SubElement(el, f"{{{TRANSFORMS_NS}}}spectrum")
            for c in row:
                ET.SubElement(
                    sp, f"{{{TRANSFORMS_NS}}}coefficient", {f"{{{TRANSFORMS_NS}}}value": _fmt(c)}
                )
        return el


def export_gatingml(template: Template, path: str | Path) -> None:
    """Write ``template`` as a GatingML 2.0 document.

    Every fixed gate kind is written (rectangle, polygon, ellipsoid, quadrant, boolean, ratio
    dimensions, spectrum matrices, flin/flog/fasinh/logicle/hyperlog transforms); population names
    become gate ids (quadrant ids for quadrant populations), so :func:`load_gatingml` gives back the
    same tree. A dimension using the template's default compensation is written with that default;
    ``'keyword'`` is written as GatingML's ``'FCS'`` (which also accepts a file without spillover).

    Parameters
    ----------
    template
        The template to write.
    path
        Output ``.xml`` file (overwritten; nothing is written when the template cannot be expressed).

    Raises
    ------
    TemplateError
        A population cannot be expressed in GatingML 2.0: a data-driven gate that was not frozen,
        a FlowJo-only transform (biex), a quadrant spanning several divider bands.

    Examples
    --------
    >>> export_gatingml(cytophen.load_template("bcell.yaml"), "bcell.xml")  # doctest: +SKIP
    """
    root = _Writer(template).write()
    ET.indent(root, space="    ")
    data = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    Path(path).write_bytes(data + b"\n")


# ------------------------------------------------------------------------------------------------
# freezing data-driven gates
# ------------------------------------------------------------------------------------------------
def frozen_template(result, template: Template | None = None) -> Template:
    """The template with every data-driven gate replaced by the gate it placed on one sample.

    The fixed gates come from ``result.gates`` (the geometry each gate actually used), on the same
    dimensions and transforms as the data-driven gate. The frozen template can then be exported to
    GatingML 2.0 (or YAML) and applied elsewhere as fixed gates.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` of the template on one sample.
    template
        The template that produced ``result`` (default: ``result.template``).

    Returns
    -------
    Template
        :meth:`Template.freeze` of the result: same populations, names and parents;
        ``meta['frozen_from']`` names the original template and the sample.

    Raises
    ------
    GateError
        A data-driven gate placed nothing on that sample (declined), so there is no gate to freeze.

    Examples
    --------
    >>> res = cytophen.gate(sample, cytophen.load_template("bcell.yaml"))  # doctest: +SKIP
    >>> export_gatingml(frozen_template(res), "bcell_frozen.xml")          # doctest: +SKIP
    """
    t = template if template is not None else result.template
    if t is None:
        raise TemplateError("frozen_template: the result carries no template; pass template=")
    return t.freeze(result)


def _grid(g: QuadrantGate, members: list[Population]) -> bool:
    """Whether the quadrant children ``members`` of ``g`` are bands of one grid of dividers (what
    a GatingML QuadrantGate can hold): on each dimension every child's range is one band between
    consecutive values of all the children's bounds."""
    rects = [g.rectangle(p.quadrant) for p in members]
    for k in range(len(g.dims)):
        vals = sorted({float(v) for r in rects for v in (r.mins[k], r.maxs[k]) if v is not None})
        for r in rects:
            lo, hi = r.mins[k], r.maxs[k]
            if lo is None and hi is None:
                continue
            i_lo = -1 if lo is None else vals.index(float(lo))
            i_hi = len(vals) if hi is None else vals.index(float(hi))
            if i_hi != i_lo + 1:
                return False
    return True
