"""Reading a FlowJo 10 workspace (.wsp) with lxml, once, into plain records.

Only what gating needs is read: groups and their samples, and per sample its data set URI,
keywords, transforms (one per parameter), spillover matrix and gate tree. Gate coordinates stay as
FlowJo stores them (data units; ellipses in FlowJo's 256 x 256 display space); turning them into
cytophen gates is :mod:`cytophen.interop.flowjo._convert`'s job.

What this reader refuses, naming the file (and line) and what is supported instead: FlowJo 9 (and
older) workspaces, BD FACSDiva experiment XML, any other XML, gate and transform types outside the
FlowJo 10 set below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from cytophen.errors import TemplateError

GATING_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATATYPE_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"

_G = f"{{{GATING_NS}}}"
_T = f"{{{TRANSFORMS_NS}}}"
_D = f"{{{DATATYPE_NS}}}"

#: What cytophen reads, for refusals.
SUPPORTED = (
    'cytophen reads FlowJo 10 workspaces (.wsp saved by FlowJo 10.x, <Workspace version="20.0">) '
    "and GatingML 2.0 files"
)
_BOOLEAN_TAGS = {"AndNode": "and", "OrNode": "or", "NotNode": "not"}


@dataclass
class Matrix:
    """A ``<transforms:spilloverMatrix>``: FlowJo names compensated parameters ``prefix + detector
    + suffix`` (``Comp-FITC-A``)."""

    name: str
    prefix: str
    suffix: str
    detectors: list[str]
    values: np.ndarray  # rows: spilling detector, columns: receiving detector


@dataclass
class Node:
    """One gate of a sample's tree, as stored (coordinates in data units; ellipse foci and edge
    points in FlowJo's 256-bin display space)."""

    path: tuple[str, ...]  # ('root', ..., name)
    kind: str  # rectangle, polygon, ellipse, and, or, not
    dims: tuple[str, ...] = ()
    mins: tuple = ()
    maxs: tuple = ()
    vertices: np.ndarray | None = None
    foci: np.ndarray | None = None
    edges: np.ndarray | None = None
    dependents: tuple[str, ...] = ()  # boolean operands: FlowJo paths without 'root'
    inside: bool = True  # eventsInside="0": the population is the events outside the drawn gate
    count: int | None = None  # FlowJo's stored count (-1 or absent: none)
    owning_group: str = ""
    line: int | None = None

    @property
    def name(self) -> str:
        return self.path[-1]


@dataclass
class WspSample:
    """One ``<Sample>``."""

    sample_id: str
    name: str  # SampleNode name, usually the FCS file name
    uri: str | None
    keywords: dict[str, str]
    transforms: dict[str, tuple[str, dict[str, float]]]  # parameter -> (kind, attributes)
    matrix: Matrix | None
    nodes: list[Node]
    count: int | None
    line: int | None = None
    error: TemplateError | None = None  # why this sample's gates cannot be read (others can)

    @property
    def uri_name(self) -> str | None:
        """The file name the data set URI points to (``None`` without a URI)."""
        if not self.uri:
            return None
        path = unquote(urlparse(self.uri).path or self.uri)
        return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or None


@dataclass
class WspDocument:
    path: Path
    flowjo_version: str
    groups: dict[str, list[str]]  # group name -> sample ids (SampleRef order)
    samples: dict[str, WspSample] = field(default_factory=dict)  # by sample id


def _fail(src: str, line: int | None, message: str) -> TemplateError:
    from cytophen.errors import TemplateProblem

    return TemplateError([TemplateProblem(src, line, None, message)])


def read_document(path: Path) -> WspDocument:
    """Parse ``path`` (a FlowJo 10 workspace) into a :class:`WspDocument`."""
    from lxml import etree

    src = str(path)
    try:
        root = etree.parse(src, etree.XMLParser(huge_tree=True, remove_comments=True)).getroot()
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise _fail(
            src, line, f"not a readable FlowJo 10 workspace: XML error: {exc.msg}"
        ) from None
    except OSError as exc:
        raise _fail(src, None, f"cannot be read ({exc})") from None
    _check_kind(root, src)
    groups: dict[str, list[str]] = {}
    groups_el = root.find("Groups")
    for gn in groups_el.iterfind("GroupNode") if groups_el is not None else ():
        g = gn.find("Group")
        refs = g.find("SampleRefs") if g is not None else None
        ids = [r.get("sampleID") for r in refs.iterfind("SampleRef")] if refs is not None else []
        if ids:
            groups[gn.get("name", "")] = [i for i in ids if i is not None]
    doc = WspDocument(path, root.get("flowJoVersion", ""), groups)
    sl = root.find("SampleList")
    for el in sl.iterfind("Sample") if sl is not None else ():
        s = _sample(el, src)
        if s.sample_id in doc.samples:
            raise _fail(src, el.sourceline, f"two samples have sampleID {s.sample_id!r}")
        doc.samples[s.sample_id] = s
    for name, ids in doc.groups.items():
        doc.groups[name] = [i for i in ids if i in doc.samples]
    return doc


def _check_kind(root, src: str) -> None:
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag.lower() == "bdfacs":
        raise _fail(
            src,
            root.sourceline,
            "this is BD FACSDiva experiment XML, not a FlowJo workspace; " + SUPPORTED + " (open "
            "the FCS files in FlowJo 10 and save the workspace, or export the gates as GatingML 2.0)",
        )
    if tag != "Workspace":
        raise _fail(
            src,
            root.sourceline,
            f"not a FlowJo workspace (the XML root element is <{tag or '?'}>); " + SUPPORTED,
        )
    fj = root.get("flowJoVersion")
    version = root.get("version", "")
    major = None
    try:
        major = int(str(fj).split(".")[0]) if fj else None
    except ValueError:
        major = None
    old = (major is not None and major < 10) or (
        major is None and _leading_number(version) is not None and _leading_number(version) < 20
    )
    if old or (major is None and root.find("SampleList") is None):
        what = f"FlowJo {fj}" if fj else f"workspace version {version or 'unknown'}"
        raise _fail(
            src,
            root.sourceline,
            f"a FlowJo 9 (or older) workspace ({what}); " + SUPPORTED + " (open it in FlowJo 10 "
            "and save it again)",
        )


def _leading_number(text: str) -> float | None:
    try:
        return float(str(text).split()[0])
    except (ValueError, IndexError):
        return None


def _float(value: str | None, src: str, line, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _fail(src, line, f"{what}: expected a number, got {value!r}") from None


def _sample(el, src: str) -> WspSample:
    node = el.find("SampleNode")
    if node is None:
        raise _fail(src, el.sourceline, "a <Sample> has no <SampleNode>")
    ds = el.find("DataSet")
    sid = node.get("sampleID") or (ds.get("sampleID") if ds is not None else None)
    if sid is None:
        raise _fail(src, node.sourceline, "a <SampleNode> has no sampleID")
    name = node.get("name") or sid
    kw_el = el.find("Keywords")
    keywords = (
        {k.get("name"): k.get("value", "") for k in kw_el.iterfind("Keyword") if k.get("name")}
        if kw_el is not None
        else {}
    )
    sample = WspSample(
        sample_id=str(sid),
        name=str(name),
        uri=ds.get("uri") if ds is not None else None,
        keywords=keywords,
        transforms={},
        matrix=None,
        nodes=[],
        count=_count(node.get("count")),
        line=el.sourceline,
    )
    try:
        _sample_gates(el, node, sample, src)
    except TemplateError as exc:  # one sample's problem: its files fail, the others are gated
        from cytophen.errors import TemplateProblem

        sample.error = TemplateError(
            [
                TemplateProblem(p.file, p.line, p.column, f"sample {sample.name!r}: {p.message}")
                for p in exc.problems
            ]
        )
    return sample


def _sample_gates(el, node, sample: WspSample, src: str) -> None:
    """Transforms, spillover matrix and gate tree of one ``<Sample>``, into ``sample``."""
    name = sample.name
    transforms = sample.transforms
    tr = el.find("Transformations")
    for t in tr if tr is not None else ():
        if not isinstance(t.tag, str):
            continue
        kind = t.tag.rsplit("}", 1)[-1]
        p = t.find(f"{_D}parameter")
        pname = p.get(f"{_D}name") if p is not None else None
        if pname is None:
            continue
        attrs = {}
        for k, v in t.attrib.items():
            key = k.rsplit("}", 1)[-1]
            try:
                attrs[key] = float(v)
            except ValueError:
                continue
        transforms[pname] = (kind, attrs)
    matrices = el.findall(f"{_T}spilloverMatrix")
    if len(matrices) > 1:
        raise _fail(
            src, matrices[1].sourceline, f"sample {name!r} has more than one spillover matrix"
        )
    sample.matrix = _matrix(matrices[0], src) if matrices else None
    sub = node.find("Subpopulations")
    if sub is not None:
        _walk(sub, ("root",), sample.nodes, src)


def _count(value: str | None) -> int | None:
    try:
        c = int(value)
    except (TypeError, ValueError):
        return None
    return c if c >= 0 else None


def _matrix(el, src: str) -> Matrix:
    name = el.get("name") or el.get(f"{_T}id") or "workspace"
    if el.get("spectral") == "1":
        raise _fail(
            src,
            el.sourceline,
            f"spillover matrix {name!r} is a spectral (unmixing) matrix, which cytophen cannot take "
            "from a workspace yet; unmix in FlowJo and gate the exported files instead",
        )
    params = el.find(f"{_D}parameters")
    dets = (
        [p.get(f"{_D}name") for p in params.iterfind(f"{_D}parameter")]
        if params is not None
        else []
    )
    pos = {d: i for i, d in enumerate(dets)}
    values = np.eye(len(dets))
    for row in el.iterfind(f"{_T}spillover"):
        r = pos.get(row.get(f"{_D}parameter"))
        if r is None:
            raise _fail(
                src, row.sourceline, f"matrix {name!r}: spillover row for an unknown detector"
            )
        for co in row.iterfind(f"{_T}coefficient"):
            c = pos.get(co.get(f"{_D}parameter"))
            if c is None:
                raise _fail(
                    src, co.sourceline, f"matrix {name!r}: coefficient for an unknown detector"
                )
            values[r, c] = _float(co.get(f"{_T}value"), src, co.sourceline, f"matrix {name!r}")
    return Matrix(name, el.get("prefix", "Comp-"), el.get("suffix", ""), dets, values)


def _walk(sub, path: tuple[str, ...], out: list[Node], src: str) -> None:
    for el in sub:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag == "Population":
            node = _population(el, path, src)
        elif tag in _BOOLEAN_TAGS:
            node = _boolean(el, path, _BOOLEAN_TAGS[tag], src)
        else:
            continue
        out.append(node)
        child = el.find("Subpopulations")
        if child is not None:
            _walk(child, node.path, out, src)


def _population(el, path: tuple[str, ...], src: str) -> Node:
    name = el.get("name", "")
    gid = path + (name,)
    where = "/".join(gid)
    gate = el.find("Gate")
    shapes = [c for c in gate if isinstance(c.tag, str)] if gate is not None else []
    if len(shapes) != 1:
        raise _fail(
            src,
            el.sourceline,
            f"population {where!r}: expected one gate in its <Gate>, found {len(shapes)}",
        )
    g = shapes[0]
    kind = g.tag.rsplit("}", 1)[-1]
    dims, mins, maxs = [], [], []
    for d in g.iterfind(f"{_G}dimension"):
        fd = d.find(f"{_D}fcs-dimension")
        if fd is None or fd.get(f"{_D}name") is None:
            raise _fail(src, d.sourceline, f"population {where!r}: a dimension names no parameter")
        dims.append(fd.get(f"{_D}name"))
        lo, hi = d.get(f"{_G}min"), d.get(f"{_G}max")
        mins.append(None if lo is None else _float(lo, src, d.sourceline, f"{where!r} min"))
        maxs.append(None if hi is None else _float(hi, src, d.sourceline, f"{where!r} max"))
    node = Node(
        path=gid,
        kind="",
        dims=tuple(dims),
        inside=g.get("eventsInside", "1") != "0",
        count=_count(el.get("count")),
        owning_group=el.get("owningGroup", ""),
        line=g.sourceline,
    )
    if kind == "RectangleGate":
        node.kind, node.mins, node.maxs = "rectangle", tuple(mins), tuple(maxs)
    elif kind == "PolygonGate":
        node.kind = "polygon"
        node.vertices = _vertices(g.iterfind(f"{_G}vertex"), src, where)
    elif kind == "EllipsoidGate":
        node.kind = "ellipse"
        foci, edge = g.find(f"{_G}foci"), g.find(f"{_G}edge")
        if foci is None or edge is None:
            raise _fail(
                src, g.sourceline, f"population {where!r}: an ellipse needs foci and edge points"
            )
        node.foci = _vertices(foci.iterfind(f"{_G}vertex"), src, where)
        node.edges = _vertices(edge.iterfind(f"{_G}vertex"), src, where)
        if node.foci.shape != (2, 2) or node.edges.shape[0] < 4 or node.edges.shape[1] != 2:
            raise _fail(
                src,
                g.sourceline,
                f"population {where!r}: an ellipse needs 2 foci and 4 edge points in 2 dimensions",
            )
    else:
        raise _fail(
            src,
            g.sourceline,
            f"population {where!r}: FlowJo gate type {kind!r} is not supported (cytophen reads "
            "rectangle, polygon, ellipse, quadrant and boolean gates)",
        )
    if not dims:
        raise _fail(src, g.sourceline, f"population {where!r}: the gate has no dimensions")
    return node


def _vertices(els, src: str, where: str) -> np.ndarray:
    rows = []
    for v in els:
        rows.append(
            [
                _float(c.get(f"{_D}value"), src, c.sourceline, f"{where!r} vertex")
                for c in v.iterfind(f"{_G}coordinate")
            ]
        )
    if not rows or len({len(r) for r in rows}) != 1:
        raise _fail(
            src,
            None,
            f"population {where!r}: vertices must all have the same number of coordinates",
        )
    return np.asarray(rows, dtype=np.float64)


def _boolean(el, path: tuple[str, ...], op: str, src: str) -> Node:
    name = el.get("name", "")
    deps_el = el.find("Dependents")
    deps = (
        tuple(d.get("name", "") for d in deps_el.iterfind("Dependent"))
        if deps_el is not None
        else ()
    )
    return Node(
        path=path + (name,),
        kind=op,
        dependents=deps,
        count=_count(el.get("count")),
        owning_group=el.get("owningGroup", ""),
        line=el.sourceline,
    )
