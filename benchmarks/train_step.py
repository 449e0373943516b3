"""Train-step throughput: sparse against dense at the same shapes, and where the sparse step spends its time.

    .venv/bin/python benchmarks/train_step.py [--config=configs/demo.py] [--steps=8] [--rounds=3]

Prints tokens/s, achieved model GFLOP/s as a fraction of a measured f32 matmul peak, and the time shares of the weight
projection and of AbsTopK, measured by timing variants of the same step: full sparse step, the step without the
projection, and the step with afrac = 1. Variants are timed in interleaved rounds and the best round is kept, so a
busy shared machine biases all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from wsparse import config as C  # noqa: E402
from wsparse import model, optim, train  # noqa: E402


def load_config(path: str, arg: str = "") -> C.Config:
    spec = importlib.util.spec_from_file_location("bench_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return C.from_configdict(mod.get_config(arg))


def build(cfg: C.Config, start_step: int):
    """The trainer's own jitted, donating step and a fresh state at ``start_step`` (densities at their targets past
    the anneal)."""
    optimizer = optim.make_optimizer(cfg)
    params = model.init_params(cfg.model, jax.random.key(0))
    state = train.TrainState(step=jnp.int32(start_step), params=params, opt_state=optimizer.init(params))
    return jax.jit(train.make_train_step(cfg, optimizer), donate_argnums=0), state


def model_flops_per_step(m: C.ModelConfig, batch: int) -> float:
    """6 x (matmul params) per token plus causal-attention score/value matmuls (full T x T, as computed)."""
    matmul_params = m.n_layer * (m.d_model * 3 * m.d_attn + m.d_attn * m.d_model + 2 * m.d_model * m.d_mlp)
    matmul_params += m.vocab_size * m.d_model  # lm_head
    attn = m.n_layer * 2 * 2 * m.n_ctx * m.d_attn  # per token: q.k and p.v
    return 3 * batch * m.n_ctx * (2 * matmul_params + attn)


def matmul_peak_gflops(n: int = 2048, reps: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def abs_topk_alternatives(m: C.ModelConfig, batch: int, reps: int = 5) -> None:
    """AbsTopK alone at the model's activation shapes: the bit bisection we use vs lax.top_k-based thresholds."""

    def topk_threshold(x, k):
        a = jnp.abs(x)
        return jnp.where(a >= jax.lax.top_k(a, k)[0][..., -1:], x, 0)

    def topk_scatter(x, k):
        _, idx = jax.lax.top_k(jnp.abs(x), k)
        rows = jnp.arange(x.shape[0])[:, None]
        return jnp.zeros_like(x).at[rows, idx].set(x[rows, idx])

    print(f"\nAbsTopK alone, [{batch * m.n_ctx}, width], k = int(afrac * width), best of {reps} (ms):")
    print(f"{'width':>6s} {'bisection':>10s} {'top_k+thr':>10s} {'top_k+scat':>10s}")
    for width in sorted({m.d_model, m.d_attn, m.d_mlp}):
        x = jax.random.normal(jax.random.key(2), (batch * m.n_ctx, width), jnp.float32)
        k = int(m.afrac * width)
        row = []
        for fn in (model.abs_topk, topk_threshold, topk_scatter):
            f = jax.jit(lambda x, fn=fn: fn(x, k))
            f(x).block_until_ready()
            row.append(min(_timed(lambda: f(x).block_until_ready()) for _ in range(reps)) * 1e3)
        print(f"{width:6d} " + " ".join(f"{t:10.2f}" for t in row))


def _timed(fn: Callable) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    sparse = load_config(args.config)
    assert sparse.sparsity.enabled and sparse.model.afrac < 1.0, "the config must describe the sparse model"
    variants = {
        "sparse": sparse,
        "sparse, no projection": dataclasses.replace(sparse, sparsity=dataclasses.replace(sparse.sparsity,
                                                                                             enabled=False)),
        "sparse, afrac=1": dataclasses.replace(sparse, model=dataclasses.replace(sparse.model, afrac=1.0)),
        "dense": dataclasses.replace(sparse, model=dataclasses.replace(sparse.model, afrac=1.0),
                                     sparsity=dataclasses.replace(sparse.sparsity, enabled=False)),
    }
    m = sparse.model
    B = sparse.train.batch_size
    batch = jax.random.randint(jax.random.key(1), (B, m.n_ctx + 1), 0, m.vocab_size, jnp.int32)
    start = sparse.train.steps - args.steps * args.rounds - 2  # past the anneal: densities at their targets

    built = {}
    for name, cfg in variants.items():
        step, state = build(cfg, start)
        t = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        built[name] = [step, state]
        print(f"compiled {name:24s} in {time.perf_counter() - t:5.1f}s", flush=True)

    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, entry in built.items():
            step, state = entry
            for _ in range(args.steps):
                t = time.perf_counter()
                state, metrics = step(state, batch)
                jax.block_until_ready(state)
                best[name] = min(best[name], time.perf_counter() - t)
            entry[1] = state

    peak = matmul_peak_gflops()
    flops = model_flops_per_step(m, B)
    tokens = B * m.n_ctx
    print(f"\nconfig {args.config}: B={B} T={m.n_ctx} D={m.d_model} L={m.n_layer} d_mlp={m.d_mlp} "
          f"H={m.n_head}x{m.d_head} V={m.vocab_size}; {jax.device_count()} {jax.devices()[0].platform} device(s), "
          f"{os.cpu_count()} cores; best of {args.rounds}x{args.steps} steps")
    print(f"matmul peak (2048^3 f32): {peak:.1f} GFLOP/s; model FLOPs/step {flops / 1e9:.2f} GFLOP\n")
    print(f"{'variant':24s} {'ms/step':>8s} {'tokens/s':>9s} {'GFLOP/s':>8s} {'of peak':>8s}")
    for name in variants:
        s = best[name]
        print(f"{name:24s} {s * 1e3:8.1f} {tokens / s:9.0f} {flops / s / 1e9:8.1f} {flops / s / 1e9 / peak:8.1%}")
    full = best["sparse"]
    proj = (full - best["sparse, no projection"]) / full
    topk = (full - best["sparse, afrac=1"]) / full
    ratio = best["dense"] / full
    print(f"\nweight projection share of the sparse step: {proj:6.1%}  (target <= 10%)")
    print(f"AbsTopK share of the sparse step:           {topk:6.1%}")
    print(f"sparse / dense tokens/s:                    {ratio:6.2f}x (target >= 0.70x)")
    abs_topk_alternatives(m, B)


if __name__ == "__main__":
    main()
