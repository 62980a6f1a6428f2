"""cytophen: flow-cytometry gating and immunophenotyping.

Read FCS files, compensate and transform them, apply a declarative gating template with fast
compiled kernels, and get tidy population tables.

>>> import cytophen                                               # doctest: +SKIP
>>> sample = cytophen.read_fcs("sample.fcs")                      # doctest: +SKIP
>>> template = cytophen.load_template("gating_templates/bcell.yaml")  # doctest: +SKIP
>>> result = cytophen.gate(sample, template)                      # doctest: +SKIP
>>> result.table                                                  # doctest: +SKIP
"""

from __future__ import annotations

from cytophen._version import __version__
from cytophen.errors import (
    ClinicalError,
    CompensationError,
    CytophenError,
    FCSError,
    GateError,
    MarkerError,
    TemplateError,
    TransformError,
)
from cytophen.io.sample import Sample

__all__ = [
    "__version__",
    "Sample",
    "read_fcs",
    "write_fcs",
    "load_template",
    "gate",
    "gate_files",
    "CytophenError",
    "FCSError",
    "CompensationError",
    "TransformError",
    "TemplateError",
    "MarkerError",
    "GateError",
    "ClinicalError",
]


def read_fcs(path, *, dataset: int = 0, **kwargs) -> Sample:
    """Read one data set of an FCS file (see :func:`cytophen.io.fcs.read_fcs`)."""
    from cytophen.io.fcs import read_fcs as _read

    return _read(path, dataset=dataset, **kwargs)


def write_fcs(path, events, channels, **kwargs) -> None:
    """Write an FCS 3.1 file (see :func:`cytophen.io.fcs.write_fcs`)."""
    from cytophen.io.fcs import write_fcs as _write

    return _write(path, events, channels, **kwargs)


def load_template(path):
    """Load a gating template: cytophen YAML, GatingML 2.0 XML or FlowJo .wsp (see
    :func:`cytophen.interop.load_template`)."""
    from cytophen.interop import load_template as _load

    return _load(path)


def gate(sample, template, **kwargs):
    """Apply a template to a sample (see :func:`cytophen.engine.gate`)."""
    from cytophen.engine import gate as _gate

    if not hasattr(template, "populations"):
        template = load_template(template)
    if not isinstance(sample, Sample):
        sample = read_fcs(sample)
    return _gate(sample, template, **kwargs)


def gate_files(paths, template, **kwargs):
    """Gate many files in parallel (see :func:`cytophen.pipeline.batch.gate_files`)."""
    from cytophen.pipeline.batch import gate_files as _gate_files

    return _gate_files(paths, template, **kwargs)
