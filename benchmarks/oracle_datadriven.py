"""How close do the shipped templates come to what the markers allow?

For the populations that miss an issue-5 bar on some files, a supervised per-file classifier
replaces the template's own classification inside the gated parent, and the bars are scored
again. The classifier is told the simulator's truth: on each file it fits one Gaussian mixture
per true class (1-3 full-covariance components, on every fluorescence marker of the panel, in
the template's logicle scale) to that file's own singlets of that class, then assigns each
singlet to the class of highest prior x density. It is fitted and scored on the same events
and knows which event is which, so it is optimistic in that respect; it is not a strict bound
(the simulator's per-cell deviations are t-shaped, not Gaussian, and a class of a dozen events
is described loosely), but a file it misses too is one where the markers do not separate the
populations well enough at that event count, and a file it places well is headroom for a gate.

What stays as the template gated it: everything upstream of the parent (scatter, singlets,
viability, lineage), and the doublets (a B cell stuck to a debris particle looks like the B
cell; the simulator's truth puts doublets in no subset). Bars as in ``bench_datadriven.py``.

Usage: ``.venv/bin/python benchmarks/oracle_datadriven.py DIR [DIR ...] [--jobs 2]`` where each
DIR is a cohort written by ``bench_datadriven.py --accuracy DIR`` (FCS files + truth). Prints
per population the files missing each bar, for the template and for the supervised classifier,
and writes ``oracle.csv`` (one row per file and population) into each DIR.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cytophen  # noqa: E402
from cytophen.engine import GateContext  # noqa: E402
from cytophen.simulate.files import read_truth  # noqa: E402

MAJOR_F1, RARE_F1, MAX_PP = 0.95, 0.85, 2.0


@dataclass(frozen=True)
class Step:
    """One population scored with the supervised classifier in place of the template's gate.

    ``universe`` is the template's gated population whose singlets are reclassified;
    ``classes`` maps a class name to a truth expression (names of truth columns, ``~`` for
    not, ``&`` for and); ``population`` and ``parent`` are the classes that make up the
    population and its percent-of denominator (``None``: the whole universe).
    """

    panel: str
    population: str
    universe: str
    classes: dict[str, str]
    population_classes: tuple[str, ...]
    parent_classes: tuple[str, ...] | None
    f1_bar: float


_B_SUBSETS = {
    "naive_resting": "naive & ~activated_naive & ~transitional",
    "transitional": "transitional",
    "activated_naive": "activated_naive",
    "unswitched_memory": "unswitched_memory",
    "switched_memory": "switched_memory",
    "dn1": "dn1",
    "dn2": "dn2",
    "dn3": "dn & ~dn1 & ~dn2",
    "plasmablasts": "plasmablasts",
    "other": "~b_cells",
}
_DN = ("dn1", "dn2", "dn3")

STEPS = (
    Step("bcell", "dn", "non_plasmablast_b", _B_SUBSETS, _DN, None, MAJOR_F1),
    Step("bcell", "dn2", "non_plasmablast_b", _B_SUBSETS, ("dn2",), _DN, RARE_F1),
    Step(
        "bcell",
        "unswitched_memory",
        "non_plasmablast_b",
        _B_SUBSETS,
        ("unswitched_memory",),
        None,
        MAJOR_F1,
    ),
    Step("bcell", "transitional", "naive", _B_SUBSETS, ("transitional",), None, RARE_F1),
    Step("bcell", "activated_naive", "naive", _B_SUBSETS, ("activated_naive",), None, RARE_F1),
    Step(
        "bcell",
        "plasmablasts",
        "non_t",
        {"plasmablasts": "plasmablasts", "b": "b_cells & ~plasmablasts", "other": "~b_cells"},
        ("plasmablasts",),
        ("plasmablasts", "b"),
        RARE_F1,
    ),
    Step(
        "treg",
        "treg",
        "cd4",
        {"treg": "treg", "cd4": "cd4 & ~treg", "other": "~cd4"},
        ("treg",),
        None,
        RARE_F1,
    ),
    Step(
        "treg",
        "helios_pos_treg",
        "treg",
        {"pos": "helios_pos_treg", "neg": "helios_neg_treg", "other": "~treg"},
        ("pos",),
        None,
        RARE_F1,
    ),
)


def _truth_mask(expr: str, truth: pd.DataFrame) -> np.ndarray:
    out = np.ones(len(truth), bool)
    for term in expr.split("&"):
        term = term.strip()
        neg = term.startswith("~")
        col = truth[term.lstrip("~")].to_numpy(bool)
        out &= ~col if neg else col
    return out


def _classify(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Supervised mixture discriminant: per class a 1-3 component Gaussian mixture, fitted on
    that class's own events; each event goes to the class of highest log prior + density."""
    from sklearn.mixture import GaussianMixture

    names, counts = np.unique(labels, return_counts=True)
    scores, kept = [], []
    for name, n in zip(names, counts):
        if n < x.shape[1] + 2:  # too few to fit a full covariance: its events cannot be won back
            continue
        k = int(min(3, 1 + n // 300))
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=seed)
        gm.fit(x[labels == name])
        scores.append(gm.score_samples(x) + np.log(n / labels.size))
        kept.append(name)
    return np.asarray(kept, object)[np.argmax(np.column_stack(scores), axis=1)]


def _score(pop: np.ndarray, parent: np.ndarray, t_pop: np.ndarray, t_parent: np.ndarray):
    both = int((pop & t_pop).sum())
    f1 = 2 * both / max(1, int(pop.sum()) + int(t_pop.sum()))
    pp = 100 * (pop.sum() / max(1, parent.sum()) - t_pop.sum() / max(1, t_parent.sum()))
    return f1, pp


def score_file(path: str, template_dir: str) -> list[dict]:
    panel = "bcell" if path.endswith("_bcell.fcs") else "treg"
    template = cytophen.load_template(Path(template_dir) / f"{panel}.yaml")
    sample = cytophen.read_fcs(path)
    result = cytophen.gate(sample, template)
    truth = read_truth(path)
    # the transforms this file got (the template's are 'auto', resolved per file)
    ctx = GateContext(sample, result.template)
    # the template's own fluorescence dimension, re-pointed at each marker (same transform)
    dim0 = next(
        d
        for q in result.template.populations
        if q.gate is not None
        for d in getattr(q.gate, "dims", ())
        if getattr(d, "channel", "FSC-A") not in ("FSC-A", "FSC-H", "SSC-A")
    )
    markers = [m for m in sample.markers if m and m != "Viability"]
    x = np.column_stack([ctx.value(replace(dim0, channel=m)) for m in markers])
    singlet = truth["singlets"].to_numpy(bool)
    rows = []
    for st in (s for s in STEPS if s.panel == panel):
        uni = result.membership(st.universe)
        fit = uni & singlet & np.isfinite(x).all(axis=1)
        labels = np.full(len(truth), "", object)
        for name, expr in st.classes.items():
            labels[_truth_mask(expr, truth) & (labels == "")] = name
        pred = np.full(len(truth), "", object)
        pred[fit] = _classify(x[fit], labels[fit])
        gated_pop = result.membership(st.population)
        pop_parent = template.population(st.population).parent
        while pop_parent not in truth.columns:  # a gating step the truth has no column for
            pop_parent = template.population(pop_parent).parent
        gated_parent = result.membership(pop_parent)
        t_pop = truth[st.population].to_numpy(bool)
        t_parent = truth[pop_parent].to_numpy(bool)
        o_pop = np.isin(pred, st.population_classes) | (gated_pop & ~singlet)
        o_parent = (
            np.isin(pred, st.parent_classes) | (gated_parent & ~singlet)
            if st.parent_classes is not None
            else gated_parent
        )
        f1_t, pp_t = _score(gated_pop, gated_parent, t_pop, t_parent)
        f1_o, pp_o = _score(o_pop, o_parent, t_pop, t_parent)
        rows.append(
            dict(
                panel=panel,
                file=Path(path).name,
                population=st.population,
                parent=pop_parent,
                f1_bar=st.f1_bar,
                n_true=int(t_pop.sum()),
                f1_template=f1_t,
                pp_template=pp_t,
                f1_oracle=f1_o,
                pp_oracle=pp_o,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--templates", default=str(ROOT / "gating_templates"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    frames = []
    with ProcessPoolExecutor(args.jobs) as ex:
        for d in args.dirs:
            files = sorted(str(p) for p in d.glob("*.fcs"))
            rows = [
                r for rs in ex.map(score_file, files, [args.templates] * len(files)) for r in rs
            ]
            df = pd.DataFrame(rows)
            tmp = d / "oracle.csv.tmp"
            df.to_csv(tmp, index=False)
            tmp.replace(d / "oracle.csv")
            frames.append(df.assign(cohort=d.name))
    df = pd.concat(frames)
    out = []
    for (panel, pop), g in df.groupby(["panel", "population"], sort=False):
        bar = g.f1_bar.iloc[0]
        out.append(
            dict(
                panel=panel,
                population=pop,
                files=len(g),
                f1_bar=bar,
                f1_miss_template=int((g.f1_template < bar).sum()),
                f1_miss_oracle=int((g.f1_oracle < bar).sum()),
                pp_miss_template=int((g.pp_template.abs() > MAX_PP).sum()),
                pp_miss_oracle=int((g.pp_oracle.abs() > MAX_PP).sum()),
                f1_mean_template=round(g.f1_template.mean(), 3),
                f1_mean_oracle=round(g.f1_oracle.mean(), 3),
                pp_sd_template=round(g.pp_template.std(), 2),
                pp_sd_oracle=round(g.pp_oracle.std(), 2),
            )
        )
    print(pd.DataFrame(out).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
