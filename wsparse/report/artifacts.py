"""Readers for the JSON artifacts of a run directory, tolerant of the stages that have not run yet.

The report is written at the end of a pipeline whose stages may have been skipped or interrupted: every reader here
returns an empty value for a missing file instead of raising, so a partial run still gets a (partial) report. Circuit
records are read through ``wsparse.circuits.record``; one that cannot be read (another schema version) is reported
by ``read_circuits`` as an error for the page to show, not silently dropped.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import numpy as np

from wsparse import weights
from wsparse.circuits import record
from wsparse.circuits.record import CircuitRecord

FAMILIES = (*weights.FAMILIES, "dense")


def read_json(path: str) -> Any:
    """The parsed file, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class Curves:
    """Training and evaluation series from metrics.jsonl, one value per step (a resumed run's repeats dropped)."""

    train: dict[str, list[tuple[int, float]]]  # metric -> [(step, value)] sorted by step
    eval_loss: list[tuple[int, float]]


def read_metrics(path: str) -> Curves:
    """metrics.jsonl rows; later rows win for a repeated (step, metric), since a resumed run appends."""
    series: dict[str, dict[int, float]] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                row = json.loads(line)
                step = int(row.pop("step"))
                for key, value in row.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        series.setdefault(key, {})[step] = float(value)
    ordered = {k: sorted(v.items()) for k, v in series.items()}
    eval_loss = ordered.pop("eval_loss", [])
    return Curves(train=ordered, eval_loss=eval_loss)


def read_tasks(path: str) -> tuple[int | None, str, dict[str, dict[str, float]]]:
    """tasks.json (experiments.eval_tasks): ``(step, split, {task: {"loss", "accuracy", "n"}})``, n in pairs."""
    raw = read_json(path)
    if not raw:
        return None, "test", {}
    return raw.get("step"), raw.get("split", "test"), dict(raw.get("tasks", {}))


def read_circuits(circuits_dir: str) -> tuple[dict[str, CircuitRecord], dict[str, str]]:
    """Every ``circuits/<task>/circuit.json`` in task-name order: ``({task: record}, {task: why unreadable})``."""
    out: dict[str, CircuitRecord] = {}
    errors: dict[str, str] = {}
    if not os.path.isdir(circuits_dir):
        return out, errors
    for task in sorted(os.listdir(circuits_dir)):
        path = os.path.join(circuits_dir, task, record.FILE)
        if not os.path.exists(path):
            continue
        try:
            out[task] = record.load(path)
        except record.RecordError as e:
            errors[task] = str(e)
    return out, errors


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
    """Everything the report reads from a run directory (no checkpoint, no model)."""

    workdir: str
    cfg: dict[str, Any]  # config.json, {} when missing
    curves: Curves
    task_step: int | None
    task_split: str
    evals: dict[str, dict[str, float]]
    circuits: dict[str, CircuitRecord]
    circuit_errors: dict[str, str]


def read_run(workdir: str) -> RunArtifacts:
    """config.json, metrics.jsonl, tasks.json and circuits/*/circuit.json of ``workdir``."""
    task_step, task_split, evals = read_tasks(os.path.join(workdir, "tasks.json"))
    circuits, errors = read_circuits(os.path.join(workdir, "circuits"))
    return RunArtifacts(workdir=workdir, cfg=read_json(os.path.join(workdir, "config.json")) or {},
                        curves=read_metrics(os.path.join(workdir, "metrics.jsonl")), task_step=task_step,
                        task_split=task_split, evals=evals, circuits=circuits, circuit_errors=errors)


def circuit_nodes(circuits: dict[str, CircuitRecord]) -> list[str]:
    """Every node of every solved circuit, ``"LOCATION:INDEX"``, sorted and unique."""
    return sorted({n for c in circuits.values() if c.is_solved for n in c.node_names})


# ---------------------------------------------------------------------------------------------------------------------
# Parameter accounting.


@dataclasses.dataclass(frozen=True)
class TensorCount:
    path: str
    family: str
    shape: tuple[int, ...]
    size: int
    nonzero: int


def param_counts(params: Any) -> list[TensorCount]:
    """Size and nonzero entries of every tensor, in tree order. Host-side: the report runs once, after training."""
    rows = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        rows.append(TensorCount("/".join(weights.path_names(path)), weights.facts(path).family or "dense",
                                tuple(arr.shape), int(arr.size), int(np.count_nonzero(arr))))
    return rows


def family_totals(rows: list[TensorCount]) -> dict[str, tuple[int, int, int]]:
    """family -> (tensors, parameters, nonzero), every family present (zeros where absent), plus "total"."""
    out = {f: (0, 0, 0) for f in FAMILIES}
    for r in rows:
        n, size, nnz = out[r.family]
        out[r.family] = (n + 1, size + r.size, nnz + r.nonzero)
    out["total"] = tuple(sum(v[i] for v in out.values()) for i in range(3))  # type: ignore[assignment]
    return out
