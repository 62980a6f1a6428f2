"""Gating plots and the self-contained HTML report.

- :mod:`cytophen.report.plots`: ``plot_result`` (what ``GatingResult.plot`` calls),
  ``plot_hierarchy``, ``save_sample_plots`` (per-sample PNGs the batch workers write), built on
  ``panels`` (which plots: FlowJo's layout), ``draw`` (a view's events and gates, ``plot_gate``),
  ``regions`` (each population's region in data coordinates), ``labels`` (labels inside their
  gates), ``ticks`` (axes in data units, ranges from the data) and ``tree`` (``plot_tree``).
- :mod:`cytophen.report.results`: ``load_results(results_dir)``, a results folder read back.
- :mod:`cytophen.report.html`: ``write_report(results_dir, *, out=None, stats_dir=None, ...)``; the
  page's CSS, JavaScript and HTML are in ``assets/``.
- :mod:`cytophen.report.replot`: ``replot(results_dir)`` re-gates FCS files of a run made without
  plots (``write_report`` calls it when plots are missing).

Submodules import matplotlib; they are loaded on first use (``cytophen.report.write_report`` works;
``replot`` is reached as ``cytophen.report.replot.replot``)."""

from __future__ import annotations

import importlib

__all__ = [
    "plot_result",
    "plot_gate",
    "plot_hierarchy",
    "plot_tree",
    "save_sample_plots",
    "write_report",
]

_WHERE = {
    "plot_result": "plots",
    "plot_gate": "plots",
    "plot_hierarchy": "plots",
    "plot_tree": "plots",
    "save_sample_plots": "plots",
    "write_report": "html",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"cytophen.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cytophen.report' has no attribute {name!r}")
