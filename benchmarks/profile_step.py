"""Where a train step's time goes: a jax.profiler trace of the compiled step, each XLA op attributed to a category
through the optimized HLO (op_name metadata and shapes).

    .venv/bin/python benchmarks/profile_step.py [--config=configs/demo.py] [--dense] [--batch=64] [--steps=2] \
        [--topk-impl=auto|bisect|blocked|top_k]
    .venv/bin/python benchmarks/profile_step.py --mask-loop=runs/demo [--task=var_if] [--prune-config=fast]

``--mask-loop`` profiles one chunk of pruning's mask loop (``prune._train_chunk``: forward and backward through the
masked model) on a trained run instead, and attributes each op to the innermost wsparse function on its Python stack
(the HLO's stack frames), split into matmuls and the rest, forward and backward.

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
import time
from typing import Callable

DUMP = tempfile.mkdtemp(prefix="wsparse_hlo_")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text "
                           "--xla_dump_hlo_module_re=.*(step|train_chunk).* --xla_cpu_enable_xprof_traceme=true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dataclasses  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.train_step import build, load_config  # noqa: E402


def category(shape: str, op: str, m) -> str:
    T, V, H = m.n_ctx, m.vocab_size, m.n_head
    if "while" in op:
        return "AbsTopK bisection" if "jvp" in op else "weight projection (bisection loops)"
    if "pallas_call" in op:
        return "AbsTopK threshold (Pallas kernel)"
    if "dot_product_attention" in op:
        return "attention (cuDNN fused kernel)"
    last = op.split("/")[-1]
    if last.startswith("sort") or (last.startswith("scatter") and "jvp" not in op):  # not the embedding's gradient
        return "weight projection (sort)"
    if "wsparse_attention" in op:  # wsparse/native's kernels, by their custom call's target
        return "attention (C++ kernel)"
    if "wsparse_transpose" in op:
        return "weight-gradient transposes (C++ kernel)"
    if "wsparse_row_threshold" in op:
        return "AbsTopK threshold (C++ kernel)"
    if "wsparse_top_k_cut" in op:
        return "weight projection (C++ radix select)"
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
    if "transpose" in last or "reshape" in last or "copy" in last:
        return "layout: transposes, copies"
    if "jvp" not in op:
        return "optimizer chain, projection apply, metrics"
    return "other elementwise (norms, residual adds, AbsTopK select, their gradients)"


def by_function(module_text: str) -> dict[str, str]:
    """HLO instruction name -> "function (matmul|other, forward|backward)", the function being the innermost one
    from wsparse on the instruction's Python stack (the module's StackFrames table)."""
    tables, section = {"FileNames": {}, "FunctionNames": {}, "FileLocations": {}, "StackFrames": {}}, None
    for line in module_text.splitlines():
        if line.strip() in tables:
            section = line.strip()
        elif section and re.match(r"\d+ ", line):
            key, rest = line.split(" ", 1)
            tables[section][int(key)] = rest
        elif section and line.strip():
            section = None
    num = lambda text, field: int(re.search(field + r"=(\d+)", text).group(1))

    def place(frame: int) -> str:
        seen = set()
        while frame and frame not in seen:
            seen.add(frame)
            loc = tables["FileLocations"][num(tables["StackFrames"][frame], "file_location_id")]
            path = tables["FileNames"][num(loc, "file_name_id")].strip('"')
            if "/wsparse/" in path:
                module = os.path.splitext(os.path.basename(path))[0]
                return f"{module}.{tables['FunctionNames'][num(loc, 'function_name_id')].strip(chr(34))}"
            frame = num(tables["StackFrames"][frame], "parent_frame_id")
        return "(outside wsparse)"

    out = {}
    pattern = r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]*)\" stack_frame_id=(\d+)"
    for hit in re.finditer(pattern, module_text, re.M):
        name, op, frame = hit.group(1), hit.group(2), int(hit.group(3))
        if re.search(r" (while|conditional|call)\(", hit.group(0)):
            continue  # a loop's event spans its body's ops, which are counted themselves
        kind = "matmul" if "dot_general" in op else "other"
        way = "backward" if "transpose(" in op else "forward"
        out.setdefault(name, f"{place(frame)} ({kind}, {way})")
    return out


def trace_ms(run_once: Callable[[], None], steps: int) -> dict[str, float]:
    """Op name -> milliseconds per call of ``run_once``, from a jax.profiler trace of ``steps`` calls."""
    trace_dir = tempfile.mkdtemp(prefix="wsparse_trace_")
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(steps):
        run_once()
    jax.profiler.stop_trace()
    trace = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
    total = collections.Counter()
    for e in json.load(gzip.open(trace))["traceEvents"]:
        if e.get("ph") == "X":
            total[e["name"]] += e["dur"] / steps / 1e3
    return total


def print_table(title: str, ms_by_category: collections.Counter) -> None:
    s = sum(ms_by_category.values())
    print(title + "\n\n| category | ms | share |\n|---|---|---|")
    for c, t in ms_by_category.most_common():
        print(f"| {c} | {t:.1f} | {t / s:.0%} |")
    print(f"| total | {s:.0f} | |")


def mask_loop(workdir: str, task: str, prune_variant: str, chunks: int) -> None:
    """Profiles ``prune._train_chunk`` (``chunk_steps`` mask steps) on a trained run, by function."""
    import wsparse
    from configs import prune as prune_config
    from wsparse import config as C, tasks
    from wsparse.circuits import extract, means, prune

    run = wsparse.load_run(workdir)
    cfg = C.from_configdict(prune_config.get_config(prune_variant), C.PruneConfig)
    pr = prune.Pruner(run.params, run.cfg.model, cfg, means.load(means.cache_path(run.workdir, run.step)))
    pairs = prune.pairs_from_batch(extract.task_batches(run, task, cfg)["train"])
    s = {k: jnp.asarray(v) for k, v in prune.settings_grid(cfg).items()}
    carry = prune._init(pr.spec, s)
    length = 1  # one step per call: XLA inlines a one-trip loop, so the trace sees each op (not one loop event)
    once = lambda: jax.block_until_ready(prune._train_chunk(pr.spec, pr.params, pr.stats, pairs, s, carry,
                                                            jnp.int32(0), length))
    once()
    t = time.perf_counter()
    once()
    wall_ms = (time.perf_counter() - t) * 1e3 / length
    per_call = trace_ms(once, chunks)
    info = {}
    for path in glob.glob(f"{DUMP}/*jit__train_chunk*after_optimizations.txt"):
        info |= by_function(open(path).read())
    total = collections.Counter()
    for name, ms in per_call.items():
        if name in info:
            total[info[name]] += ms / length
    print_table(f"mask loop of {workdir} on {task}, prune config {prune_variant!r} ({len(s['lr'])} setting(s), "
                f"{cfg.batch_pairs} pairs per step, T={pairs.tokens.shape[-1]}); sum of XLA op times per mask step "
                "(ms), by the innermost wsparse function:", total)
    print(f"wall time per mask step, untraced: {wall_ms:.1f} ms (the rest is the runtime between XLA ops: "
          "loop control and dispatch)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mask-loop", default=None, help="a trained run's workdir: profile pruning's mask loop on it")
    ap.add_argument("--task", default="var_if", help="with --mask-loop")
    ap.add_argument("--prune-config", default="fast", help="with --mask-loop: a configs/prune.py variant")
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--topk-impl", default="auto", help="model.topk_impl and, bisect/auto only, sparsity.topk_impl")
    ap.add_argument("--dtype", default=None, choices=("float32", "bfloat16"), help="override model.dtype")
    ap.add_argument("--top", type=int, default=0, help="also list the N slowest ops with their shapes and op names")
    args = ap.parse_args()
    if args.mask_loop:
        return mask_loop(args.mask_loop, args.task, args.prune_config, args.steps)
    rep = dataclasses.replace
    cfg = load_config(args.config)
    cfg = rep(cfg, model=rep(cfg.model, attn_sink=False, bigram_table=False, topk_impl=args.topk_impl),
              train=rep(cfg.train, batch_size=args.batch))
    if args.topk_impl in ("auto", "bisect"):
        cfg = rep(cfg, sparsity=rep(cfg.sparsity, topk_impl=args.topk_impl))
    if args.dense:
        cfg = rep(cfg, model=rep(cfg.model, afrac=1.0), sparsity=rep(cfg.sparsity, enabled=False))
    if args.dtype:
        cfg = rep(cfg, model=rep(cfg.model, dtype=args.dtype))
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
            # the shape is one array's or a tuple's, "(f32[..], f32[..])", as a kernel with two results has
            hit = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\([^=]*?\)|\S+) ([\w-]+)\(.*?op_name=\"([^\"]*)\"", line)
            if hit:  # a plain dot can carry the op_name of the transpose that XLA folded into it: a matmul all the same
                op = hit.group(4) + ("/dot_general" if hit.group(3) == "dot" else "")
                target = re.search(r'custom_call_target="([^"]*)"', line)  # wsparse's kernels by name
                op += f"/{target.group(1)}" if target else ""
                info.setdefault(hit.group(1), (hit.group(2), op))
    trace = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
    events = json.load(gzip.open(trace))["traceEvents"]
    # On a GPU only the device's own timeline counts (the host's launch events carry the same op names), and a
    # kernel names its HLO op in its args where its own name is the library's (cuBLAS, cuDNN).
    gpu = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
           and "GPU" in str(e.get("args", {}).get("name", ""))}
    info |= {name.replace(".", "_"): v for name, v in info.items()}  # a GPU kernel is its fusion's name, "." -> "_"
    total, unmatched, by_op = collections.Counter(), collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") != "X" or (gpu and e.get("pid") not in gpu):
            continue
        args_ = e.get("args", {})
        name = next((n for n in (e["name"], args_.get("hlo_op"), args_.get("long_name", "").split(" ")[0].lstrip("%"))
                     if n in info), None)
        if name:
            total[category(*info[name], m)] += e["dur"] / args.steps / 1e3
            by_op[name] += e["dur"] / args.steps / 1e3
        elif gpu:
            unmatched[e["name"][:60]] += e["dur"] / args.steps / 1e3
    if unmatched:
        total["(device kernels not matched to an HLO op)"] = sum(unmatched.values())
    s = sum(total.values())
    kind = "dense" if args.dense else "sparse"
    print(f"{kind} step, B={args.batch} T={m.n_ctx} D={m.d_model} L={m.n_layer} V={m.vocab_size}, "
          f"topk_impl={m.topk_impl}; sum of XLA op times per step (ms):\n")
    print("| category | ms | share |\n|---|---|---|")
    for c, t in total.most_common():
        print(f"| {c} | {t:.1f} | {t / s:.0%} |")
    print(f"| total | {s:.1f} | |")
    if args.top:
        print(f"\nthe {args.top} slowest ops (ms per step, shape, op name):")
        for name, t in by_op.most_common(args.top):
            print(f"{t:7.2f}  {name}  {info[name][0][:60]}  {info[name][1][-110:]}")
    if unmatched:
        print("\nunmatched device kernels (ms per step): " + ", ".join(
            f"{n} {t:.1f}" for n, t in unmatched.most_common(40)))
        print("(XLA:GPU ran the step as command buffers, CUDA graphs: a kernel of cuBLAS, cuDNN, CUB or Pallas then "
              "carries no HLO op name, and only fusions match by their own names)")


if __name__ == "__main__":
    main()
