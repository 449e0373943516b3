"""Task evaluation of a model: every task's test pairs through one jitted forward, in length-bucketed batches."""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import jax
import numpy as np
from tokenizers import Tokenizer

from wsparse.tasks import registry
from wsparse.tasks.encode import BUCKET, TaskBatch, bucketed_length, encode
from wsparse.tasks.loss import contrast_loss_per_seq


@functools.lru_cache(maxsize=8)
def _scorer(model_cfg) -> Callable:
    """One jitted (params, batch) -> (loss_B, correct_B) per model config: repeated evaluations reuse it."""
    from wsparse import model  # imported late: tasks must not need the model to generate or encode

    def score(params, batch):
        return contrast_loss_per_seq(model.forward(params, batch.tokens, model_cfg, positions_B=batch.last), batch)

    return jax.jit(score)


def encode_all(tokenizer: Tokenizer, names: Iterable[str], n_ctx: int, *, split: str = "test", n: int = 500,
               seed: int = 0) -> dict[str, TaskBatch]:
    return {name: encode(name, tokenizer, split, n, n_ctx, seed) for name in names}


def evaluate_batches(params, model_cfg, batches: dict[str, TaskBatch], *, batch_size: int = 64,
                     bucket: int = BUCKET) -> dict[str, dict]:
    """Scores every sequence of every task; returns {task: {"loss", "accuracy", "n"}} with n counted in pairs.

    Sequences of all tasks are sorted by length and cut to the longest in each batch (rounded up to ``bucket``), so
    short prompts do not pay for n_ctx; the batch size is fixed and there are at most n_ctx / bucket compilations.
    Padding on the right never changes a causal model's logits at the real positions.
    """
    score = _scorer(model_cfg)
    owner = np.concatenate([np.full(len(b.last), i) for i, b in enumerate(batches.values())])
    cat = TaskBatch(*(np.concatenate(xs) for xs in zip(*batches.values())))
    order = np.argsort(cat.last, kind="stable")
    loss = np.zeros(len(order), np.float64)
    right = np.zeros(len(order), np.float64)
    n_ctx = cat.tokens.shape[1]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        T = bucketed_length(cat.last[idx], n_ctx, bucket)
        pad = np.resize(idx, batch_size)  # a full batch keeps one compiled shape; extra rows are dropped below
        sub = TaskBatch(cat.tokens[pad, :T], cat.last[pad], cat.correct[pad], cat.wrong[pad])
        loss_B, right_B = jax.device_get(score(params, sub))
        loss[idx], right[idx] = loss_B[:len(idx)], right_B[:len(idx)]
    out = {}
    for i, name in enumerate(batches):
        m = owner == i
        out[name] = {"loss": float(loss[m].mean()), "accuracy": float(right[m].mean()), "n": int(m.sum() // 2)}
    return out


def evaluate(params, model_cfg, tokenizer: Tokenizer, names: Iterable[str] | None = None, *, split: str = "test",
             n: int = 500, seed: int = 0, batch_size: int = 64) -> dict[str, dict]:
    """Contrast loss (per sequence) and accuracy of the model on each task's ``split``; ``names`` default to all."""
    names = list(registry.names() if names is None else names)
    batches = encode_all(tokenizer, names, model_cfg.n_ctx, split=split, n=n, seed=seed)
    return evaluate_batches(params, model_cfg, batches, batch_size=batch_size)


def format_table(results: dict[str, dict]) -> str:
    rows = [f"{'task':<28} {'loss':>8} {'accuracy':>9} {'n':>6}"]
    rows += [f"{k:<28} {v['loss']:>8.4f} {v['accuracy']:>9.3f} {v['n']:>6}" for k, v in results.items()]
    if results:
        mean = lambda key: sum(v[key] for v in results.values()) / len(results)  # noqa: E731
        rows.append(f"{'mean':<28} {mean('loss'):>8.4f} {mean('accuracy'):>9.3f}")
    return "\n".join(rows)
