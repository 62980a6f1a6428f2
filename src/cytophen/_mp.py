"""Worker processes that never run the user's script again.

multiprocessing's ``forkserver`` and ``spawn`` start methods import the parent's ``__main__`` in
every new process (so that functions defined there can be found). Started from a plain script
without an ``if __name__ == "__main__":`` guard, that runs the whole script again in each worker:
the batch starts over inside its own workers, which fails ("bootstrapping phase") with a
``BrokenProcessPool`` and tracebacks. cytophen's workers only run cytophen's functions, so they
have no use for ``__main__``.

:func:`worker_context` gives a fork-server context whose processes are named
``cytophen-worker-N``. The fork server imports this module first (:data:`PRELOAD`), which makes
the processes forked from it skip the ``__main__`` import when, and only when, they carry that
name: any other process (a user's own pool sharing the fork server) is prepared as usual.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from multiprocessing import process, spawn

__all__ = ["worker_context", "PRELOAD", "WORKER_NAME"]

#: Name prefix of cytophen's worker processes.
WORKER_NAME = "cytophen-worker"
#: Modules the fork server imports once (each worker then starts as a fork of a warm interpreter).
PRELOAD = [
    "cytophen._mp",
    "cytophen.pipeline.worker",
    "cytophen.engine",
    "cytophen.io.fcs",
    "cytophen.pipeline._warm",
]


def _ours() -> bool:
    return process.current_process().name.startswith(WORKER_NAME)


def _skip_main_in_our_workers() -> None:
    """Wrap multiprocessing's ``__main__`` set-up of a new process (run in the process itself,
    after it took its name) so that cytophen's workers skip it. Effective in the fork server and
    the processes forked from it; in any other process the functions are never called."""
    if getattr(spawn._fixup_main_from_path, "_cytophen", False):
        return
    from_path, from_name = spawn._fixup_main_from_path, spawn._fixup_main_from_name

    def fixup_main_from_path(main_path):
        if not _ours():
            from_path(main_path)

    def fixup_main_from_name(mod_name):
        if not _ours():
            from_name(mod_name)

    fixup_main_from_path._cytophen = fixup_main_from_name._cytophen = True
    spawn._fixup_main_from_path = fixup_main_from_path
    spawn._fixup_main_from_name = fixup_main_from_name


_skip_main_in_our_workers()


if sys.platform != "win32":
    from multiprocessing import context as _context

    class _WorkerProcess(_context.ForkServerProcess):
        """A fork-server process named ``cytophen-worker-N``."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.name = f"{WORKER_NAME}-{self.name}"

    class _WorkerContext(_context.ForkServerContext):
        Process = _WorkerProcess


def worker_context():
    """The multiprocessing context for cytophen's worker pools: a fork server preloaded with
    :data:`PRELOAD` whose processes skip the parent's ``__main__`` (``spawn`` where there is no
    fork server: Windows, where a script needs its ``__main__`` guard as usual)."""
    if sys.platform == "win32" or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")  # pragma: no cover
    ctx = _WorkerContext()
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
