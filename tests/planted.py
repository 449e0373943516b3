"""The planted-circuit model the circuit tests share: a one-layer model whose only path from cue to answer is known.

Not a test module: ``tests/test_circuits.py`` and ``tests/test_faithfulness.py`` import it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wsparse import model as M
from wsparse import tasks
from wsparse.config import ModelConfig, PruneConfig

A1, A2, C1, C2 = 1, 2, 3, 4  # the cue tokens and the two candidates; every other token has a zero embedding
FILLERS = (0, 5, 6, 7)
PLANTED = {"0.attn.act_in": [0], "0.attn.v": [1], "0.attn.resid_delta": [2],
           "0.mlp.act_in": [2], "0.mlp.post_act": [3], "0.mlp.resid_delta": [5]}
CFG = ModelConfig(vocab_size=8, n_ctx=8, n_layer=1, d_model=8, n_head=1, d_head=4, d_mlp=8, afrac=1.0)
PRUNE = PruneConfig(steps=150, chunk_steps=50, batch_pairs=16, lr=1e-2, k_coef=1e-3, warmup_frac=0.0,
                    sweep_k_coef=(), sweep_lr=(), n_random_controls=2, resample_bank=64)


def planted_params() -> dict:
    """Token A1/A2 at position 0 writes +-1 on residual channel 0; uniform attention (q = k = 0) carries it through
    v channel 1 to residual channel 2 at the last position; MLP neuron 3 (biased into GELU's linear range) copies it
    to residual channel 5, which alone drives the candidates' logits. Every other weight is zero."""
    p = jax.tree.map(jnp.zeros_like, M.init_params(CFG, jax.random.key(0)))
    p = jax.tree.map(np.array, p)
    blk = p["blocks"][0]
    for g in (blk["ln_1"]["g"], blk["ln_2"]["g"], p["ln_f"]["g"]):
        g[:] = 1.0
    p["wte"]["w"][A1, 0], p["wte"]["w"][A2, 0] = 1.0, -1.0
    blk["attn"]["c_attn"]["w"][0, 2 * CFG.d_attn + 1] = 1.0  # act_in:0 -> v:1
    blk["attn"]["c_proj"]["w"][1, 2] = 6.0  # v:1 -> resid_delta:2
    blk["mlp"]["c_fc"]["w"][2, 3], blk["mlp"]["c_fc"]["b"][3] = 1.0, 10.0  # act_in:2 -> post_act:3
    blk["mlp"]["c_proj"]["w"][3, 5], blk["mlp"]["c_proj"]["b"][5] = 1.0, -10.0  # post_act:3 -> resid_delta:5
    p["lm_head"]["w"][C1, 5], p["lm_head"]["w"][C2, 5] = 1.0, -1.0  # margin 4: loss ~0.02, not saturated
    return jax.tree.map(jnp.asarray, p)


def cue_batch(n: int, seed: int, length: int = 6) -> tasks.TaskBatch:
    rng = np.random.default_rng(seed)
    body = rng.choice(FILLERS, size=(n, length - 1))
    pos = np.concatenate([np.full((n, 1), A1), body], 1)
    neg = np.concatenate([np.full((n, 1), A2), body], 1)
    tokens = np.zeros((2 * n, CFG.n_ctx), np.int32)
    tokens[:, :length] = np.concatenate([pos, neg])
    return tasks.TaskBatch(tokens, np.full(2 * n, length - 1, np.int32), np.array([C1] * n + [C2] * n, np.int32),
                           np.array([C2] * n + [C1] * n, np.int32))


def splits(test: tasks.TaskBatch | None = None) -> dict[str, tasks.TaskBatch]:
    return {"train": cue_batch(32, 0), "val": cue_batch(32, 1), "test": cue_batch(32, 2) if test is None else test}




def symmetric_pretraining(n: int = 8) -> np.ndarray:
    """``[2, n, n_ctx]`` random sequences, each also with the two cues exchanged, so every cue-odd node has mean 0
    exactly: mean ablation then removes a path's signal without leaving a bias behind."""
    pre = np.random.default_rng(1).integers(0, CFG.vocab_size, size=(n, CFG.n_ctx))
    mirror = np.where(pre == A1, A2, np.where(pre == A2, A1, pre))
    return np.stack([pre, mirror]).astype(np.int32)


def node_stats(params):
    """Node means and a resample bank over ``symmetric_pretraining`` (the model's 'pretraining' distribution)."""
    from wsparse.circuits import means

    return means.compute(params, CFG, symmetric_pretraining(), n_bank=64)


def two_path_params(opposite: float = 1.0) -> dict:
    """The planted model plus a weaker path of the opposite sign: act_in:0 -> v:2 -> resid_delta:6, which the
    unembedding reads like channel 5 but negated. The full model still answers correctly (the planted path wins),
    but ablating the planted path leaves the opposite one alone, so the swapped-answers task is reachable by masking:
    what a mask that "creates behaviour" looks like."""
    p = jax.tree.map(np.array, planted_params())
    blk = p["blocks"][0]
    blk["attn"]["c_attn"]["w"][0, 2 * CFG.d_attn + 2] = 1.0  # act_in:0 -> v:2
    blk["attn"]["c_proj"]["w"][2, 6] = opposite  # v:2 -> resid_delta:6
    p["lm_head"]["w"][C1, 6], p["lm_head"]["w"][C2, 6] = -1.0, 1.0
    return jax.tree.map(jnp.asarray, p)
