"""wsparse.matmul: the forward pass's weight products keep autodiff's values and input gradients bit for bit, and their
weight gradients, read through wsparse's C++ transpose on CPU, equal autodiff's up to float rounding (also batched,
in bfloat16 and sharded); without the kernels they are autodiff's."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsparse import matmul, model, native


pytestmark = pytest.mark.usefixtures("on_cpu_device")


def autodiff(x, w, w_out_in):
    return jax.vjp(lambda x, w: matmul._product(x, w, w_out_in), x, w)


def kernel(x, w, w_out_in):
    return jax.vjp(lambda x, w: matmul._product_native_grad(x, w, w_out_in), x, w)


def test_transpose_kernel_is_exact():
    """Every element width, leading axes, sizes that are not multiples of the 16 x 16 tile or of the 8 x 8 vector
    tile (4-byte elements), empty arrays, and vmap over any axis."""
    assert native.available()
    rng = np.random.default_rng(0)
    for shape in ((4096, 512), (17, 33), (1, 7), (7, 1), (3, 2, 40, 19), (0, 5), (24, 40), (9, 16), (16, 9)):
        for dtype in (jnp.float32, jnp.bfloat16, jnp.int8, jnp.uint16):
            a = jnp.asarray((rng.standard_normal(shape) * 100).astype(np.float32)).astype(dtype)
            np.testing.assert_array_equal(jax.jit(native.transpose)(a), np.swapaxes(np.asarray(a), -1, -2))
    a = jnp.asarray(rng.standard_normal((5, 8, 6)), jnp.float32)
    np.testing.assert_array_equal(jax.vmap(native.transpose)(a), np.swapaxes(np.asarray(a), 1, 2))
    by_axis_2 = jax.vmap(native.transpose, in_axes=2, out_axes=2)(a)
    np.testing.assert_array_equal(by_axis_2, np.swapaxes(np.asarray(a), 0, 1))
    a64 = np.arange(12, dtype=np.uint32).reshape(3, 4)
    np.testing.assert_array_equal(native.transpose(jnp.asarray(a64)), a64.T)


@pytest.mark.parametrize("w_out_in", [False, True], ids=["linear", "unembed"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_weight_grads_equal_autodiff_up_to_rounding(w_out_in, dtype):
    """Value and input gradient: autodiff's bits. Weight gradient: within float rounding of autodiff's (the sums
    over 1024 tokens run in another order), in the weight's dtype."""
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (8, 128, 96)).astype(dtype)
    w = (jax.random.normal(kw, (200, 96) if w_out_in else (96, 200)) * 0.1).astype(dtype)
    (y, vjp), (y_ref, vjp_ref) = (jax.jit(f, static_argnums=2)(x, w, w_out_in) for f in (kernel, autodiff))
    np.testing.assert_array_equal(y, y_ref)
    g = jax.random.normal(kg, y.shape, y.dtype)
    (dx, dw), (dx_ref, dw_ref) = jax.jit(vjp)(g), jax.jit(vjp_ref)(g)
    np.testing.assert_array_equal(dx, dx_ref)
    assert dw.dtype == w.dtype and dw.shape == w.shape
    tol = 2e-6 if dtype == jnp.float32 else 1e-2
    scale = float(jnp.abs(dw_ref.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(dw, np.float32), np.asarray(dw_ref, np.float32), atol=tol * scale, rtol=0)
    assert not np.array_equal(np.asarray(dw, np.float32), np.zeros(dw.shape))


def test_weight_grads_under_vmap():
    """Pruning vmaps the model over mask settings with the weights shared; a sweep of training runs would batch the
    weights too. Both give autodiff's gradients up to rounding."""
    kx, kw = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (3, 4, 16, 32))
    w = jax.random.normal(kw, (32, 24))
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    for in_axes, ws in (((0, None), w), ((0, 0), jnp.stack([w, 2 * w, -w]))):
        got, ref = (jax.jit(jax.vmap(jax.grad(loss(f), (0, 1)), in_axes))(x, ws)
                    for f in (lambda x, w: matmul._product_native_grad(x, w, False), lambda x, w: x @ w))
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * float(jnp.abs(b).max()))


def test_model_uses_the_kernel_on_cpu_and_autodiff_without_it(fresh_native, monkeypatch):
    """On CPU the train loss's gradient reads the kernel's transposes (one or two per weight product) and the forward
    pass is unchanged; with the kernels disabled the gradient is plain autodiff, within rounding of the kernel's."""
    from configs.tiny import get_config
    from wsparse import config as C

    # Attention in its XLA form both times: WSPARSE_NATIVE=0 also takes attention off its C++ kernel (tested in
    # test_native_attention.py), and this test isolates the weight gradients.
    cfg = dataclasses.replace(C.from_configdict(get_config()).model, attention_impl="xla")
    params = model.init_params(cfg, jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (4, cfg.n_ctx), 0, cfg.vocab_size)
    loss = lambda p: jnp.mean(model.forward(p, tokens, cfg) ** 2)

    def grads():
        jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params))
        return jaxpr, jax.jit(lambda p: (model.forward(p, tokens, cfg), jax.grad(loss)(p)))(params)

    assert matmul.native_weight_grads()
    jaxpr, (logits, got) = grads()
    # One transpose per weight product, of the narrower of its input and output; a second for the small product where
    # that was the output (or for the unembedding, stored [out, in], where it was the input).
    widths = [w.shape for path, w in jax.tree_util.tree_leaves_with_path(params["blocks"]) if path[-1].key == "w"]
    expected = sum(1 if n_in <= n_out else 2 for n_in, n_out in widths) + (2 if cfg.d_model <= cfg.vocab_size else 1)
    assert jaxpr.count("wsparse_transpose") == expected
    monkeypatch.setenv("WSPARSE_NATIVE", "0")
    native.available.cache_clear()
    assert not matmul.native_weight_grads()
    jaxpr, (logits_ref, ref) = grads()
    assert "wsparse_transpose" not in jaxpr
    np.testing.assert_array_equal(logits, logits_ref)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.abs(b).max()) + 1e-12)


def test_sharded_weight_grads_keep_rows_on_their_devices(run_python):
    """Data-parallel over 4 devices: each device transposes its own rows (no all-gather of activations) and the
    weight gradient is summed across devices, equal to the unsharded autodiff gradient up to rounding."""
    code = (
        "from wsparse import matmul\n"
        "mesh = jax.make_mesh((4,), ('data',))\n"
        "x = jax.device_put(jax.random.normal(jax.random.key(0), (8, 16, 64)), NamedSharding(mesh, P('data')))\n"
        "w = jax.device_put(jax.random.normal(jax.random.key(1), (64, 48)), NamedSharding(mesh, P()))\n"
        "loss = lambda w, x: jnp.sum(jnp.tanh(matmul.linear(x, w)))\n"
        "f = jax.jit(jax.grad(loss))\n"
        "hlo = f.lower(w, x).compile().as_text()\n"
        "assert 'wsparse_transpose' in hlo and 'all-gather' not in hlo, hlo\n"
        "ref = jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w)))(np.asarray(w), np.asarray(x))\n"
        "np.testing.assert_allclose(f(w, x), ref, rtol=0, atol=2e-6 * float(np.abs(ref).max()))\n"
        "print('ok')\n")
    run_python(code, devices=4)
