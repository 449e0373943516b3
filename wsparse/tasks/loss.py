"""The paper's two-sided contrast loss: log-softmax over the two candidate logits at each sequence's last token."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def contrast_loss_per_seq(logits_BTV: jax.Array, batch) -> tuple[jax.Array, jax.Array]:
    """Per sequence: ``-log softmax([correct, wrong])[0]`` and whether correct's logit beats wrong's.

    ``batch`` is anything with ``last``, ``correct`` and ``wrong`` int arrays of shape [B] (a TaskBatch).
    ``logits`` are either all positions [B, T, V] or already each sequence's last position [B, V]
    (``model.forward(..., positions_B=batch.last)``, which skips the unembedding elsewhere).
    """
    rows = jnp.arange(logits_BTV.shape[0])
    final_BV = logits_BTV if logits_BTV.ndim == 2 else logits_BTV[rows, batch.last]
    final_BV = final_BV.astype(jnp.float32)
    margin_B = final_BV[rows, batch.correct] - final_BV[rows, batch.wrong]
    return jax.nn.softplus(-margin_B), (margin_B > 0).astype(jnp.float32)


def contrast_loss(logits_BTV: jax.Array, batch) -> tuple[jax.Array, jax.Array]:
    """(loss, accuracy), both means over the 2n sequences: loss is the pair sum / 2, the paper's scale."""
    loss_B, correct_B = contrast_loss_per_seq(logits_BTV, batch)
    return loss_B.mean(), correct_B.mean()
