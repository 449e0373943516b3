"""Device mesh, shardings and multi-host start-up.

One ``Mesh`` with a ``data`` axis: the batch is sharded along it, parameters and optimizer state are replicated.
The same code runs on one CPU, one GPU, N fake CPU devices (``--xla_force_host_platform_device_count``) or a
multi-host pod, where each process feeds its own slice of the global batch. :func:`rowwise` (one operand, row by
row) and :func:`split_rows` (several operands sharing a batch axis) give wsparse's own kernels (C++ on CPU, Pallas on
GPU) the sharding and vmap rules that XLA cannot infer for a custom call.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from wsparse.config import DistributedConfig

DATA_AXIS = "data"


def initialize(cfg: DistributedConfig) -> None:
    """Starts jax.distributed when configured; must run before any other JAX call."""
    if not cfg.enabled:
        return
    # CPU processes need a collectives backend to talk to each other (local multi-process runs, CPU clusters).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=cfg.coordinator_address,
        num_processes=cfg.num_processes,
        process_id=cfg.process_id,
    )
    # Every process has just connected, so they are in step: one trivial collective now sets up the CPU collectives'
    # context, whose rendezvous waits only 30 s, before compile times can drift the processes apart.
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("wsparse: all processes started")


def make_mesh(n_data: int = -1) -> Mesh:
    """A 1-D mesh over ``n_data`` devices (all of them for -1), ordered so each host's devices are contiguous."""
    devices = jax.devices()
    n = len(devices) if n_data == -1 else n_data
    if not 1 <= n <= len(devices):
        raise ValueError(f"train.mesh_data={n_data}: this process sees {len(devices)} device(s)")
    return Mesh(np.array(devices[:n]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh, microbatches: int = 1) -> None:
    n = mesh.devices.size
    if global_batch % n or global_batch % jax.process_count():
        raise ValueError(
            f"train.batch_size={global_batch} must be divisible by the {n} device(s) on the data axis "
            f"and the {jax.process_count()} process(es)")
    if (global_batch // n) % microbatches:
        raise ValueError(f"train.microbatches={microbatches} must divide each device's {global_batch // n} rows")


def global_batch(local_batch: np.ndarray, mesh: Mesh) -> jax.Array:
    """Assembles this process's rows into the global batch array sharded over the data axis."""
    return jax.make_array_from_process_local_data(batch_sharded(mesh), local_batch)


def replicate(tree, mesh: Mesh):
    """Places a host pytree on every device of the mesh (identical on every process)."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def with_vmap(call: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """``call`` (one array in, one out, leading axes independent) with a vmap rule, which custom_partitioning lacks:
    a batch axis is one more leading axis."""

    @jax.custom_batching.custom_vmap
    def batched(a):
        return call(a)

    @batched.def_vmap
    def _(axis_size, in_batched, a):
        return batched(a), True

    return batched


def full_spec(sharding: NamedSharding, ndim: int) -> tuple:
    """The sharding's partition spec with one entry per axis of an ``ndim``-axis operand."""
    return tuple(sharding.spec) + (None,) * (ndim - len(sharding.spec))


def _rows_sharding(mesh, sharding, ndim: int) -> NamedSharding:
    """The operand's sharding over rows (its leading axes), with the last axis whole on every device."""
    return NamedSharding(mesh, P(*full_spec(sharding, ndim)[:-1], None))


def rowwise(call: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """``call`` (``[..., w] -> [..., 1]``, each row on its own, e.g. a kernel as a custom call) under a sharded jit
    runs on each device's own rows (without the rule XLA would gather the whole operand onto every device first),
    and under vmap on the batch axis as one more leading axis."""

    def partition(mesh, arg_shapes, result_shape):
        sharding = _rows_sharding(mesh, arg_shapes[0].sharding, len(arg_shapes[0].shape))
        return mesh, call, sharding, (sharding,)

    def infer(mesh, arg_shapes, result_shape):
        return _rows_sharding(mesh, arg_shapes[0].sharding, len(arg_shapes[0].shape))

    sharded = custom_partitioning(call)
    sharded.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule="... w -> ... o",
                          need_replication_factors=("w",))
    return with_vmap(sharded)


def _split_rows_sharding(mesh, first, ndim: int) -> NamedSharding:
    """Sharded over its first axis as ``first`` (the first operand's sharding) is, whole along every other."""
    return NamedSharding(mesh, P(full_spec(first, 1)[0], *([None] * (ndim - 1))))


def split_rows(call: Callable, rule: str, n_out: int) -> Callable:
    """``call`` (several arrays in, a tuple of ``n_out`` out, independent along the operands' shared first axis, e.g.
    a kernel as a custom call) under a sharded jit runs on each device's own rows of every operand and result (without
    the rule XLA would gather the operands onto every device first), and under vmap with the batch axis joined to the
    first axis. ``rule`` is the Shardy rule of ``call``, with ``b`` the first axis."""

    def partition(mesh, arg_shapes, result_shape):
        args = tuple(_split_rows_sharding(mesh, arg_shapes[0].sharding, len(a.shape)) for a in arg_shapes)
        return mesh, call, infer(mesh, arg_shapes, result_shape), args

    def infer(mesh, arg_shapes, result_shape):
        return tuple(_split_rows_sharding(mesh, arg_shapes[0].sharding, len(r.shape)) for r in result_shape)

    sharded = custom_partitioning(call)
    names = rule.replace("->", ",").replace(",", " ").split()
    factors = tuple(dict.fromkeys(f for f in names if f != "b"))  # in order of appearance, as Shardy wants them
    sharded.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=rule,
                          need_replication_factors=factors)

    @jax.custom_batching.custom_vmap
    def batched(*args):
        return sharded(*args)

    @batched.def_vmap
    def _(axis_size, in_batched, *args):
        args = [a if b else jnp.broadcast_to(a, (axis_size, *a.shape)) for a, b in zip(args, in_batched)]
        outs = batched(*(a.reshape(axis_size * a.shape[1], *a.shape[2:]) for a in args))
        return tuple(o.reshape(axis_size, -1, *o.shape[1:]) for o in outs), (True,) * n_out

    return batched
