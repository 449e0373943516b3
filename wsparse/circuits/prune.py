"""The mask optimisation, sweeps, bisection and calibration of docs/method.md section 5, all jitted over a frozen model.

Every compiled program is a module-level function whose one static argument is a ``MaskSpec``: a frozen dataclass of
exactly the configuration the traced code reads (the model config and the pruning fields that shape the program).
Params, node statistics, masks and hyperparameter settings are always traced arguments, so tasks, targets and tests
share compiled programs, and no compiled program keeps a model's parameters alive. ``Pruner`` is the host-side handle
for one (model, task): it holds the arrays and calls those programs.

Hyperparameter settings (k_coef, lr, weight decay, init noise, seed) are arrays with a leading axis S, and the mask
loop is ``vmap``-ed over them, so a sweep of S settings is one compiled program.

Calibration acts on the candidate logit difference d = logit[target] - logit[alt] (d -> a * d + b): a uniform shift of
all logits cancels in the two-candidate softmax, so this is the calibration that can change the task loss.
"""

from __future__ import annotations

import dataclasses
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
from wsparse.optim import sharkfin
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


def pairs_from_batch(batch: Any, pad_to: int = 1) -> Pairs:
    """TaskBatch ``[2n, n_ctx]`` -> Pairs, right-trimmed to the longest sequence (the model is causal, so the padding
    after ``last`` cannot change the logits read there) and padded with weight-0 pairs to a multiple of ``pad_to``."""
    tokens = np.asarray(batch.tokens)
    n = tokens.shape[0] // 2
    t = T.bucketed_length(batch.last, tokens.shape[1])  # few distinct lengths: shared compiles
    pair = lambda a: np.asarray(a).reshape(2, n, *np.asarray(a).shape[1:]).swapaxes(0, 1)
    fields = [pair(tokens[:, :t]), pair(batch.last), pair(batch.correct), pair(batch.wrong), np.ones(n, np.float32)]
    extra = (-n) % pad_to
    if extra:
        fields = [np.concatenate([f, np.repeat(f[:1], extra, 0) * (0 if i == 4 else 1)]) for i, f in enumerate(fields)]
    return Pairs(*(jnp.asarray(f) for f in fields))


def flatten(p: Pairs) -> T.TaskBatch:
    """Pairs -> the TaskBatch layout (positives first, then their negatives) that ``tasks.contrast_loss`` reads."""
    f = lambda a: jnp.swapaxes(a, 0, 1).reshape(-1, *a.shape[2:])
    return T.TaskBatch(f(p.tokens), f(p.last), f(p.correct), f(p.wrong))


def chunks(p: Pairs, size: int) -> Pairs:
    """``[P, ...]`` -> ``[P // size, size, ...]`` for a scan over fixed-size pieces."""
    return jax.tree.map(lambda a: a.reshape(a.shape[0] // size, size, *a.shape[1:]), p)


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


def ranks(score_U: Array, tiebreak_U: Array | None = None) -> Array:
    """Rank of each unit by descending score, then descending ``tiebreak``, then index: top-k = ``ranks < k``.

    Many taus end clamped at the bound 1.0; the mask loop's ``push`` (how far the optimiser pushed each tau past the
    bound, summed over steps) orders them, so the bisection keeps first the units the optimiser wanted most.
    """
    U = score_U.shape[0]
    index = jnp.arange(U)
    tiebreak_U = jnp.zeros_like(score_U) if tiebreak_U is None else tiebreak_U
    order = jnp.lexsort((index, -tiebreak_U, -score_U))  # the last key sorts first
    return jnp.zeros_like(order).at[order].set(index)


class UnitScores(NamedTuple):
    """What the mask loop learned per unit, ``[S, U]`` for S settings: tau (clamped to [-1, 1]) and the push past
    the clamp bounds summed over steps (positive at +1, negative at -1), the tie-break among equal taus."""

    tau: np.ndarray
    push: np.ndarray


def tie_counts(scores: UnitScores, k_S: np.ndarray) -> list[dict[str, int]]:
    """Per setting: units clamped at +1, and at the bisection's cut (between ranks k-1 and k) how many units share
    the boundary tau (ordered by the tie-break) and how many share both tau and push (ordered by index)."""
    out = []
    for tau, push, k in zip(np.asarray(scores.tau), np.asarray(scores.push), np.asarray(k_S)):
        order = np.argsort(np.asarray(ranks(jnp.asarray(tau), jnp.asarray(push))))  # the bisection's order
        row = {"at_upper_bound": int(np.sum(tau >= 1.0)), "tied_at_cut": 0, "unresolved_at_cut": 0}
        if 0 < k < len(tau) and tau[order[k - 1]] == tau[order[k]]:
            row["tied_at_cut"] = int(np.sum(tau == tau[order[k - 1]]))
            same = (tau == tau[order[k - 1]]) & (push == push[order[k - 1]])
            row["unresolved_at_cut"] = int(np.sum(same)) if push[order[k - 1]] == push[order[k]] else 0
        out.append(row)
    return out


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """Exactly the configuration the compiled mask programs read: their one static argument (hashable).

    Traced code sees only this, never a ``PruneConfig``, so a field it reads cannot be forgotten in the hash: a new
    PruneConfig field is either added here or listed in ``HOST_FIELDS`` (a test checks the two cover the config).
    """

    model: ModelConfig
    ablation: str
    mask_param: str
    temp_schedule: str
    temp_start: float
    temp_end: float
    tie_qk: bool
    b1: float
    b2: float
    warmup_frac: float
    grad_clip: float
    steps: int
    batch_pairs: int  # pairs per mask step, and the chunk size of every evaluation pass

    @classmethod
    def of(cls, model_cfg: ModelConfig, cfg: PruneConfig) -> "MaskSpec":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "model"]
        return cls(model=model_cfg, **{n: getattr(cfg, n) for n in names})

    @property
    def layout(self) -> K.Layout:
        return _layout(self.model, self.tie_qk)


# PruneConfig fields the compiled programs never read: hyperparameter settings (traced arrays), split sizes, budgets
# of host-side stages, and the chunk length of the mask loop (a static argument of its own).
HOST_FIELDS = frozenset({
    "target_loss", "k_coef", "init_noise_bias", "init_noise_scale", "lr", "weight_decay", "chunk_steps",
    "n_train_pairs", "n_val_pairs", "n_test_pairs", "means_tokens", "resample_bank", "calibration_steps",
    "n_random_controls", "attribution_baseline", "sweep_k_coef", "sweep_lr", "sweep_seeds", "seed", "faithfulness"})


@functools.lru_cache(maxsize=32)
def _layout(model_cfg: ModelConfig, tie_qk: bool) -> K.Layout:
    return K.make_layout(M.node_shapes(model_cfg), tie_qk)


# -- the masked model (traced) -----------------------------------------------------------------------------------------


def ablation_values(spec: MaskSpec, stats: Mapping, key: Array, shape_BT: tuple[int, int], mode: str | None = None
                    ) -> dict[str, Array]:
    """Per-node replacement values: the mean, zero, or (resample) the nodes of random pretraining positions."""
    mode = mode or spec.ablation
    if mode == "mean":
        return stats["mean"]
    if mode == "zero":
        return {n: jnp.zeros_like(v) for n, v in stats["mean"].items()}
    n_bank = next(iter(stats["bank"].values())).shape[0]
    idx = jax.random.randint(key, shape_BT, 0, n_bank)  # one real position per (sequence, position): all nodes
    return {n: b[idx] for n, b in stats["bank"].items()}


def masked_logits(spec: MaskSpec, params, stats, m_nodes: Array, tokens_BT: Array, key: Array,
                  mode: str | None = None, positions_B: Array | None = None) -> Array:
    """The masked model's logits ``[B, T, V]``, or ``[B, V]`` at ``positions_B`` (all the task loss reads)."""
    ablate = ablation_values(spec, stats, key, tokens_BT.shape, mode)
    return M.forward(params, tokens_BT, spec.model, node_fn=K.masked_node_fn(spec.layout, m_nodes, ablate, positions_B),
                     positions_B=positions_B)


def pair_diffs(spec: MaskSpec, params, stats, m_nodes: Array, pairs: Pairs, key: Array, mode: str | None = None
               ) -> Array:
    """``[P, 2]`` logit[target] - logit[alt] at the last position (the positive's correct token is the target).
    ``m_nodes`` is ``[N]`` or per sequence ``[2P, N]`` in the flat order."""
    flat = flatten(pairs)
    at = masked_logits(spec, params, stats, m_nodes, flat.tokens, key, mode, positions_B=flat.last)
    i = jnp.arange(flat.tokens.shape[0])
    z = (at[i, flat.correct] - at[i, flat.wrong]).reshape(2, -1)  # correct - wrong
    return jnp.stack([z[0], -z[1]], axis=1)


def _margins_one(spec: MaskSpec, params, stats, m_nodes, pairs: Pairs) -> Array:
    def body(_, xs):
        j, p = xs
        return None, pair_diffs(spec, params, stats, m_nodes, p, jax.random.fold_in(jax.random.key(7), j))

    c = chunks(pairs, spec.batch_pairs)
    _, d = jax.lax.scan(body, None, (jnp.arange(c.weight.shape[0]), c))
    return d.reshape(-1, 2)


# -- the mask loop (traced) --------------------------------------------------------------------------------------------


def _optimizer(spec: MaskSpec, s: Mapping[str, Array]) -> optax.GradientTransformation:
    sched = lambda count: s["lr"] * sharkfin(count, spec.steps, spec.warmup_frac)
    return optax.chain(optax.clip_by_global_norm(spec.grad_clip),
                       optax.adamw(sched, b1=spec.b1, b2=spec.b2, weight_decay=s["weight_decay"]))


def _init_one(spec: MaskSpec, s):
    tau = K.init_tau(jax.random.fold_in(jax.random.key(s["seed"]), 0), spec.layout.n_units,
                     s["init_noise_bias"], s["init_noise_scale"])
    return tau, _optimizer(spec, s).init(tau), jnp.zeros_like(tau)


def _train_chunk_one(spec: MaskSpec, params, stats, pairs: Pairs, s, carry, start, length: int):
    opt = _optimizer(spec, s)
    mask_fn = K.MASK_FNS[spec.mask_param]
    key = jax.random.fold_in(jax.random.key(s["seed"]), 1)
    n_take = min(spec.batch_pairs, pairs.n)

    def objective(tau, batch: Pairs, temp, k_abl):
        m_nodes = spec.layout.nodes(mask_fn(tau, temp))
        flat = flatten(batch)
        logits_BV = masked_logits(spec, params, stats, m_nodes, flat.tokens, k_abl, positions_B=flat.last)
        task_loss, _ = T.contrast_loss(logits_BV, flat)
        n_on = m_nodes.sum()
        return task_loss + s["k_coef"] * n_on, (task_loss, n_on)

    def step(carry, i):
        tau, opt_state, push = carry
        kb, ka = jax.random.split(jax.random.fold_in(key, i))
        idx = jax.random.choice(kb, pairs.n, (n_take,), replace=False)
        batch = jax.tree.map(lambda a: a[idx], pairs)
        temp = K.temperature(spec.temp_schedule, spec.temp_start, spec.temp_end, i / max(1, spec.steps - 1))
        grads, (task_loss, n_on) = jax.grad(objective, has_aux=True)(tau, batch, temp, ka)
        updates, new_opt = opt.update(grads, opt_state, tau)
        raw = optax.apply_updates(tau, updates)
        new_tau = jnp.clip(raw, -1.0, 1.0)
        live = i < spec.steps  # the last chunk may run past the end: those steps leave the state alone
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)
        return keep((new_tau, new_opt, push + raw - new_tau), (tau, opt_state, push)), (task_loss, n_on)

    return jax.lax.scan(step, carry, start + jnp.arange(length))


def _meets_target(spec: MaskSpec, params, stats, m_nodes, pairs: Pairs, target) -> tuple[Array, Array]:
    """Whether the task loss under ``m_nodes`` is at most ``target`` (``pair_loss(_margins_one(...)) <= target`` to
    the bit), and how many chunks it read. Pair losses are non-negative, so once the chunks read so far sum past the
    target's whole budget the rest cannot bring the loss back under it (a 1e-3 margin covers the sums' rounding), and
    the remaining chunks are skipped: about half of a bisection's evaluations fail, many by far. A decision that
    reads every chunk compares the full loss."""
    c = chunks(pairs, spec.batch_pairs)
    n = c.weight.shape[0]
    budget = target * 2 * jnp.sum(pairs.weight) * (1 + 1e-3)

    def unread(state):
        j, partial, _ = state
        return (j < n) & ~(partial > budget)

    def read_chunk(state):
        j, partial, d = state
        p = jax.tree.map(lambda a: a[j], c)
        d_j = pair_diffs(spec, params, stats, m_nodes, p, jax.random.fold_in(jax.random.key(7), j))
        return j + 1, partial + jnp.sum(p.weight * T.pair_losses(d_j)), d.at[j].set(d_j)

    init = (jnp.int32(0), jnp.float32(0), jnp.zeros((n, spec.batch_pairs, 2), jnp.float32))
    j, _, d = jax.lax.while_loop(unread, read_chunk, init)
    return (j == n) & (T.pair_loss(d.reshape(-1, 2), pairs.weight) <= target), j


def _bisect_one(spec: MaskSpec, params, stats, pairs: Pairs, score_U, tiebreak_U, target):
    """Smallest k such that the top-k units by score meet ``target`` (assumes the loss falls with k, and that
    k = U, the unpruned model, meets it). Stops once the interval is a single k."""
    rank = ranks(score_U, tiebreak_U)
    U = score_U.shape[0]
    meets_at = lambda k: _meets_target(spec, params, stats, spec.layout.nodes((rank < k).astype(jnp.float32)), pairs,
                                       target)[0]
    n_iter = max(1, math.ceil(math.log2(U + 1)))

    def body(state):
        i, lo, hi = state
        mid = (lo + hi) // 2
        ok = meets_at(mid)
        return i + 1, jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi)

    _, _, k = jax.lax.while_loop(lambda s: (s[0] < n_iter) & (s[1] < s[2]), body,
                                 (jnp.int32(0), jnp.int32(0), jnp.int32(U)))
    return k, (rank < k).astype(jnp.float32)


static_jit = functools.partial(jax.jit, static_argnums=(0,))


@static_jit
def _margins(spec: MaskSpec, params, stats, m_nodes_SN, pairs):
    return jax.vmap(functools.partial(_margins_one, spec), in_axes=(None, None, 0, None))(params, stats, m_nodes_SN,
                                                                                           pairs)


@static_jit
def _init(spec: MaskSpec, settings):
    return jax.vmap(functools.partial(_init_one, spec))(settings)


@functools.partial(jax.jit, static_argnums=(0, 7))
def _train_chunk(spec: MaskSpec, params, stats, pairs, settings, carry, start, length: int):
    step = functools.partial(_train_chunk_one, spec, length=length)
    return jax.vmap(step, in_axes=(None, None, None, 0, 0, None))(params, stats, pairs, settings, carry, start)


@static_jit
def _bisect(spec: MaskSpec, params, stats, pairs, score_SU, tiebreak_SU, target):
    one = functools.partial(_bisect_one, spec)
    return jax.vmap(one, in_axes=(None, None, None, 0, 0, None))(params, stats, pairs, score_SU, tiebreak_SU, target)


_pair_loss_S = jax.jit(jax.vmap(T.pair_loss, in_axes=(0, None)))  # one compiled call, not a dozen eager ops


# -- the host-side handle ----------------------------------------------------------------------------------------------


class Pruner:
    """The circuit search for one frozen model: holds the arrays, calls the compiled programs of its ``MaskSpec``."""

    def __init__(self, params: Any, model_cfg: ModelConfig, cfg: PruneConfig, stats: NodeStats):
        self.params, self.model_cfg, self.cfg = params, model_cfg, cfg
        self.spec = MaskSpec.of(model_cfg, cfg)
        self.layout = self.spec.layout
        names = self.layout.names
        self.stats = {"mean": {n: jnp.asarray(stats.means[n], jnp.float32) for n in names},
                      "bank": {n: jnp.asarray(stats.bank[n], jnp.float32) for n in names}}
        self.chunk = cfg.batch_pairs

    def pad(self, batch: Any) -> Pairs:
        return pairs_from_batch(batch, pad_to=self.chunk)

    def diffs(self, m_nodes_SN: Array, pairs: Pairs) -> Array:
        """``[S, P, 2]`` logit[target] - logit[alt] under each of S node masks ``[S, N]``."""
        return _margins(self.spec, self.params, self.stats, jnp.asarray(m_nodes_SN, jnp.float32), pairs)

    def loss(self, m_nodes_SN: Array, pairs: Pairs) -> np.ndarray:
        """Task loss for each of S node masks ``[S, N]`` (1 = kept, 0 = ablated)."""
        return self.pair_losses(self.diffs(m_nodes_SN, pairs), pairs)

    def pair_losses(self, d_SP2: Array, pairs: Pairs) -> np.ndarray:
        """Task loss for each of S ``diffs`` of ``pairs``: what ``loss`` returns for the masks they came from."""
        return np.asarray(_pair_loss_S(jnp.asarray(d_SP2), pairs.weight))

    def units_to_nodes(self, m_units: Array) -> np.ndarray:
        return np.asarray(self.layout.nodes(jnp.asarray(m_units)))

    def train(self, settings: Mapping[str, np.ndarray], pairs: Pairs,
              progress: Callable[[int], None] | None = None) -> tuple[UnitScores, dict[str, np.ndarray]]:
        """Trains S mask settings together; returns their unit scores ``[S, U]`` and per-step task loss and nodes
        on ``[S, steps]``."""
        s = {k: jnp.asarray(v) for k, v in settings.items()}
        # The first chunk's carry must have the placement the chunks return (that of the params, e.g. a restored
        # run's NamedSharding): otherwise the second chunk compiles the whole mask loop a second time.
        carry = jax.device_put(_init(self.spec, s), jax.tree.leaves(self.params)[0].sharding)
        length = min(self.cfg.chunk_steps, self.cfg.steps)
        logs = []
        for start in range(0, self.cfg.steps, length):
            carry, log = _train_chunk(self.spec, self.params, self.stats, pairs, s, carry, jnp.int32(start), length)
            logs.append(log)
            if progress:
                progress(min(length, self.cfg.steps - start))
        task_loss = np.concatenate([np.asarray(l[0]) for l in logs], 1)[:, : self.cfg.steps]
        n_on = np.concatenate([np.asarray(l[1]) for l in logs], 1)[:, : self.cfg.steps]
        return UnitScores(np.asarray(carry[0]), np.asarray(carry[2])), {"task_loss": task_loss, "n_on": n_on}

    def bisect(self, scores: UnitScores | np.ndarray, pairs: Pairs, target: float) -> tuple[np.ndarray, np.ndarray]:
        """Per setting: bisected k and the kept-unit mask ``[S, U]``. ``scores`` is a UnitScores, or plain scores
        ``[S, U]`` (ties then broken by index)."""
        if not isinstance(scores, UnitScores):
            scores = UnitScores(np.asarray(scores), np.zeros_like(np.asarray(scores)))
        k, m = _bisect(self.spec, self.params, self.stats, pairs, jnp.asarray(scores.tau, jnp.float32),
                       jnp.asarray(scores.push, jnp.float32), jnp.float32(target))
        return np.asarray(k), np.asarray(m)


@functools.partial(jax.jit, static_argnums=(2,))
def _fit(d_P2: Array, weight: Array, steps: int) -> Array:
    f = lambda ab: T.pair_loss(d_P2, weight, ab[0], ab[1])
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
