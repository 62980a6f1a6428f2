"""A self-contained HTML report of a results folder, for a flow cytometrist to review.

One HTML file with inline CSS and JavaScript (no server, no CDN; it opens offline). Images are
relative files of the results folder, lazy-loaded and paged, so a 500-sample run opens in seconds,
or are embedded as base64 (``embed=True``; the default embeds small reports only). See
docs/report.md for what the page shows and the flag thresholds.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from cytophen._version import __version__
from cytophen.errors import ReportError
from cytophen.report.plots import LOW_COUNT

__all__ = ["write_report", "load_results", "ResultsFolder", "EMBED_LIMIT"]

#: With ``embed=None`` the images are embedded (one portable file) when there are at most this many.
EMBED_LIMIT = 60
_IMAGE_EXT = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass
class ResultsFolder:
    """What a results folder holds (see :func:`load_results`)."""

    path: Path
    populations: pd.DataFrame
    run: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)  # sample -> plots.json
    replot: list[dict[str, Any]] = field(default_factory=list)  # plots/replot.json
    stats_images: list[Path] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except ValueError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from exc


def load_results(
    results_dir: str | os.PathLike, *, stats_dir: str | os.PathLike | None = None
) -> ResultsFolder:
    """Read what ``cytophen gate --out DIR`` wrote.

    Parameters
    ----------
    results_dir
        The folder: ``populations.parquet`` or ``populations.csv`` (required), and when present
        ``run.json``, ``gates.json``, ``errors.csv``, ``plots/*/plots.json``.
    stats_dir
        A folder of longitudinal plots (``cytophen stats --out DIR``); default ``results_dir/stats``
        when it exists.

    Returns
    -------
    ResultsFolder

    Raises
    ------
    ReportError
        The folder or its population table is missing or lacks the required columns.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(
            f"{root}: no such results folder (expected the --out folder of 'cytophen gate')"
        )
    from cytophen.pipeline.outdir import current_generation

    data = current_generation(root)  # one run's outputs, even while another run replaces them
    if not _inside(data, root):
        raise ReportError(f"{root}: its .cytophen/current points outside the folder")
    pq, csv = data / "populations.parquet", data / "populations.csv"
    if pq.is_file():
        pops = pd.read_parquet(pq)
        src = pq
    elif csv.is_file():
        pops = pd.read_csv(csv)
        src = csv
    else:
        raise ReportError(
            f"{root}: has neither populations.parquet nor populations.csv; is it the --out folder of 'cytophen gate'?"
        )
    need = ["sample", "population", "parent", "count", "percent_of_parent"]
    missing = [c for c in need if c not in pops.columns]
    if missing:
        raise ReportError(
            f"{src}: missing column(s) {', '.join(missing)}; expected at least {', '.join(need)}"
        )
    out = ResultsFolder(root, pops)
    if (data / "run.json").is_file():
        out.run = _read_json(data / "run.json") or {}
    if (data / "gates.json").is_file():
        g = _read_json(data / "gates.json") or {}
        out.gates = g.get("samples", g) if isinstance(g, dict) else {}
    if (data / "errors.csv").is_file():
        try:
            out.errors = pd.read_csv(data / "errors.csv", dtype=str).fillna("")
        except pd.errors.EmptyDataError:
            out.errors = pd.DataFrame()
    for pj in sorted((data / "plots").glob("*/plots.json")):
        if not _inside(pj, root):  # a link planted in the folder
            continue
        meta = _read_json(pj)
        if isinstance(meta, dict) and "sample" in meta:
            meta["_dir"] = pj.parent
            out.plots[str(meta["sample"])] = meta
    if (data / "plots" / "replot.json").is_file():
        out.replot = _read_json(data / "plots" / "replot.json") or []
    sdir = Path(stats_dir) if stats_dir is not None else root / "stats"
    if stats_dir is not None and not sdir.is_dir():
        raise ReportError(
            f"{sdir}: no such stats folder (expected the --out folder of 'cytophen stats')"
        )
    if sdir.is_dir():
        images = [
            p
            for p in sdir.rglob("*")
            if p.suffix.lower() in _IMAGE_EXT
            and not p.name.startswith(".")
            and p.is_file()
            and _inside(p, sdir)
        ]
        out.stats_images = sorted(images, key=_stats_order)
    return out


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, every link followed, is ``folder`` or lies inside it (a results folder
    is input like any other: a name in it must not lead the report to another file)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError):
        return False


def _stats_order(p: Path) -> tuple:
    """Overview plots (heatmaps) first, then per population its trajectories before the rest
    (``cytophen stats`` writes ``heatmap.png``, ``trajectories_<pop>.png``, ``scatter_<pop>.png``)."""
    stem = p.stem
    kind, _, pop = stem.partition("_")
    if not pop:
        return (0, stem, 0, str(p))
    return (1, pop, 0 if kind.startswith("traject") else 1, str(p))


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

    flags: list[list[str]] = []
    samples = []
    by_sample: dict[str, list[dict]] = {}
    for rec in pops_df.to_dict("records"):
        by_sample.setdefault(str(rec["sample"]), []).append(rec)
    for s in sample_order:
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
                flags.append([s, p, "fell back", str(entry.get("reason") or note)])
            if not measured:
                kinds.append("not measured")
                flags.append([s, p, "not measured", note])
            elif count is not None and count < low_count:
                kinds.append("low count")
                flags.append([s, p, "low count", f"{int(count)} events < {low_count}"])
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
                f = meta["_dir"] / str(item.get("file") or "")
                if not _inside(f, res.path) or f.parent != meta["_dir"]:
                    flags.append(
                        [
                            s,
                            str(item.get("gate")),
                            "plot refused",
                            "file outside the results folder",
                        ]
                    )
                    continue
                if f.is_file():
                    plots[item["gate"]] = {
                        "src": _img_src(f, base, do_embed),
                        "fell_back": bool(item.get("fell_back")),
                        "reason": str(item.get("reason") or ""),
                    }
        first = next(iter(rows.values()))
        samples.append(
            {
                "id": s,
                "file": str(first.get("file") or ""),
                "cells": cells,
                "flags": sample_flags,
                "plots": plots,
            }
        )

    for o in res.replot:
        if o.get("status") in ("failed", "counts differ"):
            flags.append(
                [str(o.get("sample")), "", f"plots: {o['status']}", str(o.get("message") or "")]
            )

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

    errors = []
    if len(res.errors):
        cols = list(res.errors.columns)
        errors = {"columns": cols, "rows": res.errors[cols].astype(str).values.tolist()}
    else:
        errors = {"columns": ["sample", "file", "stage", "message"], "rows": []}

    data = {
        "populations": order,
        "parents": parents,
        "samples": samples,
        "gates": gate_list,
        "flags": flags,
        "errors": errors,
        "low_count": low_count,
    }
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


def _render(data: dict, summary: dict, title: str) -> str:
    e = html.escape
    s = summary
    short = s["hash"][:12] if isinstance(s["hash"], str) else s["hash"]
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
            "Flags",
            f"{s['flags']} in {s['flagged_samples']} sample(s) "
            f"(fell back, not measured, or fewer than {data['low_count']} events)",
        ),
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
    summary_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    stats_html = ""
    if s["stats"]:
        figs = "".join(
            f"<figure class='stat'><img loading='lazy' src='{e(i['src'])}' alt='{e(i['name'])}'>"
            f"<figcaption>{e(i['name'])}</figcaption></figure>"
            for i in s["stats"]
        )
        stats_html = f"<section id='longitudinal'><h2>Longitudinal plots</h2><div class='grid'>{figs}</div></section>"
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return _PAGE.format(
        title=e(title),
        summary=summary_html,
        stats=stats_html,
        data=_json_for_script(data),
        generated=e(generated),
        version=e(__version__),
        css=_CSS,
        js=_JS,
    )


def write_report(
    results_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    stats_dir: str | os.PathLike | None = None,
    embed: bool | None = None,
    low_count: int = LOW_COUNT,
    title: str | None = None,
    replot: bool = False,
    template=None,
    jobs: int | None = None,
) -> Path:
    """Write the self-contained HTML report of a results folder.

    Parameters
    ----------
    results_dir
        The ``--out`` folder of ``cytophen gate`` (see :func:`load_results`).
    out
        The HTML file (default ``results_dir/report.html``). Relative image paths are computed from
        its folder, so keep it next to the results (or embed).
    stats_dir
        Folder of longitudinal plots from ``cytophen stats --out DIR`` (default
        ``results_dir/stats`` when present).
    embed
        ``True``: images inline as base64 (one portable file); ``False``: relative, lazy-loaded
        files; ``None``: embed only when there are at most :data:`EMBED_LIMIT` images.
    low_count
        Populations with fewer events are flagged as too few to trust (default 100).
    title
        Page title (default from the template name).
    replot
        First make the gating plots of samples that have none by re-reading and re-gating their
        FCS files (see :func:`cytophen.report.replot.replot`); needs the files and the template.
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
    if replot:
        from cytophen.report.replot import replot as _replot

        _replot(results_dir, template=template, jobs=jobs)
    res = load_results(results_dir, stats_dir=stats_dir)
    out_path = Path(out) if out is not None else Path(results_dir) / "report.html"
    if out_path.is_dir():
        out_path = out_path / "report.html"
    if not out_path.parent.is_dir():
        raise ReportError(f"{out_path}: its folder {out_path.parent} does not exist")
    data, summary = _build(res, out_path, embed=embed, low_count=int(low_count))
    page = _render(
        data, summary, title or f"cytophen report: {summary['template']} ({summary['ok']} samples)"
    )
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out_path


# ---------------------------------------------------------------------------------------------
# page template (inline CSS + vanilla JS, passed in as format arguments)
# ---------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fff}
header{background:#1f3b57;color:#fff;padding:10px 20px}header h1{font-size:19px;margin:0}
header p{margin:2px 0 0;font-size:12px;opacity:.8}
nav{position:sticky;top:0;background:#f4f6f8;border-bottom:1px solid #ddd;padding:6px 20px;z-index:2}
nav a{margin-right:14px;color:#1f3b57;text-decoration:none;font-weight:600}
main{padding:0 20px 40px}section{margin-top:18px}h2{font-size:17px;border-bottom:2px solid #1f3b57;padding-bottom:3px}
table{border-collapse:collapse;font-size:12.5px}th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f0f2f4;position:sticky;top:0}td.t,th.t{text-align:left}
table.summary th{text-align:left;width:150px}table.summary td{text-align:left}
thead th{cursor:pointer;user-select:none}thead th.asc:after{content:' \\25B2'}thead th.desc:after{content:' \\25BC'}
td.flag{background:#fde2e1}td.low{background:#fff3cd}td.nm{color:#999;background:#f5f5f5}.bad{color:#c0392b}
.tools{margin:6px 0;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.pager button{margin:0 2px}.scroll{overflow-x:auto;max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;border:2px solid #e3e3e3;padding:2px;background:#fff;text-align:center}
figure.fb{border-color:#d62728}figure img{display:block;width:232px;height:216px}
figure.stat img{width:auto;height:auto;max-width:560px}
figcaption{font-size:11.5px;max-width:232px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
figure.stat figcaption{max-width:560px}
.card{border:1px solid #ccc;border-radius:4px;padding:8px 10px;margin:10px 0}
.card h3{margin:0 0 6px;font-size:15px}.muted{color:#777;font-size:12px}
.badge{display:inline-block;background:#d62728;color:#fff;border-radius:3px;padding:0 5px;font-size:11px;margin-left:6px}
.badge.low{background:#e0a800}.badge.nm{background:#888}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;font-size:12px}
img.broken{outline:3px solid red}
"""

_JS = r"""
(function(){
'use strict';
const D = JSON.parse(document.getElementById('cytophen-data').textContent);
function el(tag, attrs, kids){
  const n = document.createElement(tag);
  if (attrs) for (const k in attrs){
    if (k === 'text') n.textContent = attrs[k];
    else if (k === 'cls') n.className = attrs[k];
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), attrs[k]);
    else n.setAttribute(k, attrs[k]);
  }
  (kids || []).forEach(c => { if (c != null) n.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
  return n;
}
function fmtPct(v){ return v == null ? 'n/a' : (v < 1 ? v.toPrecision(3) : v.toFixed(1)); }
function img(src, alt){
  const i = el('img', {loading: 'lazy', alt: alt, decoding: 'async'});
  i.addEventListener('load', () => { i.dataset.loaded = '1'; });
  i.addEventListener('error', () => { i.classList.add('broken'); console.error('cytophen report: image failed to load: ' + src.slice(0, 200)); });
  i.src = src;
  return i;
}
/* static images (longitudinal plots): mark them loaded, report failures like the others */
document.querySelectorAll('#longitudinal img').forEach(i => {
  const ok = () => { i.dataset.loaded = '1'; };
  const bad = () => { i.classList.add('broken'); console.error('cytophen report: image failed to load: ' + i.getAttribute('src').slice(0, 200)); };
  if (i.complete) { if (i.naturalWidth) ok(); else if (i.getAttribute('loading') !== 'lazy') bad(); }
  i.addEventListener('load', ok); i.addEventListener('error', bad);
});
/* a sortable, filterable, paged table; rows are arrays, columns {label, num, render(row)->td} */
function pagedTable(host, id, columns, rows, pageSize, initialSort){
  let sortCol = -1, dir = 1, page = 0, filter = '';
  if (initialSort){
    sortCol = columns.findIndex(c => c.label === initialSort.label);
    dir = initialSort.desc ? -1 : 1;
  }
  const info = el('span', {cls: 'muted'});
  const tbl = el('table', {id: id});
  const pager = el('span', {cls: 'pager'});
  const input = el('input', {type: 'search', placeholder: 'filter rows', oninput: e => { filter = e.target.value.toLowerCase(); page = 0; draw(); }});
  host.appendChild(el('div', {cls: 'tools'}, [input, pager, info]));
  host.appendChild(el('div', {cls: 'scroll'}, [tbl]));
  function view(){
    let r = rows;
    if (filter) r = r.filter(x => String(x[0]).toLowerCase().includes(filter) || (x.__text || '').includes(filter));
    if (sortCol >= 0){
      const c = columns[sortCol];
      r = r.slice().sort((a, b) => {
        const x = c.key(a), y = c.key(b);
        if (x == null && y == null) return 0; if (x == null) return 1; if (y == null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
    }
    return r;
  }
  function draw(){
    const r = view();
    const pages = Math.max(1, Math.ceil(r.length / pageSize));
    page = Math.min(page, pages - 1);
    tbl.textContent = '';
    const head = el('tr', null, columns.map((c, i) => el('th', {
      cls: (c.num ? '' : 't ') + (i === sortCol ? (dir > 0 ? 'asc' : 'desc') : ''), title: c.title || 'click to sort',
      onclick: () => { if (sortCol === i) dir = -dir; else { sortCol = i; dir = 1; } draw(); }}, [c.label])));
    tbl.appendChild(el('thead', null, [head]));
    const body = el('tbody');
    r.slice(page * pageSize, (page + 1) * pageSize).forEach(row => body.appendChild(el('tr', null, columns.map(c => c.render(row)))));
    tbl.appendChild(body);
    pager.textContent = '';
    pager.appendChild(el('button', {type: 'button', onclick: () => { page = Math.max(0, page - 1); draw(); }}, ['\u2039 prev']));
    pager.appendChild(document.createTextNode(' page ' + (page + 1) + ' of ' + pages + ' '));
    pager.appendChild(el('button', {type: 'button', onclick: () => { page = Math.min(pages - 1, page + 1); draw(); }}, ['next \u203a']));
    info.textContent = r.length + ' row(s)';
  }
  draw();
}
function textCol(label, i){ return {label: label, key: r => r[i], render: r => el('td', {cls: 't', text: r[i] == null ? '' : String(r[i])})}; }

/* failures and flags */
(function(){
  const host = document.getElementById('failures-table');
  if (!D.errors.rows.length){ host.appendChild(el('p', {text: 'No sample failed.'})); }
  else pagedTable(host, 'failures', D.errors.columns.map((c, i) => textCol(c, i)), D.errors.rows, 50);
  const fh = document.getElementById('flags-table');
  if (!D.flags.length){ fh.appendChild(el('p', {text: 'Nothing flagged.'})); }
  else pagedTable(fh, 'flags', ['sample', 'population', 'flag', 'detail'].map((c, i) => textCol(c, i)), D.flags, 50);
})();

/* populations: one row per sample, one column per population (percent of parent) */
(function(){
  const host = document.getElementById('populations-table');
  const rows = D.samples.map((s, si) => { const r = [s.id, Object.keys(s.flags).length, si]; r.__text = s.file.toLowerCase(); return r; });
  const cols = [
    {label: 'sample', key: r => r[0], render: r => el('td', {cls: 't'}, [el('a', {href: '#sample-' + r[2], onclick: () => showSample(r[2]), text: r[0]})])},
    {label: 'flags', num: true, key: r => r[1], render: r => el('td', {cls: r[1] ? 'flag' : '', text: String(r[1])})},
  ];
  D.populations.forEach((p, pi) => cols.push({
    label: p, num: true, title: p + ' (% of ' + D.parents[p] + '); click to sort',
    key: r => { const c = D.samples[r[2]].cells[pi]; return c && c[3] ? c[1] : null; },
    render: r => {
      const c = D.samples[r[2]].cells[pi];
      if (!c) return el('td', {cls: 'nm', text: ''});
      const k = c[5] || [];
      const cls = !c[3] ? 'nm' : k.includes('fell back') ? 'flag' : k.includes('low count') ? 'low' : '';
      return el('td', {cls: cls, title: (c[0] == null ? 'not measured' : c[0] + ' events') + (c[4] ? ' \u2013 ' + c[4] : ''), text: c[3] ? fmtPct(c[1]) : 'n/m'});
    }}));
  /* a link such as report.html#sort=switched:desc opens the table sorted by that column */
  const m = /(?:^#|&)sort=([^&:]+)(?::(asc|desc))?/.exec(location.hash);
  const initial = m ? {label: decodeURIComponent(m[1]), desc: m[2] === 'desc'} : null;
  pagedTable(host, 'populations', cols, rows, 50, initial);
})();

/* gate by gate: the same gate for every sample, side by side */
const gateHost = document.getElementById('gate-grid');
const gateSel = document.getElementById('gate-select');
const gateOrder = document.getElementById('gate-order');
let gatePage = 0; const GATE_PAGE = 24;
function drawGate(){
  gateHost.textContent = '';
  const g = D.gates[gateSel.selectedIndex];
  if (!g) { gateHost.appendChild(el('p', {text: 'No gating plots in this results folder: make them with \u201ccytophen report RESULTS --replot\u201d (re-reads and re-gates the FCS files).'})); return; }
  const pi = D.populations.indexOf(g.populations[0]);
  let list = D.samples.map((s, si) => ({s: s, si: si, pct: pi >= 0 && s.cells[pi] ? s.cells[pi][1] : null})).filter(x => x.s.plots[g.key]);
  if (gateOrder.value === 'pct') list.sort((a, b) => (a.pct == null) - (b.pct == null) || a.pct - b.pct);
  if (gateOrder.value === 'flag') list.sort((a, b) => b.s.plots[g.key].fell_back - a.s.plots[g.key].fell_back);
  const pages = Math.max(1, Math.ceil(list.length / GATE_PAGE));
  gatePage = Math.min(gatePage, pages - 1);
  const nav = el('div', {cls: 'tools'}, [
    el('button', {type: 'button', onclick: () => { gatePage = Math.max(0, gatePage - 1); drawGate(); }}, ['\u2039 prev']),
    ' page ' + (gatePage + 1) + ' of ' + pages + ' (' + list.length + ' samples) ',
    el('button', {type: 'button', onclick: () => { gatePage = Math.min(pages - 1, gatePage + 1); drawGate(); }}, ['next \u203a'])]);
  gateHost.appendChild(nav);
  const grid = el('div', {cls: 'grid'});
  list.slice(gatePage * GATE_PAGE, (gatePage + 1) * GATE_PAGE).forEach(x => {
    const p = x.s.plots[g.key];
    grid.appendChild(el('figure', {cls: p.fell_back ? 'fb' : '', title: p.fell_back ? 'fell back: ' + p.reason : x.s.id}, [
      img(p.src, g.key + ' in ' + x.s.id),
      el('figcaption', null, [el('a', {href: '#sample-' + x.si, onclick: () => showSample(x.si), text: x.s.id}), ' ' + (g.populations.length === 1 ? fmtPct(x.pct) + '%' : '')])]));
  });
  gateHost.appendChild(grid);
}
D.gates.forEach(g => gateSel.appendChild(el('option', {value: g.key, text: g.key + (g.parent ? '  (in ' + g.parent + ')' : '') + (g.populations.length > 1 ? ': ' + g.populations.join(', ') : '')})));
gateSel.addEventListener('change', () => { gatePage = 0; drawGate(); });
gateOrder.addEventListener('change', () => { gatePage = 0; drawGate(); });
drawGate();

/* sample by sample */
const sampleHost = document.getElementById('sample-cards');
let samplePage = 0; const SAMPLE_PAGE = 5;
function showSample(si){ samplePage = Math.floor(si / SAMPLE_PAGE); drawSamples(); }
function drawSamples(){
  sampleHost.textContent = '';
  const pages = Math.max(1, Math.ceil(D.samples.length / SAMPLE_PAGE));
  const nav = () => el('div', {cls: 'tools'}, [
    el('button', {type: 'button', onclick: () => { samplePage = Math.max(0, samplePage - 1); drawSamples(); }}, ['\u2039 prev']),
    ' samples ' + (samplePage * SAMPLE_PAGE + 1) + '\u2013' + Math.min(D.samples.length, (samplePage + 1) * SAMPLE_PAGE) + ' of ' + D.samples.length + ' ',
    el('button', {type: 'button', onclick: () => { samplePage = Math.min(pages - 1, samplePage + 1); drawSamples(); }}, ['next \u203a'])]);
  sampleHost.appendChild(nav());
  D.samples.slice(samplePage * SAMPLE_PAGE, (samplePage + 1) * SAMPLE_PAGE).forEach((s, k) => {
    const si = samplePage * SAMPLE_PAGE + k;
    const badges = [];
    const kinds = new Set(); Object.values(s.flags).forEach(v => v.forEach(x => kinds.add(x)));
    kinds.forEach(x => badges.push(el('span', {cls: 'badge ' + (x === 'low count' ? 'low' : x === 'not measured' ? 'nm' : ''), text: x})));
    const t = el('table', {cls: 'pops'});
    t.appendChild(el('thead', null, [el('tr', null, ['population', 'parent', 'count', '% of parent', '% of total', 'note'].map((h, i) => el('th', {cls: i < 2 || i === 5 ? 't' : '', text: h})))]));
    const b = el('tbody');
    D.populations.forEach((p, pi) => {
      const c = s.cells[pi]; if (!c) return;
      const k2 = c[5] || [];
      const cls = !c[3] ? 'nm' : k2.includes('fell back') ? 'flag' : k2.includes('low count') ? 'low' : '';
      b.appendChild(el('tr', {cls: cls}, [el('td', {cls: 't', text: p}), el('td', {cls: 't', text: D.parents[p]}),
        el('td', {cls: cls, text: c[0] == null ? 'n/m' : String(c[0])}), el('td', {cls: cls, text: c[3] ? fmtPct(c[1]) : ''}),
        el('td', {cls: cls, text: c[3] ? fmtPct(c[2]) : ''}), el('td', {cls: 't', text: [c[4]].concat(k2).filter(Boolean).join('; ')})]));
    });
    t.appendChild(b);
    const grid = el('div', {cls: 'grid'});
    D.gates.forEach(g => { const p = s.plots[g.key]; if (p) grid.appendChild(el('figure', {cls: p.fell_back ? 'fb' : '', title: p.fell_back ? 'fell back: ' + p.reason : g.key}, [img(p.src, g.key + ' in ' + s.id), el('figcaption', {text: g.key})])); });
    sampleHost.appendChild(el('div', {cls: 'card', id: 'sample-' + si}, [
      el('h3', null, [s.id].concat(badges)), el('div', {cls: 'muted', text: s.file}),
      el('div', {cls: 'scroll'}, [t]), grid]));
  });
  sampleHost.appendChild(nav());
}
drawSamples();
document.body.dataset.ready = '1';
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cytophen {version}">
<title>{title}</title>
<style>{css}</style></head>
<body>
<header><h1>{title}</h1><p>generated {generated} by cytophen {version}</p></header>
<nav><a href="#summary">Summary</a><a href="#failures">Failures</a><a href="#flags">Flags</a>
<a href="#populations">Populations</a><a href="#gates">Gates across samples</a><a href="#samples">Samples</a>
<a href="#longitudinal">Longitudinal</a></nav>
<main>
<section id="summary"><h2>Run summary</h2><table class="summary">{summary}</table>
<noscript><p class="bad">The tables and plots below need JavaScript (inline, no network).</p></noscript></section>
<section id="failures"><h2>Failures</h2><div id="failures-table"></div></section>
<section id="flags"><h2>Flags</h2>
<p class="muted legend"><span style="background:#fde2e1">fell back</span>a data-driven gate used its fallback on that sample
<span style="background:#fff3cd">low count</span>fewer events than the threshold (percentages imprecise: CV = 1/&radic;n)
<span style="background:#f5f5f5">not measured</span>marker absent, parent not measured or gate declined</p>
<div id="flags-table"></div></section>
<section id="populations"><h2>Populations (% of parent)</h2><div id="populations-table"></div></section>
<section id="gates"><h2>Gates across samples</h2>
<div class="tools"><label>gate <select id="gate-select"></select></label>
<label>order <select id="gate-order"><option value="sample">sample</option><option value="pct">percent of parent</option>
<option value="flag">fell back first</option></select></label></div>
<div id="gate-grid"></div></section>
<section id="samples"><h2>Samples</h2><div id="sample-cards"></div></section>
{stats}
</main>
<script type="application/json" id="cytophen-data">{data}</script>
<script>{js}</script>
</body></html>
"""
