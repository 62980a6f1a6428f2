"""Reading YAML with positions: every mapping, key, value and list item remembers its line and
column, so that every problem of a template can be reported where it was written.

YAML is composed with PyYAML's *safe* composer (no object construction, no custom tags) and walked
node by node (:class:`_Reader`); templates are plain data: no tags, no merge keys, and no alias
expansion beyond :data:`MAX_TEMPLATE_VALUES` values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cytophen.errors import TemplateError, TemplateProblem

#: Largest template accepted, in bytes (characters for text given directly): the shipped templates
#: are under 20 kB; 1 MiB holds some 10 000 populations.
MAX_TEMPLATE_BYTES = 1 << 20
#: Most values (mappings, lists and scalars) a template may hold once its YAML aliases are expanded.
MAX_TEMPLATE_VALUES = 1_000_000

#: libyaml's C parser when PyYAML was built with it (about 8x faster); both are the safe loaders
#: and both give every node its line and column.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

Pos = tuple[int, int] | None


class _Map(dict):
    """A YAML mapping that remembers where it, each key and each value were written."""

    pos: Pos = None

    def __init__(self, pos: Pos = None):
        super().__init__()
        self.pos = pos
        self.kpos: dict[Any, Pos] = {}
        self.vpos: dict[Any, Pos] = {}


class _Seq(list):
    """A YAML sequence that remembers where it and each item were written."""

    def __init__(self, pos: Pos = None):
        super().__init__()
        self.pos = pos
        self.ipos: list[Pos] = []


def _pos(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Reader:
    """Turns a composed (never constructed) YAML node tree into _Map/_Seq/scalars."""

    def __init__(self, report):
        self.report = report  # report(pos, message, suggestion=None)
        self._scalars = yaml.SafeLoader("")
        self._memo: dict[int, Any] = {}  # aliases ('*name') share one converted value

    def convert(self, node: yaml.Node):
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            key = id(node)
            if key not in self._memo:
                self._memo[key] = None  # a recursive alias finds this and stops
                self._memo[key] = self._convert(node)
            elif self._memo[key] is None:
                self.report(_pos(node), "a YAML alias refers to the collection that contains it")
            return self._memo[key]
        return self._convert(node)

    def _convert(self, node: yaml.Node):
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            self.report(_pos(node), f"unsupported YAML tag {node.tag!r}; templates are plain data")
            return None
        if isinstance(node, yaml.MappingNode):
            out = _Map(_pos(node))
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    self.report(
                        _pos(knode),
                        "YAML merge keys ('<<') are not supported in templates; "
                        "write the keys out (anchors with '*name' are fine for whole values)",
                    )
                    continue
                key = self.convert(knode)
                if isinstance(key, (_Map, _Seq)):
                    self.report(_pos(knode), "a key must be a plain name, not a mapping or list")
                    continue
                if key in out:
                    first = out.kpos[key]
                    self.report(
                        _pos(knode),
                        f"duplicate key {key!r} (first written at line {first[0]})",
                        "each name may appear only once in a mapping",
                    )
                    continue
                out[key] = self.convert(vnode)
                out.kpos[key] = _pos(knode)
                out.vpos[key] = _pos(vnode)
            return out
        if isinstance(node, yaml.SequenceNode):
            out = _Seq(_pos(node))
            for item in node.value:
                out.append(self.convert(item))
                out.ipos.append(_pos(item))
            return out
        ctor = self._scalars.yaml_constructors.get(node.tag)
        if ctor is None:
            self.report(_pos(node), f"unsupported YAML tag {node.tag!r}; templates are plain data")
            return None
        try:
            return ctor(self._scalars, node)
        except yaml.YAMLError as exc:
            self.report(_pos(node), f"cannot read value: {exc}")
            return None


def read_text(path: str | Path, file: str) -> str:
    """The template file's text (at most :data:`MAX_TEMPLATE_BYTES`, UTF-8)."""
    p = Path(path)
    if not p.exists():
        raise TemplateError(f"template file not found: {p}", file=file)
    check_size(p.stat().st_size, file)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError([TemplateProblem(file, None, None, f"not UTF-8 text: {exc}")]) from None


def read_document(text: str, report) -> tuple[bool, Any]:
    """``(True, document)`` with the YAML ``text`` as _Map/_Seq/scalars (``None`` when empty), or
    ``(False, None)`` when it is not valid YAML or its aliases expand it too far (reported)."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is not None and "&" in text and _expanded_values(node) > MAX_TEMPLATE_VALUES:
            report(
                None,
                f"YAML aliases ('*name') expand this template to more than "
                f"{MAX_TEMPLATE_VALUES:,} values",
                "write the values out, or refer to an anchor fewer times",
            )
            return False, None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark is not None else None
        report(
            pos,
            f"not valid YAML: {exc.problem or exc.context}",
            "check indentation, colons and quotes",
        )
        return False, None
    except yaml.YAMLError as exc:
        report(None, f"not valid YAML: {exc}")
        return False, None
    return True, (_Reader(report).convert(node) if node is not None else None)


def check_size(n: int, file: str) -> None:
    if n > MAX_TEMPLATE_BYTES:
        raise TemplateError(
            [
                TemplateProblem(
                    file,
                    None,
                    None,
                    f"template is {n / 2**20:.1f} MiB; at most {MAX_TEMPLATE_BYTES >> 20} MiB "
                    "is read (a gating template is a few kB)",
                )
            ]
        )


def _expanded_values(root: yaml.Node) -> int:
    """How many values the node tree holds with every alias expanded, counted without expanding
    (each distinct node once; only anchors, ``&name``, make a node count more than once); stops
    counting above :data:`MAX_TEMPLATE_VALUES`."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if isinstance(node, yaml.MappingNode):
            children = [x for pair in node.value for x in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            size[key] = 1
            continue
        if closing:
            open_.discard(key)
            size[key] = 1 + sum(size.get(id(c), 0) for c in children)  # 0: a recursive alias
            if size[key] > MAX_TEMPLATE_VALUES:
                return size[key]
        elif key not in size and key not in open_:
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children)
    return size[id(root)]
