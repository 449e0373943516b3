"""Faithfulness checks of a circuit (docs/method.md section 5): sufficiency, necessity, random controls, and the
attribution-pruning baseline the paper compares learned masks against."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wsparse import tasks as T
from wsparse.circuits.prune import MaskSpec, Pairs, Pruner, chunks, pair_diffs, ranks, static_jit


def sufficiency(test_loss: float, target: float) -> dict[str, Any]:
    """The circuit alone (everything else ablated) on the test split: its test loss, measured once for the record's
    ``circuit_loss``, against the target."""
    return {"loss": test_loss, "meets_target": test_loss <= target}


def necessity(pr: Pruner, m_nodes: np.ndarray, test: Pairs, unpruned: float) -> dict[str, Any]:
    """Inverse pruning: ablate only the circuit in the full model; a faithful circuit cripples the task."""
    loss = float(pr.loss(1.0 - m_nodes[None], test)[0])
    return {"loss": loss, "increase": loss - unpruned}


def random_masks(pr: Pruner, m_nodes: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``[n, N]`` random circuits with the circuit's node count at every location."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, pr.layout.n_nodes), np.float32)
    for name in pr.layout.names:
        sl = pr.layout.slice(name)
        count = int(m_nodes[sl].sum())
        width = sl.stop - sl.start
        for r in range(n):
            out[r, sl.start + rng.choice(width, count, replace=False)] = 1.0
    return out


def random_controls(pr: Pruner, m_nodes: np.ndarray, test: Pairs, target: float, n: int, seed: int
                    ) -> dict[str, Any]:
    if n <= 0:
        return {"n": 0}
    losses = pr.loss(random_masks(pr, m_nodes, n, seed), test)
    return {"n": n, "losses": [float(x) for x in losses], "mean": float(losses.mean()), "min": float(losses.min()),
            "frac_meeting_target": float(np.mean(losses <= target))}


def attribution_scores(pr: Pruner, pairs: Pairs) -> np.ndarray:
    """Per unit: sum over pairs of |d pair-loss / d m| at m = 1, which is |sum over positions of
    gradient x (activation - ablation value)|, the first-order effect of ablating the node. Resample ablation uses
    the mean here (a deterministic reference)."""
    return np.asarray(_attribution(pr.spec, pr.params, pr.stats, pairs))


@static_jit
def _attribution(spec: MaskSpec, params, stats, pairs: Pairs) -> jax.Array:
    mode = "zero" if spec.ablation == "zero" else "mean"

    def body(total, p: Pairs):
        def summed_loss(m_PN):
            d = pair_diffs(spec, params, stats, jnp.concatenate([m_PN, m_PN]), p, jax.random.key(0), mode)
            return jnp.sum(p.weight * T.pair_losses(d))

        g = jax.grad(summed_loss)(jnp.ones((p.weight.shape[0], spec.layout.n_nodes), jnp.float32))
        return total + jnp.abs(g).sum(0), None

    total, _ = jax.lax.scan(body, jnp.zeros((spec.layout.n_nodes,), jnp.float32), chunks(pairs, spec.batch_pairs))
    return spec.layout.unit_scores(total)


def attribution_baseline(pr: Pruner, train: Pairs, val: Pairs, test: Pairs, target: float, k_units: int
                         ) -> dict[str, Any]:
    """Top units by attribution on train, bisected on val like the learned masks; its test loss, and its test loss at
    the learned circuit's size."""
    scores = attribution_scores(pr, train)
    k, m_units = pr.bisect(scores[None], val, target)
    m_nodes = pr.units_to_nodes(m_units[0])
    same_nodes = pr.units_to_nodes((np.asarray(ranks(jnp.asarray(scores))) < k_units).astype(np.float32))
    losses = pr.loss(np.stack([m_nodes, same_nodes]), test)
    return {"k_units": int(k[0]), "m_nodes": m_nodes, "test_loss": float(losses[0]),
            "test_loss_at_learned_size": float(losses[1])}
