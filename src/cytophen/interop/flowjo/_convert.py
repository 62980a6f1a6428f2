"""One workspace sample's gate tree → a :class:`~cytophen.template.Template`.

FlowJo stores gate coordinates in data units (ellipses in its 256 x 256 display space) and one
transform per parameter and sample. Each gate becomes a cytophen gate on that parameter's transform,
with its coordinates mapped through it (so the gate is drawn, and evaluated, where FlowJo draws it).

Parameter names: FlowJo writes ``/`` of a channel name as ``_`` (``v-450/50-B-A`` is
``v-450_50-B-A``) and names a compensated channel ``<prefix><detector><suffix>`` after the sample's
spillover matrix (``Comp-FITC-A``; files FlowJo exported already compensated carry ``FJComp-``
channels of their own, which are plain channels here). The FCS channel behind each name comes from
the sample's own ``$PnN`` keywords stored in the workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytophen.errors import CytophenError, TemplateError
from cytophen.gates import BooleanGate, Dim, PolygonGate, RectangleGate
from cytophen.interop.flowjo._wsp import Node, WspSample, _fail
from cytophen.template import Marker, Population, Template
from cytophen.transforms import (
    AsinhTransform,
    FlowJoBiexTransform,
    FlowJoLogTransform,
    LinearTransform,
    LogicleTransform,
    Transform,
)

#: Vertices of the polygon a FlowJo ellipse becomes (FlowJo evaluates ellipses as polygons too).
ELLIPSE_VERTICES = 128
#: FlowJo's display space: 256 bins over each axis' transformed range.
_DISPLAY = 256.0


def flowjo_name(channel: str) -> str:
    """The name FlowJo gives an FCS channel (``/`` becomes ``_``)."""
    return str(channel).replace("/", "_")


def transform_of(kind: str, a: dict[str, float], where: str, cache: dict) -> Transform:
    """The cytophen transform of a FlowJo ``<transforms:kind ...>`` (shared through ``cache``)."""
    try:
        if kind == "linear":
            key = ("linear", a.get("maxRange", 262144.0), a.get("minRange", 0.0))
            make = lambda: LinearTransform(T=key[1], A=key[2])  # noqa: E731
        elif kind == "log":
            key = ("log", a.get("offset", 1.0), a.get("decades", 4.5))
            make = lambda: FlowJoLogTransform(offset=key[1], decades=key[2])  # noqa: E731
        elif kind == "fasinh":
            key = ("fasinh", a["T"], a["M"], a["A"])
            make = lambda: AsinhTransform(T=key[1], M=key[2], A=key[3])  # noqa: E731
        elif kind == "logicle":
            key = ("logicle", a["T"], a["W"], a["M"], a["A"])
            make = lambda: LogicleTransform(T=key[1], W=key[2], M=key[3], A=key[4])  # noqa: E731
        elif kind == "biex":
            if int(a.get("length", 256)) != 256:
                raise TemplateError(
                    f"{where}: biex with length={a.get('length')}; cytophen reads FlowJo's biex "
                    "with length 256 (FlowJo 10's default)"
                )
            key = ("biex", a.get("neg", 0.0), a["width"], a["pos"], a["maxRange"])
            make = lambda: FlowJoBiexTransform(  # noqa: E731
                negative=key[1], width=key[2], positive=key[3], max_value=key[4]
            )
        else:
            raise TemplateError(
                f"{where}: FlowJo transform {kind!r} is not supported; cytophen reads "
                "linear, log, biex, logicle and ArcSinh (fasinh) — set the channel's transform "
                "to one of these in FlowJo"
            )
    except KeyError as exc:
        raise TemplateError(f"{where}: {kind} transform lacks attribute {exc.args[0]!r}") from None
    if key not in cache:
        try:
            cache[key] = make()
        except CytophenError as exc:
            raise TemplateError(f"{where}: invalid {kind} transform: {exc}") from None
    return cache[key]


def _unique_names(paths: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Population names for gate ids ``('root', ..., name)``: the shortest unique trailing path."""
    by_tail: dict[tuple[str, ...], int] = {}
    longest = max((len(p) for p in paths), default=1)
    for k in range(1, longest):
        for gid in paths:
            tail = gid[1:][-k:]
            by_tail[tail] = by_tail.get(tail, 0) + 1
    out: dict[tuple[str, ...], str] = {}
    for gid in paths:
        rel = gid[1:]
        for k in range(1, len(rel) + 1):
            if by_tail[rel[-k:]] == 1 or k == len(rel):
                out[gid] = "/".join(rel[-k:])
                break
    return out


class _Dims:
    """FlowJo parameter names of one sample → :class:`Dim` (FCS channel, transform, compensation)."""

    def __init__(self, s: WspSample, compensation: str, cache: dict, src: str):
        self.s = s
        self.src = src
        self.cache = cache
        self.mode = compensation
        self.fcs: dict[str, str] = {}  # FlowJo name -> FCS $PnN, where they differ
        self.pnn: set[str] = set()
        kw = s.keywords
        n = 1
        while f"$P{n}N" in kw:
            pnn = kw[f"$P{n}N"]
            self.pnn.add(pnn)
            if flowjo_name(pnn) != pnn:
                self.fcs[flowjo_name(pnn)] = pnn
            n += 1
        self.detectors = set(s.matrix.detectors) if s.matrix is not None else set()
        self._dims: dict[str, tuple[Dim, Any]] = {}

    def channel(self, fj: str) -> str:
        return self.fcs.get(fj, fj)

    def alias(self, fj: str, aliases: dict[str, tuple[str, ...]]) -> None:
        """The other spelling of channel ``fj`` a file may use: FlowJo's own (when the keywords
        say the file's differs), or, when no keyword names it, each ``_`` as ``/``."""
        if fj in self.fcs:
            aliases[self.fcs[fj]] = (fj,)
        elif "_" in fj and fj not in self.pnn:
            aliases[fj] = (fj.replace("_", "/"),)

    def split(self, name: str) -> tuple[str, bool]:
        """(FlowJo name of the channel, whether the name is its compensated parameter)."""
        m = self.s.matrix
        if m is not None and name.startswith(m.prefix) and name.endswith(m.suffix):
            base = name[len(m.prefix) : len(name) - len(m.suffix)]
            if base in self.detectors:
                return base, True
        return name, False

    def transform(self, name: str, where: str) -> Transform | None:
        base, _ = self.split(name)
        spec = self.s.transforms.get(name) or self.s.transforms.get(base)
        if spec is None:
            return None
        return transform_of(spec[0], spec[1], f"{where}, parameter {name!r}", self.cache)

    def dim(self, name: str, where: str) -> tuple[Dim, Transform | None]:
        if name not in self._dims:
            base, compensated = self.split(name)
            comp = None
            if not compensated and base in self.detectors:
                comp = "uncompensated"  # gated on the detector as acquired
            t = self.transform(name, where)
            self._dims[name] = (Dim(self.channel(base), transform=t, compensation=comp), t)
        return self._dims[name]


def _apply(t: Transform | None, values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v if t is None else np.asarray(t.apply(v), dtype=np.float64)


def _ellipse_polygon(node: Node, transforms: list, where: str, src: str) -> np.ndarray:
    """The polygon FlowJo's ellipse (foci and edge points in display bins) makes in the transformed
    space: centre between the foci, major axis along them, its half-length the farthest edge point,
    the minor half-length from the focal distance."""
    scales = []
    for t, d in zip(transforms, node.dims):
        if t is None:
            raise _fail(
                src,
                node.line,
                f"ellipse {where!r} is on parameter {d!r}, which has no transform in the workspace; "
                "cytophen cannot tell where FlowJo drew it",
            )
        scales.append(4096.0 if isinstance(t, FlowJoBiexTransform) else 1.0)
    foci = node.foci / _DISPLAY
    edges = node.edges / _DISPLAY
    centre = foci.mean(axis=0)
    axis = foci[1] - foci[0]
    c = float(np.hypot(*axis)) / 2.0
    u = axis / (2.0 * c) if c > 0 else np.array([1.0, 0.0])
    v = np.array([-u[1], u[0]])
    a = float(np.max(np.hypot(*(edges - centre).T)))
    if not a > c:
        raise _fail(src, node.line, f"ellipse {where!r}: its edge points lie inside its foci")
    b = float(np.sqrt(a * a - c * c))
    theta = 2.0 * np.pi * np.arange(ELLIPSE_VERTICES) / ELLIPSE_VERTICES
    pts = centre + np.outer(a * np.cos(theta), u) + np.outer(b * np.sin(theta), v)
    return pts * np.asarray(scales)


def sample_template(
    s: WspSample,
    *,
    source: Path,
    compensation: str = "workspace",
    name: str | None = None,
    cache: dict | None = None,
) -> Template:
    """The template of workspace sample ``s``: its own gates, transforms and compensation."""
    src = str(source)
    if s.error is not None:
        raise s.error
    cache = {} if cache is None else cache
    dims = _Dims(s, compensation, cache, src)
    matrices: dict[str, pd.DataFrame] = {}
    aliases: dict[str, tuple[str, ...]] = {}
    if s.matrix is None:
        default_comp = "uncompensated"  # FlowJo applied none
    elif compensation == "workspace":
        det = [dims.channel(d) for d in s.matrix.detectors]
        for d in s.matrix.detectors:
            dims.alias(d, aliases)
        matrices[s.matrix.name] = pd.DataFrame(s.matrix.values.copy(), index=det, columns=det)
        default_comp = s.matrix.name
    else:
        default_comp = "keyword"

    ids = [n.path for n in s.nodes]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise _fail(src, None, f"sample {s.name!r} has two gates at {'/'.join(dup)!r}")
    names = _unique_names(ids)
    by_fj_path = {"/".join(gid[1:]): gid for gid in ids}
    pops: list[Population] = []
    paths_meta: dict[str, str] = {}
    counts: dict[str, int] = {}
    for node in s.nodes:
        gid = node.path
        pname = names[gid]
        parent = None if len(gid) == 2 else names[gid[:-1]]
        fj_path = "/".join(gid)
        where = fj_path
        desc = f"FlowJo gate {gid[-1]!r} at {fj_path}"
        try:
            if node.kind in ("and", "or", "not"):
                ops = []
                for dep in node.dependents:
                    ref = by_fj_path.get(dep)
                    if ref is None:
                        raise _fail(
                            src, node.line, f"boolean gate {where!r} refers to unknown gate {dep!r}"
                        )
                    ops.append((names[ref], False))
                if node.kind == "not" and len(ops) != 1:
                    raise _fail(
                        src, node.line, f"NOT gate {where!r} needs exactly one gate, has {len(ops)}"
                    )
                if node.kind != "not" and len(ops) == 1:
                    ops = ops * 2  # FlowJo allows an AND/OR of one gate: that gate
                if not ops:
                    raise _fail(src, node.line, f"boolean gate {where!r} refers to no gate")
                gate = BooleanGate(node.kind, ops)
            else:
                made = [dims.dim(d, where) for d in node.dims]
                gdims = tuple(m[0] for m in made)
                ts = [m[1] for m in made]
                for fj in node.dims:
                    dims.alias(dims.split(fj)[0], aliases)
                if node.kind == "rectangle":
                    gate = RectangleGate(
                        gdims,
                        tuple(
                            None if v is None else _apply(t, [v])[0] for t, v in zip(ts, node.mins)
                        ),
                        tuple(
                            None if v is None else _apply(t, [v])[0] for t, v in zip(ts, node.maxs)
                        ),
                    )
                elif node.kind == "polygon":
                    if len(gdims) != 2 or node.vertices.shape[1] != 2:
                        raise _fail(src, node.line, f"polygon {where!r} must have 2 dimensions")
                    v = np.column_stack([_apply(t, node.vertices[:, j]) for j, t in enumerate(ts)])
                    gate = PolygonGate(gdims, v)
                else:  # ellipse
                    if len(gdims) != 2:
                        raise _fail(src, node.line, f"ellipse {where!r} must have 2 dimensions")
                    gate = PolygonGate(gdims, _ellipse_polygon(node, ts, where, src))
        except TemplateError:
            raise
        except CytophenError as exc:
            raise _fail(src, node.line, f"gate {where!r}: {exc}") from exc
        if not node.inside:
            inside = f"{pname} [inside]"
            pops.append(Population(inside, parent, gate, description=f"{desc}, events inside"))
            gate = BooleanGate("not", [(inside, False)])
            desc += " (events outside the drawn gate)"
        pops.append(Population(pname, parent, gate, description=desc))
        paths_meta[pname] = fj_path
        if node.count is not None:
            counts[pname] = node.count

    from cytophen.interop.gatingml import dependency_order

    pops = dependency_order(pops, src)
    stem = Path(src).stem
    return Template(
        name=name or stem,
        populations=pops,
        markers={ch: Marker(ch, aliases=a) for ch, a in aliases.items()},
        compensation=default_comp,
        matrices=matrices,
        description=f"converted from FlowJo workspace {Path(src).name} (sample {s.name!r})",
        source=src,
        meta={
            "format": "flowjo",
            "file": src,
            "sample": s.name,
            "sample_id": s.sample_id,
            "flowjo_paths": paths_meta,
            "flowjo_counts": counts,
            "flowjo_total": s.count,
            "markers": _workspace_markers(s.keywords),
        },
    )


def _workspace_markers(kw: dict[str, str]) -> dict[str, str]:
    """``{$PnN: $PnS}`` as the workspace's keywords say (FlowJo keeps them, and lets users add
    them, for files without ``$PnS``)."""
    out = {}
    n = 1
    while f"$P{n}N" in kw:
        m = kw.get(f"$P{n}S", "")
        if m and m.strip():
            out[kw[f"$P{n}N"]] = m.strip()
        n += 1
    return out
