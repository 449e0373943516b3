"""Causal attention on CPU through wsparse's C++ kernel (``attention.cc``): float32 ``[B, T, H, d]`` operands, the
optional sink, forward and backward.

Each (batch row, head) is done whole in cache: no ``[B, H, T, T]`` scores or probabilities in memory, no transposes
to put heads first, and the backward recomputes the probabilities from the two numbers per query row that the
forward keeps. The results equal :func:`wsparse.model._attention`'s XLA form up to float rounding (tests compare
values and gradients). Under a sharded jit each device runs its own batch rows; under vmap the batch axis joins B.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wsparse import native, parallel


def _forward_call(q, k, v, sink_BH):
    B, T, H, _ = q.shape
    out = (jax.ShapeDtypeStruct(q.shape, jnp.float32), jax.ShapeDtypeStruct((B, H, T, 2), jnp.float32))
    call = jax.ffi.ffi_call(native._targets["attention_forward"], out, vmap_method="broadcast_all")
    return tuple(call(q, k, v, sink_BH, part_entries=np.int64(native.PART_ENTRIES)))


def _backward_call(q, k, v, sink_BH, stats, g):
    out = (*(jax.ShapeDtypeStruct(q.shape, jnp.float32) for _ in range(3)),
           jax.ShapeDtypeStruct(sink_BH.shape, jnp.float32))
    call = jax.ffi.ffi_call(native._targets["attention_backward"], out, vmap_method="broadcast_all")
    return tuple(call(q, k, v, sink_BH, stats, g, part_entries=np.int64(native.PART_ENTRIES)))


# Each device runs its own batch rows; under vmap the batch axis joins B.
_forward = parallel.split_rows(_forward_call, "b t h d, b t h d, b t h d, b h -> b t h d, b h t s", 2)
_backward = parallel.split_rows(
    _backward_call, "b t h d, b t h d, b t h d, b h, b h t s, b t h d -> b t h d, b t h d, b t h d, b h", 4)


@jax.custom_vjp
def attention(q_BTHd: jax.Array, k_BTHd: jax.Array, v_BTHd: jax.Array, sink_BH: jax.Array) -> jax.Array:
    """Causal softmax attention ``[B, T, H, d]`` of float32 operands; ``sink_BH`` adds e^{sink} to each softmax
    denominator of (batch row, head) (-inf: no sink)."""
    native._require()
    return _forward(q_BTHd, k_BTHd, v_BTHd, sink_BH)[0]


def _attention_fwd(q, k, v, sink_BH):
    native._require()
    out, stats = _forward(q, k, v, sink_BH)
    return out, (q, k, v, sink_BH, stats)


def _attention_bwd(res, g):
    return _backward(*res, g)


attention.defvjp(_attention_fwd, _attention_bwd)
