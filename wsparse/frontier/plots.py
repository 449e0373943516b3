"""The frontier's figures (SVG, matplotlib's Agg backend, as wsparse/report/plots.py) and its one-page index.html in
the run report's style."""

from __future__ import annotations

import html
import os
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_RC = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
       "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "wsparse"}
COLORS = {"sparse": "#1f77b4", "dense": "#d62728"}


def _svg(fig) -> str:
    from wsparse.report.plots import to_svg

    return to_svg(fig)


def figure3(out: Mapping[str, Any]) -> str | None:
    """x = validation loss, y = geometric-mean circuit edges over each member's solved tasks (log), one line per
    family, each point labelled with its width, interior density and the number of tasks it solved."""
    members = [m for m in out["members"] if m["val_loss"] is not None]
    if not members:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for family in ("sparse", "dense"):
            fam = sorted((m for m in members if m["family"] == family), key=lambda m: m["val_loss"])
            solved = [m for m in fam if m["geomean_edges"] is not None]
            if solved:
                ax.plot([m["val_loss"] for m in solved], [m["geomean_edges"] for m in solved], color=COLORS[family],
                        marker="o" if family == "sparse" else "s", lw=1.3, ms=5, label=f"{family}")
            for m in fam:
                if m["geomean_edges"] is None:
                    ax.axvline(m["val_loss"], color=COLORS[family], lw=0.8, ls=":", alpha=0.6)
                    ax.annotate(f"{m['label']} (0)", (m["val_loss"], 0.03), xycoords=("data", "axes fraction"),
                                rotation=90, fontsize=7, color=COLORS[family], xytext=(-9, 0),
                                textcoords="offset points")
                    continue
                ax.annotate(f"{m['label']} ({m['n_solved']})", (m["val_loss"], m["geomean_edges"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7, color=COLORS[family])
        h = out["headline"]
        if h["matched_val_loss"] is not None:
            ax.axvline(h["matched_val_loss"], color="#555", lw=0.8, ls="--", label="matched loss (headline)")
        ax.set_yscale("log")
        ax.set_xlabel("pretraining validation loss (mean of library code and generated programs)")
        ax.set_ylabel("circuit edges, geometric mean over solved tasks")
        ax.set_title("Sparse vs dense frontier (label: model (tasks solved); dotted: none solved)")
        ax.legend(frameon=False, fontsize=8)
        return _svg(fig)


def figure2(out: Mapping[str, Any]) -> str | None:
    """The loss-matched pair: task loss target vs geometric-mean circuit edges over the tasks both prune."""
    fig2 = out["figure2"]
    rows = [r for r in fig2.get("targets", []) if r["tasks"]]
    if not rows:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.8))
        for family in ("sparse", "dense"):
            xs = [r[family]["geomean_edges"] for r in rows]
            ys = [r["target"] for r in rows]
            ax.plot(xs, ys, color=COLORS[family], marker="o" if family == "sparse" else "s", lw=1.3, ms=5,
                    label=f"{family}: {fig2['pair'][family]}")
            for r in rows:
                ax.annotate(f"n={len(r['tasks'])}", (r[family]["geomean_edges"], r["target"]),
                            textcoords="offset points", xytext=(4, 3), fontsize=7, color=COLORS[family])
        ax.set_xscale("log")
        ax.set_xlabel("circuit edges, geometric mean over the tasks both models prune (n)")
        ax.set_ylabel("task loss target")
        ax.set_title("Loss-matched pair: circuit size vs task loss")
        ax.legend(frameon=False, fontsize=8)
        return _svg(fig)


def _fmt(v: Any, spec: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return format(v, spec)


def members_table(out: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the members table (shared by index.html and docs): name, family, label, lr, params, nonzero,
    val loss, tasks solved, geometric-mean edges."""
    rows = [["member", "family", "model", "lr", "params", "nonzero", "nonzero w/o bigram", "val loss", "solved",
             "geomean edges"]]
    for m in sorted(out["members"], key=lambda m: (m["family"], m["val_loss"] or 0)):
        rows.append([m["name"], m["family"], m["label"], f"{m['lr']:g}", _fmt(m["n_params"]), _fmt(m["n_nonzero"]),
                     _fmt(m.get("n_nonzero_no_bigram")), _fmt(m["val_loss"]), str(m["n_solved"]),
                     _fmt(m["geomean_edges"], ",.0f")])
    return rows


def index_html(out: Mapping[str, Any], figures: Mapping[str, str | None]) -> str:
    from wsparse.frontier.pipeline import headline_line
    from wsparse.report.layout import static

    esc = html.escape
    table = members_table(out)
    head = "".join(f"<th>{esc(c)}</th>" for c in table[0])
    body = "".join("<tr>" + "".join(f'<td class="num">{esc(c)}</td>' if i > 2 else f"<th class=\"task\">{esc(c)}</th>"
                                    if i == 0 else f"<td>{esc(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in table[1:])
    h = out["headline"]
    per_task = "".join(f"<tr><th class=\"task\">{esc(t)}</th><td class=\"num\">{r['dense_edges']:,.0f}</td>"
                       f"<td class=\"num\">{r['sparse_edges']:,.0f}</td><td class=\"num\">{r['ratio']:.1f}</td></tr>"
                       for t, r in h["per_task"].items())
    figs = "".join(f"<h2>{esc(title)}</h2>{svg}" for title, svg in figures.items() if svg)
    missing = f"<p class=\"note\">not finished: {esc(', '.join(out['missing']))}</p>" if out["missing"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>wsparse frontier: {esc(out['name'])}</title><style>
{static("report.css")}
svg{{max-width:760px;height:auto;display:block}}</style></head>
<body><main>
<h1>Sparse vs dense frontier: {esc(out['name'])}</h1>
<p class="sub">{esc(headline_line(out))}</p>
<p class="sub">{esc(h['method'])}. {esc(out['val_loss'])}. Learning rates: {esc(out['lr_objective'])}.</p>
<p class="sub">Pruning budget (every member): {esc(str(out['prune']))}</p>
{missing}
<h2>Members</h2>
<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Headline tasks</h2>
<table class="data"><thead><tr><th>task</th><th>dense edges</th><th>sparse edges</th><th>ratio</th></tr></thead>
<tbody>{per_task}</tbody></table>
{figs}
</main></body></html>
"""


def write_all(workdir: str, out: Mapping[str, Any]) -> dict[str, str]:
    """figure3.svg, figure2.svg (when there is something to draw) and index.html in ``workdir``; returns paths."""
    figures = {"Figure 3: frontier": figure3(out), "Figure 2: loss-matched pair": figure2(out)}
    paths = {}
    for (title, svg), fname in zip(figures.items(), ("figure3.svg", "figure2.svg")):
        if svg is None:
            continue
        path = os.path.join(workdir, fname)
        with open(path, "w") as f:
            f.write(svg)
        paths[fname] = path
    paths["index.html"] = os.path.join(workdir, "index.html")
    with open(paths["index.html"], "w") as f:
        f.write(index_html(out, figures))
    return paths


def markdown(out: Mapping[str, Any]) -> str:
    """The members table, the headline's tasks and the Figure 2 rows as Markdown (for docs/results)."""
    table = members_table(out)
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
    h = out["headline"]
    lines += ["", "| task | dense edges | sparse edges | dense / sparse |", "|---|---|---|---|"]
    lines += [f"| {t} | {r['dense_edges']:,.0f} | {r['sparse_edges']:,.0f} | {r['ratio']:.1f} |"
              for t, r in h["per_task"].items()]
    fig2 = out["figure2"]
    if fig2.get("targets"):
        lines += ["", f"| target | tasks | sparse ({fig2['pair']['sparse']}) geomean edges | dense "
                      f"({fig2['pair']['dense']}) geomean edges |", "|---|---|---|---|"]
        lines += [f"| {r['target']:g} | {len(r['tasks'])} | {_fmt(r['sparse']['geomean_edges'], ',.0f')} | "
                  f"{_fmt(r['dense']['geomean_edges'], ',.0f')} |" for r in fig2["targets"]]
    return "\n".join(lines)
