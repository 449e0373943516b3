"""Attention alone, forward and backward, at a model's shape: each ``model.attention_impl`` the backend offers (the XLA
form everywhere, cuDNN's fused kernel on a GPU, wsparse's C++ kernel on CPU in float32), its time, and its error
against the XLA form in float32.

    python benchmarks/attention.py [--config=configs/paper.py:4x] [--batch=128] [--dtype=bfloat16] [--rounds=20]

Printed per implementation: ms per forward+backward (median of interleaved rounds), and ||out - ref|| / ||ref|| of
the output and of dq, dk, dv, where ref is the XLA form on float32 copies of the same inputs (bfloat16 inputs land
near 1e-2 by rounding alone: the float32 reference is not rounded).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.train_step import interleaved, load_config  # noqa: E402
from wsparse import model, native  # noqa: E402


def attention_vjp(impl: str):
    """Jitted (q, k, v, cotangent) -> (out, dq, dk, dv) of causal attention without the sink."""
    def f(q, k, v, g):
        out, vjp = jax.vjp(lambda q, k, v: model._attention(q, k, v, None, impl), q, k, v)
        return (out, *vjp(g))
    return jax.jit(f)


def rel_err(a: jax.Array, ref: jax.Array) -> float:
    a, ref = a.astype(jnp.float32), ref.astype(jnp.float32)
    return float(jnp.linalg.norm(a - ref) / jnp.linalg.norm(ref))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/paper.py:1x")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    m = load_config(args.config).model
    B = args.batch or 8
    shape = (B, m.n_ctx, m.n_head, m.d_head)
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v, g = (jax.random.normal(key, shape, jnp.float32) for key in keys)
    ref = attention_vjp("xla")(q, k, v, g)
    dtype = jnp.dtype(args.dtype)
    inputs = tuple(x.astype(dtype) for x in (q, k, v, g))
    impls = ["xla"] + (["cudnn"] if jax.default_backend() == "gpu" and args.dtype == "bfloat16" else []) \
        + (["native"] if native.in_use() and args.dtype == "float32" else [])
    fns = {impl: attention_vjp(impl) for impl in impls}
    print(f"attention [B={B}, T={m.n_ctx}, H={m.n_head}, d={m.d_head}] {args.dtype} on {jax.default_backend()}, "
          f"forward + backward, median of {args.rounds} interleaved rounds")
    print(f"{'impl':6s} {'ms':>8s} {'out':>9s} {'dq':>9s} {'dk':>9s} {'dv':>9s}   (relative error vs float32 XLA)")
    errs = {impl: [rel_err(a, r) for a, r in zip(fns[impl](*inputs), ref)] for impl in impls}
    med = interleaved({impl: (lambda f=fns[impl]: jax.block_until_ready(f(*inputs))) for impl in impls}, args.rounds)
    for impl in impls:
        print(f"{impl:6s} {med[impl] * 1e3:8.3f} " + " ".join(f"{e:9.2e}" for e in errs[impl]))


if __name__ == "__main__":
    main()
