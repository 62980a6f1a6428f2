"""Gate every real file in ../shared/data/real with the shipped templates, unedited, and compare
with the references its README names (FlowJo's stored counts, openCyto's per-event gates, the
Stanford manual labels).

    .venv/bin/python benchmarks/real_data.py                 # tables on stdout
    .venv/bin/python benchmarks/real_data.py --plots DIR     # and every file's gating plots

The reference loaders live in tests/real_references.py so that the tests assert exactly what this
script reports.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import real_references as rr  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plots", type=Path, default=None, help="also draw every file's gating plots")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables as markdown")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if not rr.REAL.is_dir():
        print(f"no real data at {rr.REAL}", file=sys.stderr)
        return 1
    rows = []
    md: list[str] = []
    for case in rr.CASES:
        t0 = time.perf_counter()
        res = rr.gate_case(case)
        dt = time.perf_counter() - t0
        tab = res.table
        measured = tab[tab.measured]
        print(f"\n## {case.id}  ({case.template}, {res.n_events} events, {dt:.2f} s)")
        print(f"scale: {res.scale['scale'] if res.scale else '-'}; "
              f"{res.scale.get('file_spillover') if res.scale else ''}")
        for r in tab.itertuples():
            val = "" if not r.measured else f"{r.count:>7d} {r.percent_of_parent:6.2f} % of parent"
            print(f"  {r.population:22s} {val:32s} {r.note}")
        rows += rr.compare(case, res)
        md += _markdown_case(case, res)
        if args.plots is not None:
            out = args.plots / case.id
            out.mkdir(parents=True, exist_ok=True)
            from cytophen.report.plots import save_sample_plots

            save_sample_plots(res, out)
        del measured
    print("\n## Reference comparisons")
    for row in rows:
        flag = "ok " if row["ok"] else "MISS"
        print(f"{flag} {row['case']:38s} {row['what']:34s} ours {row['ours']:>9} "
              f"ref {row['reference']:>9}  ({row['tolerance']})")
    asserted = [r for r in rows if "reported" not in r["tolerance"]]
    misses = [r for r in asserted if not r["ok"]]
    print(f"\n{len(asserted) - len(misses)} of {len(asserted)} comparisons within tolerance "
          f"({len(rows) - len(asserted)} more reported, not targets)")
    if args.markdown is not None:
        md += ["", "| file | comparison | cytophen | reference | tolerance | within |",
               "| --- | --- | ---: | ---: | --- | --- |"]
        md += [f"| {r['case']} | {r['what']} | {r['ours']} | {r['reference']} | "
               f"{r['tolerance']} | {'yes' if r['ok'] else '**no**'} |" for r in rows]
        args.markdown.write_text("\n".join(md) + "\n")
    return 0


def _markdown_case(case, res) -> list[str]:
    scale = res.scale or {}
    out = [f"**{case.id}** ({res.n_events:,} events; scale {scale.get('scale', '-')}; "
           f"file spillover {scale.get('file_spillover', '-')})", "",
           "| population | count | % of parent | note |", "| --- | ---: | ---: | --- |"]
    for r in res.table.itertuples():
        count = "" if not r.measured else f"{r.count:,}"
        pct = "" if not r.measured else f"{r.percent_of_parent:.2f}"
        out.append(f"| {r.population} | {count} | {pct} | {r.note} |")
    return out + [""]


if __name__ == "__main__":
    raise SystemExit(main())
