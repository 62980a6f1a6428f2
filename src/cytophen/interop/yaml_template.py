"""cytophen's declarative YAML gating templates: load, validate, dump.

The format is documented field by field in ``docs/templates.md``. In short::

    name: bcell
    version: "1.0"
    compensation: FCS
    panel:
      CD19: {aliases: [CD-19], transform: {kind: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}}
    populations:
      b_cells:
        gate: {method: mindensity, dims: [CD19], side: "+"}
        percent_of: [lymphocytes]

YAML is read with PyYAML's *safe* composer (no object construction, no custom tags) and walked node
by node, so every problem is reported with the template's file, line and column. Loading collects
**all** problems before raising one :class:`~cytophen.errors.TemplateError`.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cytophen import markers as _markers
from cytophen.errors import GateError, MarkerError, TemplateError, TemplateProblem, TransformError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
    RefGate,
)
from cytophen.template import STATISTICS, Marker, Population, Report, Template

__all__ = [
    "load_yaml_template",
    "dump_template",
    "template_to_yaml",
    "validate_template",
    "check_sample",
    "TRANSFORM_KINDS",
]

FORMAT_VERSION = 1

#: Transform kinds a panel may declare: kind -> (class in :mod:`cytophen.transforms`, GatingML
#: parameters with their defaults, in the order the class takes them).
TRANSFORM_KINDS: dict[str, tuple[str, dict[str, float]]] = {
    "linear": ("LinearTransform", {"T": 262144.0, "A": 0.0}),
    "log": ("LogTransform", {"T": 262144.0, "M": 4.5}),
    "asinh": ("AsinhTransform", {"T": 262144.0, "M": 4.5, "A": 0.0}),
    "logicle": ("LogicleTransform", {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}),
    "hyperlog": ("HyperlogTransform", {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}),
    "biex": (
        "FlowJoBiexTransform",
        {"negative": 0.0, "width": -10.0, "positive": 4.41854, "max_value": 262144.000029},
    ),
    "flowjo_log": ("FlowJoLogTransform", {"offset": 1.0, "decades": 4.5}),
    "auto": ("AutoTransform", {"M": 4.5}),
}
# FlowJo's XML spellings of parameters, accepted on reading
_PARAM_ALIASES = {"biex": {"neg": "negative", "pos": "positive", "maxValue": "max_value"}}
# other spellings (GatingML function names, FlowJo's) accepted for ``kind``
_TRANSFORM_ALIASES = {
    "flin": "linear",
    "flog": "log",
    "fasinh": "asinh",
    "hyperlog": "hyperlog",
    "biexponential": "biex",
    "flowjo_biex": "biex",
    "flowjobiex": "biex",
    "logicle": "logicle",
}

_TOP_KEYS = (
    "format",
    "name",
    "version",
    "description",
    "meta",
    "compensation",
    "matrices",
    "panel",
    "populations",
)
_MARKER_KEYS = ("aliases", "transform", "optional", "description")
_POP_KEYS = ("parent", "description", "gate", "percent_of", "statistics", "cleanup", "hidden")
_COMP_WORDS = {
    "fcs": "FCS",
    "keyword": "keyword",
    "none": "uncompensated",
    "uncompensated": "uncompensated",
}
_RATIO_KEYS = ("ratio", "A", "B", "C")
_QUADRANT_CHILD_KEYS = (
    "signs",
    "description",
    "hidden",
    "percent_of",
    "statistics",
    "min",
    "max",
    "quadrant",
)
_MATRIX_KEYS = ("csv", "detectors", "fluorochromes", "matrix")
_GATE_KINDS = ("rectangle", "range", "polygon", "ellipse", "quadrant", "boolean", "ref")
_GATE_COMMON = ("kind", "dims", "units", "transforms", "compensation")
_GATE_KEYS = {
    "rectangle": (*_GATE_COMMON, "min", "max"),
    "range": (*_GATE_COMMON, "min", "max"),
    "polygon": (*_GATE_COMMON, "vertices"),
    "ellipse": (*_GATE_COMMON, "mean", "covariance", "distance_square"),
    "quadrant": (*_GATE_COMMON, "cuts", "quadrants"),
    "boolean": ("kind", "and", "or", "not"),
    "ref": ("kind", "ref"),
    "method": (
        "method",
        "dims",
        "units",
        "transforms",
        "compensation",
        "side",
        "args",
        "pool",
        "quadrants",
        "guide",
        "fallback_from",
    ),
}
_ROOT = "root"
#: libyaml's C parser when PyYAML was built with it (about 8x faster); both are the safe loaders
#: and both give every node its line and column.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")
_SIGNS = ("++", "+-", "-+", "--")


# ------------------------------------------------------------------------------------------------
# Reading YAML with positions
# ------------------------------------------------------------------------------------------------
Pos = tuple[int, int] | None


class _Map(dict):
    """A YAML mapping that remembers where it, each key and each value were written."""

    pos: Pos = None

    def __init__(self, pos: Pos = None):
        super().__init__()
        self.pos = pos
        self.kpos: dict[Any, Pos] = {}
        self.vpos: dict[Any, Pos] = {}


class _Seq(list):
    """A YAML sequence that remembers where it and each item were written."""

    def __init__(self, pos: Pos = None):
        super().__init__()
        self.pos = pos
        self.ipos: list[Pos] = []


def _pos(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Reader:
    """Turns a composed (never constructed) YAML node tree into _Map/_Seq/scalars."""

    def __init__(self, report):
        self.report = report  # report(pos, message, suggestion=None)
        self._scalars = yaml.SafeLoader("")
        self._memo: dict[int, Any] = {}  # aliases ('*name') share one converted value

    def convert(self, node: yaml.Node):
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            key = id(node)
            if key not in self._memo:
                self._memo[key] = None  # a recursive alias finds this and stops
                self._memo[key] = self._convert(node)
            elif self._memo[key] is None:
                self.report(_pos(node), "a YAML alias refers to the collection that contains it")
            return self._memo[key]
        return self._convert(node)

    def _convert(self, node: yaml.Node):
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            self.report(_pos(node), f"unsupported YAML tag {node.tag!r}; templates are plain data")
            return None
        if isinstance(node, yaml.MappingNode):
            out = _Map(_pos(node))
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    self.report(
                        _pos(knode),
                        "YAML merge keys ('<<') are not supported in templates; "
                        "write the keys out (anchors with '*name' are fine for whole values)",
                    )
                    continue
                key = self.convert(knode)
                if isinstance(key, (_Map, _Seq)):
                    self.report(_pos(knode), "a key must be a plain name, not a mapping or list")
                    continue
                if key in out:
                    first = out.kpos[key]
                    self.report(
                        _pos(knode),
                        f"duplicate key {key!r} (first written at line {first[0]})",
                        "each name may appear only once in a mapping",
                    )
                    continue
                out[key] = self.convert(vnode)
                out.kpos[key] = _pos(knode)
                out.vpos[key] = _pos(vnode)
            return out
        if isinstance(node, yaml.SequenceNode):
            out = _Seq(_pos(node))
            for item in node.value:
                out.append(self.convert(item))
                out.ipos.append(_pos(item))
            return out
        ctor = self._scalars.yaml_constructors.get(node.tag)
        if ctor is None:
            self.report(_pos(node), f"unsupported YAML tag {node.tag!r}; templates are plain data")
            return None
        try:
            return ctor(self._scalars, node)
        except yaml.YAMLError as exc:
            self.report(_pos(node), f"cannot read value: {exc}")
            return None


# ------------------------------------------------------------------------------------------------
# Building a Template (and collecting every problem on the way)
# ------------------------------------------------------------------------------------------------
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


class _Builder:
    def __init__(self, file: str, base_dir: Path | None):
        self.file = file
        self.base_dir = base_dir
        self.problems: list[TemplateProblem] = []
        self.markers: dict[str, Marker] = {}
        self.marker_pos: dict[str, Pos] = {}
        self.matrices: dict[str, pd.DataFrame] = {}
        self.quadrant_groups: dict[str, list[str]] = {}
        self.ratios: dict[str, tuple[str, str, float, float, float]] = {}

    # -- reporting ---------------------------------------------------------------------------
    def err(
        self, pos: Pos, message: str, suggestion: str | None = None, *, severity: str = "error"
    ) -> None:
        line, col = pos if pos is not None else (None, None)
        prob = _problem(self.file, line, col, message, suggestion, severity)
        if prob not in self.problems:  # a YAML anchor used many times reports once
            self.problems.append(prob)

    def unknown_keys(self, m: _Map, allowed, where: str) -> None:
        for k in m:
            if k not in allowed:
                self.err(
                    m.kpos.get(k),
                    f"unknown key {k!r} in {where}",
                    _did_you_mean(str(k), allowed) or f"allowed: {', '.join(allowed)}",
                )

    def expect(self, value, types, pos: Pos, what: str) -> bool:
        if isinstance(value, bool) and bool not in _as_tuple(types):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            self.err(pos, f"{what} must be {_type_words(types)}, got {_describe(value)}")
        return ok

    def number(self, value, pos: Pos, what: str, *, allow_none: bool = False) -> float | None:
        if value is None and allow_none:
            return None
        if isinstance(value, str) and _YAML12_FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.2 reads 1e5 / 4.0e8 as numbers; PyYAML (1.1) as text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            extra = " or null (open)" if allow_none else ""
            self.err(pos, f"{what} must be a number{extra}, got {_describe(value)}")
            return None
        f = float(value)
        if not math.isfinite(f):
            self.err(pos, f"{what} must be a finite number, got {value!r}")
            return None
        return f

    # -- top level ---------------------------------------------------------------------------
    def build(self, doc) -> Template | None:
        if doc is None:
            self.err(
                None,
                "the template is empty; expected a mapping with name, version, panel and populations",
            )
            return None
        if not isinstance(doc, _Map):
            self.err(
                getattr(doc, "pos", None),
                f"a template must be a mapping (name:, panel:, populations:), got {_describe(doc)}",
            )
            return None
        self.unknown_keys(doc, _TOP_KEYS, "the template")
        for req in ("name", "version", "panel", "populations"):
            if req not in doc:
                self.err(doc.pos, f"missing required key {req!r}")
        fmt = doc.get("format", FORMAT_VERSION)
        if "format" in doc and fmt != FORMAT_VERSION:
            self.err(
                doc.vpos["format"],
                f"unsupported template format {fmt!r}; this cytophen reads format {FORMAT_VERSION}",
            )
        name = doc.get("name", "")
        if "name" in doc and self.expect(name, str, doc.vpos["name"], "name") and not name.strip():
            self.err(doc.vpos["name"], "name must not be empty")
        version = doc.get("version", "1")
        if "version" in doc:
            if isinstance(version, float):
                self.err(
                    doc.vpos["version"],
                    f"version {version!r} was read as a number",
                    f'quote it so YAML keeps it as written: version: "{version}"',
                )
            elif isinstance(version, int) and not isinstance(version, bool):
                version = str(version)
            else:
                self.expect(version, str, doc.vpos["version"], "version")
        description = doc.get("description", "")
        if "description" in doc:
            self.expect(description, str, doc.vpos["description"], "description")
        meta = doc.get("meta", {})
        if "meta" in doc and not self.expect(meta, dict, doc.vpos["meta"], "meta"):
            meta = {}
        if "matrices" in doc:
            self.read_matrices(doc["matrices"], doc.vpos["matrices"])
        compensation = "FCS"
        if "compensation" in doc:
            compensation = self.read_compensation(doc["compensation"], doc.vpos["compensation"])
        if "panel" in doc:
            self.read_panel(doc["panel"], doc.vpos["panel"])
        pops: list[Population] = []
        if "populations" in doc:
            pops = self.read_populations(doc["populations"], doc.vpos["populations"])
        if any(p.severity == "error" for p in self.problems):
            return None
        tmeta = _plain(meta) if isinstance(meta, dict) else {}
        if self.quadrant_groups:
            tmeta = {
                **tmeta,
                "quadrant_gates": {k: list(v) for k, v in self.quadrant_groups.items()},
            }
        try:
            return Template(
                name=str(name),
                populations=pops,
                version=str(version),
                markers={k: m for k, m in self.markers.items() if k not in self.ratios},
                compensation=compensation,
                matrices=self.matrices,
                description=str(description or ""),
                source=self.file,
                meta=tmeta,
            )
        except TemplateError as exc:  # pragma: no cover - the builder checks all of these first
            self.problems.extend(exc.problems)
            return None

    # -- compensation ------------------------------------------------------------------------
    def read_matrices(self, value, pos: Pos) -> None:
        if not self.expect(value, dict, pos, "matrices"):
            return
        for mid, spec in value.items():
            self.read_matrix(str(mid), spec, value.vpos[mid])

    def read_matrix(self, mid: str, spec, pos: Pos) -> None:
        if isinstance(spec, str):
            spec_map = _Map(pos)
            spec_map["csv"] = spec
            spec_map.vpos["csv"] = pos
            spec = spec_map
        if not self.expect(spec, dict, pos, f"matrix {mid!r}"):
            return
        self.unknown_keys(spec, _MATRIX_KEYS, f"matrix {mid!r}")
        if "csv" in spec:
            path = spec["csv"]
            if not self.expect(path, str, spec.vpos["csv"], "csv"):
                return
            p = Path(path)
            if not p.is_absolute() and self.base_dir is not None:
                p = self.base_dir / p
            if not p.exists():
                self.err(
                    spec.vpos["csv"],
                    f"spillover CSV {path!r} not found (looked for {p})",
                    "paths are relative to the template's folder",
                )
                return
            try:
                df = pd.read_csv(p, index_col=0)
                df.index = [str(i).strip() for i in df.index]
                df.columns = [str(c).strip() for c in df.columns]
                df = df.astype(np.float64)
            except Exception as exc:
                self.err(
                    spec.vpos["csv"],
                    f"cannot read spillover CSV {path!r}: {exc}",
                    "expected a header row of detector names and one row per fluorochrome, first column its name",
                )
                return
            if df.shape[0] == 0 or df.shape[1] == 0 or not np.all(np.isfinite(df.to_numpy())):
                self.err(
                    spec.vpos["csv"], f"spillover CSV {path!r} is empty or has non-numeric cells"
                )
                return
            self.matrices[mid] = df
            return
        for req in ("detectors", "matrix"):
            if req not in spec:
                self.err(spec.pos, f"matrix {mid!r} needs 'csv', or 'detectors' and 'matrix'")
                return
        det = spec["detectors"]
        if not self.expect(det, list, spec.vpos["detectors"], "detectors") or not all(
            isinstance(d, str) for d in det
        ):
            if isinstance(det, list):
                self.err(spec.vpos["detectors"], "detectors must be channel names ($PnN)")
            return
        fl = spec.get("fluorochromes", det)
        if "fluorochromes" in spec and (
            not isinstance(fl, list)
            or len(fl) != len(det)
            or not all(isinstance(f, str) for f in fl)
        ):
            self.err(
                spec.vpos["fluorochromes"],
                f"fluorochromes must be {len(det)} names, one per row of the matrix",
            )
            return
        rows = spec["matrix"]
        mpos = spec.vpos["matrix"]
        if (
            not isinstance(rows, list)
            or len(rows) != len(fl)
            or not all(isinstance(r, list) and len(r) == len(det) for r in rows)
        ):
            self.err(
                mpos,
                f"matrix must be {len(fl)} rows of {len(det)} numbers (one row per fluorochrome, one column per detector)",
            )
            return
        vals = []
        for i, r in enumerate(rows):
            row = []
            for j, v in enumerate(r):
                f = self.number(
                    v, rows[i].ipos[j] if isinstance(rows[i], _Seq) else mpos, f"matrix[{i}][{j}]"
                )
                row.append(np.nan if f is None else f)
            vals.append(row)
        self.matrices[mid] = pd.DataFrame(vals, index=list(fl), columns=list(det), dtype=np.float64)

    def read_compensation(self, value, pos: Pos) -> str:
        if isinstance(value, dict):
            self.read_matrix("template", value, pos)
            return "template"
        if not self.expect(value, str, pos, "compensation"):
            return "FCS"
        word = _COMP_WORDS.get(value.strip().lower())
        if word is not None:
            return word
        if value in self.matrices:
            return value
        if value.lower().endswith((".csv", ".tsv", ".txt")):
            self.read_matrix("template", value, pos)
            return "template"
        choices = ["FCS", "keyword", "none", *self.matrices]
        self.err(
            pos,
            f"compensation {value!r} is not FCS, keyword, none, a matrix id or a .csv path",
            _did_you_mean(value, choices),
        )
        return "FCS"

    # -- panel -------------------------------------------------------------------------------
    def read_panel(self, panel, pos: Pos) -> None:
        if not self.expect(panel, dict, pos, "panel"):
            return
        if not panel:
            self.err(pos, "the panel is empty; list every marker the gates use")
        seen_alias: dict[str, str] = {}
        for name, spec in panel.items():
            kpos = panel.kpos[name]
            if not isinstance(name, str):
                self.err(
                    kpos, f"marker name must be text, got {_describe(name)}", f'quote it: "{name}"'
                )
                continue
            if name == _ROOT:
                self.err(kpos, "'root' is reserved; rename the marker")
            if spec is None:
                spec = _Map(panel.vpos[name])
            if not self.expect(spec, dict, panel.vpos[name], f"panel entry {name!r}"):
                continue
            is_ratio = "ratio" in spec
            allowed = (*_MARKER_KEYS, *_RATIO_KEYS) if is_ratio else _MARKER_KEYS
            self.unknown_keys(spec, allowed, f"panel entry {name!r}")
            if is_ratio:
                self.read_ratio(name, spec)
            aliases = spec.get("aliases", [])
            if isinstance(aliases, str):
                aliases = [aliases]
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                self.err(spec.vpos.get("aliases"), f"aliases of {name!r} must be a list of names")
                aliases = []
            for a in [name, *aliases]:
                key = _markers.normalise(a)
                other = seen_alias.get(key)
                if other is not None and other != name:
                    self.err(
                        spec.vpos.get("aliases", kpos),
                        f"{a!r} of marker {name!r} also names marker {other!r}",
                        "a name or alias may belong to one marker only",
                    )
                seen_alias[key] = name
            optional = spec.get("optional", False)
            if "optional" in spec and not self.expect(
                optional, bool, spec.vpos["optional"], "optional"
            ):
                optional = False
            transform = None
            if spec.get("transform") is not None:
                transform = self.read_transform(spec["transform"], spec.vpos["transform"], name)
            self.markers[name] = Marker(
                name=name, aliases=tuple(aliases), transform=transform, optional=bool(optional)
            )
            self.marker_pos[name] = kpos

    def read_ratio(self, name: str, spec: _Map) -> None:
        """A GatingML ``fratio`` dimension: ``A * (numerator - B) / (denominator - C)``."""
        r, rpos = spec["ratio"], spec.vpos["ratio"]
        if not (isinstance(r, list) and len(r) == 2 and all(isinstance(c, str) for c in r)):
            self.err(rpos, f"ratio of {name!r} must be [numerator, denominator] channel names")
            return
        abc = []
        for k, default in (("A", 1.0), ("B", 0.0), ("C", 0.0)):
            v = (
                self.number(spec[k], spec.vpos[k], f"{k} of ratio {name!r}")
                if k in spec
                else default
            )
            if v is None:
                return
            abc.append(v)
        self.ratios[name] = (r[0], r[1], *abc)

    def read_transform(self, spec, pos: Pos, marker: str):
        if isinstance(spec, str):
            kind, params, ppos = spec, {}, {}
        elif isinstance(spec, dict):
            if "kind" not in spec:
                self.err(
                    pos,
                    f"transform of {marker!r} needs 'kind' (one of {', '.join(TRANSFORM_KINDS)})",
                )
                return None
            kind = spec["kind"]
            params = {k: v for k, v in spec.items() if k != "kind"}
            ppos = spec.vpos
        else:
            self.err(
                pos,
                f"transform of {marker!r} must be a kind name or a mapping with 'kind', got {_describe(spec)}",
            )
            return None
        if not isinstance(kind, str):
            self.err(pos, f"transform kind must be a name, got {_describe(kind)}")
            return None
        if kind.strip().lower() in ("none", "raw", "identity"):
            if params:
                self.err(pos, f"transform {kind!r} takes no parameters")
            return None
        canon = _canonical_kind(kind)
        if canon is None:
            self.err(
                pos,
                f"unknown transform {kind!r}",
                _did_you_mean(kind, [*TRANSFORM_KINDS, "none"])
                or f"choose one of {', '.join(TRANSFORM_KINDS)}, none",
            )
            return None
        cls_name, defaults = TRANSFORM_KINDS[canon]
        values = dict(defaults)
        ok = True
        for k, v in params.items():
            k = _PARAM_ALIASES.get(canon, {}).get(k, k)
            if k not in defaults:
                self.err(
                    spec.kpos.get(k, pos) if isinstance(spec, _Map) else pos,
                    f"unknown parameter {k!r} for a {canon} transform",
                    _did_you_mean(str(k), defaults) or f"{canon} takes {', '.join(defaults)}",
                )
                ok = False
                continue
            f = self.number(v, ppos.get(k, pos), f"{canon} parameter {k}")
            if f is None:
                ok = False
            else:
                values[k] = f
        if not ok:
            return None
        return self._make_transform(canon, cls_name, values, pos)

    def _make_transform(self, canon: str, cls_name: str, values: dict, pos: Pos):
        from cytophen import transforms as _t

        cls = getattr(_t, cls_name, None)
        if cls is None:
            self.err(
                pos,
                f"transform {canon!r} is not available in this cytophen build "
                f"(cytophen.transforms has no {cls_name})",
            )
            return None
        try:
            return cls(**values)
        except TransformError as exc:
            self.err(pos, f"invalid {canon} parameters: {exc}")
        except (TypeError, ValueError) as exc:
            self.err(pos, f"invalid {canon} parameters {values}: {exc}")
        return None

    # -- populations -------------------------------------------------------------------------
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
                if not any(p.severity == "error" for p in self.problems):  # never silently dropped
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
        statistics = self.read_statistics(entry, name)
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
        gate, children, operands = self.read_gate(name, gspec, gpos)
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

    def read_flag(self, entry: _Map, key: str) -> bool:
        """A ``true``/``false`` population key (``cleanup``, ``hidden``); absent = false."""
        v = entry.get(key, False)
        if key in entry and not self.expect(v, bool, entry.vpos[key], key):
            return False
        return bool(v)

    def read_percent_of(self, entry: _Map, name: str) -> list[tuple[str, Pos]]:
        if "percent_of" not in entry:
            return []
        v, pos = entry["percent_of"], entry.vpos["percent_of"]
        if isinstance(v, str):
            return [(v, pos)]
        if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
            self.err(pos, f"percent_of of {name!r} must be a list of ancestor population names")
            return []
        return [(a, v.ipos[i]) for i, a in enumerate(v)]

    def read_statistics(self, entry: _Map, name: str) -> list[tuple[str, str]]:
        if "statistics" not in entry:
            return []
        v, pos = entry["statistics"], entry.vpos["statistics"]
        if not isinstance(v, dict):
            self.err(
                pos, f"statistics of {name!r} must be a mapping such as {{median: [CD27, IgD]}}"
            )
            return []
        out = []
        for stat, ms in v.items():
            spos = v.kpos[stat]
            if stat not in STATISTICS:
                self.err(
                    spos,
                    f"unknown statistic {stat!r}",
                    _did_you_mean(str(stat), STATISTICS) or f"choose from {', '.join(STATISTICS)}",
                )
                continue
            if isinstance(ms, str):
                ms = _Seq(v.vpos[stat])
                ms.append(v[stat])
                ms.ipos.append(v.vpos[stat])
            if not isinstance(ms, list) or not all(isinstance(m, str) for m in ms):
                self.err(v.vpos[stat], f"{stat} must list marker names of the panel")
                continue
            for i, m in enumerate(ms):
                if self.marker_known(
                    m, ms.ipos[i] if isinstance(ms, _Seq) else v.vpos[stat], f"statistic {stat}"
                ):
                    out.append((stat, m))
        return out

    def marker_known(self, m: str, pos: Pos, what: str) -> bool:
        if m in self.markers:
            return True
        owner = next(
            (
                k
                for k, mk in self.markers.items()
                if any(_markers.normalise(a) == _markers.normalise(m) for a in (k, *mk.aliases))
            ),
            None,
        )
        if owner is not None:
            self.err(
                pos,
                f"{what}: {m!r} is not a panel marker name",
                f"did you mean {owner!r}? (use the marker name, not an alias)",
            )
        else:
            self.err(
                pos,
                f"{what}: marker {m!r} is not in the panel",
                _did_you_mean(m, list(self.markers)) or "add it to panel:",
            )
        return False

    # -- gates -------------------------------------------------------------------------------
    def read_dims(
        self, name: str, g: _Map, gpos: Pos, n: int | tuple[int, int] | None, key: str = "dims"
    ) -> list[Dim] | None:
        if key not in g:
            self.err(gpos, f"gate of {name!r} needs 'dims' (the markers it is drawn on)")
            return None
        dims, dpos = g[key], g.vpos[key]
        if isinstance(dims, str):
            d = _Seq(dpos)
            d.append(dims)
            d.ipos.append(dpos)
            dims = d
        if not isinstance(dims, list) or not dims or not all(isinstance(d, str) for d in dims):
            self.err(dpos, f"{key} of {name!r} must be a list of panel marker names")
            return None
        ok = True
        for i, d in enumerate(dims):
            ok &= self.marker_known(d, dims.ipos[i], f"gate of {name!r}")
        if len(set(dims)) != len(dims):
            self.err(dpos, f"{key} of {name!r} repeat a marker")
            ok = False
        if n is not None:
            lo, hi = (n, n) if isinstance(n, int) else n
            if not lo <= len(dims) <= hi:
                want = str(lo) if lo == hi else f"{lo} or more" if hi > 99 else f"{lo} to {hi}"
                kind = g.get("kind") or g.get("method")
                self.err(
                    dpos,
                    f"a {kind} gate needs {want} dim{'s' if hi != 1 else ''}, {name!r} has {len(dims)}",
                )
                ok = False
        if not ok:
            return None
        units = g.get("units", "transformed")
        if units not in ("transformed", "raw"):
            self.err(
                g.vpos.get("units"),
                f"units must be 'transformed' (the panel's transforms) or 'raw', got {units!r}",
            )
            return None
        overrides: dict[str, Any] = {}
        if "transforms" in g:  # per-gate transform of some dims, instead of the panel's
            tv, tpos = g["transforms"], g.vpos["transforms"]
            if not isinstance(tv, dict):
                self.err(tpos, f"transforms of {name!r} must map dims to transforms")
                return None
            before = len(self.problems)
            for k, spec in tv.items():
                if k not in dims:
                    self.err(
                        tv.kpos[k],
                        f"transforms of {name!r} names {k!r}, which is not one of its dims",
                    )
                    continue
                overrides[k] = self.read_transform(spec, tv.vpos[k], k)
            if len(self.problems) > before:
                return None
        comp = g.get("compensation")
        comps: list[str | None] = [None] * len(dims)
        if comp is not None:
            cpos = g.vpos["compensation"]
            # one source for all dims, or a list with one per dim (GatingML allows mixing)
            items = comp if isinstance(comp, list) else [comp] * len(dims)
            if len(items) != len(dims):
                self.err(cpos, f"gate compensation of {name!r} must be one source or one per dim")
                return None
            for i, c in enumerate(items):
                ipos = comp.ipos[i] if isinstance(comp, _Seq) else cpos
                if not isinstance(c, str):
                    self.err(ipos, "gate compensation must be FCS, keyword, none or a matrix id")
                    return None
                word = _COMP_WORDS.get(c.strip().lower())
                if word is None and c not in self.matrices:
                    self.err(
                        ipos,
                        f"gate compensation {c!r} is not FCS, keyword, none or a matrix id",
                        _did_you_mean(c, ["FCS", "keyword", "none", *self.matrices]),
                    )
                    return None
                comps[i] = word or c
        out = []
        for d, c in zip(dims, comps):
            tr = None if units == "raw" else self.markers[d].transform
            tr = overrides.get(d, tr)
            if d in self.ratios:
                num, den, a, b, cc = self.ratios[d]
                out.append(RatioDim(d, num, den, a, b, cc, transform=tr, compensation=c))
            else:
                out.append(Dim(d, transform=tr, compensation=c))
        return out

    def read_gate(self, name: str, g: _Map, gpos: Pos):
        """Returns (gate or None, quadrant children or None, boolean operands)."""
        if "method" in g:
            return self.read_method_gate(name, g, gpos)
        if any(k in g for k in ("and", "or", "not")) or g.get("kind") == "boolean":
            gate, operands = self.read_boolean(name, g, gpos)
            return gate, None, operands
        if "ref" in g or g.get("kind") == "ref":
            gate, operands = self.read_ref(name, g, gpos)
            return gate, None, operands
        if "kind" not in g:
            self.err(
                gpos,
                f"gate of {name!r} needs 'kind' ({', '.join(_GATE_KINDS)}), 'method' (data-driven) "
                "or and/or/not (boolean)",
            )
            return None, None, []
        kind = g["kind"]
        if kind == "ellipsoid":
            kind = "ellipse"
        if kind not in _GATE_KEYS or kind == "method":
            self.err(
                g.vpos["kind"],
                f"unknown gate kind {kind!r}",
                _did_you_mean(str(kind), _GATE_KINDS)
                or f"choose one of {', '.join(_GATE_KINDS)}, or 'method:' for a data-driven gate",
            )
            return None, None, []
        self.unknown_keys(g, _GATE_KEYS[kind], f"the {kind} gate of {name!r}")
        try:
            if kind in ("rectangle", "range"):
                return self.read_rectangle(name, g, gpos, kind), None, []
            if kind == "polygon":
                return self.read_polygon(name, g, gpos), None, []
            if kind == "ellipse":
                return self.read_ellipse(name, g, gpos), None, []
            return self.read_quadrant(name, g, gpos)
        except GateError as exc:
            self.err(gpos, f"gate of {name!r}: {exc.problem}")
            return None, None, []

    def read_bounds(self, g: _Map, key: str, n: int, name: str) -> list[float | None] | None:
        if key not in g:
            return [None] * n
        v, pos = g[key], g.vpos[key]
        if n == 1 and not isinstance(v, list):
            f = self.number(v, pos, f"{key} of {name!r}", allow_none=True)
            return None if (f is None and v is not None) else [f]
        if not isinstance(v, list) or len(v) != n:
            self.err(
                pos,
                f"{key} of {name!r} must list {n} bound{'s' if n != 1 else ''} (one per dim; null = open)",
            )
            return None
        out = []
        bad = False
        for i, x in enumerate(v):
            f = self.number(x, v.ipos[i], f"{key}[{i}] of {name!r}", allow_none=True)
            bad |= f is None and x is not None
            out.append(f)
        return None if bad else out

    def read_rectangle(self, name, g, gpos, kind):
        dims = self.read_dims(name, g, gpos, 1 if kind == "range" else (1, 999))
        if dims is None:
            return None
        mins = self.read_bounds(g, "min", len(dims), name)
        maxs = self.read_bounds(g, "max", len(dims), name)
        if mins is None or maxs is None:
            return None
        if "min" not in g and "max" not in g:
            self.err(gpos, f"the {kind} gate of {name!r} needs 'min' and/or 'max'")
            return None
        return RectangleGate(dims, mins, maxs)

    def read_polygon(self, name, g, gpos):
        dims = self.read_dims(name, g, gpos, 2)
        if "vertices" not in g:
            self.err(
                gpos, f"the polygon gate of {name!r} needs 'vertices' ([[x, y], ...], at least 3)"
            )
            return None
        v, vpos = g["vertices"], g.vpos["vertices"]
        if not isinstance(v, list) or len(v) < 3:
            n = len(v) if isinstance(v, list) else 0
            self.err(vpos, f"the polygon of {name!r} needs at least 3 vertices, got {n}")
            return None
        pts = []
        bad = False
        for i, p in enumerate(v):
            if not isinstance(p, list) or len(p) != 2:
                self.err(v.ipos[i], f"vertex {i} of {name!r} must be [x, y], got {_describe(p)}")
                bad = True
                continue
            xy = [self.number(c, p.ipos[j], f"vertex {i} of {name!r}") for j, c in enumerate(p)]
            bad |= any(c is None for c in xy)
            pts.append(xy)
        if bad or dims is None:
            return None
        return PolygonGate(dims, np.array(pts, dtype=np.float64))

    def read_ellipse(self, name, g, gpos):
        dims = self.read_dims(name, g, gpos, (2, 999))
        for req in ("mean", "covariance", "distance_square"):
            if req not in g:
                self.err(
                    gpos,
                    f"the ellipse gate of {name!r} needs 'mean', 'covariance' and 'distance_square'",
                )
                return None
        if dims is None:
            return None
        d = len(dims)
        mean = g["mean"]
        if not isinstance(mean, list) or len(mean) != d:
            self.err(g.vpos["mean"], f"mean of {name!r} must be {d} numbers")
            return None
        mv = [self.number(x, mean.ipos[i], f"mean of {name!r}") for i, x in enumerate(mean)]
        cov = g["covariance"]
        if (
            not isinstance(cov, list)
            or len(cov) != d
            or not all(isinstance(r, list) and len(r) == d for r in cov)
        ):
            self.err(
                g.vpos["covariance"],
                f"covariance of {name!r} must be a {d}x{d} matrix ([[a, b], [b, c]])",
            )
            return None
        cv = [
            [self.number(x, r.ipos[j], f"covariance of {name!r}") for j, x in enumerate(r)]
            for r in cov
        ]
        d2 = self.number(
            g["distance_square"], g.vpos["distance_square"], f"distance_square of {name!r}"
        )
        if any(x is None for x in mv) or any(x is None for r in cv for x in r) or d2 is None:
            return None
        if d2 <= 0:
            self.err(g.vpos["distance_square"], f"distance_square of {name!r} must be > 0")
            return None
        c = np.array(cv)
        if not np.isfinite(np.linalg.cond(c)) or np.linalg.cond(c) > 1e12:
            self.err(
                g.vpos["covariance"], f"covariance of {name!r} is singular (it must be invertible)"
            )
            return None
        return EllipsoidGate(dims, np.array(mv), c, d2)

    def read_quadrant_names(self, name, g, gpos, dims: list[Dim], *, explicit: bool = False):
        """``quadrants: {child: "IgD+ CD27-"}`` -> [(child, sign code, (text, pos), extra)].

        With ``explicit`` (fixed quadrant gates), a child may instead give its own rectangle,
        ``{min: [x0, y0], max: [x1, y1], quadrant: id}`` (GatingML's banded quadrants); its key is
        then ``quadrant`` (default: the child's name) and ``extra["rect"]`` holds the bounds.
        """
        if "quadrants" not in g:
            self.err(
                gpos,
                f"the quadrant gate {name!r} needs 'quadrants' naming its children, "
                'e.g. {naive: "IgD+ CD27-"}',
            )
            return None
        q, qpos = g["quadrants"], g.vpos["quadrants"]
        if not isinstance(q, dict) or not q:
            self.err(
                qpos,
                'quadrants must map each child population to its signs, e.g. naive: "IgD+ CD27-"',
            )
            return None
        out = []
        used: dict[str, str] = {}
        for child, signs in q.items():
            cpos = q.kpos[child]
            if not isinstance(child, str) or child == _ROOT:
                self.err(
                    cpos, f"quadrant child name must be text (not 'root'), got {_describe(child)}"
                )
                continue
            spos = q.vpos[child]
            extra: dict[str, Any] = {}
            if isinstance(
                signs, dict
            ):  # {signs: "IgD+ CD27-", description:, percent_of:, statistics:}
                self.unknown_keys(signs, _QUADRANT_CHILD_KEYS, f"quadrant {child!r}")
                if "description" in signs and self.expect(
                    signs["description"], str, signs.vpos["description"], "description"
                ):
                    extra["description"] = signs["description"]
                if "hidden" in signs:
                    extra["hidden"] = self.read_flag(signs, "hidden")
                if "percent_of" in signs:
                    extra["percent_of"] = self.read_percent_of(signs, child)
                if "statistics" in signs:
                    extra["statistics"] = self.read_statistics(signs, child)
                if explicit and "signs" not in signs and ("min" in signs or "max" in signs):
                    mins = self.read_bounds(signs, "min", len(dims), child)
                    maxs = self.read_bounds(signs, "max", len(dims), child)
                    code = signs.get("quadrant", child)
                    if not isinstance(code, str):
                        self.err(signs.vpos["quadrant"], f"quadrant id of {child!r} must be text")
                        continue
                    if mins is None or maxs is None:
                        continue
                    if code in used:
                        self.err(
                            spos, f"{child!r} and {used[code]!r} name the same quadrant {code!r}"
                        )
                        continue
                    used[code] = child
                    extra["rect"] = (mins, maxs)
                    out.append((child, code, (code, cpos), extra))
                    continue
                if "signs" not in signs:
                    self.err(spos, f"quadrant {child!r} needs 'signs', e.g. signs: \"IgD+ CD27-\"")
                    continue
                spos = signs.vpos["signs"]
                signs = signs["signs"]
            code = self.parse_signs(signs, spos, dims, child)
            if code is None:
                continue
            if code in used:
                self.err(spos, f"{child!r} and {used[code]!r} are the same quadrant ({signs})")
                continue
            used[code] = child
            out.append((child, code, (signs, cpos), extra))
        return out if len(out) == len(q) else None

    def parse_signs(self, signs, pos: Pos, dims: list[Dim], child: str) -> str | None:
        if len(dims) != 2:  # reported once, as a dims problem, by the caller
            return None
        names = [d.channel for d in dims]
        if not isinstance(signs, str):
            self.err(
                pos,
                f'quadrant {child!r} must be written as signs such as "{names[0]}+ {names[1]}-"',
            )
            return None
        toks = signs.split()
        if len(toks) == 1 and toks[0] in _SIGNS:
            return toks[0]
        found: dict[int, str] = {}
        for t in toks:
            m = re.fullmatch(r"(.+?)([+-])", t)
            idx = None
            if m:
                word = _markers.normalise(m.group(1))
                for i, n in enumerate(names):
                    mk = self.markers.get(n)
                    if word in {_markers.normalise(a) for a in (n, *(mk.aliases if mk else ()))}:
                        idx = i
            if idx is None or idx in found:
                self.err(
                    pos,
                    f"cannot read quadrant {child!r} = {signs!r}; expected one sign per dim, "
                    f'e.g. "{names[0]}+ {names[1]}-" (or "+-")',
                )
                return None
            found[idx] = m.group(2)
        if len(found) != 2:
            self.err(
                pos,
                f"quadrant {child!r} = {signs!r} must give a sign for both {names[0]} and {names[1]}",
            )
            return None
        return found[0] + found[1]

    def read_quadrant(self, name, g, gpos):
        dims = self.read_dims(name, g, gpos, (2, 999))  # explicit regions may use 3 (GatingML)
        if dims is None:
            return None, None, []
        children = self.read_quadrant_names(name, g, gpos, dims, explicit=True)
        explicit = children is not None and any("rect" in c[3] for c in children)
        if len(dims) != 2 and not explicit:
            self.err(g.vpos["dims"], f"a quadrant gate needs 2 dims, {name!r} has {len(dims)}")
            return None, None, []
        if children is not None and any("rect" in c[3] for c in children):
            if not all("rect" in c[3] for c in children) or "cuts" in g:
                self.err(
                    g.vpos["quadrants"],
                    f"quadrants of {name!r}: give either 'cuts' and signs for every child, "
                    "or min/max for every child",
                )
                return None, None, []
            rects = {c[1]: c[3].pop("rect") for c in children}
            return QuadrantGate(dims, rects), children, []
        if "cuts" not in g:
            self.err(
                gpos,
                f"the quadrant gate {name!r} needs 'cuts' (one value per dim), or use "
                "'method:' to place it from the data",
            )
            return None, None, []
        cuts, cpos = g["cuts"], g.vpos["cuts"]
        if isinstance(cuts, dict):
            missing = [d.channel for d in dims if d.channel not in cuts]
            if missing or len(cuts) != 2:
                self.err(
                    cpos,
                    f"cuts of {name!r} must give one value for each of {', '.join(d.channel for d in dims)}",
                )
                return None, None, []
            vals = [
                self.number(cuts[d.channel], cuts.vpos[d.channel], f"cut on {d.channel}")
                for d in dims
            ]
        elif isinstance(cuts, list) and len(cuts) == 2:
            vals = [
                self.number(c, cuts.ipos[i], f"cuts[{i}] of {name!r}") for i, c in enumerate(cuts)
            ]
        else:
            self.err(cpos, f"cuts of {name!r} must be two numbers [x, y] or {{marker: value}}")
            return None, None, []
        if any(v is None for v in vals) or children is None:
            return None, None, []
        gate = QuadrantGate.from_cuts(dims, vals[0], vals[1])
        return gate, children, []

    def _check_method_shape(self, name, method, dims, side, quadrants: bool, pos: Pos) -> None:
        """Quadrants need a method that places them; a quadrant method needs its children named."""
        kind = _method_kind(method)
        if kind is None:
            return
        if kind == "quadrant" and not quadrants:
            self.err(
                pos,
                f"method {method!r} of {name!r} places quadrants: name them with 'quadrants:'",
                'e.g. quadrants: {naive: "IgD+ CD27-", ...}',
            )
        elif quadrants and kind == "other":
            self.err(
                pos,
                f"method {method!r} of {name!r} does not place quadrants; remove 'quadrants:' "
                "or use method: quadrant",
            )
        elif kind == "cut" and len(dims) >= 2 and not quadrants and side is None:
            self.err(
                pos,
                f"{method!r} on {len(dims)} dims of {name!r} needs a side with one sign per dim "
                f"(e.g. side: \"{'+' * len(dims)}\") or 'quadrants:'",
            )

    def read_boolean(self, name, g, gpos):
        self.unknown_keys(g, _GATE_KEYS["boolean"], f"the boolean gate of {name!r}")
        ops = [k for k in ("and", "or", "not") if k in g]
        if len(ops) != 1:
            self.err(
                gpos, f"a boolean gate takes exactly one of and/or/not, {name!r} has {len(ops)}"
            )
            return None, []
        op = ops[0]
        v, vpos = g[op], g.vpos[op]
        items = v if isinstance(v, list) else [v]
        ipos = v.ipos if isinstance(v, _Seq) else [vpos]
        operands: list[tuple[str, bool]] = []
        refs: list[tuple[str, Pos]] = []
        for item, ip in zip(items, ipos):
            comp = False
            ref = item
            if isinstance(item, dict) and set(item) == {"not"} and isinstance(item["not"], str):
                comp, ref = True, item["not"]
            elif isinstance(item, str) and item.lower().startswith("not "):
                comp, ref = True, item[4:].strip()
            if not isinstance(ref, str) or not ref:
                self.err(
                    ip,
                    f"operand of {name!r} must be a population name or {{not: name}}, got {_describe(item)}",
                )
                continue
            operands.append((ref, comp))
            refs.append((ref, ip))
        if len(operands) != len(items):
            return None, refs
        if op == "not" and len(operands) != 1:
            self.err(vpos, f"'not' takes exactly one population, {name!r} gives {len(operands)}")
            return None, refs
        if op in ("and", "or") and len(operands) < 2:
            self.err(
                vpos,
                f"'{op}' needs at least two populations, {name!r} gives {len(operands)}",
                "to exclude one population within the parent, write not: <name>",
            )
            return None, refs
        return BooleanGate(op, operands), refs

    def read_ref(self, name, g, gpos):
        """``ref: pop`` or ``ref: [pop, {population: pop, dims: [m, ...]}, ...]``."""
        self.unknown_keys(g, _GATE_KEYS["ref"], f"the ref gate of {name!r}")
        if "ref" not in g:
            self.err(gpos, f"the ref gate of {name!r} needs 'ref' (the population(s) whose gate to reuse)")
            return None, []
        v, vpos = g["ref"], g.vpos["ref"]
        items = v if isinstance(v, list) else [v]
        ipos = v.ipos if isinstance(v, _Seq) else [vpos]
        if not items:
            self.err(vpos, f"ref of {name!r} lists no population")
            return None, []
        refs: list[tuple[str, tuple[str, ...] | None]] = []
        where: list[tuple[str, Pos]] = []
        for item, ip in zip(items, ipos):
            dims = None
            target = item
            if isinstance(item, dict):
                self.unknown_keys(item, ("population", "dims"), f"a reference of {name!r}")
                target = item.get("population")
                if "dims" in item:
                    dv = item["dims"]
                    dv = [dv] if isinstance(dv, str) else dv
                    if not isinstance(dv, list) or not dv or not all(isinstance(x, str) for x in dv):
                        self.err(
                            item.vpos.get("dims", ip),
                            f"dims of a reference of {name!r} must list marker names of the panel",
                        )
                        continue
                    dims = tuple(dv)
            if not isinstance(target, str) or not target:
                self.err(
                    ip,
                    f"a reference of {name!r} must be a population name or "
                    f"{{population: name, dims: [...]}}, got {_describe(item)}",
                )
                continue
            refs.append((target, dims))
            where.append((target, ip))
        if len(refs) != len(items):
            return None, where
        try:
            return RefGate(refs), where
        except GateError as exc:
            self.err(vpos, f"gate of {name!r}: {exc.problem}")
            return None, where

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

    def read_method_gate(self, name, g, gpos):
        self.unknown_keys(g, _GATE_KEYS["method"], f"the data-driven gate of {name!r}")
        method = g["method"]
        mpos = g.vpos["method"]
        if not isinstance(method, str) or not method.strip():
            self.err(mpos, f"method of {name!r} must be the name of a data-driven method")
            return None, None, []
        registry = _registry()
        if registry is not None:
            methods, check = registry
            if method not in methods:
                self.err(
                    mpos,
                    f"unknown data-driven method {method!r}",
                    _did_you_mean(method, list(methods))
                    or f"available: {', '.join(sorted(methods))}",
                )
                method_ok = False
            else:
                method_ok = True
        else:
            method_ok, check = False, None
        quadrants = "quadrants" in g
        dims = self.read_dims(name, g, gpos, 2 if quadrants else None)
        args = g.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.err(g.vpos.get("args"), f"args of {name!r} must be a mapping of argument: value")
            args = None
        side = g.get("side")
        if side is not None:
            if quadrants:
                self.err(g.vpos["side"], f"{name!r} names quadrants, so it takes no 'side'")
            elif not isinstance(side, str) or not side or set(side) - {"+", "-"}:
                self.err(
                    g.vpos["side"],
                    f"side of {name!r} must be '+' or '-' (one sign per dim, e.g. '+-'), got {side!r}",
                )
            elif dims is not None and len(side) != len(dims):
                self.err(
                    g.vpos["side"],
                    f"side {side!r} of {name!r} has {len(side)} sign(s) for {len(dims)} dim(s)",
                )
        pool = g.get("pool")
        if pool is not None and not isinstance(pool, str):
            self.err(g.vpos["pool"], f"pool of {name!r} must name a manifest column")
        if method_ok and check is not None and isinstance(args, dict):
            try:
                msgs = list(check(method, _plain(args)))
            except Exception as exc:  # a checker bug must not hide the other problems
                msgs = [f"cannot check arguments: {exc}"]
            for msg in msgs:
                self.err(g.vpos.get("args", mpos), f"{method} args of {name!r}: {msg}")
        if method_ok and dims is not None:
            self._check_method_shape(name, method, dims, side, quadrants, mpos)
        children = None
        if quadrants and dims is not None:
            children = self.read_quadrant_names(name, g, gpos, dims)
            if children is None:
                return None, None, []
        if dims is None or args is None:
            return None, None, []
        guide = ()
        if "guide" in g:
            guide = self.read_dims(name, g, gpos, None, key="guide")
            if guide is None:
                return None, None, []
            both = {d.label for d in guide} & {d.label for d in dims}
            if both:
                self.err(g.vpos["guide"], f"guide of {name!r} repeats its dims ({', '.join(sorted(both))})")
                return None, None, []
        fallback_from, operands = g.get("fallback_from"), []
        if fallback_from is not None:
            if not isinstance(fallback_from, str) or not fallback_from:
                self.err(
                    g.vpos["fallback_from"],
                    f"fallback_from of {name!r} must name a population placed earlier",
                )
                return None, None, []
            operands = [(fallback_from, g.vpos["fallback_from"])]
        gate = DataDrivenGate(
            dims,
            method,
            params=_plain(args),
            side=side,
            pool=pool,
            guide=guide,
            fallback_from=fallback_from,
        )
        return gate, children, operands


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def _parse(path: str | Path | None, text: str | None = None) -> tuple[_Builder, Template | None]:
    file = str(path) if path is not None else "<template>"
    if text is None:
        p = Path(path)
        if not p.exists():
            raise TemplateError(f"template file not found: {p}", file=file)
        _check_size(p.stat().st_size, file)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TemplateError(
                [TemplateProblem(file, None, None, f"not UTF-8 text: {exc}")]
            ) from None
    _check_size(len(text), file)
    base = Path(path).resolve().parent if path is not None else None
    b = _Builder(file, base)
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is not None and "&" in text and _expanded_values(node) > MAX_TEMPLATE_VALUES:
            b.err(
                None,
                f"YAML aliases ('*name') expand this template to more than "
                f"{MAX_TEMPLATE_VALUES:,} values",
                "write the values out, or refer to an anchor fewer times",
            )
            return b, None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark is not None else None
        b.err(
            pos,
            f"not valid YAML: {exc.problem or exc.context}",
            "check indentation, colons and quotes",
        )
        return b, None
    except yaml.YAMLError as exc:
        b.err(None, f"not valid YAML: {exc}")
        return b, None
    doc = _Reader(b.err).convert(node) if node is not None else None
    return b, b.build(doc)


#: Largest template accepted, in bytes (characters for text given directly): the shipped templates
#: are under 20 kB; 1 MiB holds some 10 000 populations.
MAX_TEMPLATE_BYTES = 1 << 20
#: Most values (mappings, lists and scalars) a template may hold once its YAML aliases are expanded.
MAX_TEMPLATE_VALUES = 1_000_000


def _check_size(n: int, file: str) -> None:
    if n > MAX_TEMPLATE_BYTES:
        raise TemplateError(
            [
                TemplateProblem(
                    file,
                    None,
                    None,
                    f"template is {n / 2**20:.1f} MiB; at most {MAX_TEMPLATE_BYTES >> 20} MiB "
                    "is read (a gating template is a few kB)",
                )
            ]
        )


def _expanded_values(root: yaml.Node) -> int:
    """How many values the node tree holds with every alias expanded, counted without expanding
    (each distinct node once; only anchors, ``&name``, make a node count more than once); stops
    counting above :data:`MAX_TEMPLATE_VALUES`."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if isinstance(node, yaml.MappingNode):
            children = [x for pair in node.value for x in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            size[key] = 1
            continue
        if closing:
            open_.discard(key)
            size[key] = 1 + sum(size.get(id(c), 0) for c in children)  # 0: a recursive alias
            if size[key] > MAX_TEMPLATE_VALUES:
                return size[key]
        elif key not in size and key not in open_:
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children)
    return size[id(root)]


def load_yaml_template(path: str | Path, *, text: str | None = None) -> Template:
    """Load a cytophen YAML template.

    Parameters
    ----------
    path
        The ``.yaml`` file (relative CSV paths inside it are resolved against its folder).
    text
        The YAML text, if already read (``path`` is then only used in messages and for CSV paths).

    Returns
    -------
    Template
        Populations in an order where parents and boolean operands come first.

    Raises
    ------
    TemplateError
        With *every* problem found, each with file, line and column.

    Examples
    --------
    >>> t = load_yaml_template("gating_templates/bcell.yaml")   # doctest: +SKIP
    >>> t.names[:3]                                              # doctest: +SKIP
    ['lymphocytes', 'singlets', 'live']
    """
    b, t = _parse(path, text)
    errors = [p for p in b.problems if p.severity == "error"]
    if errors or t is None:
        raise TemplateError(
            errors or b.problems or [TemplateProblem(b.file, None, None, "invalid template")]
        )
    return t


def validate_template(
    path: str | Path, sample=None, *, text: str | None = None
) -> list[TemplateProblem]:
    """Every problem of a template (and, with ``sample``, of applying it to that file).

    Parameters
    ----------
    path
        The ``.yaml`` template.
    sample
        Optional :class:`~cytophen.io.sample.Sample` or FCS path: every panel marker is resolved
        against it (a missing optional marker is a warning), and the compensation source is checked.
    text
        The YAML text, if already read.

    Returns
    -------
    list of TemplateProblem
        Empty when the template is valid. ``severity`` is ``'error'`` or ``'warning'``.
    """
    b, t = _parse(path, text)
    problems = list(b.problems)
    if sample is not None and t is not None:
        problems.extend(check_sample(t, sample, positions=b.marker_pos, file=b.file))
    return problems


def check_sample(
    template: Template, sample, *, positions: dict | None = None, file: str | None = None
) -> list[TemplateProblem]:
    """Resolve every panel marker of ``template`` against ``sample``.

    Parameters
    ----------
    template
        Any Template (markers without a panel entry, e.g. from GatingML, are resolved by name).
    sample
        A :class:`~cytophen.io.sample.Sample`, or the path of an FCS file to read.
    positions
        Panel marker name -> (line, column) in the template file, for the problems' locations.
    file
        The template file named in the problems (default: ``template.source``).

    Returns
    -------
    list of TemplateProblem
        One per marker that is missing or ambiguous in the file (``'warning'`` for optional
        markers, whose populations will be reported as not measured), and one when the template
        needs the file's spillover keyword and the file has none.
    """
    from cytophen.io.sample import Sample

    if not isinstance(sample, Sample):
        from cytophen import read_fcs

        sample = read_fcs(sample)
    positions = positions or {}
    file = file or template.source or "<template>"
    out: list[TemplateProblem] = []
    used = _used_markers(template)
    cleanup_only = used - _used_markers(template, cleanup=False)
    panel = dict(template.markers)
    for name in sorted(
        used - set(panel)
    ):  # gated channels without a panel entry (GatingML, FlowJo)
        panel[name] = Marker(name)
    for name, m in panel.items():
        try:
            _markers.resolve(sample.channels, sample.markers, name, m.aliases, path=sample.path)
        except MarkerError as exc:
            line, col = positions.get(name) or (None, None)
            if m.optional and getattr(exc, "absent", False):  # ambiguous is an error, optional or not
                msg = f"{exc} (optional: populations gated on it will be reported as not measured)"
                out.append(_problem(file, line, col, msg, None, "warning"))
            elif name in cleanup_only and getattr(exc, "absent", False):
                steps = [p.name for p in template.populations if p.cleanup and name in _gated_on(p)]
                msg = f"{exc} (clean-up step(s) {', '.join(steps)} will be skipped on this file)"
                out.append(_problem(file, line, col, msg, None, "warning"))
            else:
                hint = (
                    None
                    if name in used
                    else "it is not used by any gate; remove it or mark it optional: true"
                )
                out.append(_problem(file, line, col, str(exc), hint, "error"))
    if template.compensation == "keyword" and sample.spillover is None:
        out.append(
            _problem(
                file,
                None,
                None,
                f"{sample.path or 'sample'}: compensation: keyword, but the file has no "
                "spillover keyword ($SPILLOVER/SPILL/$COMP)",
                "use compensation: FCS, none or a CSV",
                "error",
            )
        )
    return out


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


# ------------------------------------------------------------------------------------------------
# Dumping
# ------------------------------------------------------------------------------------------------
def _transform_doc(t) -> dict | None:
    if t is None:
        return None
    d = dict(t.to_dict())
    kind = _canonical_kind(str(d.pop("kind", "")))
    if kind is None:
        raise TemplateError(f"transform {t.to_dict()!r} cannot be written to YAML (unknown kind)")
    out = {"kind": kind}
    for k in TRANSFORM_KINDS[kind][1]:
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


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _problem(file, line, col, message, suggestion, severity) -> TemplateProblem:
    try:
        return TemplateProblem(file, line, col, message, suggestion, severity=severity)
    except TypeError:  # pragma: no cover - errors.py without severity
        return TemplateProblem(
            file, line, col, ("warning: " if severity == "warning" else "") + message, suggestion
        )


def _method_kind(method: str) -> str | None:
    """'quadrant' (places named quadrants), 'cut' (a 1-D cut method), 'other', or None if unknown."""
    try:
        from cytophen.datadriven import CutEstimator, get_method

        cls = get_method(method)
    except Exception:  # registry not built, or method unknown (reported elsewhere)
        return None
    if getattr(cls, "name", "") == "quadrant":
        return "quadrant"
    return "cut" if issubclass(cls, CutEstimator) else "other"


def _used_markers(template: Template, *, cleanup: bool = True) -> set[str]:
    """Channels the gates and statistics of ``template`` use (matrix fluorochromes excluded;
    without the gates of clean-up steps unless ``cleanup``)."""
    fluor = {str(i) for m in template.matrices.values() for i in m.index} - {
        str(c) for m in template.matrices.values() for c in m.columns
    }
    out: set[str] = set()
    for p in template.populations:
        if cleanup or not p.cleanup:
            out.update(n for n in _gated_on(p) if n not in fluor)
        out.update(m for _, m in p.report.statistics)
    return out


def _gated_on(p) -> list[str]:
    """The channel names population ``p``'s own gate reads."""
    names: list[str] = []
    for d in getattr(p.gate, "dims", ()):
        names += [d.numerator, d.denominator] if isinstance(d, RatioDim) else [d.channel]
    return names


def _registry():
    """``(available_methods(), check_params)`` of :mod:`cytophen.datadriven`, or None if not built."""
    try:
        from cytophen import datadriven as _dd
    except ImportError:  # pragma: no cover
        return None
    avail = getattr(_dd, "available_methods", None)
    if avail is None:
        return None
    try:
        methods = dict(avail())
    except Exception:  # pragma: no cover
        return None
    return methods, getattr(_dd, "check_params", None)


def _canonical_kind(kind: str) -> str | None:
    k = kind.strip().lower().replace("-", "_")
    if k in TRANSFORM_KINDS:
        return k
    return _TRANSFORM_ALIASES.get(k)


def _did_you_mean(word: str, choices) -> str | None:
    choices = [str(c) for c in choices]
    low = {c.lower(): c for c in choices}
    if word.lower() in low and low[word.lower()] != word:
        return f"did you mean {low[word.lower()]!r}?"
    m = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not m:
        m = [low[x] for x in difflib.get_close_matches(word.lower(), list(low), n=1, cutoff=0.6)]
    return f"did you mean {m[0]!r}?" if m else None


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


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _type_words(types) -> str:
    words = {
        str: "text",
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        dict: "a mapping",
        list: "a list",
    }
    return " or ".join(words.get(t, t.__name__) for t in _as_tuple(types))


def _describe(v) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v!r}"
