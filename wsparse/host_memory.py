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
unless ``WSPARSE_KEEP_HEAP=0``, or JAX will compute on an accelerator: ``JAX_PLATFORMS`` names one, or (unset) a GPU or
TPU plugin is installed. There the buffers are device memory, and one malloc arena for all threads gains nothing that
was measured. It must run before XLA starts its threads (the first JAX computation): a thread picks
its arena at its first ``malloc``. Importing ``jax`` first is fine; computing with it first is too late: the call
then has no effect on XLA's threads, and it warns.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int


def is_glibc() -> bool:
    """Whether this process runs on glibc (musl, macOS and Windows have other mallocs)."""
    try:
        return platform.system() == "Linux" and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def accelerator_expected() -> bool:
    """Whether JAX will pick a GPU or TPU: ``JAX_PLATFORMS`` names a platform other than the CPU or, where it is unset,
    a JAX plugin (the ``jax_plugins`` entry points or namespace package, as JAX finds them) or libtpu is installed.
    Nothing is imported."""
    platforms = [p.strip() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms:
        return any(p != "cpu" for p in platforms)
    import importlib.metadata
    import importlib.util

    return (bool(importlib.metadata.entry_points(group="jax_plugins")) or importlib.util.find_spec("jax_plugins")
            is not None or importlib.util.find_spec("libtpu") is not None)


def keep_freed_memory() -> bool:
    """Sets glibc's malloc to keep freed memory mapped (see the module's docstring); true where it did."""
    if os.environ.get("WSPARSE_KEEP_HEAP", "1") == "0" or not is_glibc() or accelerator_expected():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = all(mallopt(p, v) == 1 for p, v in ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    if done and _cpu_backend_started():
        warnings.warn("wsparse was imported after JAX's first computation on the CPU: XLA's threads keep glibc's "
                      "default malloc, so every compiled call faults its temporary buffer in again (a third of a "
                      "train step on 2 cores; wsparse.host_memory). Import wsparse before computing with JAX.",
                      stacklevel=3)
    return done


def _cpu_backend_started() -> bool:
    """Whether JAX has already started its backends, the CPU's alone (so XLA:CPU's threads exist). Reads a private
    table of jax's; any change there only silences the warning."""
    backends = getattr(sys.modules.get("jax._src.xla_bridge"), "_backends", None)
    return isinstance(backends, dict) and bool(backends) and set(backends) <= {"cpu"}
