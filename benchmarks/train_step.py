"""Train-step throughput: sparse against dense, where the sparse step spends its time, the top-k implementations, and
(``--torch``) a plain PyTorch version of the same step, all timed side by side in one process.

    .venv/bin/python benchmarks/train_step.py [--config=configs/demo.py[:arg]] [--batch=64] [--issue-shape] \\
        [--plain] [--dtype=bfloat16] [--microbatches=4] [--torch] [--steps=3] [--rounds=5] [--peak-tflops=X] \\
        [--before=NAME,...]

Variants are timed in interleaved rounds (one step of each in turn) and the median is kept, so a busy shared machine
biases all of them alike. Printed: tokens/s, achieved model GFLOP/s against a measured f32 matmul peak (or MFU against
``--peak-tflops`` on an accelerator), the time shares of the weight projection and of AbsTopK (variants: the step
without the projection, and with afrac = 1), the AbsTopK and projection implementations of ``model.topk_impl`` and
``sparsity.topk_impl`` side by side, and with ``--torch`` the comparison table of issue 13: sparse and dense tokens/s
of benchmarks/torch_ref.py against ours. ``--issue-shape`` turns off the attention sink and the bigram table (the
model the PyTorch version implements) and sets batch 64: B=64, T=64, D=128, 4 layers for configs/demo.py;
``--plain`` does the first alone, at any config.

On a GPU the same script runs the PyTorch version on the GPU too (under ``torch.autocast`` for ``--dtype=bfloat16``),
prints the device's peak memory, times the projection's implementations over the whole model, and leaves out the
CPU-only kernels; ``benchmarks/accelerator.sh`` is the set of runs reported in docs/results/speed.md.

Importing wsparse sets glibc's malloc for the whole process (wsparse.host_memory), the PyTorch version included. That
setting has no ``--before``: it must be made before XLA starts its threads, so its before is another process, run
with ``WSPARSE_KEEP_HEAP=0``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import math
import os
import statistics
import sys
import time
from typing import Callable
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from wsparse import config as C  # noqa: E402
from wsparse import matmul, model, native, optim, sparsity, topk, train  # noqa: E402

replace = dataclasses.replace


def load_config(spec: str) -> C.Config:
    """``path[:arg]`` -> Config (the arg is the config file's ``get_config`` argument)."""
    path, _, arg = spec.partition(":")
    mod_spec = importlib.util.spec_from_file_location("bench_config", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return C.from_configdict(mod.get_config(arg) if arg else mod.get_config())


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


def abs_topk_alternatives(m: C.ModelConfig, batch: int, reps: int = 7) -> None:
    """AbsTopK alone at the model's activation shapes, each ``model.topk_impl`` (all exact and equal)."""
    impls = ("bisect", "blocked", "top_k") + (("native",) if native.in_use() else ()) + (
        ("pallas",) if jax.default_backend() == "gpu" else ())  # on CPU pallas runs in an interpreter
    print(f"\nAbsTopK alone, [{batch * m.n_ctx}, width] {m.dtype}, k = int(afrac * width), median of {reps} "
          "interleaved (ms):")
    print(f"{'width':>6s} " + " ".join(f"{i:>9s}" for i in impls))
    for width in sorted({m.d_model, m.d_attn, m.d_mlp}):
        x = jax.random.normal(jax.random.key(2), (batch * m.n_ctx, width), jnp.dtype(m.dtype))
        k = int(m.afrac * width)
        fns = {i: (lambda f=jax.jit(lambda x, i=i: model.abs_topk(x, k, i)): f(x).block_until_ready())
               for i in impls}
        med = interleaved(fns, reps)
        print(f"{width:6d} " + " ".join(f"{med[i] * 1e3:9.2f}" for i in impls))


def projection_alternatives(cfg: C.Config, reps: int = 7) -> None:
    """The weight projection alone over the whole model past the anneal, each ``sparsity.topk_impl`` (all keep the
    same entries)."""
    impls = ("bisect", "sort") + (("native",) if native.in_use() else ())
    params = model.init_params(cfg.model, jax.random.key(0))
    n = sum(w.size for w in jax.tree_util.tree_leaves(params))
    fns = {}
    for impl in impls:
        sp = replace(cfg.sparsity, topk_impl=impl)
        f = jax.jit(lambda p, sp=sp: sparsity.project(p, cfg.train.steps, cfg.train.steps, sp))
        fns[impl] = lambda f=f: jax.block_until_ready(f(params))
    med = interleaved(fns, reps)
    print(f"\nweight projection alone, {n / 1e6:.1f}M weights, median of {reps} interleaved (ms): "
          + ", ".join(f"{i} {med[i] * 1e3:.2f}" for i in impls))


def peak_memory_gib() -> float | None:
    stats = jax.devices()[0].memory_stats() or {}
    return stats["peak_bytes_in_use"] / 2**30 if "peak_bytes_in_use" in stats else None


def _timed(fn: Callable) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: dict[str, Callable], rounds: int, per_round: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calls alternating between them (one warm-up call each first)."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            for _ in range(per_round):
                times[name].append(_timed(f))
    return {name: statistics.median(t) for name, t in times.items()}


def autodiff_softmax():
    """Inside: attention's softmax differentiated by autodiff (the step before model._softmax had its own backward).
    A step compiled inside keeps it."""
    return mock.patch.object(model, "_softmax", lambda s, sink: model._softmax_parts(s, sink)[0])


def _auto_instead(choices: tuple[str, ...], impl: str):
    """Inside: ``auto`` resolves to ``impl`` for the implementation switch with these ``choices``."""
    resolve = topk.resolve
    return mock.patch.object(topk, "resolve", lambda name, impls, defaults: (
        impl if name == "auto" and impls == choices else resolve(name, impls, defaults)))


def xla_bisection():
    """Inside: AbsTopK's ``auto`` resolves to the XLA bisection ``blocked`` (on CPU: before wsparse's C++ kernel)."""
    return _auto_instead(topk.ROW_IMPLS, "blocked")


def bisect_projection():
    """Inside: the weight projection's ``auto`` resolves to the XLA bisection (on CPU: before its C++ radix select)."""
    return _auto_instead(sparsity.PROJECT_IMPLS, "bisect")


def autodiff_weight_grads():
    """Inside: weight gradients by autodiff's dots (before ``matmul`` read a transpose from wsparse's C++ kernel)."""
    return mock.patch.object(matmul, "native_weight_grads", lambda: False)


def xla_attention():
    """Inside: attention in its XLA form everywhere (before ``model.attention_impl`` chose cuDNN's fused kernel on a
    GPU and wsparse's C++ kernel on CPU)."""
    return mock.patch.object(model, "attention_impl", lambda cfg: "xla")


def bthd_attention():
    """Inside: attention's XLA form contracts the [B, T, H, d] operands as they are (before they were transposed
    heads-first up front)."""
    def attend(q, k, v, sink, impl="xla"):
        T, dh = q.shape[1], q.shape[-1]
        s = jnp.einsum("bthd,bshd->bhts", q, k, preferred_element_type=jnp.float32) / math.sqrt(dh)
        s = jnp.where(jnp.tril(jnp.ones((T, T), bool)), s, jnp.finfo(jnp.float32).min)
        p = model._softmax(s, None if sink is None else sink.astype(jnp.float32)).astype(v.dtype)
        return jnp.einsum("bhts,bshd->bthd", p, v)
    return mock.patch.object(model, "_attention", attend)


def full_bisection():
    """Inside: the blocked AbsTopK runs all 31 bisection passes in every block (before it stopped once every row of
    the block counted exactly k)."""
    stack = contextlib.ExitStack()
    stack.enter_context(xla_bisection())
    stack.enter_context(mock.patch.object(topk, "_bisect_rows_until_exact", topk._bisect_rows))
    return stack


BEFORE = {"autodiff-softmax": autodiff_softmax, "full-bisection": full_bisection, "blocked": xla_bisection,
          "autodiff-weight-grads": autodiff_weight_grads, "bisect-projection": bisect_projection,
          "xla-attention": xla_attention, "bthd-attention": bthd_attention}


def jax_stepper(cfg: C.Config, batch, start: int, before: str | None = None) -> Callable:
    step, state = build(cfg, start)
    box = [state]
    t = time.perf_counter()
    with BEFORE[before]() if before else contextlib.nullcontext():
        box[0], metrics = step(box[0], batch)
    jax.block_until_ready(metrics)
    print(f"compiled in {time.perf_counter() - t:5.1f}s", flush=True)

    def one() -> None:
        box[0], _ = step(box[0], batch)
        jax.block_until_ready(box[0])

    return one


def torch_stepper(cfg: C.Config, batch, threads: int) -> Callable:
    """One PyTorch step per call at ``threads`` intra-op threads. Both 1 and all cores are timed: on a machine shared
    with other jobs, OpenMP's barrier-synchronised 2-thread regions can run 10x slower than one thread (measured here),
    and the comparison uses PyTorch's faster setting. Where JAX runs on a GPU, PyTorch does too (``threads`` unused);
    a bfloat16 model runs under ``torch.autocast``."""
    import numpy as np
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_ref  # noqa: E402

    device = "cuda" if jax.default_backend() == "gpu" else "cpu"
    trainer = torch_ref.Trainer(cfg, device)
    tokens = torch.from_numpy(np.array(batch)).long().to(device)
    autocast = torch.autocast(device, torch.bfloat16, enabled=cfg.model.dtype == "bfloat16")

    def one() -> None:
        torch.set_num_threads(threads)
        with autocast:
            trainer.step(tokens)

    return one


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--batch", type=int, default=None, help="override train.batch_size")
    ap.add_argument("--issue-shape", action="store_true", help="no sink, no bigram table, batch 64 (issue 13)")
    ap.add_argument("--plain", action="store_true", help="no sink, no bigram table (the model torch_ref implements)")
    ap.add_argument("--dtype", default=None, choices=("float32", "bfloat16"), help="override model.dtype")
    ap.add_argument("--microbatches", type=int, default=None, help="override train.microbatches")
    ap.add_argument("--torch", action="store_true", help="also time benchmarks/torch_ref.py (needs torch)")
    ap.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=None, help="accelerator peak for MFU (e.g. 989 bf16 H100)")
    ap.add_argument("--no-variants", action="store_true", help="only the sparse and dense steps (and torch)")
    ap.add_argument("--before", default="", help="comma-separated: also both steps as they were before a change, "
                    f"one of {sorted(BEFORE)}")
    ap.add_argument("--autodiff-softmax", action="store_true", help="the same as --before=autodiff-softmax")
    args = ap.parse_args()

    sparse = load_config(args.config)
    if args.issue_shape or args.plain:
        sparse = replace(sparse, model=replace(sparse.model, attn_sink=False, bigram_table=False))
    if args.issue_shape:
        sparse = replace(sparse, train=replace(sparse.train, batch_size=64))
    if args.dtype:
        sparse = replace(sparse, model=replace(sparse.model, dtype=args.dtype))
    if args.batch:
        sparse = replace(sparse, train=replace(sparse.train, batch_size=args.batch))
    if args.microbatches:
        sparse = replace(sparse, train=replace(sparse.train, microbatches=args.microbatches))
    assert sparse.sparsity.enabled and sparse.model.afrac < 1.0, "the config must describe the sparse model"
    no_proj = replace(sparse.sparsity, enabled=False)
    dense = replace(sparse, model=replace(sparse.model, afrac=1.0), sparsity=no_proj)
    variants = {"sparse": sparse, "dense": dense}
    if not args.no_variants:
        variants |= {
            "sparse, no projection": replace(sparse, sparsity=no_proj),
            "sparse, afrac=1": replace(sparse, model=replace(sparse.model, afrac=1.0)),
            "sparse, topk_impl=bisect": replace(sparse, model=replace(sparse.model, topk_impl="bisect"),
                                                sparsity=replace(sparse.sparsity, topk_impl="bisect")),
            "sparse, topk_impl=top_k/sort": replace(sparse, model=replace(sparse.model, topk_impl="top_k"),
                                                    sparsity=replace(sparse.sparsity, topk_impl="sort")),
        }
    m = sparse.model
    B = sparse.train.batch_size
    platform = jax.devices()[0].platform
    batch = jax.random.randint(jax.random.key(1), (B, m.n_ctx + 1), 0, m.vocab_size, jnp.int32)
    start = sparse.train.steps - args.steps * (args.rounds + 1) - 4  # past the anneal: densities at their targets

    fns: dict[str, Callable] = {}
    for name, cfg in variants.items():
        print(f"{name:28s} ", end="", flush=True)
        fns[name] = jax_stepper(cfg, batch, start)
    befores = [b for b in args.before.split(",") if b] + (["autodiff-softmax"] if args.autodiff_softmax else [])
    for before in befores:
        for name, cfg in (("sparse", sparse), ("dense", dense)):
            if before in ("full-bisection", "blocked", "bisect-projection") and name == "dense":
                continue  # the dense step has no AbsTopK and no projection
            print(f"{name + ', ' + before:28s} ", end="", flush=True)
            fns[f"{name}, {before}"] = jax_stepper(cfg, batch, start, before)
    torch_threads = sorted({1, os.cpu_count() or 1}) if platform == "cpu" else [1]
    if args.torch:
        for kind, cfg in (("sparse", sparse), ("dense", dense)):
            for th in torch_threads:
                fns[f"torch {kind}, {th} thread(s)"] = torch_stepper(cfg, batch, th)
    med = interleaved(fns, args.rounds, args.steps)

    flops = model_flops_per_step(m, B)
    tokens = B * m.n_ctx
    print(f"\nconfig {args.config}: B={B} T={m.n_ctx} D={m.d_model} L={m.n_layer} d_mlp={m.d_mlp} "
          f"H={m.n_head}x{m.d_head} V={m.vocab_size} sink={m.attn_sink} bigram={m.bigram_table} dtype={m.dtype}; "
          f"{jax.device_count()} {platform} device(s), {os.cpu_count()} cores; median of {args.rounds} interleaved "
          f"rounds x {args.steps} steps")
    if args.peak_tflops:
        peak, unit = args.peak_tflops * 1e3, "MFU"
    else:
        peak, unit = matmul_peak_gflops(), "of peak"
        print(f"matmul peak (2048^3 f32, measured): {peak:.1f} GFLOP/s")
    print(f"model FLOPs/step {flops / 1e9:.2f} GFLOP")
    if (gib := peak_memory_gib()) is not None:
        print(f"device peak memory (all variants in this process): {gib:.1f} GiB")
    print()
    print(f"{'variant':30s} {'ms/step':>8s} {'tokens/s':>9s} {'GFLOP/s':>8s} {unit:>8s}")
    for name, s in med.items():
        print(f"{name:30s} {s * 1e3:8.1f} {tokens / s:9.0f} {flops / s / 1e9:8.1f} {flops / s / 1e9 / peak:8.1%}")
    full = med["sparse"]
    if not args.no_variants:
        print(f"\nweight projection share of the sparse step: {(full - med['sparse, no projection']) / full:6.1%}")
        print(f"AbsTopK share of the sparse step:           {(full - med['sparse, afrac=1']) / full:6.1%}")
    print(f"sparse / dense tokens/s:                    {med['dense'] / full:6.2f}x")
    if args.torch:
        where = "faster thread setting" if platform == "cpu" else platform
        print(f"\n| step | PyTorch (benchmarks/torch_ref.py, {where}) | wsparse | ratio |\n|---|---|---|---|")
        for kind in ("sparse", "dense"):
            t, w = max(tokens / med[f"torch {kind}, {th} thread(s)"] for th in torch_threads), tokens / med[kind]
            print(f"| {kind} | {t / 1e3:.1f}k tokens/s | {w / 1e3:.1f}k tokens/s | {w / t:.2f}x |")
    if not args.no_variants:
        abs_topk_alternatives(m, B)
        projection_alternatives(sparse)


if __name__ == "__main__":
    main()
