"""The optimiser of docs/method.md section 2 as one optax chain.

global gradient-RMS clip -> Adam (b1 0.9, b2 0.95, eps 0.1) -> decoupled weight decay on matrices -> -lr(step),
with lr(step) = "sharkfin" (linear warmup, linear decay to 0) x sqrt(target_density / current_density).

Weight decay is applied inside the chain, PyTorch-AdamW style (``p <- p - lr * (adam + wd * p)``), and the train step
projects afterwards; the release instead multiplies the already-projected weights by ``1 - lr * wd``. Both scale every
kept weight by the same factor, so they differ only in which entries are near the top-k threshold; we keep the
optimizer a pure optax chain and the projection a separate step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from wsparse import sparsity, weights
from wsparse.config import Config


def global_rms(tree: Any) -> jax.Array:
    """sqrt(mean of squares over every entry of every leaf): the paper clips this, not the global norm."""
    leaves = jax.tree.leaves(tree)
    total = sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)
    return jnp.sqrt(total / sum(x.size for x in leaves))


def scale_by_global_rms(max_rms: float, mode: str = "clip") -> optax.GradientTransformation:
    """``clip``: scale down to ``max_rms`` only when above it; ``normalize``: always rescale to ``max_rms`` (the
    release divides by the RMS); ``none``: identity."""
    if mode not in ("clip", "normalize", "none"):
        raise ValueError(f"grad_rms_mode must be clip, normalize or none, got {mode!r}")

    def update(updates, state, params=None):
        del params
        if mode == "none":
            return updates, state
        rms = jnp.maximum(global_rms(updates), 1e-30)
        scale = max_rms / rms if mode == "normalize" else jnp.minimum(1.0, max_rms / rms)
        return jax.tree.map(lambda g: (g * scale).astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def decay_mask(params: Any) -> Any:
    """True where decoupled weight decay applies (wsparse.weights.TABLE: matrices, not the bigram table)."""
    return weights.tree_map_facts(lambda f, _: f.decayed, params)


def sharkfin(step: Any, total: int, warmup_frac: float) -> Any:
    """Linear warmup then linear decay to 0: ``min((s+1)/W, (T-s)/(T-W))`` clipped to [0, 1], W = warmup_frac*T.

    The peak is at s = W-1..W and the last step s = T-1 still moves. Training and the mask optimisation both use it.
    """
    warmup = warmup_frac * total
    s = jnp.asarray(step, jnp.float32)
    warm = (s + 1.0) / warmup if warmup > 0 else jnp.float32(1.0)
    decay = (total - s) / max(total - warmup, 1e-9)
    return jnp.clip(jnp.minimum(warm, decay), 0.0, 1.0)


def lr_at(step: Any, cfg: Config) -> Any:
    """The training learning rate: lr x sharkfin x density factor sqrt(target / current density) while annealing.
    Python float on the host, float32 array when traced."""
    total = cfg.train.steps
    lr = cfg.optim.lr * sharkfin(step, total, cfg.optim.warmup_frac)
    if cfg.sparsity.enabled and cfg.optim.density_lr_scaling:
        target = sparsity.target_density(cfg.sparsity, "interior")
        s = jnp.asarray(step, jnp.float32)
        lr = lr * jnp.sqrt(target / sparsity.density_at(s, total, cfg.sparsity, "interior"))
    return lr if isinstance(step, jax.Array) else float(lr)


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    o = cfg.optim
    return optax.chain(
        scale_by_global_rms(o.grad_rms_max, o.grad_rms_mode),
        optax.scale_by_adam(b1=o.b1, b2=o.b2, eps=o.eps),
        optax.add_decayed_weights(o.weight_decay, mask=decay_mask),
        optax.scale_by_learning_rate(lambda count: lr_at(count, cfg)),
    )

