"""Test data for the batch tests: small FCS files with known labels and a template built in Python.

Each simulated file has ``n_b`` B cells (CD19 high, CD3 low), ``n_t`` T cells (CD3 high) and ``n_debris``
debris events (low FSC), all well separated from the gate edges, so the true count of every population
is known from how the file was made (the labels), independently of cytophen.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np

from cytophen.gates import RectangleGate

CHANNELS = ["FSC-A", "SSC-A", "FL1-A", "FL2-A", "FL3-A", "Time"]
MARKERS = ["", "", "CD19 FITC", "CD3 PE", "CD45 PerCP", ""]


def write_test_fcs(path, events, channels, markers=None, keywords=None) -> None:
    """Write an FCS file with cytophen's writer."""
    import cytophen

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cytophen.write_fcs(
        path,
        np.asarray(events, dtype=np.float32),
        list(channels),
        markers=markers,
        keywords=keywords,
    )


def simulate_events(seed: int, n_b: int, n_t: int, n_debris: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = n_b + n_t + n_debris
    ev = np.empty((n, len(CHANNELS)), dtype=np.float32)
    # lymphocytes: FSC 40k-60k, SSC 10k-20k; debris: FSC 1k-5k
    cells = slice(0, n_b + n_t)
    ev[cells, 0] = rng.uniform(40_000, 60_000, n_b + n_t)
    ev[cells, 1] = rng.uniform(10_000, 20_000, n_b + n_t)
    ev[n_b + n_t :, 0] = rng.uniform(1_000, 5_000, n_debris)
    ev[n_b + n_t :, 1] = rng.uniform(1_000, 5_000, n_debris)
    # CD19: B high (4000-8000), others low (10-300); CD3: T high, others low
    ev[:, 2] = rng.uniform(10, 300, n)
    ev[:n_b, 2] = rng.uniform(4_000, 8_000, n_b)
    ev[:, 3] = rng.uniform(10, 300, n)
    ev[n_b : n_b + n_t, 3] = rng.uniform(4_000, 8_000, n_t)
    ev[:, 4] = rng.uniform(2_000, 9_000, n)  # CD45 on everything
    ev[:, 5] = np.arange(n, dtype=np.float32)
    perm = rng.permutation(n)
    return ev[perm]


def make_file(
    path: Path,
    seed: int,
    n_b: int = 300,
    n_t: int = 500,
    n_debris: int = 200,
    *,
    drop=None,
    keywords=None,
):
    ev = simulate_events(seed, n_b, n_t, n_debris)
    channels, markers = list(CHANNELS), list(MARKERS)
    if drop is not None:  # a file lacking a marker's channel
        j = channels.index(drop)
        ev = np.delete(ev, j, axis=1)
        del channels[j], markers[j]
    write_test_fcs(path, ev, channels, markers, keywords)
    return {"cells": n_b + n_t, "b_cells": n_b, "t_cells": n_t, "non_b": n_t}


def make_template(name: str = "batch-test"):
    """cells (polygon FSC/SSC) → b_cells (CD19 rectangle), t_cells (CD3 range), non_b (NOT b_cells)."""
    from cytophen.gates import BooleanGate, PolygonGate, RectangleGate
    from cytophen.template import Marker, Population, Report, Template

    cells = PolygonGate(
        ("FSC-A", "SSC-A"), [[30_000, 5_000], [70_000, 5_000], [70_000, 30_000], [30_000, 30_000]]
    )
    pops = [
        Population("cells", None, cells),
        Population(
            "b_cells",
            "cells",
            RectangleGate(("CD19", "CD3"), (1_000, None), (None, 1_000)),
            report=Report(statistics=(("median", "CD19"),)),
        ),
        Population("t_cells", "cells", RectangleGate(("CD3",), (1_000,), (None,))),
        Population(
            "non_b",
            "cells",
            BooleanGate("not", [("b_cells", False)]),
            report=Report(percent_of=("cells",)),
        ),
    ]
    markers = {m: Marker(m) for m in ("CD19", "CD3", "CD45")}
    return Template(name, pops, version="1", markers=markers, compensation="uncompensated")


TEMPLATE_YAML = """\
format: 1
name: batch-test
version: '1'
compensation: none
panel:
  FSC-A: {}
  SSC-A: {}
  CD19: {}
  CD3: {}
  CD45: {}
populations:
  cells:
    gate:
      kind: polygon
      dims: [FSC-A, SSC-A]
      vertices: [[30000, 5000], [70000, 5000], [70000, 30000], [30000, 30000]]
  b_cells:
    parent: cells
    gate: {kind: rectangle, dims: [CD19, CD3], min: [1000, null], max: [null, 1000]}
    statistics:
      median: [CD19]
  t_cells:
    parent: cells
    gate: {kind: range, dims: [CD3], min: 1000}
  non_b:
    parent: cells
    gate: {not: b_cells}
    percent_of: [cells]
"""


def write_template(folder: Path) -> Path:
    p = Path(folder) / "batch_test.yaml"
    p.write_text(TEMPLATE_YAML)
    return p


def make_batch(folder: Path, n_good: int = 5, *, bad: bool = True, n_events_scale: int = 1) -> dict:
    """Good files g0..g{n-1} with different B/T counts (+ truncated, non-FCS, missing-CD19 files).

    Returns ``{stem: truth}`` for the good files (truth: population → count).
    """
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n_good):
        n_b, n_t, n_d = (
            (200 + 37 * i) * n_events_scale,
            (400 + 11 * i) * n_events_scale,
            150 * n_events_scale,
        )
        truth[f"g{i}"] = make_file(folder / f"g{i}.fcs", 100 + i, n_b, n_t, n_d)
    if bad:
        make_file(folder / "no_cd19.fcs", 7, drop="FL1-A")
        data = (folder / "g0.fcs").read_bytes()
        (folder / "truncated.fcs").write_bytes(data[: len(data) // 2])
        (folder / "notes.fcs").write_text("this is a lab note, not an FCS file\n")
    return truth


class CrashGate(RectangleGate):
    """A rectangle that kills its worker process (``os._exit``, as a segfault or the OOM killer
    would) on a file of exactly ``crash_n`` events; harmless in the main process."""

    crash_n = -1

    def contains(self, values):
        if len(values) == self.crash_n and multiprocessing.parent_process() is not None:
            os._exit(70)
        return super().contains(values)

    def contains_columns(self, columns):  # the engine's fast path (one array per dimension)
        if len(columns[0]) == self.crash_n and multiprocessing.parent_process() is not None:
            os._exit(70)
        return super().contains_columns(columns)


def crash_template(n_events: int):
    """The test template plus an all-events root gate that crashes workers on ``n_events`` files."""
    from cytophen.template import Population

    t = make_template()
    g = CrashGate(("FSC-A",), (None,), (None,))
    g.crash_n = n_events
    t.populations.append(Population("all_events", None, g))
    t.validate()
    return t


def runner_inputs(folder: Path):
    """The tasks and options a batch hands its runner for every sample under ``folder``."""
    from cytophen.pipeline.inputs import discover
    from cytophen.pipeline.records import SampleTask, WorkerOptions

    samples, _ = discover([folder])
    tasks = [SampleTask(s.sample, str(s.path), s.safe_id) for s in samples]
    return tasks, WorkerOptions()
