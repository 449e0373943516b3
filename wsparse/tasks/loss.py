"""The paper's two-sided contrast loss: log-softmax over the two candidate logits at each sequence's last token.

The one definition of the task loss. Training-free evaluation reads it per sequence from logits
(``contrast_loss_per_seq``); the pruner, which works on pairs, reads it from candidate logit differences
(``pair_loss``), optionally calibrated by a scale and shift. Both are ``softplus(-margin)`` with margin = logit of the
correct candidate minus logit of the wrong one, and both report the per-sequence scale (a pair's sum / 2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sequence_loss(margin: jax.Array) -> jax.Array:
    """``-log softmax([correct, wrong])[0]`` from margin = logit[correct] - logit[wrong]."""
    return jax.nn.softplus(-margin)


def contrast_loss_per_seq(logits_BTV: jax.Array, batch) -> tuple[jax.Array, jax.Array]:
    """Per sequence: the loss and whether correct's logit beats wrong's.

    ``batch`` is anything with ``last``, ``correct`` and ``wrong`` int arrays of shape [B] (a TaskBatch).
    ``logits`` are either all positions [B, T, V] or already each sequence's last position [B, V]
    (``model.forward(..., positions_B=batch.last)``, which skips the unembedding elsewhere).
    """
    rows = jnp.arange(logits_BTV.shape[0])
    final_BV = logits_BTV if logits_BTV.ndim == 2 else logits_BTV[rows, batch.last]
    final_BV = final_BV.astype(jnp.float32)
    margin_B = final_BV[rows, batch.correct] - final_BV[rows, batch.wrong]
    return sequence_loss(margin_B), (margin_B > 0).astype(jnp.float32)


def contrast_loss(logits_BTV: jax.Array, batch) -> tuple[jax.Array, jax.Array]:
    """(loss, accuracy), both means over the 2n sequences: loss is the pair sum / 2, the paper's scale."""
    loss_B, correct_B = contrast_loss_per_seq(logits_BTV, batch)
    return loss_B.mean(), correct_B.mean()


def pair_losses(d_P2: jax.Array, a: jax.Array | float = 1.0, b: jax.Array | float = 0.0) -> jax.Array:
    """Per pair, the sum of its two sequences' losses from ``d = logit[target] - logit[alt]`` (``[P, 2]``: the
    positive, whose correct answer is the target, then the negative), after the calibration ``d -> a * d + b``."""
    z = a * d_P2 + b
    return sequence_loss(z[:, 0]) + sequence_loss(-z[:, 1])


def pair_loss(d_P2: jax.Array, weight: jax.Array, a: jax.Array | float = 1.0, b: jax.Array | float = 0.0
              ) -> jax.Array:
    """Task loss per sequence over weighted pairs (weight 0 marks padding)."""
    return jnp.sum(weight * pair_losses(d_P2, a, b)) / (2 * jnp.sum(weight))
