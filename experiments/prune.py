"""Extract a circuit per task from a trained run (docs/method.md section 5).

    python -m experiments.prune --workdir=runs/demo --task=single_double_quote [--config=configs/prune.py:fast]
    python -m experiments.prune --workdir=runs/demo --task=all [--force]

Without --config the run's own `prune` config is used. Writes RUN/circuits/<task>/circuit.json and sweep.jsonl (a
circuit.json made from the same checkpoint and config is reused unless --force); node means are cached in
RUN/circuits/means_step<N>.npz. Every task name is checked before anything is loaded: an unknown one raises TaskError.
"""

from absl import flags

from wsparse import cli

_CONFIG = cli.define_config_file("config", None, "Pruning config (configs/prune.py); default: the run's.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory made by experiments.train.", required=True)
_TASK = flags.DEFINE_string("task", "all", "A task name, a comma-separated list, or 'all'.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_FORCE = flags.DEFINE_bool("force", False, "Extract again even where circuit.json is up to date.")


def main(argv):
    del argv
    import wsparse
    from wsparse import config as config_lib
    from wsparse import workflow

    names = workflow.resolve_tasks(_TASK.value)  # before any work: a typo fails here
    run = wsparse.load_run(_WORKDIR.value, _STEP.value)
    cfg = run.cfg.prune if _CONFIG.value is None else config_lib.from_configdict(_CONFIG.value,
                                                                                  config_lib.PruneConfig)
    workflow.prune_tasks(run, names, cfg, reuse=not _FORCE.value)
    print(f"{run.workdir}/circuits")


if __name__ == "__main__":
    cli.run(main)
