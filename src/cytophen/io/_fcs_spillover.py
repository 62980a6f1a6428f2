"""Spillover keywords of FCS files (``$SPILLOVER``, ``SPILL``, ``$SPILL``, ``SPILLOVER``, ``$COMP``)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cytophen.errors import FCSWarning
from cytophen.io._fcs_text import _parse_int

_SPILLOVER_KEYS = ("$SPILLOVER", "SPILL", "$SPILL", "SPILLOVER", "$COMP")

# --------------------------------------------------------------------------------------------------
# spillover


def _spill_warn(path, keyword, problem) -> None:
    where = path if path is not None else "<FCS data>"
    kw = f" [{keyword}]" if keyword else ""
    warnings.warn(f"{where}: spillover {problem}{kw}; ignored", FCSWarning, stacklevel=3)


def parse_spillover_keyword(
    text: str | None,
    *,
    path: str | os.PathLike | None = None,
    keyword: str | None = None,
    channels: Sequence[str] | None = None,
) -> pd.DataFrame | None:
    """Parse a ``$SPILLOVER`` / ``SPILL`` / ``$SPILL`` / ``$COMP`` keyword value.

    The format is ``n,name_1,...,name_n,s_11,s_12,...,s_nn`` (row-major: row *i* is the spill of
    the dye primarily measured in detector *i* into every detector). Numbers written with decimal
    commas (BD FACSDiva in some locales: the value list then has ``2 n^2`` fields) are read too.
    ``$COMP`` values without names are matched to ``channels`` when its ``n`` equals their number.

    Parameters
    ----------
    text
        The keyword's value.
    path, keyword
        Named in warnings.
    channels
        The file's ``$PnN`` names, for nameless ``$COMP`` matrices.

    Returns
    -------
    pandas.DataFrame or None
        ``n x n`` float64 matrix, index and columns the detector names; ``None`` (with an
        :class:`~cytophen.errors.FCSWarning`) when the value is empty or malformed. Never raises.

    Examples
    --------
    >>> float(parse_spillover_keyword("2,FL1-A,FL2-A,1,0.1,0.02,1").loc["FL1-A", "FL2-A"])
    0.1
    """
    if text is None or not str(text).strip():
        return None
    tokens = [t.strip() for t in str(text).strip().strip(",").split(",")]
    n = _parse_int(tokens[0]) if tokens else None
    if n is None or n < 1 or n > 1000:
        _spill_warn(path, keyword, f"does not start with a matrix size (found {tokens[0][:20]!r})")
        return None
    rest = tokens[1:]

    def numbers(items: list[str]) -> list[float] | None:
        try:
            vals = [float(x) for x in items]
        except ValueError:
            return None
        return vals if all(math.isfinite(v) for v in vals) else None

    names: list[str] | None
    if len(rest) >= n + n * n and numbers(rest[:n]) is None:
        names, vals_text = rest[:n], rest[n:]
    elif len(rest) in (n * n, 2 * n * n) and numbers(rest) is not None:
        names, vals_text = None, rest
    else:
        names, vals_text = rest[:n], rest[n:]
    values = None
    if len(vals_text) == n * n:
        values = numbers(vals_text)
    elif len(vals_text) == 2 * n * n:
        joined = [f"{a}.{b}" for a, b in zip(vals_text[::2], vals_text[1::2])]
        if all(b.isdigit() for b in vals_text[1::2]):
            values = numbers(joined)
    if values is None:
        _spill_warn(
            path,
            keyword,
            f"is malformed: n={n} needs {n} names and {n * n} numbers, found {len(rest)} fields",
        )
        return None
    if names is None:
        if channels is not None and len(channels) == n:
            names = list(channels)
        else:
            _spill_warn(path, keyword, f"has no channel names and n={n} does not match the file")
            return None
    if len(set(names)) != n or any(not nm for nm in names):
        _spill_warn(path, keyword, "names are empty or repeated")
        return None
    matrix = np.asarray(values, dtype=np.float64).reshape(n, n)
    return pd.DataFrame(matrix, index=list(names), columns=list(names))


def find_spillover(
    keywords: Mapping[str, str],
    *,
    path: str | os.PathLike | None = None,
    channels: Sequence[str] | None = None,
) -> tuple[str | None, pd.DataFrame | None]:
    """The first well-formed spillover matrix among ``$SPILLOVER``, ``SPILL``, ``$SPILL``,
    ``SPILLOVER``, ``$COMP`` (keys matched case-insensitively).

    Returns
    -------
    (keyword, DataFrame) or (None, None)
    """
    upper: dict[str, tuple[str, str]] = {}
    for k, v in keywords.items():
        uk = k.upper()
        if uk in _SPILLOVER_KEYS and uk not in upper:
            upper[uk] = (k, v)
    for key in _SPILLOVER_KEYS:
        if key in upper:
            name, value = upper[key]
            df = parse_spillover_keyword(value, path=path, keyword=name, channels=channels)
            if df is not None:
                return name, df
    return None, None
