"""A 48-sample FlowJo workspace, whole process: ``cytophen gate DIR -t ws.wsp`` vs FlowKit
(``Workspace(wsp, fcs_samples=DIR)`` + ``analyze_samples()`` + the report), side by side.

The workspace is built (once, cached in --dir) from the real FlowAtlas one
(../shared/data/real/treg/FlowAtlas): 48 samples, each a copy of one of its 10 present samples
with that sample's own gate tree (22-24 populations: rectangles and polygons on FlowJo biex axes,
a boolean), and 48 FCS files whose channels are renamed to the instrument's spelling with ``/``
(``FJComp-355 379/28-A``), as in the workspace that motivated issue 20; the workspace keeps
FlowJo's ``_`` spelling and the files' keywords. Timings are wall medians of --repeats runs of each
command as a user runs it (a fresh interpreter each time: imports, parsing, gating, writing the
tables), after one warm-up run of each. Both tools' counts are compared for every sample and
population.

Usage: ``.venv/bin/python benchmarks/bench_flowjo.py [--dir D] [--samples 48] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from ast import literal_eval
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
ATLAS = ROOT.parent / "shared" / "data" / "real" / "treg" / "FlowAtlas"

FLOWKIT_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import flowkit as fk
wsp, folder, out = sys.argv[1:4]
ws = fk.Workspace(wsp, fcs_samples=folder)
ws.analyze_samples()
ws.get_analysis_report().to_csv(out, index=False)
"""


def build(d: Path, n: int) -> Path:
    """48 renamed copies of the FlowAtlas files (channels with '/') and their workspace."""
    from lxml import etree

    import cytophen
    from cytophen.io.fcs import write_fcs

    wsp = d / f"flowatlas_{n}.wsp"
    fcs = d / "fcs"
    if wsp.is_file() and len(list(fcs.glob("*.fcs"))) == n and (d / "built").is_file():
        return wsp
    shutil.rmtree(fcs, ignore_errors=True)
    fcs.mkdir(parents=True)
    files = sorted(ATLAS.glob("*.fcs"))
    doc = etree.parse(str(ATLAS / "workspace.wsp"))
    root = doc.getroot()
    by_name = {s.find("SampleNode").get("name"): s for s in root.iter("Sample")}
    sample_list = root.find("SampleList")
    for s in list(sample_list):
        sample_list.remove(s)
    groups = root.find("Groups")
    for g in list(groups):
        if g.get("name") != "All Samples":
            groups.remove(g)
    refs = groups.find("GroupNode/Group/SampleRefs")
    for r in list(refs):
        refs.remove(r)
    for k in range(n):
        src = files[k % len(files)]
        name = f"S{k + 1:02d}_{src.name}"
        s = cytophen.read_fcs(src)
        slashed = [_slash(c) for c in s.channels]
        keywords = {key: v for key, v in s.keywords.items() if not key.startswith("$P")}
        keywords["$FIL"] = name
        write_fcs(fcs / name, s.events, slashed, markers=s.markers, keywords=keywords)
        el = etree.fromstring(etree.tostring(by_name[src.name]))
        sid = str(k + 1)
        el.find("DataSet").set("uri", f"file:/C:/lab/atlas/{name}")
        el.find("DataSet").set("sampleID", sid)
        node = el.find("SampleNode")
        node.set("name", name)
        node.set("sampleID", sid)
        for kw in el.find("Keywords"):
            if kw.get("name", "").startswith("$P") and kw.get("name", "").endswith("N"):
                kw.set("value", _slash(kw.get("value")))
            if kw.get("name") == "$FIL":
                kw.set("value", name)
        sample_list.append(el)
        etree.SubElement(refs, "SampleRef", sampleID=sid)
    doc.write(str(wsp), xml_declaration=True, encoding="UTF-8")
    (d / "built").write_text("1")
    return wsp


def _slash(channel: str) -> str:
    """The instrument's spelling FlowJo turned into '_': 'FJComp-355 379_28-A' -> '.../28-A'."""
    head, _, tail = channel.rpartition(" ")
    return f"{head} {tail.replace('_', '/', 1)}" if head else channel


def run(cmd, env) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in (0,):
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt


def check_counts(cy_csv: Path, fk_csv: Path) -> tuple[int, int]:
    import pandas as pd

    cy = pd.read_csv(cy_csv)
    fk = pd.read_csv(fk_csv)
    cy["key"] = cy["file"].map(lambda f: Path(f).name) + "|" + cy["path"].str.lstrip("/")
    paths = [
        "/".join((*literal_eval(p)[1:], n)) for p, n in zip(fk["gate_path"], fk["gate_name"])
    ]  # FlowKit's gate path is a tuple, written as its repr
    fk["key"] = (
        fk["sample_id" if "sample_id" in fk else "sample"].astype(str)
        + "|"
        + pd.Series(paths, index=fk.index)
    )
    m = cy.merge(fk[["key", "count"]], on="key", suffixes=("", "_fk"))
    return len(m), int((m["count"] != m["count_fk"]).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cytophen_bench_flowjo"))
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not ATLAS.is_dir():
        print(f"skipped: {ATLAS} is absent (the shared data)")
        return 0
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    os.environ.update(NUMBA_CACHE_DIR=env["NUMBA_CACHE_DIR"])
    d = args.dir
    d.mkdir(parents=True, exist_ok=True)
    wsp = build(d, args.samples)
    script = d / "flowkit_workspace.py"
    script.write_text(textwrap.dedent(FLOWKIT_SCRIPT))
    out = d / "out_cytophen"
    fk_csv = d / "flowkit.csv"
    cy_cmd = [str(BIN / "cytophen"), "gate", str(d / "fcs"), "-t", str(wsp), "-o", str(out), "-q"]
    fk_cmd = [sys.executable, str(script), str(wsp), str(d / "fcs"), str(fk_csv)]

    def cy():
        shutil.rmtree(out, ignore_errors=True)
        return run(cy_cmd, env)

    cy(), run(fk_cmd, env)  # warm-up: numba's cache, bytecode, the page cache
    cy_t, fk_t = [], []
    for _ in range(args.repeats):  # interleaved, so that load on the machine hits both alike
        cy_t.append(cy())
        fk_t.append(run(fk_cmd, env))
    n_cmp, n_diff = check_counts(out / "populations.csv", fk_csv)
    cym, fkm = statistics.median(cy_t), statistics.median(fk_t)
    print(
        f"{args.samples}-sample FlowJo workspace ({wsp.stat().st_size / 1e6:.1f} MB, built from "
        "FlowAtlas), whole process, wall seconds (median of "
        f"{args.repeats}; all cores)"
    )
    print(
        f"  cytophen gate DIR -t ws.wsp      {cym:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in cy_t)})"
    )
    print(
        f"  FlowKit Workspace+analyze_samples {fkm:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in fk_t)})"
    )
    print(f"  ratio cytophen / FlowKit: {cym / fkm:.2f}  (target <= 0.5)")
    print(f"  counts equal: {n_cmp - n_diff}/{n_cmp} sample x population")
    return 0


if __name__ == "__main__":
    sys.exit(main())
