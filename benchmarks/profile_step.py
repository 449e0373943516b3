"""Where a train step's time goes: a jax.profiler trace of the compiled step, each XLA op attributed to a category
through the optimized HLO (op_name metadata and shapes).

    .venv/bin/python benchmarks/profile_step.py [--config=configs/demo.py] [--dense] [--batch=64] [--steps=2] \
        [--topk-impl=auto|bisect|blocked|top_k]

Runs with the attention sink and bigram table off (the issue-13 shape, B=64). The categories are heuristics over the
op names JAX writes into the HLO (dot_general with its einsum spec, ops inside the bisection loops, shapes of the
attention scores and logits); the table is a sum of op times, which on a shared machine runs longer than the step
itself, so read the shares, not the milliseconds.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

DUMP = tempfile.mkdtemp(prefix="wsparse_hlo_")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text "
                           "--xla_dump_hlo_module_re=.*step.* --xla_cpu_enable_xprof_traceme=true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dataclasses  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.train_step import build, load_config  # noqa: E402


def category(shape: str, op: str, m) -> str:
    T, V, H = m.n_ctx, m.vocab_size, m.n_head
    if "while" in op:
        return "AbsTopK bisection" if "jvp" in op else "weight projection (bisection loops)"
    if "argmax" in op or ("jvp" not in op and "reduce_max" in op):
        return "weight projection (min-alive argmax)"
    if "dot_general" in op:
        if "...d,vd->...v" in op:
            return "matmul: unembedding"
        if "bthd" in op or "bhts" in op:
            return "matmul: attention scores and values"
        return "matmul: linear layers"
    if f",{H},{T},{T}]" in shape or f",{H},{T}]" in shape:
        return "attention softmax and mask"
    if f",{V}]" in shape or f"[{V}," in shape:
        return "cross-entropy, logits layout"
    if "erf" in op:
        return "GELU (erfc)"
    last = op.split("/")[-1]
    if "transpose" in last or "reshape" in last or "copy" in last:
        return "layout: transposes, copies"
    if "jvp" not in op:
        return "optimizer chain, projection apply, metrics"
    return "other elementwise (norms, residual adds, AbsTopK select, their gradients)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--topk-impl", default="auto", help="model.topk_impl and, bisect/auto only, sparsity.topk_impl")
    args = ap.parse_args()
    rep = dataclasses.replace
    cfg = load_config(args.config)
    cfg = rep(cfg, model=rep(cfg.model, attn_sink=False, bigram_table=False, topk_impl=args.topk_impl),
              train=rep(cfg.train, batch_size=args.batch))
    if args.topk_impl in ("auto", "bisect"):
        cfg = rep(cfg, sparsity=rep(cfg.sparsity, topk_impl=args.topk_impl))
    if args.dense:
        cfg = rep(cfg, model=rep(cfg.model, afrac=1.0), sparsity=rep(cfg.sparsity, enabled=False))
    m = cfg.model
    step, state = build(cfg, cfg.train.steps - 10)
    batch = jax.random.randint(jax.random.key(1), (args.batch, m.n_ctx + 1), 0, m.vocab_size, jnp.int32)
    for _ in range(2):
        state, _ = step(state, batch)
    jax.block_until_ready(state)
    trace_dir = tempfile.mkdtemp(prefix="wsparse_trace_")
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(args.steps):
        state, _ = step(state, batch)
        jax.block_until_ready(state)
    jax.profiler.stop_trace()

    info = {}
    for path in glob.glob(f"{DUMP}/*jit_step*after_optimizations.txt"):
        for line in open(path):
            hit = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) \w+\(.*?op_name=\"([^\"]*)\"", line)
            if hit:
                info.setdefault(hit.group(1), (hit.group(2), hit.group(3)))
    trace = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
    events = [e for e in json.load(gzip.open(trace))["traceEvents"] if e.get("ph") == "X"]
    total = collections.Counter()
    for e in events:
        if e["name"] in info:
            total[category(*info[e["name"]], m)] += e["dur"] / args.steps / 1e3
    s = sum(total.values())
    kind = "dense" if args.dense else "sparse"
    print(f"{kind} step, B={args.batch} T={m.n_ctx} D={m.d_model} L={m.n_layer} V={m.vocab_size}, "
          f"topk_impl={m.topk_impl}; sum of XLA op times per step (ms):\n")
    print("| category | ms | share |\n|---|---|---|")
    for c, t in total.most_common():
        print(f"| {c} | {t:.0f} | {t / s:.0%} |")
    print(f"| total | {s:.0f} | |")


if __name__ == "__main__":
    main()
