"""Collects the members' artifacts into ``WORKDIR/frontier.json`` and computes the headline.

Matched-loss interpolation (the headline's method, :data:`METHOD`): within one family, members are ordered by
pretraining validation loss (``stages.objective``); a task's circuit edges at loss ``L`` are interpolated linearly in
log(edges) against validation loss between the two neighbouring members whose losses bracket ``L``, both of which must
have a circuit for the task (a member exactly at ``L`` is used as it is). Nothing is extrapolated: outside a family's
loss range, or where a neighbour has no circuit, the task has no value there. The matched loss is the lowest
validation loss both families reach, ``max(min sparse loss, min dense loss)``, if that lies inside both ranges:
chosen from pretraining losses alone, and where the most tasks are within reach. The headline is the geometric mean,
over the tasks with a value in both families there, of dense edges / sparse edges.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

METHOD = ("matched loss = max(min sparse val loss, min dense val loss) (the lowest pretraining loss both families "
          "reach); per task and family, log(circuit edges) interpolated linearly in val loss between the two "
          "neighbouring members (ordered by val loss) that bracket it, both with a circuit for the task; no "
          "extrapolation; ratio = geometric mean over tasks with a value in both families of dense / sparse edges (a "
          "circuit without edges counts as 1 edge)")
VAL_LOSS = ("val_loss = mean of the final eval_loss_real (held-out library code) and eval_loss_synthetic (held-out "
            "generated programs)")


def _log(edges: float) -> float:
    """log of an edge count; a circuit without edges counts as one edge (:data:`METHOD`)."""
    return math.log(max(float(edges), 1.0))


def geomean(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values]
    if not vals:
        return None
    return math.exp(sum(_log(v) for v in vals) / len(vals))


def interp_log_edges(points: Iterable[tuple[float, float | None]], at: float) -> float | None:
    """Edges at validation loss ``at`` from ``(val_loss, edges or None)`` points of one family (see the module
    docstring); None outside the points' range or where a bracketing point has no circuit."""
    pts = sorted(points, key=lambda p: p[0])
    exact = [e for loss, e in pts if loss == at]
    if exact:
        return exact[0] if exact[0] is not None else None
    for (l0, e0), (l1, e1) in zip(pts, pts[1:]):
        if l0 < at < l1:
            if e0 is None or e1 is None:
                return None
            w = (at - l0) / (l1 - l0)
            return math.exp((1 - w) * _log(e0) + w * _log(e1))
    return None


def _points(members: list[Mapping[str, Any]], family: str, task: str) -> list[tuple[float, float | None]]:
    return [(m["val_loss"], (m["tasks"].get(task) or {}).get("n_edges")) for m in members
            if m["family"] == family and m["val_loss"] is not None]


def _task_names(members: list[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for m in members:
        names += [t for t in m["tasks"] if t not in names]
    return names


def ratios_at(members: list[Mapping[str, Any]], at: float) -> dict[str, dict[str, float]]:
    """{task: {"sparse_edges", "dense_edges", "ratio"}} for every task with an interpolated value in both families."""
    out = {}
    for task in _task_names(members):
        s = interp_log_edges(_points(members, "sparse", task), at)
        d = interp_log_edges(_points(members, "dense", task), at)
        if s is not None and d is not None:
            out[task] = {"sparse_edges": s, "dense_edges": d, "ratio": max(d, 1.0) / max(s, 1.0)}
    return out


def headline(members: list[Mapping[str, Any]]) -> dict[str, Any]:
    """``{edge_ratio_dense_over_sparse, matched_val_loss, tasks, per_task, method, note}``; the ratio is None when the
    families' loss ranges do not overlap or no task has a value in both."""
    losses = {f: [m["val_loss"] for m in members if m["family"] == f and m["val_loss"] is not None]
              for f in ("sparse", "dense")}
    out: dict[str, Any] = {"edge_ratio_dense_over_sparse": None, "matched_val_loss": None, "tasks": [],
                           "per_task": {}, "method": METHOD, "note": None}
    if not losses["sparse"] or not losses["dense"]:
        out["note"] = "a family has no trained member"
        return out
    lo = max(min(losses["sparse"]), min(losses["dense"]))
    hi = min(max(losses["sparse"]), max(losses["dense"]))
    if lo > hi:
        out["note"] = (f"the families' validation losses do not overlap (sparse {min(losses['sparse']):.3f}.."
                       f"{max(losses['sparse']):.3f}, dense {min(losses['dense']):.3f}..{max(losses['dense']):.3f})")
        return out
    per_task = ratios_at(members, lo)
    out.update(matched_val_loss=lo, tasks=list(per_task), per_task=per_task,
               edge_ratio_dense_over_sparse=geomean(r["ratio"] for r in per_task.values()))
    if not per_task:
        out["note"] = "no task has a circuit on both sides of the matched loss in both families"
    return out


def by_sparse_member(members: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same ratio at each sparse member's own loss (dense edges interpolated, the sparse member's own circuits),
    for the sparse members inside the dense range: how the headline depends on where it is matched."""
    rows = []
    for m in members:
        if m["family"] != "sparse" or m["val_loss"] is None:
            continue
        per_task = ratios_at([m] + [d for d in members if d["family"] == "dense"], m["val_loss"])
        rows.append({"member": m["name"], "val_loss": m["val_loss"], "tasks": list(per_task),
                     "edge_ratio_dense_over_sparse": geomean(r["ratio"] for r in per_task.values())})
    return rows


def matched_pair(members: list[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The (sparse, dense) members with the closest validation losses: Figure 2's pair, chosen by loss alone."""
    pairs = [(abs(s["val_loss"] - d["val_loss"]), s["name"], d["name"]) for s in members for d in members
             if s["family"] == "sparse" and d["family"] == "dense" and s["val_loss"] is not None
             and d["val_loss"] is not None]
    return (min(pairs)[1], min(pairs)[2]) if pairs else None


def task_entry(result: Mapping[str, Any] | None, rec: Any) -> dict[str, Any]:
    """One task of one member in frontier.json: unpruned test loss and, if it has a circuit, its size and loss."""
    entry = {"unpruned_loss": None if result is None else float(result["loss"]), "n_nodes": None, "n_edges": None,
             "circuit_loss": None}
    if rec is not None and rec.is_solved:
        entry.update(n_nodes=int(rec.n_nodes), n_edges=int(rec.edges_total),
                     circuit_loss=float(rec.circuit_loss["test"]))
    return entry


def fig2_tasks(sparse: Mapping[str, Any], dense: Mapping[str, Any], targets: Iterable[float],
               max_tasks: int = 0) -> dict[float, list[str]]:
    """Figure 2's tasks at each target: those whose unpruned test loss meets the target in both members of the pair,
    in task order, at most ``max_tasks`` (0: all). Chosen from the unpruned models' losses, never from circuits."""
    def meets(member: Mapping[str, Any], task: str, t: float) -> bool:
        loss = (member["tasks"].get(task) or {}).get("unpruned_loss")
        return loss is not None and loss <= t

    return {float(t): [task for task in sparse["tasks"] if meets(sparse, task, t) and meets(dense, task, t)]
            [:max_tasks or None] for t in targets}


def fig2_points(records: Mapping[str, Mapping[float, Mapping[str, Any]]]) -> dict[str, Any]:
    """``records[family][target][task]`` -> per target, the tasks with a circuit in both families and each family's
    geometric-mean edges and mean test circuit loss over them."""
    targets = sorted({t for by_t in records.values() for t in by_t}, reverse=True)
    rows = []
    for t in targets:
        recs = {f: records.get(f, {}).get(t, {}) for f in ("sparse", "dense")}
        both = [task for task in recs["sparse"] if recs["sparse"][task].is_solved
                and task in recs["dense"] and recs["dense"][task].is_solved]
        row: dict[str, Any] = {"target": t, "tasks": both}
        for f in ("sparse", "dense"):
            row[f] = {"geomean_edges": geomean(recs[f][task].edges_total for task in both),
                      "mean_circuit_loss": (sum(recs[f][task].circuit_loss["test"] for task in both) / len(both)
                                            if both else None),
                      "edges": {task: recs[f][task].edges_total for task in both}}
        rows.append(row)
    return {"targets": rows}


def count_params(params: Any) -> dict[str, int]:
    """Parameters and nonzero parameters of a model, in all and without the bigram table (a dense V x V table that
    every member of a grid shares in size and that dominates small models' counts)."""
    import jax
    import numpy as np

    out = {"n_params": 0, "n_nonzero": 0, "n_params_no_bigram": 0, "n_nonzero_no_bigram": 0}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        x = np.asarray(leaf)
        size, nnz = int(x.size), int(np.count_nonzero(x))
        bigram = "bigram" in jax.tree_util.keystr(path)
        out["n_params"] += size
        out["n_nonzero"] += nnz
        out["n_params_no_bigram"] += 0 if bigram else size
        out["n_nonzero_no_bigram"] += 0 if bigram else nnz
    return out


def summarize_member(run: Any, member: Any, lr: float, prune_target: float,
                     names: Iterable[str] | None = None) -> dict[str, Any]:
    """A member's frontier.json entry from its run directory's artifacts (and parameter counts)."""
    from wsparse.circuits import record
    from wsparse.frontier import stages
    from wsparse.report import artifacts

    _, _, results = artifacts.read_tasks(os.path.join(run.workdir, "tasks.json"))
    if names is not None:
        results = {t: results[t] for t in names if t in results}
    tasks = {}
    for task, r in results.items():
        path = record.path_for(run.workdir, task)
        rec = record.load(path) if r["loss"] <= prune_target and os.path.exists(path) else None
        tasks[task] = task_entry(r, rec)
    losses = stages.final_val_losses(run.workdir)
    m = run.cfg.model
    return {"name": member.name, "family": member.family, "label": member.label, "workdir": run.workdir,
            "d_model": m.d_model, "n_layer": m.n_layer, "interior_density": (run.cfg.sparsity.interior_density
                                                                              if run.cfg.sparsity.enabled else 1.0),
            "lr": lr, "steps": int(run.step), **count_params(run.params),
            "val_loss": stages.objective(losses), "val_losses": losses,
            "n_solved": sum(1 for t in tasks.values() if t["n_edges"] is not None),
            "geomean_edges": geomean(t["n_edges"] for t in tasks.values() if t["n_edges"] is not None),
            "tasks": tasks}
