"""Adapters at the edge: YAML templates, GatingML 2.0, FlowJo workspaces."""

from __future__ import annotations

from pathlib import Path

from cytophen.errors import TemplateError

__all__ = ["load_template", "load_batch_template", "template_kind"]


def load_template(path):
    """Load a gating template, choosing the reader by extension, else by content.

    ``.yaml``/``.yml`` → cytophen YAML; ``.xml`` (GatingML 2.0) → GatingML; ``.wsp`` → FlowJo
    workspace. Every reader returns a :class:`cytophen.template.Template`.

    ``path`` may also name a template shipped with cytophen (``"bcell"``, ``"bcell.yaml"``): a
    path that exists wins, else the shipped template of that name is loaded (see
    :mod:`cytophen.interop.shipped`).
    """
    from cytophen.interop.shipped import resolve_template

    p = resolve_template(path)
    if p.is_dir():
        raise TemplateError(
            f"{p} is a folder; expected a .yaml, GatingML .xml or FlowJo .wsp file", file=str(p)
        )
    kind = _kind(p)
    if kind == "yaml":
        from cytophen.interop.yaml_template import load_yaml_template

        return load_yaml_template(p)
    if kind == "gatingml":
        from cytophen.interop.gatingml import load_gatingml

        return load_gatingml(p)
    if kind == "flowjo":
        from cytophen.interop.flowjo._workspace import load_workspace

        return load_workspace(p)
    raise TemplateError(
        f"cannot tell what kind of template {p.name} is; expected a cytophen YAML (.yaml), "
        "GatingML 2.0 (.xml) or FlowJo workspace (.wsp)",
        file=str(p),
    )


def load_batch_template(path, *, group: str | None = None):
    """What :func:`cytophen.gate_files` gates a batch with: the template of ``path``, except for
    a FlowJo workspace, where each file is gated with its own workspace sample's gates (a
    :class:`cytophen.interop.flowjo.Workspace` of all samples, or of ``group``)."""
    p = Path(path)
    if p.is_file() and _kind(p) == "flowjo":
        from cytophen.interop.flowjo._workspace import Workspace

        return Workspace(p, group=group)
    if group is not None:
        raise TemplateError(
            f"group {group!r}: only a FlowJo workspace has groups; {p.name} is not one",
            file=str(p),
        )
    return load_template(p)


def _kind(p: Path) -> str | None:
    ext = p.suffix.lower()
    if ext in (".yaml", ".yml"):
        return "yaml"
    if ext == ".wsp":
        return "flowjo"
    head = p.read_bytes()[:4096].decode("utf-8", "replace")
    # FlowJo and FACSDiva XML go to the FlowJo reader (which names what it does not read)
    flowjo = "<Workspace" in head or "<bdfacs" in head.lower()
    if ext in (".xml", ".gml"):
        return "flowjo" if flowjo else "gatingml"
    if flowjo:
        return "flowjo"
    if "gating-ml" in head.lower() or "gatingml" in head.lower() or "<gating:" in head:
        return "gatingml"
    if head.lstrip().startswith(("template:", "name:", "populations:", "panel:", "#", "---")):
        return "yaml"
    return None


def template_kind(path: str | Path) -> str | None:
    """What kind of template file ``path`` is, by extension, else by content: ``'yaml'``,
    ``'gatingml'``, ``'flowjo'`` (FlowJo or FACSDiva XML), or ``None`` when it cannot tell."""
    return _kind(Path(path))
