"""The gate-tree evaluator: one walk of a template over one sample, and every rule of it.

:class:`TreeEvaluator` owns what happens to each population: pregated (the file was exported
after that gate), outside the pregated population, parent not measured, marker absent (a clean-up
step is then skipped, an optional marker makes the population not measured, a required one fails
the sample), boolean operands, ref gates, quadrant children, declined and fell-back fits, and the
gates.json entry. Where a data-driven gate must be placed it calls one hook,
``place(population, gate, values) -> FitOutcome``. :func:`gate` is one evaluator with the hook
:func:`fit_on_sample`; pooled fitting (:mod:`cytophen.engine._pooled`) drives one evaluator per
sample, population by population, and gives every one the gate fitted on the pool.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cytophen.engine._context import GateContext
from cytophen.engine._scale import detect_scale, precompensated, resolve_scales, uses_auto
from cytophen.engine._table import population_table
from cytophen.errors import CytophenError, GateError, MarkerError, TemplateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    FitOutcome,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
    RefGate,
    gate_from_geometry,
    resolve_ref,
)
from cytophen.io.sample import Sample
from cytophen.markers import describe_channels
from cytophen.result import GatingResult
from cytophen.template import Population, Template

__all__ = [
    "TreeEvaluator",
    "PlaceHook",
    "fit_on_sample",
    "place_with",
    "gate",
    "pregated_roles",
    "check_population",
]

#: ``place(population, gate, values) -> FitOutcome``: where a data-driven gate goes on a sample.
#: ``values()`` returns the ``(n_parent, d)`` float64 values of the gate's dimensions at the
#: parent's events (computed only when called: a pre-fitted gate costs nothing).
PlaceHook = Callable[[Population, DataDrivenGate, Callable[[], np.ndarray]], FitOutcome]


class TreeEvaluator:
    """Evaluates a template's populations over one sample, in tree order.

    Parameters
    ----------
    sample, template
        What to gate, and with what.
    compensation
        Override of the template's compensation (as :func:`gate`).
    pregated
        A population the file was exported after (it holds only that population's events), or
        ``None``.
    scale
        What scale the file's values are on, for the template's ``auto`` transforms:
        ``'auto'`` (detected), ``'linear'``, ``'logicle'`` or ``'channel'``
        (:mod:`cytophen.scaling`).

    Attributes
    ----------
    members, measured, notes
        Per population evaluated so far: membership over all events, whether it was measured,
        and the note of the table (not measured / skipped / pregated / fell back).
    gates
        The gates.json entries: per population, the geometry it used and how it was placed.
    skipped
        Clean-up populations skipped on this file, with their note.

    Notes
    -----
    Call :meth:`evaluate` for every population in ``template.populations`` order (parents first)
    and then :meth:`check_markers` (or :meth:`run`, which does both), then :meth:`result`.
    :meth:`pending` and :meth:`parent_values` let a driver collect the parent events of a
    data-driven gate from several samples before placing it (pooled fitting).
    """

    def __init__(
        self,
        sample: Sample,
        template: Template,
        *,
        compensation: str | pd.DataFrame | None = None,
        pregated: str | None = None,
        scale: str = "auto",
    ):
        self.sample = sample
        self.template = template
        self.template_hash = template.hash
        self.pregated = pregated
        self.ctx = GateContext(sample, template, compensation)
        self.scale: dict[str, Any] | None = None
        if uses_auto(template) or scale != "auto":
            info = detect_scale(sample, scale)
            self.ctx.skip_file_spillover = precompensated(sample, info)
            self.template, transforms = resolve_scales(template, self.ctx, info)
            self.ctx.template = self.template
            self.scale = {
                **info.to_dict(),
                "file_spillover": "not applied: " + self.ctx.skip_file_spillover
                if self.ctx.skip_file_spillover
                else ("applied" if sample.spillover is not None else "none in the file"),
                "transforms": transforms,
            }
        self.n = sample.n_events
        self.members: dict[str, np.ndarray] = {}
        self.measured: dict[str, bool] = {}
        self.notes: dict[str, str] = {}
        self.gates: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._roles = pregated_roles(template, pregated)
        if pregated is not None:  # its children are the first populations gated, on every event
            self.ctx.whole = {pregated}
        self._outcomes: dict[int, FitOutcome] = {}  # by gate (quadrant children share one)
        self._rows: dict[str, np.ndarray] = {}  # a population's event indices, for its children
        self._placed: dict[str, Gate] = {}  # the geometry each population applied (ref gates)
        self._lacking: dict[str, list[str]] = {}  # required marker absent -> populations
        self._failed: set[str] = set()  # populations lacking them, and their descendants
        self._everything: np.ndarray | None = None

    # -- the walk ----------------------------------------------------------------------------
    def run(self, place: PlaceHook) -> None:
        """Evaluate every population, then :meth:`check_markers`."""
        for pop in self.template.populations:
            self.evaluate(pop, place)
        self.check_markers()

    def evaluate(self, pop: Population, place: PlaceHook) -> None:
        """Evaluate ``pop`` (its parent and operands already evaluated); a data-driven gate not
        placed yet on this sample is placed by ``place``."""
        ts = time.perf_counter()
        verdict = self._verdict(pop)
        if verdict is not None:
            self._settle(pop, *verdict)
            return
        g = pop.gate
        parent_mask = self._parent_mask(pop)
        if isinstance(g, BooleanGate):
            m = g.combine(self.members) & parent_mask
            self.gates[pop.name] = {
                "population": pop.name,
                "geometry": g.geometry(),
                "data_driven": False,
            }
        elif isinstance(g, RefGate):
            geom = resolve_ref(
                [(r, self._placed[r]) for r, _ in g.refs],
                [d for _, d in g.refs],
                population=pop.name,
            )
            self.gates[pop.name] = used = _used_ref(pop, g, geom, self.gates)
            if used["fell_back"]:  # the table says so, as for the gate it copies
                self.notes[pop.name] = f"ref fell back: {used['reason']}"
            self._placed[pop.name] = geom
            m = self._members(geom, pop, parent_mask)
        else:
            if isinstance(g, DataDrivenGate):
                outcome = self._outcomes.get(id(g))
                if outcome is None:
                    outcome = place_with(place, pop, g, lambda: self.parent_values(pop))
                    if g.fallback_from is not None and outcome.fell_back and outcome.gate:
                        outcome = _cuts_from(outcome, g, self._placed.get(g.fallback_from))
                    self._outcomes[id(g)] = outcome
                self.gates[pop.name] = _used(pop, outcome.gate, g, outcome)
                if outcome.gate is None:
                    self._not_measured(pop, f"{g.method} declined: {outcome.reason}")
                    return
                if outcome.fell_back:
                    self.notes[pop.name] = f"{g.method} fell back: {outcome.reason}"
                geom = _on_dims(outcome.gate, g)
            else:
                geom = g
                self.gates[pop.name] = _used(pop, g, None, None)
            if isinstance(geom, QuadrantGate):
                geom = geom.rectangle(pop.quadrant)
            self._placed[pop.name] = geom
            m = self._members(geom, pop, parent_mask)
        self.members[pop.name] = m
        self.measured[pop.name] = True
        self.timings[pop.name] = time.perf_counter() - ts

    def pending(self, pop: Population) -> bool:
        """Whether :meth:`evaluate` would call its hook for ``pop`` now: a data-driven gate not
        placed yet on this sample, on a population that is to be gated."""
        g = pop.gate
        return (
            isinstance(g, DataDrivenGate)
            and id(g) not in self._outcomes
            and self._verdict(pop) is None
        )

    def parent_values(self, pop: Population) -> np.ndarray:
        """``(n_parent, d)`` float64 values of ``pop``'s gate dimensions at its parent's events
        (what a data-driven gate is fitted on), followed by its guide dimensions when the file
        has every one of them."""
        dims = tuple(pop.gate.dims)
        guide = tuple(getattr(pop.gate, "guide", ()))
        if guide and not self.ctx.absent(guide):
            dims = dims + guide
        if pop.parent in self.ctx.whole:
            return self.ctx.matrix_of(dims)
        # the parent's rows only, shared with its gates' evaluation
        return self.ctx.matrix_of(dims, self._parent_rows(pop.parent), pop.parent)

    def check_markers(self) -> None:
        """Raise :class:`MarkerError` naming the file and every required marker it lacks (the
        populations using them were left unmeasured while the walk went on)."""
        if not self._lacking:
            return
        names = list(self._lacking)
        users = list(dict.fromkeys(p for pops in self._lacking.values() for p in pops))
        verb = "is" if len(names) == 1 else "are"
        raise MarkerError(
            self.sample.path,
            names,
            f"{verb} not in the file (gated on by {', '.join(users)})",
            describe_channels(self.sample.channels, self.sample.markers),
            absent=True,
        )

    def result(
        self,
        *,
        sample_id: str | None = None,
        include_hidden: bool = False,
        started: float | None = None,
    ) -> GatingResult:
        """The :class:`~cytophen.result.GatingResult` of the walk (hidden populations left out of
        its table unless ``include_hidden``)."""
        t = self.template
        shown = [p for p in t.populations if include_hidden or not p.hidden]
        template_hash = self.template_hash
        table = population_table(
            self.sample,
            t,
            self.ctx,
            self.members,
            self.measured,
            self.notes,
            sample_id,
            shown,
            template_hash,
        )
        total = time.perf_counter() - started if started is not None else sum(self.timings.values())
        return GatingResult(
            sample_id=sample_id or self.sample.id,
            file=str(self.sample.path) if self.sample.path is not None else "",
            template_name=t.name,
            template_version=t.version,
            template_hash=template_hash,
            n_events=self.n,
            table=table,
            memberships=self.members,
            gates=self.gates,
            notes=self.notes,
            timings={"total": total, **self.timings},
            sample=self.sample,
            template=t,
            skipped=dict(self.skipped),
            hidden=tuple(p.name for p in t.populations if p.hidden and not include_hidden),
            pregated=self.pregated,
            scale=self.scale,
            compensation=self.ctx.override,
        )

    # -- the rules ---------------------------------------------------------------------------
    def _verdict(self, pop: Population) -> tuple[str, Any] | None:
        """Why ``pop`` is not gated here, as ``(what, note)``; ``None`` when it is gated."""
        role = self._roles.get(pop.name)
        if role == "pregated":
            return "pregated", f"pregated: the file holds only {self.pregated} events"
        if role == "outside":
            return "not measured", (
                f"the file holds only {self.pregated} events (exported after that gate)"
            )
        if pop.parent is not None and not self.measured[pop.parent]:
            if pop.parent in self._failed:  # still name the markers its subtree lacks
                return "failed", self._required_absent(pop)
            return "not measured", f"parent {pop.parent!r} not measured"
        g = pop.gate
        absent = self.ctx.absent(self._dims_used(pop))
        if absent:
            if pop.cleanup:
                return "skipped", (
                    f"skipped: {', '.join(absent)} absent from the file "
                    "(taken as exported after this gate)"
                )
            markers = self.template.markers
            optional = [a for a in absent if a in markers and markers[a].optional]
            if optional:
                return "not measured", (
                    f"optional marker(s) {', '.join(optional)} absent from the file"
                )
            return "failed", absent
        if not isinstance(g, (BooleanGate, RefGate)):
            dead = self.ctx.dead_channels(getattr(g, "dims", ()))
            if dead:  # a gate would count 0 % or 100 % of nothing
                return "not measured", f"no finite value in channel(s) {', '.join(dead)}"
        if isinstance(g, BooleanGate):
            bad = [op for op, _ in g.operands if not self.measured.get(op, False)]
            if bad and pop.cleanup:  # e.g. "not plasmablasts" where they cannot be told apart
                return "skipped", f"skipped: {', '.join(bad)} not measured on this file"
            if bad:
                return "not measured", f"operand(s) {', '.join(bad)} not measured"
        elif isinstance(g, RefGate):
            bad = [r for r, _ in g.refs if r not in self._placed]
            if bad:
                return "not measured", f"referenced population(s) {', '.join(bad)} placed no gate"
        return None

    def _settle(self, pop: Population, what: str, why) -> None:
        """Record a population that is not gated on this file (see :meth:`_verdict`)."""
        g = pop.gate
        if what in ("pregated", "skipped"):
            if what == "pregated":
                m = self._all_events()
            else:
                m = self._parent_mask(pop)
                self.skipped[pop.name] = why
                if pop.parent in self._rows:
                    self._rows[pop.name] = self._rows[pop.parent]
            if what == "skipped" and pop.parent in self.ctx.whole:
                self.ctx.whole.add(pop.name)
            self.members[pop.name] = m
            self.measured[pop.name] = True
            self.notes[pop.name] = why
            self.gates[pop.name] = {
                "population": pop.name,
                "quadrant": pop.quadrant,
                "geometry": None,
                "dims": [d.label for d in getattr(g, "dims", ())],
                "data_driven": isinstance(g, DataDrivenGate),
                what: True,
                "reason": why,
            }
            return
        if what == "failed":  # check_markers raises once the walk is over
            for marker in why:
                self._lacking.setdefault(marker, []).append(pop.name)
            self._failed.add(pop.name)
            why = f"marker(s) {', '.join(why)} not in the file" if why else "parent failed"
        self._not_measured(pop, why)

    def _required_absent(self, pop: Population) -> list[str]:
        """The required markers ``pop``'s gate reads that the file lacks (none for a clean-up
        step, which would be skipped)."""
        if pop.cleanup:
            return []
        markers = self.template.markers
        return [
            a
            for a in self.ctx.absent(self._dims_used(pop))
            if not (a in markers and markers[a].optional)
        ]

    def _not_measured(self, pop: Population, why: str) -> None:
        self.members[pop.name] = np.zeros(self.n, dtype=np.bool_)
        self.measured[pop.name] = False
        self.notes[pop.name] = f"not measured: {why}"

    def _dims_used(self, pop: Population) -> tuple:
        """The dimensions ``pop``'s gate reads: its own, or for a ref gate those of the gates it
        takes (the dimensions it keeps of them); none for a boolean gate."""
        g = pop.gate
        if not isinstance(g, RefGate):
            return getattr(g, "dims", ())
        out: list = []
        for ref, labels in g.refs:
            for d in self._dims_used(self.template.population(ref)):
                if (labels is None or d.label in labels) and d not in out:
                    out.append(d)
        return tuple(out)

    # -- memberships -------------------------------------------------------------------------
    def _all_events(self) -> np.ndarray:
        if self._everything is None:
            self._everything = np.ones(self.n, dtype=np.bool_)
        return self._everything

    def _parent_mask(self, pop: Population) -> np.ndarray:
        if pop.parent is None:
            return np.ones(self.n, dtype=np.bool_)
        return self.members[pop.parent]

    def _parent_rows(self, parent: str) -> np.ndarray:
        idx = self._rows.get(parent)
        if idx is None:  # siblings (e.g. quadrant children) share their parent's rows
            idx = self._rows[parent] = np.flatnonzero(self.members[parent])
        return idx

    def _members(self, gate_: Gate, pop: Population, parent_mask: np.ndarray) -> np.ndarray:
        return _members_of(gate_, self.ctx, parent_mask, self._rows, pop.parent)


def _on_dims(placed: Gate | None, spec: DataDrivenGate) -> Gate | None:
    """A placed gate on this sample's own dimensions: a gate fitted on another sample (pooled,
    or frozen and passed as ``fitted``) carries that sample's resolved transforms."""
    dims = getattr(placed, "dims", None)
    if placed is None or dims is None:
        return placed
    mine = tuple(spec.dims)[: len(dims)]
    if all(a is b for a, b in zip(dims, mine)) or [d.label for d in dims] != [
        d.label for d in mine
    ]:
        return placed
    return dataclasses.replace(placed, dims=mine)


def _cut_on(gate: Gate, dim: str) -> float | None:
    """The one cut ``gate`` makes on marker ``dim`` (a range, rectangle or quadrant bounded on
    that marker at a single value), else ``None``."""
    geo = gate.geometry()
    if geo["kind"] not in ("quadrant", "rectangle") or dim not in geo["dims"]:
        return None
    i = geo["dims"].index(dim)
    boxes = geo["quadrants"].values() if geo["kind"] == "quadrant" else [geo]
    values = {b[k][i] for b in boxes for k in ("min", "max") if b[k][i] is not None}
    return float(values.pop()) if len(values) == 1 else None


def _cuts_from(outcome: FitOutcome, g: DataDrivenGate, source: Gate | None) -> FitOutcome:
    """``outcome`` with each cut it placed by a fallback rule replaced by the cut that
    ``g.fallback_from``'s gate makes on the same marker (the template's ``fallback_from``)."""
    name = g.fallback_from
    if source is None:
        note = f"{name} placed no gate here: own fallback kept"
        return dataclasses.replace(outcome, reason=f"{outcome.reason}; {note}")
    geo = outcome.gate.geometry()
    boxes = geo["quadrants"].values() if geo["kind"] == "quadrant" else [geo]
    taken = []
    for axis, old in outcome.details.get("fallen_cuts", []):
        dim = g.dims[axis].label
        new = _cut_on(source, dim)
        if new is None:
            continue
        for b in boxes:
            for k in ("min", "max"):
                if b[k][axis] == old:
                    b[k][axis] = new
        taken.append(f"{dim} cut {new:.4g} from {name}")
    if not taken:
        note = f"{name} has no cut on the marker(s) that fell back: own fallback kept"
        return dataclasses.replace(outcome, reason=f"{outcome.reason}; {note}")
    details = {**outcome.details, "fallback_from": name, "cuts_taken": taken}
    return dataclasses.replace(
        outcome,
        gate=gate_from_geometry(geo, outcome.gate.dims),
        reason=f"{outcome.reason}; {', '.join(taken)}",
        details=details,
    )


def place_with(
    place: PlaceHook, pop: Population, g: DataDrivenGate, values: Callable[[], np.ndarray]
) -> FitOutcome:
    """``place(pop, g, values)``; an estimator bug becomes a :class:`GateError` naming the gate."""
    try:
        return place(pop, g, values)
    except CytophenError:
        raise
    except Exception as exc:  # an estimator bug must not kill a batch silently
        raise GateError(pop.name, f"{g.method} failed: {exc}") from exc


def pregated_roles(template: Template, pregated: str | None) -> dict[str, str]:
    """``{population: 'pregated' | 'outside'}`` for a file exported after gate ``pregated``:
    it and its ancestors are taken as they are ('pregated'); populations neither among them nor
    below it cannot be measured on such a file ('outside'); its descendants are gated as usual.

    Raises
    ------
    TemplateError
        ``pregated`` is not a population of the template.
    """
    if pregated is None:
        return {}
    check_population(template, pregated, "pregated")
    roles = {a: "pregated" for a in (*template.ancestors(pregated), pregated)}
    below = {pregated}
    for p in template.populations:
        if p.parent in below:
            below.add(p.name)
        elif p.name not in roles:
            roles[p.name] = "outside"
    return roles


def check_population(template, name: str, what: str) -> None:
    """Raise :class:`TemplateError` when ``name`` (given as option ``what``) is not a population
    of ``template`` (a Template, or a FlowJo workspace's per-sample templates), listing them."""
    names = list(template.names)
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TemplateError(
        f"{what} {name!r}: no such population{hint}; the template {template.name!r} has: "
        f"{', '.join(names)}"
    )


def fit_on_sample(
    template: Template, fitted: dict[str, FitOutcome] | None = None, *, seed: int = 0
) -> PlaceHook:
    """The engine's hook: a gate whose key (:meth:`Template.gate_key`) is in ``fitted`` is used
    as given; any other is fitted on this sample's parent events
    (:func:`cytophen.datadriven.fit_gate`)."""
    fitted = fitted or {}

    def place(pop: Population, gate_: DataDrivenGate, values) -> FitOutcome:
        if fitted:
            key = template.gate_key(pop.name)
            if key in fitted:
                return fitted[key]
        return _fit_gate(gate_, values(), seed)

    return place


def _fit_gate(gate_: DataDrivenGate, values: np.ndarray, seed: int) -> FitOutcome:
    # the estimators (with scikit-learn and scipy.stats, ~0.7 s to import) load when the first
    # data-driven gate is placed, so that a fixed template starts without them; they never
    # import the engine
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
    pregated: str | None = None,
    include_hidden: bool = False,
    scale: str = "auto",
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
        ``'none'`` (in any case), a spillover DataFrame, or a
        :class:`~cytophen.compensation.Compensation`; the result keeps it
        (``result.compensation``).
    fitted
        Pre-fitted data-driven gates by gate key (pooled fits, frozen studies).
    seed
        Seed for the subsampling of data-driven fits (results are deterministic for a given seed).
    pregated
        The population the file was exported after (it holds only that population's events):
        it and its ancestors are not gated (each is measured with every event, noted
        ``pregated``), its descendants are gated as usual, and the other populations are not
        measured.
    include_hidden
        Also put the template's hidden (helper) populations in ``.table`` (they are always
        gated, and always in ``.membership``).
    scale
        For the template's ``auto`` transforms, what the file's values are: ``'auto'``
        (detected from the values: ``$PnR`` does not say), ``'linear'`` (raw or compensated),
        ``'logicle'`` (already logicle-transformed, 0 to ~4.5) or ``'channel'`` (FlowJo's
        0-4096 channels). See :mod:`cytophen.scaling`; what was used is in ``.scale``.

    Returns
    -------
    GatingResult
        ``.table`` (tidy, one row per population), ``.membership(name)``, ``.gates``,
        ``.skipped`` (clean-up steps skipped on this file).

    Raises
    ------
    MarkerError
        The file lacks required markers (all of them named) or a marker matches two channels.
    TemplateError
        ``pregated`` is not a population of the template.

    Examples
    --------
    >>> s = cytophen.read_fcs("sample.fcs")                      # doctest: +SKIP
    >>> r = cytophen.gate(s, cytophen.load_template("bcell.yaml"))  # doctest: +SKIP
    >>> r.table[["population", "count", "percent_of_parent"]]     # doctest: +SKIP
    """
    t0 = time.perf_counter()
    ev = TreeEvaluator(
        sample, template, compensation=compensation, pregated=pregated, scale=scale
    )
    ev.run(fit_on_sample(template, fitted, seed=seed))
    return ev.result(sample_id=sample_id, include_hidden=include_hidden, started=t0)


# -- membership of one placed gate -------------------------------------------------------------
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


# -- gates.json entries -----------------------------------------------------------------------
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
