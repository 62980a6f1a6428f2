"""``cytophen templates``: the gating templates shipped with cytophen.

- ``cytophen templates`` (or ``templates list``): name, version and one line on each;
- ``cytophen templates show NAME``: the template itself (YAML, to stdout);
- ``cytophen templates copy NAME [-o FILE]``: a copy in the working folder for a lab to adapt
  (``NAME.yaml`` by default; an existing file is never overwritten).

A template argument of any command resolves a path that exists first, then a shipped name, so
``cytophen gate samples/ --template bcell.yaml`` uses the lab's copy once it exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from cytophen.cli._common import Invalid, check_out_file, out_option, quiet_option

__all__ = ["templates"]


def _get(name: str):
    from cytophen.interop.shipped import find_shipped, shipped_templates

    path = find_shipped(name)
    if path is None:
        names = ", ".join(t.name for t in shipped_templates())
        raise Invalid(f"no shipped template {name!r}; shipped: {names} (cytophen templates)")
    return next(t for t in shipped_templates() if t.path == path)


@click.group(name="templates", invoke_without_command=True)
@click.pass_context
def templates(ctx: click.Context) -> None:
    """List the gating templates shipped with cytophen (name, version, what it gates); show one,
    or copy one into the working folder to adapt it.

    Every command that takes a template (--template, validate, convert) finds these by name from
    any folder: --template bcell or --template bcell.yaml. A file of that name in the working
    folder wins.

    \b
    Examples:
      cytophen templates
      cytophen templates show treg
      cytophen templates copy bcell            # writes ./bcell.yaml
      cytophen gate samples/ --template bcell.yaml
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@templates.command(name="list")
def list_() -> None:
    """Name, version and one line on each shipped template."""
    from cytophen.interop.shipped import shipped_dir, shipped_templates

    rows = shipped_templates()
    if not rows:
        click.echo(f"no templates found in {shipped_dir()}")
        return
    w_name = max(len("name"), *(len(t.name) for t in rows))
    w_ver = max(len("version"), *(len(t.version) for t in rows))
    click.echo(f"{'name':<{w_name}}  {'version':<{w_ver}}  description")
    for t in rows:
        click.echo(f"{t.name:<{w_name}}  {t.version:<{w_ver}}  {t.description}")
    click.echo(f"\n(in {shipped_dir()}; use: cytophen gate FILES --template NAME)", err=True)


@templates.command(name="show")
@click.argument("name")
def show(name: str) -> None:
    """Print the shipped template NAME (YAML)."""
    t = _get(name)
    click.echo(f"# {t.path}", err=True)
    click.echo(t.path.read_text(encoding="utf-8"), nl=False)


@templates.command(name="copy")
@click.argument("name")
@out_option(metavar="FILE", help="File to write (default: NAME.yaml in the working folder).")
@quiet_option
def copy(name: str, out: Path | None, quiet: bool) -> None:
    """Copy the shipped template NAME into the working folder, to adapt for a lab's panel.

    An existing file is never overwritten. Gate with the copy by its file name: a file that
    exists wins over the shipped template of the same name.
    """
    t = _get(name)
    dest = out if out is not None else Path(f"{t.name}.yaml")
    if dest.is_dir():
        dest = dest / f"{t.name}.yaml"
    check_out_file(dest, option="--out" if out is not None else "copy (or choose -o)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "xb") as fh, open(t.path, "rb") as src:  # "x": never overwrite
            shutil.copyfileobj(src, fh)
    except FileExistsError:
        raise Invalid(
            f"{dest} exists; not overwritten (delete it, or choose another file with -o)"
        ) from None
    if not quiet:
        click.echo(
            f"wrote {dest} ({t.name} {t.version}); edit it, then: "
            f"cytophen gate FILES --template {dest}"
        )
