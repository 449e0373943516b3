"""Time to a circuit, and a vmapped sweep of S settings against S sequential runs of one setting.

    .venv/bin/python benchmarks/prune.py [--workdir=RUN] [--task=single_double_quote] [--steps=20] [--rounds=2] \
        [--before=REV] [--skip-sequential] [--skip-extract]

With a trained run (--workdir) it prunes a real task; without one it uses the demo config's model at random init
and a synthetic task batch of the same shape (timing only: such a model solves nothing, so the target is raised
above its loss). Mask-training times are warm (compiled beforehand), median of --rounds interleaved rounds; the full
pipeline time (means, training, bisection, calibration, validation, edges) is cold, compiles included. With
``--before=REV`` the mask loop of the whole package at git revision REV (``prune_tasks.package_from_rev``) is timed
beside today's, interleaved.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import demo as demo_config  # noqa: E402
from configs import prune as prune_config  # noqa: E402
from wsparse import config as C  # noqa: E402
from wsparse import model, tasks  # noqa: E402
from wsparse.circuits import means, prune  # noqa: E402
from wsparse.circuits.extract import extract  # noqa: E402


def synthetic_batch(cfg: C.ModelConfig, n: int, length: int, seed: int) -> tasks.TaskBatch:
    rng = np.random.default_rng(seed)
    toks = np.zeros((2 * n, cfg.n_ctx), np.int32)
    toks[:, :length] = rng.integers(0, cfg.vocab_size, (2 * n, length))
    toks[n:, 1:length] = toks[:n, 1:length]  # pairs differ only in their first token
    t, a = rng.integers(0, cfg.vocab_size, (2, n))
    return tasks.TaskBatch(toks, np.full(2 * n, length - 1, np.int32), np.concatenate([t, a]).astype(np.int32),
                           np.concatenate([a, t]).astype(np.int32))


def timed(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--task", default="single_double_quote")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--length", type=int, default=48, help="synthetic sequence length (no --workdir)")
    ap.add_argument("--train-pairs", type=int, default=256)
    ap.add_argument("--test-pairs", type=int, default=128)
    ap.add_argument("--before", default=None, help="git revision of the mask loop to time side by side")
    ap.add_argument("--skip-sequential", action="store_true", help="skip the S sequential one-setting runs")
    ap.add_argument("--skip-extract", action="store_true", help="stop after the mask-training timings")
    args = ap.parse_args()

    pcfg = C.from_configdict(prune_config.get_config(""), C.PruneConfig)
    pcfg = dataclasses.replace(pcfg, steps=args.steps, chunk_steps=args.steps, n_random_controls=2,
                               n_train_pairs=args.train_pairs, n_val_pairs=args.test_pairs,
                               n_test_pairs=args.test_pairs, means_tokens=16384)
    if args.workdir:
        import wsparse

        run = wsparse.load_run(args.workdir)
        mcfg, params = run.cfg.model, run.params
        stats = means.for_run(run, pcfg)
        sizes = {"train": pcfg.n_train_pairs, "val": pcfg.n_val_pairs, "test": pcfg.n_test_pairs}
        batches = {split: tasks.encode(args.task, run.tokenizer, split, n, mcfg.n_ctx, seed=0)
                   for split, n in sizes.items()}
        what = f"run {args.workdir} step {run.step}, task {args.task}"
    else:
        mcfg = C.from_configdict(demo_config.get_config("")).model
        params = model.init_params(mcfg, jax.random.key(0))
        pre = np.random.default_rng(0).integers(0, mcfg.vocab_size, (pcfg.means_tokens // (8 * mcfg.n_ctx), 8,
                                                                      mcfg.n_ctx))
        t_means = time.perf_counter()
        stats = means.compute(params, mcfg, pre, n_bank=pcfg.resample_bank)
        t_means = time.perf_counter() - t_means
        batches = {"train": synthetic_batch(mcfg, pcfg.n_train_pairs, args.length, 1),
                   "val": synthetic_batch(mcfg, pcfg.n_val_pairs, args.length, 2),
                   "test": synthetic_batch(mcfg, pcfg.n_test_pairs, args.length, 3)}
        what = (f"demo-config model at RANDOM INIT (no trained run given), synthetic task of {args.length} tokens; "
                f"means over {pre.size} tokens took {t_means:.1f}s cold")
    pr = prune.Pruner(params, mcfg, pcfg, stats)
    full = np.ones((1, pr.layout.n_nodes), np.float32)
    unpruned = max(float(pr.loss(full, pr.pad(batches[split]))[0]) for split in ("val", "test"))
    if unpruned > pcfg.target_loss:
        pcfg = dataclasses.replace(pcfg, target_loss=unpruned + 0.05)
        what += f"; target raised to {pcfg.target_loss:.3f} (unpruned loss {unpruned:.3f})"
    print(what)
    print(f"devices: {jax.devices()}; nodes {pr.layout.n_nodes}; batch {pcfg.batch_pairs} pairs; steps {args.steps}")

    pairs = prune.pairs_from_batch(batches["train"])
    settings = prune.settings_grid(pcfg)
    S = len(settings["seed"])
    one = [prune.take_setting(settings, i) for i in range(S)]
    pruners = {"now": pr}
    if args.before:  # the whole package of an older revision: its model, AbsTopK, masks and mask loop
        from benchmarks.prune_tasks import package_from_rev
        old = package_from_rev(args.before)
        old_config = importlib.import_module(f"{old.__name__}.config")
        old_mcfg = old_config.from_configdict(C.to_dict(mcfg), old_config.ModelConfig)
        old_pcfg = old_config.from_configdict(C.to_dict(pcfg), old_config.PruneConfig)
        old_pruner = importlib.import_module(f"{old.__name__}.circuits.prune").Pruner(params, old_mcfg, old_pcfg, stats)
        pruners = {f"before ({args.before})": old_pruner, **pruners}
    times = {(v, kind): [] for v in pruners for kind in ("one", "sweep", "seq")}
    for p in pruners.values():
        p.train(one[0], pairs), p.train(settings, pairs)  # compile S = 1 and S = 8
    for _ in range(args.rounds):  # interleaved: a busy machine slows every variant alike
        for v, p in pruners.items():
            times[(v, "one")].append(timed(lambda: p.train(one[0], pairs)[0]))
            times[(v, "sweep")].append(timed(lambda: p.train(settings, pairs)[0]))
            if not args.skip_sequential:
                times[(v, "seq")].append(sum(timed(lambda: p.train(s, pairs)[0]) for s in one))
    print(f"mask training, {args.steps} steps (warm, median of {args.rounds} interleaved rounds):")
    for v in pruners:
        one_s, sweep_s = np.median(times[(v, "one")]), np.median(times[(v, "sweep")])
        print(f"  [{v}] one setting:          {one_s:.2f}s  ({1e3 * one_s / args.steps:.0f} ms/step)")
        print(f"  [{v}] vmapped sweep of {S}:   {sweep_s:.2f}s  = {sweep_s / one_s:.2f}x one run")
        if times[(v, "seq")]:
            seq_s = np.median(times[(v, "seq")])
            print(f"  [{v}] {S} sequential runs:    {seq_s:.2f}s  = {seq_s / one_s:.2f}x one run; "
                  f"sweep speedup {seq_s / sweep_s:.2f}x")
    one_s, sweep_s = np.median(times[("now", "one")]), np.median(times[("now", "sweep")])
    if args.skip_extract:
        return
    t0 = time.perf_counter()
    record, rows = extract(params, mcfg, pcfg, stats, batches, task=args.task)
    t_extract = time.perf_counter() - t0
    print(f"time to a circuit (full pipeline, sweep of {len(rows)} settings x {args.steps} steps; training "
          f"compiled above, everything else compiled here): "
          f"{t_extract:.1f}s -> {record.n_nodes} nodes, {record.edges_total} edges, "
          f"test loss {record.circuit_loss['test']:.3f}")

    rest = t_extract - sweep_s
    print(f"extrapolated time to a circuit at the default {C.PruneConfig.steps} steps: "
          f"{sweep_s / args.steps * C.PruneConfig.steps + rest:.0f}s (sweep of {S}); "
          f"{one_s / args.steps * C.PruneConfig.steps + rest:.0f}s (one setting)")


if __name__ == "__main__":
    main()
