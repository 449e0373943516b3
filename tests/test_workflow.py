"""The demo's stage bookkeeping: which artifacts are reused, and the summary table."""

import json
import types

from wsparse import config as config_lib
from wsparse import tasks, workflow


def _run(tmp_path, step=10):
    return types.SimpleNamespace(workdir=str(tmp_path), step=step)


def _write_tasks(tmp_path, step, names):
    results = {n: {"loss": 0.1, "accuracy": 0.9, "n": 5} for n in names}
    (tmp_path / "tasks.json").write_text(json.dumps({"step": step, "split": "test", "tasks": results}))


def test_task_results_are_reused_only_when_complete_and_current(tmp_path):
    run = _run(tmp_path)
    assert workflow.cached_task_results(run) is None
    _write_tasks(tmp_path, 10, tasks.names()[:2])
    assert workflow.cached_task_results(run) is None  # partial: another command scored two tasks
    assert set(workflow.cached_task_results(run, list(tasks.names()[:2]))) == set(tasks.names()[:2])
    _write_tasks(tmp_path, 9, tasks.names())
    assert workflow.cached_task_results(run) is None  # an older checkpoint
    _write_tasks(tmp_path, 10, tasks.names())
    assert list(workflow.cached_task_results(run)) == list(tasks.names())


def test_circuit_is_reused_only_for_the_same_step_and_prune_config(tmp_path):
    run, cfg = _run(tmp_path), config_lib.PruneConfig()
    out = tmp_path / "circuits" / "for_while"
    out.mkdir(parents=True)
    rec = {"status": "ok", "checkpoint_step": 10, "prune_config": config_lib.to_dict(cfg)}
    (out / "circuit.json").write_text(json.dumps(rec))
    assert workflow.cached_circuit(run, "for_while", cfg) == rec
    assert workflow.cached_circuit(run, "for_while", config_lib.PruneConfig(steps=7)) is None
    assert workflow.cached_circuit(_run(tmp_path, step=11), "for_while", cfg) is None


def test_summary_table_rows():
    results = {"for_while": {"loss": 0.05, "accuracy": 1.0}, "var_swap": {"loss": 0.9, "accuracy": 0.5}}
    circuits = {"for_while": {"status": "ok", "n_nodes": 12, "n_edges": {"total": 9}, "circuit_loss": {"test": 0.14},
                              "validation": {"sufficiency": {"meets_target": True}, "necessity": {"increase": 2.5}}}}
    lines = workflow.summary_table(results, circuits, 0.15).splitlines()
    assert lines[2].split() == ["for_while", "0.050", "1.00", "12", "9", "0.140", "True", "2.500"]
    assert lines[3].startswith("var_swap") and "unsolved" in lines[3]
