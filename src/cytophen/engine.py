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
from cytophen.compensation import compensation_matrix
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
    RefGate,
    resolve_ref,
)
from cytophen.io.sample import Sample, scale_in_place
from cytophen.kernels import compensate as _comp_kernel
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
        self._comp: dict[str, dict[str, Any] | None] = {}
        self._anchors: dict[str, list[dict[str, Any]]] = {}
        self._parents: dict[str, str | None] | None = None
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
                names.update(
                    (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                )
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
                return (
                    {"none": "uncompensated", "template": self.template.compensation}.get(
                        self.override, self.override
                    )
                    if self.override != "template"
                    else self.template.compensation
                )
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

    def _comp_info(self, ref: str) -> dict[str, Any] | None:
        """The matrix ``ref`` resolved against the sample: detector columns, output names and
        ``inv(S)`` (``None`` for uncompensated values). Computed once per matrix."""
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
                outputs = [str(name) for name in s.index]
                self._comp[ref] = {
                    "det": det,
                    "outputs": outputs,
                    "pos": {name: j for j, name in enumerate(outputs)},
                    "inverse": compensation_matrix(s),
                }
        return self._comp[ref]

    def _comp_output(self, ref: str, channel: str) -> str | None:
        """The output of matrix ``ref`` that holds ``channel``'s compensated values, or ``None``
        when ``channel`` is not compensated by it (uncompensated ``ref``, scatter, time)."""
        info = self._comp_info(ref)
        if info is None:
            return None
        if channel in info["pos"] and channel not in self.sample.channels:
            return channel  # a fluorochrome of a spectrum matrix
        name = self.sample.channels[self.index(channel)]
        return name if name in info["pos"] else None

    def _comp_values(
        self, ref: str, outputs: list[str], rows: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Compensated values of ``outputs`` at the events ``rows`` (all when ``None``), one
        contiguous float64 array each. Every value is the same fixed-order dot product however
        many rows or outputs are computed together (:mod:`cytophen.kernels.compensate`), so an
        event's value computed for a parent population equals the one computed for all events."""
        info = self._comp_info(ref)
        cols = [info["pos"][o] for o in outputs]
        m = info["inverse"][:, cols]
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        kinds = [self._factors[i] for i in info["det"]]
        out = None
        if all(k in ("none", "gain", "time") for k, _, _ in kinds):
            mode = [_SCALE_MODE[k] for k, _, _ in kinds]
            factor = [a if k in ("gain", "time") else 1.0 for k, a, _ in kinds]
            out = _comp_kernel.compensated_rows(
                self.sample.events, rows, info["det"], mode, factor, m
            )
        if out is None:  # log-amplified detectors, or a block the kernel cannot read
            lin = [self.linear(i) for i in info["det"]]
            block = np.vstack(lin if rows is None else [v[rows] for v in lin])
            out = _comp_kernel.product(block, m)
        return {o: out[j] for j, o in enumerate(outputs)}

    # -- values ------------------------------------------------------------------------------
    def raw_value(self, channel: str, comp: str | None) -> np.ndarray:
        """Compensated (as ``comp`` says), untransformed values of one channel, float64."""
        ref = self.comp_ref(comp)
        key = ("raw", channel, ref)
        if key not in self._values:
            out = self._comp_output(ref, channel)
            if out is None:
                v = self.linear(self.index(channel))
            else:
                v = self._comp_values(ref, [out], None)[out]
            self._values[key] = v
        return self._values[key]

    def raw_at(
        self, channel: str, comp: str | None, idx: np.ndarray | None, subset: str | None
    ) -> np.ndarray:
        """:meth:`raw_value` at the events ``idx`` (all events when ``None``).

        With ``subset`` (the name of the population whose rows ``idx`` are), the values are
        computed straight from the event block at those rows, every channel the subset's
        children gate on in one pass (compensated ones only for the outputs used), and cached
        for the siblings; the values are bit-identical to ``raw_value(...)[idx]``.
        """
        if idx is None:
            return self.raw_value(channel, comp)
        ref = self.comp_ref(comp)
        if subset is None:
            return self.raw_value(channel, comp)[idx]
        key = ("raw", channel, ref, "at", subset)
        if key not in self._values:
            full = self._values.get(("raw", channel, ref))
            if full is not None:
                self._values[key] = full[idx]
            else:
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
            if ("raw", d.channel, ref) in self._values:
                return None
            try:
                if self._comp_output(ref, d.channel) is not None:
                    return None
                i = self.index(d.channel)
            except CytophenError:
                return None
            if self._factors[i][0] != "none" or i in self._linear:
                return None
            views.append(ev[:, i])
        return views

    def _gather_subset(self, ref: str, idx: np.ndarray, subset: str) -> None:
        """Compute, at the rows ``idx`` of population ``subset``, the values (compensated as
        ``ref`` says) of every channel its child gates use: the compensated outputs in one pass
        over the block, the uncompensated linear channels in another."""
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        names: dict[str, int] = {}
        comp: dict[str, str] = {}
        for p in self.template.populations:
            if p.parent != subset:
                continue
            for d in getattr(p.gate, "dims", ()):
                if self.comp_ref(d.compensation) != ref:
                    continue
                chans = (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                for name in chans:
                    try:
                        out = self._comp_output(ref, name)
                        i = self.index(name) if out is None else -1
                    except CytophenError:  # reported where the value is needed
                        continue
                    if out is not None:
                        comp[name] = out
                        continue
                    # log amplification: np.power on a subset could round differently; take
                    # the full column's values (one code path), as for compensated channels
                    if self._factors[i][0] == "log":
                        continue
                    names[name] = i
        if comp:
            for name, v in self._comp_at(ref, idx, subset, comp).items():
                self._values[("raw", name, ref, "at", subset)] = v
        if not names or not _convert.gatherable(self.sample.events):
            return
        cols = sorted(set(names.values()))
        block = _convert.rows_as_float64(self.sample.events, idx, cols)
        rows = {i: scale_in_place(block[r], *self._factors[i]) for r, i in enumerate(cols)}
        for name, i in names.items():
            self._values[("raw", name, ref, "at", subset)] = rows[i]

    def _within(self, pop: str, ancestor: str) -> bool:
        """Whether population ``pop`` is ``ancestor`` or below it."""
        if self._parents is None:
            self._parents = {p.name: p.parent for p in self.template.populations}
        while pop is not None:
            if pop == ancestor:
                return True
            pop = self._parents.get(pop)
        return False

    def _comp_at(self, ref: str, idx: np.ndarray, subset: str, wanted: dict[str, str]):
        """Compensated values (``{name: values}`` for ``wanted``: name -> output) at the rows
        ``idx`` of population ``subset``.

        The first population below which compensated channels are gated becomes an anchor:
        every output that its whole subtree gates on is computed once at its rows, and the
        populations below it take their rows from those values instead of reading all the
        detectors again."""
        got: dict[str, np.ndarray] = {}
        for anchor in self._anchors.get(ref, ()):
            if not self._within(subset, anchor["pop"]):
                continue
            take = None
            for name, out in wanted.items():
                if name in got or out not in anchor["values"]:
                    continue
                if anchor["pop"] == subset:
                    got[name] = anchor["values"][out]
                    continue
                if take is None:
                    if anchor["pos"] is None:
                        pos = np.empty(self.sample.n_events, dtype=np.int64)
                        pos[anchor["rows"]] = np.arange(anchor["rows"].shape[0])
                        anchor["pos"] = pos
                    take = anchor["pos"][idx]
                got[name] = anchor["values"][out][take]
        missing = {name: out for name, out in wanted.items() if name not in got}
        if missing:
            outs = set(missing.values())
            for p in self.template.populations:  # everything the subtree below gates on
                if p.parent is None or not self._within(p.parent, subset):
                    continue
                for d in getattr(p.gate, "dims", ()):
                    if self.comp_ref(d.compensation) != ref:
                        continue
                    chans = (
                        (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                    )
                    for name in chans:
                        try:
                            out = self._comp_output(ref, name)
                        except CytophenError:
                            continue
                        if out is not None:
                            outs.add(out)
            values = self._comp_values(ref, sorted(outs), idx)
            self._anchors.setdefault(ref, []).append(
                {"pop": subset, "rows": idx, "values": values, "pos": None}
            )
            got.update({name: values[out] for name, out in missing.items()})
        return got

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


#: How a detector's stored value becomes linear (:meth:`Sample.scale_factors` kinds).
_SCALE_MODE = {
    "none": _comp_kernel.SCALE_NONE,
    "gain": _comp_kernel.SCALE_DIVIDE,
    "time": _comp_kernel.SCALE_MULTIPLY,
}


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
    placed_by: dict[str, Gate] = {}  # the geometry each population's gate placed (for ref gates)

    def not_measured(name: str, why: str) -> None:
        members[name] = np.zeros(n, dtype=np.bool_)
        measured[name] = False
        notes[name] = f"not measured: {why}"

    for pop in template.populations:
        ts = time.perf_counter()
        parent_mask = members[pop.parent] if pop.parent is not None else np.ones(n, dtype=np.bool_)
        if pop.parent is not None and not measured[pop.parent]:
            not_measured(pop.name, f"parent {pop.parent!r} not measured")
            continue
        g = pop.gate
        missing = ctx.missing_optional(getattr(g, "dims", ()))
        if missing:
            not_measured(pop.name, f"optional marker(s) {', '.join(missing)} absent from the file")
            continue
        if isinstance(g, BooleanGate):
            bad = [op for op, _ in g.operands if not measured.get(op, False)]
            if bad:
                not_measured(pop.name, f"operand(s) {', '.join(bad)} not measured")
                continue
            m = g.combine(members) & parent_mask
            gates_used[pop.name] = {
                "population": pop.name,
                "geometry": g.geometry(),
                "data_driven": False,
            }
        elif isinstance(g, RefGate):
            bad = [r for r, _ in g.refs if r not in placed_by]
            if bad:
                not_measured(pop.name, f"referenced population(s) {', '.join(bad)} placed no gate")
                continue
            geom_gate = resolve_ref(
                [(r, placed_by[r]) for r, _ in g.refs],
                [d for _, d in g.refs],
                population=pop.name,
            )
            gates_used[pop.name] = _used_ref(pop, g, geom_gate, gates_used)
            placed_by[pop.name] = geom_gate
            m = _members_of(geom_gate, ctx, parent_mask, parent_rows, pop.parent)
        else:
            if isinstance(g, DataDrivenGate):
                key = id(g)
                if key not in fits:
                    gkey = _gate_key(pop, template)
                    if gkey in fitted:
                        fits[key] = fitted[gkey]
                    else:
                        if pop.parent is None:
                            vals = ctx.matrix_of(g.dims)
                        else:  # the parent's rows only, shared with its gates' evaluation
                            idx = parent_rows.get(pop.parent)
                            if idx is None:
                                idx = parent_rows[pop.parent] = np.flatnonzero(parent_mask)
                            vals = ctx.matrix_of(g.dims, idx, pop.parent)
                        try:
                            fits[key] = _fit(g, vals, seed)
                        except CytophenError:
                            raise
                        except Exception as exc:  # an estimator bug must not kill a batch silently
                            raise GateError(pop.name, f"{g.method} failed: {exc}") from exc
                outcome = fits[key]
                placed = outcome.gate
                if placed is None:
                    not_measured(pop.name, f"{g.method} declined: {outcome.reason}")
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
            placed_by[pop.name] = geom_gate
            m = _members_of(geom_gate, ctx, parent_mask, parent_rows, pop.parent)
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


def _members_of(
    gate_: Gate,
    ctx: GateContext,
    parent_mask: np.ndarray,
    parent_rows: dict[str, np.ndarray],
    parent: str | None,
) -> np.ndarray:
    """Membership over all events of ``gate_`` applied within ``parent_mask``."""
    if parent_mask.all():
        return np.asarray(_evaluate(gate_, ctx), dtype=np.bool_)
    if (every := _evaluate_every_event(gate_, ctx, parent_mask)) is not None:
        return every & parent_mask
    m = np.zeros(parent_mask.shape[0], dtype=np.bool_)  # values (transforms) of the parent only
    idx = parent_rows.get(parent)
    if idx is None:  # siblings (e.g. quadrant children) share their parent's rows
        idx = parent_rows[parent] = np.flatnonzero(parent_mask)
    m[idx] = _evaluate(gate_, ctx, idx, parent)
    return m


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


def _used(
    pop: Population, placed: Gate | None, spec: DataDrivenGate | None, outcome: FitOutcome | None
):
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


def _used_ref(pop: Population, spec: RefGate, placed: Gate, used: dict[str, dict]) -> dict:
    """The gates.json entry of a ref gate: the geometry it applied (drawn and frozen like any
    other), the populations it came from, and whether any of them was data-driven or fell back."""
    sources = [used.get(r, {}) for r, _ in spec.refs]
    return {
        "population": pop.name,
        "quadrant": None,
        "geometry": placed.geometry(),
        "dims": [d.label for d in placed.dims],
        "data_driven": False,
        "ref": spec.geometry()["refs"],
        "ref_data_driven": any(
            bool(e.get("data_driven") or e.get("ref_data_driven")) for e in sources
        ),
        "fell_back": any(bool(e.get("fell_back")) for e in sources),
        "reason": "; ".join(
            f"{r}: {e['reason']}" for (r, _), e in zip(spec.refs, sources) if e.get("fell_back")
        )
        or None,
    }


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
    """The tidy population table, built column by column (one DataFrame per sample is made in
    every batch: a list of row dicts costs several times more)."""
    n = sample.n_events
    pops = template.populations
    counts = {k: int(np.count_nonzero(v)) for k, v in members.items()}
    short_hash = template.short_hash  # hashing the template is not free: once per table
    nan = float("nan")
    count, parent_count, pct_parent, pct_total = [], [], [], []
    extra: dict[str, list[float]] = {}  # percent_of_<ancestor> and statistics, first-seen order
    base = {"percent_of_parent": pct_parent, "percent_of_total": pct_total}
    for row, pop in enumerate(pops):
        ok = measured[pop.name]
        pc = n if pop.parent is None else counts[pop.parent]
        parent_ok = pop.parent is None or measured[pop.parent]
        c = counts[pop.name]
        count.append(c if ok else pd.NA)
        parent_count.append(pc if parent_ok else pd.NA)
        pct_parent.append((100.0 * c / pc if pc else nan) if ok else nan)
        pct_total.append((100.0 * c / n if n else nan) if ok else nan)
        values: dict[str, float] = {}
        for anc in pop.report.percent_of:
            ac = counts.get(anc, 0)
            values[f"percent_of_{anc}"] = 100.0 * c / ac if ok and measured.get(anc) and ac else nan
        for stat, marker in pop.report.statistics:
            col = f"{stat}_{marker}"
            if not ok or c == 0:
                values[col] = nan
                continue
            try:
                vals = ctx.raw_value(marker, None)
            except MarkerError:
                values[col] = nan
                continue
            values[col] = _statistic(vals[members[pop.name]], stat)
        for col, v in values.items():
            if col in base:  # e.g. a population named 'parent': its value wins, as in a row dict
                base[col][row] = v
                continue
            if col not in extra:
                extra[col] = [nan] * row
            extra[col].append(v)
        for vs in extra.values():
            if len(vs) == row:
                vs.append(nan)
    k = len(pops)
    data: dict[str, Any] = {
        "sample": [sample_id or sample.id] * k,
        "file": [str(sample.path) if sample.path is not None else ""] * k,
        "population": [p.name for p in pops],
        "parent": [p.parent if p.parent is not None else "root" for p in pops],
        "path": [template.path(p.name) for p in pops],
        "count": pd.array(count, dtype="Int64"),
        "parent_count": pd.array(parent_count, dtype="Int64"),
        "percent_of_parent": np.array(pct_parent, dtype=np.float64),
        "percent_of_total": np.array(pct_total, dtype=np.float64),
    }
    for col, vs in extra.items():
        data[col] = np.array(vs, dtype=np.float64)
    data["measured"] = np.array([bool(measured[p.name]) for p in pops], dtype=bool)
    data["note"] = [notes.get(p.name, "") for p in pops]
    data["template"] = [template.name] * k
    data["template_version"] = [template.version] * k
    data["template_hash"] = [short_hash] * k
    return pd.DataFrame(data)
