"""The stages after training, each skipped when its artifact is already up to date: what `make demo` runs.

train -> tasks.json (unpruned task losses) -> circuits/<task>/circuit.json for every solved task -> report.
Every stage reads the run through ``load_run``, so each can also be run alone from its own entry point
(``prune_tasks`` is also experiments.prune's loop; ``report_inputs`` is what experiments.report computes).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from wsparse.config import Config, PruneConfig
from wsparse.files import write_json

if TYPE_CHECKING:
    from wsparse.circuits.record import CircuitRecord
    from wsparse.report.html import ReportInputs

Log = Callable[[str], None]


def evaluate_tasks(run: Any, names: list[str] | None = None, *, n: int = 500, batch_size: int = 64,
                   log: Log = print) -> dict[str, dict]:
    """Unpruned test-split loss and accuracy of every task; writes ``RUN/tasks.json``."""
    from wsparse import tasks

    names = list(tasks.names()) if names is None else names
    t0 = time.perf_counter()
    results = tasks.evaluate(run.params, run.cfg.model, run.tokenizer, names, split="test", n=n,
                             batch_size=batch_size)
    log(f"evaluated {len(names)} tasks at step {run.step} in {time.perf_counter() - t0:.1f}s")
    write_json(os.path.join(run.workdir, "tasks.json"), {"step": int(run.step), "split": "test", "tasks": results},
               indent=2)
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


def cached_circuit(run: Any, task: str, cfg: PruneConfig, *, log: Log | None = None) -> CircuitRecord | None:
    """The task's circuit.json if it was made from this checkpoint with this pruning config (its ``faithfulness``
    budget aside: it changes the card, never the circuit); None otherwise, also
    for a file of another schema version (``log`` says why), which is then extracted again."""
    from wsparse import config as config_lib
    from wsparse.circuits import record

    path = record.path_for(run.workdir, task)
    if not os.path.exists(path):
        return None
    try:
        rec = record.load(path)
    except record.RecordError as e:
        if log is not None:
            log(f"{task}: not reusing circuit.json: {e}")
        return None
    circuit_part = lambda d: {k: v for k, v in (d or {}).items() if k != "faithfulness"}  # the card's budget only
    same = (rec.checkpoint_step == run.step
            and circuit_part(rec.prune_config) == circuit_part(config_lib.to_dict(cfg)))
    return rec if same else None


def resolve_tasks(spec: str) -> list[str]:
    """``"all"``, a task name or a comma-separated list -> task names, each checked: TaskError for an unknown one."""
    from wsparse import tasks

    names = list(tasks.names()) if spec == "all" else [t.strip() for t in spec.split(",") if t.strip()]
    if not names:
        raise tasks.TaskError(f"no task named in {spec!r}; known: {', '.join(tasks.names())}")
    for name in names:
        tasks.get(name)
    return names


def prune_tasks(run: Any, names: list[str], cfg: PruneConfig, *, reuse: bool = True, log: Log = print,
                progress: bool = True) -> dict[str, CircuitRecord]:
    """Extracts the circuit of each task in ``names`` (writing ``circuits/<task>/``); returns {task: record}.

    Every name is checked before any work (TaskError for an unknown task). With ``reuse``, a circuit.json made from
    this checkpoint and config is kept as it is. Node means are computed (or loaded) only if a task needs pruning.
    """
    from tqdm import tqdm

    from wsparse import tasks
    from wsparse.circuits import extract, means

    for name in names:
        tasks.get(name)
    records: dict[str, CircuitRecord] = {}
    stats = None
    for task in names:
        rec = cached_circuit(run, task, cfg, log=log) if reuse else None
        if rec is not None:
            log(f"{task}: reusing circuit.json (step {run.step}): {describe(rec)}")
        else:
            stats = stats or means.for_run(run, cfg, log=log)
            t0 = time.perf_counter()
            with tqdm(total=cfg.steps, desc=f"prune {task}", unit="step", leave=False, disable=not progress) as bar:
                rec = extract.prune_task(run, task, cfg, stats, progress=bar.update)
            log(f"{task} ({time.perf_counter() - t0:.0f}s): {describe(rec)}")
        records[task] = rec
    return records


def prune_solved(run: Any, results: dict[str, dict], cfg: PruneConfig, *, log: Log = print,
                 progress: bool = True) -> dict[str, CircuitRecord]:
    """Prunes every task whose unpruned test loss meets the target; returns {task: circuit record}."""
    solved = [t for t, r in results.items() if r["loss"] <= cfg.target_loss]
    log(f"{len(solved)} of {len(results)} tasks meet the target loss {cfg.target_loss}: {', '.join(solved) or '-'}")
    return prune_tasks(run, solved, cfg, log=log, progress=progress)


def faithfulness_cards(run: Any, names: list[str], cfg: PruneConfig, *, controls: tuple[str, ...] | None = None,
                       reuse: bool = True, log: Log = print) -> dict[str, CircuitRecord]:
    """Adds the faithfulness card (``circuits.faithfulness``) to each named task's circuit.json; returns {task:
    record} for the tasks that have a circuit (the others are logged and skipped: prune them first).

    The controls that prune again use the circuit's own pruning budget, read from its record; ``cfg`` gives only
    the card's settings (``cfg.faithfulness``) and ``controls`` (default: ``cfg.faithfulness.controls``). With
    ``reuse``, a card with these settings that already holds every asked control is kept; otherwise the asked
    controls are computed and added to a card of the same settings (a card of other settings is replaced).
    """
    import dataclasses

    from wsparse import config as config_lib
    from wsparse import tasks
    from wsparse.circuits import extract, faithfulness, means, record

    for name in names:
        tasks.get(name)
    controls = tuple(controls if controls is not None else cfg.faithfulness.controls)
    out: dict[str, CircuitRecord] = {}
    stats = None
    randoms: dict[tuple, Any] = {}
    for task in names:
        path = record.path_for(run.workdir, task)
        rec = cached_circuit(run, task, cfg, log=log) or (record.load(path) if os.path.exists(path) else None)
        if rec is None or not rec.is_solved or rec.checkpoint_step != run.step:
            log(f"{task}: no circuit of step {run.step} to check; run experiments.prune first")
            continue
        prune_cfg = dataclasses.replace(config_lib.build(config_lib.PruneConfig, rec.prune_config),
                                        faithfulness=cfg.faithfulness)
        old = rec.validation.controls or {}
        if reuse and old.get("budget") == faithfulness.budget(prune_cfg) and set(controls) <= set(old.get(
                "verdicts", {})):
            log(f"{task}: reusing its faithfulness card: flags {old.get('flags') or 'none'}")
            out[task] = rec
            continue
        stats = stats or means.for_run(run, prune_cfg, log=log)
        random = None
        if "random_weights" in controls:  # one random model (and its means) for every circuit of the same budget
            key = (prune_cfg.faithfulness.random_seed, prune_cfg.means_tokens, prune_cfg.resample_bank, prune_cfg.seed)
            if key not in randoms:
                tokens = run.val_tokens(prune_cfg.means_tokens, batch=means.MEANS_BATCH)
                randoms[key] = faithfulness.random_setup(run.params, run.cfg.model, prune_cfg, tokens)
            random = randoms[key]
        t0 = time.perf_counter()
        card = faithfulness.card(run.params, run.cfg.model, prune_cfg, stats,
                                 extract.task_batches(run, task, prune_cfg, shifted=True), rec,
                                 shift=tasks.get(task).shift_description, controls=controls, log=log,
                                 random=random)
        if old.get("budget") == card["budget"]:  # the same settings: the card gains (or renews) these controls
            card = faithfulness.merge(old, card)
        elif old:
            changed = sorted(k for k in set(old.get("budget", {})) | set(card["budget"])
                             if old.get("budget", {}).get(k) != card["budget"].get(k))
            log(f"{task}: replacing a card of other settings (budget differs in {', '.join(changed)}): its "
                f"controls {', '.join(old.get('verdicts', {}))} are dropped")
        rec = dataclasses.replace(rec, validation=dataclasses.replace(rec.validation, controls=card))
        record.save(rec, path)
        log(f"{task} card ({time.perf_counter() - t0:.0f}s): flags {card['flags'] or 'none'}")
        out[task] = rec
    return out


def has_circuit(run: Any, task: str) -> bool:
    """Whether ``RUN/circuits/<task>/circuit.json`` exists and holds a circuit (an unsolved record does not)."""
    from wsparse.circuits import record

    path = record.path_for(run.workdir, task)
    try:
        return os.path.exists(path) and record.load(path).is_solved
    except record.RecordError:
        return False


def describe_card(task: str, card: Mapping[str, Any] | None) -> str:
    """The card as text: one line per control, its verdict and numbers."""
    if not card:
        return f"{task}: no faithfulness card"
    lines = [f"{task}: faithfulness card, flags: {', '.join(card['flags']) or 'none'}"]
    lines += [f"  {name:<19}{verdict:<6}{card[name]['summary']}" for name, verdict in card["verdicts"].items()]
    return "\n".join(lines)


def describe(rec: CircuitRecord) -> str:
    """One line: the circuit's size, losses and validation, or why there is none."""
    if not rec.is_solved:
        return f"unsolved: {rec.message}"  # extract says which split's unpruned loss missed the target
    v, loss = rec.validation, rec.circuit_loss
    random = v.random_controls.mean
    return (f"{rec.n_nodes} nodes, {rec.edges_total} edges; test loss {loss['test']:.3f} (calibrated "
            f"{loss['test_calibrated']:.3f}); necessity +{v.necessity.increase:.3f}"
            + (f"; random {random:.3f}" if random is not None else ""))


def data_and_loss_summary(run: Any) -> str:
    """The data the run was trained on (corpus hash, tokens) and its last validation losses, overall and by kind."""
    from wsparse.report import artifacts

    manifest = artifacts.read_json(os.path.join(run.workdir, "data.json")) or {}
    curves = artifacts.read_metrics(os.path.join(run.workdir, "metrics.jsonl"))
    last = {"all": curves.eval_loss[-1:]} | {k: curves.train.get(f"eval_loss_{k}", [])[-1:]
                                               for k in ("real", "synthetic")}
    losses = ", ".join(f"{k} {v[0][1]:.3f}" for k, v in last.items() if v)
    tokens = manifest.get("tokens", {})
    return (f"data: corpus sha256 {manifest.get('corpus_sha256', '?')[:16]}, fingerprint "
            f"{manifest.get('fingerprint', '?')}, {tokens.get('train', 0):,} train tokens\n"
            f"validation loss at step {run.step}: {losses or '-'} (all documents, library code, generated programs)")


def summary_table(results: dict[str, dict], circuits: Mapping[str, CircuitRecord], target: float) -> str:
    """Task, unpruned loss and accuracy, and for solved tasks the circuit's size, loss and validation."""
    head = (f"{'task':<27}{'loss':>8}{'acc':>7}  {'nodes':>6}{'edges':>7}{'circuit loss':>13}"
            f"{'sufficient':>11}{'necessity +':>12}")
    rows = [head, "-" * len(head)]
    for task, r in results.items():
        c = circuits.get(task)
        row = f"{task:<27}{r['loss']:>8.3f}{r['accuracy']:>7.2f}  "
        if c is None:
            row += f"{'(unsolved: loss > ' + format(target, 'g') + ')':>49}"
        elif not c.is_solved:
            row += f"{c.status:>49}"
        else:
            row += (f"{c.n_nodes:>6}{c.edges_total:>7}{c.circuit_loss['test']:>13.3f}"
                    f"{str(c.sufficient):>11}{c.validation.necessity.increase:>12.3f}")
        rows.append(row)
    return "\n".join(rows)


def report_inputs(run: Any, *, node_tokens: int = 32768, top_k: int = 5, val_tokens: Any = None,
                  log: Log = print) -> ReportInputs:
    """What the report needs from the model: parameter counts and, for every node of the run's circuits, its mean
    activation and top-activating contexts over ``val_tokens`` (``[n_batches, B, T]``; default ``node_tokens``
    tokens of the run's validation split). Pass the result to ``write_report(workdir, **inputs)``."""
    from wsparse.circuits import means
    from wsparse.report import ReportInputs, artifacts, node_info

    circuits, _ = artifacts.read_circuits(os.path.join(run.workdir, "circuits"))
    nodes = artifacts.circuit_nodes(circuits)
    info: dict[str, node_info.NodeInfo] = {}
    if nodes:
        tokens = val_tokens if val_tokens is not None else run.val_tokens(node_tokens)
        log(f"report: activation statistics of {len(nodes)} circuit nodes over {tokens.size} validation tokens")
        cached = means.cache_path(run.workdir, run.step)
        mean = means.load(cached).means if os.path.exists(cached) else None
        info = node_info.compute(run.params, run.cfg.model, run.tokenizer, tokens, nodes, top_k=top_k, means=mean)
    return ReportInputs(param_counts=artifacts.param_counts(run.params), node_info=info, step=int(run.step))
