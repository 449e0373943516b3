"""wsparse's C++ kernels (wsparse/native): AbsTopK's threshold exact against a sort and equal to the XLA bisection,
the projection's cut equal to its bisection, and a clean fallback where they cannot be built. The transpose kernel
is tested with its user, in test_matmul.py."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsparse import model as M
from wsparse import native, sparsity, topk

pytestmark = pytest.mark.usefixtures("on_cpu_device")


def kth_largest_reference(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th largest entry per row, NaN never counted; 0 where fewer than k entries are at or above 0."""
    return np.maximum(-np.sort(-np.where(np.isnan(a), -np.inf, a), -1)[..., k - 1:k], 0.0).astype(a.dtype)


def test_kernel_is_the_exact_kth_largest_on_edge_cases():
    """120 random row sets of widths 1..70 and random k, with coarse values (ties), zeros, NaN (rows with fewer
    than k other entries too) and inf: the exact k-th largest, and the same kept set as the XLA bisection."""
    assert native.available()
    rng = np.random.default_rng(0)
    f = jax.jit(topk.row_threshold, static_argnums=(1, 2))
    for trial in range(120):
        width = int(rng.integers(1, 71))
        k = int(rng.integers(1, width + 1))
        a = np.abs(rng.standard_normal((int(rng.integers(1, 6)), width))).astype(np.float32)
        if trial % 3 == 0:
            a = np.round(a * 2) / 2
        for share, value in ((0.3, 0.0), (0.15, np.nan), (0.05, np.inf)):
            if trial % 2:
                a[rng.random(a.shape) < share] = value
        t = np.asarray(f(jnp.asarray(a), k, "native"))
        np.testing.assert_array_equal(t, kth_largest_reference(a, k), err_msg=f"width {width}, k {k}")
        np.testing.assert_array_equal(a >= t, a >= np.asarray(f(jnp.asarray(a), k, "blocked")))


def test_projection_cut_keeps_the_bisections_entries():
    """The radix select's cut against the projection's XLA bisection and its stable sort, on keys with ties (all
    equal, half zeros, coarse values), reservation bits, and k from 1 to the whole tensor: the same k entries."""
    rng = np.random.default_rng(0)
    masks = {impl: jax.jit(f) for impl, f in (("bisect", sparsity._top_k_mask), ("sort", sparsity._top_k_mask_sort),
                                             ("native", sparsity._top_k_mask_native))}
    for n in (1, 2, 300, 4099):
        for trial in range(24):
            w = rng.standard_normal(n).astype(np.float32)
            if trial % 3 == 0:
                w = np.round(w * 2) / 2
            if trial % 4 == 0:
                w[rng.random(n) < 0.5] = 0.0
            if trial % 7 == 0:
                w[:] = 1.0
            key = jax.lax.bitcast_convert_type(jnp.abs(jnp.asarray(w)), jnp.uint32)
            if trial % 5 == 0:
                key = key | (jnp.asarray(rng.random(n) < 0.1).astype(jnp.uint32) << 31)
            k = jnp.int32((1, n, int(rng.integers(1, n + 1)))[trial % 3])
            got = {impl: np.asarray(f(key, k)) for impl, f in masks.items()}
            assert got["native"].sum() == int(k), (n, int(k))
            np.testing.assert_array_equal(got["native"], got["bisect"])
            np.testing.assert_array_equal(got["native"], got["sort"])


def test_kernel_reads_subnormals_as_zero_like_the_xla_bisection():
    a = jnp.array([[1e-40, 2e-40, 3e-40, 0.0, 1.0], [1e-40, 1e-39, 0.0, 0.0, 2.0]], jnp.float32)
    for k in (1, 2, 3):
        t = topk.row_threshold(a, k, "native")
        np.testing.assert_array_equal(t, topk.row_threshold(a, k, "blocked"))
        if k > 1:
            assert np.all(np.asarray(t) == 0.0)


def test_kernel_under_vmap_and_scan_equals_blocked():
    """Pruning vmaps the model over settings and scans over steps: the kernel sees the batched rows."""
    x = jax.random.normal(jax.random.key(3), (3, 2, 16, 40))
    run = lambda impl: jax.lax.scan(lambda c, xs: (c, jax.vmap(lambda r: M.abs_topk(r, 9, impl))(xs)), 0, x)[1]
    np.testing.assert_array_equal(run("native"), run("blocked"))


def test_disabled_kernel_falls_back_to_the_xla_bisection(fresh_native, monkeypatch):
    monkeypatch.setenv("WSPARSE_NATIVE", "0")
    assert not native.available()
    a = jnp.abs(jax.random.normal(jax.random.key(1), (5, 12)))
    assert "ffi_call" not in str(jax.make_jaxpr(lambda a: topk.row_threshold(a, 4))(a))
    assert "ffi_call" not in str(jax.make_jaxpr(lambda a: sparsity.project_tensor(a, jnp.int32(7)))(a))
    np.testing.assert_array_equal(topk.row_threshold(a, 4), kth_largest_reference(np.asarray(a), 4))
    with pytest.raises(RuntimeError, match="unavailable"):
        topk.row_threshold(a, 4, "native")


def test_failed_build_warns_and_falls_back(fresh_native, monkeypatch):
    """A compiler that fails (here ``false``) leaves no library behind: a warning, and the XLA bisection."""
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(RuntimeError, match="failed"):
        native.load("false")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not native.available()
    assert any("unavailable" in str(w.message) for w in caught)


def test_large_calls_share_the_thread_pool_without_deadlock(run_python):
    """Inputs of 2^16 entries or more are split over XLA's intra-op threads. Independent calls that XLA runs at once
    (one per thread, each handing work to the pool) deadlocked a first version within a few steps; a fresh process
    must finish, with the gradients equal to the XLA bisection's."""
    code = (
        "import os\n"
        "os.environ['JAX_PLATFORMS'] = 'cpu'\n"
        "import jax, jax.numpy as jnp, numpy as np\n"
        "from wsparse import model as M\n"
        "x = jax.random.normal(jax.random.key(0), (4096, 128))\n"
        "ws = [jax.random.normal(jax.random.key(i), (128, 128)) for i in range(1, 4)]\n"
        "def f(ws, impl):\n"
        "    q, k, v = (M.abs_topk(x @ w, 32, impl) for w in ws)  # three independent calls, like attention's\n"
        "    return jnp.sum(q * k * v)\n"
        "grad = {i: jax.jit(jax.grad(lambda ws, i=i: f(ws, i))) for i in ('native', 'blocked')}\n"
        "for _ in range(30):\n"
        "    got = grad['native'](ws)\n"
        "for g, w in zip(got, grad['blocked'](ws)):\n"
        "    np.testing.assert_array_equal(g, w)\n"
        "print('ok')\n")
    run_python(code)


# the C++ kernel is one custom call by name; the Pallas interpreter's ops carry no name of their own
@pytest.mark.parametrize("impl,marker", [("native", "wsparse_row_threshold"), ("pallas", "")])
def test_sharded_rows_stay_on_their_devices(run_python, impl, marker):
    """Under a jit sharded over 4 devices along the rows, each device runs the kernel (the C++ one, or the Pallas one
    in its interpreter) on its own rows: no all-gather of the activation, and the same output as the XLA bisection.
    The mesh is the trainer's (``parallel.make_mesh``: axes in auto mode; pallas_call refuses operands whose type
    carries an explicit-mode sharding)."""
    code = (
        "from wsparse import model as M, parallel\n"
        "mesh = parallel.make_mesh(4)\n"
        "x = jax.device_put(jax.random.normal(jax.random.key(0), (8, 16, 64)), NamedSharding(mesh, P('data')))\n"
        f"f = jax.jit(lambda x: M.abs_topk(x, 16, {impl!r}))\n"
        "hlo = f.lower(x).compile().as_text()\n"
        f"assert {marker!r} in hlo and 'all-gather' not in hlo, hlo\n"
        "y = f(x)\n"
        "assert y.sharding.is_equivalent_to(NamedSharding(mesh, P('data')), 3), y.sharding\n"
        "np.testing.assert_array_equal(y, jax.jit(lambda x: M.abs_topk(x, 16, 'blocked'))(x))\n"
        "print('ok')\n")
    run_python(code, devices=4)
