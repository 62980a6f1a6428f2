"""The study cohort preset: the lupus UC-MSC trial of ../shared/PRODUCT.md, simulated.

Six subjects (P01-P06), visits W0, W1, W4, W12, W20, a B-cell and a Treg file per visit. Five
responders (all but P04) lose DN (DN1, DN2, DN3), switched memory and activated naive B cells and
gain transitional B cells over the visits, with SLEDAI, PGA and prednisone falling with the same
time course, so that the change in DN correlates positively with the change in SLEDAI; two of them
(P02, P05) also gain Helios+ Tregs. P04 does not respond: its populations and scores wander
around baseline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cytophen.simulate.files import simulate_file
from cytophen.simulate.model import DEFAULT_PARAMS, SimulationError, fit_params

__all__ = ["simulate_cohort", "Cohort", "SUBJECTS", "VISITS", "RESPONDERS", "HELIOS_GAINERS"]

SUBJECTS = ("P01", "P02", "P03", "P04", "P05", "P06")
#: (visit label, week)
VISITS = (("W0", 0), ("W1", 1), ("W4", 4), ("W12", 12), ("W20", 20))
RESPONDERS = ("P01", "P02", "P03", "P05", "P06")
HELIOS_GAINERS = ("P02", "P05")
PANEL_NAMES = ("bcell", "treg")

#: Lupus-like baseline (more DN2 and activated naive B cells than healthy donors).
_BASELINE = {
    **DEFAULT_PARAMS,
    "b_cells": 0.09,
    "dn1": 0.05,
    "dn2": 0.09,
    "dn3": 0.02,
    "activated_naive": 0.06,
    "switched_memory": 0.16,
    "transitional": 0.04,
    "helios_pos": 0.55,
}
#: Populations that fall (fraction of their baseline lost at full effect) or rise in responders.
_FALL = {"dn1": 0.55, "dn2": 0.65, "dn3": 0.5, "switched_memory": 0.4, "activated_naive": 0.6}
_RISE = {"transitional": 1.6}


@dataclass
class Cohort:
    """What :func:`simulate_cohort` wrote."""

    out_dir: Path
    files: list[Path]
    manifest: pd.DataFrame
    clinical: pd.DataFrame
    design: pd.DataFrame


def _effect(week: float) -> float:
    """Time course of the response: 0 at baseline, ~0.55 at W4, ~0.9 at W12."""
    return 1.0 - math.exp(-week / 5.0)


def _file_seed(seed: int, *parts: int) -> int:
    return int(np.random.SeedSequence([int(seed), *parts]).generate_state(1)[0])


def _subject_design(seed: int) -> tuple[dict, pd.DataFrame]:
    """Per subject × visit parameters and clinical scores."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 424242]))
    params: dict[tuple[str, str], dict[str, float]] = {}
    clinical = []
    for subj in SUBJECTS:
        base = {
            k: float(np.clip(v * math.exp(0.18 * rng.standard_normal()), 0.0, 0.9))
            for k, v in _BASELINE.items()
        }
        base["helios_pos"] = float(
            np.clip(_BASELINE["helios_pos"] + 0.05 * rng.standard_normal(), 0.3, 0.8)
        )
        responder = subj in RESPONDERS
        strength = float(rng.uniform(0.65, 1.0)) if responder else 0.0
        sledai0 = int(rng.choice([10, 12, 14, 16]))
        pga0 = round(float(rng.uniform(1.8, 2.5)), 1)
        pred0 = float(rng.choice([15.0, 20.0, 25.0, 30.0]))
        for visit, week in VISITS:
            e = _effect(week) * strength
            p = dict(base)
            for k, loss in _FALL.items():
                p[k] = base[k] * (1.0 - loss * e)
            for k, gain in _RISE.items():
                p[k] = base[k] * (1.0 + gain * e)
            if subj in HELIOS_GAINERS:
                p["helios_pos"] = min(0.92, base["helios_pos"] + 0.3 * _effect(week))
            if week > 0:  # visit-to-visit biological variation (and the non-responder's wander)
                wobble = 0.06 if responder else 0.10
                for k in (*_FALL, *_RISE, "helios_pos"):
                    p[k] = float(
                        np.clip(p[k] * math.exp(wobble * rng.standard_normal()), 0.0, 0.95)
                    )
            p["helios_pos"] = min(p["helios_pos"], 0.95)
            params[(subj, visit)] = fit_params(p)
            if responder:
                sledai = sledai0 - (sledai0 - 2) * (0.7 + 0.3 * strength) * _effect(week)
                sledai += rng.normal(0, 0.7) if week else 0.0
                pga = (
                    pga0
                    - (pga0 - 0.4) * _effect(week) * strength
                    + (rng.normal(0, 0.1) if week else 0)
                )
                pred = pred0 - (pred0 - 5.0) * _effect(week * 0.8)
            else:
                sledai = sledai0 + (rng.normal(0.5, 1.2) if week else 0.0)
                pga = pga0 + (rng.normal(0.05, 0.15) if week else 0.0)
                pred = pred0 - (pred0 - 15.0) * _effect(week * 0.5)
            sledai_i = int(max(0, 2 * round(sledai / 2)))  # SLEDAI items score 2, 4 or 8
            clinical.append(
                {
                    "subject": subj,
                    "visit": visit,
                    "week": week,
                    "SLEDAI": sledai_i,
                    "PGA": round(float(np.clip(pga, 0.0, 3.0)), 1),
                    "prednisone_mg": 2.5 * round(pred / 2.5),
                    "sledai0": sledai0,
                    "pga0": pga0,
                    "responder": "yes" if responder else "no",
                }
            )
    cl = pd.DataFrame(clinical)
    # SRI-4 at W12 and later: SLEDAI down by >= 4 and PGA not worse by >= 0.3
    ok = (cl["sledai0"] - cl["SLEDAI"] >= 4) & (cl["PGA"] - cl["pga0"] < 0.3)
    cl["sri4"] = np.where(cl["week"] >= 12, np.where(ok, "responder", "non_responder"), "")
    cl = cl.drop(columns=["sledai0", "pga0"])
    cl = cl[["subject", "visit", "week", "SLEDAI", "PGA", "prednisone_mg", "sri4", "responder"]]
    return params, cl


def _one(job: tuple) -> str:
    path, panel, seed, events, params, drift, kw = job
    return str(
        simulate_file(
            path, panel, seed=seed, events=events, subject_params=params, drift=drift, keywords=kw
        )
    )


def simulate_cohort(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    events: int = 30_000,
    drift: float = 1.0,
    panels: tuple[str, ...] = PANEL_NAMES,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Cohort:
    """Write the study cohort: 6 subjects × 5 visits × panels, manifest, clinical table.

    Parameters
    ----------
    out_dir
        Folder to write into (created): ``P01_W00_bcell.fcs`` (+ ``.truth.parquet``) ...,
        ``manifest.csv`` (sample, file, subject, visit, week, panel), ``clinical.csv``
        (subject, visit, week, SLEDAI, PGA, prednisone_mg, sri4, responder) and ``design.csv``
        (the population frequencies each file was simulated with).
    seed
        Cohort seed: the same seed writes the same files.
    events
        Events per file.
    drift
        File-to-file drift scale (see :func:`cytophen.simulate.simulate_sample`).
    panels
        Which panels to write (``'bcell'``, ``'treg'``).
    jobs
        Processes to write files in parallel.
    progress
        Called with each file name as it is written.

    Returns
    -------
    Cohort
        Paths and the three tables.

    Examples
    --------
    >>> c = simulate_cohort("study", seed=0, events=20_000)   # doctest: +SKIP
    >>> c.manifest.head()                                     # doctest: +SKIP
    """
    for p in panels:
        if p not in PANEL_NAMES:
            raise SimulationError(f"unknown panel {p!r}; expected one of: {', '.join(PANEL_NAMES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params, clinical = _subject_design(seed)
    jobs_l, man, design = [], [], []
    for si, subj in enumerate(SUBJECTS):
        for vi, (visit, week) in enumerate(VISITS):
            for panel in panels:
                stem = f"{subj}_W{week:02d}_{panel}"
                fseed = _file_seed(seed, si, vi, PANEL_NAMES.index(panel))
                path = out / f"{stem}.fcs"
                kw = {"$SRC": subj, "VISIT": visit, "SIM_COHORT": "study"}
                jobs_l.append((path, panel, fseed, int(events), params[(subj, visit)], drift, kw))
                man.append(
                    {
                        "sample": stem,
                        "file": path.name,
                        "subject": subj,
                        "visit": visit,
                        "week": week,
                        "panel": panel,
                    }
                )
                design.append(
                    {
                        "sample": stem,
                        "subject": subj,
                        "visit": visit,
                        "week": week,
                        "panel": panel,
                        "seed": fseed,
                        "responder": "yes" if subj in RESPONDERS else "no",
                        **params[(subj, visit)],
                    }
                )
    files: list[Path] = []
    if jobs > 1 and len(jobs_l) > 1:
        from cytophen._mp import worker_context  # fork server; never re-runs the caller's script

        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=worker_context()) as ex:
            for f in ex.map(_one, jobs_l):
                files.append(Path(f))
                if progress:
                    progress(Path(f).name)
    else:
        for j in jobs_l:
            files.append(Path(_one(j)))
            if progress:
                progress(files[-1].name)
    manifest = pd.DataFrame(man)
    design_df = pd.DataFrame(design)
    manifest.to_csv(out / "manifest.csv", index=False)
    clinical.to_csv(out / "clinical.csv", index=False)
    design_df.to_csv(out / "design.csv", index=False)
    return Cohort(out, files, manifest, clinical, design_df)
