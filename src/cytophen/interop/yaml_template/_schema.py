"""The keys a template may hold, where: one table per level of the format (docs/templates.md)."""

from __future__ import annotations

import re

FORMAT_VERSION = 1

_TOP_KEYS = (
    "format",
    "name",
    "version",
    "description",
    "meta",
    "compensation",
    "matrices",
    "panel",
    "populations",
)
_MARKER_KEYS = ("aliases", "transform", "optional", "description")
_POP_KEYS = ("parent", "description", "gate", "percent_of", "statistics", "cleanup", "hidden")
_RATIO_KEYS = ("ratio", "A", "B", "C")
_QUADRANT_CHILD_KEYS = (
    "signs",
    "description",
    "hidden",
    "percent_of",
    "statistics",
    "min",
    "max",
    "quadrant",
)
_MATRIX_KEYS = ("csv", "detectors", "fluorochromes", "matrix")
_GATE_KINDS = ("rectangle", "range", "polygon", "ellipse", "quadrant", "boolean", "ref")
_GATE_COMMON = ("kind", "dims", "units", "transforms", "compensation")
_GATE_KEYS = {
    "rectangle": (*_GATE_COMMON, "min", "max"),
    "range": (*_GATE_COMMON, "min", "max"),
    "polygon": (*_GATE_COMMON, "vertices"),
    "ellipse": (*_GATE_COMMON, "mean", "covariance", "distance_square"),
    "quadrant": (*_GATE_COMMON, "cuts", "quadrants"),
    "boolean": ("kind", "and", "or", "not"),
    "ref": ("kind", "ref"),
    "method": (
        "method",
        "dims",
        "units",
        "transforms",
        "compensation",
        "side",
        "args",
        "pool",
        "quadrants",
        "guide",
        "fallback_from",
    ),
}
_ROOT = "root"
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")
_SIGNS = ("++", "+-", "-+", "--")
