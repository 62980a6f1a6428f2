"""Reading GatingML 2.0 with lxml into cytophen's gate model.

The document is first validated against the standard's schemas (``schemas/``), so a file that is
not GatingML 2.0 is refused with the line and the schema's message. Then each element maps onto
cytophen directly (see :mod:`cytophen.interop.gatingml` for the mapping table).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytophen.errors import CytophenError, TemplateError, TemplateProblem
from cytophen.gates import (
    BooleanGate,
    Dim,
    EllipsoidGate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
)
from cytophen.template import Population
from cytophen.transforms import gatingml_kind

GATING_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATATYPE_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
CYTOPHEN_NS = "urn:cytophen:gatingml"
_G, _T, _D = (f"{{{ns}}}" for ns in (GATING_NS, TRANSFORMS_NS, DATATYPE_NS))
_COMP_KEYWORDS = ("uncompensated", "FCS")
_GATES = ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")


@functools.lru_cache(maxsize=1)
def _schema():
    from lxml import etree

    xsd = Path(__file__).with_name("schemas") / "Gating-ML.v2.0.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


def _problem(src: str, line, message: str) -> TemplateError:
    return TemplateError([TemplateProblem(src, line, None, message)])


def parse(path: Path) -> tuple[list[Population], dict[str, pd.DataFrame]]:
    """Populations (document order) and spectrum matrices of a GatingML 2.0 file."""
    from lxml import etree

    src = str(path)
    try:
        doc = etree.parse(src)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else getattr(exc, "lineno", None)
        raise _problem(src, line, f"not a readable GatingML 2.0 document: {exc.msg}") from None
    except OSError as exc:
        raise _problem(src, None, f"not a readable GatingML 2.0 document: {exc}") from None
    schema = _schema()
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise _problem(
            src, err.line, f"not a readable GatingML 2.0 document: schema violation: {err.message}"
        )
    return _Reader(doc.getroot(), src).read()


def _float(el, attr: str, src: str) -> float:
    v = el.get(attr)
    try:
        return float(v)
    except (TypeError, ValueError):
        name = attr.rsplit("}", 1)[-1]
        raise _problem(src, el.sourceline, f"{name}={v!r}: expected a number") from None


class _Reader:
    def __init__(self, root, src: str):
        self.root = root
        self.src = src
        self.names = {
            el.get("id"): el.get("name")
            for el in root.iter(f"{{{CYTOPHEN_NS}}}name")
            if el.get("id") and el.get("name")
        }  # population names cytophen's exporter had to sanitise
        self.matrices: dict[str, pd.DataFrame] = {}
        self.xforms: dict[str, Any] = {}
        self.ratios: dict[str, tuple[str, str, float, float, float]] = {}

    def nm(self, gid) -> str:
        return self.names.get(str(gid), str(gid))

    def read(self):
        for el in self.root.iterfind(f"{_T}spectrumMatrix"):
            self.matrix(el)
        for el in self.root.iterfind(f"{_T}transformation"):
            self.transformation(el)
        pops: list[Population] = []
        for el in self.root:
            if not isinstance(el.tag, str) or not el.tag.startswith(_G):
                continue
            kind = el.tag[len(_G) :]
            if kind not in _GATES:
                continue
            pops.extend(self.gate(el, kind))
        return pops, self.matrices

    # -- matrices and transforms ---------------------------------------------------------------
    def matrix(self, el) -> None:
        mid = el.get(f"{_T}id")

        def names(tag):
            box = el.find(f"{_T}{tag}")
            if box is None:
                return []
            return [d.get(f"{_D}name") for d in box.iterfind(f"{_D}fcs-dimension")]

        flu, det = names("fluorochromes"), names("detectors")
        rows = [
            [_float(c, f"{_T}value", self.src) for c in sp.iterfind(f"{_T}coefficient")]
            for sp in el.iterfind(f"{_T}spectrum")
        ]
        if len(flu) != len(rows) or not all(flu):
            flu = det
        try:
            self.matrices[str(mid)] = pd.DataFrame(
                np.asarray(rows, dtype=np.float64), index=flu, columns=det
            )
        except ValueError as exc:
            raise _problem(self.src, el.sourceline, f"spectrumMatrix {mid!r}: {exc}") from None

    def transformation(self, el) -> None:
        tid = str(el.get(f"{_T}id"))
        body = next((c for c in el if isinstance(c.tag, str)), None)
        kind = body.tag[len(_T) :] if body is not None and body.tag.startswith(_T) else None
        if kind == "fratio":
            dims = [d.get(f"{_D}name") for d in body.iterfind(f"{_D}fcs-dimension")]
            if len(dims) != 2:
                raise _problem(
                    self.src, body.sourceline, f"fratio {tid!r} needs two fcs-dimensions"
                )
            a, b, c = (_float(body, f"{_T}{k}", self.src) for k in ("A", "B", "C"))
            self.ratios[tid] = (str(dims[0]), str(dims[1]), a, b, c)
            return
        tk = gatingml_kind(kind) if kind is not None else None
        if tk is None:
            raise _problem(
                self.src, el.sourceline, f"transformation {tid!r}: {kind!r} is not supported"
            )
        p = {k: _float(body, f"{_T}{k}", self.src) for k in tk.params}
        try:
            self.xforms[tid] = tk.cls(**p)
        except CytophenError as exc:
            raise _problem(self.src, body.sourceline, f"invalid transform {tid!r}: {exc}") from None

    # -- references ----------------------------------------------------------------------------
    def transform(self, ref: str | None, where: str):
        if ref is None:
            return None
        if ref not in self.xforms:
            raise TemplateError(
                f"gate {where!r} refers to transformation {ref!r}, which the file does not "
                f"define (it has: {', '.join(self.xforms) or 'none'})",
                file=self.src,
            )
        return self.xforms[ref]

    def comp(self, ref: str | None, where: str) -> str | None:
        if ref is None or ref in _COMP_KEYWORDS or ref in self.matrices:
            return ref
        raise TemplateError(
            f"gate {where!r} refers to compensation {ref!r}; expected 'uncompensated', 'FCS' "
            f"or a spectrumMatrix id of the file ({', '.join(self.matrices) or 'none defined'})",
            file=self.src,
        )

    def dim(self, el, where: str) -> Dim | RatioDim:
        """A ``dimension`` or ``divider`` element: its channel (or ratio), transform, compensation."""
        t = self.transform(el.get(f"{_G}transformation-ref"), where)
        c = self.comp(el.get(f"{_G}compensation-ref"), where)
        fcs = el.find(f"{_D}fcs-dimension")
        if fcs is not None:
            return Dim(str(fcs.get(f"{_D}name")), transform=t, compensation=c)
        new = el.find(f"{_D}new-dimension")
        ref = new.get(f"{_D}transformation-ref") if new is not None else None
        if ref not in self.ratios:
            raise TemplateError(
                f"gate {where!r} has a new-dimension referring to {ref!r}, "
                "which is not an fratio transformation of the file",
                file=self.src,
            )
        num, den, a, b, cc = self.ratios[ref]
        return RatioDim(
            name=ref, numerator=num, denominator=den, A=a, B=b, C=cc, transform=t, compensation=c
        )

    # -- gates ---------------------------------------------------------------------------------
    def gate(self, el, kind: str) -> list[Population]:
        gid = str(el.get(f"{_G}id"))
        pid = el.get(f"{_G}parent_id")
        parent = None if pid is None else self.nm(pid)
        where = gid
        try:
            if kind == "QuadrantGate":
                return self.quadrants(el, parent, where)
            if kind == "BooleanGate":
                op_el = next(c for c in el if isinstance(c.tag, str) and c.tag.startswith(_G))
                ops = [
                    (
                        self.nm(r.get(f"{_G}ref")),
                        (r.get(f"{_G}use-as-complement") or "").lower() in ("true", "1"),
                    )
                    for r in op_el.iterfind(f"{_G}gateReference")
                ]
                gate = BooleanGate(op_el.tag[len(_G) :], ops)
            elif kind == "RectangleGate":
                dims, lows, highs = [], [], []
                for d in el.iterfind(f"{_G}dimension"):
                    dims.append(self.dim(d, where))
                    lo = d.get(f"{_G}min")
                    hi = d.get(f"{_G}max")
                    lo = None if lo is None else _float(d, f"{_G}min", self.src)
                    lows.append(None if lo == -np.inf else lo)  # same rule: x >= -inf
                    highs.append(None if hi is None else _float(d, f"{_G}max", self.src))
                gate = RectangleGate(tuple(dims), tuple(lows), tuple(highs))
            elif kind == "PolygonGate":
                dims = [self.dim(d, where) for d in el.iterfind(f"{_G}dimension")]
                verts = [self.coords(v, f"{_G}coordinate") for v in el.iterfind(f"{_G}vertex")]
                gate = PolygonGate(tuple(dims), np.asarray(verts, dtype=np.float64))
            else:  # EllipsoidGate
                dims = [self.dim(d, where) for d in el.iterfind(f"{_G}dimension")]
                mean = self.coords(el.find(f"{_G}mean"), f"{_G}coordinate")
                cov = [
                    self.coords(r, f"{_G}entry")
                    for r in el.find(f"{_G}covarianceMatrix").iterfind(f"{_G}row")
                ]
                ds = _float(el.find(f"{_G}distanceSquare"), f"{_D}value", self.src)
                gate = EllipsoidGate(tuple(dims), np.asarray(mean), np.asarray(cov), ds)
        except TemplateError:
            raise
        except CytophenError as exc:
            raise TemplateError(f"gate {where!r}: {exc}", file=self.src) from exc
        return [Population(self.nm(gid), parent, gate)]

    def coords(self, el, tag: str) -> list[float]:
        return [_float(c, f"{_D}value", self.src) for c in el.iterfind(tag)]

    def quadrants(self, el, parent, where: str) -> list[Population]:
        dividers = list(el.iterfind(f"{_G}divider"))
        dims = [self.dim(d, where) for d in dividers]
        ids = [d.get(f"{_G}id") for d in dividers]
        values = []
        for d in dividers:
            vs = []
            for v in d.iterfind(f"{_G}value"):
                try:
                    vs.append(float(v.text))
                except (TypeError, ValueError):
                    raise _problem(
                        self.src, v.sourceline, f"divider value {v.text!r}: expected a number"
                    ) from None
            values.append(sorted(vs))
        quads = {}
        for q in el.iterfind(f"{_G}Quadrant"):
            mins: list[float | None] = [None] * len(ids)
            maxs: list[float | None] = [None] * len(ids)
            for pos in q.iterfind(f"{_G}position"):
                ref = pos.get(f"{_G}divider_ref")
                if ref not in ids:
                    raise _problem(
                        self.src,
                        pos.sourceline,
                        f"quadrant position refers to unknown divider {ref!r}",
                    )
                k = ids.index(ref)
                loc = _float(pos, f"{_G}location", self.src)
                vs = values[k]
                below = [v for v in vs if v <= loc]  # the band [v_i, v_i+1) holding the location
                above = [v for v in vs if v > loc]
                mins[k] = below[-1] if below else None
                maxs[k] = above[0] if above else None
            quads[self.nm(q.get(f"{_G}id"))] = (tuple(mins), tuple(maxs))
        try:
            qg = QuadrantGate(tuple(dims), quads)
        except CytophenError as exc:
            raise TemplateError(f"gate {where!r}: {exc}", file=self.src) from exc
        return [
            Population(qid, parent, qg, quadrant=qid, description=f"quadrant of {where}")
            for qid in quads
        ]
