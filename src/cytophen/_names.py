"""File and folder names made from ids (sample ids, gate names): safe on every file system, and
two different ids never share a name."""

from __future__ import annotations

import hashlib
import re

__all__ = ["safe_name", "short_hash"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(10)),
    *(f"LPT{i}" for i in range(10)),
}
_MAX_NAME = 80


def short_hash(text: str) -> str:
    """The first 8 hex digits of ``text``'s SHA-256."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(sample_id: str) -> str:
    """A file-name-safe form of ``sample_id`` (a sample id, a gate name): the one rule for the
    folders and files cytophen names after ids.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``, leading/trailing dots and underscores are
    dropped, the result is cut to 80 characters, and when any of that changed the id (or it is a
    reserved device name such as ``CON``) ``-<8 hex digits of its sha256>`` is appended so that two
    different ids never share a name.

    Examples
    --------
    >>> safe_name("patient01_d0")
    'patient01_d0'
    >>> safe_name("../../etc/x").startswith("etc_x-")
    True
    """
    base = _UNSAFE.sub("_", str(sample_id)).strip("._")[:_MAX_NAME] or "sample"
    if base != sample_id or base.split(".")[0].upper() in _RESERVED:
        base = f"{base}-{short_hash(str(sample_id))}"
    return base
