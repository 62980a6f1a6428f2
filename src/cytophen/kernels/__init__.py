"""Compiled per-event kernels (numba, cached on disk). Private: use the gate and transform classes."""
