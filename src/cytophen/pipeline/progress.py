"""What a batch shows while it runs: the progress bar (tqdm, imported only when shown), a
background task, and the message while another run holds the output folder."""

from __future__ import annotations

import sys
from typing import Any


class _Background:
    """``func(*args)`` run on a daemon thread; :meth:`result` waits for it (and re-raises)."""

    def __init__(self, func, *args):
        import threading

        self._out: dict[str, Any] = {}

        def target():
            try:
                self._out["value"] = func(*args)
            except BaseException as exc:  # pragma: no cover - re-raised by result()
                self._out["error"] = exc

        self._thread = threading.Thread(target=target, name="cytophen-bg", daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if "error" in self._out:  # pragma: no cover
            raise self._out["error"]
        return self._out["value"]


def _in_notebook() -> bool:
    return "ipykernel.zmqshell" in sys.modules


class _NoBar:
    """What :func:`_progress_bar` returns when there is nothing to show (no tqdm import)."""

    disable = True

    def update(self, n: int = 1) -> None:
        pass

    def write(self, *args, **kwargs) -> None:  # pragma: no cover - only called when enabled
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool, *, monitor: bool = True):
    """A progress bar of ``total`` files (``monitor=False``: without tqdm's monitor thread, for
    a process that forks its workers once the batch has started)."""
    enabled = bool(progress) and (_in_notebook() or sys.stderr.isatty())
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    if not monitor:
        tqdm.monitor_interval = 0
    return tqdm(total=total, unit="file", desc="gating", disable=not enabled, dynamic_ncols=True)


def _waiting(progress: bool):
    """What to say while waiting for another run to release the output folder."""

    def say(who: str) -> None:
        if progress:
            print(f"waiting for the run holding the output folder ({who})", file=sys.stderr)

    return say
