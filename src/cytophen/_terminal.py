"""Text from files and users made safe to print on a terminal."""

from __future__ import annotations

import re

__all__ = ["printable"]

#: Control characters (C0, DEL, C1: escape sequences can set a terminal's title, move the cursor
#: or hide text) and the bidirectional overrides that make text display in another order.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: The same but for tabs and line breaks (``\t``, ``\n``).
_UNSAFE_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, lines: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``), so
    that a sample id or file name shows as what it is instead of acting on the terminal
    (``lines=True``: line breaks and tabs of a multi-line message kept).

    Examples
    --------
    >>> printable("P01\\x1b]0;owned\\x07")
    'P01\\\\x1b]0;owned\\\\x07'
    """
    return (_UNSAFE_IN_LINES if lines else _UNSAFE).sub(_escape, str(text))
