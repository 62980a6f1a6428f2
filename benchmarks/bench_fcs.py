"""FCS read speed: cytophen.read_fcs vs a plain numpy read of the same DATA bytes, fcsparser,
flowio and flowkit.Sample, side by side in one run.

Writes a 2,000,000 events x 12 float32 channel FCS 3.1 file (~96 MB, little-endian so fcsparser
works under numpy 2) to a temporary folder, then times each reader (median of 5 repeats, after one
warm-up read so every reader sees the file in the page cache) and prints a table with ratios to
plain numpy. Issue 2's target: cytophen within 2x of plain numpy.

Usage: ``.venv/bin/python benchmarks/bench_fcs.py [--events N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import cytophen
from cytophen.io.fcs import read_fcs_datasets


def _time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (and the value, for the correctness check)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--channels", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, p = args.events, args.channels
    rng = np.random.default_rng(0)
    events = rng.normal(1000, 300, (n, p)).astype(np.float32)
    names = [f"FL{i + 1}-A" for i in range(p)]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.fcs"
        cytophen.write_fcs(path, events, names)
        meta = read_fcs_datasets(path)[0]
        start = int(meta.get("$BEGINDATA"))
        size_mb = path.stat().st_size / 1e6

        readers = {
            "numpy.fromfile (DATA bytes)": lambda: np.fromfile(
                path, dtype="<f4", count=n * p, offset=start
            ).reshape(n, p),
            "cytophen.read_fcs": lambda: cytophen.read_fcs(path).events,
        }
        # the same events as a big-endian file (most BD instruments write 4,3,2,1)
        blob = bytearray(path.read_bytes())
        delim = blob[58:59]
        old_order = b"$BYTEORD" + delim + b"1,2,3,4"
        i = blob.index(old_order)
        blob[i : i + len(old_order)] = b"$BYTEORD" + delim + b"4,3,2,1"
        swapped = np.frombuffer(bytes(blob[start : start + n * p * 4]), dtype="<f4").astype(">f4")
        blob[start : start + n * p * 4] = swapped.tobytes()
        path_be = Path(tmp) / "bench_be.fcs"
        path_be.write_bytes(bytes(blob))
        del blob, swapped
        readers["numpy.fromfile '>f4' + native"] = lambda: (
            np.fromfile(path_be, dtype=">f4", count=n * p, offset=start)
            .reshape(n, p)
            .astype(np.float32)
        )
        readers["cytophen.read_fcs big-endian"] = lambda: cytophen.read_fcs(path_be).events
        try:
            import fcsparser

            readers["fcsparser.parse"] = lambda: fcsparser.parse(str(path), reformat_meta=False)[
                1
            ].to_numpy()
        except ImportError:
            pass
        try:
            import flowio

            readers["flowio FlowData.as_array"] = lambda: flowio.FlowData(str(path)).as_array(
                preprocess=False
            )
        except ImportError:
            pass
        try:
            import flowkit

            readers["flowkit.Sample"] = lambda: flowkit.Sample(str(path)).get_events(source="raw")
        except ImportError:
            pass

        results = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, fn in readers.items():
                try:
                    t, value = _time(fn, args.repeats)
                except Exception as exc:  # a peer failing is reported, not fatal
                    results[name] = (None, f"failed: {type(exc).__name__}: {exc}"[:80])
                    continue
                same = np.array_equal(
                    np.asarray(value, dtype=np.float64), events.astype(np.float64)
                )
                results[name] = (t, "values equal" if same else "VALUES DIFFER")

    base = results["numpy.fromfile (DATA bytes)"][0]
    mine = results["cytophen.read_fcs"][0]
    print(
        f"FCS read: {n:,} events x {p} float32 channels, {size_mb:.0f} MB file, median of {args.repeats}"
    )
    print("(shared, busy machine: figures are noisy; re-run on a quiet machine)")
    print(f"{'reader':<30} {'seconds':>9} {'x numpy':>8} {'x cytophen':>11}  check")
    for name, (t, note) in results.items():
        if t is None:
            print(f"{name:<30} {'-':>9} {'-':>8} {'-':>11}  {note}")
            continue
        print(f"{name:<30} {t:>9.3f} {t / base:>8.2f} {t / mine:>11.2f}  {note}")
    print(
        f"target: cytophen within 2x of numpy -> {'met' if mine <= 2 * base else 'NOT met'} ({mine / base:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
