"""Which workspace sample an FCS file is.

FlowJo remembers each sample's file by URI (often a path on another machine) and shows it by its
``SampleNode`` name (the file name when it was added, possibly renamed since). A file is matched by
its name against both; a file matching neither is matched by its ``$FIL`` keyword (the name the
instrument gave it) against both and against each sample's own ``$FIL``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cytophen.interop.flowjo import Workspace


def _fil(path: Path) -> str | None:
    from cytophen.io.fcs import read_fcs_datasets

    try:
        return (read_fcs_datasets(path)[0].get("$FIL") or "").strip() or None
    except Exception:  # noqa: BLE001 - an unreadable file fails later, when it is gated
        return None


def match_files(ws: Workspace, paths: list[Path]) -> tuple[list[str | None], list[str | None]]:
    """Per path, the matching sample name (or ``None``) and, without one, the reason."""
    by_name: dict[str, set[str]] = defaultdict(set)  # file name -> sample keys
    by_fil: dict[str, set[str]] = defaultdict(set)
    for key, s in ws._by_key.items():
        by_name[s.name].add(key)
        if s.uri_name:
            by_name[s.uri_name].add(key)
        fil = (s.keywords.get("$FIL") or "").strip()
        if fil:
            by_fil[fil].add(key)
    lower: dict[str, set[str]] = defaultdict(set)
    for n, keys in by_name.items():
        lower[n.lower()] |= keys
    members = set(ws.samples)
    names: list[str | None] = []
    reasons: list[str | None] = []
    for p in paths:
        found = by_name.get(p.name) or lower.get(p.name.lower())
        how = "file name"
        if not found:
            fil = _fil(p)
            if fil:
                found = by_name.get(fil) or by_fil.get(fil)
                how = f"$FIL {fil!r}"
        found = set(found or ())
        inside = sorted(found & members)
        if len(inside) == 1:
            names.append(inside[0])
            reasons.append(None)
            continue
        names.append(None)
        if len(inside) > 1:
            reasons.append(
                f"matches {len(inside)} samples of workspace {ws.path.name} by {how} "
                f"({', '.join(inside)}); rename the file or the samples so that one matches"
            )
        elif found:
            reasons.append(
                f"is workspace sample {sorted(found)[0]!r} of {ws.path.name}, which is not in "
                f"group {ws.group!r}"
            )
        else:
            listed = ws.samples
            shown = ", ".join(listed[:8]) + (
                f" ... ({len(listed)} in all)" if len(listed) > 8 else ""
            )
            reasons.append(
                f"no sample of workspace {ws.path.name} matches this file (by file name, data set "
                f"URI or $FIL); the workspace has: {shown or 'no samples'}"
            )
    return names, reasons
