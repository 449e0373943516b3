"""AbsTopK's per-row threshold as a Pallas kernel: the GPU default (``model.topk_impl = pallas``).

XLA runs the bisection of :mod:`wsparse.topk` as one compare-and-count pass over the whole activation per bit: 15
reads of a bfloat16 activation, 31 of a float32 one. On an H100 at the paper's 4x shape (batch 128) that made
AbsTopK 55% of the sparse train step. This kernel reads each block of rows once into registers and runs the same
bisection there, one bit per step, on the magnitudes' float32 bit patterns (bfloat16 widens exactly, with its low 16
bits zero, so it needs only the top 15 bits' steps). The threshold is the same to the bit as ``bisect``'s: the k-th
largest magnitude of the row (NaN never counts; a row with fewer than k entries at or above zero gives 0).

Pallas lowers the kernel through Triton on a GPU; on CPU it runs in Pallas' interpreter, which is how the tests
check it without a GPU (slowly: use it there for tests only).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from wsparse import parallel

BLOCK_ELEMS = 8192  # entries of one program's block of rows (whole rows, at least one)


def _kernel(x_ref, t_ref, *, k: int, n_steps: int):
    a = jnp.abs(x_ref[...].astype(jnp.float32))
    key = jnp.where(a == a, jax.lax.bitcast_convert_type(a, jnp.int32), -1)  # NaN: below every candidate

    def step(i, t):
        cand = t | jnp.left_shift(jnp.int32(1), 30 - i)
        n = jnp.sum((key >= cand[:, None]).astype(jnp.int32), axis=1)
        return jnp.where(n >= k, cand, t)

    t_ref[...] = jax.lax.fori_loop(0, n_steps, step, jnp.zeros((key.shape[0],), jnp.int32))


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _call(x: jax.Array, k: int) -> jax.Array:
    """``[..., w] -> [..., 1]`` thresholds of ``|x|`` in ``x.dtype``, all rows on this device."""
    W = x.shape[-1]
    flat = x.reshape(-1, W)
    Wp = _pow2_at_least(W)  # Triton's blocks are powers of two: NaN pads a row and never counts
    if Wp != W:
        flat = jnp.pad(flat, ((0, 0), (0, Wp - W)), constant_values=jnp.nan)
    R = flat.shape[0]
    rows = min(_pow2_at_least(R), max(1, BLOCK_ELEMS // Wp))
    Rp = -(-R // rows) * rows
    if Rp != R:
        flat = jnp.pad(flat, ((0, Rp - R), (0, 0)))
    n_steps = 31 - (23 - jnp.finfo(x.dtype).nmant)  # bits below the dtype's mantissa are zero once widened
    bits = pl.pallas_call(
        functools.partial(_kernel, k=k, n_steps=n_steps),
        out_shape=jax.ShapeDtypeStruct((Rp,), jnp.int32),
        grid=(Rp // rows,),
        in_specs=[pl.BlockSpec((rows, Wp), lambda i: (i, 0))],
        out_specs=pl.BlockSpec((rows,), lambda i: (i,)),
        interpret=jax.default_backend() == "cpu",
    )(flat)
    t = jax.lax.bitcast_convert_type(bits[:R], jnp.float32).astype(x.dtype)
    return t.reshape(x.shape[:-1] + (1,))


@functools.cache
def _batched_call(k: int):
    return parallel.rowwise(lambda a: _call(a, k))


def abs_row_threshold(x: jax.Array, k: int) -> jax.Array:
    """The k-th largest ``|x|`` of each row (last axis), shape ``[..., 1]``, in ``x.dtype``, for static
    ``1 <= k <= x.shape[-1]``; equal to the bit to ``topk.abs_row_threshold(x, k, "bisect")``."""
    return _batched_call(int(k))(x)
