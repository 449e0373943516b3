"""Exact top-k selection, shared by AbsTopK activations and the top-k weight projection, with one implementation
switch per backend.

The bisection: for non-negative floats the bit pattern orders like the value, so the k-th largest magnitude can be
found one bit at a time from the top: keep a bit when at least k entries are still at or above the candidate. One
compare-and-count pass per bit, no sort, and ``k`` may be a traced value (the projection's k changes every step while
annealing).

Implementations of the per-row AbsTopK threshold (``ModelConfig.topk_impl``), all exact and equal to the bit:

- ``bisect``: 31 passes over the whole activation (15 for bfloat16). Memory-bound once the activation leaves cache.
- ``blocked``: the same bisection run over blocks of rows of about :data:`BLOCK_ELEMS` entries (a ``lax.map``), so the
  passes read a block that stays in the CPU's L2 cache, and a block stops as soon as each of its rows counts exactly
  k entries at or above its candidate (about two thirds of the 31 passes on the demo model's activations); the k-th
  largest is then read off the kept entries. benchmarks/train_step.py prints the implementations side by side.
- ``top_k``: the k-th largest from ``lax.top_k`` (static k), the usual choice on GPU and TPU; slow on XLA:CPU.
- ``native``: wsparse's own C++ kernel (wsparse/native), called through ``jax.ffi``: each row bisected on its own in
  L1 from a lower bound, stopping at its own k-th entry. CPU only; 2-3x faster than ``blocked`` at the demo model's
  shapes (docs/results/speed.md).
- ``pallas``: the bisection of each block of rows in registers, as a Pallas kernel (wsparse/topk_pallas.py): one
  read of the activation. For GPUs (on CPU it runs in Pallas' interpreter, for tests).

``auto`` picks per ``jax.default_backend()``: ``native`` on CPU where the kernel builds, else ``blocked``, and
``pallas`` on a GPU (each measured; docs/results/speed.md), ``top_k`` on other accelerators (not measured).
The projection's switch (``SparsityConfig.topk_impl``) is in wsparse/sparsity.py.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from wsparse import native, topk_pallas

ROW_IMPLS = ("auto", "bisect", "blocked", "top_k", "native", "pallas")
BLOCK_ELEMS = 32768  # 128 KiB of float32 per block: fits L2 with room to spare (measured best of 8k..64k on CPU)


def largest_passing(ok: Callable[[jax.Array], jax.Array], n_bits: int, init: jax.Array) -> jax.Array:
    """The largest ``t`` built bit by bit from bit ``n_bits - 1`` down, starting from ``init`` (zeros of the wanted
    integer dtype and shape), for which ``ok(t)`` holds; ``ok`` must be monotone (true for small t, false above).

    A rolled loop: unrolling every bit at every call site makes a compiled train step several times slower to build.
    """
    dtype = init.dtype

    def try_bit(i: jax.Array, t: jax.Array) -> jax.Array:
        cand = t | jnp.left_shift(jnp.ones((), dtype), (n_bits - 1 - i).astype(dtype))
        return jnp.where(ok(cand), cand, t)

    return jax.lax.fori_loop(0, n_bits, try_bit, init)


def count(mask: jax.Array, axis: int | None = None, keepdims: bool = False) -> jax.Array:
    """Number of True entries, int32. Below 2^24 entries per sum the 0/1 values are summed in float32 (exact there):
    with jax 0.10 on CPU that is 1.3-7x faster than an int32 count or a bf16-into-float32 sum
    (benchmarks/train_step.py prints the AbsTopK alternatives)."""
    n = mask.size if axis is None else mask.shape[axis]
    if n < 2**24:
        return jnp.sum(mask.astype(jnp.float32), axis=axis, keepdims=keepdims).astype(jnp.int32)
    return jnp.sum(mask, axis=axis, keepdims=keepdims, dtype=jnp.int32)


def resolve(impl: str, choices: tuple[str, ...], defaults: dict[str, str]) -> str:
    """``auto`` -> the measured default of this backend: ``defaults[jax.default_backend()]``, else ``defaults["other"]``
    (an unmeasured accelerator); other names pass through."""
    if impl not in choices:
        raise ValueError(f"top-k implementation must be one of {choices}, got {impl!r}")
    if impl != "auto":
        return impl
    return defaults.get(jax.default_backend(), defaults["other"])


def _bisect_rows(a: jax.Array, k: int) -> jax.Array:
    """Bit pattern of the k-th largest entry of each row of non-negative ``a`` (shape ``[..., 1]``)."""
    int_t = {2: jnp.int16, 4: jnp.int32}[a.dtype.itemsize]
    n_bits = 8 * a.dtype.itemsize - 1  # the sign bit of |x| is always 0
    at_least_k = lambda c: count(a >= jax.lax.bitcast_convert_type(c, a.dtype), -1, keepdims=True) >= k
    t = largest_passing(at_least_k, n_bits, jnp.zeros(a.shape[:-1] + (1,), int_t))
    return jax.lax.bitcast_convert_type(t, a.dtype)


def _bisect_rows_until_exact(a: jax.Array, k: int) -> jax.Array:
    """:func:`_bisect_rows` that stops as soon as every row counts exactly ``k`` entries at or above its candidate
    (the candidate then separates the top k from the rest; on the demo model's activations a block of rows needs about
    two thirds of the passes), and reads the k-th largest entry as the smallest entry at or above the candidate. Rows
    with a tie at the k-th never count exactly k, so a block holding one runs all the passes. The same k-th largest
    to the bit (and exactly 0, where the plain bisection can end on a subnormal that a CPU compares as 0)."""
    int_t = {2: jnp.int16, 4: jnp.int32}[a.dtype.itemsize]
    n_bits = 8 * a.dtype.itemsize - 1
    as_float = lambda t: jax.lax.bitcast_convert_type(t, a.dtype)
    one = jnp.ones((), int_t)

    def undecided(state):
        i, _, n_t = state
        return (i < n_bits) & jnp.any(n_t != k)

    def try_bit(state):
        i, t, n_t = state
        cand = t | jnp.left_shift(one, (n_bits - 1 - i).astype(int_t))
        n_cand = count(a >= as_float(cand), -1, keepdims=True)
        ok = n_cand >= k
        return i + 1, jnp.where(ok, cand, t), jnp.where(ok, n_cand, n_t)

    rows = a.shape[:-1] + (1,)
    init = (jnp.int32(0), jnp.zeros(rows, int_t), jnp.full(rows, a.shape[-1], jnp.int32))  # count(a >= 0) = W
    _, t, _ = jax.lax.while_loop(undecided, try_bit, init)
    kth = jnp.min(jnp.where(a >= as_float(t), a, jnp.asarray(jnp.inf, a.dtype)), -1, keepdims=True)
    return jnp.where(jnp.isinf(kth), as_float(t), kth)  # inf: nothing kept (an all-NaN row) or an infinite k-th


def _blocked_rows(a: jax.Array, k: int) -> jax.Array:
    W = a.shape[-1]
    flat = a.reshape(-1, W)
    R = flat.shape[0]
    rows = max(1, min(R, BLOCK_ELEMS // W))
    if rows >= R:
        return _bisect_rows_until_exact(a, k)
    pad = (-R) % rows
    if pad:  # copies of a real row: a zero row would never count exactly k and keep its block to every pass
        flat = jnp.concatenate([flat, jnp.repeat(flat[-1:], pad, 0)])
    t = jax.lax.map(lambda blk: _bisect_rows_until_exact(blk, k), flat.reshape(-1, rows, W))
    return t.reshape(-1, 1)[:R].reshape(a.shape[:-1] + (1,))


def row_threshold(a: jax.Array, k: int, impl: str = "auto") -> jax.Array:
    """The k-th largest entry of each row (last axis) of non-negative ``a``, shape ``[..., 1]``, for static
    ``1 <= k <= a.shape[-1]``: ``a >= row_threshold(a, k)`` keeps the top k and every entry tied with the k-th."""
    return abs_row_threshold(a, k, impl)


def abs_row_threshold(x: jax.Array, k: int, impl: str = "auto") -> jax.Array:
    """``row_threshold(|x|, k, impl)``. The ``native`` kernel reads magnitudes itself (it clears the sign bit), so
    for it ``|x|`` is never written out."""
    cpu = "native" if native.in_use() else "blocked"
    impl = resolve(impl, ROW_IMPLS, {"cpu": cpu, "gpu": "pallas", "other": "top_k"})
    x = jax.lax.stop_gradient(x)
    if impl == "native":
        return native.row_threshold(x, k)
    if impl == "pallas":
        return topk_pallas.abs_row_threshold(x, k)
    a = jnp.abs(x)
    if impl == "top_k":
        return jax.lax.top_k(a, k)[0][..., k - 1:k]
    if impl == "blocked":
        return _blocked_rows(a, k)
    return _bisect_rows(a, k)
