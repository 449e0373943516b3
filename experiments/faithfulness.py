"""The faithfulness card of each circuit (docs/method.md section 6): controls that test whether a circuit shows how
the model does the task, or only how a mask can make it.

    python -m experiments.faithfulness --workdir=runs/demo [--task=NAME|all] [--config=configs/prune.py:VARIANT]
    python -m experiments.faithfulness --workdir=runs/demo --controls=swapped_answers,seeds [--force]

Checks every task with a circuit (extract them first with experiments.prune) and writes the card into its
circuit.json under validation.controls; the report shows it. The controls that prune again use the circuit's own
pruning budget; --config (default: the run's prune config) gives the card's thresholds, and its controls when
given (without it, all six run). Re-running reuses a card of the same settings that holds every asked control.
"""

import logging

from absl import flags

from wsparse import cli

_CONFIG = cli.define_config_file("config", None, "Pruning config (configs/prune.py); default: the run's.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with extracted circuits.", required=True)
_TASK = flags.DEFINE_string("task", "all", "A task name, a comma-separated list, or 'all'.")
_CONTROLS = flags.DEFINE_list("controls", None, "Controls to run (default: --config's, or all six without it).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_FORCE = flags.DEFINE_bool("force", False, "Compute the card again even where it is up to date.")


def main(argv):
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every restore at INFO
    import wsparse
    from wsparse import config as config_lib
    from wsparse import workflow

    names = workflow.resolve_tasks(_TASK.value)  # before any work: a typo fails here
    cfg = None if _CONFIG.value is None else config_lib.from_configdict(_CONFIG.value, config_lib.PruneConfig)
    # --controls, else the --config's, else all six (a run's own config may hold the demo's cheap selection).
    controls = config_lib.FAITHFULNESS_CONTROLS if cfg is None else None
    if _CONTROLS.value:
        fc = config_lib.FaithfulnessConfig(controls=tuple(_CONTROLS.value))
        fc.validate()  # an unknown control fails here
        controls = fc.controls
    run = wsparse.load_run(_WORKDIR.value, _STEP.value)
    if _TASK.value == "all":
        names = [n for n in names if workflow.has_circuit(run, n)]
    cards = workflow.faithfulness_cards(run, names, cfg or run.cfg.prune, controls=controls, reuse=not _FORCE.value)
    for task, rec in cards.items():
        print(workflow.describe_card(task, rec.validation.controls))


if __name__ == "__main__":
    cli.run(main)
