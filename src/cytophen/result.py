"""GatingResult: what gating one sample produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["GatingResult"]


@dataclass(eq=False)
class GatingResult:
    """Memberships, the tidy population table, and the geometry every gate used.

    Attributes
    ----------
    table
        One row per population: ``sample, file, population, parent, path, count, parent_count,
        percent_of_parent, percent_of_total``, then ``percent_of_<ancestor>`` and
        ``<statistic>_<marker>`` columns the template asks for, ``measured``, ``note`` and the
        template's name, version and hash.
    gates
        Per population: the geometry used (for data-driven gates, what was fitted on this sample,
        whether it fell back and why).
    """

    sample_id: str
    file: str
    template_name: str
    template_version: str
    template_hash: str
    n_events: int
    table: pd.DataFrame
    memberships: dict[str, np.ndarray]
    gates: dict[str, dict[str, Any]]
    notes: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sample: Any = None
    template: Any = None

    def membership(self, population: str) -> np.ndarray:
        """Boolean array over all events of the sample: ``True`` for events in ``population``."""
        try:
            return self.memberships[population]
        except KeyError:
            raise KeyError(
                f"no population {population!r}; the template has: {', '.join(self.memberships)}"
            ) from None

    def count(self, population: str) -> int:
        return int(self.membership(population).sum())

    @property
    def populations(self) -> list[str]:
        return list(self.memberships)

    def plot(self, population: str | None = None, **kwargs):
        """Gating plot of one population's gate, or the whole hierarchy (matplotlib Figure)."""
        from cytophen.report.plots import plot_result

        return plot_result(self, population, **kwargs)

    def __repr__(self) -> str:
        return (
            f"GatingResult(sample={self.sample_id!r}, template={self.template_name!r} "
            f"v{self.template_version} #{self.template_hash[:12]}, populations={len(self.memberships)})"
        )
