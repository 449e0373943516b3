"""Time to a circuit per task with a run's own pruning budget (the demo's `fast`), cold and warm, with a phase table;
optionally side by side with an older revision of the mask loop in the same process.

    .venv/bin/python benchmarks/prune_tasks.py --workdir=runs/demo --tasks=var_if,while_return_true \\
        [--config=fast] [--before=5c8d1d4] [--rounds=2]

Each task's extraction (``wsparse.circuits.extract.extract``: unpruned check, mask training, bisection, calibration,
validation, attribution baseline, edges) is timed end to end. The first round is cold (it compiles); later rounds
reuse the compiled programs, as the workflow does from the second task on. With ``--before=REV`` the same tasks are
extracted by the whole ``wsparse`` package as it was at git revision REV (imported as ``wsparse_before``: its model,
AbsTopK, masks and extraction), the two interleaved task by task, so a busy shared machine slows both alike. The node
means are read from the run's cache (``circuits/means_step<N>.npz``, never written here).
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import importlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import wsparse  # noqa: E402
from configs import prune as prune_config  # noqa: E402
from wsparse import config as C  # noqa: E402
from wsparse import tasks  # noqa: E402
from wsparse.circuits import means  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_from_rev(rev: str, name: str = "wsparse_before"):
    """The ``wsparse`` package as it was at git revision ``rev``, imported as ``name`` (its own imports rewired), so
    both versions run side by side in one process."""
    root = tempfile.mkdtemp(prefix="wsparse_rev_")
    archive = subprocess.run(["git", "archive", rev, "wsparse"], cwd=ROOT, check=True, capture_output=True).stdout
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(root, **safe)
    os.rename(os.path.join(root, "wsparse"), os.path.join(root, name))
    for path in glob.glob(os.path.join(root, name, "**", "*.py"), recursive=True):
        src = open(path).read()
        open(path, "w").write(re.sub(r"\b(from|import) wsparse\b", rf"\1 {name}", src))
    sys.path.insert(0, root)
    return importlib.import_module(name)


class Phases:
    """Wall time per Pruner method and host stage (nested calls are counted in both: loss includes its diffs)."""

    def __init__(self):
        self.t = collections.Counter()

    def wrap(self, obj, attr: str, label: str) -> None:
        f = getattr(obj, attr)

        @functools.wraps(f)
        def timed(*a, **k):
            t0 = time.perf_counter()
            out = f(*a, **k)
            jax.block_until_ready(out)
            self.t[label] += time.perf_counter() - t0
            return out

        setattr(obj, attr, timed)


def variant(label: str, package, run, prune_variant: str):
    """(label, extract module, phase timer, model config, prune config) of one ``wsparse`` package, the configs built
    with the package's own config classes."""
    prune_mod = importlib.import_module(f"{package.__name__}.circuits.prune")
    extract_mod = importlib.import_module(f"{package.__name__}.circuits.extract")
    ph = Phases()
    for attr in ("train", "bisect", "loss", "diffs"):
        ph.wrap(prune_mod.Pruner, attr, attr)
    ph.wrap(extract_mod, "calibrate", "calibrate")
    config = importlib.import_module(f"{package.__name__}.config")
    model_cfg = config.from_configdict(C.to_dict(run.cfg)).model
    prune_cfg = config.from_configdict(prune_config.get_config(prune_variant), config.PruneConfig)
    return label, extract_mod, ph, model_cfg, prune_cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tasks", default="var_if,while_return_true")
    ap.add_argument("--config", default="fast", help="configs/prune.py variant")
    ap.add_argument("--before", default=None, help="git revision of the mask loop to compare against")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    run = wsparse.load_run(args.workdir)
    pcfg = C.from_configdict(prune_config.get_config(args.config), C.PruneConfig)
    stats = means.load(means.cache_path(run.workdir, run.step))
    variants = [variant("now", wsparse, run, args.config)]
    if args.before:
        variants.insert(0, variant(f"before ({args.before})", package_from_rev(args.before), run, args.config))
    names = [t for t in args.tasks.split(",") if t]
    sizes = {"train": pcfg.n_train_pairs, "val": pcfg.n_val_pairs, "test": pcfg.n_test_pairs}
    batches = {n: {s: tasks.encode(tasks.get(n), run.tokenizer, s, k, run.cfg.model.n_ctx, seed=pcfg.seed)
                   for s, k in sizes.items()} for n in names}
    print(f"run {args.workdir} step {run.step}; prune config {args.config!r}; {jax.devices()[0].platform}, "
          f"{os.cpu_count()} cores; tasks {names}", flush=True)
    results = collections.defaultdict(list)
    for r in range(args.rounds):
        for name in names:
            for label, ex, ph, mcfg, own_pcfg in variants:
                ph.t.clear()
                t0 = time.perf_counter()
                rec, _ = ex.extract(run.params, mcfg, own_pcfg, stats, batches[name], task=name)
                dt = time.perf_counter() - t0
                kind = "cold" if r == 0 and name == names[0] else "warm"
                results[(label, kind)].append(dt)
                loss = rec.circuit_loss.get("test") if rec.circuit_loss else None
                phases = " ".join(f"{k} {v:.1f}" for k, v in ph.t.most_common())
                print(f"[{label}] {name} ({kind}): {dt:6.1f}s  status {rec.status}, nodes {rec.n_nodes}, "
                      f"test loss {loss}  | {phases}", flush=True)
    print("\nseconds per task (median):")
    for (label, kind), v in results.items():
        v = sorted(v)
        print(f"  {label:24s} {kind}: {v[len(v) // 2]:6.1f}s  over {len(v)} (min {v[0]:.1f}s)")


if __name__ == "__main__":
    main()
