"""Applying a Template to a Sample: compensation → transforms → gate tree → GatingResult.

One code path for the CLI, notebooks and batch runs. Values are computed per dimension on demand
(float64, only the columns a gate uses) and memberships are boolean arrays over all events; a child's
membership is always within its parent's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cytophen import markers as _markers
from cytophen.compensation import compensate
from cytophen.errors import CompensationError, CytophenError, GateError, MarkerError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    Gate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
)
from cytophen.io.sample import Sample, scale_in_place
from cytophen.kernels import convert as _convert
from cytophen.result import GatingResult
from cytophen.template import Population, Template

__all__ = ["gate", "FitOutcome", "GateContext"]


@dataclass
class FitOutcome:
    """What a data-driven gate chose on one sample (or pooled group).

    ``gate`` is the fixed gate it placed (``None`` when it declined, e.g. too few events, in which
    case the population is reported as not measured with ``reason``).
    """

    gate: Gate | None
    fell_back: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class GateContext:
    """Per-call state: resolved channels and the values of each dimension, computed once."""

    def __init__(self, sample: Sample, template: Template, compensation=None):
        self.sample = sample
        self.template = template
        self.override = compensation
        self._index: dict[str, int] = {}
        self._comp: dict[str, dict[str, np.ndarray] | None] = {}
        self._values: dict[tuple, np.ndarray] = {}
        self._linear: dict[int, np.ndarray] = {}
        self._factors: list[tuple[str, float, float]] | None = None
        self._prefetched = False

    # -- channels ----------------------------------------------------------------------------
    def index(self, name: str) -> int:
        if name not in self._index:
            m = self.template.markers.get(name)
            aliases = m.aliases if m else ()
            self._index[name] = _markers.resolve(
                self.sample.channels, self.sample.markers, name, aliases, path=self.sample.path
            )
        return self._index[name]

    def linear(self, i: int) -> np.ndarray:
        if i not in self._linear:
            if self._factors is None:  # once per sample: it reads every keyword
                self._factors = self.sample.scale_factors()
            if not self._prefetched:
                self._prefetch(i)
            if i not in self._linear:
                self._linear[i] = self.sample.linear_column(i, self._factors)
        return self._linear[i]

    def _prefetch(self, first: int) -> None:
        """Convert every channel the template gates on in one pass over the event block (large
        samples only); values are bit-identical to :meth:`Sample.linear_column`."""
        self._prefetched = True
        if self.sample.n_events < _convert.PARALLEL_MIN:
            return
        names = set()
        for p in self.template.populations:
            if p.parent is not None:  # gated at their parent's rows only (see raw_at)
                continue
            for d in getattr(p.gate, "dims", ()):
                names.update((d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,))
        wanted = {first}
        for name in names:
            try:
                wanted.add(self.index(name))
            except CytophenError:  # optional marker absent, or a spectrum-matrix fluorochrome
                continue
        idx = sorted(wanted)
        if len(idx) < 2:
            return
        block = _convert.columns_as_float64(self.sample.events, idx)
        for row, i in enumerate(idx):
            kind, a, b = self._factors[i]
            self._linear[i] = scale_in_place(block[row], kind, a, b)

    # -- compensation ------------------------------------------------------------------------
    def comp_ref(self, ref: str | None) -> str:
        if ref is None or (self.override is not None and ref in ("FCS", "keyword")):
            if self.override is not None and not isinstance(self.override, pd.DataFrame):
                return {"none": "uncompensated", "template": self.template.compensation}.get(
                    self.override, self.override
                ) if self.override != "template" else self.template.compensation
            if isinstance(self.override, pd.DataFrame):
                return "__override__"
            return self.template.compensation
        return ref

    def matrix(self, ref: str) -> pd.DataFrame | None:
        if ref == "uncompensated":
            return None
        if ref == "__override__":
            return self.override
        if ref in ("FCS", "keyword"):
            if self.sample.spillover is None:
                if ref == "keyword":
                    raise CompensationError(
                        f"{self.sample.path or 'sample'}: the template compensates with the file's "
                        "spillover keyword ($SPILLOVER/SPILL), but the file has none; pass "
                        "--compensation none (already compensated) or a matrix CSV"
                    )
                return None
            return self.sample.spillover
        if ref in self.template.matrices:
            return self.template.matrices[ref]
        raise CompensationError(
            f"compensation {ref!r} is not a matrix of the template (it has: "
            f"{', '.join(self.template.matrices) or 'none'}); expected FCS, keyword, uncompensated or a matrix id"
        )

    def compensated(self, ref: str) -> dict[str, np.ndarray] | None:
        if ref not in self._comp:
            s = self.matrix(ref)
            if s is None:
                self._comp[ref] = None
            else:
                det = []
                for c in s.columns:
                    try:
                        det.append(self.index(str(c)))
                    except MarkerError as exc:
                        raise CompensationError(
                            f"{self.sample.path or 'sample'}: spillover matrix {ref!r} names detector "
                            f"{c!r}, which is not a channel of the file ({', '.join(self.sample.channels)})"
                        ) from exc
                out = compensate(self._detector_block(det), s)
                self._comp[ref] = {str(name): out[:, j] for j, name in enumerate(s.index)}
        return self._comp[ref]

    def _detector_block(self, det: list[int]) -> np.ndarray:
        """``(n, len(det))`` float64 linear values of the detector columns.

        Linear channels (no ``$PnE`` log amplification) are taken from the event block in one pass
        and scaled by a row vector; per-column conversion would re-read the whole block once per
        detector.
        """
        if not det:
            return np.empty((self.sample.n_events, 0))
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        kinds = [self._factors[i] for i in det]
        if any(k == "log" for k, _, _ in kinds) or any(i in self._linear for i in det):
            return np.column_stack([self.linear(i) for i in det])
        block = self.sample.events[:, det].astype(np.float64)
        gain = np.array([a if k == "gain" else 1.0 for k, a, _ in kinds])
        step = np.array([a if k == "time" else 1.0 for k, a, _ in kinds])
        if np.any(gain != 1.0):
            block /= gain  # divide, as linear_column does: bit-identical values
        if np.any(step != 1.0):
            block *= step
        return block

    # -- values ------------------------------------------------------------------------------
    def raw_value(self, channel: str, comp: str | None) -> np.ndarray:
        """Compensated (as ``comp`` says), untransformed values of one channel, float64."""
        ref = self.comp_ref(comp)
        key = ("raw", channel, ref)
        if key not in self._values:
            cols = self.compensated(ref)
            if cols is not None and channel in cols and channel not in self.sample.channels:
                v = cols[channel]  # a fluorochrome of a spectrum matrix
            else:
                i = self.index(channel)
                name = self.sample.channels[i]
                v = cols[name] if cols is not None and name in cols else self.linear(i)
            self._values[key] = v
        return self._values[key]

    def raw_at(
        self, channel: str, comp: str | None, idx: np.ndarray | None, subset: str | None
    ) -> np.ndarray:
        """:meth:`raw_value` at the events ``idx`` (all events when ``None``).

        With ``subset`` (the name of the population whose rows ``idx`` are), uncompensated linear
        channels are read straight from the event block at those rows, every channel the
        subset's children gate on in one pass, and cached for the siblings; the values are
        bit-identical to ``raw_value(...)[idx]``.
        """
        if idx is None:
            return self.raw_value(channel, comp)
        ref = self.comp_ref(comp)
        if subset is None:
            return self.raw_value(channel, comp)[idx]
        key = ("raw", channel, ref, "at", subset)
        if key not in self._values:
            if self.compensated(ref) is None:
                self._gather_subset(ref, idx, subset)
            if key not in self._values:
                self._values[key] = self.raw_value(channel, comp)[idx]
        return self._values[key]

    def block_columns(self, dims) -> list[np.ndarray] | None:
        """Column views of the stored event block for ``dims``, or ``None`` unless every dim is
        an uncompensated, untransformed channel stored as float32/float64 with no scaling (its
        linear value is then the stored value, widened exactly) and not computed yet."""
        ev = self.sample.events
        if not _convert.gatherable(ev) or ev.shape[0] < _convert.PARALLEL_MIN:
            return None
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        views = []
        for d in dims:
            if type(d) is not Dim or d.transform is not None:
                return None
            ref = self.comp_ref(d.compensation)
            if ("raw", d.channel, ref) in self._values or self.compensated(ref) is not None:
                return None
            try:
                i = self.index(d.channel)
            except CytophenError:
                return None
            if self._factors[i][0] != "none" or i in self._linear:
                return None
            views.append(ev[:, i])
        return views

    def _gather_subset(self, ref: str, idx: np.ndarray, subset: str) -> None:
        """Read, at the rows ``idx`` of population ``subset``, every uncompensated (``ref``)
        linear channel its child gates use, in one pass over the event block."""
        if not _convert.gatherable(self.sample.events):
            return
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        names: dict[str, int] = {}
        for p in self.template.populations:
            if p.parent != subset:
                continue
            for d in getattr(p.gate, "dims", ()):
                if self.comp_ref(d.compensation) != ref:
                    continue
                chans = (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                for name in chans:
                    try:
                        i = self.index(name)
                    except CytophenError:  # reported where the value is needed
                        continue
                    # log amplification: np.power on a subset could round differently; take
                    # the full column's values (one code path), as for compensated channels
                    if self._factors[i][0] == "log":
                        continue
                    names[name] = i
        if not names:
            return
        cols = sorted(set(names.values()))
        block = _convert.rows_as_float64(self.sample.events, idx, cols)
        rows = {i: scale_in_place(block[r], *self._factors[i]) for r, i in enumerate(cols)}
        for name, i in names.items():
            self._values[("raw", name, ref, "at", subset)] = rows[i]

    def value(
        self, dim: Dim | RatioDim, idx: np.ndarray | None = None, subset: str | None = None
    ) -> np.ndarray:
        """Values of one dimension; with ``idx``, only at those events (ratio and transform are
        computed on that subset alone, cached under ``subset``, e.g. the parent population)."""
        key = ("dim", id(dim.transform), dim.to_dict().__repr__())
        if idx is not None:
            if key in self._values:  # already computed for every event
                return self._values[key][idx]
            key = (*key, "at", subset)
        if key not in self._values:
            if isinstance(dim, RatioDim):
                x = self.raw_at(dim.numerator, dim.compensation, idx, subset)
                y = self.raw_at(dim.denominator, dim.compensation, idx, subset)
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = dim.A * (x - dim.B) / (y - dim.C)
            else:
                v = self.raw_at(dim.channel, dim.compensation, idx, subset)
            if dim.transform is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = dim.transform.apply(v)
            v = np.asarray(v, dtype=np.float64)
            if idx is not None and subset is None:
                return v
            self._values[key] = v
        return self._values[key]

    def matrix_of(
        self, dims, idx: np.ndarray | None = None, subset: str | None = None
    ) -> np.ndarray:
        return np.column_stack(self.columns_of(dims, idx, subset))

    def columns_of(
        self, dims, idx: np.ndarray | None = None, subset: str | None = None
    ) -> list[np.ndarray]:
        return [self.value(d, idx, subset) for d in dims]

    def missing_optional(self, dims) -> list[str]:
        """Optional panel markers among ``dims`` that the file lacks."""
        missing = []
        for d in dims:
            names = [d.numerator, d.denominator] if isinstance(d, RatioDim) else [d.channel]
            for n in names:
                m = self.template.markers.get(n)
                if m is not None and m.optional:
                    try:
                        self.index(n)
                    except MarkerError:
                        missing.append(n)
        return missing


def _fit(gate_: DataDrivenGate, values: np.ndarray, seed: int) -> FitOutcome:
    from cytophen.datadriven import fit_gate

    return fit_gate(gate_, values, seed=seed)


def gate(
    sample: Sample,
    template: Template,
    *,
    sample_id: str | None = None,
    compensation: str | pd.DataFrame | None = None,
    fitted: dict[str, FitOutcome] | None = None,
    seed: int = 0,
) -> GatingResult:
    """Apply ``template`` to ``sample``.

    Parameters
    ----------
    sample
        From :func:`cytophen.read_fcs`.
    template
        From :func:`cytophen.load_template` (YAML, GatingML 2.0 or FlowJo .wsp).
    sample_id
        Name used in the table (default: the file stem).
    compensation
        Override the template's compensation source: ``'template'``, ``'keyword'``, ``'FCS'``,
        ``'none'`` or a spillover DataFrame.
    fitted
        Pre-fitted data-driven gates by gate key (pooled fits, frozen studies).
    seed
        Seed for the subsampling of data-driven fits (results are deterministic for a given seed).

    Returns
    -------
    GatingResult
        ``.table`` (tidy, one row per population), ``.membership(name)``, ``.gates``.

    Examples
    --------
    >>> s = cytophen.read_fcs("sample.fcs")                      # doctest: +SKIP
    >>> r = cytophen.gate(s, cytophen.load_template("bcell.yaml"))  # doctest: +SKIP
    >>> r.table[["population", "count", "percent_of_parent"]]     # doctest: +SKIP
    """
    t0 = time.perf_counter()
    ctx = GateContext(sample, template, compensation)
    n = sample.n_events
    members: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    measured: dict[str, bool] = {}
    gates_used: dict[str, dict[str, Any]] = {}
    fits: dict[int, FitOutcome] = {}
    fitted = fitted or {}
    timings: dict[str, float] = {}
    parent_rows: dict[str, np.ndarray] = {}

    for pop in template.populations:
        ts = time.perf_counter()
        parent_mask = members[pop.parent] if pop.parent is not None else np.ones(n, dtype=np.bool_)
        if pop.parent is not None and not measured[pop.parent]:
            members[pop.name] = np.zeros(n, dtype=np.bool_)
            measured[pop.name] = False
            notes[pop.name] = f"not measured: parent {pop.parent!r} not measured"
            continue
        g = pop.gate
        missing = ctx.missing_optional(getattr(g, "dims", ()))
        if missing:
            members[pop.name] = np.zeros(n, dtype=np.bool_)
            measured[pop.name] = False
            notes[pop.name] = f"not measured: optional marker(s) {', '.join(missing)} absent from the file"
            continue
        if isinstance(g, BooleanGate):
            bad = [op for op, _ in g.operands if not measured.get(op, False)]
            if bad:
                members[pop.name] = np.zeros(n, dtype=np.bool_)
                measured[pop.name] = False
                notes[pop.name] = f"not measured: operand(s) {', '.join(bad)} not measured"
                continue
            m = g.combine(members) & parent_mask
            gates_used[pop.name] = {"population": pop.name, "geometry": g.geometry(), "data_driven": False}
        else:
            if isinstance(g, DataDrivenGate):
                key = id(g)
                if key not in fits:
                    gkey = _gate_key(pop, template)
                    if gkey in fitted:
                        fits[key] = fitted[gkey]
                    else:
                        vals = ctx.matrix_of(g.dims)[parent_mask]
                        try:
                            fits[key] = _fit(g, vals, seed)
                        except CytophenError:
                            raise
                        except Exception as exc:  # an estimator bug must not kill a batch silently
                            raise GateError(pop.name, f"{g.method} failed: {exc}") from exc
                outcome = fits[key]
                placed = outcome.gate
                if placed is None:
                    members[pop.name] = np.zeros(n, dtype=np.bool_)
                    measured[pop.name] = False
                    notes[pop.name] = f"not measured: {g.method} declined: {outcome.reason}"
                    gates_used[pop.name] = _used(pop, None, g, outcome)
                    continue
                gates_used[pop.name] = _used(pop, placed, g, outcome)
                if outcome.fell_back:
                    notes[pop.name] = f"{g.method} fell back: {outcome.reason}"
                geom_gate = placed
            else:
                geom_gate = g
                gates_used[pop.name] = _used(pop, g, None, None)
            if isinstance(geom_gate, QuadrantGate):
                geom_gate = geom_gate.rectangle(pop.quadrant)
            m = np.zeros(n, dtype=np.bool_)
            if parent_mask.all():
                m = np.asarray(_evaluate(geom_gate, ctx), dtype=np.bool_)
            elif (every := _evaluate_every_event(geom_gate, ctx, parent_mask)) is not None:
                m = every & parent_mask
            else:  # values (transforms) only for the parent's events
                idx = parent_rows.get(pop.parent)
                if idx is None:  # siblings (e.g. quadrant children) share their parent's rows
                    idx = parent_rows[pop.parent] = np.flatnonzero(parent_mask)
                m[idx] = _evaluate(geom_gate, ctx, idx, pop.parent)
        members[pop.name] = m
        measured[pop.name] = True
        timings[pop.name] = time.perf_counter() - ts

    table = _table(sample, template, ctx, members, measured, notes, sample_id)
    return GatingResult(
        sample_id=sample_id or sample.id,
        file=str(sample.path) if sample.path is not None else "",
        template_name=template.name,
        template_version=template.version,
        template_hash=template.hash,
        n_events=n,
        table=table,
        memberships=members,
        gates=gates_used,
        notes=notes,
        timings={"total": time.perf_counter() - t0, **timings},
        sample=sample,
        template=template,
    )


def _evaluate_every_event(gate_: Gate, ctx: GateContext, parent_mask: np.ndarray):
    """A polygon on stored float32 channels under a parent holding at least half of the events
    is tested on every event in place (the caller and-s the parent): one read of the block
    instead of finding, gathering and scattering the parent's rows. ``None`` otherwise."""
    if type(gate_) is not PolygonGate:
        return None
    views = ctx.block_columns(gate_.dims)
    if views is None or 2 * np.count_nonzero(parent_mask) < parent_mask.shape[0]:
        return None
    return np.asarray(gate_.contains_columns(views), dtype=np.bool_)


def _evaluate(
    gate_: Gate, ctx: GateContext, idx: np.ndarray | None = None, subset: str | None = None
) -> np.ndarray:
    """Membership of the events ``idx`` (all when ``None``) of population ``subset``.

    Rectangles (and quadrants) on plain dimensions are tested on untransformed values, their
    bounds mapped to data units (:meth:`RectangleGate.contains_raw`: same membership, no
    transform of every value); polygons on transformed dimensions transform only the events
    inside their bounding box (:meth:`PolygonGate.contains_raw`); root polygons on stored
    float32 channels read them in place; other gates get their dimensions' values.
    """
    if idx is None and type(gate_) is PolygonGate:
        views = ctx.block_columns(gate_.dims)
        if views is not None:  # the stored float32 columns, read in place (no float64 copy)
            return gate_.contains_columns(views)
    # exact type: a subclass overriding contains / contains_columns keeps its own test
    plain = all(type(d) is Dim for d in gate_.dims)
    if plain and (
        type(gate_) is RectangleGate
        or (type(gate_) is PolygonGate and any(d.transform is not None for d in gate_.dims))
    ):
        raw = [ctx.raw_at(d.channel, d.compensation, idx, subset) for d in gate_.dims]
        return gate_.contains_raw(raw)
    return _contains(gate_, ctx.columns_of(gate_.dims, idx, subset))


def _contains(gate_: Gate, columns: list[np.ndarray]) -> np.ndarray:
    """Membership from one array per dimension; gates that can test columns directly skip the
    (n, d) stack (polygons and rectangles: the common case)."""
    direct = getattr(gate_, "contains_columns", None)
    if direct is not None:
        return direct(columns)
    return gate_.contains(np.column_stack(columns))


def _gate_key(pop: Population, template: Template) -> str:
    """Key of a gate in ``fitted`` / gates.json: the population name, or for a gate shared by
    quadrant children, the name of the first population using it."""
    for p in template.populations:
        if p.gate is pop.gate:
            return p.name
    return pop.name


def _used(pop: Population, placed: Gate | None, spec: DataDrivenGate | None, outcome: FitOutcome | None):
    d: dict[str, Any] = {
        "population": pop.name,
        "quadrant": pop.quadrant,
        "geometry": None if placed is None else placed.geometry(),
        "dims": [dd.label for dd in (placed or spec).dims] if (placed or spec) is not None else [],
        "data_driven": spec is not None,
    }
    if spec is not None and outcome is not None:
        d.update(
            method=spec.method,
            params=dict(spec.params),
            fell_back=bool(outcome.fell_back),
            reason=outcome.reason,
            details=outcome.details,
        )
    return d


def _statistic(values: np.ndarray, stat: str) -> float:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan")
    if stat == "median":
        return float(np.median(v))
    if stat == "mean":
        return float(np.mean(v))
    if stat == "sd":
        return float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    if stat == "cv":
        mu = np.mean(v)
        return float(100.0 * np.std(v, ddof=1) / mu) if v.size > 1 and mu != 0 else float("nan")
    if stat == "geometric_mean":
        pos = v[v > 0]
        return float(np.exp(np.mean(np.log(pos)))) if pos.size else float("nan")
    if stat == "robust_cv":
        p16, p50, p84 = np.percentile(v, [15.865, 50.0, 84.135])
        return float(100.0 * 0.5 * (p84 - p16) / p50) if p50 != 0 else float("nan")
    raise GateError("statistics", f"unknown statistic {stat!r}")


def _table(sample, template, ctx, members, measured, notes, sample_id) -> pd.DataFrame:
    n = sample.n_events
    rows = []
    counts = {k: int(np.count_nonzero(v)) for k, v in members.items()}
    short_hash = template.short_hash  # hashing the template is not free: once per table
    for pop in template.populations:
        ok = measured[pop.name]
        pc = n if pop.parent is None else counts[pop.parent]
        parent_ok = pop.parent is None or measured[pop.parent]
        c = counts[pop.name]
        row: dict[str, Any] = {
            "sample": sample_id or sample.id,
            "file": str(sample.path) if sample.path is not None else "",
            "population": pop.name,
            "parent": pop.parent if pop.parent is not None else "root",
            "path": template.path(pop.name),
            "count": c if ok else pd.NA,
            "parent_count": pc if parent_ok else pd.NA,
            "percent_of_parent": (100.0 * c / pc if pc else float("nan")) if ok else float("nan"),
            "percent_of_total": (100.0 * c / n if n else float("nan")) if ok else float("nan"),
        }
        for anc in pop.report.percent_of:
            ac = counts.get(anc, 0)
            row[f"percent_of_{anc}"] = (
                100.0 * c / ac if ok and measured.get(anc) and ac else float("nan")
            )
        for stat, marker in pop.report.statistics:
            col = f"{stat}_{marker}"
            if not ok or c == 0:
                row[col] = float("nan")
                continue
            try:
                vals = ctx.raw_value(marker, None)
            except MarkerError:
                row[col] = float("nan")
                continue
            row[col] = _statistic(vals[members[pop.name]], stat)
        row["measured"] = ok
        row["note"] = notes.get(pop.name, "")
        row["template"] = template.name
        row["template_version"] = template.version
        row["template_hash"] = short_hash
        rows.append(row)
    df = pd.DataFrame(rows)
    tail = ["measured", "note", "template", "template_version", "template_hash"]
    df = df[[c for c in df.columns if c not in tail] + tail]
    df["count"] = df["count"].astype("Int64")
    df["parent_count"] = df["parent_count"].astype("Int64")
    return df
