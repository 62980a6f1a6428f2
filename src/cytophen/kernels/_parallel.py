"""How the parallel kernels are launched (shared by the gating and transform kernels)."""

from __future__ import annotations

import numba as nb


def run_dynamic(kernel, *args) -> None:
    """Run a parallel kernel with its chunks handed out dynamically (one at a time), so a busy
    core delays only the chunks it is working on. (Set from Python: inside a kernel it would
    prevent on-disk caching.)"""
    old = nb.get_parallel_chunksize()
    nb.set_parallel_chunksize(1)
    try:
        kernel(*args)
    finally:
        nb.set_parallel_chunksize(old)
