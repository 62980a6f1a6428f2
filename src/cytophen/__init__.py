"""cytophen: flow-cytometry gating and immunophenotyping.

Read FCS files, compensate and transform them, apply a declarative gating template with fast
compiled kernels, and get tidy population tables.

>>> import cytophen                                               # doctest: +SKIP
>>> sample = cytophen.read_fcs("sample.fcs")                      # doctest: +SKIP
>>> template = cytophen.load_template("bcell")                     # doctest: +SKIP
>>> result = cytophen.gate(sample, template)                      # doctest: +SKIP
>>> result.table                                                  # doctest: +SKIP

The public API is what ``__all__`` lists: :class:`Sample`, :class:`Template`,
:class:`GatingResult`, :class:`BatchResult`, the :mod:`~cytophen.gates` and
:mod:`~cytophen.transforms` namespaces, the functions below and the exception types (all in
:mod:`cytophen.errors`). Everything in a module or attribute whose name starts with ``_`` is
private.
"""

from __future__ import annotations

import os
import sys as _sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any


def _kernel_cache_dir() -> str | None:
    """Where numba keeps cytophen's compiled kernels unless ``NUMBA_CACHE_DIR`` says otherwise:
    the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches``
    on macOS, ``%LOCALAPPDATA%`` on Windows) + ``cytophen/numba``, so that a second run loads
    them instead of compiling again wherever cytophen is installed; ``None`` if it cannot be
    created or written."""
    if _sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    elif _sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    path = os.path.join(base, "cytophen", "numba")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


# numba reads NUMBA_CACHE_DIR once, when it is first imported: set it before any kernel module is
if "NUMBA_CACHE_DIR" not in os.environ and "numba" not in _sys.modules:
    _cache = _kernel_cache_dir()
    if _cache is not None:
        os.environ["NUMBA_CACHE_DIR"] = _cache

from cytophen._version import __version__  # noqa: E402
from cytophen.errors import (  # noqa: E402
    ClinicalError,
    CompensationError,
    CytophenError,
    FCSError,
    GateError,
    MarkerError,
    TemplateError,
    TransformError,
)
from cytophen.io.fcs import DEFAULT_REPAIRS  # noqa: E402
from cytophen.io.sample import Sample  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from cytophen.pipeline.batch import BatchResult
    from cytophen.result import GatingResult
    from cytophen.template import Template

__all__ = [
    "__version__",
    "Sample",
    "Template",
    "GatingResult",
    "BatchResult",
    "gates",
    "transforms",
    "read_fcs",
    "write_fcs",
    "load_template",
    "gate",
    "gate_files",
    "CytophenError",
    "FCSError",
    "CompensationError",
    "TransformError",
    "TemplateError",
    "MarkerError",
    "GateError",
    "ClinicalError",
]


#: Public names imported on first use (``cytophen.Template`` ...), so that ``import cytophen``
#: stays light: where each lives.
_LAZY = {
    "Template": "cytophen.template",
    "GatingResult": "cytophen.result",
    "BatchResult": "cytophen.pipeline.batch",
    "gates": None,
    "transforms": None,
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cytophen' has no attribute {name!r}")
    import importlib

    where = _LAZY[name]
    if where is None:  # a namespace: the module itself
        return importlib.import_module(f"cytophen.{name}")
    return getattr(importlib.import_module(where), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def read_fcs(path, *, dataset: int = 0, **kwargs) -> Sample:
    """Read one data set of an FCS file (see :func:`cytophen.io.fcs.read_fcs`)."""
    from cytophen.io.fcs import read_fcs as _read

    return _read(path, dataset=dataset, **kwargs)


def write_fcs(path, events, channels, **kwargs) -> None:
    """Write an FCS 3.1 file (see :func:`cytophen.io.fcs.write_fcs`)."""
    from cytophen.io.fcs import write_fcs as _write

    return _write(path, events, channels, **kwargs)


def load_template(path):
    """Load a gating template: cytophen YAML, GatingML 2.0 XML or FlowJo .wsp, or a template
    shipped with cytophen by name (``"bcell"``, ``"treg.yaml"``; a file that exists wins). See
    :func:`cytophen.interop.load_template`."""
    from cytophen.interop import load_template as _load

    return _load(path)


def gate(
    sample: Sample | str | os.PathLike,
    template: Template | str | os.PathLike,
    *,
    sample_id: str | None = None,
    compensation: str | pd.DataFrame | None = None,
    fitted: dict | None = None,
    seed: int = 0,
    pregated: str | None = None,
    include_hidden: bool = False,
    scale: str = "auto",
) -> GatingResult:
    """Apply a gating template to one sample.

    Parameters
    ----------
    sample
        A :class:`Sample` from :func:`read_fcs`, or the path of an FCS file (read with the
        default repairs).
    template
        A template from :func:`load_template`, or the path of one (cytophen YAML, GatingML 2.0
        XML or FlowJo ``.wsp``).
    sample_id
        Name of the sample in the table (default: the file name without its extension).
    compensation
        Override the template's compensation: ``'template'`` (as the template says), ``'keyword'``
        (the file's spillover keyword, an error for files without one), ``'FCS'`` (the keyword
        when present), ``'none'`` (the events are already compensated), or a spillover DataFrame
        (index: output names, columns: detector names).
    fitted
        Data-driven gates already fitted, by gate key (pooled fits, frozen studies); the
        others are fitted on this sample.
    seed
        Seed of the subsampling in data-driven fits: the same seed gives the same gates.
    pregated
        The population the file was exported after (it holds only that population's events):
        it and its ancestors are not gated (each counts every event), its descendants are gated
        as usual, and the other populations are not measured.
    include_hidden
        Also put the template's hidden (helper) populations in ``.table`` (they are always
        gated, and always in ``.membership``).
    scale
        What the file's values are, for the template's ``auto`` transforms: ``'auto'``
        (detected from the values), ``'linear'`` (raw or compensated), ``'logicle'`` (already
        logicle-transformed, 0 to ~4.5) or ``'channel'`` (FlowJo's 0-4096 channels).

    Returns
    -------
    GatingResult
        ``.table`` (tidy, one row per population: ``sample, file, population, parent, path,
        count, parent_count, percent_of_parent, percent_of_total`` and the template's
        statistics), ``.membership(name)`` (boolean array over all events), ``.events(name)``
        (the population's events as a DataFrame), ``.gates`` (the geometry each gate used),
        ``.skipped`` (clean-up steps skipped on this file), ``.plot(name)``.

    Raises
    ------
    FCSError, TemplateError
        The file or the template cannot be read, or ``pregated`` is not one of its populations.
    MarkerError
        The sample lacks markers that required populations are gated on (all of them named).
    CompensationError
        The compensation asked for cannot be applied to this sample.

    See Also
    --------
    gate_files : many files at once, in parallel, with output files.

    Examples
    --------
    >>> sample = cytophen.read_fcs("P01_W00_bcell.fcs")                     # doctest: +SKIP
    >>> result = cytophen.gate(sample, "bcell")                             # doctest: +SKIP
    >>> result.table[["population", "count", "percent_of_parent"]]          # doctest: +SKIP
    >>> result.events("dn").median()                                        # doctest: +SKIP
    """
    from cytophen.engine import gate as _gate

    if not hasattr(template, "populations"):
        template = load_template(template)
    if not isinstance(sample, Sample):
        sample = read_fcs(sample)
    return _gate(
        sample,
        template,
        sample_id=sample_id,
        compensation=compensation,
        fitted=fitted,
        seed=seed,
        pregated=pregated,
        include_hidden=include_hidden,
        scale=scale,
    )


def gate_files(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    template: Template | str | os.PathLike,
    *,
    jobs: int | None = None,
    scheduler: str | Any | None = None,
    compensation: str | os.PathLike | pd.DataFrame | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    manifest: str | os.PathLike | None = None,
    export_gated: str | None = None,
    seed: int = 0,
    plots: bool = False,
    repairs: Iterable[str] | None = DEFAULT_REPAIRS,
    pregated: str | None = None,
    include_hidden: bool = False,
    wait: bool = False,
    time_limit: float | None = None,
    scale: str = "auto",
    markers: Any = None,
    start_method: str = "forkserver",
    where: dict[str, str] | None = None,
) -> BatchResult:
    """Gate many FCS files with one template, in parallel; one bad file never stops the batch.

    Parameters
    ----------
    paths
        FCS files, folders (searched recursively for ``*.fcs`` and ``*.lmd``) or a manifest CSV,
        or a list of them.
    template
        A template from :func:`load_template`, or the path of one. A FlowJo workspace (its path,
        or a :class:`cytophen.interop.flowjo.Workspace` for one group) gates each file with the
        gates of its own workspace sample (docs/interop.md).
    jobs
        Samples gated at a time (default: all cores); ``1`` gates one at a time in this process.
    scheduler
        ``None`` (this process and, for long batches, a local process pool), ``'local'`` (a Dask
        LocalCluster of ``jobs`` workers), a scheduler address such as ``'tcp://10.0.0.5:8786'``,
        or a ``distributed.Client``.
    compensation
        Override the template's compensation: ``'template'`` (default), ``'keyword'``, ``'none'``,
        a spillover CSV path or a DataFrame (see :func:`gate`).
    out
        Output folder for ``populations.csv``/``.parquet``, ``populations_wide.csv``,
        ``gates.json``, ``errors.csv`` and ``run.json``, replaced all at once when the run ends
        (one run at a time per folder, see docs/batch.md); ``None`` writes nothing.
    resume
        Skip samples already finished in ``out`` with the same file content, template and
        compensation (needs ``out``).
    progress
        Show a progress bar (a widget in notebooks, text on a terminal, nothing otherwise).
    manifest
        Manifest CSV giving sample ids and metadata columns (subject, visit, panel ...).
    export_gated
        Also write each sample's events in this population to ``out/gated/<sample>.fcs``.
    seed
        Seed of the data-driven gates.
    plots
        Also draw each sample's gating plots into ``out/plots/<sample>/`` (needs ``out``).
    repairs
        FCS repairs allowed while reading each file (default: the default ones; ``()`` is
        strict; see :func:`read_fcs`). Recorded in ``run.json``.
    pregated
        The population every file was exported after (see :func:`gate`).
    include_hidden
        Also report the template's hidden (helper) populations in the tables and plots.
    wait
        When another run is writing into ``out``, wait for it to finish instead of raising.
    time_limit
        Seconds one sample may take; a sample that takes longer is stopped and becomes an
        ``errors`` row (stage ``timeout``). ``None``: no limit.
    scale
        What the files' values are, for the template's ``auto`` transforms (as :func:`gate`),
        detected per file by default.
    markers
        Marker names for channels whose ``$PnS`` is missing: a ``channel,marker[,file]`` CSV path
        or a :class:`cytophen.markers.MarkerMap`.
    start_method
        Where worker processes come from: ``'forkserver'`` (default: never this process) or
        ``'fork'`` (forked straight from this process: only for a script that owns its process
        from start to end, as the ``cytophen gate`` command does; never in a notebook).
    where
        Only the samples whose manifest columns read these values, e.g. ``{"panel": "bcell"}``
        to gate one panel of a study whose manifest lists both.

    Returns
    -------
    BatchResult
        ``.populations`` (the tidy table of every sample), ``.errors`` (one row per failed
        sample, with its reason), ``.gates``, ``.wide``, ``.n_ok``, ``.n_failed``.

    Raises
    ------
    TemplateError, InputError, CompensationError
        Before anything is gated or written: an invalid template, missing inputs, duplicate
        sample ids, a bad manifest or matrix, ``out`` in use by another run.

    See Also
    --------
    gate : one sample, with its memberships and events kept.

    Examples
    --------
    >>> batch = cytophen.gate_files("samples/", "bcell", jobs=4)                        # doctest: +SKIP
    >>> batch.populations.query("population == 'switched_memory'")                    # doctest: +SKIP
    """
    from cytophen.pipeline.batch import gate_files as _gate_files

    return _gate_files(
        paths,
        template,
        jobs=jobs,
        scheduler=scheduler,
        compensation=compensation,
        out=out,
        resume=resume,
        progress=progress,
        manifest=manifest,
        export_gated=export_gated,
        seed=seed,
        plots=plots,
        repairs=repairs,
        pregated=pregated,
        include_hidden=include_hidden,
        wait=wait,
        time_limit=time_limit,
        scale=scale,
        markers=markers,
        start_method=start_method,
        where=where,
    )
