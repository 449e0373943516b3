"""Training curves as inline SVG strings, so the report stays one file that opens offline.

Text is kept as SVG text (not paths) so it stays sharp, searchable and small; the Agg backend keeps this usable on a
headless machine.
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wsparse.report.artifacts import Curves  # noqa: E402

_RC = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
       "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "wsparse"}
TRAIN_COLOR, EVAL_COLOR = "#1f77b4", "#d62728"
FAMILY_COLORS = {"interior": "#1f77b4", "embed": "#2ca02c", "bias": "#9467bd"}


def to_svg(fig) -> str:
    """The figure as an ``<svg>`` element (XML prolog and DOCTYPE dropped), sized to scale with its container."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    # matplotlib's `*{...}` rule would leak into the whole page once inlined; its presentation attributes suffice.
    svg = re.sub(r'<style type="text/css">\*\{[^}]*\}</style>', "", svg)
    # Let CSS size it: keep the viewBox, drop the fixed pt width/height.
    return re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", svg, count=1)


def loss_curves(curves: Curves) -> str | None:
    """Training loss per logged step and validation loss per eval step, one axes; None when nothing was logged."""
    train = curves.train.get("loss", [])
    if not train and not curves.eval_loss:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        if train:
            ax.plot(*zip(*train), color=TRAIN_COLOR, lw=1.2, label="train loss")
        if curves.eval_loss:
            ax.plot(*zip(*curves.eval_loss), color=EVAL_COLOR, lw=1.5, marker="o", ms=3.5, label="validation loss")
        by_kind = {kind: curves.train.get(f"eval_loss_{kind}", []) for kind in ("real", "synthetic")}
        for (kind, series), style in zip(by_kind.items(), (":", "--")):
            if series:
                ax.plot(*zip(*series), color=EVAL_COLOR, lw=1.1, ls=style, marker="o", ms=2.5,
                        label=f"validation: {'library code' if kind == 'real' else 'generated programs'}")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        values = [v for _, v in train] + [v for _, v in curves.eval_loss] + [v for s in by_kind.values() for _, v in s]
        low, high = min(values), max(values)
        # The first steps of a fresh model sit far above the rest of the curve: cap the view so the end is readable.
        if len(train) > 4:
            tail = [v for _, v in train[len(train) // 10:]]
            high = min(high, max(tail) + 0.5 * (max(tail) - low) + 1e-3)
        ax.set_ylim(low - 0.05 * (high - low + 1e-3), high + 0.05 * (high - low + 1e-3))
        ax.legend(frameon=False)
        ax.set_title("Loss")
        return to_svg(fig)


def schedule_curves(curves: Curves) -> str | None:
    """Realised density per sparsity family and the learning rate: shows the anneal and the sharkfin together."""
    dens = {k.split("/", 1)[1]: v for k, v in curves.train.items() if k.startswith("density/") and v}
    lr = curves.train.get("lr", [])
    if not dens and not lr:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        for fam, series in sorted(dens.items()):
            ax.plot(*zip(*series), lw=1.4, color=FAMILY_COLORS.get(fam), label=f"density: {fam}")
        ax.set_xlabel("step")
        ax.set_ylabel("fraction of nonzero weights")
        ax.set_ylim(0, 1.05)
        handles, labels = ax.get_legend_handles_labels()
        if lr:
            ax2 = ax.twinx()
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
            ax2.plot(*zip(*lr), color="#ff7f0e", lw=1.2, ls="--", label="learning rate")
            ax2.set_ylabel("learning rate")
            ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, frameon=False, loc="upper right")
        ax.set_title("Sparsity anneal and learning rate")
        return to_svg(fig)
