"""FlowJo 10 workspaces (.wsp): every sample with its own gates, in and out.

Import reads the workspace once with lxml (:mod:`._wsp`) and turns each sample's own gate tree into
a :class:`~cytophen.template.Template` (:mod:`._convert`); gating then runs on cytophen's engine.
Export (:func:`write_workspace`) writes the gates cytophen placed on each sample back as a FlowJo 10
workspace. docs/interop.md has the conversion rules; in short:

- Gate tree: each ``SampleNode`` holds the sample's complete tree (group gates plus its own edits),
  so each sample gets its own template (:class:`Workspace`, :func:`workspace_templates`).
- Channels: FlowJo's ``/`` → ``_`` renaming is undone from the sample's ``$PnN`` keywords; a
  compensated parameter ``<prefix><detector><suffix>`` (``Comp-FITC-A``) becomes ``Dim(detector)``
  on the sample's spillover matrix (``Template.matrices[<matrix name>]``, also the template's
  default); a sample without a matrix is ``'uncompensated'`` (FlowJo applied none), and channels a
  file already holds compensated (``FJComp-*``) are used as they are.
- Transforms per parameter: ``linear`` → ``LinearTransform(T=maxRange, A=minRange)``, ``log`` →
  ``FlowJoLogTransform``, ``fasinh`` → ``AsinhTransform``, ``logicle`` → ``LogicleTransform``,
  ``biex`` → ``FlowJoBiexTransform``; each gate is placed in its parameters' transformed space.
- Gates: rectangle (FlowJo quadrants are four rectangles), polygon, ellipse (a 128-vertex polygon,
  as FlowJo evaluates it), AND/OR/NOT nodes; ``eventsInside="0"`` becomes a helper
  ``'<name> [inside]'`` population and a ``not`` of it.
- Names: a population is named by its FlowJo gate name when unique in the tree, else by the
  shortest unique trailing part of its path (``'CD4+/CD25+'``); ``Template.meta['flowjo_paths']``
  maps each to FlowJo's ``root/...`` path and ``meta['flowjo_counts']`` holds FlowJo's stored counts.
"""

from __future__ import annotations

from cytophen.interop.flowjo._export import WrittenWorkspace, write_workspace
from cytophen.interop.flowjo._workspace import (
    Workspace,
    load_workspace,
    workspace_samples,
    workspace_templates,
)

__all__ = [
    "Workspace",
    "WrittenWorkspace",
    "load_workspace",
    "workspace_samples",
    "workspace_templates",
    "write_workspace",
]
