"""The training loop: data, checkpoints, metrics, evaluation and preemption around the pure step.

The step itself (:mod:`wsparse.train_step`) is one jitted function; the loop shards each batch over the mesh's
``data`` axis, keeps parameters replicated, fetches each step's metrics one step late so the device never waits
for the host, and checkpoints the data iterator state beside the parameters so a resumed run is bitwise identical
to an uninterrupted one. Which directories a run may resume is :mod:`wsparse.runs`'s policy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from typing import Callable

import jax
import numpy as np

from wsparse import checkpoint as ckpt_lib
from wsparse import config as config_lib
from wsparse import optim, parallel, runs
from wsparse.config import Config
# Re-exported: the step's pieces and the run-directory API were defined here before they had modules of their own.
from wsparse.runs import Run, RunMismatch, check_same_run, load_run  # noqa: F401
from wsparse.train_step import (TrainState, abstract_state, init_state, make_eval_step, make_train_step,  # noqa: F401
                                measure_step_rate, next_token_loss)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


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
    final_eval_loss: float | None  # on all validation documents
    resumed_from: int | None
    stopped_early: bool
    final_eval_losses: dict[str, float] | None = None  # by kind: "all", "real" (library code), "synthetic"


def train(cfg: Config, workdir: str, *, log: Callable[[str], None] = print, progress: bool = True,
          max_steps: int | None = None) -> TrainResult:
    """Trains (or resumes) the run in ``workdir``. ``max_steps`` stops early (tests of preemption and resume)."""
    from wsparse import data as data_lib
    from wsparse.data import pipeline
    from wsparse.data.store import VAL_KINDS

    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    is_main = jax.process_index() == 0

    # -- Data and tokenizer: the run keeps its own copy of the tokenizer and the manifest it used.
    prepared = data_lib.prepare(cfg.data, log=log)
    runs.claim(cfg, workdir, prepared)

    # -- Mesh, optimizer, jitted steps.
    mesh = parallel.make_mesh(cfg.train.mesh_data)
    parallel.check_batch_size(cfg.train.batch_size, mesh, cfg.train.microbatches)
    optimizer = optim.make_optimizer(cfg)
    repl, data_sharding = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    state_sharding = jax.tree.map(lambda _: repl, abstract_state(cfg, optimizer))
    init_fn = jax.jit(lambda k: init_state(cfg, k, optimizer), out_shardings=state_sharding)
    step_fn = jax.jit(make_train_step(cfg, optimizer), in_shardings=(state_sharding, data_sharding),
                      out_shardings=(state_sharding, repl), donate_argnums=0)
    eval_fn = jax.jit(make_eval_step(cfg), in_shardings=(state_sharding.params, data_sharding), out_shardings=repl)

    data_iter = pipeline.train_iterator(prepared, n_ctx=cfg.model.n_ctx, global_batch=cfg.train.batch_size,
                                        seed=cfg.train.seed, process_index=jax.process_index(),
                                        process_count=jax.process_count())
    # Validation loss on all documents, and apart on real code and on generated programs (where the data have them).
    val = {kind: pipeline.val_batches(prepared, n_ctx=cfg.model.n_ctx, batch=cfg.train.batch_size,
                                      n_batches=cfg.train.eval_batches, kind=kind)
           for kind in VAL_KINDS if len(prepared.val_tokens(kind)) > cfg.model.n_ctx}

    # -- Fresh start or resume.
    checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=cfg.train.keep_checkpoints)
    resumed_from = checkpointer.latest_step()
    if resumed_from is None:
        state = init_fn(jax.random.key(cfg.train.seed))
    else:
        abstract = ckpt_lib.abstract_like(abstract_state(cfg, optimizer), sharding=repl)
        _, state, extra = checkpointer.restore(abstract, resumed_from)
        data_iter.set_state(extra["data"])
        log(f"resumed from step {resumed_from} in {workdir}")

    def save(state: TrainState) -> None:
        step = int(jax.device_get(state.step))
        checkpointer.save(step, state, {"data": data_iter.get_state(), "tokenizer_sha256": prepared.tokenizer_sha256,
                                        "config_fingerprint": config_lib.fingerprint(cfg.model)})

    def evaluate(params) -> dict[str, float]:
        losses = {kind: [eval_fn(params, parallel.global_batch(_local_rows(b), mesh)) for b in batches]
                  for kind, batches in val.items()}
        return {kind: float(np.mean(jax.device_get(x))) for kind, x in losses.items()}

    metrics_log = MetricsLog(workdir)
    start = int(jax.device_get(state.step))
    end = cfg.train.steps if max_steps is None else min(cfg.train.steps, max_steps)
    last_loss, last_eval, stopped_early = float("nan"), None, False
    pending: tuple[int, dict] | None = None
    window_start, window_tokens = time.perf_counter(), 0
    tokens_per_step = cfg.train.batch_size * cfg.model.n_ctx

    def finish(step: int, metrics: dict) -> None:
        """Host side of step ``step`` (1-based count of completed steps), one step late: every number in
        ``metrics``, the density included, was computed by that step."""
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
                    metrics_log.write(done, {("eval_loss" if kind == "all" else f"eval_loss_{kind}"): v
                                             for kind, v in last_eval.items()})
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
    return TrainResult(state=state, final_loss=last_loss, final_eval_loss=None if last_eval is None else
                       last_eval["all"], final_eval_losses=last_eval, resumed_from=resumed_from,
                       stopped_early=stopped_early)


def _local_rows(batch: np.ndarray) -> np.ndarray:
    """This process's share of a global (host-replicated) validation batch."""
    n = batch.shape[0] // jax.process_count()
    return batch[jax.process_index() * n:(jax.process_index() + 1) * n]
