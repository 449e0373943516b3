"""The stages after training, each skipped when its artifact is already up to date: what `make demo` runs.

train -> tasks.json (unpruned task losses) -> circuits/<task>/circuit.json for every solved task -> report.
Every stage reads the run through ``load_run``, so each can also be run alone from its own entry point.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from wsparse.config import Config, PruneConfig

Log = Callable[[str], None]


def is_trained(workdir: str, cfg: Config) -> bool:
    from wsparse import checkpoint

    ckpt_dir = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(ckpt_dir):
        return False
    c = checkpoint.Checkpointer(ckpt_dir, keep=cfg.train.keep_checkpoints)
    try:
        return c.latest_step() == cfg.train.steps
    finally:
        c.close()


def evaluate_tasks(run: Any, names: list[str] | None = None, *, n: int = 500, batch_size: int = 64,
                   log: Log = print) -> dict[str, dict]:
    """Unpruned test-split loss and accuracy of every task; writes ``RUN/tasks.json``."""
    from wsparse import tasks

    names = list(tasks.names()) if names is None else names
    t0 = time.perf_counter()
    results = tasks.evaluate(run.params, run.cfg.model, run.tokenizer, names, split="test", n=n,
                             batch_size=batch_size)
    log(f"evaluated {len(names)} tasks at step {run.step} in {time.perf_counter() - t0:.1f}s")
    with open(os.path.join(run.workdir, "tasks.json"), "w") as f:
        json.dump({"step": int(run.step), "split": "test", "tasks": results}, f, indent=2)
        f.write("\n")
    return results


def cached_task_results(run: Any, names: list[str] | None = None) -> dict[str, dict] | None:
    """``tasks.json`` if it scores every task in ``names`` (default: all registered) at the run's step."""
    from wsparse import tasks

    path = os.path.join(run.workdir, "tasks.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        saved = json.load(f)
    names = list(tasks.names()) if names is None else names
    if saved.get("step") != run.step or not set(names) <= set(saved.get("tasks", {})):
        return None
    return {name: saved["tasks"][name] for name in names}


def cached_circuit(run: Any, task: str, cfg: PruneConfig) -> dict | None:
    """The task's circuit.json if it was made from this checkpoint with this pruning config."""
    from wsparse import config as config_lib

    path = os.path.join(run.workdir, "circuits", task, "circuit.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rec = json.load(f)
    same = rec.get("checkpoint_step") == run.step and rec.get("prune_config") == config_lib.to_dict(cfg)
    return rec if same else None


def prune_solved(run: Any, results: dict[str, dict], cfg: PruneConfig, *, log: Log = print,
                 progress: bool = True) -> dict[str, dict]:
    """Prunes every task whose unpruned test loss meets the target; returns {task: circuit record}."""
    from tqdm import tqdm

    from wsparse.circuits import extract, means

    solved = [t for t, r in results.items() if r["loss"] <= cfg.target_loss]
    log(f"{len(solved)} of {len(results)} tasks meet the target loss {cfg.target_loss}: {', '.join(solved) or '-'}")
    records: dict[str, dict] = {}
    stats = None
    for task in solved:
        rec = cached_circuit(run, task, cfg)
        if rec is None:
            stats = stats or means.for_run(run, cfg, log=log)
            t0 = time.perf_counter()
            with tqdm(total=cfg.steps, desc=f"prune {task}", unit="step", leave=False, disable=not progress) as bar:
                rec = extract.prune_task(run, task, cfg, stats, progress=bar.update)
            log(f"pruned {task} in {time.perf_counter() - t0:.0f}s: "
                f"{rec.get('n_nodes')} nodes, {rec.get('n_edges', {}).get('total')} edges")
        records[task] = rec
    return records


def summary_table(results: dict[str, dict], circuits: dict[str, dict], target: float) -> str:
    """Task, unpruned loss and accuracy, and for solved tasks the circuit's size, loss and validation."""
    head = (f"{'task':<27}{'loss':>8}{'acc':>7}  {'nodes':>6}{'edges':>7}{'circuit loss':>13}"
            f"{'sufficient':>11}{'necessity +':>12}")
    rows = [head, "-" * len(head)]
    for task, r in results.items():
        c = circuits.get(task)
        row = f"{task:<27}{r['loss']:>8.3f}{r['accuracy']:>7.2f}  "
        if c is None:
            row += f"{'(unsolved: loss > ' + format(target, 'g') + ')':>49}"
        elif c.get("status") != "ok":
            row += f"{c.get('status', '?'):>49}"
        else:
            v = c["validation"]
            row += (f"{c['n_nodes']:>6}{c['n_edges']['total']:>7}{c['circuit_loss']['test']:>13.3f}"
                    f"{str(v['sufficiency']['meets_target']):>11}{v['necessity']['increase']:>12.3f}")
        rows.append(row)
    return "\n".join(rows)
