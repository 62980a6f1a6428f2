"""Reading and writing FCS files (FCS 2.0, 3.0, 3.1 and 3.2).

Read: list mode data sets of ``$DATATYPE`` I (any whole-byte ``$PnB`` up to 64, 24-bit and mixed
widths included, masked to the next power of two >= ``$PnR`` as FlowIO/fcsparser do), F, D and
fixed-width ASCII (A), both byte orders, FCS 3.2 per-channel ``$PnDATATYPE``, ``$NEXTDATA`` chains
(``dataset=k``), supplemental TEXT. Spillover from ``$SPILLOVER``/``SPILL``/``$SPILL``/``$COMP``
(:func:`parse_spillover_keyword`). Write: FCS 3.1 (:func:`write_fcs`).

Reading is defensive: every deviation from the standard that cytophen knows how to survive is a
*named repair*. The default set of repairs is applied with a loud :class:`~cytophen.errors.FCSWarning`
naming the file and the repair; pass ``repairs=()`` to be strict (each of those deviations then raises
:class:`~cytophen.errors.FCSError` naming the repair that would read it). Nothing is reinterpreted
silently.

Repairs (``REPAIRS``; all but ``truncated_data`` are on by default):

``off_by_one``
    The DATA segment is one byte longer than ``$TOT`` events need (``$ENDDATA`` points one byte
    past the data: MACSQuant, Beckman Coulter). The extra byte is ignored.
``extra_data``
    The DATA segment is longer than ``$TOT`` events need by more than one byte; the first ``$TOT``
    events are read.
``text_offsets``
    The HEADER and TEXT (``$BEGINDATA``/``$ENDDATA``) disagree about where DATA is. The TEXT offsets
    are used when they are consistent with the file (inside it, long enough for ``$TOT`` events),
    else the HEADER's (FlowIO raises here, fcsparser silently trusts the HEADER).
``blank_header_offsets``
    The HEADER's DATA offset fields are blank or not numbers; ``$BEGINDATA``/``$ENDDATA`` are used.
    (Zeros are standard for files over 99,999,999 bytes and need no repair.)
``duplicate_keywords``
    A keyword appears twice in TEXT; the first value is kept.
``latin1_text``
    FCS 3.1/3.2 TEXT holds bytes that are not UTF-8; they are decoded as Latin-1. (FCS 2.0/3.0
    declare no encoding: non-UTF-8 bytes there are read as Latin-1 without a warning.)
``text_format``
    TEXT does not end with its delimiter, or has a key without a value; what can be paired is kept.
``missing_names``
    A ``$PnN`` is missing; the channel is called ``P<n>``.
``truncated_data`` (opt-in)
    The file ends before the DATA segment does; only the complete events present are read.

Two TEXT conventions are told apart by position, not by a repair: a doubled delimiter inside a
value is an escaped delimiter (FCS 3.x, ``GFP//FITC`` is ``GFP/FITC``); a doubled delimiter right
after a keyword is an empty value (FCS 2.0 CellQuest files write ``$P3S`` empty that way).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from cytophen.errors import FCSError
from cytophen.io._fcs_data import _decode, _layout, _resolve_data
from cytophen.io._fcs_spillover import find_spillover, parse_spillover_keyword
from cytophen.io._fcs_text import (
    DEFAULT_REPAIRS,
    REPAIRS,
    FCSDataSet,
    _open,
    _walk,
    _Warner,
    check_repairs,
    read_fcs_datasets,
)
from cytophen.io._fcs_write import write_fcs
from cytophen.io.sample import Sample
from cytophen.markers import relabel

__all__ = [
    "REPAIRS",
    "check_repairs",
    "DEFAULT_REPAIRS",
    "FCSDataSet",
    "read_fcs",
    "read_fcs_datasets",
    "parse_spillover_keyword",
    "find_spillover",
    "write_fcs",
]

# --------------------------------------------------------------------------------------------------
# reading


def read_fcs(
    path: str | os.PathLike,
    *,
    dataset: int = 0,
    repairs: Iterable[str] | None = DEFAULT_REPAIRS,
    markers: Mapping[str, str] | None = None,
) -> Sample:
    """Read one data set of an FCS 2.0/3.0/3.1/3.2 file.

    Parameters
    ----------
    path
        The file (any extension: ``.fcs``, ``.lmd``, ``.B08`` ...).
    dataset
        Which data set of a ``$NEXTDATA`` chain to read (0 = first).
    repairs
        Named repairs allowed (see :data:`REPAIRS` and the module docstring); each applied repair
        warns with :class:`~cytophen.errors.FCSWarning`. ``()`` is strict.
    markers
        ``{channel: marker}`` for files without ``$PnS`` (or with wrong ones): these names replace
        the file's for those channels (``$PnN`` matched exactly, or ignoring case and punctuation,
        so FlowJo's ``_`` for ``/`` matches). See :func:`cytophen.markers.read_marker_csv` for a
        CSV with a row per channel, optionally per file.

    Returns
    -------
    Sample
        ``events`` is ``(n_events, n_channels)``: float32 when every channel fits it exactly (F,
        and integers of at most 24 significant bits after the ``$PnR`` mask), float64 otherwise.
        Integer values are masked to the next power of two >= ``$PnR`` (as FlowIO and fcsparser do).

    Raises
    ------
    FCSError
        Not an FCS file, truncated, unsupported layout, inconsistent keywords, a data set that does
        not exist ... naming the file and keyword. Never a numpy error.

    Examples
    --------
    >>> s = read_fcs("data1.fcs")  # doctest: +SKIP
    >>> s.events.shape, s.channels[:2]  # doctest: +SKIP
    ((13367, 8), ['FSC-H', 'SSC-H'])
    """
    chosen = check_repairs(repairs)
    markers_map = markers
    if isinstance(dataset, bool) or not isinstance(dataset, (int, np.integer)) or dataset < 0:
        raise FCSError(Path(path), f"dataset must be a whole number >= 0, got {dataset!r}")
    p, f, size = _open(path)
    warner = _Warner(p, chosen)
    with f:
        chain = _walk(p, f, size, warner, int(dataset))
        if len(chain) <= dataset:
            n = len(chain)
            raise FCSError(
                p,
                f"data set {dataset} requested but the file has {n} data set{'s' if n != 1 else ''} "
                f"(0..{n - 1})",
                keyword="$NEXTDATA",
            )
        ds = chain[int(dataset)]
        layout, big = _layout(ds, p)
        event_bytes = sum(c.nbytes for c in layout)
        start, n_events = _resolve_data(ds, p, size, event_bytes, warner)
        nbytes = n_events * event_bytes
        raw = np.empty(nbytes, dtype=np.uint8)
        if nbytes:
            f.seek(start)
            got = f.readinto(memoryview(raw))
            if got != nbytes:
                raise FCSError(
                    p, f"file truncated: read {got} of {nbytes} DATA bytes", keyword="$TOT"
                )
    try:
        events = _decode(raw, n_events, layout, big)
    except ValueError as exc:  # ASCII data that is not numbers
        raise FCSError(p, f"DATA cannot be decoded: {exc}", keyword="$DATATYPE") from None

    names: list[str] = []
    markers: list[str] = []
    for n in range(1, len(layout) + 1):
        name = ds.get(f"$P{n}N")
        if name is None or not name.strip():
            warner.repair(
                "missing_names", f"channel {n} has no $P{n}N; called 'P{n}'", keyword=f"$P{n}N"
            )
            name = f"P{n}"
        names.append(name)
        markers.append(ds.get(f"$P{n}S") or "")
    if markers_map:
        markers = relabel(names, markers, dict(markers_map), path=p, source="the markers mapping")
    _, spill = find_spillover(ds.keywords, path=p, channels=names)
    return Sample(
        events=events,
        channels=names,
        markers=markers,
        keywords=dict(ds.keywords),
        spillover=spill,
        path=p,
        dataset=int(dataset),
    )
