"""XLA:CPU compiler options on the train step, and single ops against PyTorch, all in one process, interleaved.

    .venv/bin/python benchmarks/xla_options.py [--rounds=4] [--no-step] [--no-ops] [--kinds=dense,sparse]

Step: the issue-13 shape's dense and sparse steps compiled with ``compiler_options`` (YNNPACK fusion kinds, XNNPACK
dots, oneDNN) and timed in turn. Ops: the dense step's matmuls (forward and both transposed backward products), the
unembedding, exact GELU and a softmax, in JAX and in PyTorch (1 thread, its faster setting on a shared machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.train_step import build, interleaved, load_config  # noqa: E402

OPTIONS = {
    "default": {},
    "no YNNPACK fusions": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "YNNPACK dots only": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "YNNPACK individual dots": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
    "XNNPACK dots": {"xla_cpu_experimental_ynn_fusion_type": "",
                     "xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "oneDNN": {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_use_onednn": True},
}


def steps(rounds: int, kinds: tuple[str, ...]) -> None:
    rep = dataclasses.replace
    base = load_config("configs/demo.py")
    base = rep(base, model=rep(base.model, attn_sink=False, bigram_table=False),
               train=rep(base.train, batch_size=64))
    dense = rep(base, model=rep(base.model, afrac=1.0), sparsity=rep(base.sparsity, enabled=False))
    batch = jax.random.randint(jax.random.key(1), (64, 65), 0, base.model.vocab_size, jnp.int32)
    fns = {}
    for kind, cfg in [(k, c) for k, c in (("dense", dense), ("sparse", base)) if k in kinds]:
        for name, opts in OPTIONS.items():
            step, state = build(cfg, cfg.train.steps - 50)
            try:
                compiled = step.lower(state, batch).compile(compiler_options=opts)
            except Exception as e:  # an option this jaxlib does not know
                print(f"{kind} {name}: {str(e)[:120]}")
                continue
            box = [state]

            def one(c=compiled, box=box) -> None:
                box[0], _ = c(box[0], batch)
                jax.block_until_ready(box[0])

            fns[f"{kind} step, {name}"] = one
    for name, s in interleaved(fns, rounds).items():
        print(f"{name:40s} {s * 1e3:8.0f} ms")


def ops(rounds: int) -> None:
    import torch

    torch.set_num_threads(1)
    r = lambda *s: jax.random.normal(jax.random.key(0), s, jnp.float32)
    x, w, g, s4, xm, wl = r(4096, 512), r(512, 128), r(4096, 128), r(64, 8, 64, 64), r(4096, 128), r(2048, 128)
    tx, tw, tg, ts4, txm, twl = (torch.from_numpy(np.array(a)) for a in (x, w, g, s4, xm, wl))

    def jx(f, *a):
        c = jax.jit(f)
        return lambda: jax.block_until_ready(c(*a))

    fns = {
        "jax   x @ w   [4096,512]x[512,128]": jx(lambda x, w: x @ w, x, w), "torch x @ w": lambda: tx @ tw,
        "jax   g @ w.T (backward dx)": jx(lambda g, w: g @ w.T, g, w), "torch g @ w.T": lambda: tg @ tw.T,
        "jax   x.T @ g (backward dw)": jx(lambda x, g: x.T @ g, x, g), "torch x.T @ g": lambda: tx.T @ tg,
        "jax   unembedding [4096,128]x[128,2048]": jx(lambda a, b: a @ b.T, xm, wl),
        "torch unembedding": lambda: txm @ twl.T,
        "jax   exact GELU [4096,512]": jx(lambda x: jax.nn.gelu(x, approximate=False), x),
        "torch exact GELU": lambda: torch.nn.functional.gelu(tx),
        "jax   softmax [64,8,64,64]": jx(lambda s: jax.nn.softmax(s, -1), s4),
        "torch softmax": lambda: torch.softmax(ts4, -1),
    }
    for name, s in interleaved(fns, rounds).items():
        print(f"{name:40s} {s * 1e3:8.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--no-step", action="store_true")
    ap.add_argument("--no-ops", action="store_true")
    ap.add_argument("--kinds", default="dense,sparse", help="which steps to compile with each option")
    args = ap.parse_args()
    if not args.no_ops:
        ops(args.rounds * 2)
    if not args.no_step:
        steps(args.rounds, tuple(args.kinds.split(",")))


if __name__ == "__main__":
    main()
