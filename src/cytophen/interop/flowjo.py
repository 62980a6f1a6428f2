"""FlowJo 10 workspace (.wsp) import.

The XML is read with FlowKit's workspace parser (:func:`flowkit.parse_wsp`), which already puts each
gate in the space FlowJo draws it in (vertices and bounds mapped through the channel's transform,
FlowJo ellipses turned into 128-vertex polygons, ``Comp-`` prefixes stripped). This module converts
that gate tree into a :class:`~cytophen.template.Template`, so gating runs on cytophen's engine.

Conversion rules
----------------
- Gate tree: the tree of one sample (FlowJo keeps the complete tree, group gates plus the sample's
  custom gates, under each ``SampleNode``). With ``sample=None`` the first sample of ``group`` is used.
- Compensation: FlowJo names compensated channels ``Comp-<detector>``; such a dimension becomes
  ``Dim('<detector>')`` using the template's default compensation, which is the workspace's spillover
  matrix, stored as ``Template.matrices[<matrix name>]`` (index and columns = detector names), with
  ``Template.compensation = <matrix name>``. With ``compensation='keyword'`` the default is the FCS
  file's own spillover keyword instead (useful when one template is applied to files with their own
  acquisition matrices). Channels outside the matrix (scatter, time) are left uncompensated by it;
  a detector gated *without* its ``Comp-`` prefix gets ``compensation='uncompensated'``.
- Transforms per channel: ``linear`` → ``LinearTransform(T=maxRange, A=minRange)``, ``log`` →
  ``FlowJoLogTransform(offset, decades)``, ``fasinh`` → ``AsinhTransform(T, M, A)``, ``logicle`` →
  ``LogicleTransform(T, W, M, A)``, ``biex`` → ``FlowJoBiexTransform(neg, width, pos, max_value)``.
- Gates: polygon, rectangle (FlowJo quadrant gates are stored as four rectangles and stay so),
  ellipse (as FlowKit's polygon), boolean and/or/not. A gate with ``eventsInside="0"`` becomes a helper
  population ``'<name> [inside]'`` plus a ``not`` boolean with the FlowJo name.
- Names: a population is named by its FlowJo gate name when that name is unique in the tree. When the
  same name occurs under different parents, each occurrence is named by the shortest trailing part of
  its gate path that is unique, joined with ``'/'`` (``'CD4+/CD25+'`` and ``'CD8+/CD25+'``). The FlowJo
  name and full path are kept in ``Population.description`` and in
  ``Template.meta['flowjo_paths']`` (population name → ``'root/…'`` path as FlowJo/FlowKit write it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytophen.errors import CytophenError, TemplateError
from cytophen.gates import BooleanGate, Dim, PolygonGate, RectangleGate
from cytophen.interop.gatingml import transform_from_flowkit
from cytophen.template import Population, Template

__all__ = ["load_workspace", "workspace_samples"]


def _parse(path: Path) -> dict[str, Any]:
    import flowkit as fk

    try:
        return fk.parse_wsp(str(path))
    except CytophenError:
        raise
    except Exception as exc:  # lxml / FlowKit errors
        raise TemplateError(
            f"not a readable FlowJo 10 workspace: {type(exc).__name__}: {exc}", file=str(path)
        ) from exc


def workspace_samples(path: str | Path) -> dict[str, list[str]]:
    """Sample names of a FlowJo workspace by group.

    Parameters
    ----------
    path
        The ``.wsp`` file.

    Returns
    -------
    dict
        Group name → list of sample names (``SampleNode`` names, usually the FCS file names).
    """
    p = Path(path)
    if not p.is_file():
        raise TemplateError("file not found (expected a FlowJo 10 .wsp workspace)", file=str(p))
    wsp = _parse(p)
    return {g: list(v["samples"]) for g, v in wsp["groups"].items()}


def _unique_names(paths: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Population names for gate ids ``('root', ..., name)``: the shortest unique trailing path."""
    out: dict[tuple[str, ...], str] = {}
    for gid in paths:
        rel = gid[1:]  # without 'root'
        for k in range(1, len(rel) + 1):
            cand = rel[-k:]
            clash = [o for o in paths if o != gid and o[1:][-k:] == cand]
            if not clash:
                out[gid] = "/".join(cand)
                break
        else:  # pragma: no cover - identical full paths cannot exist in one tree
            out[gid] = "/".join(rel)
    return out


def load_workspace(
    path: str | Path,
    *,
    sample: str | None = None,
    group: str = "All Samples",
    compensation: str = "workspace",
    name: str | None = None,
) -> Template:
    """Convert a FlowJo 10 workspace's gate tree into a :class:`~cytophen.template.Template`.

    Parameters
    ----------
    path
        The ``.wsp`` file.
    sample
        Name of the sample (``SampleNode`` name, usually the FCS file name) whose gate tree, transforms
        and compensation to use. Default: the first sample of ``group``.
    group
        FlowJo group to take the sample from when ``sample`` is not given.
    compensation
        ``'workspace'`` (default): compensated channels use the workspace's matrix, stored in the
        template (and its default). ``'keyword'``: they use each FCS file's own spillover keyword.
    name
        Template name (default: the workspace file stem).

    Returns
    -------
    Template
        Populations named by FlowJo gate name (made unique by path where needed, see module docs),
        with ``meta['flowjo_paths']`` mapping each population to its FlowJo gate path.

    Raises
    ------
    TemplateError
        The file is not a FlowJo workspace, the sample or group does not exist, or a gate or transform
        cannot be represented.

    Examples
    --------
    >>> t = load_workspace("gating.wsp", sample="68983.fcs")       # doctest: +SKIP
    >>> cytophen.gate(cytophen.read_fcs("68983.fcs"), t).table      # doctest: +SKIP
    """
    from flowkit._models.gates import _gates as fkg
    from flowkit.exceptions import QuadrantReferenceError

    p = Path(path)
    src = str(p)
    if not p.is_file():
        raise TemplateError("file not found (expected a FlowJo 10 .wsp workspace)", file=src)
    if compensation not in ("workspace", "keyword"):
        raise TemplateError(
            f"compensation={compensation!r}: expected 'workspace' or 'keyword'", file=src
        )
    wsp = _parse(p)
    samples = wsp["samples"]
    if not samples:
        raise TemplateError("the workspace has no samples, so no gate tree", file=src)
    if sample is None:
        groups = wsp["groups"]
        if group not in groups:
            raise TemplateError(
                f"no group {group!r}; the workspace has: {', '.join(groups) or 'none'}", file=src
            )
        members = [s for s in groups[group]["samples"] if s in samples]
        if not members:
            raise TemplateError(f"group {group!r} has no samples", file=src)
        sample = members[0]
    elif sample not in samples:
        raise TemplateError(
            f"no sample {sample!r}; the workspace has: {', '.join(samples)}", file=src
        )
    sd = samples[sample]
    gs = sd["gating_strategy"]

    matrices: dict[str, pd.DataFrame] = {}
    comp_info = sd["compensation"]
    detectors: set[str] = set()
    if comp_info is not None:
        if type(comp_info["matrix"]).__name__ != "Matrix":
            raise TemplateError(
                f"sample {sample!r} uses a spectral (unmixing) matrix, which cytophen cannot "
                "take from a workspace yet",
                file=src,
            )
        det = [str(d) for d in comp_info["detectors"]]
        detectors = set(det)
        if compensation == "workspace":
            matrices[str(comp_info["matrix_name"])] = pd.DataFrame(
                np.asarray(comp_info["matrix_array"], dtype=np.float64), index=det, columns=det
            )
    if comp_info is None:
        default_comp = "uncompensated"
    else:
        default_comp = str(comp_info["matrix_name"]) if compensation == "workspace" else "keyword"

    xform_cache: dict[str, Any] = {}

    def transform(ref: str | None):
        if ref is None:
            return None
        if ref not in xform_cache:
            try:
                fk_xform = gs.get_transform(ref)
            except Exception:
                fk_xform = sd["transforms"][ref]
            xform_cache[ref] = transform_from_flowkit(fk_xform, source=src)
        return xform_cache[ref]

    def dim(d) -> Dim:
        # the template default is the workspace's compensation; channels outside the matrix
        # (scatter, time) are uncompensated by it anyway, so only a detector FlowJo gates on
        # *without* its Comp- prefix needs an explicit 'uncompensated'
        ref = d.compensation_ref
        comp = None
        if (ref is None or ref == "uncompensated") and str(d.id) in detectors:
            comp = "uncompensated"
        return Dim(str(d.id), transform=transform(d.transformation_ref), compensation=comp)

    entries = []
    for gate_name, gate_path in gs.get_gate_ids():
        try:
            g = gs.get_gate(gate_name, gate_path=gate_path, sample_id=sample)
        except QuadrantReferenceError:  # pragma: no cover - FlowJo quadrants are rectangles here
            continue
        entries.append((tuple(gate_path) + (gate_name,), g))
    ids = [gid for gid, _ in entries]
    names = _unique_names(ids)
    paths_meta: dict[str, str] = {}
    pops: list[Population] = []
    for gid, g in entries:
        pname = names[gid]
        parent = None if len(gid) == 2 else names[gid[:-1]]
        fj_path = "/".join(gid)
        desc = f"FlowJo gate {gid[-1]!r} at {fj_path}"
        where = f"gate {fj_path!r}"
        try:
            if isinstance(g, fkg.BooleanGate):
                ops = []
                for r in g.gate_refs:
                    ref_id = tuple(r["path"]) + (r["ref"],)
                    if ref_id not in names:
                        raise TemplateError(
                            f"{where}: boolean refers to unknown gate {'/'.join(ref_id)!r}",
                            file=src,
                        )
                    ops.append((names[ref_id], bool(r.get("complement", False))))
                gate = BooleanGate(g.type, ops)
            elif isinstance(g, fkg.RectangleGate):
                gate = RectangleGate(
                    tuple(dim(d) for d in g.dimensions),
                    tuple(d.min for d in g.dimensions),
                    tuple(d.max for d in g.dimensions),
                )
            elif isinstance(g, fkg.PolygonGate):
                gate = PolygonGate(
                    tuple(dim(d) for d in g.dimensions), np.asarray(g.vertices, dtype=np.float64)
                )
            else:
                raise TemplateError(
                    f"{where}: gate type {type(g).__name__} is not supported", file=src
                )
        except TemplateError:
            raise
        except CytophenError as exc:
            raise TemplateError(f"{where}: {exc}", file=src) from exc
        if getattr(g, "use_complement", False):
            inside = f"{pname} [inside]"
            pops.append(Population(inside, parent, gate, description=f"{desc}, events inside"))
            gate = BooleanGate("not", [(inside, False)])
            desc += " (events outside the drawn gate)"
        pops.append(Population(pname, parent, gate, description=desc))
        paths_meta[pname] = fj_path

    if not pops:
        raise TemplateError(f"sample {sample!r} has no gates", file=src)
    from cytophen.interop.gatingml import _dependency_order

    pops = _dependency_order(pops, src)
    return Template(
        name=name or p.stem,
        populations=pops,
        compensation=default_comp,
        matrices=matrices,
        description=f"converted from FlowJo workspace {p.name} (sample {sample!r})",
        source=src,
        meta={
            "format": "flowjo",
            "file": src,
            "sample": sample,
            "flowjo_paths": paths_meta,
        },
    )
