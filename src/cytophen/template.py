"""The Template: a gating strategy as data, whatever file format it came from.

YAML (:mod:`cytophen.interop.yaml_template`), GatingML 2.0 (:mod:`cytophen.interop.gatingml`) and
FlowJo workspaces (:mod:`cytophen.interop.flowjo`) all load into this one object, and
:func:`cytophen.gate` applies it to a :class:`~cytophen.io.sample.Sample`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cytophen._plain import plain
from cytophen.errors import GateError, TemplateError, TemplateProblem
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    FitOutcome,
    Gate,
    QuadrantGate,
    RatioDim,
    RefGate,
    gate_from_geometry,
)
from cytophen.transforms import Transform

__all__ = ["Marker", "Report", "Population", "Template", "STATISTICS"]

#: Fluorescence statistics a template may request (computed on compensated, untransformed values).
STATISTICS = ("median", "mean", "geometric_mean", "robust_cv", "cv", "sd")


@dataclass(frozen=True)
class Marker:
    """One entry of a template's panel.

    ``transform`` is the scale gates on this marker use by default (and plots draw);
    ``optional`` markers may be absent from a file (dependent populations are then "not measured").
    """

    name: str
    aliases: tuple[str, ...] = ()
    transform: Transform | None = None
    optional: bool = False


@dataclass(frozen=True)
class Report:
    """What to report for a population beyond count / percent of parent / percent of total."""

    percent_of: tuple[str, ...] = ()
    statistics: tuple[tuple[str, str], ...] = ()  # (statistic, marker)


@dataclass(frozen=True)
class Population:
    """A node of the gate tree: ``gate`` applied within ``parent`` (``None`` = all events).

    ``cleanup`` marks a clean-up step (scatter, singlets, viability, dump channel): on a file that
    lacks a channel its gate uses, the step is skipped (the file was exported after it) instead of
    failing or going unmeasured. ``hidden`` marks a helper population: gated as usual, left out of
    tables, plots and the report unless asked for.
    """

    name: str
    parent: str | None
    gate: Gate
    quadrant: str | None = None
    report: Report = field(default_factory=Report)
    description: str = ""
    cleanup: bool = False
    hidden: bool = False


@dataclass(frozen=True)
class Template:
    """A gating strategy.

    A template does not change once made (its attributes cannot be set; build a new one with
    :func:`dataclasses.replace`), so its :attr:`hash` is computed once and kept.

    Attributes
    ----------
    name, version
        Identify the strategy; both go into every result with :attr:`hash`.
    populations
        Gate tree in an order where every parent (and boolean operand) comes first.
    markers
        The panel by marker name (aliases, default transform, optional).
    compensation
        Default compensation for dimensions that do not say: ``'FCS'`` (file keyword if present),
        ``'keyword'`` (file keyword, required), ``'uncompensated'``, or a key of ``matrices``.
    matrices
        Named spillover matrices (DataFrame: index = output names, columns = detector names).
    """

    name: str
    populations: list[Population]
    version: str = "1"
    markers: dict[str, Marker] = field(default_factory=dict)
    compensation: str = "FCS"
    matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    description: str = ""
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- structure -------------------------------------------------------------------------
    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.populations]

    def children(self, name: str | None) -> list[Population]:
        return [p for p in self.populations if p.parent == name]

    def ancestors(self, name: str) -> list[str]:
        """Names from the root down to the parent of ``name``."""
        chain = []
        p = self.population(name).parent
        while p is not None:
            chain.append(p)
            p = self.population(p).parent
        return chain[::-1]

    def path(self, name: str) -> str:
        return "/" + "/".join([*self.ancestors(name), name])

    def gate_key(self, name: str) -> str:
        """Key of population ``name``'s gate in ``fitted=`` mappings and gates.json: the
        population's name, or for a gate shared by quadrant children, the name of the first
        population using it."""
        gate_ = self.population(name).gate
        for p in self.populations:
            if p.gate is gate_:
                return p.name
        return name  # pragma: no cover - the population itself uses it

    def validate(self) -> None:
        """Check names, parents, boolean operands and order; raise :class:`TemplateError`."""
        src = self.source or "<template>"
        problems: list[TemplateProblem] = []
        seen: set[str] = set()
        for p in self.populations:
            if p.name in seen:
                problems.append(
                    TemplateProblem(src, None, None, f"duplicate population {p.name!r}")
                )
            if p.parent is not None and p.parent not in seen:
                known = p.parent in {q.name for q in self.populations}
                msg = (
                    f"population {p.name!r} comes before its parent {p.parent!r}"
                    if known
                    else f"population {p.name!r} has unknown parent {p.parent!r}"
                )
                problems.append(TemplateProblem(src, None, None, msg))
            if isinstance(p.gate, BooleanGate):
                for op, _ in p.gate.operands:
                    if op not in seen:
                        problems.append(
                            TemplateProblem(
                                src,
                                None,
                                None,
                                f"boolean {p.name!r} refers to unknown or later population {op!r}",
                            )
                        )
            if isinstance(p.gate, RefGate):
                for ref, _ in p.gate.refs:
                    if ref not in seen:
                        problems.append(
                            TemplateProblem(
                                src,
                                None,
                                None,
                                f"ref gate {p.name!r} refers to unknown or later population {ref!r}",
                            )
                        )
                    elif isinstance(self.population(ref).gate, BooleanGate):
                        problems.append(
                            TemplateProblem(
                                src,
                                None,
                                None,
                                f"ref gate {p.name!r} refers to {ref!r}, a boolean population, which places no gate of its own",
                            )
                        )
            src_pop = p.gate.fallback_from if isinstance(p.gate, DataDrivenGate) else None
            if src_pop is not None and (
                src_pop not in seen or isinstance(self.population(src_pop).gate, BooleanGate)
            ):
                problems.append(
                    TemplateProblem(
                        src,
                        None,
                        None,
                        f"fallback_from of {p.name!r} must name an earlier population with a "
                        f"gate of its own, got {src_pop!r}",
                    )
                )
            if isinstance(p.gate, QuadrantGate) or (
                isinstance(p.gate, DataDrivenGate) and p.quadrant is not None
            ):
                if p.quadrant is None:
                    problems.append(
                        TemplateProblem(
                            src,
                            None,
                            None,
                            f"population {p.name!r} uses a quadrant gate but names no quadrant",
                        )
                    )
            seen.add(p.name)
        if problems:
            raise TemplateError(problems)

    # -- identity --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A canonical, JSON-serialisable description (the basis of :attr:`hash`)."""

        def dim(d):
            return d.to_dict() if isinstance(d, (Dim, RatioDim)) else str(d)

        pops = []
        for p in self.populations:
            g = p.gate
            entry = {
                "name": p.name,
                "parent": p.parent,
                "quadrant": p.quadrant,
                "gate": plain(g.geometry()),
                "dims": [dim(d) for d in getattr(g, "dims", ())],
                "percent_of": list(p.report.percent_of),
                "statistics": [list(s) for s in p.report.statistics],
            }
            if isinstance(g, DataDrivenGate):
                entry["pool"] = g.pool
                if g.guide:
                    entry["guide"] = [dim(d) for d in g.guide]
            if p.cleanup:  # only when set: templates without the flags keep their hashes
                entry["cleanup"] = True
            if p.hidden:
                entry["hidden"] = True
            pops.append(entry)
        return {
            "name": self.name,
            "version": self.version,
            "compensation": self.compensation,
            "matrices": {
                k: {
                    "index": list(m.index),
                    "columns": list(m.columns),
                    "values": m.to_numpy().tolist(),
                }
                for k, m in self.matrices.items()
            },
            "markers": {
                k: {
                    "aliases": list(m.aliases),
                    "optional": m.optional,
                    "transform": None if m.transform is None else m.transform.to_dict(),
                }
                for k, m in self.markers.items()
                if _marker_informative(m, self.populations)
            },
            "populations": pops,
        }

    @functools.cached_property
    def hash(self) -> str:
        """SHA-256 of the canonical description: same gating → same hash, whatever the file format."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def freeze(self, fits, *, name: str | None = None, partial: bool = False) -> Template:
        """This template with every data-driven gate replaced by the fixed gate it placed.

        Parameters
        ----------
        fits
            A :class:`~cytophen.result.GatingResult` (its ``gates``: what each gate placed on
            that sample), a result's ``gates`` mapping (``{population: gates.json entry}``), or a
            ``{gate_key: FitOutcome}`` mapping (e.g. from :func:`cytophen.engine.fit_pooled`).
        name
            Name of the frozen template (default ``<name>-frozen``).
        partial
            With a result: leave out the populations not measured on that sample (a marker the
            file lacks, a gate that declined), and everything below them, instead of raising;
            they are listed in ``meta['frozen_from']['not_measured']``.

        Clean-up steps the result skipped (the file was exported after them) are left out and their
        children hang from the step's parent (the same events); they are listed in
        ``meta['frozen_from']['skipped']``; so are the population a result was ``pregated`` at
        and its ancestors (the file holds only its events). A file whose own spillover the engine did not apply
        (a compensated or already transformed export) gets ``compensation: uncompensated``. A
        template with ``auto`` transforms frozen from a result gets the transforms that sample
        was gated with (the gates' units), so it exports to GatingML and FlowJo; frozen from a
        mapping of fits it keeps ``auto`` (resolved again on every file it gates).

        Returns
        -------
        Template
            Same tree, panel, compensation and reports, with fixed gates only (quadrant children
            keep sharing one gate). ``meta['frozen_from']`` records where the gates came from:
            ``{"template", "version", "hash", "samples"}`` (the original template's name, version
            and full hash, and the samples the gates were fitted on, when known). Export with
            :meth:`to_yaml` or :meth:`to_gatingml`.

        Raises
        ------
        GateError
            A data-driven gate that placed nothing (declined, not measured) or is missing from
            ``fits``: there is no gate to freeze (with a result, ``partial=True`` leaves it out).

        Examples
        --------
        >>> res = cytophen.gate(sample, template)            # doctest: +SKIP
        >>> template.freeze(res).to_gatingml("frozen.xml")   # doctest: +SKIP
        """
        samples: list[str] = []
        notes: dict[str, str] = {}
        source: Template = self
        skipped: dict[str, str] = {}
        dropped: dict[str, str] = {}
        compensation = self.compensation
        if hasattr(fits, "gates") and hasattr(fits, "sample_id"):  # a GatingResult
            samples.append(str(fits.sample_id))
            spill = str((getattr(fits, "scale", None) or {}).get("file_spillover") or "")
            if spill.startswith("not applied") and compensation == "FCS":
                compensation = "uncompensated"  # as gated: the export was compensated already
            notes = dict(fits.notes)
            skipped = dict(getattr(fits, "skipped", None) or {})
            # gated as pregated: that population and its ancestors hold every event of the file
            skipped.update({n: v for n, v in notes.items() if v.startswith("pregated")})
            if partial:
                dropped = {n: v for n, v in notes.items() if v.startswith("not measured")}
            resolved = getattr(fits, "template", None)
            if isinstance(resolved, Template) and resolved.names == self.names:
                # 'auto' transforms as resolved on that sample: the gates' units
                source = resolved
            fits = fits.gates
        # a skipped step holds its parent's events: what hung from it hangs from that parent
        stand_in: dict[str, str | None] = {}
        for p in source.populations:
            if p.name in skipped:
                stand_in[p.name] = stand_in.get(p.parent, p.parent) if p.parent else None

        def kept(n: str | None) -> str | None:
            return stand_in.get(n, n) if n is not None else None

        fixed: dict[int, Gate] = {}
        pops = []
        for p in source.populations:
            if p.name in skipped or p.name in dropped:
                continue
            g = p.gate
            if isinstance(g, DataDrivenGate):
                if id(g) not in fixed:
                    fixed[id(g)] = self._frozen_gate(p, fits, samples, notes.get(p.name))
                g = fixed[id(g)]
            elif isinstance(g, BooleanGate) and any(n in stand_in for n, _ in g.operands):
                if any(n in stand_in and kept(n) is None for n, _ in g.operands):
                    raise GateError(
                        p.name,
                        "a boolean operand was skipped on this file and held every event; a "
                        "frozen boolean cannot name all events",
                    )
                g = BooleanGate(g.op, [(kept(n), c) for n, c in g.operands])
            report = p.report
            if any(n in skipped or n in dropped for n in report.percent_of):
                report = Report(
                    tuple(n for n in report.percent_of if n not in skipped and n not in dropped),
                    report.statistics,
                )
            pops.append(
                Population(
                    p.name,
                    kept(p.parent),
                    g,
                    p.quadrant,
                    report,
                    p.description,
                    p.cleanup,
                    p.hidden,
                )  # fmt: skip
            )
        frozen_from = {
            "template": self.name,
            "version": self.version,
            "hash": self.hash,
            "samples": list(dict.fromkeys(samples)),
        }
        if skipped:
            frozen_from["skipped"] = skipped
        if dropped:
            frozen_from["not_measured"] = dropped
        return Template(
            name=name or f"{self.name}-frozen",
            populations=pops,
            version=self.version,
            markers=dict(source.markers),
            compensation=compensation,
            matrices=dict(self.matrices),
            description=self.description,
            source=self.source,
            meta={**self.meta, "frozen_from": frozen_from},
        )

    def _frozen_gate(self, pop: Population, fits, samples: list[str], note: str | None) -> Gate:
        """The fixed gate ``fits`` holds for data-driven population ``pop`` (see :meth:`freeze`)."""
        key = self.gate_key(pop.name)
        entry = fits.get(key)
        if entry is None and key != pop.name:
            entry = fits.get(pop.name)
        if entry is None:
            why = note or "missing from the fits given"
            hint = "; freeze(result, partial=True) leaves it out" if note else ""
            raise GateError(pop.name, f"no fitted gate to freeze ({why}){hint}")
        if isinstance(entry, FitOutcome):
            if entry.gate is None:
                raise GateError(pop.name, f"no fitted gate to freeze (declined: {entry.reason})")
            samples.extend(str(s) for s in entry.details.get("pooled_samples", ()))
            return entry.gate
        geometry = entry.get("geometry")
        if geometry is None:
            why = entry.get("reason") or "declined or not measured"
            hint = "; freeze(result, partial=True) leaves it out" if note else ""
            raise GateError(pop.name, f"no fitted gate to freeze ({why}){hint}")
        return gate_from_geometry(geometry, pop.gate.dims, population=pop.name)

    def marker_for(self, channel: str) -> Marker | None:
        return self.markers.get(channel)

    def to_yaml(self, path: str | Path) -> None:
        """Write as a cytophen YAML template (see docs/templates.md)."""
        from cytophen.interop.yaml_template import dump_template

        dump_template(self, path)

    def to_gatingml(self, path: str | Path) -> None:
        """Write as GatingML 2.0 XML where every gate is expressible there."""
        from cytophen.interop.gatingml import export_gatingml

        export_gatingml(self, path)

    def __repr__(self) -> str:
        return f"Template({self.name!r}, version={self.version!r}, populations={len(self.populations)})"


def _marker_informative(m: Marker, populations: list[Population]) -> bool:
    """Whether a panel entry says more than the gates already do (aliases, optional, or a default
    transform no gate on that marker uses): only those enter the canonical description, so a
    template converted between formats (e.g. GatingML -> YAML, which lists every gated marker in
    its panel) keeps its hash."""
    if m.aliases or m.optional:
        return True
    if m.transform is None:
        return False
    mine = m.transform.to_dict()
    return not any(
        isinstance(d, Dim)
        and d.channel == m.name
        and d.transform is not None
        and d.transform.to_dict() == mine
        for p in populations
        for d in getattr(p.gate, "dims", ())
    )
