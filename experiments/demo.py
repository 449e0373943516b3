"""`make demo`: data -> weight-sparse training -> task evaluation -> circuits -> validation and the faithfulness
card's swapped_answers control -> HTML report.

    python -m experiments.demo [--config=configs/demo.py] [--workdir=runs/demo]

Every stage reuses what an earlier run of the same command finished.
"""

import logging
import time

from absl import flags

from wsparse import cli

_CONFIG = cli.define_config_file("config", "configs/demo.py", "Run config file (ml_collections).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Run directory.")


def main(argv):
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
    from wsparse import config as config_lib
    from wsparse import load_run, runs, train, workflow
    from wsparse.report import write_report

    t_start = time.perf_counter()
    cfg = config_lib.from_configdict(_CONFIG.value)
    workdir = _WORKDIR.value

    def stage(name):
        print(f"\n== {name} ({time.perf_counter() - t_start:.0f}s elapsed)", flush=True)

    stage("data and training")
    # A run of another config in the workdir fails here, before any work (RunMismatch); a partial one resumes.
    if runs.trained_state(workdir, cfg) == "done":
        print(f"{workdir} is trained to step {cfg.train.steps}: reusing it")
    else:
        result = train.train(cfg, workdir)
        if result.stopped_early:
            print("interrupted: re-run the same command to resume")
            return 1
        eval_loss = "-" if result.final_eval_loss is None else f"{result.final_eval_loss:.3f}"
        print(f"train loss {result.final_loss:.3f}, eval loss {eval_loss}")
    run = load_run(workdir)

    stage("tasks")
    results = workflow.cached_task_results(run)
    if results is None:
        results = workflow.evaluate_tasks(run)
    else:
        print("tasks.json is up to date: reusing it")

    stage("circuits")
    circuits = workflow.prune_solved(run, results, cfg.prune)

    stage("faithfulness card")
    solved = [t for t, c in circuits.items() if c.is_solved]
    cards = workflow.faithfulness_cards(run, solved, cfg.prune)

    stage("report")
    path = write_report(workdir, **workflow.report_inputs(run))

    print(f"\n== summary ({time.perf_counter() - t_start:.0f}s)")
    print(workflow.data_and_loss_summary(run))
    print(workflow.summary_table(results, circuits, cfg.prune.target_loss))
    for task, rec in cards.items():
        print(workflow.describe_card(task, rec.validation.controls))
    print(f"\nreport: {path}")


if __name__ == "__main__":
    cli.run(main)
