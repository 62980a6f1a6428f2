"""Resolving a template's marker names to a file's channels.

A template says ``CD27``; a file may call that channel ``BV605-A`` with ``$PnS`` ``CD27`` or
``CD27 BV605``. Matching is tried in tiers, and the first tier that matches decides:

1. the name (or an alias) equals a ``$PnN`` exactly;
2. the name equals a whole ``$PnS`` or ``$PnN`` ignoring case, spaces, dashes and underscores;
3. the name equals one word of a ``$PnS`` (words split on spaces, ``/``, ``:``, brackets,
   commas), same rules: ``CD27`` finds ``CD27 BV605``, ``BV605 (CD27)``, ``FITC-A :: CD27``;
4. the same with words also split on dashes and underscores: ``CD19`` finds ``CD19-ECD``.

No match is a :class:`MarkerError` listing what the file has; two matches in the deciding tier is a
:class:`MarkerError` naming both (add an alias or use the channel name to disambiguate).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from cytophen.errors import MarkerError

__all__ = ["normalise", "resolve", "describe_channels"]

_STRIP = re.compile(r"[\s\-_]+")
_WORDS = re.compile(r"[\s/:()\[\],;]+")
_COARSE_WORDS = re.compile(r"[\s()\[\],;]+")  # keeps 'Live/Dead' whole in 'Live/Dead / CD14'
_FINE_WORDS = re.compile(r"[\s/:()\[\],;\-_]+")


def normalise(name: str) -> str:
    """Lower case, without spaces, dashes or underscores: ``'CD-27 '`` → ``'cd27'``."""
    return _STRIP.sub("", str(name)).lower()


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
    candidates = [name, *aliases]
    tiers = []
    exact = {i for i, c in enumerate(channels) if c in candidates}
    tiers.append(exact)
    normed = {normalise(c) for c in candidates}
    whole = {
        i
        for i, (c, m) in enumerate(zip(channels, markers))
        if normalise(c) in normed or (m and normalise(m) in normed)
    }
    tiers.append(whole)
    words = {
        i
        for i, m in enumerate(markers)
        if m and any(normalise(w) in normed for w in {*_WORDS.split(m), *_COARSE_WORDS.split(m)} if w)
    }
    tiers.append(words)
    fine = {
        i
        for i, m in enumerate(markers)
        if m and any(normalise(w) in normed for w in _FINE_WORDS.split(m) if w)
    }
    tiers.append(fine)
    for hits in tiers:
        if len(hits) == 1:
            return next(iter(hits))
        if len(hits) > 1:
            both = describe_channels([channels[i] for i in sorted(hits)], [markers[i] for i in sorted(hits)])
            raise MarkerError(
                path,
                name,
                f"matches more than one channel ({'; '.join(both)}); add an alias or name the channel",
                describe_channels(channels, markers),
            )
    raise MarkerError(path, name, "is not in the file", describe_channels(channels, markers))
