import dataclasses
import math
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from wsparse import config as C
from wsparse import model as M


def tiny_model(**kw) -> C.ModelConfig:
    cfg = C.from_configdict(tiny.get_config()).model
    return dataclasses.replace(cfg, **{"vocab_size": 64, "n_ctx": 16, **kw})


FULL = dict(attn_sink=True, bigram_table=True, pos_emb=True)  # one config shared by most tests: one compile
_init = jax.jit(M.init_params, static_argnums=0)


def init(cfg: C.ModelConfig, key: jax.Array):
    """afrac and dtype do not change the parameters: share one compiled init across them."""
    return _init(dataclasses.replace(cfg, afrac=0.25, dtype="float32"), key)
fwd = jax.jit(M.forward, static_argnums=2, static_argnames="node_fn")


def tokens(cfg: C.ModelConfig, B: int = 2, T: int | None = None, seed: int = 0) -> jax.Array:
    T = T or cfg.n_ctx
    return jax.random.randint(jax.random.key(seed), (B, T), 0, cfg.vocab_size, jnp.int32)


def test_param_tree_layout_and_init():
    cfg = tiny_model(**FULL)
    p = init(cfg, jax.random.key(0))
    D, V, A, Mm = cfg.d_model, cfg.vocab_size, cfg.d_attn, cfg.d_mlp
    chex.assert_shape(p["wte"]["w"], (V, D))
    chex.assert_shape(p["wpe"]["w"], (cfg.n_ctx, D))
    chex.assert_shape(p["lm_head"]["w"], (V, D))
    chex.assert_shape(p["bigram"]["table"], (V, V))
    assert len(p["blocks"]) == 2
    b = p["blocks"][1]
    chex.assert_shape([b["attn"]["c_attn"]["w"], b["attn"]["c_attn"]["b"]], [(D, 3 * A), (3 * A,)])
    chex.assert_shape([b["attn"]["c_proj"]["w"], b["attn"]["c_proj"]["b"]], [(A, D), (D,)])
    chex.assert_shape([b["mlp"]["c_fc"]["w"], b["mlp"]["c_proj"]["w"]], [(D, Mm), (Mm, D)])
    chex.assert_shape([b["ln_1"]["g"], b["ln_2"]["g"], p["ln_f"]["g"], b["attn"]["sink"]], [(D,), (D,), (D,), (2,)])
    chex.assert_trees_all_equal_dtypes(p, jax.tree.map(lambda x: x.astype(jnp.float32), p))
    for blk in p["blocks"]:
        for lin in (blk["attn"]["c_attn"], blk["attn"]["c_proj"], blk["mlp"]["c_fc"], blk["mlp"]["c_proj"]):
            assert not np.any(lin["b"])
        assert not np.any(blk["attn"]["sink"])
    proj = np.concatenate([np.ravel(blk["mlp"]["c_proj"]["w"]) for blk in p["blocks"]])
    np.testing.assert_allclose(proj.std(), 0.02 / math.sqrt(4), rtol=0.05)
    np.testing.assert_allclose(np.std(p["blocks"][0]["mlp"]["c_fc"]["w"]), 0.02, rtol=0.05)
    table = np.asarray(p["bigram"]["table"])
    assert table.min() >= 0 and table.max() < 0.02 and table.mean() == pytest.approx(0.01, rel=0.05)
    expected = 2 * V * D + cfg.n_ctx * D + V * V + D + 2 * (
        2 * D + D * 3 * A + 3 * A + A * D + D + 2 + D * Mm + Mm + Mm * D + D)
    assert sum(int(x.size) for x in jax.tree.leaves(p)) == expected


def test_no_bias_no_sink_no_bigram_keys():
    p = init(tiny_model(bias=False), jax.random.key(0))
    assert set(p) == {"wte", "blocks", "ln_f", "lm_head"}
    assert set(p["blocks"][0]["attn"]) == {"c_attn", "c_proj"}
    assert set(p["blocks"][0]["mlp"]["c_fc"]) == {"w"}


@pytest.mark.parametrize("kw", [FULL, {"bias": False}])
def test_forward_shapes_finite(kw):
    cfg = tiny_model(**kw)
    p = init(cfg, jax.random.key(1))
    logits = fwd(p, tokens(cfg), cfg)
    chex.assert_shape(logits, (2, cfg.n_ctx, cfg.vocab_size))
    chex.assert_type(logits, jnp.float32)
    chex.assert_tree_all_finite(logits)


def test_causal():
    """Each position gets its own token id, so d logits[t] / d wte[s] is the dependence on position s."""
    cfg = tiny_model(**FULL)
    p = init(cfg, jax.random.key(2))
    toks = jnp.arange(cfg.n_ctx, dtype=jnp.int32)[None]
    t = 7

    def logit_t(wte):
        return jnp.sum(M.forward({**p, "wte": {"w": wte}}, toks, cfg)[0, t] * jnp.arange(cfg.vocab_size))

    g = np.asarray(jax.jit(jax.grad(logit_t))(p["wte"]["w"]))
    per_pos = np.abs(g[: cfg.n_ctx]).sum(-1)
    assert np.all(per_pos[t + 1:] == 0)
    assert np.all(per_pos[: t + 1] > 0)


def test_node_fn_identity_order_and_widths():
    cfg = tiny_model(**FULL)
    p = init(cfg, jax.random.key(3))
    toks = tokens(cfg)
    seen = []

    def capture(name, x):
        seen.append((name, x.shape))
        return x

    out = fwd(p, toks, cfg, node_fn=capture)  # names and shapes are recorded while tracing
    np.testing.assert_array_equal(out, fwd(p, toks, cfg))
    shapes = M.node_shapes(cfg)
    assert [n for n, _ in seen] == list(shapes)
    assert all(s == (2, cfg.n_ctx, shapes[n]) for n, s in seen)
    assert list(shapes)[:8] == ["0.attn.act_in", "0.attn.q", "0.attn.k", "0.attn.v", "0.attn.resid_delta",
                                "0.mlp.act_in", "0.mlp.post_act", "0.mlp.resid_delta"]
    assert shapes["1.mlp.post_act"] == cfg.d_mlp and shapes["1.attn.q"] == cfg.d_attn


def test_node_fn_sees_sparse_activations_and_can_ablate():
    cfg = tiny_model(**FULL)
    p = init(cfg, jax.random.key(4))
    toks = tokens(cfg)

    @jax.jit
    def capture_and_ablate(p, toks):
        got = {}
        M.forward(p, toks, cfg, node_fn=lambda n, x: got.setdefault(n, x))
        zeroed = M.forward(p, toks, cfg, node_fn=lambda n, x: jnp.zeros_like(x) if n == "1.mlp.post_act" else x)
        return got, zeroed

    got, zeroed = capture_and_ablate(p, toks)
    for name, width in M.node_shapes(cfg).items():
        nnz = np.sum(np.asarray(got[name]) != 0, -1)
        assert nnz.max() == int(cfg.afrac * width), name  # every location is on by default
    assert not np.allclose(zeroed, fwd(p, toks, cfg))


def test_afrac_locations_select_where_abs_topk_applies():
    cfg = tiny_model(afrac=0.25, afrac_locations=("attn_q", "mlp_neuron"))
    x = jax.random.normal(jax.random.key(0), (2, 3, 64))
    assert int(jnp.max(jnp.sum(M._sparsify(x, "attn_q", cfg) != 0, -1))) == 16
    np.testing.assert_array_equal(M._sparsify(x, "attn_k", cfg), x)
    np.testing.assert_array_equal(M._sparsify(x, "attn_q", dataclasses.replace(cfg, afrac=1.0)), x)


def slow_abs_topk(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        keep = np.argsort(-np.abs(x[idx]), kind="stable")[:k]
        out[idx][keep] = x[idx][keep]
    return out


@pytest.mark.parametrize("width,k", [(37, 9), (128, 32), (8, 1), (8, 7)])
def test_abs_topk_matches_reference(width, k):
    x = np.asarray(jax.random.normal(jax.random.key(width + k), (3, 5, width)) * 3)
    y = np.asarray(jax.jit(M.abs_topk, static_argnums=1)(x, k))
    np.testing.assert_array_equal(y, slow_abs_topk(x, k))
    assert np.all(np.sum(y != 0, -1) == k)


@pytest.mark.parametrize("impl", ["bisect", "blocked", "top_k", "native", "pallas"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_abs_topk_implementations_agree(impl, dtype, monkeypatch):
    """Every implementation gives the same output and gradient, ties and zero rows included; a tiny block size makes
    ``blocked`` run several blocks and pad the last one (7 * 5 = 35 rows in blocks of 4)."""
    from wsparse import topk
    monkeypatch.setattr(topk, "BLOCK_ELEMS", 4 * 24)
    x = jnp.round(jax.random.normal(jax.random.key(9), (7, 5, 24)) * 4) / 4  # coarse values: many ties
    x = x.at[2, 3].set(0.0).at[4, 1, :20].set(0.0).astype(dtype)
    xf = np.asarray(x, np.float32)
    for k in (1, 6, 23):
        y = jax.jit(M.abs_topk, static_argnums=(1, 2))(x, k, impl)
        assert y.dtype == dtype
        keep = np.abs(xf) >= -np.sort(-np.abs(xf), -1)[..., k - 1:k]  # ties at the k-th all kept
        ref = np.where(keep, xf, 0)
        np.testing.assert_array_equal(np.asarray(y, np.float32), ref)
        g = jax.grad(lambda x: jnp.sum(M.abs_topk(x, k, impl).astype(jnp.float32) * 2.0))(x)
        np.testing.assert_array_equal(np.asarray(g, np.float32), 2.0 * keep)


@pytest.mark.parametrize("impl", ["blocked", "native", "pallas"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_row_threshold_is_the_kth_largest(impl, dtype, monkeypatch):
    """``blocked`` stops bisecting once every row of a block counts exactly k entries and then reads the k-th largest
    off the kept ones, ``native`` bisects each row on its own, and ``pallas`` a block of rows in registers (here in
    Pallas' interpreter; on a GPU through Triton): each returns the k-th largest entry itself, ties, zero rows, a row
    with fewer than k nonzeros and a NaN entry included, and keeps what ``bisect`` keeps."""
    from wsparse import topk
    monkeypatch.setattr(topk, "BLOCK_ELEMS", 4 * 24)
    a = jnp.abs(jax.random.normal(jax.random.key(4), (9, 4, 24)))
    a = a.at[0].set(jnp.round(a[0] * 4) / 4).at[1, 2].set(0.0).at[2, 1, :20].set(0.0).at[3, 3, 5].set(jnp.nan)
    a = a.astype(dtype)
    af = np.asarray(a, np.float32)
    for k in (1, 6, 23):
        ref = np.maximum(-np.sort(-np.where(np.isnan(af), -np.inf, af), -1)[..., k - 1:k], 0.0)  # NaN never counts
        t = jax.jit(topk.row_threshold, static_argnums=(1, 2))(a, k, impl)
        assert t.dtype == dtype and t.shape == a.shape[:-1] + (1,)
        np.testing.assert_array_equal(np.asarray(t, np.float32), ref, err_msg=f"k={k}")
        t_bisect = jax.jit(topk.row_threshold, static_argnums=(1, 2))(a, k, "bisect")
        np.testing.assert_array_equal(a >= t, a >= t_bisect)


def test_topk_impl_auto_resolves_per_backend():
    from wsparse import native, topk
    a = jnp.ones((4, 8))
    jaxpr = str(jax.make_jaxpr(lambda a: topk.row_threshold(a, 2))(a))
    assert ("ffi_call" in jaxpr) == native.in_use()
    defaults = {"cpu": "blocked", "gpu": "pallas", "other": "top_k"}
    assert topk.resolve("auto", topk.ROW_IMPLS, defaults) == defaults.get(jax.default_backend(), "top_k")
    for backend, want in (("cpu", "blocked"), ("gpu", "pallas"), ("tpu", "top_k")):
        with mock.patch.object(jax, "default_backend", lambda b=backend: b):
            assert topk.resolve("auto", topk.ROW_IMPLS, defaults) == want
            assert topk.resolve("bisect", topk.ROW_IMPLS, defaults) == "bisect"
    with pytest.raises(ValueError):
        topk.resolve("radix", topk.ROW_IMPLS, defaults)
    with pytest.raises(C.ConfigError):
        C.from_configdict({"model": {"topk_impl": "radix"}})


def test_abs_topk_bfloat16_exact():
    x = jax.random.normal(jax.random.key(0), (4, 64)).astype(jnp.bfloat16)
    y = jax.jit(M.abs_topk, static_argnums=1)(x, 16)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y, np.float32), slow_abs_topk(np.asarray(x, np.float32), 16))


def test_abs_topk_ties_and_zeros():
    x = jnp.array([[3.0, -2.0, 2.0, 1.0, 0.5], [0.0, 0.0, 1.0, 0.0, 0.0], [-1.0, 1.0, 1.0, -1.0, 1.0]])
    y = np.asarray(M.abs_topk(x, 2))
    np.testing.assert_array_equal(y[0], [3.0, -2.0, 2.0, 0, 0])  # tie at the threshold: both kept
    np.testing.assert_array_equal(y[1], [0, 0, 1.0, 0, 0])  # fewer nonzeros than k: all kept
    np.testing.assert_array_equal(y[2], x[2])
    np.testing.assert_array_equal(M.abs_topk(x, 5), x)


def test_abs_topk_gradient_is_mask():
    x = jax.random.normal(jax.random.key(5), (6, 32))
    g = jax.jit(jax.grad(lambda x: jnp.sum(M.abs_topk(x, 8) * 2.0)))(x)
    np.testing.assert_array_equal(g, 2.0 * (M.abs_topk(x, 8) != 0))


def test_attention_sink_hand_check():
    q = jnp.array([[[[1.0, 0.0]], [[0.5, 2.0]]]])  # [B=1, T=2, H=1, dh=2]
    k = jnp.array([[[[2.0, 1.0]], [[1.0, -1.0]]]])
    v = jnp.array([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    b = jnp.array([0.7])
    y = np.asarray(M._attention(q, k, v, b))[0, :, 0]
    s = np.array([[2.0, 0.0], [1.0 + 2.0, 0.5 - 2.0]]) / math.sqrt(2)
    e0 = np.exp(s[0, 0])
    np.testing.assert_allclose(y[0], e0 / (e0 + np.exp(0.7)) * np.array([1.0, 2.0]), rtol=1e-6)
    e1 = np.exp(s[1])
    w1 = e1 / (e1.sum() + np.exp(0.7))
    np.testing.assert_allclose(y[1], w1[0] * np.array([1.0, 2.0]) + w1[1] * np.array([3.0, 4.0]), rtol=1e-6)
    no_sink = np.asarray(M._attention(q, k, v, None))[0, :, 0]
    np.testing.assert_allclose(no_sink[0], [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(M._attention(q, k, v, jnp.array([-80.0])))[0, :, 0], no_sink, rtol=1e-6)


@pytest.mark.parametrize("with_sink", [False, True])
def test_attention_probs_backward_matches_autodiff_of_the_plain_softmax(with_sink):
    """attention_probs' hand-written backward (model._softmax) against autodiff of an independent formulation: the
    sink as one more column of jax.nn.softmax, dropped afterwards. The forward is the same function."""
    kq, kk, kw, ks = jax.random.split(jax.random.key(3), 4)
    q, k = (2 * jax.random.normal(key, (3, 7, 2, 4)) for key in (kq, kk))
    w = jax.random.normal(kw, (3, 2, 7, 7))
    sink = jax.random.normal(ks, (2,)) if with_sink else None

    def plain(q, k, sink):
        s = jnp.einsum("bthd,bshd->bhts", q, k) / 2.0
        s = jnp.where(jnp.tril(jnp.ones((7, 7), bool)), s, -jnp.inf)
        if sink is None:
            return jax.nn.softmax(s, axis=-1)
        col = jnp.broadcast_to(sink[:, None, None], s.shape[:-1] + (1,))
        return jax.nn.softmax(jnp.concatenate([s, col], axis=-1), axis=-1)[..., :-1]

    np.testing.assert_allclose(M.attention_probs(q, k, sink), plain(q, k, sink), rtol=1e-6, atol=1e-7)
    argnums = (0, 1, 2) if with_sink else (0, 1)
    ours, theirs = (jax.jit(jax.grad(lambda *a, f=f: jnp.sum(f(*a) * w), argnums=argnums))(q, k, sink)
                    for f in (M.attention_probs, plain))
    for a, b in zip(ours, theirs):
        assert float(jnp.abs(b).max()) > 1e-3  # a gradient that is there
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_attention_impl_auto_and_the_fused_path(monkeypatch):
    """``auto`` picks cuDNN's kernel only on a GPU for a bfloat16 model without the sink, and config validation
    refuses ``cudnn`` elsewhere. The fused path's call (layout [B, T, H, d], causal mask, 1/sqrt(d) scale) is checked
    here on CPU by running jax.nn.dot_product_attention's own XLA implementation in cuDNN's place: the whole model's
    logits and gradients match the XLA form's. (benchmarks/attention.py compares the real kernel on a GPU.)"""
    bf16 = tiny_model(dtype="bfloat16")
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert M.attention_impl(bf16) == "xla"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert M.attention_impl(bf16) == "cudnn"
    assert M.attention_impl(tiny_model()) == "xla"  # float32
    assert M.attention_impl(tiny_model(dtype="bfloat16", attn_sink=True)) == "xla"
    assert M.attention_impl(dataclasses.replace(bf16, attention_impl="xla")) == "xla"
    monkeypatch.undo()
    for bad in (dict(), dict(dtype="bfloat16", attn_sink=True)):
        with pytest.raises(C.ConfigError, match="model.attention_impl"):
            tiny_model(attention_impl="cudnn", **bad).validate()

    real = jax.nn.dot_product_attention
    calls = []

    def stand_in(q, k, v, **kw):
        assert kw.pop("implementation") == "cudnn"
        calls.append(q.shape)
        return real(q, k, v, implementation="xla", **kw)

    monkeypatch.setattr(jax.nn, "dot_product_attention", stand_in)
    cfg = tiny_model(afrac=1.0)
    params, toks = init(cfg, jax.random.key(0)), tokens(cfg)
    loss = lambda p, c: jnp.mean(jax.nn.log_softmax(M.forward(p, toks, c))[..., 0])
    (l_xla, g_xla), (l_fused, g_fused) = (jax.value_and_grad(loss)(params, dataclasses.replace(cfg, attention_impl=i))
                                          for i in ("xla", "cudnn"))
    assert calls == [(2, cfg.n_ctx, cfg.n_head, cfg.d_head)] * cfg.n_layer
    np.testing.assert_allclose(l_fused, l_xla, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g_fused), jax.tree_util.tree_leaves(g_xla)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bigram_adds_the_token_row():
    cfg = tiny_model(**FULL)
    p = init(cfg, jax.random.key(6))
    toks = tokens(cfg)
    with_table = fwd(p, toks, cfg)
    without = fwd({**p, "bigram": {"table": jnp.zeros_like(p["bigram"]["table"])}}, toks, cfg)
    np.testing.assert_allclose(with_table - without, p["bigram"]["table"][toks], atol=1e-6)


def test_bfloat16_compute_close_to_float32():
    cfg = tiny_model(**FULL, afrac=1.0)
    p = init(cfg, jax.random.key(7))
    toks = tokens(cfg)
    ref = np.asarray(fwd(p, toks, cfg))
    out = fwd(p, toks, dataclasses.replace(cfg, dtype="bfloat16"))
    chex.assert_type(out, jnp.float32)
    err = np.abs(np.asarray(out) - ref)
    scale = np.abs(ref).max()
    # bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); a few roundings per layer stay within 2% of the
    # logit scale, and a nonzero error shows the matmuls really ran in bf16.
    assert 0 < err.max() <= 0.02 * scale, (err.max(), scale)


def test_logits_at_positions_equal_full_logits_there():
    cfg = C.ModelConfig(vocab_size=64, n_ctx=12, n_layer=2, d_model=32, n_head=2, d_head=16, d_mlp=64,
                      bigram_table=True, attn_sink=True)
    params = M.init_params(cfg, jax.random.key(3))
    tokens = jax.random.randint(jax.random.key(4), (3, 12), 0, 64)
    positions = jnp.array([11, 0, 5])
    full = M.forward(params, tokens, cfg)
    at = M.forward(params, tokens, cfg, positions_B=positions)
    chex.assert_shape(at, (3, 64))
    np.testing.assert_allclose(at, full[jnp.arange(3), positions], rtol=1e-5, atol=1e-6)
    # the last block's MLP ran at the positions alone; everything before it at every position
    seen = {}
    M.forward(params, tokens, cfg, positions_B=positions, node_fn=lambda n, x: seen.setdefault(n, x.shape) and x)
    assert {n for n, s in seen.items() if s[1] == 1} == {"1.mlp.act_in", "1.mlp.post_act", "1.mlp.resid_delta"}
    assert all(s[:2] == (3, 12) for n, s in seen.items() if not n.startswith("1.mlp"))
