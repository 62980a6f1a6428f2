"""Writing the gates cytophen placed on each sample as a FlowJo 10 workspace.

Each sample becomes a ``<Sample>`` with its own gate tree (FlowJo's sample-specific gates): the
fixed gates of its template, and each data-driven gate frozen as the gate it placed on that sample.
FlowJo stores coordinates in data units and one transform per parameter and sample, so every gate
is written in data units, on its parameters' transforms; a compensated parameter is named
``Comp-<detector>`` after the sample's one spillover matrix. What FlowJo cannot express (a gate on
more than two axes, a ratio dimension, two shape-bearing gates wanting different transforms of one
parameter, two matrices on one sample) is left out, with its descendants, and listed in
:attr:`WrittenWorkspace.notes`.

How each gate is written:

- rectangle, range, quadrant child → ``RectangleGate`` (missing bound = open);
- polygon → ``PolygonGate``; a 2-D ellipsoid → a ``PolygonGate`` through points of the ellipse,
  refined until it holds exactly the sample's events the ellipse holds; a 1-D ellipsoid → a range;
- and / or / not → ``AndNode`` / ``OrNode`` / ``NotNode`` under the population's parent (FlowJo
  evaluates them there, as cytophen does); a complemented operand gets a ``NOT <operand>`` helper
  node beside it; a ref gate is written as the gate it applied.

After writing, the file is read back and every sample gated again with what it says; any count
that differs from cytophen's is a note (none is expected).
"""

from __future__ import annotations

import datetime
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytophen.errors import CytophenError, GateError, TemplateError
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
from cytophen.interop.flowjo._convert import flowjo_name
from cytophen.interop.flowjo._wsp import DATATYPE_NS, GATING_NS, TRANSFORMS_NS
from cytophen.template import Population, Template
from cytophen.transforms import (
    AsinhTransform,
    FlowJoBiexTransform,
    FlowJoLogTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
)

_G = f"{{{GATING_NS}}}"
_T = f"{{{TRANSFORMS_NS}}}"
_D = f"{{{DATATYPE_NS}}}"
_NSMAP = {"gating": GATING_NS, "transforms": TRANSFORMS_NS, "data-type": DATATYPE_NS}
#: Prefix of compensated parameters (FlowJo's default).
COMP_PREFIX = "Comp-"


@dataclass
class WrittenWorkspace:
    """What :func:`write_workspace` wrote.

    Attributes
    ----------
    path
        The ``.wsp`` file.
    samples
        Sample (``SampleNode``) names written, in order.
    paths
        Per sample name: population name → its FlowJo path (``'root/…'``) in the file.
    counts
        Per sample name: population name → cytophen's count (also stored as FlowJo's ``count``).
    notes
        Populations left out and why, and any count that differs when the file is read back.
    """

    path: Path
    samples: list[str] = field(default_factory=list)
    paths: dict[str, dict[str, str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    name: str  # SampleNode name
    file: Path
    sample: Any  # cytophen Sample
    template: Template
    gates: dict[str, dict[str, Any]]
    measured: dict[str, bool]
    compensation: Any  # engine override (None = the template's)
    counts: dict[str, int] | None = None  # what the batch counted


# ------------------------------------------------------------------------------------------------
# public entry point
# ------------------------------------------------------------------------------------------------
def write_workspace(
    results, path, *, template=None, compensation=None, check: bool = True
) -> WrittenWorkspace:
    """Write each sample's gates, as cytophen placed them, as a FlowJo 10 workspace.

    Parameters
    ----------
    results
        A :class:`~cytophen.pipeline.batch.BatchResult` (samples gated without error are written;
        their files are read again), or a list of :class:`~cytophen.result.GatingResult`.
    path
        Output ``.wsp`` file (written atomically).
    template
        For a BatchResult: the template (or :class:`~cytophen.interop.flowjo.Workspace`) it was
        gated with; default: the template file named in its run record.
    compensation
        For GatingResults: the ``compensation=`` override they were gated with, if any (a
        BatchResult records its own).
    check
        Read the file back and gate every sample with it; counts that differ become notes.

    Returns
    -------
    WrittenWorkspace

    Raises
    ------
    TemplateError
        Nothing could be written (no sample gated).

    Examples
    --------
    >>> res = cytophen.gate_files("fcs/", "gating_templates/treg.yaml")   # doctest: +SKIP
    >>> write_workspace(res, "review.wsp").notes                           # doctest: +SKIP
    []
    """
    out = Path(path)
    entries, notes = _entries(results, template, compensation)
    if not entries:
        raise TemplateError("no gated sample to write to a FlowJo workspace", file=str(out))
    written = WrittenWorkspace(out, notes=notes)
    root = _Writer(entries, written).build()
    from lxml import etree

    from cytophen._atomic import atomic_write_bytes

    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    atomic_write_bytes(out, data)
    if check:
        _check(written, entries)
    return written


# ------------------------------------------------------------------------------------------------
# what to write: per sample, the fixed gates it used
# ------------------------------------------------------------------------------------------------
def _entries(results, template, compensation) -> tuple[list[_Entry], list[str]]:
    from cytophen import read_fcs

    notes: list[str] = []
    if hasattr(results, "populations") and hasattr(results, "run"):  # a BatchResult
        run = results.run
        if template is None:
            src = (run.get("template") or {}).get("source")
            if not src:
                raise TemplateError(
                    "write_workspace: pass template= (the run names no template file)"
                )
            from cytophen.interop import load_batch_template

            template = load_batch_template(src)
        override = _override(run)
        table = results.populations
        entries = []
        for rec in run.get("inputs", []):
            if rec.get("status") != "ok":
                continue
            sid, file = rec["sample"], Path(rec["file"])
            rows = table[table["sample"] == sid]
            t = template
            if hasattr(template, "templates_for"):
                t = template.templates_for([file])[0][0]
                if isinstance(t, str):
                    notes.append(f"sample {sid!r} left out: {t}")
                    continue
            try:
                sample = read_fcs(file)
            except CytophenError as exc:
                notes.append(f"sample {sid!r} left out: {exc}")
                continue
            measured = dict(zip(rows["population"], rows["measured"].astype(bool)))
            counts = {
                p: int(c)
                for p, c, m in zip(rows["population"], rows["count"], rows["measured"])
                if m
            }
            entries.append(
                _Entry(
                    file.name,
                    file,
                    sample,
                    t,
                    results.gates.get(sid, {}),
                    measured,
                    override,
                    counts,
                )
            )
        return entries, notes
    entries = []
    for res in results:
        measured = dict(zip(res.table["population"], res.table["measured"].astype(bool)))
        file = Path(res.file) if res.file else Path(f"{res.sample_id}.fcs")
        entries.append(
            _Entry(file.name, file, res.sample, res.template, res.gates, measured, compensation)
        )
    return entries, notes


def _override(run: dict) -> Any:
    word = (run.get("options") or {}).get("compensation", "template")
    if word in (None, "template"):
        return None
    if word in ("keyword", "none", "FCS"):
        return word
    if word == "matrix (DataFrame)":
        raise TemplateError(
            "write_workspace: the batch was compensated with a DataFrame it did not record; "
            "gate with a matrix CSV (or the template's matrix) to export it"
        )
    from cytophen.pipeline.batch import _compensation_option

    return _compensation_option(word)[0]


def _placed(e: _Entry, notes: list[str]) -> list[tuple[Population, Any]]:
    """``(population, fixed gate or None)`` in template order; ``None`` = not placed on this
    sample (not measured, or a data-driven gate that declined)."""
    from cytophen.interop.gatingml import _gate_from_geometry

    out: list[tuple[Population, Any]] = []
    placed: dict[str, Any] = {}
    for pop in e.template.populations:
        g = pop.gate
        if not e.measured.get(pop.name, False):
            out.append((pop, None))
            continue
        try:
            if isinstance(g, DataDrivenGate):
                geom = (e.gates.get(pop.name) or {}).get("geometry")
                if geom is None:
                    out.append((pop, None))
                    continue
                g = _gate_from_geometry(geom, g.dims, pop.name)
            if isinstance(g, QuadrantGate):
                g = g.rectangle(pop.quadrant)
            if isinstance(g, RefGate):
                g = resolve_ref(
                    [(r, placed[r]) for r, _ in g.refs], [d for _, d in g.refs], population=pop.name
                )
        except (CytophenError, KeyError) as exc:
            notes.append(f"sample {e.name!r}: population {pop.name!r} left out ({exc})")
            out.append((pop, None))
            continue
        placed[pop.name] = g
        out.append((pop, g))
    return out


# ------------------------------------------------------------------------------------------------
# transforms: cytophen → FlowJo elements
# ------------------------------------------------------------------------------------------------
def _linear_like(t) -> bool:
    return t is None or isinstance(t, LinearTransform)


def _same_shape(a, b) -> bool:
    """Whether gates drawn on scale ``a`` keep their shape on scale ``b`` (straight edges stay
    straight): the same transform, or two affine ones."""
    return (_linear_like(a) and _linear_like(b)) or a == b


def _fj_transform(t, top: float) -> tuple[str, dict[str, float]] | None:
    """(FlowJo element, attributes) for a transform; ``None`` when FlowJo has no equal one."""
    if t is None:
        return "linear", {"minRange": 0.0, "maxRange": top, "gain": 1.0}
    if isinstance(t, LinearTransform):
        return "linear", {"minRange": t.A, "maxRange": t.T, "gain": 1.0}
    if isinstance(t, LogicleTransform):
        return "logicle", {"length": 256.0, "T": t.T, "W": t.W, "M": t.M, "A": t.A}
    if isinstance(t, AsinhTransform):
        return "fasinh", {"length": 256.0, "maxRange": t.T, "T": t.T, "M": t.M, "A": t.A, "W": 0.0}
    if isinstance(t, FlowJoBiexTransform):
        return "biex", {
            "length": 256.0,
            "maxRange": t.max_value,
            "neg": t.negative,
            "width": t.width,
            "pos": t.positive,
        }
    if isinstance(t, FlowJoLogTransform):
        return "log", {"offset": t.offset, "decades": t.decades}
    if isinstance(t, LogTransform):  # flog(x) = log10(x / (T 10^-M)) / M above that offset
        return "log", {"offset": t.T * 10.0 ** (-t.M), "decades": t.M}
    return None


def _stand_in(t, top: float) -> tuple[str, dict[str, float]]:
    """A FlowJo transform to display a parameter that only rectangles use (any increasing scale
    gives a rectangle the same events; bounds are written in data units)."""
    spec = _fj_transform(t, top)
    if spec is not None:
        return spec
    if isinstance(t, HyperlogTransform):
        return "logicle", {"length": 256.0, "T": t.T, "W": t.W, "M": t.M, "A": t.A}
    return "linear", {"minRange": 0.0, "maxRange": top, "gain": 1.0}


# ------------------------------------------------------------------------------------------------
# the writer
# ------------------------------------------------------------------------------------------------
class _Refused(Exception):
    """A population FlowJo cannot express (message: why)."""


class _SampleWriter:
    """One sample: channels, compensation, transforms and gates in FlowJo's terms."""

    def __init__(self, e: _Entry, notes: list[str]):
        from cytophen.engine import GateContext

        self.e = e
        self.notes = notes
        self.ctx = GateContext(e.sample, e.template, e.compensation)
        self.matrix: pd.DataFrame | None = None
        self.matrix_name: str | None = None
        self.transforms: dict[str, tuple[Any, bool]] = {}  # FJ param -> (transform, shape-bearing)
        self.top: dict[str, float] = {}

    # -- names ------------------------------------------------------------------------------
    def param(self, d) -> tuple[str, str, bool]:
        """(FlowJo parameter name, FCS channel, compensated) of a dimension on this sample."""
        if isinstance(d, RatioDim):
            raise _Refused(f"ratio dimension {d.label} (FlowJo has no ratio parameters in gates)")
        ctx = self.ctx
        i = ctx.index(d.channel)
        channel = self.e.sample.channels[i]
        ref = ctx.comp_ref(d.compensation)
        s = ctx.matrix(ref)
        compensated = s is not None and channel in {str(x) for x in s.index}
        if compensated:
            if list(map(str, s.index)) != list(map(str, s.columns)):
                raise _Refused(f"compensation {ref!r} is a spectrum (unmixing) matrix")
            if self.matrix is None:
                self.matrix = s
                self.matrix_name = ref if ref in self.e.template.matrices else "Acquisition-defined"
                if ref == "__override__":
                    self.matrix_name = "cytophen"
            elif not (
                self.matrix.shape == s.shape
                and np.array_equal(self.matrix.to_numpy(), s.to_numpy())
            ):
                raise _Refused("a second compensation matrix on one sample (FlowJo keeps one)")
        fj = flowjo_name(channel)
        name = COMP_PREFIX + fj if compensated else fj
        pnr = self.e.sample.keywords.get(f"$P{i + 1}R")
        try:
            top = float(pnr) if pnr else 262144.0
        except ValueError:
            top = 262144.0
        self.top[name] = self.top[fj] = top
        return name, channel, compensated

    def use(self, param: tuple[str, str, bool], t, shaped: bool) -> None:
        """Record that a gate needs ``param`` on transform ``t`` (``shaped``: polygons). FlowJo
        gives a compensated parameter's transform to its detector too (FlowKit reads it there)."""
        name, channel, compensated = param
        if compensated:
            self._use(flowjo_name(channel), t, shaped)
        self._use(name, t, shaped)

    def _use(self, name: str, t, shaped: bool) -> None:
        have = self.transforms.get(name)
        if shaped and _fj_transform(t, 1.0) is None:
            raise _Refused(
                f"transform {getattr(t, 'kind', t)!r} on {name} has no FlowJo equivalent"
            )
        if have is None:
            self.transforms[name] = (t, shaped)
            return
        t0, shaped0 = have
        if shaped and shaped0 and not _same_shape(t0, t):
            raise _Refused(
                f"{name} is already drawn on another transform ({getattr(t0, 'kind', t0)}); "
                "FlowJo keeps one per parameter"
            )
        if shaped and not shaped0:
            self.transforms[name] = (t, True)

    # -- gates ------------------------------------------------------------------------------
    def shape(self, g, members: np.ndarray | None):
        """(kind, dims [(param, transform)], data) of a fixed gate in data units."""
        dims = getattr(g, "dims", ())
        if len(dims) > 2:
            raise _Refused(
                f"a {len(dims)}-D {g.kind} gate on {', '.join(d.label for d in dims)} (FlowJo "
                "gates are drawn on one or two axes)"
            )
        params = [self.param(d) for d in dims]
        if isinstance(g, RectangleGate):
            for p, d in zip(params, dims):
                self.use(p, d.transform, False)
            lo = [None if v is None else _inverse(d.transform, v) for d, v in zip(dims, g.mins)]
            hi = [None if v is None else _inverse(d.transform, v) for d, v in zip(dims, g.maxs)]
            return "rectangle", [p[0] for p in params], (lo, hi)
        if isinstance(g, EllipsoidGate) and len(dims) == 1:
            r = math.sqrt(g.distance_square * float(g.covariance[0, 0]))
            m = float(g.mean[0])
            self.use(params[0], dims[0].transform, False)
            t = dims[0].transform
            return "rectangle", [params[0][0]], ([_inverse(t, m - r)], [_inverse(t, m + r)])
        if isinstance(g, (PolygonGate, EllipsoidGate)):
            if len(dims) != 2:
                raise _Refused(f"a {len(dims)}-D {g.kind} gate")
            for p, d in zip(params, dims):
                self.use(p, d.transform, True)
            verts = g.vertices if isinstance(g, PolygonGate) else self.outline(g, members)
            raw = np.column_stack([_inverse(d.transform, verts[:, j]) for j, d in enumerate(dims)])
            if not np.all(np.isfinite(raw)):
                raise _Refused(f"a vertex of the {g.kind} lies outside its transform's range")
            return "polygon", [p[0] for p in params], raw
        raise _Refused(f"gate type {type(g).__name__}")

    def outline(self, g: EllipsoidGate, members: np.ndarray | None) -> np.ndarray:
        """A polygon holding exactly the events of the parent (``members``, ``None`` = all) that
        the ellipse holds: the ellipse's circumscribed polygon (tangents at angles that are dense
        where the ellipse crosses the data), cut to a box around every event of the sample (a
        half-space placed as a vast ellipse becomes a polygon the size of the data)."""
        cols = [
            _forward(d.transform, self.ctx.raw_value(d.channel, d.compensation)) for d in g.dims
        ]
        every = np.column_stack(cols)
        vals = every if members is None else every[members]
        want = g.contains(vals)
        box = _box(every)
        w, v = np.linalg.eigh(g.covariance * g.distance_square)
        a = v * np.sqrt(np.maximum(w, 0.0))  # boundary: mean + a @ (cos t, sin t)
        base = 2.0 * np.pi * np.arange(1024) / 1024
        start, width = _angles_of_box(g.mean, a, box)  # where the boundary can cross the data
        k = 256
        while True:
            dense = start + width * np.arange(k + 1) / k
            theta = np.unique(np.mod(np.concatenate([base, dense]), 2 * np.pi))
            verts = _clip_to_box(_circumscribed(g.mean, a, theta), box)
            if len(verts) >= 3:
                got = PolygonGate(g.dims, verts).contains(vals)
                if np.array_equal(got, want):
                    return verts
            if k >= 1 << 16:
                break
            k *= 4
        if len(verts) < 3:  # the ellipse misses every event: its outline alone says so
            return _circumscribed(g.mean, a, base)
        self.notes.append(
            f"sample {self.e.name!r}: an ellipse's outline holds {int((got != want).sum())} "
            "event(s) the ellipse does not"
        )
        return verts


def _box(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box around every finite event (a little wider than they spread)."""
    ok = np.all(np.isfinite(values), axis=1)
    v = values[ok] if ok.any() else np.zeros((1, values.shape[1]))
    lo, hi = v.min(axis=0), v.max(axis=0)
    pad = 0.05 * (hi - lo) + 1e-6 * np.maximum(
        1.0, np.abs(np.concatenate([lo, hi])).reshape(2, -1).max(0)
    )
    return lo - pad, hi + pad


def _angles_of_box(mean: np.ndarray, a: np.ndarray, box) -> tuple[float, float]:
    """(start, width) of the angles (in the ellipse's own circle coordinates) under which the
    box is seen from the ellipse's centre: all of them when the centre is inside the box."""
    lo, hi = box
    if np.all(mean >= lo) and np.all(mean <= hi):
        return 0.0, 2.0 * np.pi
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
    u = np.linalg.solve(a, (corners - mean).T).T
    ang = np.sort(np.mod(np.arctan2(u[:, 1], u[:, 0]), 2 * np.pi))
    gaps = np.diff(np.concatenate([ang, [ang[0] + 2 * np.pi]]))
    j = int(np.argmax(gaps))  # the box lies in the complement of the largest gap
    start = ang[(j + 1) % 4]
    return float(start), float(2 * np.pi - gaps[j])


def _circumscribed(mean: np.ndarray, a: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Vertices of the polygon of the ellipse's tangents at the sorted angles ``theta``
    (consecutive tangents meet at the mid angle, 1 / cos(half the step) out)."""
    nxt = np.roll(theta, -1)
    gap = np.mod(nxt - theta, 2 * np.pi)
    mid = theta + gap / 2
    u = np.column_stack([np.cos(mid), np.sin(mid)]) / np.cos(gap / 2)[:, None]
    return mean + u @ a.T


def _clip_to_box(poly: np.ndarray, box) -> np.ndarray:
    """Sutherland-Hodgman: the convex polygon ``poly`` cut to the box (one side at a time)."""
    lo, hi = box
    for axis, bound, keep_below in (
        (0, hi[0], True),
        (0, lo[0], False),
        (1, hi[1], True),
        (1, lo[1], False),
    ):
        if len(poly) == 0:
            break
        x = poly[:, axis]
        inside = x <= bound if keep_below else x >= bound
        if inside.all():
            continue
        nxt = np.roll(poly, -1, axis=0)
        n_in = np.roll(inside, -1)
        cross = inside != n_in
        t = (bound - x) / np.where(cross, nxt[:, axis] - x, 1.0)
        hit = poly + t[:, None] * (nxt - poly)
        hit[:, axis] = bound
        rows = []
        for i in range(len(poly)):  # per edge: its crossing, then its end point if inside
            if cross[i]:
                rows.append(hit[i])
            if n_in[i]:
                rows.append(nxt[i])
        poly = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    return poly


def _inverse(t, v):
    if t is None:
        return np.asarray(v, dtype=np.float64) if np.ndim(v) else float(v)
    if np.ndim(v):
        return np.asarray(t.inverse(np.asarray(v, dtype=np.float64)), dtype=np.float64)
    return float(np.asarray(t.inverse(np.array([float(v)])), dtype=np.float64)[0])


def _forward(t, v: np.ndarray) -> np.ndarray:
    if t is None:
        return np.asarray(v, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(t.apply(v), dtype=np.float64)


def _fmt(v: float) -> str:
    return repr(float(v))


def _xml_text(s: str) -> str:
    """``s`` without the characters XML 1.0 cannot hold (FCS TEXT may have any byte)."""
    return "".join(
        c for c in str(s) if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
    )


class _Writer:
    def __init__(self, entries: list[_Entry], written: WrittenWorkspace):
        self.entries = entries
        self.written = written

    def build(self):
        from lxml import etree

        from cytophen._version import __version__

        now = datetime.datetime.now().astimezone()
        root = etree.Element("Workspace", nsmap=_NSMAP)
        root.set("version", "20.0")
        root.set("modDate", now.strftime("%a %b %d %H:%M:%S %Z %Y"))
        root.set("flowJoVersion", "10.7.1")
        root.set("curGroup", "All Samples")
        root.append(
            etree.Comment(
                f" written by cytophen {__version__}: the gates it placed on each sample "
            )
        )
        matrices = etree.SubElement(root, "Matrices")
        groups = etree.SubElement(root, "Groups")
        samples_el = etree.SubElement(root, "SampleList")
        seen_matrices: set[str] = set()
        ids = []
        for k, e in enumerate(self.entries, start=1):
            sid = str(k)
            sw = _SampleWriter(e, self.written.notes)
            body = self.sample_tree(sw, e)
            sample_el = etree.SubElement(samples_el, "Sample")
            etree.SubElement(sample_el, "DataSet", uri=e.file.resolve().as_uri(), sampleID=sid)
            if sw.matrix is not None:
                el = _matrix_el(sw.matrix_name, sw.matrix)
                sample_el.append(el)
                key = el.get(f"{_T}id")
                if key not in seen_matrices:
                    seen_matrices.add(key)
                    matrices.append(_matrix_el(sw.matrix_name, sw.matrix))
            tr = etree.SubElement(sample_el, "Transformations")
            for name, (t, shaped) in sw.transforms.items():
                kind, attrs = (
                    _fj_transform(t, sw.top[name]) if shaped else _stand_in(t, sw.top[name])
                )
                x = etree.SubElement(tr, f"{_T}{kind}")
                for a, v in attrs.items():
                    x.set(a if a == "gain" else f"{_T}{a}", _fmt(v) if a != "length" else "256")
                etree.SubElement(x, f"{_D}parameter").set(f"{_D}name", name)
            kws = etree.SubElement(sample_el, "Keywords")
            for k2, v in e.sample.keywords.items():
                etree.SubElement(kws, "Keyword", name=_xml_text(k2), value=_xml_text(v))
            node = etree.SubElement(
                sample_el,
                "SampleNode",
                name=e.name,
                annotation="",
                owningGroup="",
                expanded="1",
                sortPriority="10",
                count=str(e.sample.n_events),
                sampleID=sid,
            )
            node.append(body)
            ids.append(sid)
            self.written.samples.append(e.name)
        gn = etree.SubElement(
            groups,
            "GroupNode",
            name="All Samples",
            annotation="",
            owningGroup="All Samples",
            expanded="1",
            sortPriority="10",
            count="-1",
        )
        g = etree.SubElement(gn, "Group", name="All Samples", live="1", role="ws.group.dlog.test")
        refs = etree.SubElement(g, "SampleRefs")
        for sid in ids:
            etree.SubElement(refs, "SampleRef", sampleID=sid)
        return root

    def sample_tree(self, sw: _SampleWriter, e: _Entry):
        """The ``<Subpopulations>`` of one sample's ``SampleNode``."""
        from lxml import etree

        from cytophen.engine import gate

        notes = self.written.notes
        placed = _placed(e, notes)
        fixed = [
            Population(p.name, p.parent, g, description=p.description)
            for p, g in placed
            if g is not None and _ancestors_placed(p, placed)
        ]
        frozen = Template(
            name=e.template.name,
            populations=fixed,
            markers=dict(e.template.markers),
            compensation=e.template.compensation,
            matrices=dict(e.template.matrices),
            source=e.template.source,
        )
        res = gate(e.sample, frozen, compensation=e.compensation)
        counts = {p.name: res.count(p.name) for p in fixed}
        folded = _folded_complements(frozen)
        fj_names = e.template.meta.get("flowjo_paths", {}) if e.template.meta else {}
        top = etree.Element("Subpopulations")
        elements: dict[str | None, Any] = {None: top}
        paths: dict[str | None, str] = {None: "root"}
        gate_ids: dict[str, str] = {}
        written_paths: dict[str, str] = {}
        children_names: dict[str | None, set[str]] = {}
        dropped: set[str] = set()
        for p in frozen.populations:
            if p.name in folded.values():
                continue  # written as the complement gate it is the inside of
            if p.parent in dropped or (p.parent is not None and p.parent not in elements):
                dropped.add(p.name)
                notes.append(
                    f"sample {e.name!r}: population {p.name!r} left out with its parent {p.parent!r}"
                )
                continue
            parent_el = elements[p.parent]
            sub = parent_el if p.parent is None else _subpops(parent_el)
            label = _gate_label(p.name, fj_names.get(p.name))
            taken = children_names.setdefault(p.parent, set())
            label = _unique(label, taken)
            path = f"{paths[p.parent]}/{label}"
            try:
                if isinstance(p.gate, BooleanGate) and p.name not in folded:
                    el = self.boolean(sub, p, label, paths, written_paths, counts, frozen, taken)
                else:
                    g, inside = p.gate, True
                    if p.name in folded:
                        g, inside = frozen.population(folded[p.name]).gate, False
                    parent_rows = None if p.parent is None else res.membership(p.parent)
                    kind, params, data = sw.shape(g, parent_rows)
                    el = _population_el(
                        sub, label, counts[p.name], kind, params, data, inside, gate_ids, p.parent
                    )
                    gate_ids[p.name] = el.find("Gate").get(f"{_G}id")
            except (_Refused, CytophenError) as exc:
                notes.append(f"sample {e.name!r}: population {p.name!r} left out: {exc}")
                dropped.add(p.name)
                if sub is not top and len(sub) == 0:
                    sub.getparent().remove(sub)
                continue
            elements[p.name] = el
            paths[p.name] = path
            written_paths[p.name] = path
        for name, c in (e.counts or {}).items():
            if name in counts and counts[name] != c:
                notes.append(
                    f"sample {e.name!r}: population {name!r} holds {counts[name]} events with the "
                    f"gates as placed, {c} in the batch"
                )
        self.written.paths[e.name] = written_paths
        self.written.counts[e.name] = {k: counts[k] for k in written_paths}
        return top

    def boolean(self, sub, p, label, paths, written_paths, counts, frozen, taken):

        g: BooleanGate = p.gate
        missing = [op for op, _ in g.operands if op not in written_paths]
        if missing:
            raise _Refused(f"its operand(s) {', '.join(missing)} are not in the workspace")
        deps = []
        for op, complement in g.operands:
            dep = written_paths[op][len("root/") :]
            if complement:  # a NOT node of the operand beside this one (within the same parent)
                helper = _unique(f"NOT {_gate_label(op, None)}", taken)
                _bool_el(sub, "NotNode", helper, [dep], None)
                dep = f"{paths[p.parent]}/{helper}"[len("root/") :]
            deps.append(dep)
        tag = {"and": "AndNode", "or": "OrNode", "not": "NotNode"}[g.op]
        return _bool_el(sub, tag, label, deps, counts[p.name])


def _ancestors_placed(p: Population, placed) -> bool:
    ok = {q.name for q, g in placed if g is not None}
    return p.parent is None or p.parent in ok


def _folded_complements(t: Template) -> dict[str, str]:
    """``{population: its '[inside]' helper}`` for FlowJo's ``eventsInside="0"`` gates read from a
    workspace (a ``not`` of a drawn gate named ``'<name> [inside]'`` under the same parent)."""
    out = {}
    for p in t.populations:
        g = p.gate
        if (
            isinstance(g, BooleanGate)
            and g.op == "not"
            and g.operands[0][0] == f"{p.name} [inside]"
        ):
            try:
                inside = t.population(f"{p.name} [inside]")
            except KeyError:
                continue
            if inside.parent == p.parent and not isinstance(inside.gate, BooleanGate):
                out[p.name] = inside.name
    return out


def _gate_label(name: str, fj_path: str | None) -> str:
    """The FlowJo gate name: the last part of the FlowJo path it came from, else the population
    name (``/`` separates FlowJo paths, so it is written as ``_``)."""
    if fj_path:
        name = fj_path.rsplit("/", 1)[-1]
    return str(name).replace("/", "_")


def _unique(label: str, taken: set[str]) -> str:
    out, k = label, 1
    while out in taken:
        k += 1
        out = f"{label} ({k})"
    taken.add(out)
    return out


def _subpops(el):
    from lxml import etree

    sub = el.find("Subpopulations")
    if sub is None:
        sub = etree.SubElement(el, "Subpopulations")
    return sub


def _bool_el(sub, tag: str, label: str, deps: list[str], count: int | None):
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


def _population_el(sub, label, count, kind, params, data, inside, gate_ids, parent):
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
                d.set(f"{_G}min", _fmt(a))
            if b is not None:
                d.set(f"{_G}max", _fmt(b))
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
                etree.SubElement(v, f"{_G}coordinate").set(f"{_D}value", _fmt(c))
    return el


def _matrix_el(name: str, m: pd.DataFrame):
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
            c.set(f"{_T}value", _fmt(values[i, j]))
    return el


# ------------------------------------------------------------------------------------------------
# read back and compare
# ------------------------------------------------------------------------------------------------
def _check(written: WrittenWorkspace, entries: list[_Entry]) -> None:
    from cytophen.engine import gate
    from cytophen.interop.flowjo import Workspace

    try:
        ws = Workspace(written.path)
    except CytophenError as exc:  # pragma: no cover - a writer bug
        written.notes.append(f"the written workspace cannot be read back: {exc}")
        return
    for k, e in enumerate(entries):
        key = ws._key.get(str(k + 1))
        if key is None:  # pragma: no cover
            continue
        try:
            t = ws.template(key)
            res = gate(e.sample, t)
        except (CytophenError, GateError) as exc:
            written.notes.append(f"sample {e.name!r}: cannot be gated again from the file: {exc}")
            continue
        by_path = {v: n for n, v in t.meta["flowjo_paths"].items()}
        for pop, path in written.paths[e.name].items():
            ours = written.counts[e.name][pop]
            back = res.count(by_path[path]) if path in by_path else None
            if back != ours:
                written.notes.append(
                    f"sample {e.name!r}: population {pop!r} holds {back} events when read back "
                    f"from the workspace, {ours} in cytophen"
                )
