"""A member's stages, each skipped when its artifact is done: lr sweep -> train -> tasks.json -> circuits; then, for
the loss-matched pair, circuits at the Figure 2 targets. Every stage is the repository's own (train.train,
workflow.evaluate_tasks, workflow.prune_solved, extract.prune_task); this module only decides what runs where.

The learning rate is chosen by pretraining validation loss alone (:data:`OBJECTIVE`), never by a task result.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable

from wsparse.config import Config, PruneConfig
from wsparse.files import write_json
from wsparse.frontier.grid import Frontier, Member, member_dir, sweep_config, sweep_dir

Log = Callable[[str], None]

OBJECTIVE = ("mean of the final validation loss on held-out library code (eval_loss_real) and on held-out generated "
             "programs (eval_loss_synthetic); eval_loss (all documents) where the data have only one kind")
SWEEP_FILE = "lr_sweep.json"
FIG2_DIR = "circuits_targets"  # RUN/circuits_targets/<target>/<task>/circuit.json


def final_val_losses(workdir: str) -> dict[str, float]:
    """The last evaluation's losses of a run: ``{"all", "real", "synthetic"}`` (those it logged)."""
    last: dict[str, tuple[int, float]] = {}
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                for key, kind in (("eval_loss", "all"), ("eval_loss_real", "real"),
                                  ("eval_loss_synthetic", "synthetic")):
                    if key in row and (kind not in last or row["step"] >= last[kind][0]):
                        last[kind] = (int(row["step"]), float(row[key]))
    return {kind: v for kind, (_, v) in last.items()}


def objective(losses: dict[str, float]) -> float | None:
    """The pretraining validation loss every choice and every plot of the frontier uses (:data:`OBJECTIVE`)."""
    if "real" in losses and "synthetic" in losses:
        return (losses["real"] + losses["synthetic"]) / 2
    return losses.get("all")


def train_run(cfg: Config, workdir: str, *, log: Log = print) -> str:
    """Trains ``workdir`` to ``cfg.train.steps`` unless it is already there; returns "reused" or "trained"."""
    from wsparse import runs, train

    if runs.trained_state(workdir, cfg) == "done":
        return "reused"
    result = train.train(cfg, workdir, log=log, progress=False)
    if result.stopped_early:
        raise KeyboardInterrupt(f"{workdir}: training interrupted; re-run the same command to resume")
    return "trained"


def choose_lr(workdir: str, frontier: Frontier, member: Member, *, log: Log = print) -> float:
    """Runs (or reuses) one short run per candidate learning rate and returns the one with the lowest
    :func:`objective`; ``sweeps/<member>/lr_sweep.json`` records every candidate's losses and the choice."""
    if len(member.lrs) == 1:
        return member.lrs[0]
    rows = []
    for lr in member.lrs:
        d = sweep_dir(workdir, member, lr)
        t0 = time.perf_counter()
        how = train_run(sweep_config(member, lr, frontier.sweep_steps), d, log=lambda _: None)
        losses = final_val_losses(d)
        rows.append({"lr": lr, "val_losses": losses, "objective": objective(losses)})
        log(f"{member.name}: sweep lr {lr:g} ({how}, {time.perf_counter() - t0:.0f}s): "
            f"objective {rows[-1]['objective']:.4f}")
    finite = [r for r in rows if r["objective"] is not None and math.isfinite(r["objective"])]
    if not finite:
        raise RuntimeError(f"{member.name}: no sweep run produced a finite validation loss")
    best = min(finite, key=lambda r: (r["objective"], r["lr"]))
    write_json(os.path.join(sweep_dir(workdir, member), SWEEP_FILE),
               {"member": member.name, "steps": frontier.sweep_steps, "objective": OBJECTIVE, "runs": rows,
                "chosen_lr": best["lr"]}, indent=2)
    return best["lr"]


def run_member(workdir: str, frontier: Frontier, member: Member, *, log: Log = print) -> dict[str, Any]:
    """Every stage of one member; returns {"lr", "results", "circuits"}. Finished stages are reused."""
    from wsparse import load_run, workflow

    lr = choose_lr(workdir, frontier, member, log=log)
    d = member_dir(workdir, member)
    t0 = time.perf_counter()
    how = train_run(member.with_lr(lr), d, log=lambda _: None)
    log(f"{member.name}: lr {lr:g}, {how} ({time.perf_counter() - t0:.0f}s), val losses {final_val_losses(d)}")
    run = load_run(d)
    names = list(frontier.tasks)
    results = workflow.cached_task_results(run, names)
    if results is None:
        results = workflow.evaluate_tasks(run, names, n=frontier.task_pairs, log=log)
    circuits = workflow.prune_solved(run, results, frontier.prune, log=lambda s: log(f"{member.name}: {s}"),
                                     progress=False)
    return {"lr": lr, "results": results, "circuits": circuits}


def member_done(workdir: str, member: Member, prune: PruneConfig, names: tuple[str, ...]) -> bool:
    """Whether a member has every artifact aggregation reads: trained, tasks.json, a circuit for every solved task."""
    from wsparse import runs
    from wsparse.circuits import record

    d = os.path.join(workdir, member.name)
    cfg_path = os.path.join(d, "config.json")
    if not os.path.exists(cfg_path):
        return False
    from wsparse import config as config_lib

    cfg = config_lib.load(cfg_path)
    if runs.trained_state(d, cfg) != "done" or not os.path.exists(os.path.join(d, "tasks.json")):
        return False
    with open(os.path.join(d, "tasks.json")) as f:
        saved = json.load(f)
    if saved.get("step") != cfg.train.steps or not set(names) <= set(saved.get("tasks", {})):
        return False
    solved = [t for t in names if saved["tasks"][t]["loss"] <= prune.target_loss]
    return all(os.path.exists(record.path_for(d, t)) for t in solved)


def target_config(prune: PruneConfig, target: float) -> PruneConfig:
    return dataclasses.replace(prune, target_loss=float(target))


def target_path(run_dir: str, target: float, task: str) -> str:
    return os.path.join(run_dir, FIG2_DIR, f"{target:g}", task, "circuit.json")


def prune_at_targets(run: Any, plan: dict[float, list[str]], prune: PruneConfig, *,
                     log: Log = print) -> dict[float, dict[str, Any]]:
    """Circuits of ``plan[target]`` tasks at every target: the member's own circuits at its pruning target, the others
    written under ``RUN/circuits_targets/<target>/<task>/`` and reused when made from the same step and config. A task
    whose unpruned val loss is above a target gets an unsolved record from extract itself (no mask is trained)."""
    from wsparse import config as config_lib
    from wsparse import workflow
    from wsparse.circuits import extract, means, record

    out: dict[float, dict[str, Any]] = {}
    stats = None
    for target, tasks_ in plan.items():
        cfg = target_config(prune, target)
        if target == prune.target_loss:
            out[target] = workflow.prune_tasks(run, tasks_, cfg, log=log, progress=False)
            continue
        out[target] = {}
        for task in tasks_:
            path = target_path(run.workdir, target, task)
            rec = None
            if os.path.exists(path):
                try:
                    rec = record.load(path)
                except record.RecordError:
                    rec = None
                if rec is not None and not (rec.checkpoint_step == run.step
                                            and rec.prune_config == config_lib.to_dict(cfg)):
                    rec = None
            if rec is None:
                stats = stats or means.for_run(run, prune, log=log)
                t0 = time.perf_counter()
                rec = extract.prune_task(run, task, cfg, stats, out_dir=os.path.dirname(path))
                log(f"{task} at target {target:g} ({time.perf_counter() - t0:.0f}s): {workflow.describe(rec)}")
            out[target][task] = rec
    return out
