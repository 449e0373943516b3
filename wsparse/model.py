"""The paper's GPT-2-style transformer (docs/method.md section 1) as pure functions over a nested dict of arrays.

Parameters are float32 and stored ``[in, out]`` (``y = x @ w + b``) under the path names of docs/architecture.md.
``forward`` casts them to ``cfg.dtype`` for the matmuls and always returns float32 logits.

``node_fn(name, x)`` is called at every node location of docs/method.md section 5, after that location's AbsTopK:
capture, masking and ablation all go through this one hook, so no other copy of the forward pass exists.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from wsparse import matmul, native, topk
from wsparse.native import attention as native_attention
from wsparse.config import ModelConfig

Params = dict[str, Any]
NodeFn = Callable[[str, jax.Array], jax.Array]

# ---------------------------------------------------------------------------------------------------------------------
# Initialisation


def init_params(cfg: ModelConfig, key: jax.Array) -> Params:
    """N(0, init_std) everywhere, both c_proj at init_std / sqrt(2 n_layer), biases and sink logits zero."""
    std = cfg.init_std
    proj_std = std / math.sqrt(2 * cfg.n_layer)
    D, V, A, M = cfg.d_model, cfg.vocab_size, cfg.d_attn, cfg.d_mlp
    k_wte, k_pos, k_head, k_bigram, k_blocks = jax.random.split(key, 5)

    def normal(k: jax.Array, shape: tuple[int, ...], s: float) -> jax.Array:
        return s * jax.random.normal(k, shape, jnp.float32)

    def linear(k: jax.Array, n_in: int, n_out: int, s: float) -> Params:
        p = {"w": normal(k, (n_in, n_out), s)}
        if cfg.bias:
            p["b"] = jnp.zeros((n_out,), jnp.float32)
        return p

    def block(k: jax.Array) -> Params:
        k_attn, k_aproj, k_fc, k_mproj = jax.random.split(k, 4)
        attn = {"c_attn": linear(k_attn, D, 3 * A, std), "c_proj": linear(k_aproj, A, D, proj_std)}
        if cfg.attn_sink:
            attn["sink"] = jnp.zeros((cfg.n_head,), jnp.float32)
        return {
            "ln_1": {"g": jnp.ones((D,), jnp.float32)},
            "attn": attn,
            "ln_2": {"g": jnp.ones((D,), jnp.float32)},
            "mlp": {"c_fc": linear(k_fc, D, M, std), "c_proj": linear(k_mproj, M, D, proj_std)},
        }

    params: Params = {"wte": {"w": normal(k_wte, (V, D), std)}}
    if cfg.pos_emb:
        params["wpe"] = {"w": normal(k_pos, (cfg.n_ctx, D), std)}
    params["blocks"] = [block(k) for k in jax.random.split(k_blocks, cfg.n_layer)]
    params["ln_f"] = {"g": jnp.ones((D,), jnp.float32)}
    params["lm_head"] = {"w": normal(k_head, (V, D), std)}
    if cfg.bigram_table:
        params["bigram"] = {"table": jax.random.uniform(k_bigram, (V, V), jnp.float32, 0.0, 0.02)}
    return params


def node_shapes(cfg: ModelConfig) -> dict[str, int]:
    """Node names in the order ``forward`` calls ``node_fn``, with their widths."""
    D, A, M = cfg.d_model, cfg.d_attn, cfg.d_mlp
    shapes: dict[str, int] = {}
    for i in range(cfg.n_layer):
        shapes.update({
            f"{i}.attn.act_in": D, f"{i}.attn.q": A, f"{i}.attn.k": A, f"{i}.attn.v": A,
            f"{i}.attn.resid_delta": D,
            f"{i}.mlp.act_in": D, f"{i}.mlp.post_act": M, f"{i}.mlp.resid_delta": D,
        })
    return shapes


# ---------------------------------------------------------------------------------------------------------------------
# Activation sparsity


def abs_topk(x: jax.Array, k: int, impl: str = "auto") -> jax.Array:
    """Keeps the ``k`` entries of largest ``|x|`` along the last axis and zeroes the rest.

    The k-th largest magnitude per row comes from ``topk.abs_row_threshold`` (``impl``: ``auto``, ``bisect``,
    ``blocked``, ``native`` or ``top_k``, all exact and equal; on CPU ``auto`` is wsparse's C++ kernel where it
    builds, else the cache-blocked bitwise bisection).
    Ties at the threshold are all kept, so a row keeps more than ``k`` entries only when several equal the k-th
    magnitude; a row with fewer than ``k`` nonzeros keeps all of them. The gradient flows through kept entries only.
    """
    n = x.shape[-1]
    if k >= n:
        return x
    if k <= 0:
        return jnp.zeros_like(x)
    return jnp.where(jnp.abs(x) >= topk.abs_row_threshold(x, k, impl), x, jnp.zeros_like(x))


def _sparsify(x: jax.Array, location: str, cfg: ModelConfig) -> jax.Array:
    if cfg.afrac >= 1.0 or location not in cfg.afrac_locations:
        return x
    return abs_topk(x, int(cfg.afrac * x.shape[-1]), cfg.topk_impl)


# ---------------------------------------------------------------------------------------------------------------------
# Forward


def _rms_norm(x: jax.Array, g: jax.Array, eps: float, dtype: jnp.dtype) -> jax.Array:
    """Gain-only RMSNorm computed in float32, returned in the compute dtype."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return (y * g).astype(dtype)


def _linear(p: Params, x: jax.Array) -> jax.Array:
    y = matmul.linear(x, p["w"].astype(x.dtype))
    if "b" in p:
        y = y + p["b"].astype(x.dtype)
    return y


def _softmax_parts(s_BHTS: jax.Array, sink_H: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
    """Softmax over the last axis with the optional sink as one more logit per head: (the scores' probabilities,
    the sink's probability ``[B, H, T, 1]`` or None)."""
    m_BHT1 = jnp.max(s_BHTS, axis=-1, keepdims=True)
    if sink_H is not None:
        m_BHT1 = jnp.maximum(m_BHT1, sink_H[:, None, None])
    e_BHTS = jnp.exp(s_BHTS - m_BHT1)
    denom_BHT1 = jnp.sum(e_BHTS, axis=-1, keepdims=True)
    if sink_H is None:
        return e_BHTS / denom_BHT1, None
    e_sink_BHT1 = jnp.exp(sink_H[:, None, None] - m_BHT1)
    denom_BHT1 = denom_BHT1 + e_sink_BHT1
    return e_BHTS / denom_BHT1, e_sink_BHT1 / denom_BHT1


@jax.custom_vjp
def _softmax(s_BHTS: jax.Array, sink_H: jax.Array | None) -> jax.Array:
    """The scores' probabilities of :func:`_softmax_parts`, with the softmax's own backward pass.

    Autodiff of the max-shifted form also differentiates through the max (whose contributions cancel exactly) and
    keeps the exponentials and denominators; the closed form ``ds = p * (g - sum(g * p))`` (and ``dsink = -p_sink *
    sum(g * p)`` summed over batch and query positions) reads only the probabilities. Same forward bits; gradients
    equal up to float rounding; 2-3x faster attention backward on CPU (docs/results/speed.md)."""
    return _softmax_parts(s_BHTS, sink_H)[0]


def _softmax_fwd(s_BHTS, sink_H):
    p_BHTS, p_sink_BHT1 = _softmax_parts(s_BHTS, sink_H)
    return p_BHTS, (p_BHTS, p_sink_BHT1)


def _softmax_bwd(res, g_BHTS):
    p_BHTS, p_sink_BHT1 = res
    gp_BHT1 = jnp.sum(g_BHTS * p_BHTS, axis=-1, keepdims=True)
    ds_BHTS = p_BHTS * (g_BHTS - gp_BHT1)
    dsink_H = None if p_sink_BHT1 is None else -jnp.sum(p_sink_BHT1 * gp_BHT1, axis=(0, 2, 3))
    return ds_BHTS, dsink_H


_softmax.defvjp(_softmax_fwd, _softmax_bwd)


def attention_probs(q_BTHd: jax.Array, k_BTHd: jax.Array, sink_H: jax.Array | None) -> jax.Array:
    """Causal softmax attention weights ``[B, H, T, S]`` in float32; the optional sink adds e^{sink_h} to each
    softmax denominator (a zero key/value), so a row may sum to less than 1."""
    return _probs_BH(jnp.swapaxes(q_BTHd, 1, 2), jnp.swapaxes(k_BTHd, 1, 2), sink_H)


def _probs_BH(q_BHTd: jax.Array, k_BHSd: jax.Array, sink_H: jax.Array | None) -> jax.Array:
    """:func:`attention_probs` of heads-first operands. XLA:CPU runs the batched products 10-15% faster (forward and
    backward) from operands transposed heads-first up front than from the [B, T, H, d] layout, with the same bits in
    float32 (bfloat16 differs by rounding)."""
    T, dh = q_BHTd.shape[2], q_BHTd.shape[-1]
    s_BHTS = jnp.einsum("bhtd,bhsd->bhts", q_BHTd, k_BHSd, preferred_element_type=jnp.float32) / math.sqrt(dh)
    causal_TS = jnp.tril(jnp.ones((T, T), bool))
    s_BHTS = jnp.where(causal_TS, s_BHTS, jnp.finfo(jnp.float32).min)
    if sink_H is not None:
        sink_H = sink_H.astype(jnp.float32)
    return _softmax(s_BHTS, sink_H)


def attention_impl(cfg: ModelConfig) -> str:
    """``cfg.attention_impl`` with ``auto`` resolved: the fused cuDNN kernel on a GPU for a bfloat16 model without
    the sink (the [B, H, T, T] scores of the XLA form took 43 GiB at the paper's 1x shape, batch 512, on an H100),
    wsparse's C++ kernel on CPU for a float32 model where the kernels build, else the XLA form."""
    if cfg.attention_impl != "auto":
        return cfg.attention_impl
    if jax.default_backend() == "gpu" and cfg.dtype == "bfloat16" and not cfg.attn_sink:
        return "cudnn"
    if cfg.fits_attention_kernel and native.in_use():
        return "native"
    return "xla"


def _attention(q_BTHd: jax.Array, k_BTHd: jax.Array, v_BTHd: jax.Array, sink_H: jax.Array | None,
               impl: str = "xla") -> jax.Array:
    """Causal attention ``[B, T, H, d]``: the XLA form through :func:`attention_probs`; ``cudnn``, the fused
    kernel of ``jax.nn.dot_product_attention`` (no scores in memory; bfloat16 or float16 inputs, no sink); or
    ``native``, wsparse's C++ kernel for float32 on CPU (wsparse/native/attention.py)."""
    if impl == "native":
        B, _, H, _ = q_BTHd.shape
        sink_BH = (jnp.full((B, H), -jnp.inf, jnp.float32) if sink_H is None
                   else jnp.broadcast_to(sink_H.astype(jnp.float32), (B, H)))
        return native_attention.attention(q_BTHd, k_BTHd, v_BTHd, sink_BH)
    if impl == "cudnn":
        if sink_H is not None:
            raise ValueError("cudnn attention has no sink; use model.attention_impl = xla")
        return jax.nn.dot_product_attention(q_BTHd, k_BTHd, v_BTHd, is_causal=True, implementation="cudnn")
    q_BHTd, k_BHSd, v_BHSd = (jnp.swapaxes(z, 1, 2) for z in (q_BTHd, k_BTHd, v_BTHd))
    p_BHTS = _probs_BH(q_BHTd, k_BHSd, sink_H).astype(v_BTHd.dtype)
    return jnp.swapaxes(jnp.einsum("bhts,bhsd->bhtd", p_BHTS, v_BHSd), 1, 2)


def _attn_block(p: Params, x_BTD: jax.Array, i: int, cfg: ModelConfig, node: NodeFn) -> jax.Array:
    B, T, _ = x_BTD.shape
    H, dh, A = cfg.n_head, cfg.d_head, cfg.d_attn
    h = _rms_norm(x_BTD, p["ln_1"]["g"], cfg.rms_eps, jnp.dtype(cfg.dtype))
    h = node(f"{i}.attn.act_in", _sparsify(h, "attn_in", cfg))
    qkv_BT3A = _linear(p["attn"]["c_attn"], h)
    q, k, v = (qkv_BT3A[..., j * A:(j + 1) * A] for j in range(3))
    q = node(f"{i}.attn.q", _sparsify(q, "attn_q", cfg))
    k = node(f"{i}.attn.k", _sparsify(k, "attn_k", cfg))
    v = node(f"{i}.attn.v", _sparsify(v, "attn_v", cfg))
    sink = p["attn"]["sink"] if cfg.attn_sink else None
    y_BTHd = _attention(*(z.reshape(B, T, H, dh) for z in (q, k, v)), sink, attention_impl(cfg))
    out = _linear(p["attn"]["c_proj"], y_BTHd.reshape(B, T, A))
    return node(f"{i}.attn.resid_delta", _sparsify(out, "attn_out", cfg))


def _mlp_block(p: Params, x_BTD: jax.Array, i: int, cfg: ModelConfig, node: NodeFn,
               positions_B: jax.Array | None = None) -> jax.Array:
    """The MLP's residual update ``[B, T, D]``, or ``[B, 1, D]`` at ``positions_B`` alone (the norm still runs at
    every position: XLA:CPU rounds its rsqrt differently for another number of rows)."""
    h = _rms_norm(x_BTD, p["ln_2"]["g"], cfg.rms_eps, jnp.dtype(cfg.dtype))
    if positions_B is not None:
        h = h[jnp.arange(h.shape[0]), positions_B][:, None]
    h = node(f"{i}.mlp.act_in", _sparsify(h, "mlp_in", cfg))
    a_BTM = jax.nn.gelu(_linear(p["mlp"]["c_fc"], h), approximate=False)
    a_BTM = node(f"{i}.mlp.post_act", _sparsify(a_BTM, "mlp_neuron", cfg))
    out = _linear(p["mlp"]["c_proj"], a_BTM)
    return node(f"{i}.mlp.resid_delta", _sparsify(out, "mlp_out", cfg))


def _identity(name: str, x: jax.Array) -> jax.Array:
    del name
    return x


def forward(params: Params, tokens_BT: jax.Array, cfg: ModelConfig, *, node_fn: NodeFn | None = None,
            positions_B: jax.Array | None = None) -> jax.Array:
    """Pre-norm blocks ``x += attn(norm1(x)); x += mlp(norm2(x))``, final norm, untied unembedding (+ bigram row).

    Returns logits ``[B, T, V]``, or ``[B, V]`` at one position per sequence when ``positions_B`` is given: tasks and
    pruning read only each sequence's last token. Then the last block's MLP runs at ``positions_B`` alone (its
    ``node_fn`` sees ``[B, 1, width]`` at the three MLP locations, with the same values as in the full pass), and the
    unembedding reads one row per sequence. The logits equal the full pass's at those positions up to float rounding
    (XLA:CPU fuses the final norm differently for [B, T] rows).
    """
    node = node_fn or _identity
    dtype = jnp.dtype(cfg.dtype)
    B, T = tokens_BT.shape
    x_BTD = params["wte"]["w"][tokens_BT]  # the residual stream stays float32; sublayers compute in `dtype`
    if cfg.pos_emb:
        x_BTD = x_BTD + params["wpe"]["w"][:T]
    rows = jnp.arange(B)
    for i, p in enumerate(params["blocks"]):
        x_BTD = x_BTD + _attn_block(p, x_BTD, i, cfg, node).astype(jnp.float32)
        if positions_B is not None and i == len(params["blocks"]) - 1:
            mlp = _mlp_block(p, x_BTD, i, cfg, node, positions_B)
            x_BTD = x_BTD[rows, positions_B][:, None] + mlp.astype(jnp.float32)  # [B, 1, D] from here on
        else:
            x_BTD = x_BTD + _mlp_block(p, x_BTD, i, cfg, node).astype(jnp.float32)
    last_tokens = tokens_BT
    if positions_B is not None:
        last_tokens = tokens_BT[rows, positions_B]
        x_BTD = x_BTD[:, 0] if params["blocks"] else x_BTD[rows, positions_B]
    x_BTD = _rms_norm(x_BTD, params["ln_f"]["g"], cfg.rms_eps, dtype)
    logits_BTV = matmul.unembed(x_BTD, params["lm_head"]["w"].astype(dtype))
    if cfg.bigram_table:
        logits_BTV = logits_BTV + params["bigram"]["table"][last_tokens]
    return logits_BTV
