"""Data throughput at the demo config: reuse of a prepared cache, tokenisation MB/s (all cores), pipeline
batches/s, and the train step's rate.

    .venv/bin/python benchmarks/data.py [--cache_dir DIR]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from configs.demo import get_config  # noqa: E402
from wsparse import config as C  # noqa: E402
from wsparse import data  # noqa: E402
from wsparse.data import pipeline, tokenizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache_dir", default=None)
    ap.add_argument("--batches", type=int, default=3000)
    args = ap.parse_args()
    cd = get_config()
    if args.cache_dir:
        cd.data.cache_dir = args.cache_dir
    cfg = C.from_configdict(cd)
    t = time.perf_counter()
    prepared = data.prepare(cfg.data)
    print(f"prepare (build or reuse): {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    data.prepare(cfg.data, log=lambda _: None)
    print(f"prepare (reuse of a prepared cache, shards verified): {time.perf_counter() - t:.2f} s")

    tok = tokenizer.load(prepared.tokenizer_path)
    ids = np.asarray(prepared.train_tokens()[:3_000_000])
    cuts = np.flatnonzero(ids == tokenizer.eot_id(tok))
    texts = tok.decode_batch([ids[a + 1:b].tolist() for a, b in zip(cuts[:-1], cuts[1:])])
    n_bytes = sum(len(s.encode()) for s in texts)
    t = time.perf_counter()
    tok.encode_batch_fast(texts, add_special_tokens=False)
    dt = time.perf_counter() - t
    print(f"tokenization: {n_bytes / 1e6 / dt:.2f} MB/s ({n_bytes / 1e6:.1f} MB, {len(texts)} docs, "
          f"{os.cpu_count()} cores)")

    it = pipeline.train_iterator(prepared, n_ctx=cfg.model.n_ctx, global_batch=cfg.train.batch_size,
                                 seed=cfg.train.seed)
    next(it)
    t = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    dt = time.perf_counter() - t
    print(f"pipeline: {args.batches / dt:.0f} batches/s (batch {cfg.train.batch_size} x {cfg.model.n_ctx + 1})")

    # --- demo train step (consumer) --------------------------------------------------------------------------------
    from wsparse import train

    steps_per_s = train.measure_step_rate(cfg)
    print(f"demo train step: {steps_per_s:.1f} steps/s -> pipeline headroom {args.batches / dt / steps_per_s:.0f}x")


if __name__ == "__main__":
    main()
