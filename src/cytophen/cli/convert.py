"""``cytophen convert``: turn a FlowJo workspace or a GatingML 2.0 file into a cytophen template
(and any template into GatingML 2.0).

A thin layer over :func:`cytophen.interop.flowjo.load_workspace`,
:func:`cytophen.interop.gatingml.load_gatingml`, :meth:`cytophen.template.Template.to_yaml` and
:func:`cytophen.interop.gatingml.export_gatingml`.

Exit codes: 0 written; 2 bad invocation, unreadable input or a template the output format cannot
express (nothing is written then).
"""

from __future__ import annotations

from pathlib import Path

import click

from cytophen.cli._common import Invalid as _Invalid
from cytophen.cli._common import check_out_file, out_option, quiet_option, repairs_option

__all__ = ["convert"]


@click.command(name="convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--sample",
    default=None,
    metavar="NAME",
    help="FlowJo: the sample whose gate tree to take (default: first sample of --group).",
)
@click.option(
    "--group",
    default="All Samples",
    show_default=True,
    metavar="GROUP",
    help="FlowJo: group to take the first sample from when --sample is not given.",
)
@click.option(
    "--compensation",
    type=click.Choice(["workspace", "keyword"]),
    default="workspace",
    show_default=True,
    help="FlowJo: compensate with the workspace's matrix (stored in the template) or with "
    "each FCS file's own spillover keyword.",
)
@out_option(
    metavar="FILE",
    help="Output file (default: SOURCE with .yaml, or .gatingml.xml for --format gatingml; in "
    "the working folder for a shipped template).",
)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["yaml", "gatingml", "flowjo"]),
    default=None,
    help="Output format (default: from the --out extension: .xml GatingML, .wsp FlowJo, else "
    "yaml).",
)
@click.option(
    "--fcs",
    "fcs",
    multiple=True,
    metavar="PATH",
    help="FlowJo output: FCS files or folders to place the gates on (FlowJo keeps the gates of "
    "each sample; data-driven gates are frozen where they fall on each). Repeatable.",
)
@click.option(
    "--list-samples", is_flag=True, help="FlowJo: list groups and samples, write nothing."
)
@repairs_option
@quiet_option
def convert(source, sample, group, compensation, out, fmt, fcs, list_samples, repairs,
            quiet):  # fmt: skip
    """Convert SOURCE (FlowJo .wsp, GatingML 2.0 .xml or cytophen .yaml, or a shipped template
    by name) into a cytophen YAML template, into GatingML 2.0, or (with the FCS files) into a
    FlowJo 10 workspace.

    \b
    Examples:
      cytophen convert gating.wsp --sample 68983.fcs --out gating.yaml
      cytophen convert gating.wsp --format gatingml --out gating.xml
      cytophen convert gates.xml --out gates.yaml
      cytophen convert treg --out treg.xml
      cytophen convert treg --out review.wsp --fcs samples/
    """
    from cytophen.errors import CytophenError
    from cytophen.interop import template_kind
    from cytophen.interop.shipped import find_shipped

    if out is not None:
        check_out_file(out)
    shipped = None if source.exists() else find_shipped(str(source))
    if shipped is not None:
        source = shipped
    if not source.is_file():
        raise _Invalid(
            f"{source}: no such file (expected a FlowJo .wsp, GatingML 2.0 .xml, cytophen .yaml "
            "or a shipped template's name)"
        )
    kind = template_kind(source)
    try:
        if kind == "flowjo":
            from cytophen.interop.flowjo import load_workspace, workspace_samples

            if list_samples:
                for g, names in workspace_samples(source).items():
                    click.echo(f"{g}: {', '.join(names) if names else '(no samples)'}")
                return 0
            template = load_workspace(source, sample=sample, group=group, compensation=compensation)
        elif kind in ("gatingml", "yaml"):
            if sample is not None or list_samples:
                raise _Invalid("--sample/--list-samples apply to FlowJo workspaces only")
            from cytophen.interop import load_template

            template = load_template(source)
        else:
            raise _Invalid(
                f"{source}: cannot tell the format; expected a FlowJo workspace (.wsp), a "
                "GatingML 2.0 file (.xml) or a cytophen YAML template (.yaml)"
            )
    except CytophenError as exc:
        raise _Invalid(str(exc)) from None

    if fmt is None:
        if out is not None:
            ext = out.suffix.lower()
            fmt = "gatingml" if ext in (".xml", ".gml") else "flowjo" if ext == ".wsp" else "yaml"
        else:
            fmt = "gatingml" if kind == "yaml" else "yaml"
    if fmt == "flowjo":
        if out is None:
            out = (Path(source.name) if shipped is not None else source).with_suffix(
                ".cytophen.wsp"
            )
            check_out_file(out, option="output (or choose --out)")
        return _to_flowjo(source, kind, template, sample, compensation, out, fcs, repairs, quiet)
    if fcs:
        raise _Invalid("--fcs applies to FlowJo output only (--format flowjo or --out X.wsp)")
    if out is None:
        out = (Path(source.name) if shipped is not None else source).with_suffix(
            ".yaml" if fmt == "yaml" else ".gatingml.xml"
        )
        check_out_file(out, option="output (or choose --out)")
    if out.resolve() == source.resolve():
        raise _Invalid(f"{out}: the output would overwrite the input; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        if fmt == "yaml":
            template.to_yaml(tmp)
        else:
            template.to_gatingml(tmp)
        tmp.replace(out)
    except CytophenError as exc:
        tmp.unlink(missing_ok=True)
        raise _Invalid(f"cannot write {out} as {fmt}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not quiet:
        click.echo(
            f"wrote {out} ({fmt}, {len(template.populations)} populations from {source.name})"
        )
    return 0


def _to_flowjo(source: Path, kind, template, sample, compensation, out, fcs, repairs,
               quiet) -> int:  # fmt: skip
    """Gate the --fcs files and write the gates as placed on each as a FlowJo 10 workspace."""
    from cytophen.errors import CytophenError
    from cytophen.interop.flowjo import Workspace, write_workspace
    from cytophen.pipeline.batch import gate_files

    if not fcs:
        raise _Invalid(
            "a FlowJo workspace holds the gates of each sample: give the FCS files they go on "
            "with --fcs FILE_OR_FOLDER"
        )
    if out.resolve() == source.resolve():
        raise _Invalid(f"{out}: the output would overwrite the input; choose another --out")
    if kind == "flowjo" and sample is None:  # each file with its own sample's gates
        template = Workspace(source, compensation=compensation)
    try:
        res = gate_files(list(fcs), template, progress=False, repairs=repairs)
        written = write_workspace(res, out, template=template)
    except CytophenError as exc:
        raise _Invalid(f"cannot write {out} as a FlowJo workspace: {exc}") from None
    for row in res.errors.itertuples(index=False):
        click.echo(f"warning: {row.sample} not written [{row.stage}]: {row.message}", err=True)
    for note in written.notes:
        click.echo(f"warning: {note}", err=True)
    if not quiet:
        click.echo(f"wrote {out} (FlowJo 10 workspace, {len(written.samples)} samples)")
    return 0
