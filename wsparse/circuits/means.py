"""Pretraining statistics of every node: the mean-ablation values and a bank of real activations for resampling.

Pruned nodes are replaced by their mean over the *pretraining* distribution (docs/method.md section 5), not over task
data, so these come from the validation split. One jitted pass with a capturing ``node_fn`` (``circuits.capture``)
computes them; they are cached per checkpoint in ``cache_path(workdir, step)``: ``RUN/circuits/means_step<N>.npz``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from wsparse import model as M
from wsparse.circuits import capture
from wsparse.config import ModelConfig, PruneConfig

MEANS_BATCH = 8  # sequences per step of the means pass


@dataclasses.dataclass(frozen=True)
class NodeStats:
    """``means[name]``: float32[width]; ``bank[name]``: float32[n_bank, width], all nodes of one real position per
    row."""

    means: dict[str, np.ndarray]
    bank: dict[str, np.ndarray]
    n_tokens: int


def compute(params: Any, cfg: ModelConfig, tokens_NBT: np.ndarray, *, n_bank: int, seed: int = 0) -> NodeStats:
    """Means over all positions of ``tokens_NBT`` (``[n_batches, B, T]``) plus ``n_bank`` random positions' rows."""
    n_batches, B, T = tokens_NBT.shape
    per = max(1, math.ceil(n_bank / n_batches))
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, B * T, size=(n_batches, per))
    shapes = M.node_shapes(cfg)

    def fold(sums, acts, p):
        sums = {n: sums[n] + acts[n].sum((0, 1)) for n in shapes}
        rows = {n: acts[n].reshape(B * T, -1)[p] for n in shapes}
        return sums, rows

    zeros = {n: jnp.zeros((w,), jnp.float32) for n, w in shapes.items()}
    sums, rows = capture.scan(params, cfg, tokens_NBT, fold, zeros, jnp.asarray(pos))
    n_tok = n_batches * B * T
    means = {n: np.asarray(sums[n]) / n_tok for n in shapes}
    bank = {n: np.asarray(rows[n]).reshape(n_batches * per, -1)[:n_bank] for n in shapes}
    return NodeStats(means, bank, n_tok)


def cache_path(workdir: str, step: int) -> str:
    """Where ``for_run`` caches the statistics of checkpoint ``step``."""
    return os.path.join(workdir, "circuits", f"means_step{step}.npz")


def save(stats: NodeStats, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = {f"mean/{n}": v for n, v in stats.means.items()} | {f"bank/{n}": v for n, v in stats.bank.items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, n_tokens=np.int64(stats.n_tokens), **arrays)
    os.replace(tmp, path)


def load(path: str) -> NodeStats:
    with np.load(path) as z:
        means = {k[5:]: z[k] for k in z.files if k.startswith("mean/")}
        bank = {k[5:]: z[k] for k in z.files if k.startswith("bank/")}
        return NodeStats(means, bank, int(z["n_tokens"]))


def for_run(run: Any, prune: PruneConfig, *, log: Callable[[str], None] = print) -> NodeStats:
    """The cached statistics of ``run``'s checkpoint, computed on first use (or when the token budget changed)."""
    path = cache_path(run.workdir, run.step)
    if os.path.exists(path):
        stats = load(path)
        enough_bank = all(len(b) >= prune.resample_bank for b in stats.bank.values())
        same_nodes = set(stats.means) == set(M.node_shapes(run.cfg.model))
        if stats.n_tokens >= prune.means_tokens and enough_bank and same_nodes:
            return stats
    log(f"computing node means over {prune.means_tokens} validation tokens -> {path}")
    stats = compute(run.params, run.cfg.model, run.val_tokens(prune.means_tokens, batch=MEANS_BATCH),
                    n_bank=prune.resample_bank, seed=prune.seed)
    save(stats, path)
    return stats
