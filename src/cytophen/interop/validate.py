"""Validating a template against a sample: does the file hold every marker the template gates on?

Works on any :class:`~cytophen.template.Template` (cytophen YAML, GatingML 2.0, FlowJo); the YAML
reader passes the line and column of each panel entry so that problems point into the file.
"""

from __future__ import annotations

from cytophen import markers as _markers
from cytophen.errors import MarkerError, TemplateProblem
from cytophen.gates import RatioDim
from cytophen.io.fcs import read_fcs
from cytophen.io.sample import Sample
from cytophen.template import Marker, Template

__all__ = ["check_sample", "used_markers", "gated_on"]


def check_sample(
    template: Template, sample, *, positions: dict | None = None, file: str | None = None
) -> list[TemplateProblem]:
    """Resolve every panel marker of ``template`` against ``sample``.

    Parameters
    ----------
    template
        Any Template (markers without a panel entry, e.g. from GatingML, are resolved by name).
    sample
        A :class:`~cytophen.io.sample.Sample`, or the path of an FCS file to read.
    positions
        Panel marker name -> (line, column) in the template file, for the problems' locations.
    file
        The template file named in the problems (default: ``template.source``).

    Returns
    -------
    list of TemplateProblem
        One per marker that is missing or ambiguous in the file (``'warning'`` for optional
        markers, whose populations will be reported as not measured), and one when the template
        needs the file's spillover keyword and the file has none.
    """
    if not isinstance(sample, Sample):
        sample = read_fcs(sample)
    positions = positions or {}
    file = file or template.source or "<template>"
    out: list[TemplateProblem] = []
    used = used_markers(template)
    cleanup_only = used - used_markers(template, cleanup=False)
    panel = dict(template.markers)
    for name in sorted(
        used - set(panel)
    ):  # gated channels without a panel entry (GatingML, FlowJo)
        panel[name] = Marker(name)
    for name, m in panel.items():
        try:
            _markers.resolve(sample.channels, sample.markers, name, m.aliases, path=sample.path)
        except MarkerError as exc:
            line, col = positions.get(name) or (None, None)
            if m.optional and exc.absent:  # ambiguous is an error, optional or not
                msg = f"{exc} (optional: populations gated on it will be reported as not measured)"
                out.append(TemplateProblem(file, line, col, msg, None, severity="warning"))
            elif name in cleanup_only and exc.absent:
                steps = [p.name for p in template.populations if p.cleanup and name in gated_on(p)]
                msg = f"{exc} (clean-up step(s) {', '.join(steps)} will be skipped on this file)"
                out.append(TemplateProblem(file, line, col, msg, None, severity="warning"))
            else:
                hint = (
                    None
                    if name in used
                    else "it is not used by any gate; remove it or mark it optional: true"
                )
                out.append(TemplateProblem(file, line, col, str(exc), hint))
    if template.compensation == "keyword" and sample.spillover is None:
        out.append(
            TemplateProblem(
                file,
                None,
                None,
                f"{sample.path or 'sample'}: compensation: keyword, but the file has no "
                "spillover keyword ($SPILLOVER/SPILL/$COMP)",
                "use compensation: FCS, none or a CSV",
            )
        )
    return out


def used_markers(template: Template, *, cleanup: bool = True) -> set[str]:
    """Channels the gates and statistics of ``template`` use (matrix fluorochromes excluded;
    without the gates of clean-up steps unless ``cleanup``)."""
    fluor = {str(i) for m in template.matrices.values() for i in m.index} - {
        str(c) for m in template.matrices.values() for c in m.columns
    }
    out: set[str] = set()
    for p in template.populations:
        if cleanup or not p.cleanup:
            out.update(n for n in gated_on(p) if n not in fluor)
        out.update(m for _, m in p.report.statistics)
    return out


def gated_on(p) -> list[str]:
    """The channel names population ``p``'s own gate reads."""
    names: list[str] = []
    for d in getattr(p.gate, "dims", ()):
        names += [d.numerator, d.denominator] if isinstance(d, RatioDim) else [d.channel]
    return names
