"""Circuit graphs: kept nodes per location and the edges between them (docs/method.md section 5).

An edge is a nonzero weight entry whose two ends are kept nodes. Weights are stored ``[in, out]``, so entry
``w[i, j]`` is the edge ``source:i -> destination:j``. The circuit size the paper reports is the edge count.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from wsparse import weights

# Edge type -> (weight path inside a block, edge), from the one table of per-parameter facts, in diagram order.
EDGE_TYPES: dict[str, tuple[tuple[str, ...], weights.Edge]] = weights.block_edges()
PAPER_TYPES = tuple(dict.fromkeys(e.paper_type for _, e in EDGE_TYPES.values()))


def label(name: str, index: int) -> str:
    """The artifact's node id, e.g. ``"3.mlp.post_act:17"``."""
    return f"{name}:{index}"


def kept_indices(kept: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    """Boolean masks per location -> sorted kept indices (every location listed, empty if none kept)."""
    return {n: np.flatnonzero(np.asarray(m) > 0).tolist() for n, m in kept.items()}


def edges(params: Any, kept: Mapping[str, np.ndarray], with_list: bool = True
          ) -> tuple[list[list], dict[str, int]]:
    """Edges among kept nodes. ``kept[name]`` is a 0/1 mask over that location's width.

    Returns ``[[source, destination, weight], ...]`` (empty unless ``with_list``) and counts: total, the paper's four
    types, and q/k/v separately.
    """
    out: list[list] = []
    counts = {"total": 0} | {t: 0 for t in PAPER_TYPES} | {t: 0 for t in EDGE_TYPES}
    for L, block in enumerate(params["blocks"]):
        for etype, (path, edge) in EDGE_TYPES.items():
            src, dst, group = edge.src, edge.dst, edge.group
            w = np.asarray(block[path[0]][path[1]][path[2]])
            s_keep = np.flatnonzero(np.asarray(kept[f"{L}.{src}"]) > 0)
            d_keep = np.flatnonzero(np.asarray(kept[f"{L}.{dst}"]) > 0)
            width = len(kept[f"{L}.{dst}"])
            sub = w[np.ix_(s_keep, d_keep + group * width)]
            si, di = np.nonzero(sub)
            n = len(si)
            counts["total"] += n
            counts[edge.paper_type] += n
            if edge.paper_type != etype:
                counts[etype] += n
            if with_list:
                out += [[label(f"{L}.{src}", int(s_keep[a])), label(f"{L}.{dst}", int(d_keep[b])), float(sub[a, b])]
                        for a, b in zip(si, di)]
    return out, counts
