"""Gating plots of a result: every reported population on the view it is defined on, with its
exact gate, and the gating hierarchy as a tree.

- :func:`plot_result` (what ``GatingResult.plot`` calls): one population's plot, or every plot of
  the sample next to its tree (:func:`plot_hierarchy`).
- :func:`plot_tree`: the gating hierarchy with counts and percents; skipped clean-up steps,
  populations not measured, gates that fell back and hidden helpers are marked.
- :func:`save_sample_plots`: one PNG per plot for the HTML report (the batch workers call it).

The views are chosen in :mod:`cytophen.report.panels` (FlowJo's layout: quadrants and sibling
gates on the same axes share one plot), drawn by :mod:`cytophen.report.draw`, with axes from
:mod:`cytophen.report.ticks`. Everything is drawn on :class:`matplotlib.figure.Figure` objects (no
pyplot state), so plotting is safe in worker processes and figures display in notebooks.

>>> result = cytophen.gate(sample, template)      # doctest: +SKIP
>>> result.plot()                                  # doctest: +SKIP  (tree and every plot)
>>> result.plot("switched_memory")                 # doctest: +SKIP  (its IgD x CD27 quadrants)
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cytophen._atomic import atomic_write_bytes
from cytophen._names import safe_name
from cytophen.errors import CytophenError, ReportError
from cytophen.report.draw import draw_regions, for_notebook, plot_gate
from cytophen.report.labels import fmt_pct
from cytophen.report.panels import (
    GatePanel,
    gate_panels,
    percent_of_parent,
    table_row,
    template_of,
)
from cytophen.report.regions import FALLBACK_COLOUR, Region, ellipse_parameters
from cytophen.report.ticks import axis_ticks
from cytophen.report.tree import plot_tree, tree_rows

__all__ = [
    "plot_result",
    "plot_gate",
    "plot_hierarchy",
    "plot_tree",
    "save_sample_plots",
    "axis_ticks",
    "gate_panels",
    "ellipse_parameters",
    "safe_name",
    "GatePanel",
    "LOW_COUNT",
]

#: Populations with fewer events than this are flagged as too few to trust (the Poisson CV of a
#: count n is 1/sqrt(n): above 10 % below 100 events).
LOW_COUNT = 100


# ---------------------------------------------------------------------------------------------
# what a panel shows
# ---------------------------------------------------------------------------------------------
def _axis_label(ctx, dim) -> str:
    """``marker (channel)``: the template's name for the dimension and the file's channel; a
    channel named by itself gets its ``$PnS`` marker in front when the file has one."""
    label = dim.label
    if ctx is None or not hasattr(dim, "channel") or getattr(dim, "numerator", None):
        return label
    try:
        i = ctx.index(dim.channel)
    except Exception:  # noqa: BLE001 - a fluorochrome of a spectrum matrix has no single channel
        return label
    ch = str(ctx.sample.channels[i]).strip()
    mk = str(ctx.sample.markers[i] or "").strip()
    if label == ch:
        return f"{mk} ({ch})" if mk and mk != ch else ch
    return f"{label} ({ch})"


def _context(result, compensation):
    if getattr(result, "sample", None) is None:
        raise ReportError(
            f"result for sample {result.sample_id!r} carries no events (it was loaded from a table "
            "or gated without keeping the sample); re-gate the FCS file with cytophen.gate to plot it"
        )
    template_of(result)
    return result.gate_context(compensation)  # the values as the engine gated them


def _panel_regions(result, panel: GatePanel, highlight: str | None) -> tuple[list[Region], list]:
    """The regions of a panel's populations, and the populations it has no gate for on this
    sample (not measured)."""
    regions: list[Region] = []
    missing: list[str] = []
    seen: set[int] = set()
    inside = [m for m in panel.members if not m.outside_of]
    for m in inside:
        geom = m.entry.get("geometry")
        if not geom:
            if m.labelled:
                missing.append(m.population)
            continue
        fell = bool(m.entry.get("fell_back"))
        if geom.get("kind") == "quadrant":
            if id(m.gate) in seen:
                continue
            seen.add(id(m.gate))
            sharing = [k for k in inside if k.gate is m.gate and k.labelled]
            labels = {k.quadrant: k.population for k in sharing}
            pcts = {k.quadrant: percent_of_parent(result, k.population) for k in sharing}
            hq = next((k.quadrant for k in sharing if k.population == highlight), None)
            for key, q in (geom.get("quadrants") or {}).items():
                regions.append(
                    Region(
                        labels.get(key),
                        {"kind": "rectangle", "min": q["min"], "max": q["max"]},
                        pcts.get(key),
                        highlight=hq is not None and key == hq,
                        fell_back=fell,
                    )
                )
            continue
        regions.append(
            Region(
                m.population if m.labelled else None,
                geom,
                percent_of_parent(result, m.population) if m.labelled else None,
                highlight=m.population == highlight,
                fell_back=fell,
            )
        )
    for m in panel.members:
        if not m.outside_of:
            continue
        geom = m.entry.get("geometry")
        if not geom:
            missing.append(m.population)
            continue
        if geom.get("kind") == "quadrant":
            q = geom["quadrants"][m.quadrant]
            geom = {"kind": "rectangle", "min": q["min"], "max": q["max"]}
        regions.append(
            Region(
                m.population,
                geom,
                percent_of_parent(result, m.population),
                outside=True,
                highlight=m.population == highlight,
                fell_back=bool(m.entry.get("fell_back")),
            )
        )
    return regions, missing


def _not_measured_text(result, names: list[str], width: int = 40) -> str:
    notes = {}
    for n in names:
        note = str(result.notes.get(n) or table_row(result, n).get("note") or "not measured")
        notes.setdefault(note, []).append(n)
    lines = []
    for note, pops in notes.items():
        lines += textwrap.wrap(f"{', '.join(pops)}: {note}", width=width)
    return "\n".join(lines)


def _message(ax, title: str, text: str, *, colour="dimgray", gid=None, fontsize=7.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#cccccc")
    ax.set_title(title, fontsize=fontsize + 1, loc="left")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize, color=colour,
            transform=ax.transAxes, gid=gid)  # fmt: skip


def _draw_panel(
    ax,
    result,
    ctx,
    panel: GatePanel,
    *,
    highlight: str | None,
    bins: int,
    minor_ticks: bool = True,
    show_reason: bool = True,
    fontsize: float = 7.0,
    labels_later: list | None = None,
    problems: list | None = None,
) -> None:
    regions, missing = _panel_regions(result, panel, highlight)
    width = max(24, int(ax.bbox.width / ax.figure.figure.dpi * 72 / (0.6 * fontsize)))
    if not regions:
        _message(ax, panel.title, _not_measured_text(result, missing or panel.populations, width),
                 fontsize=fontsize)  # fmt: skip
        return
    dims = list(getattr(panel.gate, "dims", ()))
    # an n-D ellipsoid is drawn on the slice at its other dimensions' median: all of them
    n_ell = max((len(r.shape.get("mean") or ()) for r in regions
                 if r.shape.get("kind") == "ellipsoid"), default=0)  # fmt: skip
    shown = dims[:n_ell] if n_ell > 2 else dims[:2]
    vals = np.column_stack([ctx.value(d) for d in shown])
    if panel.parent is not None:
        vals = vals[result.membership(panel.parent)]
    note = ""
    if missing:
        note = _not_measured_text(result, missing, width)
    title = _fit_title(panel.title, ax, fontsize + 1, badge=any(r.fell_back for r in regions))
    draw_regions(
        ax,
        vals,
        regions,
        dims=[_axis_label(ctx, d) for d in shown],
        transforms=[getattr(d, "transform", None) for d in shown],
        title=title,
        reason=panel.reason,
        show_reason=show_reason,
        bins=bins,
        minor_ticks=minor_ticks,
        fontsize=fontsize,
        note=note,
        labels_later=labels_later,
        problems=problems,
    )


def _fit_title(title: str, ax, fontsize: float, *, badge: bool) -> str:
    """``title`` on at most two lines over the axes, next to the "fell back" badge (the tree and
    the report say the rest)."""
    ax_pt = ax.bbox.width / ax.figure.figure.dpi * 72
    room = max(int(ax_pt / (0.56 * fontsize)) - (12 if badge else 0), 16)
    lines = textwrap.wrap(" ".join(title.split()), width=room)
    if len(lines) > 2:
        lines = [lines[0], lines[1][: room - 1].rstrip() + "\u2026"]
    return "\n".join(lines)


def _safe_panel(ax, result, ctx, panel: GatePanel, **kw) -> str:
    """Draw a panel; a gate that cannot be drawn becomes a panel saying why (one odd gate must not
    cost a sample all its plots). Returns the problem, or ``''``."""
    problems: list[str] = []
    try:
        _draw_panel(ax, result, ctx, panel, problems=problems, **kw)
        return "; ".join(problems)
    except Exception as exc:  # noqa: BLE001 - reported on the panel and in plots.json
        problem = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CytophenError) else str(exc)
        ax.clear()
        text = "\n".join(textwrap.wrap(f"{panel.key}: cannot draw. {problem[:160]}", width=40))
        _message(ax, panel.title, text, colour=FALLBACK_COLOUR, gid="plot-error")
        return problem


def _find(result, population: str) -> str:
    names = list(result.memberships)
    if population in names:
        return population
    low = {n.lower(): n for n in names}
    if population.lower() in low:
        return low[population.lower()]
    raise ReportError(
        f"no population {population!r} in this result; the template has: {', '.join(names)}"
    )


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def plot_result(
    result,
    population: str | None = None,
    *,
    compensation=None,
    bins: int = 128,
    ncols: int | None = None,
    panel_size: tuple[float, float] = (3.4, 3.1),
    dpi: int = 100,
) -> Figure:
    """Gating plot of one population, or every plot of the sample with its gating tree.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` from :func:`cytophen.gate` (it keeps the sample).
    population
        A population name (case-insensitive): the plot of its parent's events on the axes its gate
        is defined on, its gate and its siblings' on those axes, its region shaded. A hidden
        helper population is drawn too when asked for by name. ``None``: :func:`plot_hierarchy`.
    compensation
        Default: the one the result was gated with (``result.compensation``).
    bins
        Bins per axis of the density plots.
    ncols
        Plots per row of the hierarchy figure (default up to 3).
    panel_size, dpi
        Size of one plot in inches, and resolution.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = cytophen.gate(sample, template).plot("dn")   # doctest: +SKIP
    >>> fig.savefig("dn.png")                              # doctest: +SKIP
    """
    if population is None:
        return plot_hierarchy(result, compensation=compensation, bins=bins, ncols=ncols,
                              panel_size=panel_size, dpi=dpi)  # fmt: skip
    name = _find(result, population)
    template = template_of(result)
    panels, booleans = gate_panels(result, include_hidden=True)  # asked for by name
    fig = Figure(figsize=panel_size, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    panel = next((p for p in panels if name in p.populations), None)
    if panel is not None:
        later: list = []
        _draw_panel(ax, result, _context(result, compensation), panel, highlight=name, bins=bins,
                    labels_later=later)  # fmt: skip
        fig.suptitle(result.sample_id, fontsize=8)
        _finish(fig, later)
        return for_notebook(fig)
    pop = template.population(name)
    entry = result.gates.get(name) or {}
    parent = pop.parent or "all events"
    if entry.get("skipped") or entry.get("pregated"):
        text = f"{name}: {result.notes.get(name) or entry.get('reason') or 'not gated'}"
    else:
        expr = dict(booleans).get(name, "")
        text = f"{name} = {expr}\n{fmt_pct(percent_of_parent(result, name))} of {parent}"
    _message(ax, parent, "\n".join(textwrap.fill(line, 44) for line in text.split("\n")),
             colour="black", fontsize=8)  # fmt: skip
    return for_notebook(fig)


def plot_hierarchy(
    result,
    *,
    compensation=None,
    bins: int = 128,
    ncols: int | None = None,
    panel_size: tuple[float, float] = (3.4, 3.1),
    dpi: int = 100,
) -> Figure:
    """The sample's gating tree next to every plot it has, in tree order.

    Plots of populations not measured on this sample are left out (the tree marks them);
    boolean populations no plot can show are listed under the tree.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` that keeps its sample.
    compensation, bins, ncols, panel_size, dpi
        As in :func:`plot_result`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels, booleans = gate_panels(result)
    panels = [p for p in panels if p.drawn]
    n = max(1, len(panels))
    ncols = ncols or max(1, min(3, n))
    nrows = max(1, math.ceil(n / ncols))
    rows = tree_rows(result)
    tree_h = 0.6 + 11.5 / 72 * (len(rows) + 1 + (len(booleans) + 2 if booleans else 0))
    tree_w = 3.3
    height = max(panel_size[1] * nrows, tree_h) + 0.35
    fig = Figure(figsize=(tree_w + panel_size[0] * ncols, height), dpi=dpi, layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[tree_w, panel_size[0] * ncols])
    tax = left.add_subplot()
    plot_tree(result, ax=tax, rows=rows)
    if booleans:
        lines = ["Boolean populations"] + [
            f"{name} = {expr}: {fmt_pct(percent_of_parent(result, name))}"
            for name, expr in booleans
        ]
        tax.annotate("\n".join(lines), (0.0, 1.0), xycoords="axes fraction",
                     xytext=(0, -11.5 * (len(rows) + 2)), textcoords="offset points", va="top",
                     ha="left", fontsize=7, gid="booleans")  # fmt: skip
    axes = right.subplots(nrows, ncols, squeeze=False).ravel()
    ctx = _context(result, compensation) if panels else None
    later: list = []
    for ax, p in zip(axes, panels):
        _safe_panel(ax, result, ctx, p, highlight=None, bins=bins, show_reason=False,
                    labels_later=later)  # fmt: skip
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        f"{result.sample_id} - {result.template_name} v{result.template_version}", fontsize=9
    )
    _finish(fig, later)
    return for_notebook(fig)


def _finish(fig: Figure, labels_later: list) -> None:
    """Lay the figure out, then place the gate labels (sized to the axes as they will be)."""
    engine = fig.get_layout_engine()
    if engine is not None and labels_later:
        engine.execute(fig)
    for place in labels_later:
        place()


# ---------------------------------------------------------------------------------------------
# files for the batch and the report
# ---------------------------------------------------------------------------------------------
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, fsync=False)


def _png(fig: Figure, dpi: int) -> bytes:
    """The figure as a palette PNG (a plot has few colours: a fraction of the RGBA file's size),
    from the rendered pixels (no RGBA PNG written and read back)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    img = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    out = io.BytesIO()
    pal = img.quantize(colors=128, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    pal.save(out, format="PNG", compress_level=9)
    return out.getvalue()


def save_sample_plots(
    result,
    out_dir: str | os.PathLike,
    *,
    folder: str | None = None,
    compensation=None,
    bins: int = 96,
    panel_size: tuple[float, float] = (3.1, 2.9),
    dpi: int = 200,
) -> list[Path]:
    """Write one PNG per plot of a sample (for the HTML report), plus a ``plots.json`` index.

    Called by the batch runner in each worker (so events need not be stored): files go to
    ``out_dir/<sample>/<NN>_<gate>.png`` where ``out_dir`` is the run's plot folder
    (``RESULTS/plots``) and ``<sample>`` is :func:`safe_name` of the sample id. The plot of
    populations not measured on the sample is a panel saying why (``measured: false`` in
    ``plots.json``), shown in the report next to the other samples'. Writes are atomic;
    re-running overwrites.

    Parameters
    ----------
    result
        A :class:`~cytophen.result.GatingResult` that keeps its sample.
    out_dir
        The run's plot folder.
    folder
        Name of the sample's sub-folder (the batch passes its ``safe_id``); default
        :func:`safe_name` of the sample id. The report finds plots through ``plots.json``, so any
        unique name works.
    compensation
        Default: the one the result was gated with (``result.compensation``).
    bins, panel_size, dpi
        Density bins per axis, plot size in inches and resolution: the report shows the PNG at
        half its pixel size as a thumbnail and at full size when clicked.

    Returns
    -------
    list of pathlib.Path
        The PNG files written, then ``plots.json``.
    """
    out = Path(out_dir) / (folder or safe_name(result.sample_id))
    template = template_of(result)
    panels, booleans = gate_panels(result)
    ctx = _context(result, compensation) if any(p.drawn for p in panels) else None
    written: list[Path] = []
    index = []
    for i, p in enumerate(panels):
        fig = Figure(figsize=panel_size, dpi=dpi)
        fig.subplots_adjust(left=0.22, bottom=0.17, right=0.965, top=0.88)
        ax = fig.add_subplot()
        problem = _safe_panel(ax, result, ctx, p, highlight=None, bins=bins, minor_ticks=False,
                              show_reason=False)  # fmt: skip
        fname = f"{i:02d}_{safe_name(p.key)}.png"
        _atomic_write_bytes(out / fname, _png(fig, dpi))
        written.append(out / fname)
        index.append(
            {
                "gate": p.key,
                "populations": p.populations,
                "parent": p.parent,
                "title": p.title,
                "file": fname,
                "kind": p.kind,
                "measured": p.drawn,
                "data_driven": p.data_driven,
                "fell_back": p.fell_back,
                "reason": p.reason,
                "percent_of_parent": {q: percent_of_parent(result, q) for q in p.populations},
                "error": problem,
            }
        )
    meta = {
        "sample": result.sample_id,
        "file": result.file,
        "template": result.template_name,
        "template_version": result.template_version,
        "template_hash": result.template_hash,
        "plots": index,
        "booleans": [{"population": n, "expression": e} for n, e in booleans],
        "hidden": [p.name for p in template.populations if p.hidden],
        "cleanup": [p.name for p in template.populations if p.cleanup],
        "tree": tree_rows(result),
    }
    _atomic_write_bytes(out / "plots.json", json.dumps(meta, indent=1, default=str).encode())
    written.append(out / "plots.json")
    return written
