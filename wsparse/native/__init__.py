"""wsparse's own CPU kernels in C++, called from XLA through ``jax.ffi``: AbsTopK's per-row threshold
(``row_threshold.cc``), the transpose of the last two axes that the weight gradients read (``transpose.cc``), where
the weight projection cuts a tensor (``top_k_cut.cc``) and causal attention, forward and backward (``attention.cc``,
wrapped by :mod:`wsparse.native.attention`).

There is no build step at install. The first process that asks for the kernels compiles them with the machine's C++
compiler (``$CXX``, else ``c++`` or ``g++``) against the FFI headers that jaxlib ships, for this CPU
(``-march=native``), into one library in a cache directory (``$WSPARSE_NATIVE_CACHE``, else
``~/.cache/wsparse/native``), under a key made of the sources, the compiler, the flags, the jaxlib version and the
CPU's features, so a shared home directory never hands one machine another's binary. Later processes load the cached
library. Where no compiler is found, the build fails, or ``WSPARSE_NATIVE=0`` is set, :func:`available` is false:
``topk`` and ``sparsity`` fall back to their XLA bisections, which give the same thresholds and masks, and
``matmul`` to autodiff's weight gradients, which differ by float rounding (tests compare each pair).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

from wsparse import parallel

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = tuple(os.path.join(_HERE, name) for name in ("row_threshold.cc", "transpose.cc", "top_k_cut.cc",
                                                       "attention.cc"))
HEADERS = tuple(os.path.join(_HERE, name) for name in ("parallel_for.h", "vec.h"))  # in the cache key, not compiled
SYMBOLS = {"row_threshold": "WsparseRowThreshold", "transpose": "WsparseTranspose",  # kernel -> exported handler
           "top_k_cut": "WsparseTopKCut", "attention_forward": "WsparseAttentionForward",
           "attention_backward": "WsparseAttentionBackward"}
# -fopenmp-simd honours the kernels' `omp simd` loops (no OpenMP runtime); -fno-trapping-math lets GCC vectorise
# selects (no floating-point result changes: the kernels never read the FPU's exception flags).
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w", "-fopenmp-simd", "-fno-trapping-math")
# A call's rows are split over XLA's intra-op threads in parts of at least this many entries: 2^15 against 2^18 was
# 4% and 13% faster on evaluation passes at 16 sequences, and the same or 5% faster in the mask loop (speed.md).
PART_ENTRIES = 1 << 15


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def cache_dir() -> str:
    return os.environ.get("WSPARSE_NATIVE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "wsparse",
                                                                   "native")


def library_path(cxx: str) -> str:
    """Where the library built by ``cxx`` for these sources, jaxlib and CPU lives."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    sources = [open(path).read() for path in SOURCES + HEADERS]
    key = hashlib.sha256("\0".join([*sources, version, " ".join(FLAGS), jax.__version__, platform.machine(),
                                    _cpu_features()]).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"kernels_{key}.so")


def build(cxx: str, path: str) -> None:
    """Compiles the kernels to ``path`` (written under another name, then renamed: processes may race to build)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    cmd = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), *SOURCES, "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    os.replace(tmp, path)


def load(cxx: str) -> tuple[ctypes.CDLL, str]:
    """The kernels' library and its path, built with ``cxx`` first if the cache does not hold it yet."""
    path = library_path(cxx)
    if not os.path.exists(path):
        build(cxx, path)
    return ctypes.cdll.LoadLibrary(path), path


@functools.cache
def available() -> bool:
    """Whether the kernels are built (building them now if need be), loaded and registered with XLA for the CPU."""
    if os.environ.get("WSPARSE_NATIVE", "1") == "0" or platform.system() not in ("Linux", "Darwin"):
        return False
    cxx = _compiler()
    if cxx is None:
        return False
    try:
        lib, path = load(cxx)
        # One target name per build: a second copy of wsparse in the process (benchmarks/prune_tasks.py --before)
        # registers its own kernels beside these instead of being handed these.
        key = os.path.basename(path).split("_")[-1].split(".")[0]
        for kernel, symbol in SYMBOLS.items():
            _targets[kernel] = f"wsparse_{kernel}_{key}"
            if _targets[kernel] not in _registered:
                jax.ffi.register_ffi_target(_targets[kernel], jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
                _registered.add(_targets[kernel])
    except (OSError, RuntimeError, AttributeError) as e:
        warnings.warn(f"wsparse's CPU kernels are unavailable: AbsTopK uses the XLA bisection and the weight "
                      f"gradients autodiff's dots: {e}", stacklevel=2)
        return False
    return True


def in_use() -> bool:
    """Whether the CPU defaults (AbsTopK's threshold, the projection's cut, the weight gradients, attention) use these
    kernels: on the CPU backend, where they build. The backend is checked first, so an accelerator host never
    compiles them."""
    return jax.default_backend() == "cpu" and available()


_registered: set[str] = set()
_targets = {kernel: f"wsparse_{kernel}" for kernel in SYMBOLS}  # the registered names, set by available()


def _require() -> None:
    if not available():
        raise RuntimeError("wsparse's CPU kernels are unavailable (see wsparse.native)")


def _call(a: jax.Array, k: int) -> jax.Array:
    out = jax.ShapeDtypeStruct(a.shape[:-1] + (1,), jnp.float32)
    call = jax.ffi.ffi_call(_targets["row_threshold"], out, vmap_method="broadcast_all")
    return call(a, k=np.int64(k), part_entries=np.int64(PART_ENTRIES))


@functools.cache
def _batched_call(k: int):
    """The kernel for one k, row-sharded under a sharded jit and with a vmap rule."""
    return parallel.rowwise(lambda a: _call(a, k))


def row_threshold(a: jax.Array, k: int) -> jax.Array:
    """The k-th largest entry of each row (last axis) of non-negative ``a``, shape ``[..., 1]``, for static
    ``1 <= k <= a.shape[-1]``; NaN never counts, and a row with fewer than k entries at or above zero gives 0.
    bfloat16 runs in float32 (exact both ways: the k-th largest is one of the entries)."""
    _require()
    return _batched_call(int(k))(a.astype(jnp.float32)).astype(a.dtype)


def _transpose_call(a: jax.Array) -> jax.Array:
    out = jax.ShapeDtypeStruct(a.shape[:-2] + (a.shape[-1], a.shape[-2]), a.dtype)
    return jax.ffi.ffi_call(_targets["transpose"], out, vmap_method="broadcast_all")(a)


def _swapped(sharding, ndim: int):
    spec = parallel.full_spec(sharding, ndim)
    return NamedSharding(sharding.mesh, PartitionSpec(*spec[:-2], spec[-1], spec[-2]))


def _transpose_partition(mesh, arg_shapes, result_shape):
    arg = arg_shapes[0].sharding
    return mesh, _transpose_call, _swapped(arg, len(arg_shapes[0].shape)), (arg,)


def _transpose_infer(mesh, arg_shapes, result_shape):
    return _swapped(arg_shapes[0].sharding, len(arg_shapes[0].shape))


# Each device transposes its own block, which stays on it (without this rule XLA would gather the whole operand).
_sharded_transpose = custom_partitioning(_transpose_call)
_sharded_transpose.def_partition(_transpose_partition, infer_sharding_from_operands=_transpose_infer,
                                 sharding_rule="... i j -> ... j i")
_batched_transpose = parallel.with_vmap(_sharded_transpose)


def transpose(a: jax.Array) -> jax.Array:
    """``a`` with its last two axes swapped (``jnp.swapaxes(a, -1, -2)``, exactly), computed by the C++ kernel, an
    operation XLA cannot fuse with the ops that produce ``a``. Not differentiable (the weight gradients use it inside
    their own backward pass)."""
    _require()
    return _batched_transpose(a)


def top_k_cut(key: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
    """For a flat uint32 ``key`` and a traced ``k`` in [1, key.size]: the k-th largest key ``t`` and an index
    ``stop`` such that ``(key > t) | ((key == t) & (arange(size) < stop))`` keeps exactly k entries, the tied ones
    by lowest index (the weight projection's rule)."""
    _require()
    out = (jax.ShapeDtypeStruct((), jnp.uint32), jax.ShapeDtypeStruct((), jnp.int32))
    call = jax.ffi.ffi_call(_targets["top_k_cut"], out, vmap_method="sequential")
    return call(key.astype(jnp.uint32).ravel(), jnp.asarray(k, jnp.int32))
