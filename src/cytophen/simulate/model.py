"""A flow-cytometry event generator with per-event ground truth.

How one file is made (:func:`simulate_sample`):

1. Event classes are drawn hierarchically (multinomial at every level) from the requested
   frequencies (:data:`DEFAULT_PARAMS`): debris, doublets, granulocytes, monocytes and single
   lymphocytes; lymphocytes dead or live; live lymphocytes T, B or NK cells; and so on down to the
   leaf cell types (naive B, DN2 B, Helios+ Treg ...).
2. Each cell's true fluorescence is drawn in logicle space (T=262144, W=0.5, M=4.5, A=0), from a
   heavy-tailed (Student t, 6 d.f.) distribution around its type's position, with a shared
   per-cell brightness factor and a few within-type correlations (CD24/CD38, CD27/CD38), then
   mapped back to linear. Scatter is log-normal per cell class; doublets sum two cells' signals,
   with FSC-H well below FSC-A.
3. File-to-file drift: each file gets its own detector gains, scatter gains and per-population
   position offsets, so a fixed gate drawn on one file does not fit every file.
4. Detection: true fluorescence is mixed through the panel's spillover matrix, photon (Poisson-like)
   and electronic noise are added (so compensated data spread below zero) and every channel
   saturates at 262143. Events get acquisition times (``$TIMESTEP`` 0.01 s).

The truth table has one boolean column per population of the shipped templates; membership is
hierarchical (every child is within its parent) because it is derived from what each event is:
``lymphocytes`` = single lymphocytes (live or dead) and doublets whose first cell is a lymphocyte
(with another lymphocyte or a small particle); ``singlets`` = single lymphocytes; ``live`` =
singlets that are not dead; lineage and subset columns = live singlets of that type. A scatter gate
therefore misses the doublets that lie far outside the lymphocyte cloud (recall of
``lymphocytes`` below 1 by design), and the singlet gate removes those inside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from cytophen.errors import SimulationError
from cytophen.simulate.panels import Panel, get_panel

__all__ = [
    "SimulationError",
    "SimulatedSample",
    "DEFAULT_PARAMS",
    "TRUTH_COLUMNS",
    "B_NOT_PLASMABLASTS",
    "simulate_sample",
    "logicle_inverse",
    "requested_frequencies",
]

#: Range limit of every channel (``$PnR`` 262144): values saturate at 262143.
RANGE = 262144
SATURATION = 262143.0
#: Logicle parameters in which population positions are placed.
LOGICLE = {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}
TIMESTEP = 0.01

#: Name of the intermediate population "B cells that are not plasmablasts" in bcell.yaml.
B_NOT_PLASMABLASTS = "non_plasmablast_b"

#: Truth columns written for each panel (the template population names).
TRUTH_COLUMNS: dict[str, list[str]] = {
    "bcell": [
        "lymphocytes",
        "singlets",
        "live",
        "b_cells",
        "plasmablasts",
        B_NOT_PLASMABLASTS,
        "naive",
        "unswitched_memory",
        "switched_memory",
        "dn",
        "dn1",
        "dn2",
        "activated_naive",
        "transitional",
    ],
    "treg": [
        "lymphocytes",
        "singlets",
        "live",
        "t_cells",
        "cd4",
        "cd8",
        "treg",
        "helios_pos_treg",
        "helios_neg_treg",
    ],
}


#: Requested frequencies, each a fraction of its parent (named in the comment). The remainder of
#: every level goes to the implicit sibling (e.g. single lymphocytes, T cells, resting naive B).
DEFAULT_PARAMS: dict[str, float] = {
    # of all events (single lymphocytes are the rest)
    "debris": 0.07,
    "doublets": 0.05,
    "granulocytes": 0.04,
    "monocytes": 0.12,
    # of single lymphocytes
    "dead": 0.07,
    # of live lymphocytes (T cells are the rest)
    "b_cells": 0.11,
    "nk_cells": 0.13,
    # of B cells
    "plasmablasts": 0.025,
    # of B cells that are not plasmablasts (resting naive B cells are the rest)
    "transitional": 0.05,
    "activated_naive": 0.04,
    "unswitched_memory": 0.09,
    "switched_memory": 0.15,
    "dn1": 0.05,
    "dn2": 0.06,
    "dn3": 0.015,
    # of NK cells
    "nk_cd8": 0.4,
    # of T cells (CD4-CD8- T cells are the rest)
    "cd4": 0.62,
    "cd8": 0.30,
    # of CD4 T cells (conventional resting CD4 are the rest)
    "treg": 0.065,
    "activated_cd4": 0.04,
    # of Tregs
    "helios_pos": 0.70,
}

# The level structure: parent -> list of (child, parameter or None for the remainder).
_TREE: dict[str, list[tuple[str, str | None]]] = {
    "all": [
        ("debris", "debris"),
        ("doublet", "doublets"),
        ("granulocyte", "granulocytes"),
        ("monocyte", "monocytes"),
        ("lymph", None),
    ],
    "lymph": [("dead", "dead"), ("live", None)],
    "live": [("B", "b_cells"), ("NK", "nk_cells"), ("T", None)],
    "B": [("plasmablast", "plasmablasts"), ("B_np", None)],
    "B_np": [
        ("transitional", "transitional"),
        ("activated_naive", "activated_naive"),
        ("unswitched_memory", "unswitched_memory"),
        ("switched_memory", "switched_memory"),
        ("dn1", "dn1"),
        ("dn2", "dn2"),
        ("dn3", "dn3"),
        ("naive_resting", None),
    ],
    "NK": [("nk_cd8", "nk_cd8"), ("nk", None)],
    "T": [("CD4", "cd4"), ("cd8", "cd8"), ("t_dn", None)],
    "CD4": [("Treg", "treg"), ("cd4_activated", "activated_cd4"), ("cd4_conv", None)],
    "Treg": [("treg_helios_pos", "helios_pos"), ("treg_helios_neg", None)],
}

# Cell types (leaves of the tree that are single cells): scatter class and truth labels.
_B_NP = ("b_cells", B_NOT_PLASMABLASTS)
_LABELS: dict[str, tuple[str, ...]] = {
    "naive_resting": (*_B_NP, "naive"),
    "transitional": (*_B_NP, "naive", "transitional"),
    "activated_naive": (*_B_NP, "naive", "activated_naive"),
    "unswitched_memory": (*_B_NP, "unswitched_memory"),
    "switched_memory": (*_B_NP, "switched_memory"),
    "dn1": (*_B_NP, "dn", "dn1"),
    "dn2": (*_B_NP, "dn", "dn2"),
    "dn3": (*_B_NP, "dn"),
    "plasmablast": ("b_cells", "plasmablasts"),
    "nk": (),
    "nk_cd8": (),
    "cd4_conv": ("t_cells", "cd4"),
    "cd4_activated": ("t_cells", "cd4"),
    "treg_helios_pos": ("t_cells", "cd4", "treg", "helios_pos_treg"),
    "treg_helios_neg": ("t_cells", "cd4", "treg", "helios_neg_treg"),
    "cd8": ("t_cells", "cd8"),
    "t_dn": ("t_cells",),
}
LYMPH_TYPES = tuple(_LABELS)
CELL_TYPES = (*LYMPH_TYPES, "monocyte", "granulocyte", "debris")

# Positions in logicle units (0.111 = zero; 0.45 ~ 1e3; 0.68 ~ 1e4; 0.91 ~ 1e5): (mean, sd).
_NEG = (0.19, 0.05)
# Every sd below is multiplied by this (real data are broader than a cartoon of it).
_SPREAD = 1.3
_B = {
    "CD19": (0.62, 0.04),
    "CD20": (0.70, 0.04),
    "CD21": (0.56, 0.045),
    "CD24": (0.55, 0.05),
    "CD38": (0.48, 0.05),
    "IgD": (0.20, 0.04),
    "CD27": (0.20, 0.035),
}
_T = {
    "CD3": (0.66, 0.04),
    "CD27": (0.52, 0.06),
    "CD38": (0.36, 0.07),
    "CD127": (0.55, 0.05),
    "CD25": (0.22, 0.04),
}
_CD4 = {**_T, "CD4": (0.63, 0.035), "CD25": (0.30, 0.06)}
_TREG = {
    **_CD4,
    "CD4": (0.61, 0.04),
    "CD25": (0.585, 0.045),
    "CD127": (0.30, 0.05),
    "FoxP3": (0.60, 0.045),
    "CD27": (0.56, 0.05),
}
_NK = {
    "CD38": (0.58, 0.05),
    "CD11c": (0.36, 0.07),
    "CD27": (0.28, 0.08),
    "Helios": (0.30, 0.06),
    "CD127": (0.20, 0.04),
}
_PROFILES: dict[str, dict[str, tuple[float, float]]] = {
    "naive_resting": {**_B, "IgD": (0.68, 0.05)},
    "transitional": {**_B, "IgD": (0.71, 0.045), "CD24": (0.76, 0.04), "CD38": (0.74, 0.04)},
    "activated_naive": {
        **_B,
        "IgD": (0.62, 0.06),
        "CD21": (0.27, 0.05),
        "CD11c": (0.56, 0.05),
        "CD24": (0.42, 0.05),
        "CD38": (0.33, 0.05),
        "CD20": (0.74, 0.04),
        "CD19": (0.64, 0.04),
    },
    "unswitched_memory": {
        **_B,
        "IgD": (0.62, 0.06),
        "CD27": (0.56, 0.05),
        "CD24": (0.68, 0.05),
        "CD38": (0.36, 0.05),
    },
    "switched_memory": {**_B, "CD27": (0.58, 0.05), "CD24": (0.70, 0.05), "CD38": (0.34, 0.05)},
    "dn1": {**_B, "CD21": (0.55, 0.045), "CD24": (0.62, 0.05), "CD38": (0.40, 0.05)},
    "dn2": {
        **_B,
        "CD21": (0.26, 0.05),
        "CD11c": (0.56, 0.05),
        "CD24": (0.38, 0.05),
        "CD38": (0.28, 0.05),
        "CD20": (0.76, 0.04),
    },
    "dn3": {**_B, "CD21": (0.26, 0.05), "CD24": (0.45, 0.05), "CD38": (0.30, 0.05)},
    "plasmablast": {
        **_B,
        "CD19": (0.50, 0.05),
        "CD20": (0.28, 0.07),
        "CD27": (0.77, 0.04),
        "CD38": (0.85, 0.03),
        "CD24": (0.22, 0.05),
        "CD21": (0.25, 0.05),
    },
    "nk": {**_NK},
    "nk_cd8": {**_NK, "CD8": (0.47, 0.07)},
    "cd4_conv": {**_CD4, "Helios": (0.23, 0.045)},
    "cd4_activated": {
        **_CD4,
        "CD25": (0.50, 0.05),
        "CD127": (0.52, 0.05),
        "CD38": (0.46, 0.06),
        "FoxP3": (0.26, 0.05),
    },
    "treg_helios_pos": {**_TREG, "Helios": (0.575, 0.05)},
    "treg_helios_neg": {**_TREG, "Helios": (0.23, 0.045)},
    "cd8": {
        **_T,
        "CD8": (0.74, 0.04),
        "CD127": (0.50, 0.07),
        "CD27": (0.46, 0.10),
        "CD11c": (0.23, 0.05),
    },
    "t_dn": {**_T, "CD127": (0.45, 0.08), "CD8": (0.24, 0.05), "CD27": (0.42, 0.1)},
    "monocyte": {
        "CD11c": (0.80, 0.04),
        "CD4": (0.46, 0.05),
        "CD38": (0.52, 0.06),
        "CD24": (0.30, 0.06),
        "CD21": (0.26, 0.05),
    },
    "granulocyte": {
        "CD24": (0.80, 0.05),
        "CD11c": (0.55, 0.06),
        "CD38": (0.38, 0.07),
        "CD8": (0.27, 0.05),
        "CD25": (0.30, 0.06),
    },
    "debris": {},
}
# Autofluorescence (the negative position) by scatter class.
_AUTO = {
    "lymph": _NEG,
    "monocyte": (0.24, 0.04),
    "granulocyte": (0.28, 0.045),
    "debris": (0.20, 0.08),
}
# Within-type correlations of the per-cell deviations (marker a, marker b, r).
_CORR = (
    ("CD24", "CD38", 0.5),
    ("CD27", "CD38", 0.3),
    ("CD25", "FoxP3", 0.35),
    ("CD19", "CD20", 0.5),
)
# Scatter (median, log-sd) of FSC-A and SSC-A per class.
_SCATTER = {
    "lymph": ((66000.0, 0.14), (19000.0, 0.24)),
    "monocyte": ((105000.0, 0.12), (52000.0, 0.22)),
    "granulocyte": ((122000.0, 0.10), (125000.0, 0.18)),
    "debris": ((14000.0, 0.55), (7000.0, 0.75)),
}
_SCATTER_TYPE = {
    "nk": (1.0, 1.25),
    "nk_cd8": (1.0, 1.25),
    "plasmablast": (1.15, 1.2),
    "cd4_activated": (1.08, 1.05),
    "monocyte": (1.0, 1.0),
}


class SimulatedSample(NamedTuple):
    """What :func:`simulate_sample` returns (unpacks as a 5-tuple)."""

    events: np.ndarray
    channels: list[str]
    markers: list[str]
    spillover: pd.DataFrame
    truth: pd.DataFrame


@dataclass
class _Drift:
    gain: np.ndarray  # per fluorescence detector, multiplicative
    fsc: float
    ssc: float
    offsets: dict[tuple[str, str], float] = field(default_factory=dict)


def logicle_inverse(y: np.ndarray) -> np.ndarray:
    """Logicle (T=262144, W=0.5, M=4.5, A=0) display value → linear value
    (:class:`cytophen.transforms.LogicleTransform`)."""
    from cytophen.transforms import LogicleTransform

    y = np.asarray(y, dtype=np.float64)
    return np.asarray(LogicleTransform(**LOGICLE).inverse(y), dtype=np.float64)


def _check_params(subject_params: Mapping[str, float] | None) -> dict[str, float]:
    params = dict(DEFAULT_PARAMS)
    for k, v in (subject_params or {}).items():
        if k not in DEFAULT_PARAMS:
            raise SimulationError(
                f"unknown subject parameter {k!r}; expected one of: {', '.join(DEFAULT_PARAMS)}"
            )
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise SimulationError(f"subject parameter {k!r} must be a number, got {v!r}") from None
        if not 0.0 <= v <= 1.0:
            raise SimulationError(f"subject parameter {k!r} must be a fraction in [0, 1], got {v}")
        params[k] = v
    for kids in _TREE.values():
        tot = sum(params[p] for _, p in kids if p is not None)
        if tot > 1.0 + 1e-9:
            names = ", ".join(p for _, p in kids if p is not None)
            raise SimulationError(
                f"subject parameters {names} are fractions of the same parent and sum to {tot:.3f} > 1"
            )
    return params


def fit_params(params: Mapping[str, float], *, max_sum: float = 0.97) -> dict[str, float]:
    """Scale sibling fractions down where they sum to more than ``max_sum`` (e.g. after jitter)."""
    out = {k: float(v) for k, v in params.items()}
    for kids in _TREE.values():
        names = [p for _, p in kids if p is not None and p in out]
        tot = sum(out[k] for k in names)
        if tot > max_sum:
            for k in names:
                out[k] *= max_sum / tot
    return out


def _probs(parent: str, params: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    kids = _TREE[parent]
    p = np.array([params[k] if k is not None else 0.0 for _, k in kids], dtype=np.float64)
    rest = [i for i, (_, k) in enumerate(kids) if k is None]
    p[rest] = max(0.0, 1.0 - p.sum()) / max(1, len(rest))
    return [c for c, _ in kids], p / p.sum()


def _draw(rng: np.random.Generator, node: str, n: int, params, out: dict[str, int]) -> None:
    """Multinomial counts down the tree into ``out`` (leaves only)."""
    if node not in _TREE:
        out[node] = out.get(node, 0) + n
        return
    names, p = _probs(node, params)
    counts = rng.multinomial(n, p)
    for name, c in zip(names, counts):
        _draw(rng, name, int(c), params, out)


def _leaf_probs(node: str, params) -> dict[str, float]:
    """Expected fraction of every leaf below ``node``."""
    if node not in _TREE:
        return {node: 1.0}
    names, p = _probs(node, params)
    out: dict[str, float] = {}
    for name, pi in zip(names, p):
        for leaf, q in _leaf_probs(name, params).items():
            out[leaf] = out.get(leaf, 0.0) + pi * q
    return out


def requested_frequencies(subject_params: Mapping[str, float] | None = None) -> dict[str, float]:
    """The expected fraction of each truth population within its template parent.

    Parameters
    ----------
    subject_params
        Overrides of :data:`DEFAULT_PARAMS`.

    Returns
    -------
    dict
        ``{population: fraction of parent}`` for the populations of both panels (``lymphocytes``
        as a fraction of all events, ``singlets`` of lymphocytes ...).
    """
    params = _check_params(subject_params)
    leaves = _leaf_probs("live", params)

    def frac(labels_of: str) -> float:
        return sum(q for leaf, q in leaves.items() if labels_of in _LABELS.get(leaf, ()))

    lymph_single = 1.0 - sum(params[k] for k in ("debris", "doublets", "granulocytes", "monocytes"))
    out = {
        "singlets_of_all": lymph_single,
        "live": 1.0 - params["dead"],
        "b_cells": frac("b_cells"),
        "t_cells": frac("t_cells"),
    }
    b = frac("b_cells")
    out["plasmablasts"] = frac("plasmablasts") / b
    bnp = frac(B_NOT_PLASMABLASTS)
    out[B_NOT_PLASMABLASTS] = bnp / b
    for pop in ("naive", "unswitched_memory", "switched_memory", "dn"):
        out[pop] = frac(pop) / bnp
    out["dn1"] = frac("dn1") / frac("dn")
    out["dn2"] = frac("dn2") / frac("dn")
    out["activated_naive"] = frac("activated_naive") / frac("naive")
    out["transitional"] = frac("transitional") / bnp
    t = frac("t_cells")
    out["cd4"] = frac("cd4") / t
    out["cd8"] = frac("cd8") / t
    out["treg"] = frac("treg") / frac("cd4")
    out["helios_pos_treg"] = frac("helios_pos_treg") / frac("treg")
    out["helios_neg_treg"] = frac("helios_neg_treg") / frac("treg")
    return out


def _profile_arrays(types: list[str], markers: list[str]):
    mu = np.empty((len(types), len(markers)))
    sd = np.empty_like(mu)
    for i, t in enumerate(types):
        klass = t if t in ("monocyte", "granulocyte", "debris") else "lymph"
        auto = _AUTO[klass]
        prof = _PROFILES[t]
        for j, m in enumerate(markers):
            mu[i, j], sd[i, j] = prof.get(m, auto)
    return mu, sd


def _cells(
    rng: np.random.Generator,
    types: np.ndarray,
    dead: np.ndarray,
    panel: Panel,
    drift: _Drift,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True (linear, pre-spillover) fluorescence, FSC-A and SSC-A of single cells."""
    n = types.size
    markers = panel.marker_names
    k = len(markers)
    mu_t, sd_t = _profile_arrays(list(CELL_TYPES), markers)
    for (t, m), off in drift.offsets.items():
        if m in markers:
            mu_t[CELL_TYPES.index(t), markers.index(m)] += off
    mu = mu_t[types]
    sd = sd_t[types]
    # heavy-tailed deviations (t, 6 d.f., unit variance) with a shared brightness factor
    e = rng.standard_t(6, size=(n, k)) * math.sqrt(4.0 / 6.0)
    for a, b, r in _CORR:
        if a in markers and b in markers:
            ia, ib = markers.index(a), markers.index(b)
            e[:, ib] = r * e[:, ia] + math.sqrt(1 - r * r) * e[:, ib]
    z = rng.standard_normal(n)
    rho = 0.2
    e = math.sqrt(1 - rho) * e + math.sqrt(rho) * z[:, None]
    y = mu + sd * _SPREAD * e
    # dead cells: bright viability, unspecific extra staining, wider spread
    if dead.any():
        iv = markers.index("Viability") if "Viability" in markers else None
        d = np.flatnonzero(dead)
        y[d] += 0.03 + 0.4 * sd[d] * rng.standard_normal((d.size, k))
        if iv is not None:
            y[d, iv] = 0.74 + 0.05 * rng.standard_t(6, d.size)
    is_debris = types == CELL_TYPES.index("debris")
    if is_debris.any() and "Viability" in markers:
        iv = markers.index("Viability")
        dd = np.flatnonzero(is_debris)
        stained = rng.random(dd.size) < 0.45
        y[dd[stained], iv] = 0.55 + 0.12 * rng.standard_normal(int(stained.sum()))
    true = np.clip(logicle_inverse(y), 0.0, None)

    # scatter: log-normal per class, scaled per type, correlated with brightness
    fsc = np.empty(n)
    ssc = np.empty(n)
    names = np.array(CELL_TYPES)
    for ti in np.unique(types):
        t = str(names[ti])
        sel = types == ti
        klass = t if t in ("monocyte", "granulocyte", "debris") else "lymph"
        (fm, fs), (sm, ss) = _SCATTER[klass]
        ff, sf = _SCATTER_TYPE.get(t, (1.0, 1.0))
        m = int(sel.sum())
        zf = z[sel]
        fsc[sel] = fm * ff * np.exp(fs * (0.8 * rng.standard_normal(m) + 0.6 * zf * 0.5))
        ssc[sel] = sm * sf * np.exp(ss * rng.standard_normal(m))
        if klass == "debris":
            fsc[sel] += 4000.0
    if dead.any():
        d = np.flatnonzero(dead)
        fsc[d] *= 0.72 * np.exp(0.08 * rng.standard_normal(d.size))
        ssc[d] *= 1.25 * np.exp(0.15 * rng.standard_normal(d.size))
    return true, fsc * drift.fsc, ssc * drift.ssc


def _make_drift(rng: np.random.Generator, panel: Panel, drift: float) -> _Drift:
    k = len(panel.detectors)
    gain = np.exp(0.22 * drift * rng.standard_normal(k))
    offsets = {}
    for t in CELL_TYPES:
        for m in _PROFILES[t]:
            offsets[(t, m)] = 0.022 * drift * rng.standard_normal()
    # the same shift for every subset of one lineage marker keeps quadrants coherent
    for m in ("IgD", "CD27", "CD21", "CD11c", "CD24", "CD38", "CD25", "CD127", "FoxP3", "Helios"):
        shift = 0.02 * drift * rng.standard_normal()
        for t in CELL_TYPES:
            if m in _PROFILES[t]:
                offsets[(t, m)] += shift
    return _Drift(
        gain=gain,
        fsc=float(np.exp(0.07 * drift * rng.standard_normal())),
        ssc=float(np.exp(0.10 * drift * rng.standard_normal())),
        offsets=offsets,
    )


def simulate_sample(
    panel: str | Panel,
    *,
    seed: int = 0,
    events: int = 30_000,
    subject_params: Mapping[str, float] | None = None,
    drift: float = 1.0,
) -> SimulatedSample:
    """Simulate one FCS data set of a panel, with per-event ground truth.

    Parameters
    ----------
    panel
        ``'bcell'`` or ``'treg'`` (see :data:`cytophen.simulate.panels.PANELS`).
    seed
        Seed of everything random in the file: the same seed gives identical arrays.
    events
        Number of events.
    subject_params
        Population frequencies overriding :data:`DEFAULT_PARAMS` (each a fraction of its parent,
        e.g. ``{"dn2": 0.10}`` = 10 % of non-plasmablast B cells).
    drift
        Scale of the file-to-file drift (detector gains, scatter gains, population positions);
        ``0`` gives every file the same positions.

    Returns
    -------
    SimulatedSample
        ``(events, channels, markers, spillover, truth)``: ``events`` is ``(n, p)`` float32 as a
        cytometer stores them (uncompensated, linear, saturated at 262143), ``channels`` the
        ``$PnN`` and ``markers`` the ``$PnS`` names, ``spillover`` the matrix written as
        ``$SPILLOVER``, ``truth`` a boolean DataFrame with one column per template population.

    Examples
    --------
    >>> ev, ch, mk, spill, truth = simulate_sample("bcell", seed=1, events=5000)
    >>> ev.shape, ch[:3]
    ((5000, 14), ['FSC-A', 'FSC-H', 'SSC-A'])
    >>> bool((truth["b_cells"] <= truth["live"]).all())
    True
    """
    p = get_panel(panel)
    try:
        n = int(events)
    except (TypeError, ValueError):
        raise SimulationError(f"events must be a whole number, got {events!r}") from None
    if n < 1:
        raise SimulationError(f"events must be at least 1, got {events}")
    if not (isinstance(drift, (int, float)) and math.isfinite(drift) and drift >= 0):
        raise SimulationError(f"drift must be a number >= 0, got {drift!r}")
    params = _check_params(subject_params)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    dr = _make_drift(rng, p, float(drift))

    counts: dict[str, int] = {}
    _draw(rng, "all", n, params, counts)
    n_doublets = counts.pop("doublet", 0)
    n_dead = counts.pop("dead", 0)
    # dead lymphocytes keep a lineage drawn like the live ones
    live_p = _leaf_probs("live", params)
    leaf_names = list(live_p)
    if n_dead:
        for name, c in zip(leaf_names, rng.multinomial(n_dead, np.array(list(live_p.values())))):
            counts[name + ":dead"] = int(c)

    index = {t: i for i, t in enumerate(CELL_TYPES)}
    types_l: list[np.ndarray] = []
    dead_l: list[np.ndarray] = []
    for name, c in counts.items():
        base, _, flag = name.partition(":")
        types_l.append(np.full(c, index[base], dtype=np.int16))
        dead_l.append(np.full(c, flag == "dead"))
    types = np.concatenate(types_l) if types_l else np.empty(0, np.int16)
    dead = np.concatenate(dead_l) if dead_l else np.empty(0, bool)
    # doublets: two cells stuck together (mostly lymphocyte + lymphocyte)
    mono_p = params["monocytes"] / max(
        1e-9,
        params["monocytes"]
        + (1 - sum(params[k] for k in ("debris", "doublets", "granulocytes", "monocytes"))),
    )
    first = np.where(rng.random(n_doublets) < mono_p * 0.5, index["monocyte"], -1)
    lymph_draw = rng.choice(
        len(leaf_names), size=(n_doublets, 2), p=np.array(list(live_p.values()))
    )
    lymph_idx = np.array([index[x] for x in leaf_names], dtype=np.int16)
    a_types = np.where(first >= 0, first, lymph_idx[lymph_draw[:, 0]]).astype(np.int16)
    # the partner: another lymphocyte, or a small particle (platelet clump / debris, 25 %)
    b_types = np.where(
        rng.random(n_doublets) < 0.25, index["debris"], lymph_idx[lymph_draw[:, 1]]
    ).astype(np.int16)
    all_types = np.concatenate([types, a_types, b_types])
    all_dead = np.concatenate([dead, np.zeros(2 * n_doublets, bool)])
    true, fsc, ssc = _cells(rng, all_types, all_dead, p, dr)

    m = types.size
    fsc_h = fsc[:m] * np.clip(rng.normal(0.86, 0.025, m), 0.5, 1.2)
    if n_doublets:
        ia = slice(m, m + n_doublets)
        ib = slice(m + n_doublets, m + 2 * n_doublets)
        # the second particle adds part of its area (coincidence within one laser pulse);
        # elongation 1: one behind the other (height of one cell), 0: side by side (on the
        # singlet diagonal)
        part = rng.beta(4.0, 1.6, n_doublets)
        second = fsc[ib] * part
        elong = rng.beta(1.8, 1.2, n_doublets)
        d_fsc = fsc[ia] + second
        d_fsch = (
            0.86 * (d_fsc - elong * np.minimum(fsc[ia], second)) * rng.normal(1.0, 0.03, n_doublets)
        )
        d_ssc = ssc[ia] + part * ssc[ib]
        d_true = true[ia] + part[:, None] * true[ib]
        fsc = np.concatenate([fsc[:m], d_fsc])
        fsc_h = np.concatenate([fsc_h, d_fsch])
        ssc = np.concatenate([ssc[:m], d_ssc])
        true = np.concatenate([true[:m], d_true])
        types = np.concatenate([types, np.full(n_doublets, -1, np.int16)])
        dead = np.concatenate([dead, np.zeros(n_doublets, bool)])
        dbl_lymph = first < 0
    else:
        true = true[:m]
        fsc, ssc = fsc[:m], ssc[:m]
        dbl_lymph = np.zeros(0, bool)

    # detection: spillover, gain drift, photon + electronic noise, saturation
    spill = p.spillover()
    # gain drift acts on the dye signal (staining / laser power), before spillover, so the
    # file's own $SPILLOVER still compensates it exactly
    detected = (true * dr.gain[None, :]) @ spill.to_numpy()
    photon, electronic = p.noise()
    noise_sd = np.sqrt(photon[None, :] * np.clip(detected, 0, None) + electronic[None, :] ** 2)
    detected = detected + noise_sd * rng.standard_normal(detected.shape)
    sc_noise = rng.standard_normal((3, fsc.size))
    fsc = fsc + np.sqrt(8.0 * fsc) * sc_noise[0] + 150 * sc_noise[0]
    fsc_h = fsc_h + np.sqrt(8.0 * fsc_h) * sc_noise[1] + 150 * sc_noise[1]
    ssc = ssc + np.sqrt(8.0 * ssc) * sc_noise[2] + 80 * sc_noise[2]
    scatter = np.clip(np.column_stack([fsc, fsc_h, ssc]), 0.0, SATURATION)
    detected = np.minimum(detected, SATURATION)

    # shuffle into acquisition order and time-stamp
    order = rng.permutation(types.size)
    duration = max(1.0, n / 400.0)  # ~400 events/s
    ticks = np.sort(np.floor(rng.uniform(0, duration / TIMESTEP, types.size)))
    data = np.column_stack([scatter, detected, np.zeros(types.size)])[order]
    data[:, -1] = ticks
    types = types[order]
    dead = dead[order]
    is_dbl = types < 0
    dbl_lymph_full = np.zeros(types.size, bool)
    dbl_lymph_full[is_dbl] = dbl_lymph[order[is_dbl] - m]

    truth = _truth(p.name, types, dead, dbl_lymph_full)
    return SimulatedSample(
        events=data.astype(np.float32),
        channels=p.channels,
        markers=p.markers,
        spillover=spill,
        truth=truth,
    )


def _truth(
    panel: str, types: np.ndarray, dead: np.ndarray, lymph_doublet: np.ndarray
) -> pd.DataFrame:
    """Boolean truth per template population, derived from the cell type of every event."""
    n = types.size
    single_lymph = np.zeros(n, bool)
    lymph_codes = [CELL_TYPES.index(t) for t in LYMPH_TYPES]
    single_lymph[np.isin(types, lymph_codes)] = True
    cols: dict[str, np.ndarray] = {
        "lymphocytes": single_lymph | lymph_doublet,
        "singlets": single_lymph,
        "live": single_lymph & ~dead,
    }
    live = cols["live"]
    for name in TRUTH_COLUMNS[panel]:
        if name in cols:
            continue
        codes = [CELL_TYPES.index(t) for t, labels in _LABELS.items() if name in labels]
        cols[name] = np.isin(types, codes) & live
    return pd.DataFrame({c: cols[c] for c in TRUTH_COLUMNS[panel]})
