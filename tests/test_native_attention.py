"""wsparse's C++ attention (wsparse/native/attention.py): values and gradients against the XLA form with and without
the sink, under vmap and a 4-device sharded jit, and the whole model through it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsparse import config as C
from wsparse import model as M
from wsparse import native
from wsparse.native import attention as native_attention
from tests.test_model import init, tiny_model, tokens

pytestmark = pytest.mark.usefixtures("on_cpu_device")


def operands(B, T, H, d, seed=0, scale=2.0):
    keys = jax.random.split(jax.random.key(seed), 5)
    q, k, v, g = (scale * jax.random.normal(key, (B, T, H, d)) for key in keys[:4])
    return q, k, v, g, jax.random.normal(keys[4], (H,))


def xla_form(q, k, v, sink_H):
    return M._attention(q, k, v, sink_H, "xla")


def native_form(q, k, v, sink_H):
    return M._attention(q, k, v, sink_H, "native")


def assert_close(a, b, scale, rel=2e-6):
    """Equal up to float rounding: within ``rel`` of the largest entry of the reference."""
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * max(1.0, float(jnp.abs(scale).max())))


@pytest.mark.parametrize("B,T,H,d", [(3, 13, 2, 16), (2, 64, 3, 8), (1, 40, 1, 24), (2, 1, 2, 16)])
@pytest.mark.parametrize("with_sink", [False, True])
def test_values_and_gradients_match_the_xla_form(B, T, H, d, with_sink):
    """Output and the gradients of q, k, v and the sink agree with the XLA form's autodiff to float rounding, for
    lengths that are and are not whole vectors, head widths of 1 to 3 vectors and a single position."""
    assert native.available()
    q, k, v, g, sink = operands(B, T, H, d)
    sink = sink if with_sink else None

    def loss(f):
        return lambda q, k, v, s: jnp.sum(f(q, k, v, s) * g)

    out_native, out_xla = native_form(q, k, v, sink), xla_form(q, k, v, sink)
    assert_close(out_native, out_xla, out_xla)
    argnums = (0, 1, 2, 3) if with_sink else (0, 1, 2)
    ours = jax.grad(loss(native_form), argnums)(q, k, v, sink)
    theirs = jax.grad(loss(xla_form), argnums)(q, k, v, sink)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if i == 2 or T > 1 or with_sink:  # one key and no sink: every probability is 1, q and k get no gradient
            assert float(jnp.abs(b).max()) > 1e-3
        assert_close(a, b, b)


def test_large_scores_and_a_dominant_sink():
    """Scores far apart (standard deviation about 36: probabilities that underflow to 0) and a sink that takes nearly
    all the weight stay finite and match the XLA form. A score of magnitude 50 carries a rounding error of about 1e-5
    in either form, which e^s turns into the same relative error: hence 2e-5 here."""
    q, k, v, g, _ = operands(2, 24, 2, 16, seed=1, scale=6.0)
    sink = jnp.array([40.0, -3.0])
    out_native, out_xla = native_form(q, k, v, sink), xla_form(q, k, v, sink)
    assert np.isfinite(np.asarray(out_native)).all()
    assert_close(out_native, out_xla, out_xla, rel=2e-5)
    grads = [jax.grad(lambda s, f=f: jnp.sum(f(q, k, v, s) * g))(sink) for f in (native_form, xla_form)]
    assert_close(grads[0], grads[1], grads[1], rel=2e-5)


def test_vmap_folds_the_batch_axis():
    """Under vmap (pruning's settings) the results are the per-slice results, with the sink shared or batched, and
    through the gradient."""
    q, k, v, g, sink = operands(2, 16, 2, 16, seed=2)
    qs, ks, vs = (jnp.stack([x, 0.5 * x, -x]) for x in (q, k, v))
    sinks = jnp.stack([sink, sink + 1.0, sink - 2.0])
    shared = jax.vmap(native_form, in_axes=(0, 0, 0, None))(qs, ks, vs, sink)
    batched = jax.vmap(native_form)(qs, ks, vs, sinks)
    for i in range(3):
        np.testing.assert_array_equal(shared[i], native_form(qs[i], ks[i], vs[i], sink))
        np.testing.assert_array_equal(batched[i], native_form(qs[i], ks[i], vs[i], sinks[i]))
    loss = lambda q, s: jnp.sum(native_form(q, k, v, s) * g)
    dq, ds = jax.vmap(jax.grad(loss, (0, 1)))(qs, sinks)
    for i in range(3):
        want_q, want_s = jax.grad(loss, (0, 1))(qs[i], sinks[i])
        np.testing.assert_array_equal(dq[i], want_q)
        np.testing.assert_array_equal(ds[i], want_s)


def test_the_model_uses_it_on_cpu_and_matches_the_xla_form():
    """``auto`` resolves to the kernel for a float32 model on CPU (not for bfloat16, nor a head width it does not
    take), and the whole model's logits and gradients equal the XLA form's to rounding, with the sink."""
    cfg = tiny_model(attn_sink=True, afrac=1.0)
    assert M.attention_impl(cfg) == ("native" if native.in_use() else "xla")  # a GPU host's auto is not the kernel
    assert M.attention_impl(dataclasses.replace(cfg, dtype="bfloat16")) == "xla"
    assert M.attention_impl(dataclasses.replace(cfg, d_head=12)) == "xla"
    for bad in (dict(dtype="bfloat16"), dict(d_head=12), dict(d_head=72)):
        with pytest.raises(C.ConfigError, match="model.attention_impl"):
            dataclasses.replace(cfg, attention_impl="native", **bad).validate()
    params, toks = init(cfg, jax.random.key(0)), tokens(cfg)
    params["blocks"][0]["attn"]["sink"] = jnp.array([0.5, -1.0])  # init gives zeros
    loss = lambda p, c: jnp.mean(jax.nn.log_softmax(M.forward(p, toks, c))[..., 0])
    (l_nat, g_nat), (l_xla, g_xla) = (jax.value_and_grad(loss)(params, dataclasses.replace(cfg, attention_impl=i))
                                      for i in ("native", "xla"))
    np.testing.assert_allclose(l_nat, l_xla, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(g_nat), jax.tree_util.tree_leaves(g_xla)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    hlo = jax.jit(lambda p: M.forward(p, toks, dataclasses.replace(cfg, attention_impl="native"))).lower(
        params).as_text()
    assert "wsparse_attention_forward" in hlo


def test_sharded_batch_stays_on_its_devices(run_python):
    """Under a jit sharded over 4 devices along the batch, forward and backward run on each device's own rows: no
    all-gather, the output sharded as the input, and the same output and q, k, v gradients as on one device, bit for
    bit (every head is computed alone); the sink's gradient, summed over the batch across devices, to rounding."""
    code = (
        "from wsparse import model as M, parallel\n"
        "mesh = parallel.make_mesh(4)\n"
        "ks = jax.random.split(jax.random.key(0), 4)\n"
        "q, k, v, g = (jax.random.normal(key, (8, 16, 2, 16)) for key in ks)\n"
        "sink = jnp.array([0.3, -0.7])\n"
        "def f(q, k, v, sink):\n"
        "    out, vjp = jax.vjp(lambda *a: M._attention(*a, 'native'), q, k, v, sink)\n"
        "    return out, vjp(g)\n"
        "f = jax.jit(f)\n"
        "spread = [jax.device_put(x, NamedSharding(mesh, P('data'))) for x in (q, k, v)]\n"
        "hlo = f.lower(*spread, sink).compile().as_text()\n"
        "assert 'wsparse_attention_forward' in hlo and 'wsparse_attention_backward' in hlo, hlo\n"
        "assert 'all-gather' not in hlo, hlo\n"
        "(out, grads), (out1, grads1) = f(*spread, sink), f(q, k, v, sink)\n"
        "for x in (out, *grads[:3]):\n"
        "    assert x.sharding.is_equivalent_to(NamedSharding(mesh, P('data')), 4), x.sharding\n"
        "for a, b in zip((out, *grads[:3]), (out1, *grads1[:3])):\n"
        "    np.testing.assert_array_equal(a, b)\n"
        "np.testing.assert_allclose(grads[3], grads1[3], rtol=1e-5)\n"
        "print('ok')\n")
    run_python(code, devices=4)
