"""Evaluate a trained run on the tasks' test splits; prints a table and writes RUN/tasks.json.

    python -m experiments.eval_tasks --workdir=runs/demo [--tasks=for_while,var_swap] [--n=500]
"""

import os

from absl import flags

from wsparse import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (from experiments.train).", required=True)
_TASKS = flags.DEFINE_list("tasks", None, "Comma-separated task names (default: every registered task).")
_N = flags.DEFINE_integer("n", 500, "Test pairs per task.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sequences per jitted batch.")


def main(argv):
    del argv
    import wsparse
    from wsparse import tasks, workflow

    names = _TASKS.value or list(tasks.names())
    for name in names:
        tasks.get(name)  # unknown names fail before any work
    run = wsparse.load_run(_WORKDIR.value, _STEP.value)
    results = workflow.evaluate_tasks(run, names, n=_N.value, batch_size=_BATCH.value)
    print(tasks.format_table(results))
    print(os.path.join(run.workdir, "tasks.json"))


if __name__ == "__main__":
    cli.run(main)
