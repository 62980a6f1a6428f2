"""The panel and compensation of a template: matrices (inline or CSV), the default compensation,
each marker's aliases, transform and optionality, and ratio dimensions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cytophen import markers as _markers
from cytophen.compensation import COMPENSATION_WORDS, read_spillover_csv
from cytophen.errors import CompensationError, TemplateProblem, TransformError
from cytophen.interop.yaml_template._checks import Checker, _describe, _did_you_mean
from cytophen.interop.yaml_template._reader import Pos, _Map, _Seq
from cytophen.interop.yaml_template._schema import (
    _MARKER_KEYS,
    _MATRIX_KEYS,
    _RATIO_KEYS,
    _ROOT,
)
from cytophen.template import STATISTICS, Marker
from cytophen.transforms import TRANSFORM_KINDS, transform_kind

#: A template's compensation words (``template`` names no matrix inside a template).
_COMP_WORDS = {k: v for k, v in COMPENSATION_WORDS.items() if v != "template"}


class PanelReader(Checker):
    """Reads ``matrices:``, ``compensation:`` and ``panel:``; what it read is then in
    ``markers`` (with ``marker_pos``, where each was written), ``matrices`` and ``ratios``."""

    def __init__(self, file: str, problems: list[TemplateProblem], base_dir: Path | None):
        super().__init__(file, problems)
        self.base_dir = base_dir
        self.markers: dict[str, Marker] = {}
        self.marker_pos: dict[str, Pos] = {}
        self.matrices: dict[str, pd.DataFrame] = {}
        self.ratios: dict[str, tuple[str, str, float, float, float]] = {}

    def read_matrices(self, value, pos: Pos) -> None:
        if not self.expect(value, dict, pos, "matrices"):
            return
        for mid, spec in value.items():
            self.read_matrix(str(mid), spec, value.vpos[mid])

    def read_matrix(self, mid: str, spec, pos: Pos) -> None:
        if isinstance(spec, str):
            spec_map = _Map(pos)
            spec_map["csv"] = spec
            spec_map.vpos["csv"] = pos
            spec = spec_map
        if not self.expect(spec, dict, pos, f"matrix {mid!r}"):
            return
        self.unknown_keys(spec, _MATRIX_KEYS, f"matrix {mid!r}")
        if "csv" in spec:
            path = spec["csv"]
            if not self.expect(path, str, spec.vpos["csv"], "csv"):
                return
            p = Path(path)
            if not p.is_absolute() and self.base_dir is not None:
                p = self.base_dir / p
            if not p.exists():
                self.err(
                    spec.vpos["csv"],
                    f"spillover CSV {path!r} not found (looked for {p})",
                    "paths are relative to the template's folder",
                )
                return
            try:
                df = read_spillover_csv(p)
            except CompensationError as exc:
                self.err(
                    spec.vpos["csv"],
                    f"cannot read spillover CSV {path!r}: {exc}",
                    "expected a header row of detector names and one row per fluorochrome, first column its name",
                )
                return
            self.matrices[mid] = df
            return
        for req in ("detectors", "matrix"):
            if req not in spec:
                self.err(spec.pos, f"matrix {mid!r} needs 'csv', or 'detectors' and 'matrix'")
                return
        det = spec["detectors"]
        if not self.expect(det, list, spec.vpos["detectors"], "detectors") or not all(
            isinstance(d, str) for d in det
        ):
            if isinstance(det, list):
                self.err(spec.vpos["detectors"], "detectors must be channel names ($PnN)")
            return
        fl = spec.get("fluorochromes", det)
        if "fluorochromes" in spec and (
            not isinstance(fl, list)
            or len(fl) != len(det)
            or not all(isinstance(f, str) for f in fl)
        ):
            self.err(
                spec.vpos["fluorochromes"],
                f"fluorochromes must be {len(det)} names, one per row of the matrix",
            )
            return
        rows = spec["matrix"]
        mpos = spec.vpos["matrix"]
        if (
            not isinstance(rows, list)
            or len(rows) != len(fl)
            or not all(isinstance(r, list) and len(r) == len(det) for r in rows)
        ):
            self.err(
                mpos,
                f"matrix must be {len(fl)} rows of {len(det)} numbers (one row per fluorochrome, one column per detector)",
            )
            return
        vals = []
        for i, r in enumerate(rows):
            row = []
            for j, v in enumerate(r):
                f = self.number(
                    v, rows[i].ipos[j] if isinstance(rows[i], _Seq) else mpos, f"matrix[{i}][{j}]"
                )
                row.append(np.nan if f is None else f)
            vals.append(row)
        self.matrices[mid] = pd.DataFrame(vals, index=list(fl), columns=list(det), dtype=np.float64)

    def read_compensation(self, value, pos: Pos) -> str:
        if isinstance(value, dict):
            self.read_matrix("template", value, pos)
            return "template"
        if not self.expect(value, str, pos, "compensation"):
            return "FCS"
        word = _COMP_WORDS.get(value.strip().lower())
        if word is not None:
            return word
        if value in self.matrices:
            return value
        if value.lower().endswith((".csv", ".tsv", ".txt")):
            self.read_matrix("template", value, pos)
            return "template"
        choices = ["FCS", "keyword", "none", *self.matrices]
        self.err(
            pos,
            f"compensation {value!r} is not FCS, keyword, none, a matrix id or a .csv path",
            _did_you_mean(value, choices),
        )
        return "FCS"

    # -- panel -------------------------------------------------------------------------------
    def read_panel(self, panel, pos: Pos) -> None:
        if not self.expect(panel, dict, pos, "panel"):
            return
        if not panel:
            self.err(pos, "the panel is empty; list every marker the gates use")
        seen_alias: dict[str, str] = {}
        for name, spec in panel.items():
            kpos = panel.kpos[name]
            if not isinstance(name, str):
                self.err(
                    kpos, f"marker name must be text, got {_describe(name)}", f'quote it: "{name}"'
                )
                continue
            if name == _ROOT:
                self.err(kpos, "'root' is reserved; rename the marker")
            if spec is None:
                spec = _Map(panel.vpos[name])
            if not self.expect(spec, dict, panel.vpos[name], f"panel entry {name!r}"):
                continue
            is_ratio = "ratio" in spec
            allowed = (*_MARKER_KEYS, *_RATIO_KEYS) if is_ratio else _MARKER_KEYS
            self.unknown_keys(spec, allowed, f"panel entry {name!r}")
            if is_ratio:
                self.read_ratio(name, spec)
            aliases = spec.get("aliases", [])
            if isinstance(aliases, str):
                aliases = [aliases]
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                self.err(spec.vpos.get("aliases"), f"aliases of {name!r} must be a list of names")
                aliases = []
            for a in [name, *aliases]:
                key = _markers.normalise(a)
                other = seen_alias.get(key)
                if other is not None and other != name:
                    self.err(
                        spec.vpos.get("aliases", kpos),
                        f"{a!r} of marker {name!r} also names marker {other!r}",
                        "a name or alias may belong to one marker only",
                    )
                seen_alias[key] = name
            optional = spec.get("optional", False)
            if "optional" in spec and not self.expect(
                optional, bool, spec.vpos["optional"], "optional"
            ):
                optional = False
            transform = None
            if spec.get("transform") is not None:
                transform = self.read_transform(spec["transform"], spec.vpos["transform"], name)
            self.markers[name] = Marker(
                name=name, aliases=tuple(aliases), transform=transform, optional=bool(optional)
            )
            self.marker_pos[name] = kpos

    def read_ratio(self, name: str, spec: _Map) -> None:
        """A GatingML ``fratio`` dimension: ``A * (numerator - B) / (denominator - C)``."""
        r, rpos = spec["ratio"], spec.vpos["ratio"]
        if not (isinstance(r, list) and len(r) == 2 and all(isinstance(c, str) for c in r)):
            self.err(rpos, f"ratio of {name!r} must be [numerator, denominator] channel names")
            return
        abc = []
        for k, default in (("A", 1.0), ("B", 0.0), ("C", 0.0)):
            v = (
                self.number(spec[k], spec.vpos[k], f"{k} of ratio {name!r}")
                if k in spec
                else default
            )
            if v is None:
                return
            abc.append(v)
        self.ratios[name] = (r[0], r[1], *abc)

    def read_transform(self, spec, pos: Pos, marker: str):
        names = [k.name for k in TRANSFORM_KINDS]
        if isinstance(spec, str):
            kind, params, ppos = spec, {}, {}
        elif isinstance(spec, dict):
            if "kind" not in spec:
                self.err(
                    pos,
                    f"transform of {marker!r} needs 'kind' (one of {', '.join(names)})",
                )
                return None
            kind = spec["kind"]
            params = {k: v for k, v in spec.items() if k != "kind"}
            ppos = spec.vpos
        else:
            self.err(
                pos,
                f"transform of {marker!r} must be a kind name or a mapping with 'kind', got {_describe(spec)}",
            )
            return None
        if not isinstance(kind, str):
            self.err(pos, f"transform kind must be a name, got {_describe(kind)}")
            return None
        if kind.strip().lower() in ("none", "raw", "identity"):
            if params:
                self.err(pos, f"transform {kind!r} takes no parameters")
            return None
        tk = transform_kind(kind)
        if tk is None:
            self.err(
                pos,
                f"unknown transform {kind!r}",
                _did_you_mean(kind, [*names, "none"]) or f"choose one of {', '.join(names)}, none",
            )
            return None
        defaults = tk.params
        values = dict(defaults)
        ok = True
        for k, v in params.items():
            k = tk.param_aliases.get(k, k)
            if k not in defaults:
                self.err(
                    spec.kpos.get(k, pos) if isinstance(spec, _Map) else pos,
                    f"unknown parameter {k!r} for a {tk.name} transform",
                    _did_you_mean(str(k), defaults) or f"{tk.name} takes {', '.join(defaults)}",
                )
                ok = False
                continue
            f = self.number(v, ppos.get(k, pos), f"{tk.name} parameter {k}")
            if f is None:
                ok = False
            else:
                values[k] = f
        if not ok:
            return None
        try:
            return tk.cls(**values)
        except TransformError as exc:
            self.err(pos, f"invalid {tk.name} parameters: {exc}")
        except (TypeError, ValueError) as exc:
            self.err(pos, f"invalid {tk.name} parameters {values}: {exc}")
        return None

    def read_statistics(self, entry: _Map, name: str) -> list[tuple[str, str]]:
        if "statistics" not in entry:
            return []
        v, pos = entry["statistics"], entry.vpos["statistics"]
        if not isinstance(v, dict):
            self.err(
                pos, f"statistics of {name!r} must be a mapping such as {{median: [CD27, IgD]}}"
            )
            return []
        out = []
        for stat, ms in v.items():
            spos = v.kpos[stat]
            if stat not in STATISTICS:
                self.err(
                    spos,
                    f"unknown statistic {stat!r}",
                    _did_you_mean(str(stat), STATISTICS) or f"choose from {', '.join(STATISTICS)}",
                )
                continue
            if isinstance(ms, str):
                ms = _Seq(v.vpos[stat])
                ms.append(v[stat])
                ms.ipos.append(v.vpos[stat])
            if not isinstance(ms, list) or not all(isinstance(m, str) for m in ms):
                self.err(v.vpos[stat], f"{stat} must list marker names of the panel")
                continue
            for i, m in enumerate(ms):
                if self.marker_known(
                    m, ms.ipos[i] if isinstance(ms, _Seq) else v.vpos[stat], f"statistic {stat}"
                ):
                    out.append((stat, m))
        return out

    def marker_known(self, m: str, pos: Pos, what: str) -> bool:
        if m in self.markers:
            return True
        owner = next(
            (
                k
                for k, mk in self.markers.items()
                if any(_markers.normalise(a) == _markers.normalise(m) for a in (k, *mk.aliases))
            ),
            None,
        )
        if owner is not None:
            self.err(
                pos,
                f"{what}: {m!r} is not a panel marker name",
                f"did you mean {owner!r}? (use the marker name, not an alias)",
            )
        else:
            self.err(
                pos,
                f"{what}: marker {m!r} is not in the panel",
                _did_you_mean(m, list(self.markers)) or "add it to panel:",
            )
        return False
