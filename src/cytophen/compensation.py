"""Spillover matrices and compensation.

A spillover matrix is a :class:`pandas.DataFrame` whose index names the outputs (the stained
channel / fluorochrome of each row) and whose columns name the detectors (``$PnN``); entry
``S[i, j]`` is the fraction of dye *i*'s primary signal that appears in detector *j* (diagonal 1).
Observed detector values are ``X = C @ S`` for true signals ``C``, so compensation is
``C = X @ inv(S)`` (``pinv`` for a non-square spectrum matrix: least-squares unmixing).

- :func:`compensate` / :func:`decompensate` apply a matrix to an event array;
- :func:`spillover_from_keyword` parses ``$SPILLOVER`` / ``SPILL`` values (strictly: errors, not
  warnings); :func:`read_spillover_csv` reads CSV / FlowJo-exported / R ``read.table`` matrices;
- :class:`Compensation` is which matrix gating applies, as a user, a template or run.json names
  it (the words ``template``, ``FCS``, ``keyword``, ``none``, a matrix or a matrix CSV);
- :func:`compute_spillover` estimates a matrix from single-stain controls and an unstained control
  (flowCore's ``spillover(method="median")``; see docs/methods.md, "Compensation").
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cytophen.errors import CompensationError
from cytophen.io.sample import Sample

__all__ = [
    "Compensation",
    "COMPENSATION_WORDS",
    "GIVEN_MATRIX",
    "compensate",
    "decompensate",
    "compensation_matrix",
    "check_detectors",
    "is_identity",
    "spillover_from_keyword",
    "read_spillover_csv",
    "write_spillover_csv",
    "read_channel_match",
    "compute_spillover",
]


# --------------------------------------------------------------------------------------------
# which matrix: the compensation words
# --------------------------------------------------------------------------------------------
#: The words, in any case, and the kind each names. ``FCS`` is GatingML's: the file's spillover
#: keyword when it has one, else none; ``keyword`` insists on the file's keyword.
COMPENSATION_WORDS: dict[str, str] = {
    "template": "template",
    "fcs": "FCS",
    "keyword": "keyword",
    "none": "uncompensated",
    "uncompensated": "uncompensated",
}
#: The matrix reference a gate dimension resolves to under a matrix given by the caller (a
#: ``compensation=`` DataFrame or CSV); no template matrix may have this id.
GIVEN_MATRIX = "__override__"
#: How run.json records a DataFrame given to the batch (which cannot be read back).
_UNRECORDED = "matrix (DataFrame)"


@dataclass(frozen=True, eq=False)
class Compensation:
    """Which spillover matrix gating applies, as a user, a template or run.json names it.

    Attributes
    ----------
    kind
        ``'template'`` (the template's own choice), ``'FCS'`` (the file's spillover keyword when
        it has one), ``'keyword'`` (the file's keyword; an error for a file without one),
        ``'uncompensated'`` (the events are used as they are: ``none``), ``'matrix'`` (a given
        matrix) or ``'id'`` (one of the template's matrices, by id).
    matrix
        The matrix of kind ``'matrix'``.
    name
        The template matrix id (kind ``'id'``), or the CSV file a matrix was read from.
    sha256
        SHA-256 of that CSV file.

    Examples
    --------
    >>> Compensation.parse("None").kind
    'uncompensated'
    >>> Compensation.parse(None).record()
    {'compensation': 'template'}
    """

    kind: str
    matrix: pd.DataFrame | None = None
    name: str | None = None
    sha256: str | None = None

    @classmethod
    def parse(cls, value, *, files: bool = False, what: str = "compensation") -> Compensation:
        """A choice from what a caller gave: ``None`` (the template's), a word in any case, a
        DataFrame, with ``files=True`` the path of a matrix CSV (read with
        :func:`read_spillover_csv`), else the id of a template matrix."""
        if value is None:
            return cls("template")
        if isinstance(value, Compensation):
            return value
        if isinstance(value, pd.DataFrame):
            return cls("matrix", value)
        text = str(value)
        kind = COMPENSATION_WORDS.get(text.strip().lower())
        if kind is not None:
            return cls(kind)
        if not files:
            return cls("id", name=text)
        path = Path(text)
        if path.suffix.lower() == ".csv" or path.exists():
            if not path.is_file():
                raise CompensationError(
                    f"{what} {text}: no such file; expected template, keyword, none or a matrix CSV"
                )
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            return cls("matrix", read_spillover_csv(path), str(path.resolve()), digest)
        raise CompensationError(
            f"{what} {text!r}: expected template, keyword, none or a spillover matrix CSV file"
        )

    @classmethod
    def from_record(cls, options: Mapping) -> Compensation:
        """The choice a run recorded (run.json's ``options``, see :meth:`record`)."""
        word = options.get("compensation") or "template"
        if word == _UNRECORDED:
            raise CompensationError(
                "the run was compensated with a DataFrame it did not record; gate with a matrix "
                "CSV (or the template's matrix) to use it again"
            )
        return cls.parse(word, files=True, what="run.json compensation")

    def record(self) -> dict[str, str]:
        """How run.json records this choice (:meth:`from_record` reads it back)."""
        if self.kind == "matrix":
            if self.name is None:
                return {"compensation": _UNRECORDED}
            return {"compensation": self.name, "compensation_sha256": str(self.sha256)}
        if self.kind == "id":
            return {"compensation": str(self.name)}
        word = {"FCS": "fcs", "uncompensated": "none"}.get(self.kind, self.kind)
        return {"compensation": word}

    @property
    def override(self):
        """What :func:`cytophen.gate`'s ``compensation=`` takes for this choice: ``None`` (the
        template's), ``'FCS'``, ``'keyword'``, ``'none'``, a matrix id or a DataFrame."""
        if self.kind == "template":
            return None
        if self.kind == "matrix":
            return self.matrix
        if self.kind == "id":
            return self.name
        return {"uncompensated": "none"}.get(self.kind, self.kind)

    def ref(self, template_default: str) -> str:
        """The compensation reference a gate dimension resolves to under this choice (the
        template's own default for ``'template'``; :data:`GIVEN_MATRIX` for a given matrix)."""
        if self.kind == "template":
            return template_default
        if self.kind == "matrix":
            return GIVEN_MATRIX
        if self.kind == "id":
            return str(self.name)
        return self.kind


# --------------------------------------------------------------------------------------------
# applying a matrix
# --------------------------------------------------------------------------------------------
def _as_matrix(spillover: pd.DataFrame, what: str = "spillover matrix") -> np.ndarray:
    if not isinstance(spillover, pd.DataFrame):
        raise CompensationError(
            f"{what} must be a pandas DataFrame (index: outputs, columns: detectors)"
        )
    try:
        s = spillover.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CompensationError(f"{what} has non-numeric entries: {exc}") from None
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[0] > s.shape[1]:
        raise CompensationError(
            f"{what} must have at least as many detectors (columns) as outputs (rows), got {s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise CompensationError(f"{what} has non-finite entries")
    return s


def compensation_matrix(spillover: pd.DataFrame) -> np.ndarray:
    """The matrix ``M`` with compensated = ``X @ M``: ``inv(S)``, or ``pinv(S)`` if not square.

    Raises
    ------
    CompensationError
        The matrix is malformed or singular.
    """
    s = _as_matrix(spillover)
    if s.shape[0] == s.shape[1]:
        cond = np.linalg.cond(s)
        if not np.isfinite(cond) or cond > 1e12:
            raise CompensationError(
                f"spillover matrix over {', '.join(map(str, spillover.columns))} is singular "
                f"(condition number {cond:.3g}); a row or column is probably duplicated or zero"
            )
        return np.linalg.inv(s)
    return np.linalg.pinv(s)


def compensate(values: np.ndarray, spillover: pd.DataFrame) -> np.ndarray:
    """Compensate detector values with a spillover matrix.

    Parameters
    ----------
    values
        ``(n, k)`` detector values (linear scale) in the order of ``spillover.columns``.
    spillover
        ``(m, k)`` spillover DataFrame (index: outputs, columns: detectors), ``m <= k``.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` float64 compensated values, one column per ``spillover.index`` entry. Computed
        as one matrix product with the precomputed inverse (``X @ inv(S)``), NaN propagating only
        within its own event.

    Raises
    ------
    CompensationError
        Shape mismatch, non-finite or singular matrix.

    Examples
    --------
    >>> s = pd.DataFrame([[1.0, 0.1], [0.0, 1.0]], index=["A", "B"], columns=["A", "B"])
    >>> compensate(np.array([[10.0, 1.0]]), s)
    array([[10.,  0.]])
    """
    m = compensation_matrix(spillover)
    x = np.asarray(values)
    if x.ndim != 2 or x.shape[1] != m.shape[0]:
        raise CompensationError(
            f"values have shape {x.shape}, but the spillover matrix has {m.shape[0]} detector "
            f"columns ({', '.join(map(str, spillover.columns))})"
        )
    if x.dtype != np.float64:
        x = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf stay within their event
        return _product(x, m)


#: Products with at least this many events run with BLAS limited to one thread.
_ONE_BLAS_THREAD_MIN = 50_000


@functools.lru_cache(maxsize=1)
def _blas_control():
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController()
    except Exception:  # pragma: no cover - threadpoolctl absent or failing: leave BLAS alone
        return None


def _product(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x @ m`` on one BLAS thread for large ``x``.

    The product is memory-bound (``k`` is small): a second BLAS thread does not speed it up on 2
    cores, and its workers keep spinning after the call, taking the core numba's kernels are
    about to use (measured with 2 M x 12 on a busy 2-core machine: 47 ms on one thread, 0.4-1.2 s
    on two). The result is the same (each output element is the same dot product).
    """
    ctl = _blas_control() if x.shape[0] >= _ONE_BLAS_THREAD_MIN else None
    if ctl is None:
        return x @ m
    with ctl.limit(limits=1, user_api="blas"):
        return x @ m


def decompensate(values: np.ndarray, spillover: pd.DataFrame) -> np.ndarray:
    """Undo :func:`compensate`: ``(n, m)`` compensated values back to ``(n, k)`` detector values."""
    s = _as_matrix(spillover)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != s.shape[0]:
        raise CompensationError(
            f"values have shape {x.shape}, but the spillover matrix has {s.shape[0]} rows"
        )
    return x @ s


def is_identity(spillover: pd.DataFrame, *, atol: float = 0.0) -> bool:
    """Whether a spillover matrix is the identity (a file that was compensated already, or a
    placeholder keyword such as FlowKit's test file carries)."""
    s = _as_matrix(spillover)
    return s.shape[0] == s.shape[1] and bool(np.allclose(s, np.eye(s.shape[0]), rtol=0, atol=atol))


def check_detectors(
    spillover: pd.DataFrame,
    channels: Sequence[str],
    *,
    source: str = "spillover matrix",
    target: str = "the file",
) -> list[int]:
    """Column index in ``channels`` of every detector of ``spillover``.

    Raises
    ------
    CompensationError
        Listing both sides when any detector is not a channel.
    """
    chans = [str(c) for c in channels]
    missing = [str(c) for c in spillover.columns if str(c) not in chans]
    if missing:
        raise CompensationError(
            f"{source} names detector(s) {', '.join(map(repr, missing))} that {target} does not have; "
            f"matrix detectors: {', '.join(map(str, spillover.columns))}; "
            f"channels of {target}: {', '.join(chans)}"
        )
    return [chans.index(str(c)) for c in spillover.columns]


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------
def spillover_from_keyword(
    text: str,
    *,
    channels: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    keyword: str = "$SPILLOVER",
) -> pd.DataFrame:
    """Parse a ``$SPILLOVER`` / ``SPILL`` / ``$SPILL`` / ``$COMP`` keyword value, strictly.

    Accepts ``n,name_1..name_n,v_11..v_nn`` with decimal points or decimal commas (each number
    then spans two comma-separated fields), and nameless ``$COMP`` values when ``channels`` has
    ``n`` names. Unlike the FCS reader (which warns and ignores a malformed keyword), this raises.

    Parameters
    ----------
    text
        The keyword's value.
    channels
        The file's ``$PnN`` names: for nameless matrices, and checked against the matrix names.
    path, keyword
        Named in error messages.

    Returns
    -------
    pandas.DataFrame
        ``n x n`` float64, index and columns the detector names.

    Raises
    ------
    CompensationError
        The value is malformed, or names a detector that ``channels`` lacks.
    """
    import warnings

    from cytophen.io.fcs import parse_spillover_keyword

    where = f"{path}: " if path is not None else ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = parse_spillover_keyword(text, path=path, keyword=keyword, channels=channels)
    if df is None:
        why = str(caught[-1].message) if caught else "the value is empty"
        raise CompensationError(f"{where}{keyword} cannot be used as a spillover matrix: {why}")
    if channels is not None:
        check_detectors(df, channels, source=f"{where}{keyword}", target="the file")
    return df


def _decode(raw: bytes) -> str:
    for enc in ("utf-8-sig", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1", errors="replace")  # pragma: no cover


def _number(tok: str) -> float | None:
    try:
        v = float(tok)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _tokens(line: str) -> list[str]:
    if "," in line:
        toks = next(csv.reader([line]))
    elif "\t" in line:
        toks = line.split("\t")
    else:
        try:
            toks = shlex.split(line, posix=True)
        except ValueError:
            toks = line.split()
    return [t.strip().strip('"').strip("'").strip() for t in toks]


def read_spillover_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a spillover matrix from a text file.

    Understands the dialects found in the wild:

    - CSV with a header of detector names and numeric rows (FlowKit ``comp_complete_example.csv``);
    - the same with a ``#`` before the header (FlowJo-style ``den_comp.csv``);
    - CSV with row names in the first column and an empty first header cell (CytoExploreR,
      R ``write.csv``), or a name for that column (pandas ``to_csv(index_label=...)``);
    - R ``read.table`` text: whitespace- or tab-separated, quoted names, with or without row
      names, preamble lines before the header, CR / CRLF / LF line endings (flowCore ``compref1``,
      ``compmatrix``);
    - matrices in percent (every diagonal entry 100) are divided by 100.

    The matrix is the last block of numeric rows; the header is the line just above it.

    Parameters
    ----------
    path
        The text file.

    Returns
    -------
    pandas.DataFrame
        Index: the row names if present, else the header names (square matrices); columns: the
        header names.

    Raises
    ------
    CompensationError
        Naming the file and line when no matrix is found or rows are ragged.
    """
    p = Path(path)
    try:
        text = _decode(p.read_bytes())
    except OSError as exc:
        raise CompensationError(f"{p}: cannot read spillover file: {exc.strerror or exc}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    parsed: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            s = s.lstrip("#").strip()
            if not s:
                continue
        parsed.append((lineno, _tokens(s)))

    def numeric_row(toks: list[str]) -> tuple[str | None, list[float]] | None:
        toks = [t for t in toks]
        if toks and all(_number(t) is not None for t in toks):
            return None, [float(t) for t in toks]
        if (
            len(toks) >= 2
            and _number(toks[0]) is None
            and all(_number(t) is not None for t in toks[1:])
        ):
            return toks[0], [float(t) for t in toks[1:]]
        return None

    # the last block of consecutive numeric rows
    end = None
    for k in range(len(parsed) - 1, -1, -1):
        if numeric_row(parsed[k][1]) is not None:
            end = k
            break
    if end is None:
        raise CompensationError(
            f"{p}: no numeric matrix rows found (expected a header of detector names, then one row of numbers per stain)"
        )
    start = end
    while start - 1 >= 0 and numeric_row(parsed[start - 1][1]) is not None:
        start -= 1
    if start == 0:
        raise CompensationError(
            f"{p}: no header line of detector names above the matrix (line {parsed[0][0]})"
        )
    header_line, header = parsed[start - 1]
    names = [h for h in header if h != ""]
    if len(set(names)) != len(names) or not names:
        raise CompensationError(f"{p}:{header_line}: header names are empty or repeated: {header}")
    rows = [numeric_row(parsed[k][1]) for k in range(start, end + 1)]
    if all(r[0] is not None for r in rows) and all(len(r[1]) == len(names) - 1 for r in rows):
        names = names[1:]  # the first header cell names the row-name column ("fluorochrome")
    n = len(names)
    row_names: list[str] = []
    values: list[list[float]] = []
    for (lineno, _), (rname, vals) in zip(parsed[start : end + 1], rows):
        if len(vals) != n:
            raise CompensationError(
                f"{p}:{lineno}: row has {len(vals)} values, expected {n} (one per header name: "
                f"{', '.join(names)})"
            )
        row_names.append(rname if rname is not None else "")
        values.append(vals)
    if all(r == "" for r in row_names):
        if len(values) != n:
            raise CompensationError(
                f"{p}: {len(values)} rows without row names under {n} header names; a matrix without "
                "row names must be square"
            )
        index = list(names)
    elif any(r == "" for r in row_names):
        raise CompensationError(f"{p}: some matrix rows have names and some do not")
    else:
        index = row_names
    mat = np.asarray(values, dtype=np.float64)
    if mat.shape[0] == mat.shape[1] and np.allclose(np.diag(mat), 100.0):
        mat = mat / 100.0
    return pd.DataFrame(mat, index=index, columns=names)


def write_spillover_csv(spillover: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a matrix as CSV with row names in the first column (readable by
    :func:`read_spillover_csv`, CytoExploreR and R ``read.csv(row.names=1)``)."""
    _as_matrix(spillover)
    spillover.to_csv(path, float_format="%.17g")


def read_channel_match(path: str | os.PathLike) -> dict[str, str]:
    """Read a control → primary channel table (flowCore ``comp_match``, CytoExploreR
    ``Compensation-Channels.csv``): two columns, file name and channel, with a header line.

    Rows whose channel is ``unstained`` (any case) are kept with the value ``"unstained"``.
    """
    p = Path(path)
    try:
        text = _decode(p.read_bytes()).replace("\r\n", "\n").replace("\r", "\n")
    except OSError as exc:
        raise CompensationError(
            f"{p}: cannot read channel match file: {exc.strerror or exc}"
        ) from None
    out: dict[str, str] = {}
    reader = csv.reader(io.StringIO(text))
    rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        raise CompensationError(f"{p}: channel match file is empty (expected 'file,channel' rows)")
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise CompensationError(f"{p}:{lineno}: expected two columns 'file,channel', got {row}")
        name, chan = row[0].strip(), row[1].strip()
        out[name] = "unstained" if chan.lower() == "unstained" else chan
    return out


# --------------------------------------------------------------------------------------------
# estimating a matrix from controls
# --------------------------------------------------------------------------------------------
def _sample_key(s: Sample) -> str:
    return s.path.name if s.path is not None else s.id


def _stat(x: np.ndarray, method: str) -> float:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan
    if method == "median":
        return float(np.median(x))
    return float(np.mean(x))


def compute_spillover(
    controls: Mapping[str, Sample] | Sequence[Sample],
    unstained: Sample,
    channel_match: Mapping[str, str] | str | os.PathLike,
    *,
    method: str = "median",
    detectors: Sequence[str] | None = None,
    positive_quantile: float | None = None,
) -> pd.DataFrame:
    """Estimate a spillover matrix from single-stain controls and an unstained control.

    flowCore's ``spillover(method="median", useNormFilt=FALSE)``: for every control *i* with
    primary detector *p(i)*, ``S[i, j] = (m_i[j] - u[j]) / (m_i[p(i)] - u[p(i)])`` where ``m_i`` is
    the per-detector median of the control's events and ``u`` that of the unstained control, on
    linear values (log-amplified FCS 2.0 channels are linearised first). All events are used
    (gate the controls beforehand to exclude debris/doublets). See docs/methods.md.

    Parameters
    ----------
    controls
        The stained controls: ``{name: Sample}`` or a list of Samples (named by file name).
    unstained
        The unstained control.
    channel_match
        ``{control name: primary detector}`` or a path to a two-column match CSV (see
        :func:`read_channel_match`). Names may be given with or without their extension; a row
        whose channel is ``unstained`` is ignored.
    method
        ``'median'`` (default, flowCore's) or ``'mean'``.
    detectors
        Rows and columns of the result. Default: the matched primary detectors, in the order of
        the unstained control's channels. When given, detectors without a control get an
        identity row (as CytoExploreR writes).
    positive_quantile
        ``None`` (default, flowCore): every event of a control counts. A number ``q`` in (0, 1):
        only the control's events whose primary detector exceeds the ``q`` quantile of the
        unstained control in that detector count (the *positive* population, as FlowJo/Diva and
        CytoExploreR estimate from a gated positive peak). Use it for controls in which most events
        are unstained (e.g. cells with a marker on a minority).

    Returns
    -------
    pandas.DataFrame
        Square matrix, index = columns = detectors, diagonal 1 for controlled detectors.

    Raises
    ------
    CompensationError
        Unknown method; a control without a match or a match without a control; a matched
        channel the files do not have; two controls for one detector; a control with no signal
        above the unstained control in its primary detector.
    """
    if method not in ("median", "mean"):
        raise CompensationError(f"unknown spillover method {method!r}; expected 'median' or 'mean'")
    if positive_quantile is not None and not (0.0 < float(positive_quantile) < 1.0):
        raise CompensationError(
            f"positive_quantile must be between 0 and 1, got {positive_quantile!r}"
        )
    if isinstance(channel_match, (str, os.PathLike)):
        channel_match = read_channel_match(channel_match)
    if isinstance(controls, Mapping):
        named = {str(k): v for k, v in controls.items()}
    else:
        named = {_sample_key(s): s for s in controls}
    match = {str(k): str(v) for k, v in channel_match.items() if str(v).lower() != "unstained"}

    def stem(name: str) -> str:
        return re.sub(r"\.(fcs|lmd)$", "", Path(name).name, flags=re.IGNORECASE)

    by_stem = {stem(k): v for k, v in match.items()}
    primary: dict[str, str] = {}
    unmatched = []
    for name in named:
        ch = match.get(name, match.get(Path(name).name, by_stem.get(stem(name))))
        if ch is None:
            unmatched.append(name)
        else:
            primary[name] = ch
    if unmatched:
        raise CompensationError(
            f"control(s) {', '.join(unmatched)} have no entry in the channel match; match entries: "
            f"{', '.join(f'{k} -> {v}' for k, v in match.items()) or 'none'}"
        )
    control_stems = {stem(n) for n in named}
    orphans = [k for k in match if stem(k) not in control_stems]
    if orphans:
        raise CompensationError(
            f"channel match names control(s) {', '.join(orphans)} that were not given; controls: "
            f"{', '.join(named) or 'none'}"
        )
    if not primary:
        raise CompensationError("no stained controls were given")
    dup = {ch for ch in primary.values() if list(primary.values()).count(ch) > 1}
    if dup:
        raise CompensationError(
            f"several controls have the same primary detector {', '.join(sorted(dup))}: "
            + ", ".join(f"{n} -> {c}" for n, c in primary.items() if c in dup)
        )
    chans = list(unstained.channels)
    wanted = list(primary.values())
    if detectors is None:
        missing = [c for c in wanted if c not in chans]
        if missing:
            raise CompensationError(
                f"matched channel(s) {', '.join(missing)} are not channels of the unstained control "
                f"{unstained.path or ''}; it has: {', '.join(chans)}"
            )
        dets = [c for c in chans if c in wanted]
    else:
        dets = [str(d) for d in detectors]
        missing = [c for c in wanted if c not in dets]
        if missing:
            raise CompensationError(
                f"matched channel(s) {', '.join(missing)} are not among the requested detectors "
                f"{', '.join(dets)}"
            )

    def columns(s: Sample, label: str) -> np.ndarray:
        idx = check_detectors(
            pd.DataFrame(columns=dets),
            s.channels,
            source="the spillover detectors",
            target=f"control {label}",
        )
        return np.column_stack([s.linear_column(i) for i in idx])

    def stats(x: np.ndarray) -> np.ndarray:
        return np.array([_stat(x[:, j], method) for j in range(x.shape[1])])

    xu = columns(unstained, _sample_key(unstained))
    u = stats(xu)
    S = np.eye(len(dets))
    for name, ch in primary.items():
        k = dets.index(ch)
        x = columns(named[name], name)
        if positive_quantile is not None:
            finite = xu[:, k][np.isfinite(xu[:, k])]
            thr = float(np.quantile(finite, positive_quantile)) if finite.size else -math.inf
            x = x[x[:, k] > thr]
            if x.shape[0] == 0:
                raise CompensationError(
                    f"control {name}: no event is above the unstained control's {positive_quantile} "
                    f"quantile ({thr:.6g}) in its primary detector {ch}"
                )
        m = stats(x) - u
        if not (m[k] > 0):
            raise CompensationError(
                f"control {name}: its {method} in the primary detector {ch} ({m[k] + u[k]:.6g}) is "
                f"not above the unstained control's ({u[k]:.6g}); wrong channel match or an empty control?"
            )
        S[k] = m / m[k]
    return pd.DataFrame(S, index=dets, columns=dets)
