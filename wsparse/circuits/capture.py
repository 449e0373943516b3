"""One scan of the model over batches of tokens, capturing node activations through the ``node_fn`` hook.

The node means (``circuits.means``) and the report's per-node statistics (``report.node_info``) both read
activations this way; each passes a ``fold`` that reduces one batch's captured nodes to what it keeps, so memory
holds only that, never every node at every position.
"""

from __future__ import annotations

from typing import Any, Callable, Collection

import jax
import jax.numpy as jnp
import numpy as np

from wsparse import model as M

# fold(carry, acts, x) -> (carry, y): acts[location] is float32[B, T, width] for one batch; x is that batch's slice
# of ``xs``; the ys are stacked over batches.
Fold = Callable[[Any, dict[str, jax.Array], Any], tuple[Any, Any]]


def scan(params: Any, cfg: Any, tokens_NBT: np.ndarray, fold: Fold, init: Any, xs: Any = None, *,
         locations: Collection[str] | None = None) -> tuple[Any, Any]:
    """Runs the model on each ``tokens_NBT[i]`` (``[n_batches, B, T]``) in one jitted ``lax.scan``.

    ``locations`` (default: every node location, ``model.node_shapes``) are captured as float32 and passed to
    ``fold``; returns the final carry and the stacked ys, on the host. Raises KeyError for a location the model
    does not have.
    """
    wanted = set(M.node_shapes(cfg) if locations is None else locations)
    missing = wanted - set(M.node_shapes(cfg))
    if missing:
        raise KeyError(f"the model has no node location(s) {sorted(missing)}; see wsparse.model.node_shapes")

    @jax.jit
    def run(params, tokens_NBT, init, xs):
        def body(carry, step):
            toks, x = step
            acts: dict[str, jax.Array] = {}

            def capture(name: str, a: jax.Array) -> jax.Array:
                if name in wanted:
                    acts[name] = a.astype(jnp.float32)
                return a

            M.forward(params, toks, cfg, node_fn=capture)
            return fold(carry, acts, x)

        return jax.lax.scan(body, init, (tokens_NBT, xs))

    return jax.device_get(run(params, jnp.asarray(tokens_NBT, jnp.int32), init, xs))
