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

from pathlib import Path

from cytophen.errors import TemplateError, TemplateProblem
from cytophen.interop.validate import check_sample
from cytophen.interop.yaml_template._dump import dump_template, template_to_yaml
from cytophen.interop.yaml_template._load import ParsedTemplate, parse_template
from cytophen.interop.yaml_template._reader import MAX_TEMPLATE_BYTES, MAX_TEMPLATE_VALUES
from cytophen.interop.yaml_template._schema import FORMAT_VERSION
from cytophen.template import Template

__all__ = [
    "load_yaml_template",
    "dump_template",
    "template_to_yaml",
    "validate_template",
    "parse_template",
    "ParsedTemplate",
    "check_sample",
    "FORMAT_VERSION",
    "MAX_TEMPLATE_BYTES",
    "MAX_TEMPLATE_VALUES",
]


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
    parsed = parse_template(path, text=text)
    errors = [p for p in parsed.problems if p.severity == "error"]
    if errors or parsed.template is None:
        raise TemplateError(
            errors
            or parsed.problems
            or [TemplateProblem(parsed.file, None, None, "invalid template")]
        )
    return parsed.template


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
    parsed = parse_template(path, text=text)
    problems = list(parsed.problems)
    if sample is not None and parsed.template is not None:
        problems.extend(
            check_sample(parsed.template, sample, positions=parsed.positions, file=parsed.file)
        )
    return problems
