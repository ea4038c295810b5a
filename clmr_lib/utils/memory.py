"""Keep freed memory for reuse: large activations otherwise cost a page fault per 4 KiB on every step.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it to the kernel on ``free``. A training step allocates and frees activations
of hundreds of MiB (SampleCNN's first blocks at batch 48: 0.5 GB each), so each step the kernel
maps and zeroes them again, page by page: on 2 CPU cores this took more time than the convolutions
(``benchmarks/bench_sample_cnn.py``). With ``mmap`` off and trimming off, freed blocks stay in the
heap and the next step reuses them. The resident size then stays at the peak of a step, which a
training or embedding process reaches anyway.

Only glibc (Linux) has these settings; elsewhere :func:`keep_freed_memory` does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: ``mallopt`` parameters of glibc's ``<malloc.h>``.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: glibc stores the trim threshold as a ``size_t``: -1 becomes the largest one, so the heap is never trimmed.
NEVER = -1

_applied = False


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks of any size for reuse instead of unmapping them (once per process).

    Returns:
        Whether the settings are in force (False off glibc, e.g. macOS, Windows or musl).
    """
    global _applied
    if _applied:
        return True
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trim = libc.mallopt(M_TRIM_THRESHOLD, NEVER)
    no_mmap = libc.mallopt(M_MMAP_MAX, 0)
    _applied = bool(trim and no_mmap)
    return _applied
