"""Train state, the jitted weight-sparse train step, and the training loop (metrics, eval, checkpoints, preemption).

The step is one pure function: next-token cross-entropy -> gradients -> optax update -> top-k projection of every
sparse tensor. The loop shards each batch over the mesh's ``data`` axis, keeps parameters replicated, fetches
metrics one step late so the device never waits for the host, and checkpoints the data iterator state beside the
parameters so a resumed run is bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsparse import checkpoint as ckpt_lib
from wsparse import config as config_lib
from wsparse import model, optim, parallel, sparsity
from wsparse.config import Config


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


class RunMismatch(ValueError):
    """A workdir that belongs to another config or tokenizer."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions: init, loss, step.


def init_state(cfg: Config, key: jax.Array, optimizer: optax.GradientTransformation) -> TrainState:
    params = model.init_params(cfg.model, key)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def next_token_loss(params, batch_BT1: jax.Array, cfg: Config) -> jax.Array:
    """Mean next-token cross-entropy of windows of n_ctx + 1 tokens."""
    tokens_BT, targets_BT = batch_BT1[:, :-1], batch_BT1[:, 1:]
    logits_BTV = model.forward(params, tokens_BT, cfg.model)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BTV, targets_BT).mean()


def make_train_step(cfg: Config, optimizer: optax.GradientTransformation) -> Callable:
    """``step(state, batch) -> (state, metrics)``; jit it with the shardings of :class:`Trainer`."""

    def step(state: TrainState, batch_BT1: jax.Array):
        loss, grads = jax.value_and_grad(next_token_loss)(state.params, batch_BT1, cfg)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_step = state.step + 1
        if cfg.sparsity.enabled:
            params = sparsity.project(params, new_step, cfg.train.steps, cfg.sparsity)
        metrics = {"loss": loss, "grad_rms": optim.global_rms(grads), "lr": optim.lr_at(state.step, cfg)}
        return TrainState(step=new_step, params=params, opt_state=opt_state), metrics

    return step


def make_eval_step(cfg: Config) -> Callable:
    return lambda params, batch_BT1: next_token_loss(params, batch_BT1, cfg)


_nonzero_counts = jax.jit(sparsity.nonzero_counts)


def density_report(params) -> dict[str, float]:
    """Realised fraction of nonzero entries per sparsity family (host-side numbers for logging)."""
    counts = jax.device_get(_nonzero_counts(params))
    return {f"density/{fam}": float(nnz) / float(size) for fam, (nnz, size) in counts.items() if size}


# ---------------------------------------------------------------------------------------------------------------------
# Runs on disk.

# Keys that may differ between the command that started a run and one that resumes it.
_RESUMABLE_KEYS = {"train.log_every", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
                   "train.keep_checkpoints", "train.mesh_data", "distributed", "prune", "name", "data.cache_dir"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_same_run(saved: Config, new: Config, workdir: str) -> None:
    a, b = _flatten(config_lib.to_dict(saved)), _flatten(config_lib.to_dict(new))
    diff = sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and not any(k == r or k.startswith(r + ".") for r in _RESUMABLE_KEYS))
    if diff:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:6])
        raise RunMismatch(f"workdir {workdir} holds a run with a different config ({shown}); "
                          "use a new --workdir or the same config")


@dataclasses.dataclass
class Run:
    """What every later stage needs from a trained run."""

    cfg: Config
    params: Any
    tokenizer: Any
    tokenizer_sha256: str
    step: int
    workdir: str

    def val_tokens(self, n_tokens: int, batch: int = 16) -> np.ndarray:
        """``[n, batch, n_ctx]`` validation windows (at least ``n_tokens`` positions) from the run's own data.

        Node means and top-activating contexts must use the tokenizer the model was trained with: data prepared
        anew after the corpus or generator changed raise a clear error instead of silently using other ids.
        """
        from wsparse import data as data_lib
        from wsparse.data import pipeline

        prepared = data_lib.prepare(self.cfg.data, log=lambda *a, **k: None)
        data_lib.check_compatible(prepared, self.tokenizer_sha256, self.cfg.model.vocab_size)
        n_ctx = self.cfg.model.n_ctx
        n_batches = max(1, math.ceil(n_tokens / (batch * n_ctx)))
        return np.asarray(pipeline.val_batches(prepared, n_ctx=n_ctx, batch=batch, n_batches=n_batches))[..., :n_ctx]


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_run(workdir: str, step: int | None = None) -> Run:
    """Config, parameters and tokenizer of a trained run, from its latest (or the given) checkpoint."""
    from wsparse.data import tokenizer as tok_lib

    workdir = os.path.abspath(workdir)
    cfg_path, tok_path = os.path.join(workdir, "config.json"), os.path.join(workdir, "tokenizer.json")
    for path in (cfg_path, tok_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} is missing: is {workdir} a wsparse run directory "
                                    "(made by `python -m experiments.train`)?")
    cfg = config_lib.load(cfg_path)
    optimizer = optim.make_optimizer(cfg)
    # An explicit target sharding lets a run trained on a pod be loaded on one laptop CPU, and vice versa.
    abstract = ckpt_lib.abstract_like(jax.eval_shape(lambda k: init_state(cfg, k, optimizer), jax.random.key(0)),
                                      sharding=parallel.replicated(parallel.make_mesh()))
    checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=cfg.train.keep_checkpoints)
    step, state, extra = checkpointer.restore(abstract, step)
    checkpointer.close()
    sha = _sha256(tok_path)
    if extra.get("tokenizer_sha256") not in (None, sha):
        raise RunMismatch(f"{tok_path} (sha256 {sha[:12]}) is not the tokenizer checkpoint {step} was trained with "
                          f"(sha256 {extra['tokenizer_sha256'][:12]})")
    return Run(cfg=cfg, params=state.params, tokenizer=tok_lib.load(tok_path), tokenizer_sha256=sha, step=step,
               workdir=workdir)


# ---------------------------------------------------------------------------------------------------------------------
# The loop.


class _Preemption:
    """Turns SIGTERM / Ctrl-C into a flag the loop checks, so it can checkpoint and exit cleanly."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class MetricsLog:
    """metrics.jsonl plus TensorBoard events, written by process 0 only."""

    def __init__(self, workdir: str):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self._jsonl.flush()
        for k, v in metrics.items():
            self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    final_loss: float
    final_eval_loss: float | None
    resumed_from: int | None
    stopped_early: bool


def train(cfg: Config, workdir: str, *, log: Callable[[str], None] = print, progress: bool = True,
          max_steps: int | None = None) -> TrainResult:
    """Trains (or resumes) the run in ``workdir``. ``max_steps`` stops early (tests of preemption and resume)."""
    from wsparse import data as data_lib
    from wsparse.data import pipeline

    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    is_main = jax.process_index() == 0

    # -- Data and tokenizer: the run keeps its own copy of the tokenizer and the manifest it used.
    prepared = data_lib.prepare(cfg.data, log=log)
    tok_path = os.path.join(workdir, "tokenizer.json")
    cfg_path = os.path.join(workdir, "config.json")
    if os.path.exists(cfg_path):
        check_same_run(config_lib.load(cfg_path), cfg, workdir)
    if os.path.exists(tok_path) and _sha256(tok_path) != prepared.tokenizer_sha256:
        raise RunMismatch(f"{tok_path} differs from the tokenizer of the prepared data {prepared.dir} "
                          "(the data config or the task registry changed); use a new --workdir")
    if is_main:
        config_lib.save(cfg, cfg_path)
        if not os.path.exists(tok_path):
            shutil.copyfile(prepared.tokenizer_path, tok_path)
        with open(os.path.join(workdir, "data.json"), "w") as f:
            json.dump(prepared.manifest, f, indent=2)

    # -- Mesh, optimizer, jitted steps.
    mesh = parallel.make_mesh(cfg.train.mesh_data)
    parallel.check_batch_size(cfg.train.batch_size, mesh)
    optimizer = optim.make_optimizer(cfg)
    repl, data_sharding = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    state_sharding = jax.tree.map(lambda _: repl, jax.eval_shape(
        lambda k: init_state(cfg, k, optimizer), jax.random.key(0)))
    init_fn = jax.jit(lambda k: init_state(cfg, k, optimizer), out_shardings=state_sharding)
    step_fn = jax.jit(make_train_step(cfg, optimizer), in_shardings=(state_sharding, data_sharding),
                      out_shardings=(state_sharding, repl), donate_argnums=0)
    eval_fn = jax.jit(make_eval_step(cfg), in_shardings=(state_sharding.params, data_sharding), out_shardings=repl)

    data_iter = pipeline.train_iterator(prepared, n_ctx=cfg.model.n_ctx, global_batch=cfg.train.batch_size,
                                        seed=cfg.train.seed, process_index=jax.process_index(),
                                        process_count=jax.process_count())
    val = pipeline.val_batches(prepared, n_ctx=cfg.model.n_ctx, batch=cfg.train.batch_size,
                               n_batches=cfg.train.eval_batches)

    # -- Fresh start or resume.
    checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=cfg.train.keep_checkpoints)
    resumed_from = checkpointer.latest_step()
    if resumed_from is None:
        state = init_fn(jax.random.key(cfg.train.seed))
    else:
        abstract = ckpt_lib.abstract_like(jax.eval_shape(lambda k: init_state(cfg, k, optimizer),
                                                         jax.random.key(0)), sharding=repl)
        _, state, extra = checkpointer.restore(abstract, resumed_from)
        data_iter.set_state(extra["data"])
        log(f"resumed from step {resumed_from} in {workdir}")

    def save(state: TrainState) -> None:
        step = int(jax.device_get(state.step))
        checkpointer.save(step, state, {"data": data_iter.get_state(), "tokenizer_sha256": prepared.tokenizer_sha256,
                                        "config_fingerprint": config_lib.fingerprint(cfg.model)})

    def evaluate(params) -> float:
        losses = [eval_fn(params, parallel.global_batch(_local_rows(b), mesh)) for b in val]
        return float(np.mean(jax.device_get(losses)))

    metrics_log = MetricsLog(workdir)
    start = int(jax.device_get(state.step))
    end = cfg.train.steps if max_steps is None else min(cfg.train.steps, max_steps)
    last_loss, last_eval, stopped_early = float("nan"), None, False
    pending: tuple[int, dict] | None = None
    window_start, window_tokens = time.perf_counter(), 0
    tokens_per_step = cfg.train.batch_size * cfg.model.n_ctx

    def finish(step: int, metrics: dict) -> None:
        """Host side of step ``step`` (1-based count of completed steps), one step late."""
        nonlocal last_loss, window_start, window_tokens
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not math.isfinite(metrics["loss"]):
            raise TrainingDiverged(f"non-finite loss {metrics['loss']} at step {step}; the last good checkpoint "
                                   f"(step {checkpointer.latest_step()}) is kept in {checkpointer.directory}")
        last_loss = metrics["loss"]
        if step % cfg.train.log_every == 0 or step == end:
            now = time.perf_counter()
            metrics["tokens_per_s"] = window_tokens / max(now - window_start, 1e-9)
            window_start, window_tokens = now, 0
            metrics.update(density_report(state.params))
            metrics_log.write(step, metrics)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", refresh=False)

    from tqdm import tqdm
    bar = tqdm(total=end, initial=start, disable=not (progress and is_main), desc=cfg.name, unit="step")
    try:
        with _Preemption() as preempt:
            for s in range(start, end):
                batch = parallel.global_batch(next(data_iter), mesh)
                state, metrics = step_fn(state, batch)
                window_tokens += tokens_per_step
                if pending is not None:
                    finish(*pending)
                pending = (s + 1, metrics)
                bar.update(1)
                done = s + 1
                if done % cfg.train.eval_every == 0 or done == end:
                    finish(*pending)
                    pending = None
                    last_eval = evaluate(state.params)
                    metrics_log.write(done, {"eval_loss": last_eval})
                if done % cfg.train.checkpoint_every == 0 or done == end:
                    if pending is not None:
                        finish(*pending)  # never checkpoint a state whose loss was not checked
                        pending = None
                    save(state)
                if preempt.requested:
                    if pending is not None:
                        finish(*pending)
                        pending = None
                    save(state)
                    log(f"interrupted: saved a checkpoint at step {done}; re-run the same command to resume")
                    stopped_early = True
                    break
            if pending is not None:
                finish(*pending)
    finally:
        bar.close()
        metrics_log.close()
        checkpointer.close()
    return TrainResult(state=state, final_loss=last_loss, final_eval_loss=last_eval, resumed_from=resumed_from,
                       stopped_early=stopped_early)


def _local_rows(batch: np.ndarray) -> np.ndarray:
    """This process's share of a global (host-replicated) validation batch."""
    n = batch.shape[0] // jax.process_count()
    return batch[jax.process_index() * n:(jax.process_index() + 1) * n]


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

