"""Start-up shortcuts for processes cytophen owns (the ``cytophen gate`` command, pool workers),
all applied by one switch, :func:`speed_up_start`.

numba's first load of a cached kernel installs its array registries, and one of them
(``numba.np.arraymath``) checks once for BLAS with ``import scipy.linalg.cython_blas``. That
statement runs ``scipy/linalg/__init__.py`` first, which imports all of scipy.linalg and scipy's
array-API layer (and through it ``numpy.f2py``): 0.13-0.25 s of every process's start-up, for a
module of BLAS function pointers that no cytophen kernel calls.

:func:`preload_cython_blas` loads that extension module itself, straight from its file, without
the package ``__init__``, and registers it under its real name: numba's check then finds it at no
cost, and gets the very same module (one extension module, initialised once). A later
``import scipy.linalg`` works as usual. This is only done in processes cytophen runs itself (never
on import of the library, so a notebook's interpreter is untouched); any problem leaves everything
as it was.

:func:`tune_malloc` keeps glibc's allocator from handing every sample's arrays (megabytes each:
the event block, float64 columns, compensated values) back to the kernel when they are freed and
faulting fresh zeroed pages in for the next sample: a third of the system time of a batch of
200 k-event files. Freed memory is reused for the next sample instead, so the process's memory
stays what one sample per thread needs at most, as before; it is only returned at exit.

The first two rely on numba's and scipy's internals, so they are applied only with the releases
they were checked against (:data:`TESTED_RELEASES`; tests/pipeline/test_batch_speed.py checks them with
the installed ones and fails on any other, so that an upgrade is checked before it is trusted).
With another release everything is left as it was: slower to start, never wrong.
"""

from __future__ import annotations

import sys

__all__ = ["speed_up_start", "TESTED_RELEASES"]

_NAME = "scipy.linalg.cython_blas"

#: Releases (``major.minor``) of the libraries whose internals the shortcuts were checked against.
TESTED_RELEASES = {"numba": ("0.68",), "scipy": ("1.17",)}


def speed_up_start(*, light_kernel_loads: bool = True) -> dict[str, bool]:
    """Apply the start-up shortcuts in a process cytophen owns from start to end.

    Never called on import of the library: a notebook's interpreter is left untouched.

    Parameters
    ----------
    light_kernel_loads
        Also load cached numba kernels without numba's compiler registries
        (:func:`_light_numba_cache_loads`).

    Returns
    -------
    dict
        Which shortcuts are in place: ``malloc`` (:func:`_tune_malloc`), ``cython_blas``
        (:func:`_preload_cython_blas`) and ``light_kernel_loads``.
    """
    return {
        "malloc": _tune_malloc(),
        "cython_blas": _preload_cython_blas(),
        "light_kernel_loads": light_kernel_loads and _light_numba_cache_loads(),
    }


def _tested(version: str, library: str) -> bool:
    """Whether ``version`` of ``library`` is a release listed in :data:`TESTED_RELEASES`."""
    return ".".join(version.split(".")[:2]) in TESTED_RELEASES[library]


def _preload_cython_blas() -> bool:
    """Load ``scipy.linalg.cython_blas`` without importing ``scipy.linalg``.

    Returns
    -------
    bool
        ``True`` when the module is now loaded (by this call or before), ``False`` when it could
        not be (an untested scipy release, an unusual layout): numba then imports it the usual
        way.
    """
    if _NAME in sys.modules:
        return True
    if "scipy.linalg" in sys.modules or "numba.np.arraymath" in sys.modules:
        return False  # nothing to save any more
    import importlib.machinery
    import importlib.util

    import scipy

    if not _tested(scipy.__version__, "scipy"):
        return False
    try:
        spec = importlib.util.find_spec("scipy.linalg")  # imports scipy (light), not scipy.linalg
        if spec is None or not spec.submodule_search_locations:
            return False
        finder = importlib.machinery.FileFinder(
            list(spec.submodule_search_locations)[0],
            (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        )
        sub = finder.find_spec(_NAME)
        if sub is None or sub.loader is None:
            return False
        module = importlib.util.module_from_spec(sub)
        sys.modules[_NAME] = module
        try:
            sub.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(_NAME, None)
            raise
        return True
    except (ImportError, OSError):  # pragma: no cover - depends on how scipy is installed
        return False


#: glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def _tune_malloc() -> bool:
    """Let glibc reuse freed sample-sized blocks instead of unmapping and re-faulting them.

    Sets ``M_MMAP_THRESHOLD`` to 32 MiB (smaller blocks come from the heap, whose freed memory is
    reused), ``M_TRIM_THRESHOLD`` to 512 MiB and ``M_TOP_PAD`` to 64 MiB (the heap is not shrunk
    after every sample and grows in larger steps). Call it once, early, in a process cytophen
    runs; the settings are inherited by processes forked from it.

    Returns
    -------
    bool
        ``True`` when glibc accepted the settings; ``False`` elsewhere (macOS, Windows, musl), where
        nothing is changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = getattr(libc, "mallopt", None)
        gnu = getattr(libc, "gnu_get_libc_version", None)
        if mallopt is None or gnu is None:  # not glibc
            return False
        ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        ok &= mallopt(_M_TRIM_THRESHOLD, 512 << 20)
        ok &= mallopt(_M_TOP_PAD, 64 << 20)
        return bool(ok)
    except OSError:  # pragma: no cover - no C library to load
        return False


def _light_numba_cache_loads() -> bool:
    """Load cached numba kernels without first installing every numba implementation registry.

    Before loading a kernel from the on-disk cache, numba refreshes its target context: it
    imports and installs the implementations of everything numba can compile (lists, dicts,
    unicode, random, linalg, datetime ...), 0.1-0.25 s, once per process, the largest part of a
    ``cytophen gate`` start-up after the imports themselves. Loading a compiled kernel needs only
    numba's runtime (NRT) to be initialised; the registries are for compiling. Here a cached load
    initialises the runtime and loads the kernel; should that fail for any reason, or should a
    kernel need compiling (a cache miss: numba's compiler refreshes the context itself), the full
    refresh happens as before. Only done in processes cytophen runs itself.

    Returns
    -------
    bool
        ``True`` when the lighter load is in place (now or before); ``False`` with an untested
        numba release.
    """
    import numba

    if not _tested(numba.__version__, "numba"):
        return False
    from numba.core import caching
    from numba.core.runtime import rtsys

    original = caching.Cache.load_overload
    if getattr(original, "_cytophen_light", False):
        return True

    def load_overload(self, sig, target_context):
        try:
            rtsys.initialize(target_context)
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - anything unexpected: numba's own full path
            return original(self, sig, target_context)

    load_overload._cytophen_light = True
    caching.Cache.load_overload = load_overload
    return True
