"""Loading a YAML template: the document read with positions, then its top level, panel and
gate tree, every problem collected before one :class:`~cytophen.errors.TemplateError` is raised."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cytophen.errors import TemplateError, TemplateProblem
from cytophen.interop.yaml_template._checks import Checker, _describe, _plain
from cytophen.interop.yaml_template._gates import GateReader
from cytophen.interop.yaml_template._panel import PanelReader
from cytophen.interop.yaml_template._reader import Pos, _Map, check_size, read_document, read_text
from cytophen.interop.yaml_template._schema import _TOP_KEYS, FORMAT_VERSION
from cytophen.interop.yaml_template._tree import TreeReader
from cytophen.template import Population, Template


@dataclass
class ParsedTemplate:
    """What reading a YAML template found.

    Attributes
    ----------
    file
        The file named in the problems.
    problems
        Every problem, errors and warnings, each with its line and column.
    template
        The template, or ``None`` when there are errors.
    positions
        Panel marker name -> ``(line, column)`` of its entry (for problems found later, such as
        a marker a sample lacks).
    """

    file: str
    problems: list[TemplateProblem]
    template: Template | None
    positions: dict[str, Pos] = field(default_factory=dict)


class _Builder(Checker):
    """One template file: its panel, gate and tree readers share the list of problems."""

    def __init__(self, file: str, base_dir: Path | None):
        super().__init__(file, [])
        self.panel = PanelReader(file, self.problems, base_dir)
        self.tree = TreeReader(GateReader(self.panel))

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
            self.panel.read_matrices(doc["matrices"], doc.vpos["matrices"])
        compensation = "FCS"
        if "compensation" in doc:
            compensation = self.panel.read_compensation(
                doc["compensation"], doc.vpos["compensation"]
            )
        if "panel" in doc:
            self.panel.read_panel(doc["panel"], doc.vpos["panel"])
        pops: list[Population] = []
        if "populations" in doc:
            pops = self.tree.read_populations(doc["populations"], doc.vpos["populations"])
        if self.failed:
            return None
        tmeta = _plain(meta) if isinstance(meta, dict) else {}
        if self.tree.quadrant_groups:
            tmeta = {
                **tmeta,
                "quadrant_gates": {k: list(v) for k, v in self.tree.quadrant_groups.items()},
            }
        try:
            return Template(
                name=str(name),
                populations=pops,
                version=str(version),
                markers={k: m for k, m in self.panel.markers.items() if k not in self.panel.ratios},
                compensation=compensation,
                matrices=self.panel.matrices,
                description=str(description or ""),
                source=self.file,
                meta=tmeta,
            )
        except TemplateError as exc:  # pragma: no cover - the builder checks all of these first
            self.problems.extend(exc.problems)
            return None


def parse_template(path: str | Path | None, *, text: str | None = None) -> ParsedTemplate:
    """Read a YAML template and collect every problem (instead of raising at the first error).

    Parameters
    ----------
    path
        The ``.yaml`` file (``None`` with ``text``: problems then name ``<template>``).
    text
        The YAML text, if already read.

    Returns
    -------
    ParsedTemplate

    Raises
    ------
    TemplateError
        Only when the file cannot be read at all (missing, too large, not UTF-8).
    """
    file = str(path) if path is not None else "<template>"
    if text is None:
        text = read_text(path, file)
    check_size(len(text), file)
    base = Path(path).resolve().parent if path is not None else None
    b = _Builder(file, base)
    ok, doc = read_document(text, b.err)
    template = b.build(doc) if ok else None
    return ParsedTemplate(file, b.problems, template, b.panel.marker_pos)
