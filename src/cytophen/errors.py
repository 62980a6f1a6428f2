"""cytophen's own exceptions.

Every error a user can cause (a bad file, a template typo, a missing marker, an unmatched clinical
row) is raised as one of these, with a message that names the file, keyword, line or marker and says
what was expected. Nothing from deep inside numpy should reach a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CytophenError",
    "FCSError",
    "FCSWarning",
    "CompensationError",
    "TransformError",
    "TemplateError",
    "TemplateProblem",
    "MarkerError",
    "GateError",
    "FitDeclined",
    "ClinicalError",
    "ReportError",
    "InputError",
    "FolderInUseError",
    "SimulationError",
]


class CytophenError(Exception):
    """Base class of every error cytophen raises on purpose."""


class FCSError(CytophenError):
    """An FCS file cannot be read (or written) as the standard says.

    Parameters
    ----------
    path
        The file.
    problem
        What is wrong and what was expected, in words a user can act on.
    keyword
        The TEXT keyword involved, if any (e.g. ``$TOT``).
    """

    def __init__(self, path: str | Path | None, problem: str, *, keyword: str | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.keyword = keyword
        where = f"{self.path}" if self.path is not None else "<FCS data>"
        kw = f" [{keyword}]" if keyword else ""
        super().__init__(f"{where}: {problem}{kw}")


class FCSWarning(UserWarning):
    """An FCS file was read with a named repair (e.g. off-by-one ``$ENDDATA``); the message names
    the file and the repair."""


class CompensationError(CytophenError):
    """A spillover matrix is malformed or does not match the sample's channels."""


class TransformError(CytophenError):
    """A transform has invalid parameters (e.g. logicle W too large for M)."""


@dataclass(frozen=True)
class TemplateProblem:
    """One problem found in a template: where it is and what to do about it."""

    file: str
    line: int | None
    column: int | None
    message: str
    suggestion: str | None = None
    severity: str = "error"  # or "warning" (e.g. an optional marker absent from a sample)

    def __str__(self) -> str:
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        text = f"{loc}: {'warning: ' if self.severity == 'warning' else ''}{self.message}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        return text


class TemplateError(CytophenError):
    """A template is invalid. ``problems`` lists every problem found, each with file/line/column."""

    def __init__(self, problems: list[TemplateProblem] | str, *, file: str | None = None):
        if isinstance(problems, str):
            problems = [TemplateProblem(file or "<template>", None, None, problems)]
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in template"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class MarkerError(CytophenError):
    """A marker named by a template cannot be resolved to exactly one channel of a file.

    ``markers`` lists every marker concerned (several when a file lacks more than one a template
    needs; ``marker`` is the first); ``absent`` is true when they are not in the file at all (as
    opposed to matching more than one channel).
    """

    def __init__(
        self,
        path: str | Path | None,
        marker: str | list[str],
        problem: str,
        available: list[str],
        *,
        absent: bool | None = None,
    ):
        self.path = None if path is None else Path(path)
        self.markers = [marker] if isinstance(marker, str) else list(marker)
        self.marker = self.markers[0] if self.markers else ""
        self.problem = problem
        self.absent = problem.startswith("is not in") if absent is None else bool(absent)
        self.available = list(available)
        where = str(self.path) if self.path is not None else "<sample>"
        names = (
            f"marker {self.marker!r}"
            if len(self.markers) == 1
            else "markers " + ", ".join(repr(m) for m in self.markers)
        )
        super().__init__(f"{where}: {names} {problem}; the file has: {', '.join(self.available)}")


class GateError(CytophenError):
    """A gate cannot be evaluated or placed (bad geometry, too few events to fit, ...)."""

    def __init__(self, gate: str, problem: str):
        self.gate = gate
        self.problem = problem
        super().__init__(f"gate {gate!r}: {problem}")


class FitDeclined(GateError):
    """An estimator cannot place its gate on these events (too few, degenerate); the population is
    then reported as "not measured" with this reason, never guessed."""

    def __init__(self, method: str, reason: str):
        self.reason = reason
        super().__init__(method, reason)


class ClinicalError(CytophenError):
    """A manifest or clinical table cannot be used as given (missing column, duplicate key, ...)."""


class ReportError(CytophenError):
    """A results folder cannot be reported or a result cannot be plotted (missing table, no events, ...)."""


class InputError(CytophenError):
    """The batch's inputs cannot be used as given (missing path, duplicate sample id, bad manifest)."""


class FolderInUseError(InputError):
    """Another run holds the output folder."""


class SimulationError(CytophenError):
    """Invalid simulator input (unknown panel, unknown or out-of-range parameter)."""
