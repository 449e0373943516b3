"""Pairs to token arrays, enforcing the token-boundary rule under a given tokenizer.

The rule: ``encode(prompt) + [id(candidate)] == encode(prompt + candidate)`` for both candidates of both prompts, so
the logit the loss reads is the one the model would produce when the candidate really follows the prompt.
"""

from __future__ import annotations

import collections
from typing import NamedTuple

import numpy as np
from tokenizers import Tokenizer

from wsparse.tasks import registry
from wsparse.tasks.base import Pair, Task, TaskError


class TaskBatch(NamedTuple):
    """2n sequences, positives first then their negatives in the same order (a pytree, so it passes through jit)."""

    tokens: np.ndarray  # int32[2n, n_ctx], right-padded
    last: np.ndarray  # int32[2n], index of each sequence's last real token
    correct: np.ndarray  # int32[2n]
    wrong: np.ndarray  # int32[2n]


def _ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def candidate_ids(tokenizer: Tokenizer, candidates) -> dict[str, int | None]:
    """Each candidate's single token id, or None where the tokenizer splits it."""
    out = {}
    for c, ids in zip(candidates, _ids(tokenizer, list(candidates))):
        out[c] = ids[0] if len(ids) == 1 else None
    return out


def check_pairs(tokenizer: Tokenizer, pairs: list[Pair]) -> tuple[list[tuple[list[int], list[int], int, int]],
                                                                   collections.Counter]:
    """Tokenized pairs that obey the rule, as (pos_ids, neg_ids, target_id, alt_id); and why the others failed."""
    cand = candidate_ids(tokenizer, {c for p in pairs for c in (p.target, p.alt)})
    texts = []
    for p in pairs:
        texts += [p.positive, p.negative, p.positive + p.target, p.positive + p.alt, p.negative + p.target,
                  p.negative + p.alt]
    enc = _ids(tokenizer, texts)
    ok, why = [], collections.Counter()
    for i, p in enumerate(pairs):
        pos, neg, pt, pa, nt, na = enc[6 * i:6 * i + 6]
        t, a = cand[p.target], cand[p.alt]
        if t is None or a is None:
            why[f"candidate {p.target if t is None else p.alt!r} is not a single token"] += 1
            continue
        bad = [c for prompt, c, full in ((pos, p.target, pt), (pos, p.alt, pa), (neg, p.target, nt),
                                         (neg, p.alt, na)) if prompt + [cand[c]] != full]
        if bad:
            why[f"candidate {bad[0]!r} merges with the end of its prompt"] += 1
            continue
        ok.append((pos, neg, t, a))
    return ok, why


def encode_pairs(tokenizer: Tokenizer, task: Task | str, split: str, n: int, seed: int = 0, *, shifted: bool = False):
    """The first ``n`` pairs of the task's stream (its shifted stream with ``shifted``) that obey the token-boundary
    rule, tokenized."""
    task = registry.get(task) if isinstance(task, str) else task
    want = n
    while True:
        pairs = task.generate(split, int(want * 1.1) + 8, seed, shifted=shifted)
        ok, why = check_pairs(tokenizer, pairs)
        if len(ok) >= n:
            return ok[:n]
        if len(ok) < 0.5 * len(pairs) or want > 4 * n:
            reason = why.most_common(1)[0][0] if why else "no pairs"
            raise TaskError(f"task {task.name}: only {len(ok)} of {len(pairs)} {split} pairs obey the token-boundary "
                            f"rule under this tokenizer ({reason}); build the tokenizer with "
                            f"wsparse.tasks.required_tokens() after registering the task")
        want *= 2


def pack(rows: list[list[int]], n_ctx: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Left-truncates each row to ``n_ctx`` and right-pads: (tokens int32[len, n_ctx], last int32[len])."""
    tokens = np.full((len(rows), n_ctx), pad_id, np.int32)
    last = np.zeros(len(rows), np.int32)
    for i, r in enumerate(rows):
        r = r[-n_ctx:]
        tokens[i, :len(r)] = r
        last[i] = len(r) - 1
    return tokens, last


BUCKET = 16  # sequence lengths are rounded up to a multiple of this: few distinct shapes, few compilations


def bucketed_length(last: np.ndarray, n_ctx: int, bucket: int = BUCKET) -> int:
    """The length that holds every sequence whose last real token is at ``last``, rounded up to ``bucket`` (at most
    ``n_ctx``). Cutting the right padding never changes a causal model's logits at the real positions."""
    return min(n_ctx, -(-(int(np.max(last)) + 1) // bucket) * bucket)


def encode(task: Task | str, tokenizer: Tokenizer, split: str, n: int, n_ctx: int, seed: int = 0,
           pad_id: int = 0, *, shifted: bool = False) -> TaskBatch:
    """``n`` pairs as a TaskBatch of 2n sequences (positives, then negatives in the same order)."""
    ok = encode_pairs(tokenizer, task, split, n, seed, shifted=shifted)
    tokens, last = pack([o[0] for o in ok] + [o[1] for o in ok], n_ctx, pad_id)
    correct = np.array([o[2] for o in ok] + [o[3] for o in ok], np.int32)
    wrong = np.array([o[3] for o in ok] + [o[2] for o in ok], np.int32)
    return TaskBatch(tokens, last, correct, wrong)
