"""Writes ``RUN/report/index.html``: one self-contained page that opens offline, so a run directory can be copied or
mailed and still be read.

``write_report`` renders from the run's JSON artifacts and the values passed in; it never loads a checkpoint or runs
the model. What needs the model (parameter counts, the circuit nodes' hover statistics) is computed by the caller,
``wsparse.workflow.report_inputs(run)``, and passed in as a :class:`ReportInputs`:

    write_report(workdir, **workflow.report_inputs(run))
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence, TypedDict

from wsparse.report import artifacts, layout
from wsparse.report.node_info import NodeInfo

Log = Callable[[str], None]


class ReportInputs(TypedDict):
    """What the page shows that the artifacts do not hold; ``write_report``'s keyword arguments."""

    param_counts: list[artifacts.TensorCount] | None  # None: no checkpoint, the page says so
    node_info: dict[str, NodeInfo]  # "LOCATION:INDEX" -> hover statistics
    step: int | None  # the checkpoint step the counts and statistics come from


def write_report(workdir: str, *, param_counts: Sequence[artifacts.TensorCount] | None = None,
                 node_info: Mapping[str, NodeInfo] | None = None, step: int | None = None,
                 generated: str | None = None, log: Log = print) -> str:
    """Writes ``workdir/report/index.html`` and returns its path.

    Reads ``config.json``, ``metrics.jsonl``, ``tasks.json`` and ``circuits/*/circuit.json``; any may be missing.
    Without ``param_counts`` the page says they are unavailable; without ``node_info`` the diagrams have no hover
    statistics; ``step`` defaults to the step tasks.json was evaluated at. ``generated`` replaces the page's
    timestamp (for reproducible pages).
    """
    art = artifacts.read_run(workdir)
    for task, err in art.circuit_errors.items():
        log(f"report: circuit of {task} left out: {err}")
    page = layout.render_page(art, counts=param_counts, node_info=node_info or {},
                              step=step if step is not None else art.task_step, generated=generated)
    path = os.path.join(workdir, "report", "index.html")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return path
