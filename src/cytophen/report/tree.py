"""The gating hierarchy of a result as a tree: each population under its parent with its count
and percent of parent; skipped clean-up steps, populations not measured, gates that fell back and
hidden helpers marked."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from cytophen.report.draw import for_notebook
from cytophen.report.labels import fmt_pct
from cytophen.report.panels import percent_of_parent, template_of
from cytophen.report.regions import FALLBACK_COLOUR

__all__ = ["tree_rows", "plot_tree"]


def tree_rows(result) -> list[dict[str, Any]]:
    """The gating hierarchy as rows in tree order: ``population, depth, count, percent`` (of
    parent), ``status`` (``''``, ``'skipped'``, ``'pregated'``, ``'not measured'``,
    ``'fell back'``), ``hidden`` and ``note``."""
    template = template_of(result)
    hidden = {p.name for p in template.populations if p.hidden}
    children: dict[str | None, list] = {}
    for p in template.populations:
        children.setdefault(p.parent, []).append(p)
    out: list[dict[str, Any]] = []

    def walk(parent, depth):
        for p in children.get(parent, []):
            entry = result.gates.get(p.name) or {}
            note = str(result.notes.get(p.name) or "")
            if entry.get("skipped"):
                status = "skipped"
            elif entry.get("pregated"):
                status = "pregated"
            elif note.startswith("not measured"):
                status = "not measured"
            elif entry.get("fell_back"):
                status = "fell back"
            else:
                status = ""
            m = result.memberships.get(p.name)
            count = int(m.sum()) if m is not None and status != "not measured" else None
            out.append(
                {
                    "population": p.name,
                    "depth": depth,
                    "count": count,
                    "percent": percent_of_parent(result, p.name) if count is not None else None,
                    "status": status,
                    "hidden": p.name in hidden,
                    "note": note,
                }
            )
            walk(p.name, depth + 1)

    walk(None, 1)
    return out


_STATUS_COLOUR = {"fell back": FALLBACK_COLOUR, "not measured": "#888888", "skipped": "#888888",
                  "pregated": "#888888"}  # fmt: skip


def plot_tree(result, *, ax=None, rows: list[dict] | None = None) -> Any:
    """The gating hierarchy of a result: each population indented under its parent with its
    count and percent of parent; skipped clean-up steps, populations not measured, gates that fell
    back (red) and hidden helpers (grey, "helper") are marked.

    Returns the axes drawn on (a new figure when ``ax`` is ``None``).
    """
    rows = tree_rows(result) if rows is None else rows
    if ax is None:
        fig = Figure(
            figsize=(3.4, 0.6 + 11.5 / 72 * (len(rows) + 1)), dpi=100, layout="constrained"
        )
        ax = fig.add_subplot()
        for_notebook(fig)
    ax.axis("off")
    ax.set_title("gating tree", fontsize=8, loc="left")
    mono = {"family": "monospace", "fontsize": 6.8, "va": "top", "xycoords": "axes fraction",
            "textcoords": "offset points"}  # fmt: skip
    step = 11.5  # points per row
    # characters per row: the axes fill their (sub)figure once laid out
    width = int(0.97 * ax.figure.bbox.width / ax.figure.figure.dpi * 72 / (0.6 * 6.8))

    def line(i, text, colour="black", gid=None):
        ax.annotate(text[0], (0.0, 1.0), xytext=(0, -i * step), ha="left", color=colour,
                    gid=gid, **mono)  # fmt: skip
        ax.annotate(text[1], (1.0, 1.0), xytext=(0, -i * step), ha="right", color=colour, **mono)

    line(0, ("all events", f"{result.n_events:,}"))
    for i, r in enumerate(rows, start=1):
        name = r["population"]
        colour = _STATUS_COLOUR.get(r["status"], "#999999" if r["hidden"] else "black")
        if r["status"] in ("skipped", "pregated", "not measured"):
            right = r["status"]
        else:
            right = f"{fmt_pct(r['percent']):>6} {r['count']:>8,}"
            if r["status"] == "fell back":
                right = "fell back " + right
        if r["hidden"]:
            right = "helper " + right
        label = "  " * (r["depth"] - 1) + "\u2514 " + name
        room = width - len(right) - 1
        if len(label) > room:
            label = label[: max(room - 1, 8)] + "\u2026"
        line(i, (label, right), colour, gid=f"tree:{name}")
    return ax
