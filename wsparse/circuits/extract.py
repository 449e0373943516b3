"""One task end to end: check the unpruned model, sweep masks, bisect, pick, calibrate, validate, write the artifact
(a :class:`wsparse.circuits.record.CircuitRecord` in ``circuit.json``, and the sweep log in ``sweep.jsonl``).

The task's three splits have three jobs: masks are fitted on train, the bisection and the choice among sweep settings
use val, and every number the record reports is measured on test.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Mapping

import jax
import numpy as np

from wsparse import config as C
from wsparse import tasks
from wsparse.circuits import graph, record, validate
from wsparse.circuits.means import NodeStats
from wsparse.circuits.prune import Pairs, Pruner, UnitScores, calibrate, pairs_from_batch, settings_grid, tie_counts
from wsparse.circuits.record import CircuitRecord
from wsparse.tasks import pair_loss
from wsparse.config import ModelConfig, PruneConfig


def extract(params: Any, model_cfg: ModelConfig, cfg: PruneConfig, stats: NodeStats, batches: Mapping[str, Any], *,
            task: str, progress: Callable[[int], None] | None = None) -> tuple[CircuitRecord, list[dict[str, Any]]]:
    """Fits masks on ``batches["train"]``, bisects and chooses among settings on ``"val"``, and measures everything
    the record reports (circuit loss, sufficiency, necessity, controls) on ``"test"``: no reported number was used to
    choose the circuit. Returns the record (without provenance: see ``prune_task``) and the sweep log."""
    pr = Pruner(params, model_cfg, cfg, stats)
    host_params = jax.device_get(params)
    pairs = {split: pr.pad(batches[split]) for split in tasks.SPLITS}
    train, val, test = (pairs[split] for split in tasks.SPLITS)
    n_nodes_total = pr.layout.n_nodes
    full = np.ones((1, n_nodes_total), np.float32)
    unpruned = {split: float(pr.loss(full, p)[0]) for split, p in pairs.items()}
    n_pairs = {f"n_{split}_pairs": int(batches[split].tokens.shape[0] // 2) for split in tasks.SPLITS}
    common = dict(task=task, target_loss=cfg.target_loss, unpruned_loss=unpruned, ablation=cfg.ablation,
                  n_model_nodes=n_nodes_total, **n_pairs)
    if unpruned["val"] > cfg.target_loss:  # bisection on val needs the full model to meet the target there
        message = (f"the unpruned model's val loss {unpruned['val']:.4f} is above the target "
                   f"{cfg.target_loss}: no circuit can meet it")
        return CircuitRecord(status="unsolved", message=message, **common), []

    found = search(pr, settings_grid(cfg), pairs_from_batch(batches["train"]), val, test, cfg.target_loss,
                   host_params, progress)
    rows, best = found.rows, found.rows[found.best]
    s, m = found.best, found.m_nodes[found.best]
    settings = found.settings

    diffs = {"train": pr.diffs(m[None], train)[0], "val": found.val_diffs[s], "test": found.test_diffs[s]}
    a, b = calibrate(diffs["train"], train.weight, cfg.calibration_steps)
    circuit_loss = {split: float(pair_loss(diffs[split], pairs[split].weight)) for split in tasks.SPLITS}
    circuit_loss |= {f"{split}_calibrated": float(pair_loss(diffs[split], pairs[split].weight, a, b))
                     for split in tasks.SPLITS}
    edges, counts = graph.edges(host_params, pr.layout.split(m))
    attribution = None
    if cfg.attribution_baseline:
        attribution = validate.attribution_baseline(pr, train, val, test, cfg.target_loss, int(found.k[s]))
        attr_m = attribution.pop("m_nodes")
        _, attr_counts = graph.edges(host_params, pr.layout.split(attr_m), with_list=False)
        attribution |= {"n_nodes": int(attr_m.sum()), "n_edges": attr_counts["total"]}
    validation = {
        "sufficiency": validate.sufficiency(circuit_loss["test"], cfg.target_loss),
        "necessity": validate.necessity(pr, m, test, unpruned["test"]),
        "random_controls": validate.random_controls(pr, m, test, cfg.target_loss, cfg.n_random_controls, cfg.seed),
        "attribution_baseline": attribution,
    }
    rec = CircuitRecord(
        status="ok", **common, selected_on="val", circuit_loss=circuit_loss,
        calibration=record.Calibration(a=float(a), b=float(b), steps=cfg.calibration_steps, fit_on="train"),
        nodes=graph.kept_indices(pr.layout.split(m)), n_nodes=int(m.sum()), k_units=int(found.k[s]),
        edges=edges, n_edges=counts,
        hyperparameters={key: best[key] for key in settings} | _hyper(cfg),
        validation=record.Validation.from_json(validation),
    )
    return rec, rows


@dataclasses.dataclass(frozen=True)
class Search:
    """What one sweep of mask settings found: per setting (axis S) the learned scores, the bisected size and mask,
    and a log row; ``best`` is the setting the selection rule chose."""

    settings: dict[str, np.ndarray]
    scores: UnitScores
    k: np.ndarray  # int[S]: bisected units
    m_nodes: np.ndarray  # float32[S, N]: the bisected circuits
    val_diffs: np.ndarray  # float32[S, P_val, 2]: their logit differences (Pruner.diffs), which the record reuses
    test_diffs: np.ndarray  # float32[S, P_test, 2]
    rows: list[dict[str, Any]]
    best: int


def search(pr: Pruner, settings: Mapping[str, np.ndarray], train: Pairs, val: Pairs, test: Pairs, target: float,
           host_params: Any, progress: Callable[[int], None] | None = None) -> Search:
    """The selection rule of docs/method.md section 5: train every setting on ``train``, bisect each to ``target`` on
    ``val``, and choose, among the settings whose circuit meets the target on val (all of them if none does), the
    fewest edges, then nodes, then val loss. Test losses are logged in the rows, never used to choose."""
    scores, logs = pr.train(settings, train, progress)
    k, m_units = pr.bisect(scores, val, target)
    ties = tie_counts(scores, k)
    m_nodes = np.stack([pr.units_to_nodes(m) for m in m_units])
    val_diffs, test_diffs = pr.diffs(m_nodes, val), pr.diffs(m_nodes, test)
    val_losses, test_losses = pr.pair_losses(val_diffs, val), pr.pair_losses(test_diffs, test)
    learned_on = np.stack([pr.units_to_nodes((t > 0).astype(np.float32)) for t in scores.tau]).sum(1)
    tail = max(1, logs["task_loss"].shape[1] // 10)
    rows = []
    for s in range(len(k)):
        _, counts = graph.edges(host_params, pr.layout.split(m_nodes[s]), with_list=False)
        rows.append({
            "setting": s, **{key: _py(v[s]) for key, v in settings.items()},
            "learned_nodes_on": int(learned_on[s]), "final_task_loss": float(logs["task_loss"][s, -tail:].mean()),
            "k_units": int(k[s]), "ties": ties[s], "n_nodes": int(m_nodes[s].sum()), "n_edges": counts["total"],
            "val_loss": float(val_losses[s]), "meets_target_on_val": bool(val_losses[s] <= target),
            "test_loss": float(test_losses[s]),  # logged for the record; never used to choose
        })
    ok = [r for r in rows if r["meets_target_on_val"]] or rows
    best = min(ok, key=lambda r: (r["n_edges"], r["n_nodes"], r["val_loss"], r["setting"]))["setting"]
    return Search(dict(settings), scores, np.asarray(k), m_nodes, np.asarray(val_diffs), np.asarray(test_diffs), rows,
                  best)


def _hyper(cfg: PruneConfig) -> dict[str, Any]:
    keys = ("mask_param", "temp_schedule", "temp_start", "temp_end", "tie_qk", "b1", "b2", "warmup_frac",
            "grad_clip", "steps", "batch_pairs", "ablation")
    return {key: getattr(cfg, key) for key in keys}


def _py(v: Any) -> Any:
    """numpy scalar -> Python, float32 printed the way it was configured (1e-4, not 9.9999997e-05)."""
    if isinstance(v, np.floating):
        return float(f"{float(v):.7g}")
    return v.item() if hasattr(v, "item") else v


def task_batches(run: Any, task_name: str, cfg: PruneConfig, *, shifted: bool = False) -> dict[str, Any]:
    """The task's train/val/test TaskBatches under the run's tokenizer, sized by ``cfg``; with ``shifted`` (and a
    task that declares a shift) also ``"shifted"``: test-split pairs of the shifted distribution."""
    task = tasks.get(task_name)
    sizes = {"train": cfg.n_train_pairs, "val": cfg.n_val_pairs, "test": cfg.n_test_pairs}
    encode = lambda split, n, **kw: tasks.encode(task, run.tokenizer, split, n, run.cfg.model.n_ctx,  # noqa: E731
                                                 seed=cfg.seed, **kw)
    batches = {split: encode(split, n) for split, n in sizes.items()}
    if shifted and task.shift is not None:
        batches["shifted"] = encode("test", cfg.n_test_pairs, shifted=True)
    return batches


def prune_task(run: Any, task_name: str, cfg: PruneConfig, stats: NodeStats,
               progress: Callable[[int], None] | None = None, *, out_dir: str | None = None) -> CircuitRecord:
    """Encodes the task's three splits with the run's tokenizer, extracts, writes ``circuits/<task>/`` (or
    ``out_dir``: the frontier keeps circuits at other target losses apart from the run's own)."""
    batches = task_batches(run, task_name, cfg)
    rec, rows = extract(run.params, run.cfg.model, cfg, stats, batches, task=task_name, progress=progress)
    rec = dataclasses.replace(rec, checkpoint_step=int(run.step), tokenizer_sha256=run.tokenizer_sha256,
                              prune_config=C.to_dict(cfg), means_tokens=stats.n_tokens)
    write(rec, rows, out_dir or os.path.dirname(record.path_for(run.workdir, task_name)))
    return rec


def write(rec: CircuitRecord, rows: list[dict[str, Any]], out_dir: str) -> None:
    """``out_dir/circuit.json`` and ``out_dir/sweep.jsonl``, each written atomically."""
    sweep = os.path.join(out_dir, record.SWEEP_FILE)
    os.makedirs(out_dir, exist_ok=True)
    tmp = f"{sweep}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, sweep)
    record.save(rec, os.path.join(out_dir, record.FILE))
