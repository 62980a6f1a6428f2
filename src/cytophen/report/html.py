"""A self-contained HTML report of a results folder, for a flow cytometrist to review.

One HTML file with inline CSS and JavaScript (no server, no CDN; it opens offline, alone). The
gating plots are embedded as data URIs (a run with more than :data:`EMBED_LIMIT` plots links them as
files of the results folder instead, lazy-loaded and paged); each thumbnail opens at full size in
the page. When the run was made without plots, the report re-gates its files to draw them
(:mod:`cytophen.report.replot`). The page itself (CSS, JavaScript, HTML) is in ``assets/``. See
docs/report.md for what the page shows and the flag thresholds.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from cytophen._atomic import atomic_write_text
from cytophen._version import __version__
from cytophen.errors import CytophenError, ReportError
from cytophen.report.plots import LOW_COUNT
from cytophen.report.results import ResultsFolder, inside_folder, load_results

__all__ = ["write_report", "load_results", "ResultsFolder", "EMBED_LIMIT"]

#: With ``embed=None`` the images are embedded (one portable file) unless there are more than this
#: many (30 samples x 15 plots are a few MB of palette PNGs; 500 x 15 would be too heavy a page).
EMBED_LIMIT = 1500


# ---------------------------------------------------------------------------------------------
def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _bool(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(v) if not pd.isna(v) else True
    except (TypeError, ValueError):
        return bool(v)


def _img_src(path: Path, base: str, embed: bool) -> str:
    if embed:
        mime = {".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
            path.suffix.lower(), f"image/{path.suffix.lower().lstrip('.')}"
        )
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    rel = os.path.relpath(os.path.abspath(path), base)
    return quote(Path(rel).as_posix())


def _roles(res: ResultsFolder) -> tuple[list[str], list[str]]:
    """The template's hidden (helper) and clean-up populations: from the plots' index, else from
    the run's template file."""
    hidden: dict[str, None] = {}
    cleanup: dict[str, None] = {}
    for meta in res.plots.values():
        hidden.update(dict.fromkeys(str(x) for x in meta.get("hidden", [])))
        cleanup.update(dict.fromkeys(str(x) for x in meta.get("cleanup", [])))
    if not (hidden or cleanup or res.plots):
        src = (res.run.get("template") or {}).get("source")
        if src and Path(src).is_file():
            try:
                from cytophen.interop import load_template

                t = load_template(src)
            except Exception:  # noqa: BLE001 - the roles only order the page; the tables stand
                t = None
            if t is not None and t.hash.startswith(
                str((res.run.get("template") or {}).get("hash") or "")
            ):
                hidden = dict.fromkeys(p.name for p in t.populations if p.hidden)
                cleanup = dict.fromkeys(p.name for p in t.populations if p.cleanup)
    return list(hidden), list(cleanup)


def _build(
    res: ResultsFolder, out: Path, *, embed: bool | None, low_count: int
) -> tuple[dict, dict]:
    pops_df = res.populations
    order = list(dict.fromkeys(pops_df["population"].astype(str)))
    parents = {}
    for name, parent in zip(pops_df["population"].astype(str), pops_df["parent"].astype(str)):
        parents.setdefault(name, parent)
    sample_order = list(dict.fromkeys(pops_df["sample"].astype(str)))
    n_images = sum(len(m.get("plots", [])) for m in res.plots.values()) + len(res.stats_images)
    do_embed = (n_images <= EMBED_LIMIT) if embed is None else bool(embed)
    base = os.path.abspath(out.parent)
    hidden, cleanup = _roles(res)
    plot_of: dict[str, str] = {}  # population -> the key of the plot it is drawn on
    for meta in res.plots.values():
        for item in meta.get("plots", []):
            for q in item.get("populations") or [item.get("gate")]:
                plot_of.setdefault(str(q), str(item.get("gate")))

    flags: list[list[str]] = []
    problems: list[list[str]] = []
    fallbacks: dict[tuple, dict] = {}
    low: dict[str, list] = {}
    measured_n: dict[str, int] = {}
    unmeasured: dict[tuple, list[str]] = {}
    samples = []
    by_sample: dict[str, list[dict]] = {}
    for rec in pops_df.to_dict("records"):
        by_sample.setdefault(str(rec["sample"]), []).append(rec)
    for si, s in enumerate(sample_order):
        rows = {str(r["population"]): r for r in by_sample[s]}
        gate_info = res.gates.get(s, {}) if isinstance(res.gates, dict) else {}
        cells = []
        sample_flags = {}
        for p in order:
            r = rows.get(p)
            if r is None:
                cells.append(None)
                continue
            count = _num(r.get("count"))
            measured = _bool(r.get("measured", True)) and count is not None
            note = str(r.get("note") or "") if not pd.isna(r.get("note", "")) else ""
            entry = gate_info.get(p) or {}
            kinds = []
            if entry.get("fell_back") or (not entry and "fell back" in note):
                kinds.append("fell back")
                reason = str(entry.get("reason") or note)
                flags.append([s, p, "fell back", reason])
                key = plot_of.get(p) or ("dims", tuple(entry.get("dims") or [p]), reason)
                fb = fallbacks.setdefault((s, key), {"sample": s, "si": si, "gate": key,
                                                     "populations": [], "reason": reason})  # fmt: skip
                fb["populations"].append(p)
            if not measured:
                kinds.append("not measured")
                flags.append([s, p, "not measured", note])
                unmeasured.setdefault((p, "not measured", note), []).append(s)
            else:
                measured_n[p] = measured_n.get(p, 0) + 1
                if note.startswith("skipped"):
                    unmeasured.setdefault((p, "skipped", note), []).append(s)
                if count is not None and count < low_count:
                    kinds.append("low count")
                    flags.append([s, p, "low count", f"{int(count)} events < {low_count}"])
                    low.setdefault(p, []).append([s, si, int(count)])
            if kinds:
                sample_flags[p] = kinds
            cells.append(
                [
                    None if count is None else int(count),
                    _num(r.get("percent_of_parent")),
                    _num(r.get("percent_of_total")),
                    measured,
                    note,
                    kinds,
                ]
            )
        plots = {}
        meta = res.plots.get(s)
        if meta:
            for item in meta.get("plots", []):
                if item.get("error"):
                    flags.append([s, str(item["gate"]), "plot failed", str(item["error"])])
                    problems.append([s, str(item["gate"]), "plot failed", str(item["error"])])
                f = meta["_dir"] / str(item.get("file") or "")
                if not inside_folder(f, res.path) or f.parent != meta["_dir"]:
                    why = "file outside the results folder"
                    flags.append([s, str(item.get("gate")), "plot refused", why])
                    problems.append([s, str(item.get("gate")), "plot refused", why])
                    continue
                if f.is_file():
                    plots[item["gate"]] = {
                        "src": _img_src(f, base, do_embed),
                        "fell_back": bool(item.get("fell_back")),
                        "reason": str(item.get("reason") or ""),
                        "title": str(item.get("title") or item.get("parent") or ""),
                        "populations": [str(q) for q in item.get("populations") or [item["gate"]]],
                        "parent": item.get("parent"),
                        "pct": item.get("percent_of_parent") or {},
                    }
        first = next(iter(rows.values()))
        tree = [
            [str(r.get("population")), int(r.get("depth") or 1), r.get("count"),
             _num(r.get("percent")), str(r.get("status") or ""), bool(r.get("hidden"))]
            for r in (meta or {}).get("tree") or []
            if isinstance(r, dict)
        ]  # fmt: skip
        samples.append(
            {
                "id": s,
                "file": str(first.get("file") or ""),
                "cells": cells,
                "flags": sample_flags,
                "plots": plots,
                "tree": tree,
            }
        )

    for o in res.replot:
        if o.get("status") in ("failed", "counts differ"):
            what = f"plots: {o['status']}"
            flags.append([str(o.get("sample")), "", what, str(o.get("message") or "")])
            problems.append([str(o.get("sample")), "", what, str(o.get("message") or "")])

    gate_list: list[dict] = []
    seen = set()
    for meta in res.plots.values():
        for item in meta.get("plots", []):
            if item["gate"] not in seen:
                seen.add(item["gate"])
                gate_list.append(
                    {
                        "key": item["gate"],
                        "populations": item.get("populations", [item["gate"]]),
                        "parent": item.get("parent"),
                    }
                )
    pos = {p: i for i, p in enumerate(order)}
    gate_list.sort(key=lambda g: pos.get(g["key"], len(pos)))

    if len(res.errors):
        cols = list(res.errors.columns)
        errors = {"columns": cols, "rows": res.errors[cols].astype(str).values.tolist()}
    else:
        errors = {"columns": ["sample", "file", "stage", "message"], "rows": []}

    data = {
        "populations": order,
        "parents": parents,
        "hidden": hidden,
        "cleanup": cleanup,
        "samples": samples,
        "gates": gate_list,
        "flags": flags,
        "fallbacks": list(fallbacks.values()),
        "low": [
            {
                "population": p,
                "parent": parents.get(p, ""),
                "samples": v,
                "measured": measured_n.get(p, len(v)),
            }
            for p, v in sorted(low.items(), key=lambda kv: pos.get(kv[0], 0))
        ],  # fmt: skip
        "unmeasured": [
            {"population": p, "what": what, "note": note, "samples": v}
            for (p, what, note), v in sorted(
                unmeasured.items(), key=lambda kv: (kv[0][1] != "skipped", pos.get(kv[0][0], 0))
            )
        ],
        "problems": problems,
        "errors": errors,
        "low_count": low_count,
        "no_plots": "",
    }
    for f in data["fallbacks"]:
        if isinstance(f["gate"], tuple):  # no plot to show: name it by its populations
            f["gate"] = ", ".join(f["populations"])
    tmpl = res.run.get("template") or {}
    first = pops_df.iloc[0].to_dict() if len(pops_df) else {}
    counts = res.run.get("counts") or {}
    n_failed = int(counts.get("failed", len(errors["rows"])))
    summary = {
        "template": tmpl.get("name") or first.get("template") or "?",
        "version": tmpl.get("version") or first.get("template_version") or "?",
        "hash": tmpl.get("hash") or first.get("template_hash") or "?",
        "source": tmpl.get("source") or "",
        "total": int(counts.get("total", len(sample_order) + n_failed)),
        "ok": int(counts.get("ok", len(sample_order))),
        "failed": n_failed,
        "populations": len(order),
        "flags": len(flags),
        "flagged_samples": sum(1 for s in samples if s["flags"]),
        "fallbacks": len(fallbacks),
        "fallback_samples": len({f["sample"] for f in fallbacks.values()}),
        "low": sum(len(v) for v in low.values()),
        "low_populations": len(low),
        "unmeasured": sum(len(v) for (_, w, _), v in unmeasured.items() if w == "not measured"),
        "started": res.run.get("started") or "",
        "finished": res.run.get("finished") or "",
        "cytophen_run": res.run.get("cytophen") or "",
        "stats": [
            {"src": _img_src(p, base, do_embed), "name": p.stem.replace("_", " ")}
            for p in res.stats_images
        ],
        "n_images": n_images,
        "embedded": do_embed,
    }
    return data, summary


def _json_for_script(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _asset(name: str) -> str:
    return resources.files("cytophen.report").joinpath("assets", name).read_text(encoding="utf-8")


def _render(data: dict, summary: dict, title: str, notices: list[str]) -> str:
    e = html.escape
    s = summary
    short = s["hash"][:12] if isinstance(s["hash"], str) else s["hash"]
    low = data["low_count"]
    rows = [
        ("Template", f"{e(str(s['template']))} v{e(str(s['version']))}"),
        ("Template hash", f"<code title='{e(str(s['hash']))}'>{e(str(short))}</code>"),
        (
            "Samples",
            f"{s['total']} total, <b>{s['ok']}</b> gated, "
            f"<b class='{'bad' if s['failed'] else ''}'>{s['failed']}</b> failed",
        ),
        ("Populations", str(s["populations"])),
        (
            "Fell back",
            f"<a href='#fallbacks' class='{'bad' if s['fallbacks'] else 'ok'}'>"
            f"{s['fallbacks']} gate(s) in {s['fallback_samples']} sample(s)</a>",
        ),
        (
            "Low counts",
            f"<a href='#lowcount'>{s['low']} value(s) of {s['low_populations']} population(s) "
            f"with fewer than {low} events</a>",
        ),
        ("Not measured", f"<a href='#unmeasured'>{s['unmeasured']} value(s)</a>"),
    ]
    if s["source"]:
        rows.insert(1, ("Template file", f"<code>{e(str(s['source']))}</code>"))
    if s["started"]:
        rows.append(
            (
                "Run",
                f"{e(str(s['started']))} to {e(str(s['finished']))} (cytophen {e(str(s['cytophen_run']))})",
            )
        )
    if not s["embedded"] and s["n_images"]:
        rows.append(
            (
                "Images",
                f"{s['n_images']} linked as files of the results folder (more than {EMBED_LIMIT}"
                " to embed): keep this page next to it, or write it with --embed",
            )
        )
    summary_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    notes_html = "".join(f"<p class='note'>{e(n)}</p>" for n in notices)
    stats_html = ""
    if s["stats"]:
        figs = "".join(
            f"<figure class='stat'><img loading='lazy' src='{e(i['src'])}' alt='{e(i['name'])}'>"
            f"<figcaption>{e(i['name'])}</figcaption></figure>"
            for i in s["stats"]
        )
        stats_html = f"<section id='longitudinal'><h2>Longitudinal plots</h2><div class='grid'>{figs}</div></section>"
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return _asset("report.html").format(
        title=e(title),
        summary=summary_html,
        notices=notes_html,
        stats=stats_html,
        data=_json_for_script(data),
        generated=e(generated),
        version=e(__version__),
        low_count=int(low),
        low_cv=f"{100.0 / math.sqrt(low):.0f} %" if low > 0 else "any",
        css=_asset("report.css"),
        js=_asset("report.js"),
    )


def _missing_plots(res: ResultsFolder) -> list[str]:
    """Samples of the table without plots (none when the run's template file is not at hand:
    nothing can draw them)."""
    src = (res.run.get("template") or {}).get("source")
    if not src or not Path(src).is_file():
        return []
    return [s for s in dict.fromkeys(res.populations["sample"].astype(str)) if s not in res.plots]


def write_report(
    results_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    stats_dir: str | os.PathLike | None = None,
    embed: bool | None = None,
    low_count: int = LOW_COUNT,
    title: str | None = None,
    replot: bool | None = None,
    template=None,
    jobs: int | None = None,
) -> Path:
    """Write the self-contained HTML report of a results folder.

    Parameters
    ----------
    results_dir
        The ``--out`` folder of ``cytophen gate`` (see :func:`load_results`).
    out
        The HTML file (default ``results_dir/report.html``).
    stats_dir
        Folder of longitudinal plots from ``cytophen stats --out DIR`` (default
        ``results_dir/stats`` when present).
    embed
        ``True``: images inline (data URIs: one portable file); ``False``: relative, lazy-loaded
        files of the results folder; ``None`` (default): embed unless there are more than
        :data:`EMBED_LIMIT` images.
    low_count
        Populations with fewer events are flagged as too few to trust (default 100).
    title
        Page title (default from the template name).
    replot
        Make the gating plots of samples that have none by re-reading and re-gating their FCS
        files (see :func:`cytophen.report.replot.replot`). ``None`` (default): when some are
        missing and the run's template file is at hand; a problem doing so is noted on the page.
        ``True``: always try, and raise on a problem. ``False``: never.
    template
        The template for ``replot`` (default: the run's template file from run.json).
    jobs
        Worker processes for ``replot`` (default all cores).

    Returns
    -------
    pathlib.Path
        The HTML file written (atomically).

    Examples
    --------
    >>> write_report("results/")                              # doctest: +SKIP
    PosixPath('results/report.html')
    """
    notices: list[str] = []
    if replot is None and template is None:
        res = load_results(results_dir, stats_dir=stats_dir)
        missing = _missing_plots(res)
        if missing:
            from cytophen.report.replot import replot as _replot

            try:
                _replot(results_dir, template=template, jobs=jobs)
            except (CytophenError, OSError) as exc:
                notices.append(f"Gating plots of {len(missing)} sample(s) could not be made: {exc}")
    elif replot or (replot is None and template is not None):
        from cytophen.report.replot import replot as _replot

        _replot(results_dir, template=template, jobs=jobs)
    res = load_results(results_dir, stats_dir=stats_dir)
    out_path = Path(out) if out is not None else Path(results_dir) / "report.html"
    if out_path.is_dir():
        out_path = out_path / "report.html"
    if not out_path.parent.is_dir():
        raise ReportError(f"{out_path}: its folder {out_path.parent} does not exist")
    data, summary = _build(res, out_path, embed=embed, low_count=int(low_count))
    if not res.plots:
        data["no_plots"] = (
            "No gating plots: the run was made without --plots and its FCS files or template "
            "could not be re-read here (cytophen report RESULTS --replot --template T.yaml)."
        )
    page = _render(
        data,
        summary,
        title or f"cytophen report: {summary['template']} ({summary['ok']} samples)",
        notices,
    )
    atomic_write_text(out_path, page, fsync=False)
    return out_path
