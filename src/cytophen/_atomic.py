"""Atomic file writes: a reader (or a crash) only ever sees the old file or the new one.

Every output of cytophen (tables, JSON, plots, reports, FCS files) goes through these: the data is
written to a temporary file in the same folder and renamed over the target with :func:`os.replace`.
Temporary files are named ``.<name>.<random>.tmp`` (the name shortened to fit the file system's
255-byte limit), so that what a killed process left behind is recognisable (:func:`is_temp_name`).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_parts",
    "atomic_write_text",
    "atomic_write_with",
    "temp_file_beside",
    "is_temp_name",
]

#: Longest file name (bytes) on the usual file systems (ext4, XFS, APFS, NTFS in UTF-16 units).
_NAME_MAX = 255
#: What mkstemp adds to the prefix: 8 random characters and the ``.tmp`` suffix.
_TEMP_EXTRA = 8 + len(".tmp")


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """Permissions of a new file under the process umask (mkstemp alone would give 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def temp_file_beside(path: str | Path) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, for writing ``path`` atomically: ``(fd, name)``,
    with the permissions a new file gets under the umask."""
    path = Path(path)
    name = path.name
    room = _NAME_MAX - _TEMP_EXTRA - 2  # the dots around the name
    while len(os.fsencode(name)) > room:  # a long name: the temp name keeps its beginning
        name = name[:-1]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of :func:`temp_file_beside`'s temporary files."""
    return name.startswith(".") and name.endswith(".tmp") and len(name) > _TEMP_EXTRA + 1


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    The rename alone makes the write atomic for readers and against a crash of this process;
    ``fsync`` also makes the content durable against a crash of the machine."""
    atomic_write_parts(path, (data,), fsync=fsync)


def atomic_write_parts(
    path: str | Path, parts: Iterable[bytes | bytearray | memoryview], *, fsync: bool = True
) -> None:
    """Write ``parts`` one after the other to ``path`` atomically, without joining them first
    (an FCS file's header, TEXT and a DATA segment of hundreds of megabytes)."""
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                fh.write(part)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> None:
    """Atomically create ``path`` with ``writer(tmp_path)`` (for writers that need a file name)."""
    fd, tmp = temp_file_beside(path)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
