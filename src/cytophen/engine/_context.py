"""GateContext: the values a gate needs from one sample, computed once.

Values are computed per dimension on demand (float64, only the columns a gate uses): a channel's
linear values, compensated as its dimension says, then transformed; at a parent population's rows
only when the gate is applied within that parent. Every fast path gives bit-identical values to
the plain computation (tests/engine/test_engine_fastpaths.py, tests/test_kernels_*.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cytophen import markers as _markers
from cytophen.compensation import GIVEN_MATRIX, Compensation, compensation_matrix
from cytophen.errors import CompensationError, CytophenError, MarkerError
from cytophen.gates import Dim, RatioDim
from cytophen.io.sample import Sample, scale_in_place
from cytophen.kernels import compensate as _comp_kernel
from cytophen.kernels import convert as _convert
from cytophen.template import Template

__all__ = ["GateContext"]


class GateContext:
    """Per-call state: resolved channels and the values of each dimension, computed once."""

    def __init__(self, sample: Sample, template: Template, compensation=None):
        self.sample = sample
        self.template = template
        self.override = compensation
        self.choice = Compensation.parse(compensation)
        self._index: dict[str, int] = {}
        self._comp: dict[str, dict[str, Any] | None] = {}
        self._anchors: dict[str, list[dict[str, Any]]] = {}
        self._parents: dict[str, str | None] | None = None
        self._values: dict[tuple, np.ndarray] = {}
        self._linear: dict[int, np.ndarray] = {}
        self._factors: list[tuple[str, float, float]] | None = None
        self._prefetched = False
        self._absent: dict[tuple[str, str | None], bool] = {}
        #: Populations holding every event (the root ``None``; pregated and skipped ones are added
        #: by the evaluator): their children's channels are converted in one pass (``_prefetch``).
        self.whole: set[str | None] = {None}
        #: Why the file's own spillover keyword is not applied under 'FCS' (the file is already
        #: compensated), or ``None``; set by the evaluator before any value is computed.
        self.skip_file_spillover: str | None = None

    # -- channels ----------------------------------------------------------------------------
    def index(self, name: str) -> int:
        if name not in self._index:
            m = self.template.markers.get(name)
            aliases = m.aliases if m else ()
            self._index[name] = _markers.resolve(
                self.sample.channels, self.sample.markers, name, aliases, path=self.sample.path
            )
        return self._index[name]

    def linear(self, i: int) -> np.ndarray:
        if i not in self._linear:
            if self._factors is None:  # once per sample: it reads every keyword
                self._factors = self.sample.scale_factors()
            if not self._prefetched:
                self._prefetch(i)
            if i not in self._linear:
                self._linear[i] = self.sample.linear_column(i, self._factors)
        return self._linear[i]

    def _prefetch(self, first: int) -> None:
        """Convert every channel the template gates on in one pass over the event block (large
        samples only); values are bit-identical to :meth:`Sample.linear_column`."""
        self._prefetched = True
        if self.sample.n_events < _convert.PARALLEL_MIN:
            return
        names = set()
        for p in self.template.populations:
            if p.parent not in self.whole:  # gated at their parent's rows only (see raw_at)
                continue
            for d in getattr(p.gate, "dims", ()):
                names.update(
                    (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                )
        wanted = {first}
        for name in names:
            try:
                wanted.add(self.index(name))
            except CytophenError:  # optional marker absent, or a spectrum-matrix fluorochrome
                continue
        idx = sorted(wanted)
        if len(idx) < 2:
            return
        block = _convert.columns_as_float64(self.sample.events, idx)
        for row, i in enumerate(idx):
            kind, a, b = self._factors[i]
            self._linear[i] = scale_in_place(block[row], kind, a, b)

    # -- compensation ------------------------------------------------------------------------
    def comp_ref(self, ref: str | None) -> str:
        """The matrix reference a dimension resolves to: its own, unless it has none or names
        the file's keyword and the caller chose otherwise (:class:`Compensation`)."""
        if ref is None or (self.override is not None and ref in ("FCS", "keyword")):
            return self.choice.ref(self.template.compensation)
        return ref

    def matrix(self, ref: str) -> pd.DataFrame | None:
        if ref == "uncompensated":
            return None
        if ref == GIVEN_MATRIX:
            return self.choice.matrix
        if ref == "FCS" and self.skip_file_spillover is not None:
            return None
        if ref in ("FCS", "keyword"):
            if self.sample.spillover is None:
                if ref == "keyword":
                    raise CompensationError(
                        f"{self.sample.path or 'sample'}: the template compensates with the file's "
                        "spillover keyword ($SPILLOVER/SPILL), but the file has none; pass "
                        "--compensation none (already compensated) or a matrix CSV"
                    )
                return None
            return self.sample.spillover
        if ref in self.template.matrices:
            return self.template.matrices[ref]
        raise CompensationError(
            f"compensation {ref!r} is not a matrix of the template (it has: "
            f"{', '.join(self.template.matrices) or 'none'}); expected FCS, keyword, uncompensated or a matrix id"
        )

    def _comp_info(self, ref: str) -> dict[str, Any] | None:
        """The matrix ``ref`` resolved against the sample: detector columns, output names and
        ``inv(S)`` (``None`` for uncompensated values). Computed once per matrix."""
        if ref not in self._comp:
            s = self.matrix(ref)
            if s is None:
                self._comp[ref] = None
            else:
                det = []
                for c in s.columns:
                    try:
                        det.append(self.index(str(c)))
                    except MarkerError as exc:
                        raise CompensationError(
                            f"{self.sample.path or 'sample'}: spillover matrix {ref!r} names detector "
                            f"{c!r}, which is not a channel of the file ({', '.join(self.sample.channels)})"
                        ) from exc
                outputs = [str(name) for name in s.index]
                self._comp[ref] = {
                    "det": det,
                    "outputs": outputs,
                    "pos": {name: j for j, name in enumerate(outputs)},
                    "inverse": compensation_matrix(s),
                }
        return self._comp[ref]

    def _comp_output(self, ref: str, channel: str) -> str | None:
        """The output of matrix ``ref`` that holds ``channel``'s compensated values, or ``None``
        when ``channel`` is not compensated by it (uncompensated ``ref``, scatter, time)."""
        info = self._comp_info(ref)
        if info is None:
            return None
        if channel in info["pos"] and channel not in self.sample.channels:
            return channel  # a fluorochrome of a spectrum matrix
        name = self.sample.channels[self.index(channel)]
        return name if name in info["pos"] else None

    def _comp_values(
        self, ref: str, outputs: list[str], rows: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Compensated values of ``outputs`` at the events ``rows`` (all when ``None``), one
        contiguous float64 array each. Every value is the same fixed-order dot product however
        many rows or outputs are computed together (:mod:`cytophen.kernels.compensate`), so an
        event's value computed for a parent population equals the one computed for all events."""
        info = self._comp_info(ref)
        cols = [info["pos"][o] for o in outputs]
        m = info["inverse"][:, cols]
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        kinds = [self._factors[i] for i in info["det"]]
        out = None
        if all(k in ("none", "gain", "time") for k, _, _ in kinds):
            mode = [_SCALE_MODE[k] for k, _, _ in kinds]
            factor = [a if k in ("gain", "time") else 1.0 for k, a, _ in kinds]
            out = _comp_kernel.compensated_rows(
                self.sample.events, rows, info["det"], mode, factor, m
            )
        if out is None:  # log-amplified detectors, or a block the kernel cannot read
            lin = [self.linear(i) for i in info["det"]]
            block = np.vstack(lin if rows is None else [v[rows] for v in lin])
            out = _comp_kernel.product(block, m)
        return {o: out[j] for j, o in enumerate(outputs)}

    # -- values ------------------------------------------------------------------------------
    def raw_value(self, channel: str, comp: str | None) -> np.ndarray:
        """Compensated (as ``comp`` says), untransformed values of one channel, float64."""
        ref = self.comp_ref(comp)
        key = ("raw", channel, ref)
        if key not in self._values:
            out = self._comp_output(ref, channel)
            if out is None:
                v = self.linear(self.index(channel))
            else:
                v = self._comp_values(ref, [out], None)[out]
            self._values[key] = v
        return self._values[key]

    def raw_at(
        self, channel: str, comp: str | None, idx: np.ndarray | None, subset: str | None
    ) -> np.ndarray:
        """:meth:`raw_value` at the events ``idx`` (all events when ``None``).

        With ``subset`` (the name of the population whose rows ``idx`` are), the values are
        computed straight from the event block at those rows, every channel the subset's
        children gate on in one pass (compensated ones only for the outputs used), and cached
        for the siblings; the values are bit-identical to ``raw_value(...)[idx]``.
        """
        if idx is None:
            return self.raw_value(channel, comp)
        ref = self.comp_ref(comp)
        if subset is None:
            return self.raw_value(channel, comp)[idx]
        key = ("raw", channel, ref, "at", subset)
        if key not in self._values:
            full = self._values.get(("raw", channel, ref))
            if full is not None:
                self._values[key] = full[idx]
            else:
                self._gather_subset(ref, idx, subset)
            if key not in self._values:
                self._values[key] = self.raw_value(channel, comp)[idx]
        return self._values[key]

    def block_columns(self, dims) -> list[np.ndarray] | None:
        """Column views of the stored event block for ``dims``, or ``None`` unless every dim is
        an uncompensated, untransformed channel stored as float32/float64 with no scaling (its
        linear value is then the stored value, widened exactly) and not computed yet."""
        ev = self.sample.events
        if not _convert.gatherable(ev) or ev.shape[0] < _convert.PARALLEL_MIN:
            return None
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        views = []
        for d in dims:
            if type(d) is not Dim or d.transform is not None:
                return None
            ref = self.comp_ref(d.compensation)
            if ("raw", d.channel, ref) in self._values:
                return None
            try:
                if self._comp_output(ref, d.channel) is not None:
                    return None
                i = self.index(d.channel)
            except CytophenError:
                return None
            if self._factors[i][0] != "none" or i in self._linear:
                return None
            views.append(ev[:, i])
        return views

    def _gather_subset(self, ref: str, idx: np.ndarray, subset: str) -> None:
        """Compute, at the rows ``idx`` of population ``subset``, the values (compensated as
        ``ref`` says) of every channel its child gates use: the compensated outputs in one pass
        over the block, the uncompensated linear channels in another."""
        if self._factors is None:
            self._factors = self.sample.scale_factors()
        names: dict[str, int] = {}
        comp: dict[str, str] = {}
        for p in self.template.populations:
            if p.parent != subset:
                continue
            for d in getattr(p.gate, "dims", ()):
                if self.comp_ref(d.compensation) != ref:
                    continue
                chans = (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                for name in chans:
                    try:
                        out = self._comp_output(ref, name)
                        i = self.index(name) if out is None else -1
                    except CytophenError:  # reported where the value is needed
                        continue
                    if out is not None:
                        comp[name] = out
                        continue
                    # log amplification: np.power on a subset could round differently; take
                    # the full column's values (one code path), as for compensated channels
                    if self._factors[i][0] == "log":
                        continue
                    names[name] = i
        if comp:
            for name, v in self._comp_at(ref, idx, subset, comp).items():
                self._values[("raw", name, ref, "at", subset)] = v
        if not names or not _convert.gatherable(self.sample.events):
            return
        cols = sorted(set(names.values()))
        block = _convert.rows_as_float64(self.sample.events, idx, cols)
        rows = {i: scale_in_place(block[r], *self._factors[i]) for r, i in enumerate(cols)}
        for name, i in names.items():
            self._values[("raw", name, ref, "at", subset)] = rows[i]

    def _within(self, pop: str, ancestor: str) -> bool:
        """Whether population ``pop`` is ``ancestor`` or below it."""
        if self._parents is None:
            self._parents = {p.name: p.parent for p in self.template.populations}
        while pop is not None:
            if pop == ancestor:
                return True
            pop = self._parents.get(pop)
        return False

    def _comp_at(self, ref: str, idx: np.ndarray, subset: str, wanted: dict[str, str]):
        """Compensated values (``{name: values}`` for ``wanted``: name -> output) at the rows
        ``idx`` of population ``subset``.

        The first population below which compensated channels are gated becomes an anchor:
        every output that its whole subtree gates on is computed once at its rows, and the
        populations below it take their rows from those values instead of reading all the
        detectors again."""
        got: dict[str, np.ndarray] = {}
        for anchor in self._anchors.get(ref, ()):
            if not self._within(subset, anchor["pop"]):
                continue
            take = None
            for name, out in wanted.items():
                if name in got or out not in anchor["values"]:
                    continue
                if anchor["pop"] == subset:
                    got[name] = anchor["values"][out]
                    continue
                if take is None:
                    if anchor["pos"] is None:
                        pos = np.empty(self.sample.n_events, dtype=np.int64)
                        pos[anchor["rows"]] = np.arange(anchor["rows"].shape[0])
                        anchor["pos"] = pos
                    take = anchor["pos"][idx]
                got[name] = anchor["values"][out][take]
        missing = {name: out for name, out in wanted.items() if name not in got}
        if missing:
            outs = set(missing.values())
            for p in self.template.populations:  # everything the subtree below gates on
                if p.parent is None or not self._within(p.parent, subset):
                    continue
                for d in getattr(p.gate, "dims", ()):
                    if self.comp_ref(d.compensation) != ref:
                        continue
                    chans = (
                        (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
                    )
                    for name in chans:
                        try:
                            out = self._comp_output(ref, name)
                        except CytophenError:
                            continue
                        if out is not None:
                            outs.add(out)
            values = self._comp_values(ref, sorted(outs), idx)
            self._anchors.setdefault(ref, []).append(
                {"pop": subset, "rows": idx, "values": values, "pos": None}
            )
            got.update({name: values[out] for name, out in missing.items()})
        return got

    def value(
        self, dim: Dim | RatioDim, idx: np.ndarray | None = None, subset: str | None = None
    ) -> np.ndarray:
        """Values of one dimension; with ``idx``, only at those events (ratio and transform are
        computed on that subset alone, cached under ``subset``, e.g. the parent population)."""
        key = ("dim", id(dim.transform), dim.to_dict().__repr__())
        if idx is not None:
            if key in self._values:  # already computed for every event
                return self._values[key][idx]
            key = (*key, "at", subset)
        if key not in self._values:
            if isinstance(dim, RatioDim):
                x = self.raw_at(dim.numerator, dim.compensation, idx, subset)
                y = self.raw_at(dim.denominator, dim.compensation, idx, subset)
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = dim.A * (x - dim.B) / (y - dim.C)
            else:
                v = self.raw_at(dim.channel, dim.compensation, idx, subset)
            if dim.transform is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = dim.transform.apply(v)
            v = np.asarray(v, dtype=np.float64)
            if idx is not None and subset is None:
                return v
            self._values[key] = v
        return self._values[key]

    def matrix_of(
        self, dims, idx: np.ndarray | None = None, subset: str | None = None
    ) -> np.ndarray:
        return np.column_stack(self.columns_of(dims, idx, subset))

    def columns_of(
        self, dims, idx: np.ndarray | None = None, subset: str | None = None
    ) -> list[np.ndarray]:
        return [self.value(d, idx, subset) for d in dims]

    def dead_channels(self, dims) -> list[str]:
        """Stored channels behind ``dims`` (with every detector compensation mixes into them)
        that hold no finite value: a gate on them would count 0 % or 100 % of nothing."""
        dead: list[str] = []
        for d in dims:
            for name in (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,):
                info = self._comp_info(self.comp_ref(d.compensation))
                try:
                    cols = [self.index(name)]
                    if info is not None and self._comp_output(self.comp_ref(d.compensation), name):
                        cols = info["det"]
                except MarkerError:  # a spectrum matrix's fluorochrome: its detectors
                    cols = info["det"] if info is not None else []
                for j in cols:
                    col = self.sample.events[:, j]
                    # the first value settles it for any channel holding a finite value there
                    if col.size and not np.isfinite(col[0]) and not np.isfinite(col).any():
                        marker = self.sample.markers[j]
                        name_j = self.sample.channels[j]
                        dead.append(f"{name_j} ({marker})" if marker else name_j)
        return list(dict.fromkeys(dead))

    def absent(self, dims) -> list[str]:
        """Channels of ``dims`` that are not in the file (a fluorochrome of the dimension's
        spectrum matrix is there); a name matching several channels raises :class:`MarkerError`."""
        out = []
        for d in dims:
            names = (d.numerator, d.denominator) if isinstance(d, RatioDim) else (d.channel,)
            for name in names:
                key = (name, d.compensation)
                if key not in self._absent:
                    self._absent[key] = self._lacks(name, d.compensation)
                if self._absent[key] and name not in out:
                    out.append(name)
        return out

    def _lacks(self, name: str, comp: str | None) -> bool:
        try:
            self.index(name)
            return False
        except MarkerError as exc:
            if not exc.absent:
                raise
        ref = self.comp_ref(comp)
        if ref in self.template.matrices or ref == GIVEN_MATRIX:
            return name not in self.matrix(ref).index  # spectrum matrix outputs
        return True


#: How a detector's stored value becomes linear (:meth:`Sample.scale_factors` kinds).
_SCALE_MODE = {
    "none": _comp_kernel.SCALE_NONE,
    "gain": _comp_kernel.SCALE_DIVIDE,
    "time": _comp_kernel.SCALE_MULTIPLY,
}
