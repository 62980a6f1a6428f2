"""``cytophen validate T.yaml [--sample F.fcs]``: every problem of a template, at once.

Exit code 0 when the template is valid (warnings allowed), 2 when it has errors.
"""

from __future__ import annotations

from pathlib import Path

import click

from cytophen.cli._common import quiet_option, repairs_option
from cytophen.errors import CytophenError, TemplateError, TemplateProblem


@click.command(name="validate")
@click.argument("template", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--sample",
    "samples",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An FCS file to resolve every panel marker against (repeatable).",
)
@quiet_option
@repairs_option
@click.pass_context
def validate(ctx: click.Context, template: Path, samples: tuple[Path, ...], quiet: bool,
             repairs) -> int:  # fmt: skip
    """Check TEMPLATE (cytophen YAML, GatingML 2.0 or FlowJo .wsp; or a shipped template by
    name: bcell, treg) and report every problem.

    With --sample, also resolve each marker of the panel against the file: a missing or ambiguous
    marker is an error, a missing optional marker a warning (its populations would be reported as
    not measured).
    """
    problems, tmpl = _check(template, samples, repairs)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    for p in problems:
        click.echo(str(p), err=True)
    if not quiet:
        if errors:
            click.echo(
                f"{template}: INVALID: {len(errors)} error(s), {len(warnings)} warning(s)", err=True
            )
        else:
            desc = ""
            if tmpl is not None:
                desc = (
                    f" ({tmpl.name} v{tmpl.version}, {len(tmpl.populations)} populations, "
                    f"hash {tmpl.short_hash})"
                )
            tail = f", {len(warnings)} warning(s)" if warnings else ""
            click.echo(f"{template}: valid{desc}{tail}")
    if errors:
        ctx.exit(2)
    return 0


def _check(path: Path, samples: tuple[Path, ...], repairs=None):
    """(problems, template or None) for a template file (or shipped name) and optional samples."""
    from cytophen.interop.shipped import resolve_template
    from cytophen.interop.validate import check_sample
    from cytophen.interop.yaml_template import parse_template
    from cytophen.io.fcs import DEFAULT_REPAIRS, read_fcs

    try:
        path = resolve_template(path)
    except TemplateError as exc:
        return list(exc.problems), None
    positions: dict = {}
    if path.suffix.lower() in (".yaml", ".yml"):
        parsed = parse_template(path)
        problems, tmpl, positions = list(parsed.problems), parsed.template, parsed.positions
    else:
        from cytophen.interop import load_template

        try:
            tmpl = load_template(path)
            problems = []
        except TemplateError as exc:
            problems = list(exc.problems)
        except CytophenError as exc:
            problems = [TemplateProblem(str(path), None, None, str(exc))]
    if tmpl is not None:
        for s in samples:
            try:
                sample = read_fcs(s, repairs=DEFAULT_REPAIRS if repairs is None else repairs)
                problems.extend(check_sample(tmpl, sample, positions=positions, file=str(path)))
            except CytophenError as exc:
                problems.append(TemplateProblem(str(s), None, None, f"cannot read sample: {exc}"))
    return problems, tmpl
