"""The mask optimisation, sweeps, bisection and calibration of PAPER.md section 5, all jitted over a frozen model.

One ``Pruner`` per (model, task): it holds the frozen params and node statistics and exposes jitted functions.
Hyperparameter settings (k_coef, lr, weight decay, init noise, seed) are arrays with a leading axis S, and the
training loop is ``vmap``-ed over them, so a sweep of S settings is one compiled program.

Calibration form (a decision): a uniform shift of all logits cancels in the two-candidate softmax, so the fitted
scale a and shift b act on the candidate logit difference d = logit[target] - logit[alt]: d -> a * d + b.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsparse import model as M
from wsparse import tasks as T
from wsparse.circuits import masks as K
from wsparse.circuits.means import NodeStats
from wsparse.config import ModelConfig, PruneConfig

Array = jax.Array
SETTING_KEYS = ("k_coef", "lr", "weight_decay", "init_noise_bias", "init_noise_scale", "seed")


class Pairs(NamedTuple):
    """A task split as pairs: index 0 of axis 1 is the positive sequence (correct = target), 1 the negative."""

    tokens: Array  # int32[P, 2, T]
    last: Array  # int32[P, 2]
    correct: Array  # int32[P, 2]
    wrong: Array  # int32[P, 2]
    weight: Array  # float32[P]; 0 marks padding

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])


class Flat(NamedTuple):
    """The TaskBatch layout (positives first, then their negatives) that ``tasks.contrast_loss`` reads."""

    tokens: Array
    last: Array
    correct: Array
    wrong: Array


def pairs_from_batch(batch: Any, pad_to: int = 1) -> Pairs:
    """TaskBatch ``[2n, n_ctx]`` -> Pairs, right-trimmed to the longest sequence (the model is causal, so the padding
    after ``last`` cannot change the logits read there) and padded with weight-0 pairs to a multiple of ``pad_to``."""
    tokens = np.asarray(batch.tokens)
    n = tokens.shape[0] // 2
    t = min(tokens.shape[1], -(-(int(np.max(batch.last)) + 1) // 16) * 16)  # buckets of 16: shared compiles
    pair = lambda a: np.asarray(a).reshape(2, n, *np.asarray(a).shape[1:]).swapaxes(0, 1)
    fields = [pair(tokens[:, :t]), pair(batch.last), pair(batch.correct), pair(batch.wrong), np.ones(n, np.float32)]
    extra = (-n) % pad_to
    if extra:
        fields = [np.concatenate([f, np.repeat(f[:1], extra, 0) * (0 if i == 4 else 1)]) for i, f in enumerate(fields)]
    return Pairs(*(jnp.asarray(f) for f in fields))


def flatten(p: Pairs) -> Flat:
    f = lambda a: jnp.swapaxes(a, 0, 1).reshape(-1, *a.shape[2:])
    return Flat(f(p.tokens), f(p.last), f(p.correct), f(p.wrong))


def chunks(p: Pairs, size: int) -> Pairs:
    """``[P, ...]`` -> ``[P // size, size, ...]`` for a scan over fixed-size pieces."""
    return jax.tree.map(lambda a: a.reshape(a.shape[0] // size, size, *a.shape[1:]), p)


def lr_fraction(count: Array, steps: int, warmup_frac: float) -> Array:
    """Linear warmup over ``warmup_frac`` of the steps, then linear decay to 0."""
    w = int(round(warmup_frac * steps))
    c = jnp.asarray(count, jnp.float32)
    decay = (steps - c) / max(1, steps - w)
    return jnp.clip(jnp.where(c < w, (c + 1) / max(1, w), decay), 0.0, 1.0)


def settings_grid(cfg: PruneConfig) -> dict[str, np.ndarray]:
    """The sweep: k_coef x lr x seeds (an empty axis uses the scalar in cfg). Leading axis S."""
    ks = cfg.sweep_k_coef or (cfg.k_coef,)
    lrs = cfg.sweep_lr or (cfg.lr,)
    rows = list(itertools.product(ks, lrs, range(max(1, cfg.sweep_seeds))))
    return {
        "k_coef": np.array([r[0] for r in rows], np.float32),
        "lr": np.array([r[1] for r in rows], np.float32),
        "weight_decay": np.full(len(rows), cfg.weight_decay, np.float32),
        "init_noise_bias": np.full(len(rows), cfg.init_noise_bias, np.float32),
        "init_noise_scale": np.full(len(rows), cfg.init_noise_scale, np.float32),
        "seed": np.array([cfg.seed + r[2] for r in rows], np.int32),
    }


def take_setting(settings: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[i: i + 1] for k, v in settings.items()}


def ranks(score_U: Array) -> Array:
    """Rank of each unit by descending score, ties by index (deterministic): top-k = ``ranks < k``."""
    order = jnp.argsort(-score_U, stable=True)
    return jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))


class Pruner:
    """Jitted pieces of the circuit search for one frozen model. Arrays go in as arguments, never as constants."""

    def __init__(self, params: Any, model_cfg: ModelConfig, cfg: PruneConfig, stats: NodeStats):
        self.params, self.model_cfg, self.cfg = params, model_cfg, cfg
        self.layout = K.make_layout(M.node_shapes(model_cfg), cfg.tie_qk)
        names = self.layout.names
        self.stats = {"mean": {n: jnp.asarray(stats.means[n], jnp.float32) for n in names},
                      "bank": {n: jnp.asarray(stats.bank[n], jnp.float32) for n in names}}
        self.chunk = cfg.batch_pairs

    # Jitted functions take the Pruner as a static argument: Pruners that agree on the model config and on the
    # prune fields the traced code reads share compiled programs (across tasks, targets, tests); params and
    # statistics are always traced arguments.
    TRACED_FIELDS = ("ablation", "mask_param", "temp_schedule", "temp_start", "temp_end", "tie_qk", "b1", "b2",
                     "warmup_frac", "grad_clip", "steps", "batch_pairs")

    def _key(self) -> tuple:
        return (self.model_cfg,) + tuple(getattr(self.cfg, f) for f in self.TRACED_FIELDS)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pruner) and self._key() == other._key()

    # -- the masked model -------------------------------------------------------------------------------------------

    def ablation(self, stats: Mapping, key: Array, shape_BT: tuple[int, int], mode: str | None = None
                 ) -> dict[str, Array]:
        """Per-node replacement values: the mean, zero, or (resample) the nodes of random pretraining positions."""
        mode = mode or self.cfg.ablation
        if mode == "mean":
            return stats["mean"]
        if mode == "zero":
            return {n: jnp.zeros_like(v) for n, v in stats["mean"].items()}
        n_bank = next(iter(stats["bank"].values())).shape[0]
        idx = jax.random.randint(key, shape_BT, 0, n_bank)  # one real position per (sequence, position): all nodes
        return {n: b[idx] for n, b in stats["bank"].items()}

    def logits(self, params, stats, m_nodes: Array, tokens_BT: Array, key: Array, mode: str | None = None,
               positions_B: Array | None = None) -> Array:
        """The masked model's logits ``[B, T, V]``, or ``[B, V]`` at ``positions_B`` (all the task loss reads)."""
        ablate = self.ablation(stats, key, tokens_BT.shape, mode)
        return M.forward(params, tokens_BT, self.model_cfg, node_fn=K.masked_node_fn(self.layout, m_nodes, ablate),
                         positions_B=positions_B)

    def pair_diffs(self, params, stats, m_nodes: Array, pairs: Pairs, key: Array, mode: str | None = None) -> Array:
        """``[P, 2]`` logit[target] - logit[alt] at the last position (the positive's correct token is the target).
        ``m_nodes`` is ``[N]`` or per sequence ``[2P, N]`` in the flat order."""
        flat = flatten(pairs)
        at = self.logits(params, stats, m_nodes, flat.tokens, key, mode, positions_B=flat.last)
        i = jnp.arange(flat.tokens.shape[0])
        z = (at[i, flat.correct] - at[i, flat.wrong]).reshape(2, -1)  # correct - wrong
        return jnp.stack([z[0], -z[1]], axis=1)

    def _margins_impl(self, params, stats, m_nodes, pairs: Pairs) -> Array:
        def body(_, xs):
            j, p = xs
            return None, self.pair_diffs(params, stats, m_nodes, p, jax.random.fold_in(jax.random.key(7), j))

        c = chunks(pairs, self.chunk)
        _, d = jax.lax.scan(body, None, (jnp.arange(c.weight.shape[0]), c))
        return d.reshape(-1, 2)

    def _eval_impl(self, params, stats, m_nodes, pairs: Pairs) -> Array:
        return pair_loss(self._margins_impl(params, stats, m_nodes, pairs), pairs.weight)

    # -- public evaluation ------------------------------------------------------------------------------------------

    def pad(self, batch: Any) -> Pairs:
        return pairs_from_batch(batch, pad_to=self.chunk)

    def diffs(self, m_nodes_SN: Array, pairs: Pairs) -> Array:
        """``[S, P, 2]`` logit[target] - logit[alt] under each of S node masks ``[S, N]``."""
        return _margins(self, self.params, self.stats, jnp.asarray(m_nodes_SN, jnp.float32), pairs)

    def loss(self, m_nodes_SN: Array, pairs: Pairs) -> np.ndarray:
        """Task loss per sequence for each of S node masks ``[S, N]`` (1 = kept, 0 = ablated)."""
        d = self.diffs(m_nodes_SN, pairs)
        return np.asarray(jax.vmap(pair_loss, in_axes=(0, None))(d, pairs.weight))

    def units_to_nodes(self, m_units: Array) -> np.ndarray:
        return np.asarray(self.layout.nodes(jnp.asarray(m_units)))

    # -- mask training ----------------------------------------------------------------------------------------------

    def _optimizer(self, s: Mapping[str, Array]) -> optax.GradientTransformation:
        c = self.cfg
        sched = lambda count: s["lr"] * lr_fraction(count, c.steps, c.warmup_frac)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                           optax.adamw(sched, b1=c.b1, b2=c.b2, weight_decay=s["weight_decay"]))

    def _init_impl(self, s):
        tau = K.init_tau(jax.random.fold_in(jax.random.key(s["seed"]), 0), self.layout.n_units,
                         s["init_noise_bias"], s["init_noise_scale"])
        return tau, self._optimizer(s).init(tau)

    def _train_chunk_impl(self, params, stats, pairs: Pairs, s, carry, start, length: int):
        c, opt = self.cfg, self._optimizer(s)
        mask_fn = K.MASK_FNS[c.mask_param]
        key = jax.random.fold_in(jax.random.key(s["seed"]), 1)
        n_take = min(c.batch_pairs, pairs.n)

        def objective(tau, batch: Pairs, temp, k_abl):
            m_nodes = self.layout.nodes(mask_fn(tau, temp))
            flat = flatten(batch)
            logits_BV = self.logits(params, stats, m_nodes, flat.tokens, k_abl, positions_B=flat.last)
            task_loss, _ = T.contrast_loss(logits_BV, flat)
            n_on = m_nodes.sum()
            return task_loss + s["k_coef"] * n_on, (task_loss, n_on)

        def step(carry, i):
            tau, opt_state = carry
            kb, ka = jax.random.split(jax.random.fold_in(key, i))
            idx = jax.random.choice(kb, pairs.n, (n_take,), replace=False)
            batch = jax.tree.map(lambda a: a[idx], pairs)
            temp = K.temperature(c.temp_schedule, c.temp_start, c.temp_end, i / max(1, c.steps - 1))
            grads, (task_loss, n_on) = jax.grad(objective, has_aux=True)(tau, batch, temp, ka)
            updates, new_opt = opt.update(grads, opt_state, tau)
            new_tau = jnp.clip(optax.apply_updates(tau, updates), -1.0, 1.0)
            live = i < c.steps  # the last chunk may run past the end: those steps leave the state alone
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)
            return keep((new_tau, new_opt), (tau, opt_state)), (task_loss, n_on)

        return jax.lax.scan(step, carry, start + jnp.arange(length))

    def train(self, settings: Mapping[str, np.ndarray], pairs: Pairs,
              progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Trains S mask settings together; returns tau ``[S, U]`` and per-step task loss and nodes on ``[S, steps]``."""
        s = {k: jnp.asarray(v) for k, v in settings.items()}
        carry = _init(self, s)
        length = min(self.cfg.chunk_steps, self.cfg.steps)
        logs = []
        for start in range(0, self.cfg.steps, length):
            carry, log = _train_chunk(self, self.params, self.stats, pairs, s, carry, jnp.int32(start), length)
            logs.append(log)
            if progress:
                progress(min(length, self.cfg.steps - start))
        task_loss = np.concatenate([np.asarray(l[0]) for l in logs], 1)[:, : self.cfg.steps]
        n_on = np.concatenate([np.asarray(l[1]) for l in logs], 1)[:, : self.cfg.steps]
        return np.asarray(carry[0]), {"task_loss": task_loss, "n_on": n_on}

    # -- discretisation ---------------------------------------------------------------------------------------------

    def _bisect_impl(self, params, stats, pairs: Pairs, score_U, target):
        """Smallest k such that the top-k units by score meet ``target`` (assumes the loss falls with k, and that
        k = U, the unpruned model, meets it)."""
        rank = ranks(score_U)
        U = score_U.shape[0]
        loss_at = lambda k: self._eval_impl(params, stats, self.layout.nodes((rank < k).astype(jnp.float32)), pairs)

        def body(_, lohi):
            lo, hi = lohi
            mid = (lo + hi) // 2
            ok = jnp.where(lo < hi, loss_at(mid) <= target, True)
            return jnp.where(ok, lo, mid + 1), jnp.where(ok & (lo < hi), mid, hi)

        n_iter = max(1, math.ceil(math.log2(U + 1)))
        _, k = jax.lax.fori_loop(0, n_iter, body, (jnp.int32(0), jnp.int32(U)))
        return k, (rank < k).astype(jnp.float32)

    def bisect(self, score_SU: np.ndarray, pairs: Pairs, target: float) -> tuple[np.ndarray, np.ndarray]:
        """Per setting: bisected k and the kept-unit mask ``[S, U]``."""
        k, m = _bisect(self, self.params, self.stats, pairs, jnp.asarray(score_SU, jnp.float32), jnp.float32(target))
        return np.asarray(k), np.asarray(m)


static_jit = functools.partial(jax.jit, static_argnums=(0,))


@static_jit
def _margins(pr: Pruner, params, stats, m_nodes_SN, pairs):
    return jax.vmap(pr._margins_impl, in_axes=(None, None, 0, None))(params, stats, m_nodes_SN, pairs)


@static_jit
def _init(pr: Pruner, settings):
    return jax.vmap(pr._init_impl)(settings)


@functools.partial(jax.jit, static_argnums=(0, 7))
def _train_chunk(pr: Pruner, params, stats, pairs, settings, carry, start, length: int):
    step = functools.partial(pr._train_chunk_impl, length=length)
    return jax.vmap(step, in_axes=(None, None, None, 0, 0, None))(params, stats, pairs, settings, carry, start)


@static_jit
def _bisect(pr: Pruner, params, stats, pairs, score_SU, target):
    return jax.vmap(pr._bisect_impl, in_axes=(None, None, None, 0, None))(params, stats, pairs, score_SU, target)


def pair_loss(d_P2: Array, weight: Array, a: Array | float = 1.0, b: Array | float = 0.0) -> Array:
    """Task loss per sequence from target-minus-alt differences: positives want d > 0, negatives d < 0."""
    z = a * d_P2 + b
    per_pair = jax.nn.softplus(-z[:, 0]) + jax.nn.softplus(z[:, 1])
    return jnp.sum(weight * per_pair) / (2 * jnp.sum(weight))


@functools.partial(jax.jit, static_argnums=(2,))
def _fit(d_P2: Array, weight: Array, steps: int) -> Array:
    f = lambda ab: pair_loss(d_P2, weight, ab[0], ab[1])
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)

    def body(_, carry):
        ab, state = carry
        value, grad = value_and_grad(ab, state=state)
        updates, state = opt.update(grad, state, ab, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(ab, updates), state

    ab0 = jnp.array([1.0, 0.0], jnp.float32)
    return jax.lax.fori_loop(0, steps, body, (ab0, opt.init(ab0)))[0]


def calibrate(d_P2: Array, weight: Array, steps: int = 16) -> tuple[float, float]:
    """Scale a and shift b of the logit difference, fitted by ``steps`` L-BFGS iterations (the paper's 16)."""
    a, b = np.asarray(_fit(jnp.asarray(d_P2), jnp.asarray(weight), steps))
    return float(a), float(b)
