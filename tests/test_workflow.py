"""The demo's stage bookkeeping: which artifacts are reused, the per-task prune loop, and the summary table."""

import json
import types

import pytest

from wsparse import config as config_lib
from wsparse import tasks, workflow
from wsparse.circuits import extract, means, record
from wsparse.circuits.record import CircuitRecord


def _run(tmp_path, step=10):
    return types.SimpleNamespace(workdir=str(tmp_path), step=step)


def _write_tasks(tmp_path, step, names):
    results = {n: {"loss": 0.1, "accuracy": 0.9, "n": 5} for n in names}
    (tmp_path / "tasks.json").write_text(json.dumps({"step": step, "split": "test", "tasks": results}))


def _record(task="for_while", step=10, prune_config=None, **circuit):
    """An unsolved record, or a solved one when ``circuit`` has the circuit fields."""
    base = dict(task=task, status="unsolved", target_loss=0.15, unpruned_loss={"train": 0.5, "test": 0.6},
                ablation="mean", n_model_nodes=100, n_train_pairs=8, n_test_pairs=8, message="too hard",
                checkpoint_step=step, prune_config=prune_config)
    if circuit:
        base |= dict(status="ok", message=None, k_units=3, calibration=record.Calibration(a=1.0, b=0.0, steps=16),
                     hyperparameters={}) | circuit
    return CircuitRecord(**base)


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


def test_circuit_is_reused_only_for_the_same_step_prune_config_and_schema(tmp_path):
    run, cfg = _run(tmp_path), config_lib.PruneConfig()
    rec = _record(prune_config=config_lib.to_dict(cfg))
    path = record.path_for(str(tmp_path), "for_while")
    record.save(rec, path)
    assert workflow.cached_circuit(run, "for_while", cfg) == rec
    assert workflow.cached_circuit(run, "for_while", config_lib.PruneConfig(steps=7)) is None
    assert workflow.cached_circuit(_run(tmp_path, step=11), "for_while", cfg) is None
    raw = json.loads(open(path).read())
    raw["schema_version"] = 0  # an artifact of an older wsparse: extracted again, and the log says why
    with open(path, "w") as f:
        json.dump(raw, f)
    messages = []
    assert workflow.cached_circuit(run, "for_while", cfg, log=messages.append) is None
    assert "schema_version 0" in messages[0]


def _no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before every task name was checked")

    monkeypatch.setattr(means, "for_run", forbidden)
    monkeypatch.setattr(extract, "prune_task", forbidden)
    monkeypatch.setattr("wsparse.load_run", forbidden)


def test_prune_loop_rejects_an_unknown_task_before_any_work(tmp_path, monkeypatch):
    _no_work(monkeypatch)
    with pytest.raises(tasks.TaskError, match="unknown task 'nope'"):
        workflow.prune_tasks(_run(tmp_path), ["for_while", "nope"], config_lib.PruneConfig(), log=print)
    with pytest.raises(tasks.TaskError, match="unknown task 'nope'"):
        workflow.resolve_tasks("for_while,nope")
    with pytest.raises(tasks.TaskError, match="no task"):
        workflow.resolve_tasks(" , ")
    assert workflow.resolve_tasks("all") == list(tasks.names())
    assert workflow.resolve_tasks("var_swap, for_while") == ["var_swap", "for_while"]


def test_experiments_prune_with_a_typo_fails_before_loading_anything(tmp_path, monkeypatch):
    from absl import flags

    from experiments import prune as prune_main

    _no_work(monkeypatch)
    flags.FLAGS(["prune", f"--workdir={tmp_path}", "--task=for_whlie"])
    try:
        with pytest.raises(tasks.TaskError, match="unknown task 'for_whlie'"):
            prune_main.main([])
    finally:
        flags.FLAGS.unparse_flags()


def test_prune_loop_reuses_up_to_date_circuits_and_prunes_the_rest(tmp_path, monkeypatch):
    cfg = config_lib.PruneConfig(steps=3)
    run = _run(tmp_path)
    kept = _record("for_while", prune_config=config_lib.to_dict(cfg))
    record.save(kept, record.path_for(str(tmp_path), "for_while"))
    record.save(_record("var_swap", step=9, prune_config=config_lib.to_dict(cfg)),
                record.path_for(str(tmp_path), "var_swap"))  # an older checkpoint's: pruned again
    calls = []
    monkeypatch.setattr(means, "for_run", lambda run, cfg, log: calls.append("means") or "stats")

    def fake_prune(run, task, cfg, stats, progress):
        calls.append((task, stats))
        progress(cfg.steps)
        return _record(task)

    monkeypatch.setattr(extract, "prune_task", fake_prune)
    messages = []
    out = workflow.prune_tasks(run, ["for_while", "var_swap", "with_as"], cfg, log=messages.append, progress=False)
    assert calls == ["means", ("var_swap", "stats"), ("with_as", "stats")]  # means once, only when needed
    assert out["for_while"] == kept and list(out) == ["for_while", "var_swap", "with_as"]
    assert messages[0].startswith("for_while: reusing circuit.json")
    calls.clear()
    workflow.prune_tasks(run, ["for_while"], cfg, reuse=False, log=messages.append, progress=False)
    assert calls == ["means", ("for_while", "stats")]


def test_summary_table_rows():
    results = {"for_while": {"loss": 0.05, "accuracy": 1.0}, "var_swap": {"loss": 0.9, "accuracy": 0.5},
               "with_as": {"loss": 0.12, "accuracy": 0.9}}
    validation = record.Validation(sufficiency=record.Sufficiency(loss=0.14, meets_target=True),
                                   necessity=record.Necessity(loss=2.55, increase=2.5),
                                   random_controls=record.RandomControls(n=0))
    circuits = {"for_while": _record(nodes={"0.mlp.post_act": [1, 2]}, n_nodes=12, edges=[],
                                     n_edges={"total": 9}, circuit_loss={"train": 0.1, "test": 0.14},
                                     validation=validation),
                "with_as": _record("with_as")}
    lines = workflow.summary_table(results, circuits, 0.15).splitlines()
    assert lines[2].split() == ["for_while", "0.050", "1.00", "12", "9", "0.140", "True", "2.500"]
    assert lines[3].startswith("var_swap") and "(unsolved: loss > 0.15)" in lines[3]
    assert lines[4].split() == ["with_as", "0.120", "0.90", "unsolved"]


def _solved(task, step=10, prune_config=None, controls=None):
    validation = record.Validation(sufficiency=record.Sufficiency(loss=0.1, meets_target=True),
                                   necessity=record.Necessity(loss=2.0, increase=1.9),
                                   random_controls=record.RandomControls(n=0), controls=controls)
    return _record(task, step=step, prune_config=prune_config, nodes={"0.mlp.post_act": [1]}, n_nodes=1, edges=[],
                   n_edges={"total": 0}, circuit_loss={"train": 0.1, "test": 0.1}, validation=validation)


def test_faithfulness_cards_use_the_circuits_budget_reuse_current_cards_and_skip_tasks_without_circuits(
        tmp_path, monkeypatch):
    from wsparse.circuits import faithfulness

    run = _run(tmp_path)
    circuit_cfg = config_lib.PruneConfig(steps=7, n_test_pairs=5)
    asked = config_lib.PruneConfig(faithfulness=config_lib.FaithfulnessConfig(controls=("seeds",), n_seeds=3))
    record.save(_solved("for_while", prune_config=config_lib.to_dict(circuit_cfg)),
                record.path_for(str(tmp_path), "for_while"))
    record.save(_record("var_swap"), record.path_for(str(tmp_path), "var_swap"))  # unsolved: nothing to check
    calls = []
    monkeypatch.setattr(means, "for_run", lambda run, cfg, log: "stats")
    monkeypatch.setattr(extract, "task_batches", lambda run, task, cfg, shifted: {"test": task})

    def fake_card(params, model_cfg, cfg, stats, batches, rec, **kw):
        calls.append((rec.task, cfg.steps, cfg.n_test_pairs, cfg.faithfulness.n_seeds, kw["controls"]))
        return {"card_version": 1, "budget": faithfulness.budget(cfg), "seconds": {"seeds": 1.0},
                "verdicts": {"seeds": "pass"}, "flags": [], "seeds": {"verdict": "pass", "summary": "s"}}

    monkeypatch.setattr(faithfulness, "card", fake_card)
    run.params, run.cfg = None, types.SimpleNamespace(model=None)
    messages = []
    out = workflow.faithfulness_cards(run, ["for_while", "var_swap", "with_as"], asked, log=messages.append)
    # The circuit's own pruning budget (steps 7, 5 test pairs) with the asked card settings (3 seeds).
    assert calls == [("for_while", 7, 5, 3, ("seeds",))] and list(out) == ["for_while"]
    assert record.load(record.path_for(str(tmp_path), "for_while")).validation.controls["verdicts"] == {
        "seeds": "pass"}
    assert any(m.startswith("var_swap: no circuit") for m in messages)
    assert any(m.startswith("with_as: no circuit") for m in messages)
    calls.clear()
    workflow.faithfulness_cards(run, ["for_while"], asked, log=messages.append)
    assert calls == []  # the card is current: reused
    other = config_lib.PruneConfig(faithfulness=config_lib.FaithfulnessConfig(controls=("seeds",), n_seeds=4))
    workflow.faithfulness_cards(run, ["for_while"], other, log=messages.append)
    assert [c[3] for c in calls] == [4]  # another budget: computed again
    assert "seeds" in workflow.describe_card("for_while", out["for_while"].validation.controls)

