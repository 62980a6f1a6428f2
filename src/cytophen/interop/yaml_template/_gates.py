"""Gates of a template: the dims a gate is drawn on (with their transforms and compensation),
fixed gates (range, rectangle, polygon, ellipse, quadrants), boolean and reference gates, and
data-driven gates (``method:``), whose arguments the method's own checks validate."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from cytophen import markers as _markers
from cytophen.errors import GateError
from cytophen.gates import (
    BooleanGate,
    DataDrivenGate,
    Dim,
    EllipsoidGate,
    PolygonGate,
    QuadrantGate,
    RatioDim,
    RectangleGate,
    RefGate,
)
from cytophen.interop.yaml_template._checks import Checker, _describe, _did_you_mean, _plain
from cytophen.interop.yaml_template._panel import _COMP_WORDS, PanelReader
from cytophen.interop.yaml_template._reader import Pos, _Map, _Seq
from cytophen.interop.yaml_template._schema import (
    _GATE_KEYS,
    _GATE_KINDS,
    _QUADRANT_CHILD_KEYS,
    _ROOT,
    _SIGNS,
)


class GateReader(Checker):
    """Reads the ``gate:`` of a population against the panel read before it."""

    def __init__(self, panel: PanelReader):
        super().__init__(panel.file, panel.problems)
        self.panel = panel

    def read_dims(
        self, name: str, g: _Map, gpos: Pos, n: int | tuple[int, int] | None, key: str = "dims"
    ) -> list[Dim] | None:
        if key not in g:
            self.err(gpos, f"gate of {name!r} needs 'dims' (the markers it is drawn on)")
            return None
        dims, dpos = g[key], g.vpos[key]
        if isinstance(dims, str):
            d = _Seq(dpos)
            d.append(dims)
            d.ipos.append(dpos)
            dims = d
        if not isinstance(dims, list) or not dims or not all(isinstance(d, str) for d in dims):
            self.err(dpos, f"{key} of {name!r} must be a list of panel marker names")
            return None
        ok = True
        for i, d in enumerate(dims):
            ok &= self.panel.marker_known(d, dims.ipos[i], f"gate of {name!r}")
        if len(set(dims)) != len(dims):
            self.err(dpos, f"{key} of {name!r} repeat a marker")
            ok = False
        if n is not None:
            lo, hi = (n, n) if isinstance(n, int) else n
            if not lo <= len(dims) <= hi:
                want = str(lo) if lo == hi else f"{lo} or more" if hi > 99 else f"{lo} to {hi}"
                kind = g.get("kind") or g.get("method")
                self.err(
                    dpos,
                    f"a {kind} gate needs {want} dim{'s' if hi != 1 else ''}, {name!r} has {len(dims)}",
                )
                ok = False
        if not ok:
            return None
        units = g.get("units", "transformed")
        if units not in ("transformed", "raw"):
            self.err(
                g.vpos.get("units"),
                f"units must be 'transformed' (the panel's transforms) or 'raw', got {units!r}",
            )
            return None
        overrides: dict[str, Any] = {}
        if "transforms" in g:  # per-gate transform of some dims, instead of the panel's
            tv, tpos = g["transforms"], g.vpos["transforms"]
            if not isinstance(tv, dict):
                self.err(tpos, f"transforms of {name!r} must map dims to transforms")
                return None
            before = len(self.problems)
            for k, spec in tv.items():
                if k not in dims:
                    self.err(
                        tv.kpos[k],
                        f"transforms of {name!r} names {k!r}, which is not one of its dims",
                    )
                    continue
                overrides[k] = self.panel.read_transform(spec, tv.vpos[k], k)
            if len(self.problems) > before:
                return None
        comp = g.get("compensation")
        comps: list[str | None] = [None] * len(dims)
        if comp is not None:
            cpos = g.vpos["compensation"]
            # one source for all dims, or a list with one per dim (GatingML allows mixing)
            items = comp if isinstance(comp, list) else [comp] * len(dims)
            if len(items) != len(dims):
                self.err(cpos, f"gate compensation of {name!r} must be one source or one per dim")
                return None
            for i, c in enumerate(items):
                ipos = comp.ipos[i] if isinstance(comp, _Seq) else cpos
                if not isinstance(c, str):
                    self.err(ipos, "gate compensation must be FCS, keyword, none or a matrix id")
                    return None
                word = _COMP_WORDS.get(c.strip().lower())
                if word is None and c not in self.panel.matrices:
                    self.err(
                        ipos,
                        f"gate compensation {c!r} is not FCS, keyword, none or a matrix id",
                        _did_you_mean(c, ["FCS", "keyword", "none", *self.panel.matrices]),
                    )
                    return None
                comps[i] = word or c
        out = []
        for d, c in zip(dims, comps):
            tr = None if units == "raw" else self.panel.markers[d].transform
            tr = overrides.get(d, tr)
            if d in self.panel.ratios:
                num, den, a, b, cc = self.panel.ratios[d]
                out.append(RatioDim(d, num, den, a, b, cc, transform=tr, compensation=c))
            else:
                out.append(Dim(d, transform=tr, compensation=c))
        return out

    def read_gate(self, name: str, g: _Map, gpos: Pos):
        """Returns (gate or None, quadrant children or None, boolean operands)."""
        if "method" in g:
            return self.read_method_gate(name, g, gpos)
        if any(k in g for k in ("and", "or", "not")) or g.get("kind") == "boolean":
            gate, operands = self.read_boolean(name, g, gpos)
            return gate, None, operands
        if "ref" in g or g.get("kind") == "ref":
            gate, operands = self.read_ref(name, g, gpos)
            return gate, None, operands
        if "kind" not in g:
            self.err(
                gpos,
                f"gate of {name!r} needs 'kind' ({', '.join(_GATE_KINDS)}), 'method' (data-driven) "
                "or and/or/not (boolean)",
            )
            return None, None, []
        kind = g["kind"]
        if kind == "ellipsoid":
            kind = "ellipse"
        if kind not in _GATE_KEYS or kind == "method":
            self.err(
                g.vpos["kind"],
                f"unknown gate kind {kind!r}",
                _did_you_mean(str(kind), _GATE_KINDS)
                or f"choose one of {', '.join(_GATE_KINDS)}, or 'method:' for a data-driven gate",
            )
            return None, None, []
        self.unknown_keys(g, _GATE_KEYS[kind], f"the {kind} gate of {name!r}")
        try:
            if kind in ("rectangle", "range"):
                return self.read_rectangle(name, g, gpos, kind), None, []
            if kind == "polygon":
                return self.read_polygon(name, g, gpos), None, []
            if kind == "ellipse":
                return self.read_ellipse(name, g, gpos), None, []
            return self.read_quadrant(name, g, gpos)
        except GateError as exc:
            self.err(gpos, f"gate of {name!r}: {exc.problem}")
            return None, None, []

    def read_bounds(self, g: _Map, key: str, n: int, name: str) -> list[float | None] | None:
        if key not in g:
            return [None] * n
        v, pos = g[key], g.vpos[key]
        if n == 1 and not isinstance(v, list):
            f = self.number(v, pos, f"{key} of {name!r}", allow_none=True)
            return None if (f is None and v is not None) else [f]
        if not isinstance(v, list) or len(v) != n:
            self.err(
                pos,
                f"{key} of {name!r} must list {n} bound{'s' if n != 1 else ''} (one per dim; null = open)",
            )
            return None
        out = []
        bad = False
        for i, x in enumerate(v):
            f = self.number(x, v.ipos[i], f"{key}[{i}] of {name!r}", allow_none=True)
            bad |= f is None and x is not None
            out.append(f)
        return None if bad else out

    def read_rectangle(self, name, g, gpos, kind):
        dims = self.read_dims(name, g, gpos, 1 if kind == "range" else (1, 999))
        if dims is None:
            return None
        mins = self.read_bounds(g, "min", len(dims), name)
        maxs = self.read_bounds(g, "max", len(dims), name)
        if mins is None or maxs is None:
            return None
        if "min" not in g and "max" not in g:
            self.err(gpos, f"the {kind} gate of {name!r} needs 'min' and/or 'max'")
            return None
        return RectangleGate(dims, mins, maxs)

    def read_polygon(self, name, g, gpos):
        dims = self.read_dims(name, g, gpos, 2)
        if "vertices" not in g:
            self.err(
                gpos, f"the polygon gate of {name!r} needs 'vertices' ([[x, y], ...], at least 3)"
            )
            return None
        v, vpos = g["vertices"], g.vpos["vertices"]
        if not isinstance(v, list) or len(v) < 3:
            n = len(v) if isinstance(v, list) else 0
            self.err(vpos, f"the polygon of {name!r} needs at least 3 vertices, got {n}")
            return None
        pts = []
        bad = False
        for i, p in enumerate(v):
            if not isinstance(p, list) or len(p) != 2:
                self.err(v.ipos[i], f"vertex {i} of {name!r} must be [x, y], got {_describe(p)}")
                bad = True
                continue
            xy = [self.number(c, p.ipos[j], f"vertex {i} of {name!r}") for j, c in enumerate(p)]
            bad |= any(c is None for c in xy)
            pts.append(xy)
        if bad or dims is None:
            return None
        return PolygonGate(dims, np.array(pts, dtype=np.float64))

    def read_ellipse(self, name, g, gpos):
        dims = self.read_dims(name, g, gpos, (2, 999))
        for req in ("mean", "covariance", "distance_square"):
            if req not in g:
                self.err(
                    gpos,
                    f"the ellipse gate of {name!r} needs 'mean', 'covariance' and 'distance_square'",
                )
                return None
        if dims is None:
            return None
        d = len(dims)
        mean = g["mean"]
        if not isinstance(mean, list) or len(mean) != d:
            self.err(g.vpos["mean"], f"mean of {name!r} must be {d} numbers")
            return None
        mv = [self.number(x, mean.ipos[i], f"mean of {name!r}") for i, x in enumerate(mean)]
        cov = g["covariance"]
        if (
            not isinstance(cov, list)
            or len(cov) != d
            or not all(isinstance(r, list) and len(r) == d for r in cov)
        ):
            self.err(
                g.vpos["covariance"],
                f"covariance of {name!r} must be a {d}x{d} matrix ([[a, b], [b, c]])",
            )
            return None
        cv = [
            [self.number(x, r.ipos[j], f"covariance of {name!r}") for j, x in enumerate(r)]
            for r in cov
        ]
        d2 = self.number(
            g["distance_square"], g.vpos["distance_square"], f"distance_square of {name!r}"
        )
        if any(x is None for x in mv) or any(x is None for r in cv for x in r) or d2 is None:
            return None
        if d2 <= 0:
            self.err(g.vpos["distance_square"], f"distance_square of {name!r} must be > 0")
            return None
        c = np.array(cv)
        if not np.isfinite(np.linalg.cond(c)) or np.linalg.cond(c) > 1e12:
            self.err(
                g.vpos["covariance"], f"covariance of {name!r} is singular (it must be invertible)"
            )
            return None
        return EllipsoidGate(dims, np.array(mv), c, d2)

    def read_quadrant_names(self, name, g, gpos, dims: list[Dim], *, explicit: bool = False):
        """``quadrants: {child: "IgD+ CD27-"}`` -> [(child, sign code, (text, pos), extra)].

        With ``explicit`` (fixed quadrant gates), a child may instead give its own rectangle,
        ``{min: [x0, y0], max: [x1, y1], quadrant: id}`` (GatingML's banded quadrants); its key is
        then ``quadrant`` (default: the child's name) and ``extra["rect"]`` holds the bounds.
        """
        if "quadrants" not in g:
            self.err(
                gpos,
                f"the quadrant gate {name!r} needs 'quadrants' naming its children, "
                'e.g. {naive: "IgD+ CD27-"}',
            )
            return None
        q, qpos = g["quadrants"], g.vpos["quadrants"]
        if not isinstance(q, dict) or not q:
            self.err(
                qpos,
                'quadrants must map each child population to its signs, e.g. naive: "IgD+ CD27-"',
            )
            return None
        out = []
        used: dict[str, str] = {}
        for child, signs in q.items():
            cpos = q.kpos[child]
            if not isinstance(child, str) or child == _ROOT:
                self.err(
                    cpos, f"quadrant child name must be text (not 'root'), got {_describe(child)}"
                )
                continue
            spos = q.vpos[child]
            extra: dict[str, Any] = {}
            if isinstance(
                signs, dict
            ):  # {signs: "IgD+ CD27-", description:, percent_of:, statistics:}
                self.unknown_keys(signs, _QUADRANT_CHILD_KEYS, f"quadrant {child!r}")
                if "description" in signs and self.expect(
                    signs["description"], str, signs.vpos["description"], "description"
                ):
                    extra["description"] = signs["description"]
                if "hidden" in signs:
                    extra["hidden"] = self.read_flag(signs, "hidden")
                if "percent_of" in signs:
                    extra["percent_of"] = self.read_percent_of(signs, child)
                if "statistics" in signs:
                    extra["statistics"] = self.panel.read_statistics(signs, child)
                if explicit and "signs" not in signs and ("min" in signs or "max" in signs):
                    mins = self.read_bounds(signs, "min", len(dims), child)
                    maxs = self.read_bounds(signs, "max", len(dims), child)
                    code = signs.get("quadrant", child)
                    if not isinstance(code, str):
                        self.err(signs.vpos["quadrant"], f"quadrant id of {child!r} must be text")
                        continue
                    if mins is None or maxs is None:
                        continue
                    if code in used:
                        self.err(
                            spos, f"{child!r} and {used[code]!r} name the same quadrant {code!r}"
                        )
                        continue
                    used[code] = child
                    extra["rect"] = (mins, maxs)
                    out.append((child, code, (code, cpos), extra))
                    continue
                if "signs" not in signs:
                    self.err(spos, f"quadrant {child!r} needs 'signs', e.g. signs: \"IgD+ CD27-\"")
                    continue
                spos = signs.vpos["signs"]
                signs = signs["signs"]
            code = self.parse_signs(signs, spos, dims, child)
            if code is None:
                continue
            if code in used:
                self.err(spos, f"{child!r} and {used[code]!r} are the same quadrant ({signs})")
                continue
            used[code] = child
            out.append((child, code, (signs, cpos), extra))
        return out if len(out) == len(q) else None

    def parse_signs(self, signs, pos: Pos, dims: list[Dim], child: str) -> str | None:
        if len(dims) != 2:  # reported once, as a dims problem, by the caller
            return None
        names = [d.channel for d in dims]
        if not isinstance(signs, str):
            self.err(
                pos,
                f'quadrant {child!r} must be written as signs such as "{names[0]}+ {names[1]}-"',
            )
            return None
        toks = signs.split()
        if len(toks) == 1 and toks[0] in _SIGNS:
            return toks[0]
        found: dict[int, str] = {}
        for t in toks:
            m = re.fullmatch(r"(.+?)([+-])", t)
            idx = None
            if m:
                word = _markers.normalise(m.group(1))
                for i, n in enumerate(names):
                    mk = self.panel.markers.get(n)
                    if word in {_markers.normalise(a) for a in (n, *(mk.aliases if mk else ()))}:
                        idx = i
            if idx is None or idx in found:
                self.err(
                    pos,
                    f"cannot read quadrant {child!r} = {signs!r}; expected one sign per dim, "
                    f'e.g. "{names[0]}+ {names[1]}-" (or "+-")',
                )
                return None
            found[idx] = m.group(2)
        if len(found) != 2:
            self.err(
                pos,
                f"quadrant {child!r} = {signs!r} must give a sign for both {names[0]} and {names[1]}",
            )
            return None
        return found[0] + found[1]

    def read_quadrant(self, name, g, gpos):
        dims = self.read_dims(name, g, gpos, (2, 999))  # explicit regions may use 3 (GatingML)
        if dims is None:
            return None, None, []
        children = self.read_quadrant_names(name, g, gpos, dims, explicit=True)
        explicit = children is not None and any("rect" in c[3] for c in children)
        if len(dims) != 2 and not explicit:
            self.err(g.vpos["dims"], f"a quadrant gate needs 2 dims, {name!r} has {len(dims)}")
            return None, None, []
        if children is not None and any("rect" in c[3] for c in children):
            if not all("rect" in c[3] for c in children) or "cuts" in g:
                self.err(
                    g.vpos["quadrants"],
                    f"quadrants of {name!r}: give either 'cuts' and signs for every child, "
                    "or min/max for every child",
                )
                return None, None, []
            rects = {c[1]: c[3].pop("rect") for c in children}
            return QuadrantGate(dims, rects), children, []
        if "cuts" not in g:
            self.err(
                gpos,
                f"the quadrant gate {name!r} needs 'cuts' (one value per dim), or use "
                "'method:' to place it from the data",
            )
            return None, None, []
        cuts, cpos = g["cuts"], g.vpos["cuts"]
        if isinstance(cuts, dict):
            missing = [d.channel for d in dims if d.channel not in cuts]
            if missing or len(cuts) != 2:
                self.err(
                    cpos,
                    f"cuts of {name!r} must give one value for each of {', '.join(d.channel for d in dims)}",
                )
                return None, None, []
            vals = [
                self.number(cuts[d.channel], cuts.vpos[d.channel], f"cut on {d.channel}")
                for d in dims
            ]
        elif isinstance(cuts, list) and len(cuts) == 2:
            vals = [
                self.number(c, cuts.ipos[i], f"cuts[{i}] of {name!r}") for i, c in enumerate(cuts)
            ]
        else:
            self.err(cpos, f"cuts of {name!r} must be two numbers [x, y] or {{marker: value}}")
            return None, None, []
        if any(v is None for v in vals) or children is None:
            return None, None, []
        gate = QuadrantGate.from_cuts(dims, vals[0], vals[1])
        return gate, children, []

    def _check_method_shape(self, name, method, dims, side, quadrants: bool, pos: Pos) -> None:
        """Quadrants need a method that places them; a quadrant method needs its children named."""
        kind = _method_kind(method)
        if kind is None:
            return
        if kind == "quadrant" and not quadrants:
            self.err(
                pos,
                f"method {method!r} of {name!r} places quadrants: name them with 'quadrants:'",
                'e.g. quadrants: {naive: "IgD+ CD27-", ...}',
            )
        elif quadrants and kind == "other":
            self.err(
                pos,
                f"method {method!r} of {name!r} does not place quadrants; remove 'quadrants:' "
                "or use method: quadrant",
            )
        elif kind == "cut" and len(dims) >= 2 and not quadrants and side is None:
            self.err(
                pos,
                f"{method!r} on {len(dims)} dims of {name!r} needs a side with one sign per dim "
                f"(e.g. side: \"{'+' * len(dims)}\") or 'quadrants:'",
            )

    def read_boolean(self, name, g, gpos):
        self.unknown_keys(g, _GATE_KEYS["boolean"], f"the boolean gate of {name!r}")
        ops = [k for k in ("and", "or", "not") if k in g]
        if len(ops) != 1:
            self.err(
                gpos, f"a boolean gate takes exactly one of and/or/not, {name!r} has {len(ops)}"
            )
            return None, []
        op = ops[0]
        v, vpos = g[op], g.vpos[op]
        items = v if isinstance(v, list) else [v]
        ipos = v.ipos if isinstance(v, _Seq) else [vpos]
        operands: list[tuple[str, bool]] = []
        refs: list[tuple[str, Pos]] = []
        for item, ip in zip(items, ipos):
            comp = False
            ref = item
            if isinstance(item, dict) and set(item) == {"not"} and isinstance(item["not"], str):
                comp, ref = True, item["not"]
            elif isinstance(item, str) and item.lower().startswith("not "):
                comp, ref = True, item[4:].strip()
            if not isinstance(ref, str) or not ref:
                self.err(
                    ip,
                    f"operand of {name!r} must be a population name or {{not: name}}, got {_describe(item)}",
                )
                continue
            operands.append((ref, comp))
            refs.append((ref, ip))
        if len(operands) != len(items):
            return None, refs
        if op == "not" and len(operands) != 1:
            self.err(vpos, f"'not' takes exactly one population, {name!r} gives {len(operands)}")
            return None, refs
        if op in ("and", "or") and len(operands) < 2:
            self.err(
                vpos,
                f"'{op}' needs at least two populations, {name!r} gives {len(operands)}",
                "to exclude one population within the parent, write not: <name>",
            )
            return None, refs
        return BooleanGate(op, operands), refs

    def read_ref(self, name, g, gpos):
        """``ref: pop`` or ``ref: [pop, {population: pop, dims: [m, ...]}, ...]``."""
        self.unknown_keys(g, _GATE_KEYS["ref"], f"the ref gate of {name!r}")
        if "ref" not in g:
            self.err(
                gpos,
                f"the ref gate of {name!r} needs 'ref' (the population(s) whose gate to reuse)",
            )
            return None, []
        v, vpos = g["ref"], g.vpos["ref"]
        items = v if isinstance(v, list) else [v]
        ipos = v.ipos if isinstance(v, _Seq) else [vpos]
        if not items:
            self.err(vpos, f"ref of {name!r} lists no population")
            return None, []
        refs: list[tuple[str, tuple[str, ...] | None]] = []
        where: list[tuple[str, Pos]] = []
        for item, ip in zip(items, ipos):
            dims = None
            target = item
            if isinstance(item, dict):
                self.unknown_keys(item, ("population", "dims"), f"a reference of {name!r}")
                target = item.get("population")
                if "dims" in item:
                    dv = item["dims"]
                    dv = [dv] if isinstance(dv, str) else dv
                    if (
                        not isinstance(dv, list)
                        or not dv
                        or not all(isinstance(x, str) for x in dv)
                    ):
                        self.err(
                            item.vpos.get("dims", ip),
                            f"dims of a reference of {name!r} must list marker names of the panel",
                        )
                        continue
                    dims = tuple(dv)
            if not isinstance(target, str) or not target:
                self.err(
                    ip,
                    f"a reference of {name!r} must be a population name or "
                    f"{{population: name, dims: [...]}}, got {_describe(item)}",
                )
                continue
            refs.append((target, dims))
            where.append((target, ip))
        if len(refs) != len(items):
            return None, where
        try:
            return RefGate(refs), where
        except GateError as exc:
            self.err(vpos, f"gate of {name!r}: {exc.problem}")
            return None, where

    def read_method_gate(self, name, g, gpos):
        self.unknown_keys(g, _GATE_KEYS["method"], f"the data-driven gate of {name!r}")
        method = g["method"]
        mpos = g.vpos["method"]
        if not isinstance(method, str) or not method.strip():
            self.err(mpos, f"method of {name!r} must be the name of a data-driven method")
            return None, None, []
        from cytophen import datadriven as dd  # scikit-learn and scipy: only for method gates

        methods = dict(dd.available_methods())
        method_ok = method in methods
        if not method_ok:
            self.err(
                mpos,
                f"unknown data-driven method {method!r}",
                _did_you_mean(method, list(methods)) or f"available: {', '.join(sorted(methods))}",
            )
        quadrants = "quadrants" in g
        dims = self.read_dims(name, g, gpos, 2 if quadrants else None)
        args = g.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.err(g.vpos.get("args"), f"args of {name!r} must be a mapping of argument: value")
            args = None
        side = g.get("side")
        if side is not None:
            if quadrants:
                self.err(g.vpos["side"], f"{name!r} names quadrants, so it takes no 'side'")
            elif not isinstance(side, str) or not side or set(side) - {"+", "-"}:
                self.err(
                    g.vpos["side"],
                    f"side of {name!r} must be '+' or '-' (one sign per dim, e.g. '+-'), got {side!r}",
                )
            elif dims is not None and len(side) != len(dims):
                self.err(
                    g.vpos["side"],
                    f"side {side!r} of {name!r} has {len(side)} sign(s) for {len(dims)} dim(s)",
                )
        pool = g.get("pool")
        if pool is not None and not isinstance(pool, str):
            self.err(g.vpos["pool"], f"pool of {name!r} must name a manifest column")
        if method_ok and isinstance(args, dict):
            try:
                msgs = list(dd.check_params(method, _plain(args)))
            except Exception as exc:  # a checker bug must not hide the other problems
                msgs = [f"cannot check arguments: {exc}"]
            for msg in msgs:
                self.err(g.vpos.get("args", mpos), f"{method} args of {name!r}: {msg}")
        if method_ok and dims is not None:
            self._check_method_shape(name, method, dims, side, quadrants, mpos)
        children = None
        if quadrants and dims is not None:
            children = self.read_quadrant_names(name, g, gpos, dims)
            if children is None:
                return None, None, []
        if dims is None or args is None:
            return None, None, []
        guide = ()
        if "guide" in g:
            guide = self.read_dims(name, g, gpos, None, key="guide")
            if guide is None:
                return None, None, []
            both = {d.label for d in guide} & {d.label for d in dims}
            if both:
                self.err(
                    g.vpos["guide"],
                    f"guide of {name!r} repeats its dims ({', '.join(sorted(both))})",
                )
                return None, None, []
        fallback_from, operands = g.get("fallback_from"), []
        if fallback_from is not None:
            if not isinstance(fallback_from, str) or not fallback_from:
                self.err(
                    g.vpos["fallback_from"],
                    f"fallback_from of {name!r} must name a population placed earlier",
                )
                return None, None, []
            operands = [(fallback_from, g.vpos["fallback_from"])]
        gate = DataDrivenGate(
            dims,
            method,
            params=_plain(args),
            side=side,
            pool=pool,
            guide=guide,
            fallback_from=fallback_from,
        )
        return gate, children, operands


def _method_kind(method: str) -> str | None:
    """'quadrant' (places named quadrants), 'cut' (a 1-D cut method), 'other', or None if unknown."""
    from cytophen.datadriven import CutEstimator, get_method

    try:
        cls = get_method(method)
    except Exception:  # method unknown (reported elsewhere)
        return None
    if getattr(cls, "name", "") == "quadrant":
        return "quadrant"
    return "cut" if issubclass(cls, CutEstimator) else "other"
