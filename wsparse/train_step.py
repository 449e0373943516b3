"""The pure, jittable pieces of training: the train state, its init, the loss, and the weight-sparse step.

The step is one function: next-token cross-entropy -> gradients -> optax update -> top-k projection of every
sparse tensor. With ``train.microbatches = m`` the gradients are the mean over m slices of the batch, computed one
after another (activation memory of one slice, the same update up to float rounding). It returns the step's metrics
as device arrays (the loop fetches them one step late), including the realised density of each sparsity family
counted on the parameters the step just produced.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from wsparse import model, optim, sparsity
from wsparse.config import Config


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def init_state(cfg: Config, key: jax.Array, optimizer: optax.GradientTransformation) -> TrainState:
    params = model.init_params(cfg.model, key)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def abstract_state(cfg: Config, optimizer: optax.GradientTransformation) -> TrainState:
    """Shapes and dtypes of the train state, without computing it."""
    return jax.eval_shape(lambda k: init_state(cfg, k, optimizer), jax.random.key(0))


def next_token_loss(params, batch_BT1: jax.Array, cfg: Config) -> jax.Array:
    """Mean next-token cross-entropy of windows of n_ctx + 1 tokens."""
    tokens_BT, targets_BT = batch_BT1[:, :-1], batch_BT1[:, 1:]
    logits_BTV = model.forward(params, tokens_BT, cfg.model)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BTV, targets_BT).mean()


def loss_and_grads(params, batch_BT1: jax.Array, cfg: Config) -> tuple[jax.Array, Any]:
    """The batch's mean loss and its gradients, over ``cfg.train.microbatches`` equal slices in a scan when more than
    one. Slice j holds rows j, m + j, 2m + j, ...: a batch sharded over devices by contiguous rows keeps each slice
    spread over every device."""
    m = cfg.train.microbatches
    grad_fn = jax.value_and_grad(next_token_loss)
    if m == 1:
        return grad_fn(params, batch_BT1, cfg)
    B = batch_BT1.shape[0]
    slices = batch_BT1.reshape(B // m, m, -1).swapaxes(0, 1)

    def add(acc, batch_bT1):
        loss, grads = grad_fn(params, batch_bT1, cfg)
        return jax.tree.map(jnp.add, acc, (loss, grads)), None

    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    total, _ = jax.lax.scan(add, zeros, slices)
    return jax.tree.map(lambda x: x / m, total)


def densities(params) -> dict[str, jax.Array]:
    """``density/<family>``: the fraction of nonzero entries of each sparsity family, as device scalars.

    One counting pass over the sparse tensors, small beside the projection's 32 (benchmarks/train_step.py).
    """
    return {f"density/{fam}": nnz.astype(jnp.float32) / size
            for fam, (nnz, size) in sparsity.nonzero_counts(params).items() if size}


def make_train_step(cfg: Config, optimizer: optax.GradientTransformation) -> Callable:
    """``step(state, batch) -> (state, metrics)``; jit it with the shardings of :func:`wsparse.train.train`.

    ``metrics`` holds the loss and gradient RMS of the batch, the learning rate used, and the density of the
    parameters after the step (so every logged number belongs to the same step).
    """

    def step(state: TrainState, batch_BT1: jax.Array):
        loss, grads = loss_and_grads(state.params, batch_BT1, cfg)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_step = state.step + 1
        if cfg.sparsity.enabled:
            params = sparsity.project(params, new_step, cfg.train.steps, cfg.sparsity)
        metrics = {"loss": loss, "grad_rms": optim.global_rms(grads), "lr": optim.lr_at(state.step, cfg),
                   **densities(params)}
        return TrainState(step=new_step, params=params, opt_state=opt_state), metrics

    return step


def make_eval_step(cfg: Config) -> Callable:
    return lambda params, batch_BT1: next_token_loss(params, batch_BT1, cfg)


def measure_step_rate(cfg: Config, n_steps: int = 20) -> float:
    """Train steps per second of ``cfg`` on this machine, with random tokens (for benchmarks)."""
    optimizer = optim.make_optimizer(cfg)
    state = jax.jit(lambda k: init_state(cfg, k, optimizer))(jax.random.key(0))
    step_fn = jax.jit(make_train_step(cfg, optimizer), donate_argnums=0)
    batch = jax.random.randint(jax.random.key(1), (cfg.train.batch_size, cfg.model.n_ctx + 1), 0,
                               cfg.model.vocab_size)
    state, m = step_fn(state, batch)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        state, m = step_fn(state, batch)
    jax.block_until_ready(m)
    return n_steps / (time.perf_counter() - t0)
