"""The output folder of a batch: one run at a time, and its outputs replaced as one set.

A run takes the folder with a lock that dies with its process (:meth:`OutputFolder.acquire`); a
second run into the same folder is refused up front, naming the run that holds it, or waits for
it. The run's outputs are written into a new *generation* folder and switched into place with one
atomic rename (:meth:`OutputFolder.publish`), so that a reader, or a crash at any moment, sees the
outputs of one run, never parts of two. Layout (``DIR`` is ``--out``)::

    DIR/populations.csv, ... run.json   links to .cytophen/current/<name>
    DIR/plots, DIR/gated                links to .cytophen/current/plots, .../gated (when written)
    DIR/.cytophen/lock                  locked by the run writing DIR (its PID, host, start time)
    DIR/.cytophen/current               link to generations/<id>, the last finished run's outputs
    DIR/.cytophen/generations/<id>/     one run's outputs, complete before ``current`` points to it
    DIR/.cytophen/samples/<safe_id>.json   finished samples (what ``--resume`` reuses)
    DIR/.cytophen/plots/<safe_id>/, DIR/.cytophen/gated/<safe_id>.fcs   workers' per-sample files

A generation holds hard links to the per-sample plot and FCS files (copies where the file system
has no hard links), so a later run that re-gates a sample never changes a published generation.
Where symbolic links cannot be made (Windows without the privilege), the files are copied into
``DIR`` instead, ``run.json`` last: one file at a time is still atomic, the set is not.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

from cytophen._atomic import is_temp_name
from cytophen.errors import FolderInUseError

__all__ = ["OUTPUTS", "FolderInUseError", "OutputFolder", "current_generation"]

#: The tables a run writes into ``DIR`` (as links into its generation), ``run.json`` last.
OUTPUTS = (
    "populations.csv",
    "populations.parquet",
    "populations_wide.csv",
    "gates.json",
    "errors.csv",
    "run.json",
)
#: Folders of per-sample files (plots, exported events) a generation may hold.
_FOLDERS = ("plots", "gated")
#: Files made from a run's outputs after it ends (``--report``, ``--flowjo``): those of the run
#: being replaced are removed when it is, as they would describe other results.
_DERIVED = ("report.html", "cytophen.wsp")
_META = ".cytophen"


def current_generation(root: str | os.PathLike) -> Path:
    """The folder holding the outputs of the last finished run in ``root`` as one set (the
    generation ``.cytophen/current`` points to, resolved once), or ``root`` itself for a folder
    written by a cytophen version without generations."""
    root = Path(root)
    link = root / _META / "current"
    try:
        target = os.readlink(link)
    except OSError:
        return root
    return link.parent / target


class OutputFolder:
    """One run's hold on its output folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.meta = self.root / _META
        self.plots_dir = self.meta / "plots"
        self.gated_dir = self.meta / "gated"
        self._fd: int | None = None
        self._links: bool | None = None

    # -- the lock ---------------------------------------------------------------------------------
    def acquire(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the folder for this run (creating it), or raise :class:`FolderInUseError` naming
        the run that holds it; with ``wait``, call ``on_wait(who)`` and block until it is free.

        The lock is an ``flock`` on ``.cytophen/lock``, released by :meth:`release` or when this
        process ends in any way (a ``kill -9`` included), so it can never be left stale. Every
        ``acquire`` opens the file anew, so two runs in one process exclude each other too."""
        if self._fd is not None:
            return
        self.meta.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.meta / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            if not _try_lock(fd, block=False):
                who = self._holder(fd)
                if not wait:
                    raise FolderInUseError(
                        f"{self.root} is in use by another cytophen run ({who}); let it finish, "
                        "choose another output folder, or wait for it (--wait)"
                    ) from None
                if on_wait is not None:
                    on_wait(who)
                _try_lock(fd, block=True)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": list(sys.argv),
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(info) + "\n").encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        """Who holds the lock, in words (it may not have written its details yet)."""
        for _ in range(50):
            os.lseek(fd, 0, os.SEEK_SET)
            raw = os.read(fd, 65536)
            try:
                info = json.loads(raw)
                return f"PID {info['pid']} on {info['host']}, started {info['started']}"
            except (ValueError, KeyError, TypeError):
                time.sleep(0.01)
        return "its PID is not recorded yet"

    def release(self) -> None:
        """Give the folder back (closing the lock file releases the lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def held(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None):
        """``with folder.held(): ...``: :meth:`acquire`, then :meth:`release` on the way out."""
        self.acquire(wait=wait, on_wait=on_wait)
        try:
            yield self
        finally:
            self.release()

    # -- before a run -----------------------------------------------------------------------------
    def clean(self) -> None:
        """Remove what a killed run left (temporary files, a generation never switched to), and
        turn a folder written without generations into one (its outputs become the current
        generation, its per-sample plots and FCS files the workers' folders). Needs the lock."""
        self._need_lock()
        self._adopt_flat_layout()
        current = self._current_id()
        gens = self.meta / "generations"
        if gens.is_dir():
            for d in gens.iterdir():
                if d.name != current:
                    _remove(d)
        for folder in (self.root, self.meta, self.meta / "samples", self.gated_dir):
            _remove_temp_files(folder, top=folder == self.root)
        if self.plots_dir.is_dir():
            for d in self.plots_dir.iterdir():
                _remove_temp_files(d)

    def _adopt_flat_layout(self) -> None:
        flat = [n for n in OUTPUTS if _is_real(self.root / n, file=True)]
        folders = [n for n in _FOLDERS if _is_real(self.root / n, file=False)]
        if not flat and not folders:
            return
        for name in folders:  # the per-sample files become the workers' (what --resume checks)
            art = self.meta / name
            if not art.exists():
                os.rename(self.root / name, art)
            else:
                _link_tree(self.root / name, art)
                _remove(self.root / name)
        if self._current_id() is None and flat:
            gen = self._new_generation()
            for name in flat:
                _link(self.root / name, gen / name)
            for name in folders:
                _link_tree(self.meta / name, gen / name)
            self._switch(gen)
        self._add_links(self.meta / "current")  # the flat files, now links to the same content

    # -- after a run ------------------------------------------------------------------------------
    def publish(
        self,
        write: Callable[[Path], None],
        *,
        samples: Iterable[str],
        plots: bool,
        gated: bool,
    ) -> Path:
        """Make a run's outputs the folder's current ones, all at once.

        Parameters
        ----------
        write
            ``write(folder)`` writes the run's tables into ``folder`` (a new generation).
        samples
            ``safe_id`` of every sample whose plots and exported events belong to this run.
        plots, gated
            Whether the run drew plots / exported events.

        Returns
        -------
        pathlib.Path
            The new generation.
        """
        self._need_lock()
        samples = list(samples)
        gen = self._new_generation()
        write(gen)
        for name, wanted in (("plots", plots), ("gated", gated)):
            if not wanted:
                continue
            (gen / name).mkdir()
            for sid in samples:
                src = self.plots_dir / sid if name == "plots" else self.gated_dir / f"{sid}.fcs"
                if src.is_dir():
                    _link_tree(src, gen / name / sid)
                elif src.is_file():
                    _link(src, gen / name / src.name)
        _fsync_dir(gen)
        previous = self._current_id()
        for name in _DERIVED:
            derived = self.root / name
            if derived.is_file() and not derived.is_symlink():
                with contextlib.suppress(OSError):
                    derived.unlink()
        self._add_links(gen)  # what only the new run has: links that resolve after the switch
        self._switch(gen)
        self._drop_links()  # what only the replaced run had
        gens = self.meta / "generations"
        for d in gens.iterdir():  # the one replaced stays a run longer, for readers still on it
            if d.name not in (gen.name, previous):
                _remove(d)
        keep = set(samples)
        for name, folder in (("plots", self.plots_dir), ("gated", self.gated_dir)):
            if folder.is_dir():
                for entry in folder.iterdir():
                    sid = entry.name if name == "plots" else entry.name.removesuffix(".fcs")
                    if sid not in keep:
                        _remove(entry)
        return gen

    def link_outputs(self) -> None:
        """Make ``DIR/<name>`` a link into the current generation for whatever it holds (after
        something was added to it, e.g. plots drawn by ``cytophen report --replot``)."""
        self._add_links(self.meta / "current")

    # -- internals --------------------------------------------------------------------------------
    def _need_lock(self) -> None:
        if self._fd is None:  # pragma: no cover - a programming error
            raise RuntimeError(f"{self.root}: the output folder is not held by this run")

    def _current_id(self) -> str | None:
        try:
            return Path(os.readlink(self.meta / "current")).name
        except OSError:
            return None

    def _new_generation(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        gen = self.meta / "generations" / f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        gen.mkdir(parents=True)
        return gen

    def _switch(self, gen: Path) -> None:
        """Point ``current`` at ``gen`` with one rename (or, without symbolic links, copy the
        outputs into ``DIR``, ``run.json`` last)."""
        _fsync_dir(gen.parent)
        if not self._can_link():  # pragma: no cover - Windows without the privilege
            self._copy_out(gen)
            return
        tmp = self.meta / f".current.{secrets.token_hex(4)}.tmp"
        os.symlink(os.path.join("generations", gen.name), tmp)
        os.replace(tmp, self.meta / "current")
        _fsync_dir(self.meta)

    def _can_link(self) -> bool:
        """Whether symbolic links can be made here (not on Windows without the privilege)."""
        if self._links is None:
            if sys.platform != "win32":
                self._links = True
            else:  # pragma: no cover
                probe = self.meta / f".link.{secrets.token_hex(4)}.tmp"
                try:
                    os.symlink("lock", probe)
                    probe.unlink()
                    self._links = True
                except (OSError, NotImplementedError):
                    self._links = False
        return self._links

    def _copy_out(self, gen: Path) -> None:  # pragma: no cover - exercised on Windows only
        from cytophen._atomic import atomic_write_bytes

        for name in OUTPUTS:
            if (gen / name).is_file():
                atomic_write_bytes(self.root / name, (gen / name).read_bytes())
        for name in _FOLDERS:
            if (gen / name).is_dir():
                _remove(self.root / name)
                shutil.copytree(gen / name, self.root / name)

    def _add_links(self, gen: Path) -> None:
        """``DIR/<name>`` → ``.cytophen/current/<name>`` for every output ``gen`` holds."""
        if not self._can_link():  # pragma: no cover - the copying fallback
            return
        for name in (*OUTPUTS, *_FOLDERS):
            p = self.root / name
            target = os.path.join(_META, "current", name)
            if not (gen / name).exists() or (p.is_symlink() and os.readlink(p) == target):
                continue
            tmp = self.root / f".{name}.{secrets.token_hex(4)}.tmp"
            os.symlink(target, tmp)
            os.replace(tmp, p)

    def _drop_links(self) -> None:
        """Remove the links to outputs the current generation does not have (e.g. no plots)."""
        for name in (*OUTPUTS, *_FOLDERS):
            p = self.root / name
            if p.is_symlink() and not p.exists():
                p.unlink()


def _is_real(p: Path, *, file: bool) -> bool:
    if p.is_symlink():
        return False
    return p.is_file() if file else p.is_dir()


def _link(src: Path, dst: Path) -> None:
    """A hard link ``dst`` to ``src`` (a copy where the file system has none)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        if is_temp_name(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            _link_tree(Path(entry.path), dst / entry.name)
        elif entry.is_file(follow_symlinks=False) and not (dst / entry.name).exists():
            _link(Path(entry.path), dst / entry.name)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


def _remove_temp_files(folder: Path, *, top: bool = False) -> None:
    """Delete temporary files a killed writer left in ``folder`` (in ``DIR`` itself only those of
    cytophen's own outputs: other programs may be writing their files there)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not is_temp_name(entry.name):
            continue
        if top and not entry.name[1:].startswith(tuple(f"{n}." for n in (*OUTPUTS, *_FOLDERS))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries durable (a power cut after the switch must not lose them)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - a platform that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _try_lock(fd: int, *, block: bool) -> bool:
    """Lock ``fd``'s file for this open file (``False``: held by someone else, when not
    ``block``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: a lock on one byte far past the details
        import msvcrt

        os.lseek(fd, 1 << 30, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not block:
                    return False
                time.sleep(0.5)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True
