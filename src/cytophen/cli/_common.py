"""What every ``cytophen`` command shares: the ``-o/--out``, ``-q/--quiet`` and ``--repairs``
options, and the up-front check of an output path (exit 2, one line, before anything is read or
written)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

__all__ = [
    "Invalid",
    "check_out_dir",
    "check_out_file",
    "out_option",
    "quiet_option",
    "repairs_option",
    "parse_repairs",
]


class Invalid(click.ClickException):
    """A bad invocation: exit code 2, nothing written."""

    exit_code = 2


def quiet_option(f):
    """``-q/--quiet``: the same meaning on every command."""
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="Print only warnings and errors (no progress or summary).",
    )(f)


def out_option(*, metavar: str, help: str, required: bool = False, default=None, dest: str = "out"):
    """``-o/--out``: where a command writes (a folder or a file, per command)."""
    return click.option(
        "-o",
        "--out",
        dest,
        required=required,
        default=default,
        metavar=metavar,
        type=click.Path(path_type=Path),
        help=help,
    )


def repairs_option(f):
    """``--repairs``: the FCS repairs allowed while reading (see :func:`parse_repairs`)."""
    return click.option(
        "--repairs",
        default=None,
        metavar="NAMES",
        callback=lambda ctx, param, value: parse_repairs(value),
        help="FCS repairs to allow on top of the default ones, comma-separated (e.g. "
        "truncated_data); 'none' first = only those listed ('none' alone: strict), 'all' = every "
        "repair. Known: " + ", ".join(sorted(_known_repairs())) + ".",
    )(f)


def _known_repairs() -> frozenset[str]:
    from cytophen.io.fcs import REPAIRS

    return REPAIRS


def parse_repairs(text: str | None) -> frozenset[str]:
    """The repairs a ``--repairs`` value allows.

    ``None`` (option not given): the default repairs. Names are added to the default repairs
    (``truncated_data`` reads a truncated file); ``none`` first starts from no repair instead
    (``none`` alone is strict), ``all`` allows every repair.

    Raises
    ------
    Invalid
        An unknown name, listing the known ones.
    """
    from cytophen.io.fcs import DEFAULT_REPAIRS, REPAIRS

    if text is None:
        return DEFAULT_REPAIRS
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words:
        raise Invalid("--repairs: give repair names (or 'none' or 'all')")
    chosen = set(DEFAULT_REPAIRS)
    if words[0] == "none":
        chosen, words = set(), words[1:]
    for w in words:
        if w == "all":
            chosen |= REPAIRS
        elif w in REPAIRS:
            chosen.add(w)
        else:
            raise Invalid(
                f"--repairs: unknown repair {w!r}; known: {', '.join(sorted(REPAIRS))} "
                "(and 'none', 'all')"
            )
    return frozenset(chosen)


def check_out_dir(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """``path`` as an output folder: an existing folder this process can write in, or a path whose
    nearest existing ancestor is such a folder. Nothing is created.

    Raises
    ------
    Invalid
        A file, a path under a file, a folder that cannot be written in, an invalid name.
    """
    p = Path(path)
    _check_folder(p, path, option)
    return p


def check_out_file(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """``path`` as an output file: not a folder, in a folder that exists or can be created and
    that this process can write in. Nothing is created.

    Raises
    ------
    Invalid
        As :func:`check_out_dir`, and when ``path`` is a folder.
    """
    p = Path(path)
    try:
        is_dir = p.is_dir()
    except (OSError, ValueError) as exc:
        raise Invalid(f"{option} {path}: not a usable path ({_reason(exc)})") from None
    if is_dir or str(path).endswith(("/", os.sep)):
        raise Invalid(f"{option} {path}: is a folder; expected a file name")
    _check_folder(p.parent, path, option)
    return p


def _check_folder(folder: Path, path, option: str) -> None:
    """``folder`` exists and can be written in, or can be created: else Invalid naming ``path``
    (what the user typed)."""
    try:
        if folder.exists():
            if not folder.is_dir():
                what = (
                    "exists and is not a folder" if folder == Path(path) else f"{folder} is a file"
                )
                raise Invalid(f"{option} {path}: {what}")
            base = folder
        else:
            base = _nearest_existing(folder)
            if not base.is_dir():
                raise Invalid(f"{option} {path}: cannot create it, {base} is a file")
    except (OSError, ValueError) as exc:
        raise Invalid(f"{option} {path}: not a usable path ({_reason(exc)})") from None
    _probe(base, path, option)


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            return q
    return Path(p.anchor)  # pragma: no cover - the root always exists


def _probe(folder: Path, path, option: str) -> None:
    """Create and remove a file in ``folder``: the only test that tells a read-only mount, an
    ACL or a full quota from a folder we can write in (``os.access`` is always true for root)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cytophen-write-test-")
    except OSError as exc:
        where = "" if Path(folder) == Path(path) else f" in {folder}"
        raise Invalid(f"{option} {path}: cannot write{where} ({_reason(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
