"""AbsTopK's Pallas kernel (wsparse/topk_pallas.py) under the transformations the trainer and pruning apply. On CPU
it runs in Pallas' interpreter; benchmarks/accelerator.sh runs these on a GPU, through Triton. Exactness against a
sort and the other implementations is in test_model.py, and the sharded jit in test_native.py (beside the C++
kernel's)."""

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
