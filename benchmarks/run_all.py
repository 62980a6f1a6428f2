"""Run every benchmarks/bench_*.py in turn and collect their printed tables in bench_out/.

Usage: ``make bench`` (or ``.venv/bin/python benchmarks/run_all.py [NAME ...]``). Each benchmark
measures cytophen and its peer side by side in one run and prints ratios; run on a quiet machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "bench_out"


def main(argv: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    failed = 0
    for script in scripts:
        t0 = time.perf_counter()
        print(f"=== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        text = proc.stdout + (("\n[stderr]\n" + proc.stderr[-4000:]) if proc.returncode else "")
        (OUT / f"{script.stem}.txt").write_text(text)
        print(text, flush=True)
        print(f"--- {script.name}: exit {proc.returncode}, {time.perf_counter() - t0:.1f} s\n", flush=True)
        failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
