"""Readers for the JSON artifacts of a run directory, tolerant of the stages that have not run yet.

The report is written at the end of a pipeline whose stages may have been skipped or interrupted: every reader here
returns an empty value for a missing file instead of raising, so a partial run still gets a (partial) report.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import jax
import numpy as np

FAMILIES = ("interior", "embed", "bias", "dense")


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


def read_circuits(circuits_dir: str) -> dict[str, dict[str, Any]]:
    """Every ``circuits/<task>/circuit.json``, keyed by task, in name order."""
    out: dict[str, dict[str, Any]] = {}
    if not os.path.isdir(circuits_dir):
        return out
    for task in sorted(os.listdir(circuits_dir)):
        c = read_json(os.path.join(circuits_dir, task, "circuit.json"))
        if c is not None:
            out[task] = c
    return out


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
    from wsparse import sparsity  # the one definition of the families

    rows = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        rows.append(TensorCount("/".join(sparsity.path_names(path)), sparsity.family_of(path) or "dense",
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
