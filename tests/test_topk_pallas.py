"""AbsTopK's Pallas kernel (wsparse/topk_pallas.py) under the transformations the trainer and pruning apply. On CPU
it runs in Pallas' interpreter; benchmarks/accelerator.sh runs these on a GPU, through Triton. Exactness against a
sort and the other implementations is in test_model.py."""

import jax
import numpy as np

from wsparse import model as M


def test_under_vmap_scan_and_grad_equals_bisect():
    """Pruning vmaps the model over settings and scans over steps; training differentiates through the mask."""
    x = jax.random.normal(jax.random.key(3), (3, 2, 16, 40))  # 40 wide: padded to 64 inside
    run = lambda impl: jax.lax.scan(lambda c, xs: (c, jax.vmap(lambda r: M.abs_topk(r, 9, impl))(xs)), 0, x)[1]
    np.testing.assert_array_equal(run("pallas"), run("bisect"))
    grad = lambda impl: jax.grad(lambda x: (M.abs_topk(x, 9, impl) ** 2).sum())(x)
    np.testing.assert_array_equal(grad("pallas"), grad("bisect"))


def test_sharded_rows_stay_on_their_devices(run_python):
    """Under a jit sharded over 4 devices along the rows, each device runs the kernel on its own rows: no all-gather
    of the activation, and the same output as the XLA bisection. The mesh is the trainer's (``parallel.make_mesh``:
    axes in auto mode; pallas_call refuses operands whose type carries an explicit-mode sharding)."""
    code = (
        "import os\n"
        "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=4'\n"
        "os.environ['JAX_PLATFORMS'] = 'cpu'\n"
        "import jax, numpy as np\n"
        "from jax.sharding import NamedSharding, PartitionSpec as P\n"
        "from wsparse import model as M, parallel\n"
        "mesh = parallel.make_mesh(4)\n"
        "x = jax.device_put(jax.random.normal(jax.random.key(0), (8, 16, 64)), NamedSharding(mesh, P('data')))\n"
        "f = jax.jit(lambda x: M.abs_topk(x, 16, 'pallas'))\n"
        "hlo = f.lower(x).compile().as_text()\n"
        "assert 'all-gather' not in hlo, hlo\n"
        "y = f(x)\n"
        "assert y.sharding.is_equivalent_to(NamedSharding(mesh, P('data')), 3), y.sharding\n"
        "np.testing.assert_array_equal(y, jax.jit(lambda x: M.abs_topk(x, 16, 'bisect'))(x))\n"
        "print('ok')\n")
    run_python(code)
