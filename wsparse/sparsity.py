"""Weight sparsity (docs/method.md section 2): per-tensor magnitude top-k after every optimizer step, annealed from
dense.

The projection keeps exactly ``k = max(1, round(density * size))`` entries per sparse tensor (fewer nonzeros only if
the tensor has fewer than ``k`` nonzero entries to begin with). Because the density changes every step while
annealing, ``k`` is a traced value: the k-th largest magnitude is found on the float's bit pattern, by a bitwise
bisection (32 compare-and-count passes over the tensor, no sort, no recompilation) or on CPU by wsparse's C++ radix
select (``native.top_k_cut``, the same result from two reads of the tensor and a scan that stops early), and ties at
the threshold are broken by flat index (lowest index first). With ``min_alive_per_neuron = j``, each neuron first
reserves its top-j entries along its fan-in (``c_attn``, ``c_fc``: per output column) or fan-out (both ``c_proj``:
per input row); reserved entries count toward ``k`` and win over any unreserved one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from wsparse import native, topk, weights
from wsparse.config import SparsityConfig

Params = dict[str, Any]
FAMILIES = weights.FAMILIES


def family_of(path: tuple) -> str | None:
    """``"interior" | "embed" | "bias"``, or None for a dense parameter (wsparse.weights.TABLE)."""
    return weights.facts(path).family


def families(params: Params) -> Params:
    """Same tree as ``params`` with leaves ``"interior" | "embed" | "bias" | None`` (None = dense).

    Note that jax treats None as an empty subtree: map over it with ``is_leaf=lambda x: x is None``.
    """
    return jax.tree_util.tree_map_with_path(lambda path, _: family_of(path), params)


def target_density(cfg: SparsityConfig, family: str | None) -> float:
    if family is None or not cfg.enabled:
        return 1.0
    return {"interior": cfg.interior_density, "embed": cfg.embed_density, "bias": cfg.bias_density}[family]


def density_at(step: Any, total_steps: int, cfg: SparsityConfig, family: str | None) -> Any:
    """1 before ``anneal_start_frac``, linear to the target until ``anneal_end_frac``, the target after.

    Returns a Python float for a host-side step and a float32 array for a traced one.
    """
    target = target_density(cfg, family)
    start, end = cfg.anneal_start_frac * total_steps, cfg.anneal_end_frac * total_steps
    s = jnp.asarray(step, jnp.float32)
    progress = jnp.clip((s - start) / max(end - start, 1e-9), 0.0, 1.0) if end > start else (s >= end) * 1.0
    d = 1.0 + (target - 1.0) * progress
    return d if isinstance(step, jax.Array) else float(d)


def keep_count(density: Any, size: int) -> jax.Array:
    """k = max(1, round(density * size)): the exact number of entries a tensor of ``size`` keeps."""
    return jnp.clip(jnp.round(jnp.asarray(density, jnp.float32) * size), 1, size).astype(jnp.int32)


def _reserve(absw: jax.Array, j: int, axis: int) -> jax.Array:
    """Top-j entries of each line along ``axis`` (j argmax passes: cheaper than lax.top_k on CPU; first index wins)."""
    if j >= absw.shape[axis]:
        return jnp.ones(absw.shape, bool)
    iota = jax.lax.broadcasted_iota(jnp.int32, absw.shape, axis)
    reserved = jnp.zeros(absw.shape, bool)
    cur = absw
    for _ in range(j):
        hit = iota == jnp.argmax(cur, axis=axis, keepdims=True)
        reserved = reserved | hit
        cur = jnp.where(hit, -1.0, cur)
    return reserved


def _top_k_mask(key: jax.Array, k: jax.Array) -> jax.Array:
    """Exactly ``k`` largest of a flat uint32 ``key``, ties broken by lowest index."""
    t = topk.largest_passing(lambda c: topk.count(key >= c) >= k, 32, jnp.zeros((), jnp.uint32))
    above, tie = key > t, key == t
    m = k - jnp.sum(above, dtype=jnp.int32)  # how many of the tied entries to keep

    def first_m_ties() -> jax.Array:
        # The tied entries with index < stop, stop found by the same bisection over index bits (reversed: the
        # largest r = size - stop with count(tie & index < size - r) >= m). Cheaper to compile than a cumsum.
        index = jnp.arange(key.size, dtype=jnp.int32)
        n_bits = max(1, int(key.size).bit_length())
        r = topk.largest_passing(lambda c: jnp.sum(tie & (index < key.size - c), dtype=jnp.int32) >= m,
                                 n_bits, jnp.zeros((), jnp.int32))
        return above | (tie & (index < key.size - r))

    return jax.lax.cond(jnp.sum(tie, dtype=jnp.int32) == m, lambda: above | tie, first_m_ties)


def _top_k_mask_sort(key: jax.Array, k: jax.Array) -> jax.Array:
    """The same mask as :func:`_top_k_mask` from one stable sort: rank by descending key, lowest index first."""
    order = jnp.argsort(~key, stable=True)  # ~key ascending = key descending; stable keeps index order in ties
    rank = jnp.zeros(key.shape, jnp.int32).at[order].set(jnp.arange(key.size, dtype=jnp.int32))
    return rank < k


def _top_k_mask_native(key: jax.Array, k: jax.Array) -> jax.Array:
    """The same mask as :func:`_top_k_mask`, its cut found by wsparse's C++ radix select (``native.top_k_cut``)."""
    t, stop = native.top_k_cut(key, k)
    return (key > t) | ((key == t) & (jnp.arange(key.size, dtype=jnp.int32) < stop))


PROJECT_IMPLS = ("auto", "bisect", "sort", "native")
_SELECT = {"bisect": _top_k_mask, "sort": _top_k_mask_sort, "native": _top_k_mask_native}


def project_tensor(w: jax.Array, k: jax.Array, min_alive: int = 0, neuron_axis: int | None = None,
                   impl: str = "auto") -> jax.Array:
    """Keeps exactly ``k`` entries of ``w`` by magnitude; with ``min_alive`` each line along ``neuron_axis``
    (the axis a neuron's weights run along) reserves its top ``min_alive`` first.

    ``impl``: ``bisect`` (32 compare-and-count passes), ``native`` (wsparse's C++ radix select, the CPU default under
    ``auto`` where it builds, else ``bisect``) or ``sort`` (one stable argsort, the accelerator default); all keep
    the same entries."""
    absw = jnp.abs(w.astype(jnp.float32))
    key = jax.lax.bitcast_convert_type(absw, jnp.uint32)  # sign bit clear: orders like |w|
    if min_alive > 0 and neuron_axis is not None:
        key = key | (_reserve(absw, min_alive, neuron_axis).astype(jnp.uint32) << 31)
    cpu = "native" if native.in_use() else "bisect"
    impl = topk.resolve(impl, PROJECT_IMPLS, {"cpu": cpu, "other": "sort"})
    keep = _SELECT[impl](key.ravel(), k).reshape(w.shape)
    return jnp.where(keep, w, jnp.zeros_like(w))


def project(params: Params, step: Any, total_steps: int, cfg: SparsityConfig) -> Params:
    """Magnitude top-k of every sparse tensor at the step's density; dense leaves pass through."""
    if not cfg.enabled:
        return params

    def one(path: tuple, w: jax.Array) -> jax.Array:
        f = weights.facts(path)
        if f.family is None:
            return w
        k = keep_count(density_at(jnp.asarray(step), total_steps, cfg, f.family), w.size)
        return project_tensor(w, k, cfg.min_alive_per_neuron, f.neuron_axis, cfg.topk_impl)

    return jax.tree_util.tree_map_with_path(one, params)


def nonzero_counts(params: Params) -> dict[str, tuple[jax.Array, int]]:
    """family -> (number of nonzeros, number of entries), for logging the realised density."""
    out: dict[str, tuple[jax.Array, int]] = {}
    for path, w in jax.tree_util.tree_leaves_with_path(params):
        family = family_of(path)
        if family is None:
            continue
        nnz, size = out.get(family, (jnp.int32(0), 0))
        out[family] = (nnz + jnp.count_nonzero(w).astype(jnp.int32), size + int(w.size))
    return out
