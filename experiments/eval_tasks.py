"""Evaluate a trained run on the tasks' test splits; prints a table and writes RUN/tasks.json.

    python -m experiments.eval_tasks --workdir=runs/demo [--tasks=for_while,var_swap] [--n=500]
"""

import json
import os
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (from experiments.train).", required=True)
_TASKS = flags.DEFINE_list("tasks", None, "Comma-separated task names (default: every registered task).")
_N = flags.DEFINE_integer("n", 500, "Test pairs per task.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sequences per jitted batch.")


def main(argv):
    del argv
    import wsparse
    from wsparse import tasks

    run = wsparse.load_run(_WORKDIR.value, _STEP.value)
    names = _TASKS.value or list(tasks.names())
    for name in names:
        tasks.get(name)  # unknown names fail before any work
    t0 = time.perf_counter()
    results = tasks.evaluate(run.params, run.cfg.model, run.tokenizer, names, split="test", n=_N.value,
                             batch_size=_BATCH.value)
    print(tasks.format_table(results))
    print(f"step {run.step}, {len(names)} tasks in {time.perf_counter() - t0:.1f}s")
    path = os.path.join(run.workdir, "tasks.json")
    with open(path, "w") as f:
        json.dump({"step": int(run.step), "split": "test", "tasks": results}, f, indent=2)
        f.write("\n")
    print(path)


if __name__ == "__main__":
    app.run(main)
