"""Node fidelity (the faithfulness card, docs/method.md section 6): does each kept node, and each kept attention
head, behave in the circuit (everything else ablated) as it does in the full model?

A pruned circuit can meet the task loss through mechanisms the full model does not use: a node whose inputs were
ablated may carry a constant, change sign, or take another role, and a head whose query or key channels were ablated
may attend uniformly. One jitted scan over the test pairs runs the full model and the circuit side by side through
the masked ``node_fn`` and accumulates, per node, the moments of the two activations over every real position
(their correlation; also over last positions alone), and per head the total-variation distance between the two attention rows at the last position
(the sink's share counted as one more slot).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wsparse import model as M
from wsparse.circuits import masks as K
from wsparse.circuits.prune import MaskSpec, Pairs, Pruner, ablation_values, chunks, flatten, static_jit
from wsparse.config import FaithfulnessConfig

MOMENTS = ("n", "x", "y", "xx", "yy", "xy")  # x: full model, y: circuit


def _run(spec: MaskSpec, params, ablate, m_nodes, tokens_BT):
    """Node outputs ``{location: [B, T, width]}`` and q/k per layer of the model under ``m_nodes``."""
    acts: dict[str, jax.Array] = {}
    inner = K.masked_node_fn(spec.layout, m_nodes, ablate)

    def node_fn(name, x):
        y = inner(name, x)
        acts[name] = y.astype(jnp.float32)
        return y

    # No positions_B: every node at every position. The logits are unused, so jit drops the unembedding.
    M.forward(params, tokens_BT, spec.model, node_fn=node_fn)
    return acts


def _last_rows(spec: MaskSpec, params, acts, last_B):
    """Attention weights of every layer's heads at each sequence's last position, ``[L, B, H, T + 1]`` (the last
    slot is the sink's share)."""
    cfg = spec.model
    B, T = acts["0.attn.q"].shape[:2]
    rows = []
    for i in range(cfg.n_layer):
        q, k = (acts[f"{i}.attn.{n}"].reshape(B, T, cfg.n_head, cfg.d_head) for n in ("q", "k"))
        sink = params["blocks"][i]["attn"]["sink"] if cfg.attn_sink else None
        p_BHTS = M.attention_probs(q, k, sink)
        p_BHS = p_BHTS[jnp.arange(B), :, last_B]
        rows.append(jnp.concatenate([p_BHS, 1.0 - p_BHS.sum(-1, keepdims=True)], -1))
    return jnp.stack(rows)


@static_jit
def _moments(spec: MaskSpec, params, stats, m_nodes, pairs: Pairs):
    N = spec.layout.n_nodes
    L, H = spec.model.n_layer, spec.model.n_head

    def body(carry, p: Pairs):
        flat = flatten(p)
        B, T = flat.tokens.shape
        ablate = ablation_values(spec, stats, jax.random.key(7), (B, T))
        full = _run(spec, params, ablate, jnp.ones_like(m_nodes), flat.tokens)
        circ = _run(spec, params, ablate, m_nodes, flat.tokens)
        w_B = jnp.concatenate([p.weight, p.weight])
        t_T = jnp.arange(T)[None, :]
        x = jnp.concatenate([full[n] for n in spec.layout.names], -1)
        y = jnp.concatenate([circ[n] for n in spec.layout.names], -1)
        upd = {}
        for where, pos_BT in (("all", t_T <= flat.last[:, None]), ("last", t_T == flat.last[:, None])):
            w_BT1 = (w_B[:, None] * pos_BT)[..., None]
            upd[where] = {"n": jnp.broadcast_to(w_BT1.sum((0, 1)), (N,)), "x": (w_BT1 * x).sum((0, 1)),
                          "y": (w_BT1 * y).sum((0, 1)), "xx": (w_BT1 * x * x).sum((0, 1)),
                          "yy": (w_BT1 * y * y).sum((0, 1)), "xy": (w_BT1 * x * y).sum((0, 1))}
        tv_LBH = 0.5 * jnp.abs(_last_rows(spec, params, full, flat.last)
                               - _last_rows(spec, params, circ, flat.last)).sum(-1)
        upd["tv"] = (w_B[None, :, None] * tv_LBH).sum(1)
        upd["n_seq"] = w_B.sum()
        return jax.tree.map(jnp.add, carry, upd), None

    moments = {k: jnp.zeros((N,), jnp.float32) for k in MOMENTS}
    init = {"all": moments, "last": moments, "tv": jnp.zeros((L, H), jnp.float32), "n_seq": jnp.zeros((), jnp.float32)}
    total, _ = jax.lax.scan(body, init, chunks(pairs, spec.batch_pairs))
    return total


def correlations(m: dict[str, np.ndarray], rel_eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per node: the correlation of full-model and circuit activations, and whether both are constant (then the
    correlation is undefined and reported as nan). A node constant in one run only correlates 0: it lost, or
    gained, all its variation."""
    n = np.maximum(m["n"], 1.0)
    mx, my = m["x"] / n, m["y"] / n
    vx, vy = m["xx"] / n - mx ** 2, m["yy"] / n - my ** 2
    scale = np.maximum(np.maximum(np.abs(m["xx"] / n), np.abs(m["yy"] / n)), 1e-30)
    cx, cy = vx > rel_eps * scale, vy > rel_eps * scale
    cov = m["xy"] / n - mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(cx & cy, cov / np.sqrt(np.maximum(vx, 1e-30) * np.maximum(vy, 1e-30)), 0.0)
    both_constant = ~cx & ~cy
    return np.where(both_constant, np.nan, np.clip(r, -1.0, 1.0)), both_constant


def kept_heads(pr: Pruner, m_nodes: np.ndarray) -> np.ndarray:
    """``[L, H]`` bool: heads with at least one kept q, k or v channel."""
    cfg = pr.model_cfg
    out = np.zeros((cfg.n_layer, cfg.n_head), bool)
    for i in range(cfg.n_layer):
        for n in ("q", "k", "v"):
            out[i] |= m_nodes[pr.layout.slice(f"{i}.attn.{n}")].reshape(cfg.n_head, cfg.d_head).any(-1)
    return out


def node_fidelity(pr: Pruner, m_nodes: np.ndarray, test: Pairs, fc: FaithfulnessConfig) -> dict[str, Any]:
    """The correlation of each kept node's activation in the circuit with the full model's on ``test`` over every
    real position (the verdict's), and over each sequence's last position alone (``last_position``: where the answer
    is read); and the mean attention total variation of kept heads at the last position."""
    mom = jax.device_get(_moments(pr.spec, pr.params, pr.stats, jnp.asarray(m_nodes, jnp.float32), test))
    kept = np.flatnonzero(m_nodes > 0)
    names = [f"{n}:{i}" for n in pr.layout.names for i in range(pr.layout.widths[pr.layout.names.index(n)])]

    def stats(where):
        r, constant = correlations({k: np.asarray(mom[where][k], np.float64) for k in MOMENTS})
        defined = kept[~constant[kept]]
        return r, constant, defined, defined[r[defined] < fc.min_corr]

    r, constant, defined, low = stats("all")
    rk = r[defined]
    low_frac = float(len(low) / max(1, len(defined)))
    r_last, _, defined_last, low_last = stats("last")
    heads = kept_heads(pr, m_nodes)
    tv = np.asarray(mom["tv"]) / max(1.0, float(mom["n_seq"]))
    head_tv = {f"{i}.h{h}": float(tv[i, h]) for i, h in zip(*np.nonzero(heads))}
    mean_tv = float(np.mean(list(head_tv.values()))) if head_tv else 0.0
    flag = low_frac > fc.max_low_frac or mean_tv > fc.max_attention_tv
    q = (lambda p: float(np.quantile(rk, p))) if len(rk) else (lambda p: None)
    worst = sorted(low, key=lambda j: r[j])[:10]
    return {
        "verdict": "flag" if flag else "pass",
        "summary": f"{len(low)} of {len(defined)} kept nodes correlate below {fc.min_corr:g} with the full model "
                   f"({low_frac:.0%}; flag above {fc.max_low_frac:.0%}), {int(np.sum(rk < 0))} negatively; "
                   f"median r {q(0.5) if q(0.5) is None else format(q(0.5), '.2f')} ({len(low_last)} low at the "
                   f"last position); {len(head_tv)} kept heads, "
                   f"mean attention TV {mean_tv:.2f} (flag above {fc.max_attention_tv:g})",
        "n_kept": int(len(kept)), "n_constant": int(np.sum(constant[kept])), "n_low": int(len(low)),
        "n_negative": int(np.sum(rk < 0)), "low_frac": low_frac,
        "corr_quantiles": {"min": q(0.0), "p10": q(0.1), "median": q(0.5)},
        "lowest": {names[j]: float(r[j]) for j in worst},
        "last_position": {"n_defined": int(len(defined_last)), "n_low": int(len(low_last)),
                          "low_frac": float(len(low_last) / max(1, len(defined_last))),
                          "median": float(np.median(r_last[defined_last])) if len(defined_last) else None},
        "head_tv": head_tv, "mean_head_tv": mean_tv, "max_head_tv": max(head_tv.values(), default=0.0),
    }
