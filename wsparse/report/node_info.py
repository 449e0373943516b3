"""What a circuit node responds to: its mean activation and the pretraining contexts that activate it most.

A reader hovering a node wants to know what the node *is* before trusting an edge into it. These statistics come from
the validation split of the pretraining data (not task data), through the same capturing scan as the node means
(``circuits.capture``): it keeps only the requested channels of the requested locations, so memory stays at
``tokens x circuit nodes`` rather than ``tokens x every node``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Context:
    """A top-activating position: a few tokens of left context, the token itself, and the node's value there."""

    prefix: str
    token: str
    value: float


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    name: str  # "3.mlp.post_act:17"
    mean: float  # over every validation position
    top: tuple[Context, ...]  # distinct contexts ranked by |activation|, largest first

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mean": self.mean,
                "top": [{"prefix": c.prefix, "token": c.token, "value": c.value} for c in self.top]}


def split_node(node: str) -> tuple[str, int]:
    """``"3.mlp.post_act:17"`` -> ``("3.mlp.post_act", 17)``."""
    loc, _, idx = node.rpartition(":")
    if not loc:
        raise ValueError(f"node {node!r} is not written LOCATION:INDEX (e.g. '3.mlp.post_act:17')")
    return loc, int(idx)


def group_by_location(nodes: Iterable[str]) -> dict[str, list[int]]:
    """Sorted unique channel indices per location."""
    out: dict[str, set[int]] = {}
    for n in nodes:
        loc, i = split_node(n)
        out.setdefault(loc, set()).add(i)
    return {loc: sorted(ix) for loc, ix in out.items()}


def capture(params: Any, model_cfg: Any, tokens_NBT: np.ndarray, wanted: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """``{location: float32[N*B, T, len(indices)]}``: the requested channels at every position of every batch."""
    import jax.numpy as jnp

    from wsparse.circuits import capture as capture_lib

    index = {loc: jnp.asarray(ix, jnp.int32) for loc, ix in wanted.items()}

    def fold(carry, acts, _):
        return carry, {loc: jnp.take(acts[loc], ix, axis=-1) for loc, ix in index.items()}

    _, out = capture_lib.scan(params, model_cfg, tokens_NBT, fold, (), locations=set(wanted))
    return {loc: np.asarray(out[loc]).reshape(-1, *np.shape(out[loc])[2:]) for loc in wanted}


def summarize(acts: dict[str, np.ndarray], wanted: dict[str, list[int]], tokens_ST: np.ndarray,
              decode: Any, *, top_k: int = 5, context: int = 8,
              means: dict[str, np.ndarray] | None = None) -> dict[str, NodeInfo]:
    """NodeInfo per node from captured activations ``acts[loc]: [S, T, len(wanted[loc])]`` over ``tokens_ST``.

    ``decode(ids) -> str``. ``means[loc][channel]``, when given (the pruner's cached ablation means), replaces the
    mean of these positions so the tooltip shows the exact value a pruned node is replaced by.
    """
    S, T = tokens_ST.shape
    out: dict[str, NodeInfo] = {}
    for loc, indices in wanted.items():
        a = acts[loc].reshape(S * T, len(indices))
        for j, ch in enumerate(indices):
            col = a[:, j]
            # A small validation split repeats windows: look further down the ranking for distinct contexts.
            pool = min(col.size, 20 * top_k)
            best = np.argpartition(-np.abs(col), pool - 1)[:pool] if pool else np.zeros(0, int)
            best = best[np.argsort(-np.abs(col[best]), kind="stable")]
            ctxs: list[Context] = []
            seen: set[tuple[str, str]] = set()
            for flat in best:
                s, t = divmod(int(flat), T)
                prefix = decode([int(x) for x in tokens_ST[s, max(0, t - context):t]])
                token = decode([int(tokens_ST[s, t])])
                if (prefix, token) not in seen:
                    seen.add((prefix, token))
                    ctxs.append(Context(prefix=prefix, token=token, value=float(col[flat])))
                if len(ctxs) == top_k:
                    break
            mean = float(means[loc][ch]) if means is not None and loc in means else float(col.mean())
            out[f"{loc}:{ch}"] = NodeInfo(name=f"{loc}:{ch}", mean=mean, top=tuple(ctxs))
    return out


def compute(params: Any, model_cfg: Any, tokenizer: Any, tokens_NBT: np.ndarray, nodes: Sequence[str], *,
            top_k: int = 5, context: int = 8, means: dict[str, np.ndarray] | None = None) -> dict[str, NodeInfo]:
    """NodeInfo for each of ``nodes`` over validation windows ``tokens_NBT`` (``[n_batches, B, T]`` model inputs)."""
    wanted = group_by_location(nodes)
    if not wanted:
        return {}
    tokens_NBT = np.asarray(tokens_NBT)
    acts = capture(params, model_cfg, tokens_NBT, wanted)
    tokens_ST = tokens_NBT.reshape(-1, tokens_NBT.shape[-1])
    return summarize(acts, wanted, tokens_ST, lambda ids: tokenizer.decode(ids, skip_special_tokens=False),
                     top_k=top_k, context=context, means=means)
