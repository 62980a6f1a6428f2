"""The templates shipped with cytophen, found by name from any folder.

They are kept once, in the repository's top-level ``gating_templates/`` folder;
``src/cytophen/gating_templates`` is a symbolic link to it, so a source checkout reads that folder
and the wheel installs its files as the package data ``cytophen/gating_templates/``.

How a template argument is resolved (:func:`resolve_template`): a path that exists always wins;
otherwise a bare name (``bcell``, ``bcell.yaml``, ``bcell.yml``) names a shipped template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cytophen.errors import TemplateError

__all__ = [
    "ShippedTemplate",
    "shipped_dir",
    "shipped_templates",
    "find_shipped",
    "resolve_template",
]

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ShippedTemplate:
    """One shipped template: its ``name``, ``version``, the first line of its ``description``
    and the installed file ``path``."""

    name: str
    version: str
    description: str
    path: Path


def shipped_dir() -> Path:
    """The folder of the shipped templates, ``cytophen/gating_templates``.

    In a checkout made without symbolic links (``git config core.symlinks false``) that link is a
    plain file: the checkout's top-level ``gating_templates/`` is read instead."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "gating_templates"
    if installed.is_dir():
        return installed
    return package.parents[1] / "gating_templates"  # src/cytophen -> the checkout's top level


def shipped_templates() -> list[ShippedTemplate]:
    """Every shipped template, by name.

    Examples
    --------
    >>> [t.name for t in shipped_templates()]  # doctest: +SKIP
    ['bcell', 'treg']
    """
    import yaml

    out = []
    for path in sorted(shipped_dir().glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        lines = str(doc.get("description") or "").strip().splitlines()
        out.append(
            ShippedTemplate(
                name=path.stem,
                version=str(doc.get("version", "")),
                description=lines[0].strip() if lines else "",
                path=path,
            )
        )
    return out


def find_shipped(name: str) -> Path | None:
    """The file of the shipped template ``name`` (``bcell``, ``bcell.yaml`` or ``bcell.yml``),
    or ``None`` when no template of that name is shipped (or ``name`` has a folder part)."""
    p = Path(name)
    if p.name != str(name) or p.suffix.lower() not in ("", *_SUFFIXES):
        return None
    stem = p.stem if p.suffix.lower() in _SUFFIXES else p.name
    candidate = shipped_dir() / f"{stem}.yaml"
    return candidate if candidate.is_file() else None


def resolve_template(spec) -> Path:
    """The file a template argument means: ``spec`` itself when that path exists, else the
    shipped template of that name.

    Raises
    ------
    TemplateError
        Neither: the message lists the shipped templates.
    """
    p = Path(spec)
    if p.exists():
        return p
    shipped = find_shipped(str(spec))
    if shipped is not None:
        return shipped
    names = [t.stem for t in sorted(shipped_dir().glob("*.yaml"))]
    hint = f"shipped templates: {', '.join(names)}" if names else "no templates are shipped"
    same = find_shipped(p.name)
    if same is not None and p.name != str(spec):
        hint = f"the shipped template of that name is {Path(p.name).stem!r}; {hint}"
    raise TemplateError(f"template file not found ({hint})", file=str(p))
