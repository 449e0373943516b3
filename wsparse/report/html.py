"""Assembles ``RUN/report/index.html``: one self-contained page (inline CSS, SVG and a few lines of JS) that opens
offline, so a run directory can be copied or mailed and still be read.

Every number the page shows comes from the run's JSON artifacts; table cells carry ``data-task``/``data-key``/
``data-value`` attributes holding the exact artifact value, so tests (and scripts) can read the page back reliably.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from wsparse.report import artifacts, circuit_svg, plots
from wsparse.report.node_info import NodeInfo

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------------------------
# Reading the circuit artifact. The keys below are the artifact format of wsparse.circuits (issue 5).


def _get(d: Any, path: str, default: Any = None) -> Any:
    """``d["a"]["b"]`` for ``path="a.b"``; ``default`` when any step is missing."""
    for key in path.split("."):
        if not isinstance(d, Mapping) or key not in d:
            return default
        d = d[key]
    return d


def n_edges_total(c: Mapping[str, Any]) -> int | None:
    return _get(c, "n_edges.total")


def is_solved(c: Mapping[str, Any]) -> bool:
    """``status`` is "ok" for a circuit and "unsolved" when the unpruned model misses the target (no nodes then)."""
    return c.get("status") == "ok"


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
# circuit.json's n_edges keys (wsparse.circuits.graph), in the order the diagram reads: q/k/v split out.
EDGE_TYPES = ("attn.act_in->q", "attn.act_in->k", "attn.act_in->v", "attn.v->resid_delta", "mlp.act_in->post_act",
              "mlp.post_act->resid_delta")
GROUPS = (("", 1), ("unpruned model", 3), ("circuit", 2), ("sufficiency", 2), ("necessity", 2),
          ("random control", 2), ("attribution baseline", 2))


def task_values(task_eval: Mapping[str, Any] | None, c: Mapping[str, Any] | None) -> dict[str, Any]:
    """One task's row: the unpruned evaluation (tasks.json) and the circuit and its validation (circuit.json)."""
    task_eval = task_eval or {}
    c = c or {}
    v: dict[str, Any] = {"unpruned_loss": task_eval.get("loss", _get(c, "unpruned_loss.test")),
                         "accuracy": task_eval.get("accuracy"), "n": task_eval.get("n")}
    if is_solved(c):
        v |= {
            "n_nodes": c.get("n_nodes"),
            "n_edges": n_edges_total(c),
            "circuit_loss": _get(c, "circuit_loss.test"),
            "circuit_loss_cal": _get(c, "circuit_loss.test_calibrated"),
            "sufficient": _get(c, "validation.sufficiency.meets_target"),
            "necessity_loss": _get(c, "validation.necessity.loss"),
            "necessity_increase": _get(c, "validation.necessity.increase"),
            "random_mean": _get(c, "validation.random_controls.mean"),
            "random_frac": _get(c, "validation.random_controls.frac_meeting_target"),
            "attribution_edges": _get(c, "validation.attribution_baseline.n_edges"),
            "attribution_loss": _get(c, "validation.attribution_baseline.test_loss_at_learned_size"),
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


def _tasks_section(task_names: Sequence[str], evals: Mapping[str, Any], circuits: Mapping[str, Any],
                   target: float) -> str:
    head = "".join(f'<th title="{_esc(tip)}">{_esc(h)}</th>' for _, h, tip in COLUMNS)
    groups = '<tr class="groups">' + "".join(f'<th colspan="{n}">{_esc(g)}</th>' for g, n in GROUPS) + "</tr>"
    starts = {sum(n for _, n in GROUPS[1:g]) for g in range(1, len(GROUPS))}  # first column of each group
    body = []
    for t in task_names:
        c = circuits.get(t)
        v = task_values(evals.get(t), c)
        if c is not None and is_solved(c):
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
        if c is None or not is_solved(c):
            loss = v.get("unpruned_loss")
            why = "not solved" if c is not None or loss is None or loss > target else "not pruned"
            msg = (c or {}).get("message") or (f"unpruned loss above the target {fmt(target)}" if why == "not solved"
                                               else "no circuit.json yet")
            note = f' <span class="tag" title="{_esc(msg)}">{why}</span>'
        body.append(f'<tr class="{cls}" data-task="{_esc(t)}"><th class="task">{status}{note}</th>{"".join(cells)}'
                    "</tr>")
    return (f'<table class="data tasks" id="tasks-table"><thead>{groups}<tr><th>task</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _circuit_section(task: str, c: Mapping[str, Any], n_layer: int, d_head: int | None,
                     node_info: Mapping[str, NodeInfo]) -> str:
    v = task_values(None, c)
    by_type = c.get("n_edges") or {}
    types = ", ".join(f"{k.replace('->', ' → ')} {by_type[k]}" for k in EDGE_TYPES if by_type.get(k))
    target = c.get("target_loss")
    summary = (f'<p class="stats"><b>{fmt(v["n_nodes"])}</b> nodes, <b>{fmt(v["n_edges"])}</b> edges'
               f'{f" ({_esc(types)})" if types else ""}. Circuit test loss <b>{fmt(v["circuit_loss"])}</b> '
               f'(calibrated {fmt(v["circuit_loss_cal"])}), target {fmt(target)}; unpruned '
               f'{fmt(_get(c, "unpruned_loss.test"))}; ablation: '
               f'{_esc(c.get("ablation", "mean"))}.</p>')
    svg = circuit_svg.render(c.get("nodes", {}), c.get("edges", []), n_layer, node_info=node_info, d_head=d_head,
                             dom_id=f"svg-{task}")
    return (f'<section class="circuit" id="circuit-{_esc(task)}"><h3>{_esc(task)}</h3>{summary}'
            f'<div class="diagram">{svg}</div></section>')


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

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fff;line-height:1.4}
main{max-width:1280px;margin:0 auto;padding:16px 28px 60px}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:30px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 4px}
.sub{color:#666;font-size:13px}.note{color:#666;font-style:italic}
nav a{margin-right:14px;font-size:13px}
.kvgrid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
table.kv{border-collapse:collapse;font-size:12px}table.kv caption{text-align:left;font-weight:600;padding:2px 0}
table.kv th{text-align:left;font-weight:normal;color:#555;padding:1px 10px 1px 0;vertical-align:top}
table.kv td{padding:1px 0;font-family:ui-monospace,monospace;max-width:260px;overflow-wrap:anywhere}
table.data{border-collapse:collapse;font-size:13px;margin:6px 0}
table.data th,table.data td{padding:3px 8px;border-bottom:1px solid #eee}
table.data thead th{border-bottom:2px solid #ccc;text-align:right;white-space:nowrap}
table.data thead th:first-child,table.counts tbody th{text-align:left}
table.data tr.groups th{border-bottom:1px solid #ddd;text-align:center;color:#666;font-weight:500;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,monospace;font-size:12px}
th.task{text-align:left;font-weight:500;white-space:nowrap}
tr.total th,tr.total td{font-weight:700;border-top:2px solid #ccc}
tr.muted th,tr.muted td{color:#999}
td.gs{border-left:1px solid #e3e3e3}
td.suff-ok{background:#e7f5e4}td.suff-bad{background:#fbe5e3}
.tag{font-size:11px;color:#a33;background:#fbeeee;border-radius:3px;padding:0 4px;margin-left:4px}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}.plots svg{width:580px;max-width:100%;height:auto}
.diagram{overflow-x:auto;width:fit-content;max-width:100%;border:1px solid #e5e5e5;border-radius:6px;background:#fff}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;color:#555;margin:8px 0}
.legend span{display:inline-flex;align-items:center;gap:4px}
.stats{font-size:13px;margin:2px 0 8px}
details{margin:6px 0;font-size:13px}pre{font-size:12px;background:#f7f7f7;padding:8px;overflow:auto}
svg.circuit .node{cursor:pointer}
svg.circuit .node:hover circle,svg.circuit .node.hl circle{stroke:#000;stroke-width:2.2}
svg.circuit.focus .edge{stroke-opacity:.07}svg.circuit.focus .edge.hl{stroke-opacity:1}
svg.circuit.focus .node{opacity:.35}svg.circuit.focus .node.hl{opacity:1}
#tip{position:fixed;display:none;pointer-events:none;max-width:520px;background:#fff;border:1px solid #bbb;
border-radius:6px;box-shadow:0 3px 12px rgba(0,0,0,.18);padding:8px 10px;font-size:12px;z-index:10}
#tip .ctx{font-family:ui-monospace,monospace;white-space:pre;font-size:11.5px;color:#444}
#tip mark{background:#ffe08a;color:#000;padding:0 1px}#tip table{border-collapse:collapse}
#tip td{padding:1px 6px 1px 0;vertical-align:top}
"""

JS = """
(function(){
const info=JSON.parse(document.getElementById('node-info').textContent);
const tip=document.getElementById('tip');
const esc=s=>s.replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const vis=s=>esc(s).replace(/\\n/g,'⏎').replace(/\\t/g,'→');
const fmt=x=>Math.abs(x)>=1e-3||x===0?x.toFixed(3):x.toExponential(2);
document.querySelectorAll('svg.circuit .node').forEach(g=>{
  const t=g.querySelector('title'); const plain=t?t.textContent:''; if(t) t.remove();
  const name=g.dataset.node, svg=g.ownerSVGElement;
  g.addEventListener('mouseenter',()=>{
    const d=info[name]; const head=plain.split('\\n')[1]||'';
    let h='<b>'+esc(name)+'</b>'+(head.startsWith('head')?' <span style="color:#777">('+esc(head)+')</span>':'');
    if(d){h+='<div>mean activation: <b>'+fmt(d.mean)+'</b></div>';
      if(d.top.length){
        h+='<div style="margin-top:4px;color:#555">top pretraining contexts (value: …context[token])</div><table>';
        d.top.forEach(c=>{h+='<tr><td>'+fmt(c.value)+'</td><td class="ctx">…'+vis(c.prefix)+'<mark>'
          +vis(c.token)+'</mark></td></tr>';});
        h+='</table>';}}
    else h+='<div style="color:#777">no activation statistics</div>';
    tip.innerHTML=h; tip.style.display='block';
    svg.classList.add('focus'); g.classList.add('hl');
    svg.querySelectorAll('.edge').forEach(e=>{if(e.dataset.s===name||e.dataset.d===name){e.classList.add('hl');
      const o=e.dataset.s===name?e.dataset.d:e.dataset.s;
      const n=svg.querySelector('.node[data-node="'+o+'"]'); if(n) n.classList.add('hl');}});
  });
  g.addEventListener('mousemove',ev=>{const w=tip.offsetWidth,hh=tip.offsetHeight;
    let x=ev.clientX+14,y=ev.clientY+14;
    if(x+w>innerWidth-8)x=ev.clientX-w-14; if(y+hh>innerHeight-8)y=ev.clientY-hh-14;
    tip.style.left=x+'px'; tip.style.top=Math.max(4,y)+'px';});
  g.addEventListener('mouseleave',()=>{tip.style.display='none'; svg.classList.remove('focus');
    svg.querySelectorAll('.hl').forEach(e=>e.classList.remove('hl'));});
});
})();
"""


def _geomean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def render_page(*, cfg: Mapping[str, Any], curves: artifacts.Curves, task_step: int | None,
                task_split: str, evals: Mapping[str, Any], circuits: Mapping[str, Mapping[str, Any]],
                counts: Sequence[artifacts.TensorCount] | None, node_info: Mapping[str, NodeInfo],
                workdir: str, step: int | None) -> str:
    """The whole page as a string; pure, so tests can build one from hand-written artifacts."""
    model_cfg = cfg.get("model", {})
    n_layer = int(model_cfg.get("n_layer", 1))
    d_head = model_cfg.get("d_head")
    target = float(_get(cfg, "prune.target_loss", 0.15))
    names = list(evals) + sorted(t for t in circuits if t not in evals)
    solved = [t for t in names if t in circuits and is_solved(circuits[t])]
    meets = [t for t, e in evals.items() if e.get("loss") is not None and e["loss"] <= target]
    gm = _geomean([n_edges_total(circuits[t]) or 0 for t in solved])
    run_name = cfg.get("name", os.path.basename(os.path.abspath(workdir)))

    loss_svg, sched_svg = plots.loss_curves(curves), plots.schedule_curves(curves)
    figs = "".join(f"<figure>{s}</figure>" for s in (loss_svg, sched_svg) if s) or \
        '<p class="note">metrics.jsonl is empty or missing.</p>'
    last_train = curves.train.get("loss", [])[-1:]
    last_eval = curves.eval_loss[-1:]
    finals = "; ".join(x for x in (
        f"final train loss {fmt(last_train[0][1])} (step {last_train[0][0]})" if last_train else "",
        f"final validation loss {fmt(last_eval[0][1])} (step {last_eval[0][0]})" if last_eval else "") if x)

    circuit_html = "".join(_circuit_section(t, circuits[t], n_layer, d_head, node_info) for t in solved) or \
        '<p class="note">No circuits yet.</p>'
    unsolved = [t for t in names if t not in solved]
    if solved and unsolved:
        circuit_html += f'<p class="note">No circuit for: {_esc(", ".join(unsolved))}.</p>'

    info_json = json.dumps({k: v.to_json() for k, v in node_info.items()}).replace("</", "<\\/")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    headline = (f"{len(meets)} of {len(evals)} tasks solved by the unpruned model (loss ≤ {fmt(target)}); "
                f"{len(solved)} circuits" + (f", geometric mean {gm:.1f} edges" if gm else "") + ".")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>wsparse report: {_esc(run_name)}</title><style>{CSS}</style></head>
<body><main>
<h1>wsparse report: {_esc(run_name)}</h1>
<div class="sub">{_esc(os.path.abspath(workdir))} · checkpoint step {fmt(step)} · generated {when}</div>
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
<p class="sub">Unpruned evaluation at step {fmt(task_step)} on the {_esc(task_split)} split. Task loss is per
sequence over the two candidate tokens; target {fmt(target)}. The circuit's loss is shaded green when the circuit
alone meets the target (sufficiency), red when it does not. Hover a column header for its meaning.</p>
{_tasks_section(names, evals, circuits, target)}
<h2 id="circuits">Circuits</h2>
{LEGEND}
{circuit_html}
</main><div id="tip"></div>
<script type="application/json" id="node-info">{info_json}</script>
<script>{JS}</script>
</body></html>
"""


# ---------------------------------------------------------------------------------------------------------------------
# Entry point.


def _circuit_nodes(circuits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    out = set()
    for c in circuits.values():
        if is_solved(c):
            out |= {f"{loc}:{i}" for loc, ix in c["nodes"].items() for i in ix}
    return sorted(out)


def _cached_means(workdir: str, step: int) -> dict[str, np.ndarray] | None:
    path = os.path.join(workdir, "circuits", f"means_step{step}.npz")
    if not os.path.exists(path):
        return None
    from wsparse.circuits import means

    return means.load(path).means


def write_report(workdir: str, *, run: Any = None, node_info: Mapping[str, NodeInfo] | None = None,
                 val_tokens: np.ndarray | None = None, node_tokens: int = 32768, top_k: int = 5,
                 log: Log = print) -> str:
    """Writes ``workdir/report/index.html`` and returns its path.

    Reads ``config.json``, ``metrics.jsonl``, ``tasks.json`` and ``circuits/*/circuit.json``. ``run`` (a
    ``wsparse.load_run`` result) gives the parameter counts and, with validation tokens (``val_tokens``
    ``[n_batches, B, T]``, else ``node_tokens`` tokens of the run's validation split), the per-node hover statistics;
    it is loaded from the workdir when omitted, and the report is written without those parts if that fails.
    ``node_info`` skips that computation (tests, or a caller that has it already).
    """
    cfg = artifacts.read_json(os.path.join(workdir, "config.json")) or {}
    curves = artifacts.read_metrics(os.path.join(workdir, "metrics.jsonl"))
    task_step, task_split, evals = artifacts.read_tasks(os.path.join(workdir, "tasks.json"))
    circuits = artifacts.read_circuits(os.path.join(workdir, "circuits"))

    if run is None:
        try:
            import wsparse

            run = wsparse.load_run(workdir)
        except Exception as e:  # a report of a partial run is still useful; say what is missing
            log(f"report: no checkpoint loaded from {workdir} ({type(e).__name__}: {e}); "
                "parameter counts and node statistics left out")
    counts = artifacts.param_counts(run.params) if run is not None else None

    nodes = _circuit_nodes(circuits)
    if node_info is None:
        node_info = {}
        if run is not None and nodes:
            tokens = val_tokens if val_tokens is not None else run.val_tokens(node_tokens)
            log(f"report: activation statistics of {len(nodes)} circuit nodes over {tokens[..., :].size} "
                "validation tokens")
            from wsparse.report import node_info as node_info_lib

            node_info = node_info_lib.compute(run.params, run.cfg.model, run.tokenizer, tokens, nodes, top_k=top_k,
                                              means=_cached_means(workdir, run.step))

    page = render_page(cfg=cfg, curves=curves, task_step=task_step, task_split=task_split, evals=evals,
                       circuits=circuits, counts=counts,
                       node_info=node_info, workdir=workdir, step=run.step if run is not None else task_step)
    out_dir = os.path.join(workdir, "report")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "index.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return path
