"""Resolving a template's marker names to a file's channels.

A template says ``CD27``; a file may call that channel ``BV605-A`` with ``$PnS`` ``CD27`` or
``CD27 BV605``. Matching is tried in tiers, and the first tier that matches decides:

1. the name (or an alias) equals a ``$PnN`` exactly;
2. the name equals a whole ``$PnS`` or ``$PnN`` ignoring case, spaces, dashes and underscores;
3. the name equals one word of a ``$PnS`` (words split on spaces, ``/``, ``:``, brackets,
   commas), same rules: ``CD27`` finds ``CD27 BV605``, ``BV605 (CD27)``, ``FITC-A :: CD27``;
4. the same with words also split on dashes and underscores: ``CD19`` finds ``CD19-ECD``, and
   ``FoxP3`` finds the shared channel ``Foxp3-IgM``.

When neither the name nor the template's aliases match, the same tiers are tried with the usual
other spellings of the marker (:data:`SYNONYMS`): ``Viability`` finds ``Live``, ``Live/ Dead`` or
``L/D Aqua - Viability``, ``CD8`` finds ``BV650 - CD8a``, ``FSC-A`` finds ``FSC``. Case, spaces,
dashes, dots and slashes never matter.

No match is a :class:`MarkerError` listing what the file has; two matches in the deciding tier is a
:class:`MarkerError` naming both (add an alias or use the channel name to disambiguate).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cytophen.errors import MarkerError

__all__ = [
    "normalise",
    "resolve",
    "describe_channels",
    "SYNONYMS",
    "synonyms",
    "MarkerMap",
    "read_marker_csv",
    "relabel",
]

_STRIP = re.compile(r"[\s\-_./]+")
_WORDS = re.compile(r"[\s/:()\[\],;]+")
_COARSE_WORDS = re.compile(r"[\s()\[\],;]+")  # keeps 'Live/Dead' whole in 'Live/Dead / CD14'
_FINE_WORDS = re.compile(r"[\s/:()\[\],;\-_]+")


def normalise(name: str) -> str:
    """Lower case, without spaces, dashes, underscores, dots or slashes: ``'CD-27 '`` → ``'cd27'``,
    ``'Live/ Dead'`` → ``'livedead'``."""
    return _STRIP.sub("", str(name)).lower()


#: Other spellings of common markers, tried after a template's own name and aliases. Each group
#: names one thing; a name in a group finds a channel called by any other name of the group.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    (
        "Viability",
        "Live",
        "Live/Dead",
        "LD",
        "L/D",
        "Dead",
        "Live Dead",
        "Viability Dye",
        "Fixable Viability",
        "FVS",
        "FVS440UV",
        "FVS450",
        "FVS510",
        "FVS520",
        "FVS575V",
        "FVS620",
        "FVS660",
        "FVS700",
        "FVS780",
        "Zombie",
        "Zombie Aqua",
        "Zombie NIR",
        "Zombie UV",
        "Zombie Violet",
        "Zombie Yellow",
        "Zombie Green",
        "Zombie Red",
        "Aqua",
        "Vivid",
        "LIVE/DEAD Aqua",
        "ViaKrome",
        "7-AAD",
        "7AAD",
        "DAPI",
        "PI",
        "Propidium Iodide",
        "eFluor 780",
        "eF780",
        "eFluor 506",
        "eF506",
    ),
    ("FSC-A", "FSC", "FS", "FSC-Area", "FS INT", "FS Lin", "FS Area"),
    ("FSC-H", "FSC-Height", "FS Peak", "FS Height"),
    ("SSC-A", "SSC", "SS", "SSC-Area", "SS INT", "SS Lin", "SS Area"),
    ("SSC-H", "SSC-Height", "SS Peak", "SS Height"),
    ("CD8", "CD8a", "CD8alpha", "CD8 alpha"),
    ("FoxP3", "Fox-P3", "FOXP3"),
    ("Helios", "IKZF2"),
    ("HLA-DR", "HLADR", "HLA DR", "MHC-II", "MHCII"),
    ("CD25", "IL2RA", "IL-2Ra", "IL-2R alpha"),
    ("CD127", "IL7RA", "IL-7Ra", "IL-7R alpha"),
    ("CCR7", "CD197"),
    ("CD11c", "ITGAX"),
    ("CD21", "CR2"),
    ("CD20", "MS4A1"),
    ("CD45RA", "CD45 RA"),
    ("CD45RO", "CD45 RO"),
)

_SYNONYM_INDEX: dict[str, tuple[str, ...]] = {}
for _group in SYNONYMS:
    for _name in _group:
        _SYNONYM_INDEX[normalise(_name)] = _group
del _group, _name
#: Scatter names match other spellings only as whole names: the word ``FSC`` of ``FSC-H`` is not
#: ``FSC-A``.
_WHOLE_NAME_ONLY = frozenset(
    normalise(n) for g in SYNONYMS for n in g if normalise(g[0]) in ("fsca", "fsch", "ssca", "ssch")
)


def synonyms(name: str) -> tuple[str, ...]:
    """The other usual spellings of ``name`` (empty when it has none): ``synonyms('Live')`` →
    ``('Viability', 'LD', ...)``."""
    group = _SYNONYM_INDEX.get(normalise(name), ())
    key = normalise(name)
    return tuple(n for n in group if normalise(n) != key)


def describe_channels(channels: Sequence[str], markers: Sequence[str]) -> list[str]:
    """``['FL1-H (CD27)', 'FSC-A', ...]`` for error messages."""
    return [f"{c} ({m.strip()})" if m and m.strip() else c for c, m in zip(channels, markers)]


def resolve(
    channels: Sequence[str],
    markers: Sequence[str],
    name: str,
    aliases: Sequence[str] = (),
    *,
    path=None,
) -> int:
    """Index of the one channel that ``name`` (or one of its ``aliases``) refers to."""
    try:  # a batch resolves the same names against the same panel file after file: remember
        return _resolve_cached(tuple(channels), tuple(markers), name, tuple(aliases))
    except TypeError:  # unhashable input: resolve directly
        pass
    except MarkerError:  # not cached; raise again with the file's path in the message
        pass
    return _resolve(channels, markers, name, aliases, path=path)


@functools.lru_cache(maxsize=4096)
def _resolve_cached(channels: tuple, markers: tuple, name: str, aliases: tuple) -> int:
    return _resolve(channels, markers, name, aliases)


def _resolve(channels, markers, name, aliases=(), *, path=None) -> int:
    own = [name, *aliases]
    hit = _match(channels, markers, name, own, path)
    if hit is None:
        others = [s for n in own for s in synonyms(n) if normalise(s) not in map(normalise, own)]
        if others:
            whole = any(normalise(n) in _WHOLE_NAME_ONLY for n in own)
            hit = _match(channels, markers, name, list(dict.fromkeys(others)), path, whole=whole)
    if hit is None:
        raise MarkerError(path, name, "is not in the file", describe_channels(channels, markers))
    return hit


def _match(channels, markers, name, candidates, path, *, whole: bool = False) -> int | None:
    """The one channel the deciding tier finds for ``candidates`` (``None``: no tier matched);
    ``whole``: only the exact and whole-name tiers."""
    tiers = []
    exact = {i for i, c in enumerate(channels) if c in candidates}
    tiers.append(exact)
    normed = {normalise(c) for c in candidates}
    whole_names = {
        i
        for i, (c, m) in enumerate(zip(channels, markers))
        if normalise(c) in normed or (m and normalise(m) in normed)
    }
    tiers.append(whole_names)
    words = {
        i
        for i, m in enumerate(markers)
        if m
        and any(normalise(w) in normed for w in {*_WORDS.split(m), *_COARSE_WORDS.split(m)} if w)
    }
    tiers.append(words)
    fine = {
        i
        for i, m in enumerate(markers)
        if m and any(normalise(w) in normed for w in _FINE_WORDS.split(m) if w)
    }
    tiers.append(fine)
    if whole:
        tiers = tiers[:2]
    for hits in tiers:
        if len(hits) == 1:
            return next(iter(hits))
        if len(hits) > 1:
            both = describe_channels(
                [channels[i] for i in sorted(hits)], [markers[i] for i in sorted(hits)]
            )
            raise MarkerError(
                path,
                name,
                f"matches more than one channel ({'; '.join(both)}); add an alias or name the channel",
                describe_channels(channels, markers),
            )
    return None


@dataclass(frozen=True)
class MarkerMap:
    """Marker names for channels whose ``$PnS`` is missing or wrong, from ``--markers FILE.csv``.

    Rows are ``(file, channel, marker, line)``; ``file`` is ``None`` for a row that applies to every
    file, else a file name (or path) the row is limited to. Read one with :func:`read_marker_csv`;
    :meth:`for_file` gives the ``{channel: marker}`` mapping for one file.
    """

    rows: tuple[tuple[str | None, str, str, int], ...]
    source: str = "<markers>"

    def for_file(self, path: str | Path | None) -> dict[str, str]:
        """``{channel: marker}`` for the file at ``path``: the rows for every file, then the rows
        naming this file (by name or by path), which win."""
        name = Path(path).name if path is not None else None
        out: dict[str, str] = {}
        scoped: dict[str, str] = {}
        for file, channel, marker, _ in self.rows:
            if file is None:
                out[channel] = marker
            elif path is not None and (file == name or Path(file) == Path(path)):
                scoped[channel] = marker
        out.update(scoped)
        return out


def read_marker_csv(path: str | Path) -> MarkerMap:
    """Read a ``channel,marker`` CSV (an optional ``file`` column limits a row to one file).

    Raises
    ------
    MarkerError
        Missing columns, empty names, or one channel given two markers for the same file; the
        message names the CSV and the line.
    """
    import csv

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise MarkerError(
            p, "(markers file)", f"cannot be read: {exc.strerror or exc}", []
        ) from None
    reader = csv.DictReader(text.splitlines())
    cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    if "channel" not in cols or "marker" not in cols:
        raise MarkerError(
            p,
            "(markers file)",
            f"needs the columns channel,marker (and optionally file); it has: "
            f"{', '.join(reader.fieldnames or []) or 'no header'}",
            [],
        )
    rows: list[tuple[str | None, str, str, int]] = []
    seen: dict[tuple[str | None, str], int] = {}
    for lineno, rec in enumerate(reader, start=2):
        channel = (rec.get(cols["channel"]) or "").strip()
        marker = (rec.get(cols["marker"]) or "").strip()
        file = (rec.get(cols["file"]) or "").strip() if "file" in cols else ""
        if not channel and not marker:
            continue
        if not channel or not marker:
            raise MarkerError(
                p, marker or channel, f"line {lineno}: needs both a channel and a marker", []
            )
        key = (file or None, channel)
        if key in seen:
            raise MarkerError(
                p,
                marker,
                f"line {lineno}: channel {channel!r} already has a marker on line {seen[key]}",
                [],
            )
        seen[key] = lineno
        rows.append((file or None, channel, marker, lineno))
    return MarkerMap(tuple(rows), str(p))


def relabel(
    channels: Sequence[str],
    markers: Sequence[str],
    mapping: dict[str, str],
    *,
    path=None,
    source: str = "markers",
) -> list[str]:
    """``markers`` with the names ``mapping`` gives to channels (matched by ``$PnN`` exactly, or
    ignoring case, spaces, dashes, dots and slashes, so FlowJo's ``v-450_50-B-A`` finds
    ``v-450/50-B-A``).

    A channel the file does not have is an error only when none of the mapping's channels is in the
    file (the mapping is then for another panel, or mistyped).
    """
    out = list(markers)
    by_norm = {normalise(c): i for i, c in enumerate(channels)}
    missing = []
    for channel, marker in mapping.items():
        i = channels.index(channel) if channel in channels else by_norm.get(normalise(channel))
        if i is None:
            missing.append(channel)
            continue
        out[i] = marker
    if missing and len(missing) == len(mapping):
        raise MarkerError(
            path,
            missing[0],
            f"(a channel in {source}) is not a channel of the file, nor is any other channel "
            f"{source} names",
            describe_channels(channels, markers),
        )
    return out
