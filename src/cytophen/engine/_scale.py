"""A template's ``auto`` transforms made concrete for one sample (see :mod:`cytophen.scaling`).

The evaluator gates with a copy of the template in which every dimension (and panel entry) whose
transform is ``auto`` carries the transform this file needs. Everything downstream — fitting,
membership, gates.json, plots, FlowJo and GatingML export — then sees ordinary transforms; the
result keeps the original template's hash.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from cytophen.engine._context import GateContext
from cytophen.gates import Dim
from cytophen.scaling import ScaleInfo, detect_scale, is_scatter, resolve_auto
from cytophen.template import Template
from cytophen.transforms import AutoTransform, Transform

__all__ = ["uses_auto", "resolve_scales", "with_transforms", "precompensated", "detect_scale"]

#: Rows a channel's logicle width is estimated on (an even stride through the file).
_WIDTH_ROWS = 50_000
_COMP_PREFIX = re.compile(r"^(fj)?comp[-_ ]", re.IGNORECASE)


def uses_auto(template: Template) -> bool:
    """Whether any panel entry or gate dimension of ``template`` has an ``auto`` transform."""
    if any(isinstance(m.transform, AutoTransform) for m in template.markers.values()):
        return True
    return any(
        isinstance(getattr(d, "transform", None), AutoTransform)
        for p in template.populations
        for d in (*getattr(p.gate, "dims", ()), *getattr(p.gate, "guide", ()))
    )


def precompensated(sample, info: ScaleInfo) -> str | None:
    """Why the file's own spillover keyword must not be applied, or ``None``: its fluorescence
    channels are named as FlowJo names compensated exports (``Comp-``/``FJComp-``), or its values
    are already transformed (compensation was done before that)."""
    fl = [c for c in sample.channels if not is_scatter(c) and c.lower() != "time"]
    if fl and all(_COMP_PREFIX.match(c) for c in fl):
        return "the channels are named Comp-/FJComp- (a compensated export)"
    if info.scale != "linear":
        return f"the values are already transformed ({info.scale} scale): compensated before export"
    return None


def resolve_scales(
    template: Template, ctx: GateContext, info: ScaleInfo
) -> tuple[Template, dict[str, dict[str, Any]]]:
    """``template`` with its ``auto`` transforms resolved for ``ctx``'s sample, and the transform
    each marker got (``{marker: transform.to_dict()}``, for the result's provenance)."""
    resolved: dict[tuple[str, str | None], Transform] = {}

    def transform_of(d: Dim, t: AutoTransform) -> Transform | None:
        key = (d.channel, d.compensation)
        if key not in resolved:
            if ctx.absent([d]):
                return None  # never evaluated on this file: the population goes unmeasured
            i = ctx.index(d.channel)
            resolved[key] = resolve_auto(t, ctx.sample, i, _width_values(ctx, d), info)
        return resolved[key]

    out = _substitute(template, transform_of)
    return out, {ch: t.to_dict() for (ch, _), t in resolved.items()}


def with_transforms(template: Template, transforms: dict[str, dict[str, Any]]) -> Template:
    """``template`` with its ``auto`` transforms replaced by those a sample was gated with, as a
    result records them (``result.scale['transforms']``, run.json's ``inputs[].scale``:
    ``{marker: transform dict}``); markers not in ``transforms`` keep ``auto``."""
    from cytophen.transforms import transform_from_dict

    made = {name: transform_from_dict(t) for name, t in transforms.items()}
    return _substitute(template, lambda d, _t: made.get(d.channel))


def _substitute(template: Template, transform_of) -> Template:
    """``template`` with every ``auto`` dimension given ``transform_of(dim, auto)`` (``None``:
    left as it is)."""

    def concrete(d):
        t = getattr(d, "transform", None)
        if not isinstance(d, Dim) or not isinstance(t, AutoTransform):
            return d
        new = transform_of(d, t)
        return d if new is None else dataclasses.replace(d, transform=new)

    gates: dict[int, Any] = {}

    def regate(g):
        if id(g) not in gates:
            names = {f.name for f in dataclasses.fields(g)} if dataclasses.is_dataclass(g) else ()
            dims = getattr(g, "dims", None)
            if "dims" not in names or not any(
                isinstance(getattr(d, "transform", None), AutoTransform)
                for d in (*dims, *getattr(g, "guide", ()))
            ):
                gates[id(g)] = g
            else:
                changes: dict[str, Any] = {"dims": tuple(concrete(d) for d in dims)}
                if getattr(g, "guide", ()):
                    changes["guide"] = tuple(concrete(d) for d in g.guide)
                gates[id(g)] = dataclasses.replace(g, **changes)
        return gates[id(g)]

    pops = [dataclasses.replace(p, gate=regate(p.gate)) for p in template.populations]
    markers = {}
    for name, m in template.markers.items():
        if isinstance(m.transform, AutoTransform):
            d = concrete(Dim(name, transform=m.transform))
            m = dataclasses.replace(m, transform=d.transform)
        markers[name] = m
    return dataclasses.replace(template, populations=pops, markers=markers)


def _width_values(ctx: GateContext, d: Dim) -> np.ndarray:
    """The linear values (compensated as ``d`` says) a logicle width is estimated from: an even
    stride of at most 50 000 rows."""
    n = ctx.sample.n_events
    if n <= _WIDTH_ROWS:
        return ctx.raw_value(d.channel, d.compensation)
    rows = np.arange(0, n, int(np.ceil(n / _WIDTH_ROWS)))
    return ctx.raw_at(d.channel, d.compensation, rows, None)
