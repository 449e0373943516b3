"""The report page's layout: one self-contained HTML string (inline CSS, SVG and a few lines of JS) built from a
run's artifacts and the values the caller passes in. Pure: nothing here reads files other than the page's own static
assets (``static/report.css``, ``static/report.js``) or touches a model.

Table cells carry ``data-task``/``data-key``/``data-value`` attributes holding the exact artifact value, so tests
(and scripts) can read the page back reliably.
"""

from __future__ import annotations

import datetime
import functools
import html
import importlib.resources
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from wsparse.circuits import graph
from wsparse.circuits.record import CircuitRecord
from wsparse.report import artifacts, circuit_svg, plots
from wsparse.report.node_info import NodeInfo


@functools.cache
def static(name: str) -> str:
    """A file of ``wsparse/report/static`` (package data)."""
    return importlib.resources.files("wsparse.report").joinpath("static", name).read_text(encoding="utf-8")


# Task-table columns: (key, header, tooltip). Values come from `task_values`.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("unpruned_loss", "loss", "unpruned model's task loss (test split, per sequence)"),
    ("accuracy", "acc.", "unpruned model's accuracy"),
    ("n", "pairs", "test pairs evaluated"),
    ("n_nodes", "nodes", "kept nodes"),
    ("n_edges", "edges", "nonzero weights between kept nodes: the circuit size"),
    ("circuit_loss", "loss", "test loss of the circuit alone (everything else ablated); green when it meets the "
                             "target (sufficiency)"),
    ("circuit_loss_cal", "calib.", "the same after the scale-and-shift calibration of the logits"),
    ("necessity_loss", "loss", "inverse pruning: the full model's test loss with only the circuit ablated"),
    ("necessity_increase", "Δ", "inverse pruning: increase over the unpruned test loss"),
    ("random_mean", "mean loss", "mean test loss of random circuits with the same node count per location"),
    ("random_frac", "ok", "fraction of those random circuits meeting the target"),
    ("attribution_edges", "edges", "attribution pruning (top nodes by |gradient x (activation - mean)|, same "
                                   "bisection): edges of its smallest circuit meeting the target"),
    ("attribution_loss", "loss@", "attribution pruning: test loss at the learned circuit's size"),
)
# circuit.json's n_edges keys, in the order the diagram reads (graph.EDGE_TYPES' order): q/k/v split out.
EDGE_TYPES = tuple(graph.EDGE_TYPES)
GROUPS = (("", 1), ("unpruned model", 3), ("circuit", 2), ("sufficiency", 2), ("necessity", 2),
          ("random control", 2), ("attribution baseline", 2))


def task_values(task_eval: Mapping[str, Any] | None, c: CircuitRecord | None) -> dict[str, Any]:
    """One task's row: the unpruned evaluation (tasks.json) and the circuit and its validation (circuit.json)."""
    task_eval = task_eval or {}
    v: dict[str, Any] = {"unpruned_loss": task_eval.get("loss", c.unpruned_loss.get("test") if c else None),
                         "accuracy": task_eval.get("accuracy"), "n": task_eval.get("n")}
    if c is not None and c.is_solved:
        val, loss = c.validation, c.circuit_loss
        attr = val.attribution_baseline
        v |= {
            "n_nodes": c.n_nodes,
            "n_edges": c.edges_total,
            "circuit_loss": loss.get("test"),
            "circuit_loss_cal": loss.get("test_calibrated"),
            "sufficient": c.sufficient,
            "necessity_loss": val.necessity.loss,
            "necessity_increase": val.necessity.increase,
            "random_mean": val.random_controls.mean,
            "random_frac": val.random_controls.frac_meeting_target,
            "attribution_edges": attr.n_edges if attr else None,
            "attribution_loss": attr.test_loss_at_learned_size if attr else None,
        }
    return v


# ---------------------------------------------------------------------------------------------------------------------
# Formatting.


def fmt(value: Any) -> str:
    """How a number is shown: integers in full with thin separators, floats to 3 significant decimals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            return str(x)
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.2e}"
        return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"
    return str(value)


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _cell(task: str, key: str, value: Any, cls: str = "num") -> str:
    data = "" if value is None else f' data-value="{_esc(json.dumps(value))}"'
    return f'<td class="{cls}" data-task="{_esc(task)}" data-key="{key}"{data}>{_esc(fmt(value))}</td>'


# ---------------------------------------------------------------------------------------------------------------------
# Sections.


def _config_section(cfg: Mapping[str, Any]) -> str:
    shown = ("model", "sparsity", "optim", "train")
    parts = []
    for sect in shown:
        rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_short(v))}</td></tr>" for k, v in cfg.get(sect, {}).items())
        parts.append(f'<table class="kv"><caption>{sect}</caption>{rows}</table>')
    rest = {k: v for k, v in cfg.items() if k not in shown}
    full = _esc(json.dumps(rest, indent=2, sort_keys=True))
    return (f'<div class="kvgrid">{"".join(parts)}</div>'
            f'<details><summary>data, pruning and other settings</summary><pre>{full}</pre></details>')


def _short(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) if v else "(none)"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _counts_section(rows: Sequence[artifacts.TensorCount] | None) -> str:
    if rows is None:
        return '<p class="note">No checkpoint could be loaded: parameter counts are unavailable.</p>'
    totals = artifacts.family_totals(list(rows))
    body = []
    for fam in (*artifacts.FAMILIES, "total"):
        n, size, nnz = totals[fam]
        dens = nnz / size if size else None
        cls = ' class="total"' if fam == "total" else ""
        body.append(f'<tr{cls}><th>{fam}</th>'
                    + "".join(f'<td class="num" data-family="{fam}" data-key="{k}" data-value="{val}">{fmt(val)}</td>'
                              for k, val in (("tensors", n), ("params", size), ("nonzero", nnz)))
                    + f'<td class="num">{"–" if dens is None else f"{dens:.2%}"}</td></tr>')
    per = "".join(f'<tr><td><code>{_esc(r.path)}</code></td><td>{r.family}</td><td>{"×".join(map(str, r.shape))}'
                  f'</td><td class="num">{fmt(r.size)}</td><td class="num">{fmt(r.nonzero)}</td>'
                  f'<td class="num">{r.nonzero / max(r.size, 1):.2%}</td></tr>' for r in rows)
    return ('<table class="data counts"><thead><tr><th>family</th><th>tensors</th><th>parameters</th><th>nonzero</th>'
            f'<th>density</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
            '<details><summary>per tensor</summary><table class="data"><thead><tr><th>tensor</th><th>family</th>'
            '<th>shape</th><th>parameters</th><th>nonzero</th><th>density</th></tr></thead>'
            f'<tbody>{per}</tbody></table></details>')


def _tasks_section(task_names: Sequence[str], evals: Mapping[str, Any], circuits: Mapping[str, CircuitRecord],
                   errors: Mapping[str, str], target: float) -> str:
    head = "".join(f'<th title="{_esc(tip)}">{_esc(h)}</th>' for _, h, tip in COLUMNS)
    groups = '<tr class="groups">' + "".join(f'<th colspan="{n}">{_esc(g)}</th>' for g, n in GROUPS) + "</tr>"
    starts = {sum(n for _, n in GROUPS[1:g]) for g in range(1, len(GROUPS))}  # first column of each group
    body = []
    for t in task_names:
        c = circuits.get(t)
        v = task_values(evals.get(t), c)
        if c is not None and c.is_solved:
            status = f'<a href="#circuit-{_esc(t)}">{_esc(t)}</a>'
            ok = v.get("sufficient")
            cls = "ok" if ok else ("bad" if ok is False else "")
        else:
            status, cls = _esc(t), "muted"
        cells = []
        for i, (key, _, _) in enumerate(COLUMNS):
            extra = " suff-ok" if key == "circuit_loss" and v.get("sufficient") else (
                " suff-bad" if key == "circuit_loss" and v.get("sufficient") is False else "")
            cells.append(_cell(t, key, v.get(key), "num" + extra + (" gs" if i in starts else "")))
        note = ""
        if t in errors:
            note = f' <span class="tag" title="{_esc(errors[t])}">unreadable circuit.json</span>'
        elif c is None or not c.is_solved:
            loss = v.get("unpruned_loss")
            why = "not solved" if c is not None or loss is None or loss > target else "not pruned"
            msg = (c.message if c is not None else None) or (
                f"unpruned loss above the target {fmt(target)}" if why == "not solved" else "no circuit.json yet")
            note = f' <span class="tag" title="{_esc(msg)}">{why}</span>'
        body.append(f'<tr class="{cls}" data-task="{_esc(t)}"><th class="task">{status}{note}</th>{"".join(cells)}'
                    "</tr>")
    return (f'<table class="data tasks" id="tasks-table"><thead>{groups}<tr><th>task</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _circuit_section(task: str, c: CircuitRecord, n_layer: int, d_head: int | None,
                     node_info: Mapping[str, NodeInfo]) -> str:
    v = task_values(None, c)
    by_type = c.n_edges or {}
    types = ", ".join(f"{k.replace('->', ' → ')} {by_type[k]}" for k in EDGE_TYPES if by_type.get(k))
    target = c.target_loss
    summary = (f'<p class="stats"><b>{fmt(v["n_nodes"])}</b> nodes, <b>{fmt(v["n_edges"])}</b> edges'
               f'{f" ({_esc(types)})" if types else ""}. Circuit test loss <b>{fmt(v["circuit_loss"])}</b> '
               f'(calibrated {fmt(v["circuit_loss_cal"])}), target {fmt(target)}; unpruned '
               f'{fmt(c.unpruned_loss.get("test"))}; ablation: '
               f'{_esc(c.ablation)}.</p>')
    svg = circuit_svg.render(c.nodes or {}, c.edges or (), n_layer, node_info=node_info, d_head=d_head,
                             dom_id=f"svg-{task}")
    card = _card(task, c.validation.controls if c.validation else None)
    return (f'<section class="circuit" id="circuit-{_esc(task)}"><h3>{_esc(task)}</h3>{summary}{card}'
            f'<div class="diagram">{svg}</div></section>')


def _card(task: str, card: Mapping[str, Any] | None) -> str:
    """The faithfulness card (circuits.faithfulness): per control its verdict, numbers and one-line meaning."""
    if not card:
        return ('<p class="note">No faithfulness card: <code>python -m experiments.faithfulness '
                '--workdir=RUN</code> computes it.</p>')
    rows = []
    for name, verdict in card.get("verdicts", {}).items():
        c = card.get(name, {})
        seconds = card.get("seconds", {}).get(name)
        rows.append(f'<tr><th class="task">{_esc(name)}</th><td class="verdict v-{_esc(verdict.replace("/", ""))}" '
                    f'data-task="{_esc(task)}" data-key="card.{_esc(name)}" data-value="{_esc(verdict)}">'
                    f'{_esc(verdict)}</td><td>{_esc(c.get("summary", ""))}</td>'
                    f'<td class="meaning">{_esc(c.get("meaning", ""))}</td>'
                    f'<td class="num">{"–" if seconds is None else f"{seconds:.0f} s"}</td></tr>')
    flags = card.get("flags") or []
    head = (f'<p class="stats">Faithfulness card: <b>{len(flags)}</b> of {len(rows)} controls flagged'
            f'{": " + _esc(", ".join(flags)) if flags else ""} (all numbers on the test split).</p>')
    return (f'{head}<table class="data card"><thead><tr><th>control</th><th>verdict</th><th>result</th>'
            f'<th>what it asks</th><th>time</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


LEGEND = (
    '<div class="legend"><span><svg width="34" height="10"><line x1="0" y1="5" x2="34" y2="5" stroke="'
    f'{circuit_svg.POS_COLOR}" stroke-width="3"/></svg> positive weight</span><span><svg width="34" height="10">'
    f'<line x1="0" y1="5" x2="34" y2="5" stroke="{circuit_svg.NEG_COLOR}" stroke-width="3"/></svg> negative weight'
    '</span><span>width ∝ |weight| (per circuit)</span><span><svg width="34" height="10"><line x1="0" y1="5" x2="34" '
    'y2="5" stroke="#b8b8b8" stroke-dasharray="2 3"/></svg> same residual channel</span>'
    + "".join(f'<span><svg width="14" height="14"><circle cx="7" cy="7" r="6" fill="{circuit_svg.FILL[k]}" '
              f'stroke="#444"/></svg> {k}</span>'
              for k in ("attn.act_in", "attn.q", "attn.k", "attn.v", "attn.resid_delta", "mlp.post_act"))
    + "<span>hover a node: its mean activation and top pretraining contexts</span></div>")


def _geomean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def render_page(art: artifacts.RunArtifacts, *, counts: Sequence[artifacts.TensorCount] | None,
                node_info: Mapping[str, NodeInfo], step: int | None, generated: str | None = None) -> str:
    """The whole page as a string: the run's artifacts, the parameter counts (None: no checkpoint), the circuit
    nodes' hover statistics and the checkpoint step. Pure but for the clock (``generated`` overrides it)."""
    cfg, curves, evals, circuits, errors = art.cfg, art.curves, art.evals, art.circuits, art.circuit_errors
    model_cfg = cfg.get("model", {})
    n_layer = int(model_cfg.get("n_layer", 1))
    d_head = model_cfg.get("d_head")
    target = float((cfg.get("prune") or {}).get("target_loss", 0.15))
    names = list(evals) + sorted(t for t in {*circuits, *errors} if t not in evals)
    solved = [t for t in names if t in circuits and circuits[t].is_solved]
    meets = [t for t, e in evals.items() if e.get("loss") is not None and e["loss"] <= target]
    gm = _geomean([circuits[t].edges_total or 0 for t in solved])
    run_name = cfg.get("name", os.path.basename(os.path.abspath(art.workdir)))

    loss_svg, sched_svg = plots.loss_curves(curves), plots.schedule_curves(curves)
    figs = "".join(f"<figure>{s}</figure>" for s in (loss_svg, sched_svg) if s) or \
        '<p class="note">metrics.jsonl is empty or missing.</p>'
    last_train = curves.train.get("loss", [])[-1:]
    last_eval = curves.eval_loss[-1:]
    by_kind = {kind: curves.train.get(f"eval_loss_{kind}", [])[-1:] for kind in ("real", "synthetic")}
    finals = "; ".join(x for x in (
        f"final train loss {fmt(last_train[0][1])} (step {last_train[0][0]})" if last_train else "",
        f"final validation loss {fmt(last_eval[0][1])} (step {last_eval[0][0]})" if last_eval else "",
        *(f"on {kind} documents {fmt(v[0][1])}" for kind, v in by_kind.items() if v)) if x)

    circuit_html = "".join(_circuit_section(t, circuits[t], n_layer, d_head, node_info) for t in solved) or \
        '<p class="note">No circuits yet.</p>'
    unsolved = [t for t in names if t not in solved]
    if solved and unsolved:
        circuit_html += f'<p class="note">No circuit for: {_esc(", ".join(unsolved))}.</p>'
    circuit_html += "".join(f'<p class="note error" data-task="{_esc(t)}">Unreadable: {_esc(e)}</p>'
                            for t, e in errors.items())

    info_json = json.dumps({k: v.to_json() for k, v in node_info.items()}).replace("</", "<\\/")
    when = generated or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    headline = (f"{len(meets)} of {len(evals)} tasks solved by the unpruned model (loss ≤ {fmt(target)}); "
                f"{len(solved)} circuits" + (f", geometric mean {gm:.1f} edges" if gm else "") + ".")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>wsparse report: {_esc(run_name)}</title><style>
{static("report.css")}</style></head>
<body><main>
<h1>wsparse report: {_esc(run_name)}</h1>
<div class="sub">{_esc(os.path.abspath(art.workdir))} · checkpoint step {fmt(step)} · generated {when}</div>
<p id="headline">{_esc(headline)}</p>
<nav><a href="#model">Model</a><a href="#tasks">Tasks</a><a href="#circuits">Circuits</a></nav>
<h2 id="model">Model</h2>
{_config_section(cfg)}
<h3>Parameters per tensor family</h3>
{_counts_section(counts)}
<h3>Training</h3>
<p class="stats">{_esc(finals)}</p>
<div class="plots">{figs}</div>
<h2 id="tasks">Tasks</h2>
<p class="sub">Unpruned evaluation at step {fmt(art.task_step)} on the {_esc(art.task_split)} split. Task loss is per
sequence over the two candidate tokens; target {fmt(target)}. The circuit's loss is shaded green when the circuit
alone meets the target (sufficiency), red when it does not. Hover a column header for its meaning.</p>
{_tasks_section(names, evals, circuits, errors, target)}
<h2 id="circuits">Circuits</h2>
{LEGEND}
{circuit_html}
</main><div id="tip"></div>
<script type="application/json" id="node-info">{info_json}</script>
<script>
{static("report.js")}</script>
</body></html>
"""


