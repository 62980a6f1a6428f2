"""Scoring a gating result against the simulator's per-event truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytophen.simulate.model import SimulationError

__all__ = ["score", "SCORE_COLUMNS"]

SCORE_COLUMNS = [
    "population",
    "parent",
    "n_true",
    "n_gated",
    "n_both",
    "f1",
    "precision",
    "recall",
    "percent_of_parent_true",
    "percent_of_parent_gated",
    "abs_error_pp",
]


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def score(result, truth: pd.DataFrame) -> pd.DataFrame:
    """Compare each population's membership with the truth, event by event.

    Parameters
    ----------
    result
        A :class:`cytophen.result.GatingResult` (``cytophen.gate(...)``) of a simulated file.
    truth
        Its truth table (:func:`cytophen.simulate.read_truth`): one boolean column per population.

    Returns
    -------
    pandas.DataFrame
        One row per population present in both (template order), columns ``population, parent,
        n_true, n_gated, n_both, f1, precision, recall, percent_of_parent_true,
        percent_of_parent_gated, abs_error_pp``. ``percent_of_parent_true`` uses the true parent
        and ``percent_of_parent_gated`` the gated parent (``root`` = all events); the parent is
        the nearest ancestor the truth has a column for (a dump-channel step such as CD3- has
        none); ``abs_error_pp``
        is their absolute difference in percentage points. F1 is 1 when both sets are empty.

    Raises
    ------
    SimulationError
        When the truth and the result disagree on the number of events or share no population.

    Examples
    --------
    >>> s = cytophen.read_fcs("P01_W00_bcell.fcs")                                  # doctest: +SKIP
    >>> r = cytophen.gate(s, "gating_templates/bcell.yaml")                         # doctest: +SKIP
    >>> score(r, read_truth("P01_W00_bcell.fcs"))[["population", "f1", "abs_error_pp"]]  # doctest: +SKIP
    """
    n = int(result.n_events)
    if len(truth) != n:
        raise SimulationError(
            f"truth has {len(truth)} rows but the gated sample {result.sample_id!r} has {n} events; "
            "is it the truth of another file?"
        )
    parents: dict[str, str] = {}
    if getattr(result, "template", None) is not None:
        for p in result.template.populations:
            parents[p.name] = p.parent or "root"
    elif "parent" in result.table.columns:
        parents = dict(zip(result.table["population"], result.table["parent"]))
    pops = [p for p in result.populations if p in truth.columns]
    if not pops:
        raise SimulationError(
            f"no population of the result ({', '.join(result.populations)}) is in the truth "
            f"({', '.join(map(str, truth.columns))})"
        )
    rows = []
    for name in pops:
        g = np.asarray(result.membership(name), dtype=bool)
        t = truth[name].to_numpy(dtype=bool)
        both = int(np.count_nonzero(g & t))
        ng, nt = int(g.sum()), int(t.sum())
        precision = _ratio(both, ng) if ng else (1.0 if nt == 0 else float("nan"))
        recall = _ratio(both, nt) if nt else (1.0 if ng == 0 else float("nan"))
        f1 = 1.0 if ng + nt == 0 else 2.0 * both / (ng + nt)
        parent = parents.get(name, "root")
        while parent not in ("root", None) and parent not in truth.columns:
            parent = parents.get(parent, "root")  # a gating step the truth has no column for
        if parent == "root" or parent is None:
            pt = pg = n
        else:
            pg = result.count(parent)
            pt = int(truth[parent].sum()) if parent in truth.columns else np.nan
        pct_t = 100.0 * _ratio(nt, pt) if pt == pt else float("nan")
        pct_g = 100.0 * _ratio(ng, pg)
        rows.append(
            {
                "population": name,
                "parent": parent,
                "n_true": nt,
                "n_gated": ng,
                "n_both": both,
                "f1": f1,
                "precision": precision,
                "recall": recall,
                "percent_of_parent_true": pct_t,
                "percent_of_parent_gated": pct_g,
                "abs_error_pp": abs(pct_g - pct_t),
            }
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)
