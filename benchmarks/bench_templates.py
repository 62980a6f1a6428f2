"""Reading a gating strategy: cytophen's YAML loader (with full validation) and its GatingML 2.0
reader vs FlowKit's ``parse_gating_xml``, on the same strategy, side by side.

The strategy is built from the documented complete example of docs/templates.md (polygon, range,
quadrants; logicle and linear transforms), repeated under ``--copies`` parents so that it has a
realistic-to-large number of gates. It is written once as cytophen YAML and once as GatingML 2.0
(by cytophen's exporter); each reader is timed on its file, median of ``--repeats`` runs.

Usage: ``.venv/bin/python benchmarks/bench_templates.py [--copies N] [--repeats R]``
(default 50 copies = 350 populations, median of 7). Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

from _timing import timed  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

PANEL = """\
format: 1
name: bench
version: "1"
compensation: FCS
panel:
  FSC-A: {transform: {kind: linear, T: 262144, A: 0}}
  SSC-A: {transform: {kind: linear, T: 262144, A: 0}}
  CD19: {transform: &lgc {kind: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}}
  IgD: {transform: *lgc}
  CD27: {transform: *lgc}
populations:
"""

BLOCK = """\
  lymphocytes_{i}:
    gate:
      kind: polygon
      dims: [FSC-A, SSC-A]
      vertices: [[0.1, 0.0], [0.6, 0.0], [0.6, 0.3], [0.1, 0.3]]
  b_cells_{i}:
    parent: lymphocytes_{i}
    gate: {{kind: range, dims: [CD19], min: 0.45}}
    percent_of: [lymphocytes_{i}]
  igd_cd27_{i}:
    parent: b_cells_{i}
    gate:
      kind: quadrant
      dims: [IgD, CD27]
      cuts: [0.5, 0.5]
      quadrants: {{naive_{i}: IgD+ CD27-, unswitched_{i}: IgD+ CD27+, switched_{i}: IgD- CD27+, dn_{i}: IgD- CD27-}}
    percent_of: [b_cells_{i}]
  memory_{i}:
    parent: b_cells_{i}
    gate: {{or: [unswitched_{i}, switched_{i}]}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    import flowkit

    from cytophen.interop.gatingml import load_gatingml
    from cytophen.interop.yaml_template import load_yaml_template

    tmp = Path(tempfile.mkdtemp(prefix="bench_templates_"))
    yml = tmp / "bench.yaml"
    yml.write_text(PANEL + "".join(BLOCK.format(i=i) for i in range(args.copies)))
    t = load_yaml_template(yml)
    xml = tmp / "bench.xml"
    t.to_gatingml(xml)
    n = len(t.populations)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fk = flowkit.parse_gating_xml(str(xml))
        n_fk = len(fk.get_gate_ids())
        rows = [
            ("cytophen YAML load + validate", timed(lambda: load_yaml_template(yml), args.repeats)),
            ("cytophen GatingML load", timed(lambda: load_gatingml(xml), args.repeats)),
            (
                "FlowKit parse_gating_xml",
                timed(lambda: flowkit.parse_gating_xml(str(xml)), args.repeats),
            ),
        ]
    peer = rows[-1][1]
    print(f"strategy: {n} populations (FlowKit sees {n_fk} gates), median of {args.repeats}")
    print(f"{'reader':34s} {'ms':>9s} {'vs FlowKit':>11s}")
    for name, sec in rows:
        print(f"{name:34s} {1000 * sec:9.1f} {peer / sec:10.2f}x")
    print("(x > 1: faster than FlowKit on the same strategy; shared, busy machine: noisy figures)")


if __name__ == "__main__":
    main()
