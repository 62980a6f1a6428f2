"""Helpers for the plot and report tests: a logicle axis from a reference implementation, simulated
B-cell samples with known labels, a template built in Python, and a results folder laid out as
``cytophen gate --out DIR`` writes it (populations.csv/.parquet, gates.json, errors.csv, run.json)
plus the per-sample plots the batch workers write with ``save_sample_plots``.

The logicle transform here wraps ``flowutils.transforms.logicle`` (FlowKit's C implementation of the
GatingML 2.0 logicle), so tick positions are checked against a reference nobody here wrote.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


class RefLogicle:
    """GatingML 2.0 logicle via flowutils (reference), with cytophen's Transform interface."""

    kind = "logicle"

    def __init__(self, T=262144.0, W=0.5, M=4.5, A=0.0):
        self.T, self.W, self.M, self.A = float(T), float(W), float(M), float(A)

    def apply(self, x):
        import flowutils.transforms as ft

        x = np.asarray(x, dtype=np.float64)
        y = ft.logicle(x.reshape(-1).copy(), None, t=self.T, m=self.M, w=self.W, a=self.A)
        return np.asarray(y, dtype=np.float64).reshape(x.shape)

    def inverse(self, y):
        import flowutils.transforms as ft

        y = np.asarray(y, dtype=np.float64)
        x = ft.logicle_inverse(y.reshape(-1).copy(), None, t=self.T, m=self.M, w=self.W, a=self.A)
        return np.asarray(x, dtype=np.float64).reshape(y.shape)

    def to_dict(self):
        return {"kind": "logicle", "T": self.T, "W": self.W, "M": self.M, "A": self.A}


class RefFlog:
    """GatingML 2.0 flog: ``1 + log10(x / T) / M`` (hand-written from the specification)."""

    kind = "flog"

    def __init__(self, T=10000.0, M=5.0):
        self.T, self.M = float(T), float(M)

    def apply(self, x):
        with np.errstate(all="ignore"):
            return 1.0 + np.log10(np.asarray(x, dtype=np.float64) / self.T) / self.M

    def inverse(self, y):
        return self.T * 10.0 ** ((np.asarray(y, dtype=np.float64) - 1.0) * self.M)

    def to_dict(self):
        return {"kind": "flog", "T": self.T, "M": self.M}


CHANNELS = ["FSC-A", "SSC-A", "B1-A", "B2-A", "B3-A"]
MARKERS = ["", "", "CD19", "IgD", "CD27"]


def simulate(seed: int = 0, n: int = 6000, *, shift: float = 0.0):
    """Lymphocytes + large cells on FSC/SSC; CD19+ B cells in four IgD/CD27 groups.

    Returns the Sample and the labels (``lymph``, ``b``) it was made with.
    """
    from cytophen.io.sample import Sample

    r = np.random.default_rng(seed)
    lymph = r.random(n) < 0.5
    fsc = np.where(lymph, r.uniform(40_000, 80_000, n), r.uniform(130_000, 220_000, n))
    ssc = np.where(lymph, r.uniform(5_000, 30_000, n), r.uniform(60_000, 150_000, n))
    b = r.random(n) < 0.3
    cd19 = np.where(b, r.uniform(3_000, 20_000, n) * (1 + shift), r.uniform(-300, 300, n))
    igd = np.where(r.random(n) < 0.6, r.uniform(2_000, 20_000, n), r.uniform(-300, 300, n))
    cd27 = np.where(r.random(n) < 0.35, r.uniform(1_500, 8_000, n), r.uniform(-300, 300, n))
    ev = np.column_stack([fsc, ssc, cd19, igd, cd27]).astype(np.float32)
    return Sample(ev, list(CHANNELS), list(MARKERS)), {"lymph": lymph, "b": b}


def make_template(logicle=None):
    """lymphocytes (polygon) > bcells (CD19 >= 1000, 1-D, open top) > IgD/CD27 quadrants, an
    ellipse, a data-driven CD27 cut, and a boolean ``not_naive``."""
    from cytophen.gates import (
        BooleanGate,
        DataDrivenGate,
        Dim,
        EllipsoidGate,
        PolygonGate,
        QuadrantGate,
        RectangleGate,
    )
    from cytophen.template import Population, Template

    L = logicle or RefLogicle()
    lym = PolygonGate(
        [Dim("FSC-A"), Dim("SSC-A")],
        [[30_000, 0], [95_000, 0], [95_000, 40_000], [30_000, 40_000], [20_000, 20_000]],
    )
    cd19 = RectangleGate([Dim("CD19", L)], [float(L.apply(np.array([1000.0]))[0])], [None])
    cut = float(L.apply(np.array([1000.0]))[0])
    quad = QuadrantGate.from_cuts(
        [Dim("IgD", L), Dim("CD27", L)], cut, cut,
        {"+-": "naive", "++": "unswitched", "-+": "switched", "--": "dn"},
    )  # fmt: skip
    ell = EllipsoidGate(
        [Dim("IgD", L), Dim("CD27", L)], [0.7, 0.6], [[0.004, 0.001], [0.001, 0.003]], 4.0
    )
    dd = DataDrivenGate([Dim("CD27", L)], "mindensity", {}, side="+")
    pops = [Population("lymphocytes", None, lym), Population("bcells", "lymphocytes", cd19)]
    for q in ("naive", "unswitched", "switched", "dn"):
        pops.append(Population(q, "bcells", quad, quadrant=q))
    # a rare population (CD27 very high, IgD low: about 20 of 900 B cells) to be flagged as low count
    rare = RectangleGate(
        [Dim("IgD", L), Dim("CD27", L)], [None, float(L.apply(np.array([7000.0]))[0])], [cut, None]
    )
    pops += [
        Population("plasmablasts", "bcells", rare),
        Population("ellipse", "bcells", ell),
        Population("cd27pos", "bcells", dd),
        Population("not_naive", "bcells", BooleanGate("not", [("naive", False)])),
    ]
    return Template("bcell-test", pops, version="2")


FALLBACK_REASON = "no valley between the peaks; used the template's default cut"


def gate_sample(
    seed: int = 0,
    *,
    fell_back: bool = False,
    shift: float = 0.0,
    n: int = 6000,
    cut: float | None = None,
):
    """Gate one simulated sample; the data-driven CD27 gate is given as a pre-fitted outcome."""
    from cytophen.engine import FitOutcome, gate
    from cytophen.gates import RectangleGate

    t = make_template()
    dd = t.population("cd27pos").gate
    L = dd.dims[0].transform
    c = float(L.apply(np.array([1000.0]))[0]) if cut is None else cut
    outcome = FitOutcome(
        RectangleGate(dd.dims, [c], [None]),
        fell_back=fell_back,
        reason=FALLBACK_REASON if fell_back else "",
    )
    sample, labels = simulate(seed, n, shift=shift)
    res = gate(sample, t, sample_id=f"S{seed:02d}", fitted={"cd27pos": outcome})
    return res, labels


def make_results(
    out: Path,
    n_samples: int = 4,
    *,
    plots: bool = True,
    failed: int = 1,
    fell_back=(1,),
    n_events: int = 6000,
) -> Path:
    """A results folder as ``cytophen gate --out`` writes it (gates.json, errors.csv and run.json in
    the batch's formats), with the per-sample plots the workers write."""
    from cytophen.report.plots import save_sample_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables, gates = [], {}
    res = None
    for i in range(n_samples):
        res, _ = gate_sample(i, fell_back=i in fell_back, shift=0.1 * i, n=n_events)
        tables.append(res.table)
        gates[res.sample_id] = json.loads(json.dumps(res.gates, default=_jsonable))
        if plots:
            save_sample_plots(res, out / "plots", folder=f"safe_{res.sample_id}")
    pops = pd.concat(tables, ignore_index=True)
    pops.to_csv(out / "populations.csv", index=False)
    pops.to_parquet(out / "populations.parquet", index=False)
    (out / "gates.json").write_text(
        json.dumps(
            {"template": res.template_name, "template_hash": res.template_hash, "samples": gates}
        )
    )
    errors = pd.DataFrame(
        [
            {"sample": f"BAD{k}", "file": f"/data/bad{k}.fcs", "stage": "read",
             "message": f"/data/bad{k}.fcs: $TOT says 1000 events but DATA holds 998 [$TOT]"}
            for k in range(failed)
        ],
        columns=["sample", "file", "stage", "message"],
    )  # fmt: skip
    errors.to_csv(out / "errors.csv", index=False)
    run = {
        "cytophen": "0.1.0",
        "started": "2026-11-24T15:00:00+00:00",
        "finished": "2026-11-24T15:01:00+00:00",
        "template": {"name": res.template_name, "version": res.template_version, "hash": res.template_hash,
                     "source": "gating_templates/bcell-test.yaml"},
        "counts": {"total": n_samples + failed, "ok": n_samples, "failed": failed},
    }  # fmt: skip
    (out / "run.json").write_text(json.dumps(run))
    return out


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def big_results(root: Path, n: int = 500) -> Path:
    """A 500-sample results folder: tables of the real shape, 6 small PNGs per sample (hard links)."""
    from cytophen.report.plots import save_sample_plots

    res, _ = gate_sample(0, n=3000)
    proto = save_sample_plots(res, root / "proto")
    pngs = [p for p in proto if p.suffix == ".png"]
    meta = json.loads(proto[-1].read_text())
    rng = np.random.default_rng(5)
    tables = []
    for i in range(n):
        t = res.table.copy()
        t["sample"] = f"P{i // 10:02d}_V{i % 10:02d}"
        t["percent_of_parent"] = t["percent_of_parent"] * rng.uniform(0.8, 1.2, len(t))
        tables.append(t)
        d = root / "results" / "plots" / f"s{i:03d}"
        d.mkdir(parents=True)
        for p in pngs:
            try:
                os.link(p, d / p.name)
            except OSError:
                shutil.copy(p, d / p.name)
        (d / "plots.json").write_text(json.dumps(dict(meta, sample=t["sample"].iloc[0])))
    pd.concat(tables, ignore_index=True).to_parquet(
        root / "results" / "populations.parquet", index=False
    )
    return root / "results"
