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
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

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


def _batch_rows(mesh, sharding, ndim: int) -> NamedSharding:
    """Sharded over the batch axis (the first) as the operand is, whole along every other."""
    return NamedSharding(mesh, PartitionSpec(parallel.full_spec(sharding, ndim)[0], *([None] * (ndim - 1))))


def _rowwise(call, rule: str, n_out: int):
    """``call`` with every operand and result split over the batch axis alone (each device runs its own batch rows,
    where XLA would otherwise gather the operands onto every device), and with a vmap rule that folds a batch axis
    into B."""

    def partition(mesh, arg_shapes, result_shape):
        q = arg_shapes[0].sharding
        args = tuple(_batch_rows(mesh, q, len(a.shape)) for a in arg_shapes)
        return mesh, call, infer(mesh, arg_shapes, result_shape), args

    def infer(mesh, arg_shapes, result_shape):
        return tuple(_batch_rows(mesh, arg_shapes[0].sharding, len(r.shape)) for r in result_shape)

    sharded = custom_partitioning(call)
    sharded.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=rule,
                          need_replication_factors=("t", "h", "d", "s"))

    @jax.custom_batching.custom_vmap
    def batched(*args):
        return sharded(*args)

    @batched.def_vmap
    def _(axis_size, in_batched, *args):
        args = [a if b else jnp.broadcast_to(a, (axis_size, *a.shape)) for a, b in zip(args, in_batched)]
        outs = batched(*(a.reshape(axis_size * a.shape[1], *a.shape[2:]) for a in args))
        return tuple(o.reshape(axis_size, -1, *o.shape[1:]) for o in outs), (True,) * n_out

    return batched


_forward = _rowwise(_forward_call, "b t h d, b t h d, b t h d, b h -> b t h d, b h t s", 2)
_backward = _rowwise(_backward_call,
                     "b t h d, b t h d, b t h d, b h, b h t s, b t h d -> b t h d, b t h d, b t h d, b h", 4)


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
