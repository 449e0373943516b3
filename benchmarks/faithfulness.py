"""Time of the faithfulness card per control, against the extraction of the circuit it checks.

    .venv/bin/python benchmarks/faithfulness.py --workdir=runs/demo --task=var_if [--config=fast] [--controls=...]

Needs a trained run. Extracts the task's circuit once (cold: compiles included), then computes the card twice: the
first pass compiles, the second is warm. Prints seconds per control for both and the card's cost in extractions. The
run directory is not modified (the card is not written).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import prune as prune_config  # noqa: E402
from wsparse import config as C  # noqa: E402
from wsparse import tasks  # noqa: E402
from wsparse.circuits import extract, faithfulness, means  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--task", default="var_if")
    ap.add_argument("--config", default="fast", help="configs/prune.py variant(s), comma-separated")
    ap.add_argument("--controls", default=",".join(C.FAITHFULNESS_CONTROLS))
    args = ap.parse_args()
    logging.getLogger("absl").setLevel(logging.WARNING)
    import wsparse

    cfg = C.from_configdict(prune_config.get_config(args.config), C.PruneConfig)
    controls = tuple(c for c in args.controls.split(",") if c)
    run = wsparse.load_run(args.workdir)
    stats = means.for_run(run, cfg, log=lambda s: None)
    batches = extract.task_batches(run, args.task, cfg, shifted=True)
    t0 = time.perf_counter()
    rec, _ = extract.extract(run.params, run.cfg.model, cfg, stats, batches, task=args.task)
    t_extract = time.perf_counter() - t0
    if not rec.is_solved:
        raise SystemExit(f"{args.task}: {rec.message}")
    tokens = run.val_tokens(cfg.means_tokens, batch=means.MEANS_BATCH)
    kw = dict(pretrain_tokens=tokens, shift=tasks.get(args.task).shift_description, controls=controls)
    cards = [faithfulness.card(run.params, run.cfg.model, cfg, stats, batches, rec, **kw) for _ in range(2)]
    print(f"run {args.workdir} step {run.step}, task {args.task}, prune config {args.config!r}: circuit "
          f"{rec.n_nodes} nodes, {rec.edges_total} edges; extraction {t_extract:.1f} s (cold)")
    print(f"{'control':<20}{'cold s':>9}{'warm s':>9}{'x extraction':>14}  verdict")
    for name in controls:
        cold, warm = (c["seconds"][name] for c in cards)
        print(f"{name:<20}{cold:>9.1f}{warm:>9.1f}{warm / t_extract:>14.2f}  {cards[1]['verdicts'][name]}")
    cold, warm = (sum(c["seconds"].values()) for c in cards)
    print(f"{'card':<20}{cold:>9.1f}{warm:>9.1f}{warm / t_extract:>14.2f}")


if __name__ == "__main__":
    main()
