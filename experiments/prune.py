"""Extract a circuit per task from a trained run (PAPER.md section 5).

    python -m experiments.prune --workdir=runs/demo --task=single_double_quote [--config=configs/prune.py:fast]
    python -m experiments.prune --workdir=runs/demo --task=all

Without --config the run's own `prune` config is used. Writes RUN/circuits/<task>/circuit.json and sweep.jsonl; node
means are cached in RUN/circuits/means_step<N>.npz.
"""

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Pruning config (configs/prune.py); default: the run's.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory made by experiments.train.", required=True)
_TASK = flags.DEFINE_string("task", "all", "A task name, a comma-separated list, or 'all'.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")


def main(argv):
    del argv
    import tqdm

    import wsparse
    from wsparse import config as config_lib
    from wsparse import tasks
    from wsparse.circuits import extract, means

    run = wsparse.load_run(_WORKDIR.value, _STEP.value)
    cfg = run.cfg.prune if _CONFIG.value is None else config_lib.from_configdict(_CONFIG.value,
                                                                                  config_lib.PruneConfig)
    stats = means.for_run(run, cfg)
    names = tasks.names() if _TASK.value == "all" else [t for t in _TASK.value.split(",") if t]
    failed = []
    for name in names:
        try:
            with tqdm.tqdm(total=cfg.steps, desc=name, unit="step", leave=False) as bar:
                rec = extract.prune_task(run, name, cfg, stats, progress=bar.update)
        except tasks.TaskError as e:  # a task this tokenizer cannot encode: say so, go on with the others
            failed.append(name)
            print(f"{name}: skipped: {e}")
            continue
        if rec["status"] != "ok":
            print(f"{name}: unsolved (unpruned test loss {rec['unpruned_loss']['test']:.3f} > {cfg.target_loss})")
            continue
        v, loss = rec["validation"], rec["circuit_loss"]
        print(f"{name}: {rec['n_nodes']} nodes, {rec['n_edges']['total']} edges; test loss {loss['test']:.3f} "
              f"(calibrated {loss['test_calibrated']:.3f}); necessity +{v['necessity']['increase']:.3f}; "
              f"random {v['random_controls'].get('mean', float('nan')):.3f}")
    print(f"{run.workdir}/circuits" + (f" ({len(failed)} task(s) skipped)" if failed else ""))


if __name__ == "__main__":
    app.run(main)
