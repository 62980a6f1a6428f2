"""``cytophen report`` reads a results folder as untrusted input: no path it takes from the folder
(a sample's plot folder in run.json, a plot file in plots.json, a link planted among the plots,
``.cytophen/current``) may lead it to write or embed anything outside the folder."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cytophen
from batch_support import make_file, write_template
from cytophen.errors import ReportError
from cytophen.report.html import write_report

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"secret-token-8c41f0e2\n"


@pytest.fixture
def results(tmp_path):
    make_file(tmp_path / "in" / "g0.fcs", 21)
    make_file(tmp_path / "in" / "g1.fcs", 22)
    tpath = write_template(tmp_path)
    out = tmp_path / "lab" / "res"
    cytophen.gate_files(tmp_path / "in", tpath, jobs=1, out=out, progress=False, plots=True)
    secret = tmp_path / "lab" / "secret.png"
    secret.write_bytes(SECRET)
    return out, secret, tpath


def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))  # through the link: the current generation's file


def _embedded(page: str) -> bool:
    return base64.b64encode(SECRET).decode() in page or SECRET.decode().strip() in page


@pytest.mark.parametrize("crafted", ["/ABS", "../../secret.png", "../../../lab/secret.png"])
def test_plot_file_outside_the_folder_is_not_embedded(results, crafted):
    out, secret, _ = results
    name = str(secret) if crafted == "/ABS" else crafted

    def edit(doc):
        doc["plots"][0]["file"] = name

    _edit_json(out / "plots" / "g0" / "plots.json", edit)
    page = write_report(out, embed=True).read_text()
    assert not _embedded(page)
    assert "plot refused" in page and "file outside the results folder" in page
    assert page.count("data:image/png;base64,") > 1  # the honest plots are still embedded


def test_planted_link_among_the_plots_is_not_followed(results):
    out, secret, _ = results
    meta = json.loads((out / "plots" / "g1" / "plots.json").read_text())
    target = out / "plots" / "g1" / meta["plots"][0]["file"]
    target.unlink()
    os.symlink(secret, target)
    page = write_report(out, embed=True).read_text()
    assert not _embedded(page) and "plot refused" in page


def test_planted_link_in_the_stats_folder_is_not_followed(results):
    out, secret, _ = results
    (out / "stats").mkdir()
    os.symlink(secret, out / "stats" / "heatmap.png")
    page = write_report(out, embed=True).read_text()
    assert not _embedded(page)


def test_current_generation_outside_the_folder_is_refused(results, tmp_path):
    out, _, _ = results
    elsewhere = tmp_path / "elsewhere"
    (out / ".cytophen" / "current").resolve().rename(elsewhere)
    (out / ".cytophen" / "current").unlink()
    os.symlink(elsewhere, out / ".cytophen" / "current")
    with pytest.raises(ReportError, match="outside"):
        write_report(out)


@pytest.mark.parametrize("crafted", ["../../../escape", "/tmp/escape-abs", "..", ".hidden"])
def test_replot_refuses_a_crafted_plot_folder(results, tmp_path, crafted):
    """A crafted safe_id in run.json made --replot write outside the folder."""
    out, _, tpath = results
    plots = (out / "plots").resolve()
    for sub in plots.iterdir():  # the run without plots that --replot exists for
        if sub.is_dir():
            for f in sub.iterdir():
                f.unlink()
            sub.rmdir()

    def edit(doc):
        doc["inputs"][0]["safe_id"] = (
            crafted if crafted != "/tmp/escape-abs" else str(tmp_path / "escape-abs")
        )

    _edit_json(out / "run.json", edit)
    before = {p for p in tmp_path.rglob("*")}
    r = subprocess.run(
        [sys.executable, "-m", "cytophen.cli", "report", str(out), "--replot", "--jobs", "1",
         "--template", str(tpath)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".numba_cache")),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in created if not str(p.resolve()).startswith(str(out.resolve()))]
    assert not outside, outside
    assert (plots / "g1" / "plots.json").is_file()  # the honest sample was re-plotted
    assert not (plots / "g0").exists()
    replot = json.loads((plots / "replot.json").read_text())
    g0 = next(o for o in replot if o["sample"] == "g0")
    assert g0["status"] == "failed" and "not a plain name" in g0["message"]
