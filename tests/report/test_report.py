"""The HTML report, tested as a user would: build a results folder (as ``cytophen gate --out`` writes
it, from cytophen.gate on simulated samples), write the report, open it in headless Chromium, and
check the page: no console errors, the populations table, the images loaded, a screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cytophen.cli import main as cli_main
from cytophen.errors import ReportError
from cytophen.report.html import load_results, write_report
from report_support import FALLBACK_REASON, RefLogicle, big_results, make_results

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """4 gated samples (S01's data-driven gate fell back), one failed file, plots, a stats folder."""
    out = make_results(
        tmp_path_factory.mktemp("run") / "results", n_samples=4, failed=1, fell_back=(1,)
    )
    stats = out / "stats"
    stats.mkdir()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([0, 4, 12, 20], [0, -5, -8, -12], marker="o")
    ax.set_title("switched_memory: change from baseline")
    fig.savefig(stats / "switched_memory_change.png")
    return out


def _data(html_text: str) -> dict:
    m = re.search(
        r'<script type="application/json" id="cytophen-data">(.*?)</script>', html_text, re.S
    )
    assert m, "the report embeds its data as JSON"
    return json.loads(m.group(1).replace("<\\/", "</"))


# --------------------------------------------------------------------------------------------
# content
# --------------------------------------------------------------------------------------------
def test_report_summarises_the_run_and_flags_what_needs_a_look(results, tmp_path):
    out = write_report(results, out=tmp_path / "report.html", low_count=100)
    text = out.read_text()
    res = load_results(results)
    tmpl = json.loads((results / "run.json").read_text())["template"]
    assert tmpl["name"] in text and tmpl["hash"][:12] in text and f"v{tmpl['version']}" in text
    assert "5 total, <b>4</b> gated" in text and ">1</b> failed" in text
    data = _data(text)
    # failures come from errors.csv with their reasons
    assert data["errors"]["rows"] == res.errors.values.tolist()
    assert "DATA holds 998" in data["errors"]["rows"][0][3]
    # fell back: exactly the sample whose data-driven gate fell back (gates.json), with its reason
    fb = [f for f in data["flags"] if f[2] == "fell back"]
    assert [(f[0], f[1], f[3]) for f in fb] == [("S01", "cd27pos", FALLBACK_REASON)]
    # low count: exactly the populations the table says have < 100 events
    pops = res.populations
    expected = sorted(
        (s, p) for s, p, c, m in zip(pops["sample"], pops["population"], pops["count"], pops["measured"])
        if m and c < 100
    )  # fmt: skip
    assert sorted((f[0], f[1]) for f in data["flags"] if f[2] == "low count") == expected
    assert ("S00", "plasmablasts") in expected  # the simulated rare population (about 20 events)
    # one row per sample, one cell per population, in template order
    assert [s["id"] for s in data["samples"]] == ["S00", "S01", "S02", "S03"]
    assert data["populations"][:3] == ["lymphocytes", "bcells", "naive"]
    s0 = data["samples"][0]
    row = pops[(pops["sample"] == "S00") & (pops["population"] == "bcells")].iloc[0]
    cell = s0["cells"][data["populations"].index("bcells")]
    assert cell[0] == row["count"] and cell[1] == pytest.approx(row["percent_of_parent"])
    # each gate's plots, the same gate across samples
    # one plot per parent and axes (FlowJo's layout): the quadrants, plasmablasts, the ellipse
    # and not_naive share bcells' IgD x CD27
    assert [g["key"] for g in data["gates"]] == ["lymphocytes", "bcells", "naive", "cd27pos"]
    assert data["gates"][2]["populations"] == [
        "naive", "unswitched", "switched", "dn", "plasmablasts", "ellipse", "not_naive",
    ]  # fmt: skip
    assert all(set(s["plots"]) == {g["key"] for g in data["gates"]} for s in data["samples"])
    assert data["samples"][1]["plots"]["cd27pos"]["fell_back"] is True
    # the longitudinal plot of the stats folder
    assert "switched memory change" in text


def test_threshold_for_low_counts_is_a_parameter(results, tmp_path):
    strict = _data(write_report(results, out=tmp_path / "a.html", low_count=1000).read_text())
    loose = _data(write_report(results, out=tmp_path / "b.html", low_count=0).read_text())
    assert not [f for f in loose["flags"] if f[2] == "low count"]
    assert len([f for f in strict["flags"] if f[2] == "low count"]) > len(
        [
            f
            for f in _data(write_report(results, out=tmp_path / "c.html").read_text())["flags"]
            if f[2] == "low count"
        ]
    )


def test_report_is_self_contained(results, tmp_path):
    text = write_report(results, out=tmp_path / "r.html", embed=False).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text and "url(http" not in text
    data = _data(text)
    srcs = [p["src"] for s in data["samples"] for p in s["plots"].values()]
    # relative image paths resolve from the HTML's folder
    assert srcs and all((tmp_path / Path(s)).resolve().is_file() for s in srcs)
    embedded = _data(write_report(results, out=tmp_path / "e.html", embed=True).read_text())
    assert all(
        p["src"].startswith("data:image/png;base64,")
        for s in embedded["samples"]
        for p in s["plots"].values()
    )


def test_report_without_plots_still_has_the_tables(tmp_path):
    out = make_results(tmp_path / "noplots", n_samples=2, plots=False, failed=0)
    data = _data(write_report(out).read_text())
    assert (out / "report.html").is_file()
    assert data["gates"] == [] and len(data["samples"]) == 2 and data["errors"]["rows"] == []


def test_csv_only_results_folder(results, tmp_path):
    out = tmp_path / "csvonly"
    out.mkdir()
    shutil.copy(results / "populations.csv", out)
    data = _data(write_report(out).read_text())
    assert len(data["samples"]) == 4 and data["flags"]  # "fell back" is read from the note column
    assert any(f[2] == "fell back" and f[0] == "S01" for f in data["flags"])


def test_report_file_has_the_umasks_permissions(results, tmp_path):
    # a fresh process with a group-only umask: the page is shared as the lab's umask says
    out = tmp_path / "perm.html"
    code = f"from cytophen.report.html import write_report; write_report({str(results)!r}, out={str(out)!r}, replot=False)"
    subprocess.run([sys.executable, "-c", code], check=True, preexec_fn=lambda: os.umask(0o027))
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # before: always 0644


def test_bad_folders_raise_clear_errors(tmp_path):
    with pytest.raises(ReportError, match="no such results folder"):
        write_report(tmp_path / "missing")
    with pytest.raises(ReportError, match="neither populations.parquet nor populations.csv"):
        write_report(tmp_path)
    pd.DataFrame({"sample": ["a"], "count": [1]}).to_csv(tmp_path / "populations.csv", index=False)
    with pytest.raises(
        ReportError, match=r"populations.csv: missing column\(s\) population, parent"
    ):
        write_report(tmp_path)


def test_cli_report(results, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert (
        cli_main(["report", str(results), "--out", str(out), "--stats", str(results / "stats")])
        == 0
    )
    assert out.is_file() and "switched memory change" in out.read_text()
    assert cli_main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    assert cli_main(["report", str(results), "--stats", str(tmp_path / "nostats")]) == 2
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------
# in a browser
# --------------------------------------------------------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "chromium is not installed (make test installs Debian's chromium; apt-get install chromium)"
    )


def _browse(
    page: Path, tmp: Path, *extra: str, height: int = 6000, fragment: str = ""
) -> subprocess.CompletedProcess:
    cmd = [
        _chromium(), *CHROME_FLAGS, f"--user-data-dir={tmp / 'chrome-profile'}",
        "--enable-logging=stderr", "--v=0", f"--window-size=1400,{height}",
        "--virtual-time-budget=8000", *extra, page.resolve().as_uri() + fragment,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _console(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]


def _imgs(dom: str) -> list[str]:
    return re.findall(r"<img\b[^>]*>", dom)


def _table_rows(dom: str, table_id: str) -> int:
    m = re.search(rf'<table id="{table_id}">(.*?)</table>', dom, re.S)
    assert m, f"table #{table_id} is in the page"
    body = m.group(1).split("<tbody>", 1)[1]
    return body.count("<tr")


def test_report_in_headless_chromium(results, tmp_path):
    page = write_report(results, out=results / "report.html", embed=False)
    proc = _browse(page, tmp_path, "--dump-dom")
    assert not _console(proc), "console messages: " + "\n".join(_console(proc))
    dom = proc.stdout
    assert 'data-ready="1"' in dom  # the page's script ran to the end
    assert _table_rows(dom, "populations") == 4
    assert _table_rows(dom, "failures") == 1
    # the one gate that fell back, first; low counts apart, one row per population
    assert _table_rows(dom, "fallbacks") == 1
    data = _data(page.read_text())
    assert _table_rows(dom, "lowcount") == len(data["low"]) >= 1
    imgs = _imgs(dom)
    # gate view (4 samples) + 4 sample cards x 4 plots + the fell-back plot + 1 longitudinal plot
    assert len(imgs) == 4 + 4 * 4 + 1 + 1
    not_loaded = [i for i in imgs if 'data-loaded="1"' not in i]
    assert not not_loaded, not_loaded[:3]
    assert 'class="broken"' not in dom
    # a screenshot for the record
    shot = tmp_path / "report.png"
    _browse(page, tmp_path, f"--screenshot={shot}", height=2400)
    assert shot.is_file() and shot.stat().st_size > 50_000
    try:
        shutil.copy(shot, "/tmp/report_screenshot.png")
    except OSError:
        pass


def test_populations_table_sorts_in_the_page(results, tmp_path):
    page = write_report(results, out=tmp_path / "sorted.html", embed=True)
    pops = pd.read_parquet(results / "populations.parquet")
    bc = pops[pops["population"] == "bcells"].set_index("sample")["percent_of_parent"]
    for direction, expected in (
        ("desc", bc.sort_values(ascending=False)),
        ("asc", bc.sort_values()),
    ):
        proc = _browse(page, tmp_path, "--dump-dom", fragment=f"#sort=bcells:{direction}")
        assert not _console(proc), _console(proc)
        m = re.search(r'<table id="populations">(.*?)</table>', proc.stdout, re.S)
        order = re.findall(r'<a href="#sample-\d+">([^<]+)</a>', m.group(1))
        assert order == list(expected.index), (direction, order)
        assert re.search(rf'<th class="{direction}"[^>]*>bcells</th>', m.group(1))  # the arrow


def test_embedded_report_opens_anywhere(results, tmp_path):
    page = write_report(results, out=tmp_path / "portable.html", embed=True)
    moved = tmp_path / "elsewhere" / "portable.html"
    moved.parent.mkdir()
    shutil.move(page, moved)
    proc = _browse(moved, tmp_path, "--dump-dom")
    assert not _console(proc), _console(proc)
    imgs = _imgs(proc.stdout)
    assert len(imgs) == 4 + 4 * 4 + 1 + 1 and all('data-loaded="1"' in i for i in imgs)


def test_a_broken_image_is_reported_on_the_console(results, tmp_path):
    """The check above can fail: a missing plot file shows up as a console error."""
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    victim = next((copy / "plots").glob("*/00_*.png"))
    page = write_report(copy, embed=False)
    victim.unlink()
    proc = _browse(page, tmp_path, "--dump-dom")
    assert any("image failed to load" in ln for ln in _console(proc))


@pytest.mark.slow
def test_500_sample_report_is_paged_and_lazy(tmp_path):
    out = big_results(tmp_path, 500)
    page = write_report(out)
    text = page.read_text()
    data = _data(text)
    assert len(data["samples"]) == 500 and len(data["gates"]) == 4
    # 2000 plots: more than EMBED_LIMIT, so linked, not embedded, and the page stays small
    assert "base64" not in text and page.stat().st_size < 3_000_000
    proc = _browse(page, tmp_path, "--dump-dom", height=3000)
    assert not _console(proc), _console(proc)
    dom = proc.stdout
    assert _table_rows(dom, "populations") == 50 and "page 1 of 10" in dom
    imgs = _imgs(dom)
    # one page of the gate view (24) + one page of samples (5 x 4 plots), all lazy
    assert len(imgs) == 24 + 5 * 4
    assert all('loading="lazy"' in i for i in imgs)


# --------------------------------------------------------------------------------------------
# with the real batch runner: plots re-made from the FCS files the tables list
# --------------------------------------------------------------------------------------------
def test_report_of_a_real_batch_run_with_replot(tmp_path):
    import cytophen
    from cytophen.pipeline.batch import gate_files
    from report_support import make_template, simulate

    files = []
    for i in range(3):
        sample, _ = simulate(i, 4000, shift=0.1 * i)
        f = tmp_path / "fcs" / f"donor{i}.fcs"
        f.parent.mkdir(exist_ok=True)
        cytophen.write_fcs(f, sample.events, sample.channels, markers=sample.markers)
        files.append(f)
    (tmp_path / "fcs" / "broken.fcs").write_bytes(b"FCS3.1  not really")
    files.append(tmp_path / "fcs" / "broken.fcs")
    template = make_template()  # its data-driven CD27 cut is fitted on every sample (mindensity)
    out = tmp_path / "results"
    batch = gate_files(files, template, jobs=1, out=out, progress=False)
    assert batch.n_ok == 3 and batch.n_failed == 1
    page = write_report(out, replot=True, template=template, jobs=1)
    outcomes = json.loads((out / "plots" / "replot.json").read_text())
    # re-gating gives the batch's counts exactly (the replot checks every population)
    assert sorted(o["status"] for o in outcomes) == ["ok", "ok", "ok"]
    data = _data(page.read_text())
    assert [s["id"] for s in data["samples"]] == ["donor0", "donor1", "donor2"]
    assert all(len(s["plots"]) == 4 for s in data["samples"])
    assert data["errors"]["rows"][0][0] == "broken"
    # the batch's gates.json is where fell-back flags come from; none fell back on clean data
    assert not [f for f in data["flags"] if f[2] == "fell back"]
    # a second replot skips what is there; a different template is refused
    from cytophen.report.replot import replot

    assert {o.status for o in replot(out, template=template)} == {"skipped"}
    other = make_template(logicle=RefLogicle(W=1.0))
    with pytest.raises(ReportError, match="was gated with"):
        replot(out, template=other, only_missing=False)


# --------------------------------------------------------------------------------------------
# the page as a browser renders it (DevTools protocol): every image decodes, thumbnails open
# --------------------------------------------------------------------------------------------
def _browser(tmp: Path, **kw):
    from browser import Chromium, chromium

    if chromium() is None:
        pytest.skip(
            "chromium is not installed (make test installs Debian's chromium; apt-get install chromium)"
        )
    return Chromium(tmp / "cdp-profile", **kw)


def test_the_report_copied_alone_shows_every_image_and_opens_them_full_size(results, tmp_path):
    """report.html copied on its own to another folder: every plot of every sample (not only the
    page shown) and the longitudinal plot decode in Chromium (naturalWidth > 0); a thumbnail
    opens at full size in the page and Escape closes it."""
    from browser import EVERY_IMAGE

    (tmp_path / "made").mkdir()
    page = write_report(results, out=tmp_path / "made" / "report.html")  # the default: embedded
    alone = tmp_path / "elsewhere" / "copy.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    shutil.rmtree(page.parent)
    data = _data(alone.read_text())
    n_plots = sum(len(s["plots"]) for s in data["samples"])
    assert n_plots == 4 * 4
    with _browser(tmp_path) as b:
        s = b.open(alone.as_uri())
        got = b.eval(s, EVERY_IMAGE)
        assert got["linked"] == 0 and got["plots"] == n_plots
        # and the images in the document: a page of the gate view, of the sample cards, the
        # fell-back plot and the longitudinal plot
        assert got["n"] == n_plots + 4 + 4 * 4 + 1 + 1
        assert min(got["widths"]) > 0 and min(got["heights"]) > 0, got
        # a thumbnail opens at full size, larger than shown in the grid
        thumb = "document.querySelector('#gate-grid figure img')"
        shown = b.eval(s, f"{thumb}.getBoundingClientRect().width")
        b.eval(s, f"{thumb}.click()")
        big = b.eval(
            s,
            """(async () => { const i = document.querySelector('#lightbox img');
            await i.decode(); return {hidden: document.getElementById('lightbox').hidden,
            natural: i.naturalWidth, width: i.getBoundingClientRect().width,
            caption: document.querySelector('#lightbox .cap').textContent}; })()""",
        )
        assert not big["hidden"] and big["natural"] > 0 and big["width"] >= 1.5 * shown, big
        assert big["caption"].startswith("S00") and "lymphocytes" in big["caption"]
        b.key(s, "ArrowRight")
        assert b.eval(s, "document.querySelector('#lightbox .cap').textContent").startswith("S01")
        b.key(s, "Escape")
        assert b.eval(s, "document.getElementById('lightbox').hidden") is True
        # helper populations are hidden by default; fallbacks come first, low counts apart
        order = b.eval(s, "Array.from(document.querySelectorAll('main > section')).map(x => x.id)")
        assert order[:2] == ["summary", "fallbacks"] and order.index("lowcount") > 1
        heading = b.eval(s, "document.querySelector('#lowcount h2').textContent")
        assert "fewer than 100 events" in heading
        assert not b.console, b.console


def _plots_of_30_samples(root: Path, n_samples: int = 30, per_sample: int = 15) -> Path:
    """A results folder of 30 samples x 15 plots: the tables of real gated samples, and plots
    made by save_sample_plots (each plot file linked under 15 plot names)."""
    from cytophen.report.plots import save_sample_plots
    from report_support import gate_sample

    res, _ = gate_sample(0, n=3000)
    proto = [p for p in save_sample_plots(res, root / "proto") if p.suffix == ".png"]
    tables = []
    for i in range(n_samples):
        t = res.table.copy()
        t["sample"] = f"P{i:02d}"
        tables.append(t)
        d = root / "results" / "plots" / f"s{i:02d}"
        d.mkdir(parents=True)
        items = []
        for k in range(per_sample):
            src = proto[k % len(proto)]
            name = f"{k:02d}_plot{k}.png"
            os.link(src, d / name)
            items.append({"gate": f"plot{k}", "populations": [f"plot{k}"], "parent": None,
                          "file": name, "fell_back": False, "reason": "",
                          "percent_of_parent": {}})  # fmt: skip
        (d / "plots.json").write_text(json.dumps({"sample": f"P{i:02d}", "plots": items}))
    pd.concat(tables, ignore_index=True).to_parquet(
        root / "results" / "populations.parquet", index=False
    )
    return root / "results"


@pytest.mark.slow
def test_30_samples_by_15_plots_are_one_file_whose_every_image_loads(tmp_path):
    from browser import EVERY_IMAGE

    out = _plots_of_30_samples(tmp_path)
    page = write_report(out)
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 30 * 15
    alone = tmp_path / "alone.html"
    shutil.copy(page, alone)
    with _browser(tmp_path) as b:
        s = b.open(alone.as_uri())
        got = b.eval(s, EVERY_IMAGE)
        assert got["plots"] == 450 and got["linked"] == 0 and min(got["widths"]) > 0
        assert not b.console, b.console


def test_a_linked_report_copied_alone_loses_its_images_and_the_check_sees_it(results, tmp_path):
    """The check above can fail: a report that links its plots (--no-embed), copied alone, shows
    no plot at all."""
    from browser import EVERY_IMAGE

    page = write_report(results, out=results / "linked.html", embed=False)
    alone = tmp_path / "alone.html"
    shutil.copy(page, alone)
    with _browser(tmp_path) as b:
        got = b.eval(b.open(alone.as_uri()), EVERY_IMAGE)
    assert got["linked"] == got["n"] > 0 and max(got["widths"]) == 0


def test_cli_report_draws_the_plots_of_a_run_made_without_them(tmp_path, capsys):
    """`cytophen gate` without --plots, then `cytophen report DIR`: the report re-gates the files
    (the run's template file, repairs and seed), checks every count, and embeds the plots."""
    from cytophen.simulate import simulate_file

    for i in range(2):
        simulate_file(tmp_path / "fcs" / f"S{i}.fcs", "bcell", seed=20 + i, events=8000)
    out = tmp_path / "results"
    assert cli_main(["gate", str(tmp_path / "fcs"), "--template", "bcell", "--out", str(out),
                     "-j", "1", "-q"]) == 0  # fmt: skip
    assert not (out / "plots").exists()
    assert cli_main(["report", str(out), "-j", "1", "-q"]) == 0
    data = _data((out / "report.html").read_text())
    outcomes = json.loads((out / "plots" / "replot.json").read_text())
    assert sorted(o["status"] for o in outcomes) == ["ok", "ok"]  # the batch's counts, exactly
    assert [s["id"] for s in data["samples"]] == ["S0", "S1"]
    for s in data["samples"]:
        assert len(s["plots"]) >= 8 and all(
            p["src"].startswith("data:image/png") for p in s["plots"].values()
        )
    # a helper population is no column of the table, and its children's plot says whose events
    import cytophen

    helpers = [p for p in cytophen.load_template("bcell").populations if p.hidden]
    assert helpers and data["hidden"] == [p.name for p in helpers]
    assert not set(data["hidden"]) & set(data["populations"])
    for h in helpers:
        on_it = [p for p in data["samples"][0]["plots"].values() if p["parent"] == h.name]
        assert on_it and all(f"{h.name} (hidden helper" in p["title"] for p in on_it)
    # --no-replot: the tables only, and the page says how to make the plots
    shutil.rmtree(out / ".cytophen" / "current" / "plots")
    (out / "plots").unlink()
    assert cli_main(["report", str(out), "--no-replot", "-q"]) == 0
    data = _data((out / "report.html").read_text())
    assert data["gates"] == [] and "--replot" in data["no_plots"]
