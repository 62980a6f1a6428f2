"""A FlowJo 10 workspace read once (:class:`Workspace`), and each sample's gates as a template
(:func:`load_workspace`, :func:`workspace_templates`); see the package docstring."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from cytophen.errors import CytophenError, TemplateError
from cytophen.interop.flowjo._convert import sample_template
from cytophen.interop.flowjo._wsp import WspDocument, read_document
from cytophen.template import Template

__all__ = ["Workspace", "load_workspace", "workspace_samples", "workspace_templates"]


def _check_path(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise TemplateError("file not found (expected a FlowJo 10 .wsp workspace)", file=str(p))
    return p


class Workspace:
    """A FlowJo 10 workspace read once: its groups, its samples and each sample's own gates.

    Parameters
    ----------
    path
        The ``.wsp`` file.
    group
        Only this group's samples (default: every sample of the workspace).
    compensation
        ``'workspace'`` (default): compensated parameters use the sample's spillover matrix from
        the workspace. ``'keyword'``: they use each FCS file's own spillover keyword instead.

    Examples
    --------
    >>> ws = Workspace("analysis.wsp", group="Patients")            # doctest: +SKIP
    >>> ws.samples[:2]                                               # doctest: +SKIP
    ['P01_V1.fcs', 'P01_V2.fcs']
    >>> cytophen.gate(cytophen.read_fcs("P01_V1.fcs"), ws.template("P01_V1.fcs"))  # doctest: +SKIP

    ``cytophen.gate_files(paths, ws)`` gates each file with the gates of its own workspace sample.
    """

    version = "1"

    def __init__(self, path, *, group: str | None = None, compensation: str = "workspace"):
        self.path = _check_path(path)
        if compensation not in ("workspace", "keyword"):
            raise TemplateError(
                f"compensation={compensation!r}: expected 'workspace' or 'keyword'",
                file=str(self.path),
            )
        self.compensation = compensation
        self._doc: WspDocument = read_document(self.path)
        doc = self._doc
        # sample names as keys: the SampleNode name, made unique with the sampleID if repeated
        seen: dict[str, int] = {}
        for s in doc.samples.values():
            seen[s.name] = seen.get(s.name, 0) + 1
        self._key = {
            sid: (s.name if seen[s.name] == 1 else f"{s.name} [sampleID {sid}]")
            for sid, s in doc.samples.items()
        }
        self._by_key = {k: doc.samples[sid] for sid, k in self._key.items()}
        if group is not None and group not in doc.groups:
            raise TemplateError(
                f"no group {group!r}; the workspace has: {', '.join(doc.groups) or 'none'}",
                file=str(self.path),
            )
        self.group = group
        self._templates: dict[str, Template] = {}
        self._cache: dict = {}  # transforms shared by every sample

    # -- what is in it ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The workspace file stem (the name of every sample's template)."""
        return self.path.stem

    @property
    def source(self) -> str:
        return str(self.path)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Group name → its samples (sample names), as FlowJo lists them."""
        return {g: [self._key[i] for i in ids] for g, ids in self._doc.groups.items()}

    @property
    def samples(self) -> list[str]:
        """Sample names (the ``SampleNode`` names, usually the FCS file names) of the group, or
        of the whole workspace."""
        if self.group is None:
            return list(self._by_key)
        return [self._key[i] for i in self._doc.groups[self.group]]

    def template(self, sample: str) -> Template:
        """The template of one sample: its own gates, transforms and compensation.

        A sample without gates gives a template with no populations (its result is the root).
        """
        if sample not in self._by_key:
            raise TemplateError(
                f"no sample {sample!r}; the workspace has: {', '.join(self._by_key) or 'none'}",
                file=self.source,
            )
        if sample not in self._templates:
            self._templates[sample] = sample_template(
                self._by_key[sample],
                source=self.path,
                compensation=self.compensation,
                cache=self._cache,
            )
        return self._templates[sample]

    def templates(self) -> dict[str, Template]:
        """Every sample's template (of the group, or of the whole workspace), by sample name."""
        return {s: self.template(s) for s in self.samples}

    def flowjo_counts(self, sample: str) -> dict[str, int]:
        """FlowJo's stored counts of a sample: ``'root'`` and each population (``-1``/absent
        counts left out), keyed by population name."""
        t = self.template(sample)
        out = dict(t.meta["flowjo_counts"])
        if t.meta.get("flowjo_total") is not None:
            out["root"] = t.meta["flowjo_total"]
        return out

    # -- files -----------------------------------------------------------------------------
    def match(self, paths) -> tuple[list[str], list[str | None]]:
        """Which workspace sample each FCS file is.

        A file is a sample when its name is the sample's data set URI file name or its
        ``SampleNode`` name, or (for files matching neither) when its ``$FIL`` keyword is one of
        those or the sample's own ``$FIL``.

        Returns
        -------
        (names, reasons)
            Per path, the sample name (``None`` when none matches) and, when none, why.
        """
        from cytophen.interop.flowjo._match import match_files

        return match_files(self, [Path(p) for p in paths])

    def templates_for(self, paths) -> tuple[list[Template | str], dict[str, Any]]:
        """Per path its sample's template, or the reason it has none; and what to record of the
        match (the group, and the workspace samples no path matched). Used by
        :func:`cytophen.gate_files`."""
        names, reasons = self.match(paths)
        out: list[Template | str] = []
        for n, why in zip(names, reasons):
            if n is None:
                out.append(why)
                continue
            try:
                out.append(self.template(n))
            except CytophenError as exc:
                out.append(str(exc))
        matched = {n for n in names if n is not None}
        info = {
            "format": "flowjo",
            "group": self.group,
            "samples_without_file": [s for s in self.samples if s not in matched],
        }
        return out, info

    # -- what a batch asks of its template -------------------------------------------------
    def _readable(self) -> dict[str, Template | str]:
        """Each sample's template, or why it has none (one bad sample must not stop a batch:
        its files get the reason as their error)."""
        out: dict[str, Template | str] = {}
        for s in self.samples:
            try:
                out[s] = self.template(s)
            except CytophenError as exc:
                out[s] = str(exc)
        return out

    @property
    def populations(self) -> list:
        """Every sample's populations, one after the other."""
        return [
            p for t in self._readable().values() if not isinstance(t, str) for p in t.populations
        ]

    @property
    def names(self) -> list[str]:
        """Population names found in any sample, first-seen order."""
        return list(dict.fromkeys(p.name for p in self.populations))

    @property
    def hash(self) -> str:
        """SHA-256 over the group's per-sample template hashes."""
        h = hashlib.sha256()
        for s, t in self._readable().items():
            h.update(f"{s}\0{t if isinstance(t, str) else t.hash}\n".encode())
        return h.hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def __repr__(self) -> str:
        g = f", group={self.group!r}" if self.group is not None else ""
        return f"Workspace({self.path.name!r}{g}, samples={len(self.samples)})"


def workspace_templates(
    path, *, group: str | None = None, compensation: str = "workspace"
) -> dict[str, Template]:
    """The template of every sample of a FlowJo 10 workspace (read once).

    Parameters
    ----------
    path
        The ``.wsp`` file.
    group
        Only this group's samples (default: all).
    compensation
        ``'workspace'`` or ``'keyword'`` (see :class:`Workspace`).

    Returns
    -------
    dict
        Sample name (``SampleNode`` name) → its :class:`~cytophen.template.Template`.

    Examples
    --------
    >>> ts = workspace_templates("analysis.wsp")                          # doctest: +SKIP
    >>> {s: cytophen.gate(cytophen.read_fcs(s), t) for s, t in ts.items()}  # doctest: +SKIP
    """
    return Workspace(path, group=group, compensation=compensation).templates()


def workspace_samples(path) -> dict[str, list[str]]:
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
    return Workspace(path).groups


def load_workspace(
    path,
    *,
    sample: str | None = None,
    group: str = "All Samples",
    compensation: str = "workspace",
    name: str | None = None,
) -> Template:
    """One sample's gate tree of a FlowJo 10 workspace as a :class:`~cytophen.template.Template`.

    Parameters
    ----------
    path
        The ``.wsp`` file.
    sample
        Name of the sample (``SampleNode`` name, usually the FCS file name) whose gates, transforms
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
        The file is not a FlowJo 10 workspace, the sample or group does not exist, or a gate or
        transform cannot be represented. (A sample without gates gives a template without
        populations: gating it reports the root only.)

    Examples
    --------
    >>> t = load_workspace("gating.wsp", sample="68983.fcs")       # doctest: +SKIP
    >>> cytophen.gate(cytophen.read_fcs("68983.fcs"), t).table      # doctest: +SKIP
    """
    ws = Workspace(path, compensation=compensation)
    if not ws._by_key:
        raise TemplateError("the workspace has no samples, so no gate tree", file=ws.source)
    if sample is None:
        groups = ws.groups
        if group not in groups:
            raise TemplateError(
                f"no group {group!r}; the workspace has: {', '.join(groups) or 'none'}",
                file=ws.source,
            )
        if not groups[group]:
            raise TemplateError(f"group {group!r} has no samples", file=ws.source)
        sample = groups[group][0]
    t = ws.template(sample)
    return t if name is None else dataclasses.replace(t, name=name)
