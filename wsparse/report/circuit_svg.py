"""A circuit as an inline SVG diagram: layers bottom to top, kept nodes grouped by location, weighted edges.

Layout choices, each for readability:
- rows are placed with the layered-graph barycentre heuristic: every node moves toward the mean position of the nodes
  it is wired to, which removes most edge crossings and keeps a wide circuit only as wide as its widest row;
- the residual stream is the identity, not a weighted edge: the same residual channel in consecutive residual rows
  (written by one block, read by a later one) is joined by a faint dashed line and pulled into line by the layout;
- q, k and v share one row, the letter drawn in each node;
- empty rows are left out, every kept row is labelled, so a small circuit stays small.
Edges are blue when positive and red when negative, their width proportional to |weight| (relative to the largest in
the circuit). Nodes carry ``data-node`` and a ``<title>`` (native tooltip) for the page's hover script.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Iterable, Mapping, Sequence

from wsparse.report.node_info import NodeInfo, split_node

RESIDUAL = ("attn.act_in", "attn.resid_delta", "mlp.act_in", "mlp.resid_delta")
# Rows of one layer, bottom to top; the attention q/k/v row holds three locations.
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attn.act_in", ("attn.act_in",)),
    ("attn q · k · v", ("attn.q", "attn.k", "attn.v")),
    ("attn.resid_delta", ("attn.resid_delta",)),
    ("mlp.act_in", ("mlp.act_in",)),
    ("mlp.post_act", ("mlp.post_act",)),
    ("mlp.resid_delta", ("mlp.resid_delta",)),
)
FILL = {"attn.act_in": "#dbe9f6", "attn.q": "#fdd9a0", "attn.k": "#fcbba1", "attn.v": "#d9f0a3",
        "attn.resid_delta": "#cfc9e6", "mlp.act_in": "#dbe9f6", "mlp.post_act": "#c7e9c0",
        "mlp.resid_delta": "#cfc9e6"}
POS_COLOR, NEG_COLOR = "#2166ac", "#c43c39"

LEFT, RIGHT, TOP, BOTTOM = 150, 24, 34, 30  # margins (px)
ROW_H, LAYER_GAP = 46, 12
R = 7  # node radius


@dataclasses.dataclass
class _Row:
    layer: int
    label: str
    locations: tuple[str, ...]
    y: float = 0.0


def _layer_kind(location: str) -> tuple[int, str]:
    layer, _, kind = location.partition(".")
    return int(layer), kind


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def residual_links(row_nodes: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Pairs (lower, upper) of consecutive occurrences of one residual channel, rows given bottom to top."""
    last: dict[int, str] = {}
    links = []
    for nodes in row_nodes:
        for n in nodes:
            loc, ch = split_node(n)
            if _layer_kind(loc)[1] not in RESIDUAL:
                continue
            if ch in last:
                links.append((last[ch], n))
            last[ch] = n
    return links


def layout(row_nodes: Sequence[Sequence[str]], neighbours: Mapping[str, Sequence[tuple[str, float]]],
           gap: float, low: float, high: float, sweeps: int = 6) -> dict[str, float]:
    """x of every node: rows start evenly spread in channel order, then alternate upward and downward sweeps move
    each row's nodes toward the weighted mean x of their neighbours (layered-graph barycentre heuristic)."""
    x: dict[str, float] = {}
    for nodes in row_nodes:
        step = (high - low) / max(len(nodes), 1)
        x |= {n: low + (i + 0.5) * step for i, n in enumerate(nodes)}
    order = list(range(len(row_nodes)))
    for sweep in range(sweeps):
        for i in (order if sweep % 2 == 0 else order[::-1]):
            nodes = row_nodes[i]
            want = []
            for n in nodes:
                nb = neighbours.get(n, ())
                total = sum(w for _, w in nb)
                want.append(sum(x[m] * w for m, w in nb) / total if total else x[n])
            row_gap = min(max(gap, (high - low) / max(len(nodes), 1)), 3 * gap)  # sparse rows get room
            x |= dict(zip(nodes, spread(want, row_gap, low, high)))
    return x


def spread(want: Sequence[float], gap: float, low: float, high: float) -> list[float]:
    """Positions as close as possible (least squares) to ``want`` while at least ``gap`` apart, kept in order.

    Pool-adjacent-violators over the sorted wishes: a cluster of nodes packed ``gap`` apart sits at the mean of its
    members' wishes; overlapping clusters merge. Then the row is clamped into ``[low, high]``.
    """
    order = sorted(range(len(want)), key=lambda i: want[i])
    clusters: list[list[float]] = []  # [sum of (wish - k*gap) over members, n members]
    for i in order:
        clusters.append([want[i], 1])
        while len(clusters) > 1:
            (s1, n1), (s2, n2) = clusters[-2], clusters[-1]
            if s1 / n1 + n1 * gap <= s2 / n2:
                break
            clusters[-2:] = [[s1 + s2 - n1 * n2 * gap, n1 + n2]]
    xs: list[float] = []
    for s, n in clusters:
        xs += [s / n + k * gap for k in range(int(n))]
    for k in range(len(xs)):  # clamp left edge, then right edge, keeping the gaps
        xs[k] = max(xs[k], low + k * gap)
    for k in range(len(xs) - 1, -1, -1):
        xs[k] = min(xs[k], high - (len(xs) - 1 - k) * gap)
    out = [0.0] * len(want)
    for rank, i in enumerate(order):
        out[i] = xs[rank]
    return out


def node_title(node: str, info: NodeInfo | None, d_head: int | None = None) -> str:
    """Plain-text tooltip: name, head (for q/k/v), mean activation, top contexts."""
    loc, ch = split_node(node)
    lines = [node]
    if d_head and loc.split(".", 1)[1] in ("attn.q", "attn.k", "attn.v"):
        lines.append(f"head {ch // d_head}, dim {ch % d_head}")
    if info is not None:
        lines.append(f"mean activation: {_fmt(info.mean)}")
        if info.top:
            lines.append("top pretraining contexts:")
            lines += [f"  {_fmt(c.value)}: …{c.prefix}[{c.token}]".replace("\n", "⏎") for c in info.top]
    return "\n".join(lines)


def render(nodes: Mapping[str, Sequence[int]], edges: Iterable[Sequence], n_layer: int, *,
           node_info: Mapping[str, NodeInfo] | None = None, d_head: int | None = None,
           target_width: float = 1030.0, dom_id: str = "circuit") -> str:
    """The diagram as an ``<svg>`` string. ``nodes``: location -> kept channels; ``edges``: [src, dst, weight]."""
    node_info = node_info or {}
    kept: dict[str, set[int]] = {loc: set(int(i) for i in ix) for loc, ix in nodes.items() if len(ix)}
    edge_list = [(str(s), str(d), float(w)) for s, d, w in edges]
    for s, d, _ in edge_list:  # an edge's ends are kept nodes by definition; tolerate a writer that omitted one
        for n in (s, d):
            loc, ch = split_node(n)
            kept.setdefault(loc, set()).add(ch)

    # Rows that have nodes, bottom (layer 0) to top.
    rows: list[_Row] = []
    for layer in range(n_layer):
        for label, kinds in ROWS:
            locs = tuple(f"{layer}.{k}" for k in kinds if kept.get(f"{layer}.{k}"))
            if locs:
                rows.append(_Row(layer, label, locs))

    row_nodes = [[f"{loc}:{ch}" for loc in r.locations for ch in sorted(kept[loc])] for r in rows]
    links = residual_links(row_nodes)
    neighbours: dict[str, list[tuple[str, float]]] = {}
    for s, d, _ in edge_list:
        neighbours.setdefault(s, []).append((d, 1.0))
        neighbours.setdefault(d, []).append((s, 1.0))
    for a, b in links:  # pull a residual channel's occurrences into line
        neighbours.setdefault(a, []).append((b, 2.0))
        neighbours.setdefault(b, []).append((a, 2.0))

    widest = max([len(n) for n in row_nodes] + [1])
    spacing = max(16.0, min(34.0, target_width / widest))
    inner_w = max(widest * spacing, 360.0, min(target_width, 60.0 * widest))  # wide rows may use the page

    # Vertical positions: y grows downwards, so layer 0 goes at the bottom.
    height = TOP + BOTTOM + ROW_H * len(rows) + LAYER_GAP * max(0, len({r.layer for r in rows}) - 1)
    y = height - BOTTOM - ROW_H / 2
    prev_layer = rows[0].layer if rows else 0
    for r in rows:
        if r.layer != prev_layer:
            y -= LAYER_GAP
            prev_layer = r.layer
        r.y = y
        y -= ROW_H

    xs = layout(row_nodes, neighbours, spacing, LEFT + spacing / 2, LEFT + inner_w - spacing / 2)
    pos = {n: (xs[n], r.y) for r, nodes_ in zip(rows, row_nodes) for n in nodes_}

    width = LEFT + inner_w + RIGHT
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="circuit" id="{html.escape(dom_id)}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="system-ui, sans-serif">']

    # Layer bands and labels.
    for layer in sorted({r.layer for r in rows}):
        ys = [r.y for r in rows if r.layer == layer]
        y0, y1 = min(ys) - ROW_H / 2 + 2, max(ys) + ROW_H / 2 - 2
        fill = "#f4f6f9" if layer % 2 == 0 else "#fbfbfb"
        out.append(f'<rect x="4" y="{y0:.1f}" width="{width - 8:.0f}" height="{y1 - y0:.1f}" rx="6" fill="{fill}"/>')
        out.append(f'<text x="14" y="{(y0 + y1) / 2 + 5:.1f}" font-size="14" font-weight="700" fill="#333">'
                   f'L{layer}</text>')
    for r in rows:
        out.append(f'<text x="{LEFT - 14}" y="{r.y + 4:.1f}" font-size="11" fill="#555" '
                   f'text-anchor="end">{html.escape(r.label)}</text>')
    out.append(f'<text x="{LEFT + inner_w / 2:.1f}" y="16" font-size="11" fill="#777" text-anchor="middle">'
               f'↑ final residual stream → ln_f → logits</text>')
    out.append(f'<text x="{LEFT + inner_w / 2:.1f}" y="{height - 8:.1f}" font-size="11" fill="#777" '
               f'text-anchor="middle">token embedding ↑</text>')

    # Residual-stream links: the same channel in consecutive residual rows (identity, not a weighted edge).
    for a, b in links:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        my = (y1 + y2) / 2
        out.append(f'<path class="guide" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{my:.1f} {x2:.1f},{my:.1f} {x2:.1f},{y2:.1f}" '
                   f'fill="none" stroke="#bbb" stroke-width="1" stroke-dasharray="2 3"/>')

    # Edges, weakest first so the strong ones are drawn on top.
    max_w = max((abs(w) for *_, w in edge_list), default=1.0) or 1.0
    out.append('<g class="edges" fill="none">')
    for s, d, w in sorted(edge_list, key=lambda e: abs(e[2])):
        if s not in pos or d not in pos:
            continue
        (x1, y1), (x2, y2) = pos[s], pos[d]
        y1, y2 = (y1 - R, y2 + R) if y1 > y2 else (y1 + R, y2 - R)
        my = (y1 + y2) / 2
        sw = 0.6 + 3.4 * abs(w) / max_w
        color = POS_COLOR if w >= 0 else NEG_COLOR
        out.append(f'<path class="edge" data-s="{html.escape(s)}" data-d="{html.escape(d)}" '
                   f'd="M{x1:.1f},{y1:.1f} C{x1:.1f},{my:.1f} {x2:.1f},{my:.1f} {x2:.1f},{y2:.1f}" '
                   f'stroke="{color}" stroke-width="{sw:.2f}" stroke-opacity="0.75">'
                   f'<title>{html.escape(s)} → {html.escape(d)}: {w:+.4g}</title></path>')
    out.append("</g>")

    # Nodes with their channel index underneath (left out when too crowded to read).
    show_index = spacing >= 24
    out.append('<g class="nodes">')
    for n, (x, yy) in pos.items():
        loc, ch = split_node(n)
        kind = _layer_kind(loc)[1]
        title = html.escape(node_title(n, node_info.get(n), d_head))
        out.append(f'<g class="node" data-node="{html.escape(n)}" tabindex="0"><title>{title}</title>'
                   f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="{R}" fill="{FILL.get(kind, "#eee")}" stroke="#444" '
                   f'stroke-width="1"/>')
        if kind in ("attn.q", "attn.k", "attn.v"):
            out.append(f'<text x="{x:.1f}" y="{yy + 3:.1f}" font-size="8.5" font-weight="700" fill="#333" '
                       f'text-anchor="middle" pointer-events="none">{kind[-1]}</text>')
        if show_index:
            out.append(f'<text x="{x + R + 1:.1f}" y="{yy - R + 2:.1f}" font-size="8.5" fill="#333" '
                       f'stroke="#fff" stroke-width="2.5" paint-order="stroke" pointer-events="none">{ch}</text>')
        out.append("</g>")
    out.append("</g>")
    if not pos:
        out.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#777">'
                   f'no nodes</text>')
    out.append("</svg>")
    return "\n".join(out)
