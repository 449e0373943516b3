"""One table of facts about every parameter of the model: its sparsity family, the axis its neurons' weights run
along, whether weight decay applies, and which circuit edges its entries are.

``sparsity`` (which tensors are projected, per-neuron reservations), ``optim`` (the decay mask), ``circuits.graph``
(edges between kept nodes) and the report all read this table, so a new parameter is described once, here. Paths are
the ``/``-joined pytree keys of ``model.init_params`` with the block index written ``*`` (``blocks/*/mlp/c_fc/w``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax

FAMILIES = ("interior", "embed", "bias")  # the sparse families; every other parameter is dense


@dataclasses.dataclass(frozen=True)
class Edge:
    """Entries of a block weight seen as circuit edges: ``w[i, group * width + j]`` joins ``src:i`` to ``dst:j``."""

    name: str  # e.g. "attn.act_in->q"
    paper_type: str  # the paper's four edge types: the three c_attn groups together are "attn.act_in->qkv"
    src: str  # node location inside the block, e.g. "attn.act_in"
    dst: str
    group: int  # column block of the weight (q | k | v for c_attn)


@dataclasses.dataclass(frozen=True)
class WeightFacts:
    family: str | None  # "interior" | "embed" | "bias" | None (dense)
    neuron_axis: int | None  # interior weights: the axis one neuron's weights run along (0: per output column)
    decayed: bool  # decoupled weight decay applies (matrices except the bigram table)
    edges: tuple[Edge, ...] = ()


def _edge(name: str, paper_type: str, group: int = 0) -> Edge:
    src, dst = name.split("->")
    return Edge(name, paper_type, src, f"{src.split('.')[0]}.{dst}", group)


_BIAS = WeightFacts("bias", None, False)
_DENSE = WeightFacts(None, None, False)
TABLE: dict[str, WeightFacts] = {
    "wte/w": WeightFacts("embed", None, True),
    "wpe/w": WeightFacts(None, None, True),
    "blocks/*/ln_1/g": _DENSE,
    # c_attn's columns are q | k | v; a neuron of c_attn or c_fc is an output column (fan-in along axis 0),
    # a neuron of either c_proj is an input row (fan-out along axis 1).
    "blocks/*/attn/c_attn/w": WeightFacts("interior", 0, True, (
        _edge("attn.act_in->q", "attn.act_in->qkv", 0), _edge("attn.act_in->k", "attn.act_in->qkv", 1),
        _edge("attn.act_in->v", "attn.act_in->qkv", 2))),
    "blocks/*/attn/c_attn/b": _BIAS,
    "blocks/*/attn/c_proj/w": WeightFacts("interior", 1, True, (_edge("attn.v->resid_delta",
                                                                      "attn.v->resid_delta"),)),
    "blocks/*/attn/c_proj/b": _BIAS,
    "blocks/*/attn/sink": _DENSE,
    "blocks/*/ln_2/g": _DENSE,
    "blocks/*/mlp/c_fc/w": WeightFacts("interior", 0, True, (_edge("mlp.act_in->post_act",
                                                                   "mlp.act_in->post_act"),)),
    "blocks/*/mlp/c_fc/b": _BIAS,
    "blocks/*/mlp/c_proj/w": WeightFacts("interior", 1, True, (_edge("mlp.post_act->resid_delta",
                                                                     "mlp.post_act->resid_delta"),)),
    "blocks/*/mlp/c_proj/b": _BIAS,
    "ln_f/g": _DENSE,
    "lm_head/w": WeightFacts("embed", None, True),
    "bigram/table": _DENSE,  # the paper excludes it from sparsity and from weight decay
}


def path_names(path: tuple) -> list[str]:
    """A jax key path as strings: ``("blocks", "3", "mlp", "c_fc", "w")``."""
    return [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]


def pattern(path: tuple | str) -> str:
    """The table key of a parameter path: ``blocks/3/mlp/c_fc/w`` -> ``blocks/*/mlp/c_fc/w``."""
    name = path if isinstance(path, str) else "/".join(path_names(path))
    return re.sub(r"^blocks/\d+/", "blocks/*/", name)


def facts(path: tuple | str) -> WeightFacts:
    """The facts of one parameter; a path the table does not know is an error, never silently dense."""
    key = pattern(path)
    try:
        return TABLE[key]
    except KeyError:
        raise KeyError(f"parameter {key!r} is not in wsparse.weights.TABLE: describe every model parameter "
                       "there (sparsity family, neuron axis, decay, edges)") from None


def tree_map_facts(fn: Any, params: Any) -> Any:
    """``fn(facts, leaf)`` over every parameter, keeping the tree's structure."""
    return jax.tree_util.tree_map_with_path(lambda path, leaf: fn(facts(path), leaf), params)


def block_edges() -> dict[str, tuple[tuple[str, ...], Edge]]:
    """Edge name -> (weight path inside a block, edge), in the table's order (the circuit diagram's order)."""
    out = {}
    for key, f in TABLE.items():
        for e in f.edges:
            out[e.name] = (tuple(key.split("/")[2:]), e)
    return out
