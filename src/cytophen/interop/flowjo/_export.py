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

import dataclasses
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytophen.compensation import Compensation
from cytophen.errors import CytophenError, GateError, TemplateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    QuadrantGate,
    RefGate,
    gate_from_geometry,
    resolve_ref,
)
from cytophen.interop.flowjo._elements import (
    _D,
    _G,
    _T,
    NSMAP,
    bool_el,
    fmt,
    matrix_el,
    population_el,
    subpops,
    xml_text,
)
from cytophen.interop.flowjo._shapes import Refused, SampleWriter, fj_transform, stand_in
from cytophen.template import Population, Template


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
    skipped: frozenset[str] = frozenset()  # clean-up steps skipped on the file (no gate)


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
    from cytophen.io.fcs import read_fcs

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
        marker_map = _marker_map(run)
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
                sample = read_fcs(file, markers=marker_map.for_file(file) if marker_map else None)
            except CytophenError as exc:
                notes.append(f"sample {sid!r} left out: {exc}")
                continue
            t = _as_gated(t, rec.get("scale"))
            gates = results.gates.get(sid, {})
            skipped = frozenset(p for p, g in gates.items() if (g or {}).get("skipped"))
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
                    gates,
                    measured,
                    override,
                    counts,
                    skipped,
                )
            )
        return entries, notes
    entries = []
    for res in results:
        measured = dict(zip(res.table["population"], res.table["measured"].astype(bool)))
        file = Path(res.file) if res.file else Path(f"{res.sample_id}.fcs")
        t = _as_gated(res.template, {"file_spillover": (res.scale or {}).get("file_spillover")})
        entries.append(
            _Entry(
                file.name,
                file,
                res.sample,
                t,
                res.gates,
                measured,
                compensation,
                None,
                frozenset(res.skipped),
            )  # fmt: skip
        )
    return entries, notes


def _as_gated(template: Template, scale: dict[str, Any] | None) -> Template:
    """``template`` as one sample was gated with it: its ``auto`` transforms as resolved on the
    file (run.json's ``inputs[].scale``), and no compensation by the file's own spillover when
    the engine did not apply it (a compensated or already transformed export)."""
    if not scale:
        return template
    from cytophen.engine._scale import uses_auto, with_transforms

    if scale.get("transforms") and uses_auto(template):
        template = with_transforms(template, scale["transforms"])
    if str(scale.get("file_spillover") or "").startswith("not applied") and (
        template.compensation == "FCS"
    ):
        template = dataclasses.replace(template, compensation="uncompensated")
    return template


def _marker_map(run: dict):
    """The ``--markers`` rows the batch read its files with (run.json), or ``None``."""
    rec = (run.get("options") or {}).get("markers")
    if not rec:
        return None
    from cytophen.markers import MarkerMap

    return MarkerMap(tuple(tuple(r) for r in rec["rows"]), rec.get("source", "<markers>"))


def _override(run: dict) -> Any:
    """The compensation override the batch gated with (run.json), read back."""
    options = run.get("options") or {}
    if options.get("compensation") == "matrix (DataFrame)":
        raise TemplateError(
            "write_workspace: the batch was compensated with a DataFrame it did not record; "
            "gate with a matrix CSV (or the template's matrix) to export it"
        )
    return Compensation.from_record(options).override


def _placed(e: _Entry, notes: list[str]) -> list[tuple[Population, Any]]:
    """``(population, fixed gate or None)`` in template order; ``None`` = not placed on this
    sample (not measured, or a data-driven gate that declined)."""
    out: list[tuple[Population, Any]] = []
    placed: dict[str, Any] = {}
    # a skipped clean-up step holds its parent's events: what hangs from it hangs from that parent
    hung_from: dict[str, str | None] = {}
    for pop in e.template.populations:
        if pop.name in e.skipped:
            hung_from[pop.name] = hung_from.get(pop.parent, pop.parent) if pop.parent else None
            continue
        if pop.parent in hung_from:
            pop = dataclasses.replace(pop, parent=hung_from[pop.parent])
        g = pop.gate
        if isinstance(g, BooleanGate) and any(n in hung_from for n, _ in g.operands):
            g = BooleanGate(g.op, [(hung_from.get(n, n), c) for n, c in g.operands])
            pop = dataclasses.replace(pop, gate=g)
        # hidden helpers are not in the tables: placed when their parent (and operands) are
        seen = e.measured.get(pop.name, pop.hidden and (pop.parent is None or pop.parent in placed))
        if isinstance(g, BooleanGate) and any(n not in placed for n, _ in g.operands):
            seen = False
        if not seen:
            out.append((pop, None))
            continue
        try:
            if isinstance(g, DataDrivenGate):
                geom = (e.gates.get(pop.name) or {}).get("geometry")
                if geom is None:
                    out.append((pop, None))
                    continue
                g = gate_from_geometry(geom, g.dims, population=pop.name)
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


class _Writer:
    def __init__(self, entries: list[_Entry], written: WrittenWorkspace):
        self.entries = entries
        self.written = written

    def build(self):
        from lxml import etree

        from cytophen._version import __version__

        now = datetime.datetime.now().astimezone()
        root = etree.Element("Workspace", nsmap=NSMAP)
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
            sw = SampleWriter(e, self.written.notes)
            body = self.sample_tree(sw, e)
            sample_el = etree.SubElement(samples_el, "Sample")
            etree.SubElement(sample_el, "DataSet", uri=e.file.resolve().as_uri(), sampleID=sid)
            if sw.matrix is not None:
                el = matrix_el(sw.matrix_name, sw.matrix)
                sample_el.append(el)
                key = el.get(f"{_T}id")
                if key not in seen_matrices:
                    seen_matrices.add(key)
                    matrices.append(matrix_el(sw.matrix_name, sw.matrix))
            tr = etree.SubElement(sample_el, "Transformations")
            for name, (t, shaped) in sw.transforms.items():
                kind, attrs = fj_transform(t, sw.top[name]) if shaped else stand_in(t, sw.top[name])
                x = etree.SubElement(tr, f"{_T}{kind}")
                for a, v in attrs.items():
                    x.set(a if a == "gain" else f"{_T}{a}", fmt(v) if a != "length" else "256")
                etree.SubElement(x, f"{_D}parameter").set(f"{_D}name", name)
            kws = etree.SubElement(sample_el, "Keywords")
            for k2, v in e.sample.keywords.items():
                etree.SubElement(kws, "Keyword", name=xml_text(k2), value=xml_text(v))
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

    def sample_tree(self, sw: SampleWriter, e: _Entry):
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
            sub = parent_el if p.parent is None else subpops(parent_el)
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
                    el = population_el(
                        sub, label, counts[p.name], kind, params, data, inside, gate_ids, p.parent
                    )
                    gate_ids[p.name] = el.find("Gate").get(f"{_G}id")
            except (Refused, CytophenError) as exc:
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
            raise Refused(f"its operand(s) {', '.join(missing)} are not in the workspace")
        deps = []
        for op, complement in g.operands:
            dep = written_paths[op][len("root/") :]
            if complement:  # a NOT node of the operand beside this one (within the same parent)
                helper = _unique(f"NOT {_gate_label(op, None)}", taken)
                bool_el(sub, "NotNode", helper, [dep], None)
                dep = f"{paths[p.parent]}/{helper}"[len("root/") :]
            deps.append(dep)
        tag = {"and": "AndNode", "or": "OrNode", "not": "NotNode"}[g.op]
        return bool_el(sub, tag, label, deps, counts[p.name])


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


# ------------------------------------------------------------------------------------------------
# read back and compare
# ------------------------------------------------------------------------------------------------
def _check(written: WrittenWorkspace, entries: list[_Entry]) -> None:
    from cytophen.engine import gate
    from cytophen.interop.flowjo._workspace import Workspace

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
