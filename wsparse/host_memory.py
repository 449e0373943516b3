"""Keeps the memory XLA:CPU frees in the process, so that the next call does not fault it in again.

A compiled XLA:CPU program gets one temporary buffer per call for everything it computes along the way: 316 MB for the
demo model's train step at batch 64. XLA takes it from ``malloc`` on one of its own threads and frees it when the call
ends. glibc hands a request that large to ``mmap`` and gives it back with ``munmap`` (a thread's own malloc arena
always does, whatever the settings), so every call starts on fresh pages and the kernel faults in and zeroes each of
them: 83 thousand page faults and about 270 ms of system time per demo train step on 2 cores, a third of the step's
wall time (docs/results/speed.md, "XLA's temporary buffer").

:func:`keep_freed_memory` tells glibc to serve every thread from the main arena, never to ``mmap`` a block, and not to
return freed memory at the top of the heap below 2 GiB. The buffer then comes back from the heap on each call, already
mapped. The price is resident memory: the process keeps its peak heap. ``import wsparse`` calls it, on Linux with glibc,
unless ``WSPARSE_KEEP_HEAP=0``. It must run before XLA starts its threads (the first JAX computation): a thread picks
its arena at its first ``malloc``. Importing ``jax`` first is fine; computing with it first is too late, and the call
then has no effect on XLA's threads.
"""

from __future__ import annotations

import ctypes
import os
import platform

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Sets glibc's malloc to keep freed memory mapped (see the module's docstring); true where it did."""
    if os.environ.get("WSPARSE_KEEP_HEAP", "1") == "0" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(p, v) == 1 for p, v in ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
