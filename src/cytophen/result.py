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
        whether it fell back and why; ``skipped`` / ``pregated`` entries for populations taken as
        they are).
    skipped
        Clean-up populations skipped on this file (a channel of their gate is absent: the file
        was exported after them), with the note of the table.
    hidden
        The template's hidden (helper) populations left out of ``table`` and the plots; they are
        gated, and in ``memberships``.
    pregated
        The population the file was exported after, if it was gated as such.
    scale
        For templates with ``auto`` transforms: the scale the file's values were found on
        (``scale``, ``detected``, ``reason``), whether its own spillover was applied, and the
        transform each marker got on this file.
    compensation
        The compensation override the sample was gated with (as given to :func:`cytophen.gate`:
        a word or a matrix), ``None`` for the template's own: :meth:`events` and the plots compute
        values with it unless told otherwise.
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
    skipped: dict[str, str] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    pregated: str | None = None
    scale: dict[str, Any] | None = None
    compensation: str | pd.DataFrame | None = None

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

    def events(
        self,
        population: str | None = None,
        *,
        transformed: bool = True,
        compensation: str | pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The events of one population, one column per channel named by its marker.

        Parameters
        ----------
        population
            A population of the template; ``None`` gives every event of the sample.
        transformed
            ``True``: compensated and transformed values, each channel on the scale the
            template gates it on (its panel marker's transform, else that of the first gate that
            uses it; channels no gate uses stay linear), the values the gates saw. ``False``:
            compensated linear values, as the template's fluorescence statistics use.
        compensation
            Another compensation override than the one the sample was gated with
            (:attr:`compensation`); rarely needed.

        Returns
        -------
        pandas.DataFrame
            One row per event of the population, indexed by the event's position in the file
            (``event``); one float64 column per channel of the file, named as the template names
            it (a panel marker, else a gate dimension), else by ``$PnS``, else by ``$PnN`` (the
            channel of each column is in ``df.attrs["channels"]``). Like FlowKit's
            ``Session.get_gate_events``, with marker names for columns.

        Raises
        ------
        KeyError
            No such population.
        CytophenError
            The result carries no sample (it was not made by :func:`cytophen.gate`).

        Examples
        --------
        >>> result = cytophen.gate(sample, template)                   # doctest: +SKIP
        >>> result.events("dn")[["CD21", "CD11c"]].median()            # doctest: +SKIP
        """
        return self._events(population, transformed, compensation)[0]

    def _events(self, population, transformed, compensation):
        rows = None if population is None else np.flatnonzero(self.membership(population))
        columns = self._event_columns(transformed, compensation)
        data = {
            label: (values if rows is None else values[rows]) for label, _, _, values in columns
        }
        index = (
            pd.RangeIndex(self.n_events, name="event")
            if rows is None
            else pd.Index(rows, name="event")
        )
        df = pd.DataFrame(data, index=index)
        df.attrs = {
            "sample": self.sample_id,
            "population": population,
            "transformed": transformed,
            "channels": {label: channel for label, channel, _, _ in columns},
        }
        return df, columns

    def to_anndata(
        self,
        population: str | None = None,
        *,
        transformed: bool = True,
        compensation: str | pd.DataFrame | None = None,
    ):
        """The events of one population as an AnnData object, for scanpy and the scverse tools.

        Needs the optional package ``anndata`` (``pip install 'cytophen[anndata]'``).

        Parameters
        ----------
        population, transformed, compensation
            As in :meth:`events`.

        Returns
        -------
        anndata.AnnData
            ``X``: the events (float32), one row per event and one variable per channel;
            ``obs``: ``sample``, ``event`` (position in the file) and one boolean column per
            population of the template (is the event in it), indexed ``<sample>:<event>`` so that
            samples concatenate (``anndata.concat``) without clashes; ``var``: indexed by marker
            name, with ``channel`` ($PnN), ``marker`` ($PnS) and ``transform``; ``uns["cytophen"]``:
            sample, file, template name, version and hash, population, transformed.

        Examples
        --------
        >>> adata = cytophen.gate(sample, template).to_anndata("b_cells")  # doctest: +SKIP
        >>> import scanpy as sc; sc.pp.neighbors(adata)                    # doctest: +SKIP
        """
        try:
            import anndata
        except ImportError:
            raise ImportError(
                "GatingResult.to_anndata needs the optional package anndata: "
                "pip install 'cytophen[anndata]' (or pip install anndata)"
            ) from None
        df, columns = self._events(population, transformed, compensation)
        event = df.index.to_numpy()
        obs = pd.DataFrame(
            {"sample": pd.Categorical([self.sample_id] * len(event)), "event": event},
            index=pd.Index([f"{self.sample_id}:{i}" for i in event]),
        )
        for name, mask in self.memberships.items():
            if name not in obs.columns:
                obs[name] = mask[event]
        markers = list(self.sample.markers)
        var = pd.DataFrame(
            {
                "channel": [c for _, c, _, _ in columns],
                "marker": [markers[self.sample.channels.index(c)] or "" for _, c, _, _ in columns],
                "transform": [t for _, _, t, _ in columns],
            },
            index=pd.Index(list(df.columns)),
        )
        uns = {
            "cytophen": {
                "sample": self.sample_id,
                "file": self.file,
                "template": self.template_name,
                "template_version": self.template_version,
                "template_hash": self.template_hash,
                "population": population or "",
                "transformed": bool(transformed),
            }
        }
        return anndata.AnnData(X=df.to_numpy(dtype=np.float32), obs=obs, var=var, uns=uns)

    def _event_columns(
        self, transformed: bool, compensation
    ) -> list[tuple[str, str, str, np.ndarray]]:
        """``(label, channel, transform, values over all events)`` for every channel of the
        sample, compensated (and transformed) as the template gates it."""
        from cytophen.errors import CytophenError
        from cytophen.gates import Dim

        if self.sample is None or self.template is None:
            raise CytophenError(
                f"result for sample {self.sample_id!r} carries no events (it was loaded from a "
                "table); gate the FCS file with cytophen.gate to get its events"
            )
        ctx = self.gate_context(compensation)
        channels = list(self.sample.channels)
        names: dict[int, str] = {}  # channel index -> the template's name for it
        marker_scale: dict[int, Any] = {}  # channel index -> the marker's default transform
        first_dim: dict[int, Dim] = {}  # channel index -> the first gate dimension on it
        for name, m in self.template.markers.items():
            try:
                i = ctx.index(name)
            except CytophenError:  # an optional marker the file lacks
                continue
            names.setdefault(i, name)
            if m.transform is not None:
                marker_scale.setdefault(i, m.transform)
        for p in self.template.populations:
            for d in getattr(p.gate, "dims", ()):
                if type(d) is not Dim:
                    continue
                try:
                    i = ctx.index(d.channel)
                except CytophenError:
                    continue
                first_dim.setdefault(i, d)
                names.setdefault(i, d.channel)
        labels = [names.get(i) or self.sample.markers[i] or ch for i, ch in enumerate(channels)]
        repeated = {lab for lab in labels if labels.count(lab) > 1}
        out = []
        for i, ch in enumerate(channels):
            d = first_dim.get(i)
            t = marker_scale.get(i, d.transform if d is not None else None)
            t = t if transformed else None
            comp = d.compensation if d is not None else None
            label = f"{labels[i]} ({ch})" if labels[i] in repeated else labels[i]
            desc = "" if t is None else ", ".join(f"{k}={v}" for k, v in t.to_dict().items())
            out.append((label, ch, desc, ctx.value(Dim(ch, t, comp))))
        return out

    def gate_context(self, compensation=None):
        """The values of any gate's dimensions exactly as the engine computed them here.

        Parameters
        ----------
        compensation
            Another compensation to compute them with (as :func:`cytophen.gate`'s); ``None``:
            the one this sample was gated with (:attr:`compensation`).

        Returns
        -------
        GateContext
            ``ctx.value(dim)`` gives one of a gate's dimensions (``gate.dims``) for every event,
            on the gate's scale, with the file's own spillover left out where the engine left it
            out (a compensated export).
        """
        # the module, not the engine package (whose __init__ imports this module)
        from cytophen.engine._context import GateContext

        if compensation is None:
            compensation = self.compensation
        ctx = GateContext(self.sample, self.template, compensation)
        applied = str((self.scale or {}).get("file_spillover") or "")
        if applied.startswith("not applied: "):
            ctx.skip_file_spillover = applied[len("not applied: ") :]
        return ctx

    def plot(self, population: str | None = None, **kwargs):
        """Gating plot of one population's gate, or the whole hierarchy (matplotlib Figure)."""
        from cytophen.report.plots import plot_result

        return plot_result(self, population, **kwargs)

    def __repr__(self) -> str:
        return (
            f"GatingResult(sample={self.sample_id!r}, template={self.template_name!r} "
            f"v{self.template_version} #{self.template_hash[:12]}, populations={len(self.memberships)})"
        )
