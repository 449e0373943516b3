"""The frontier experiment end to end: every member's stages, then collection into ``WORKDIR/frontier.json``, the
loss-matched pair's circuits at the Figure 2 targets, the plots and ``WORKDIR/index.html``.

    WORKDIR/<member>/                 an ordinary run directory (config, checkpoints, tasks.json, circuits/)
    WORKDIR/<member>/circuits_targets/<target>/<task>/   the pair's circuits at the other Figure 2 targets
    WORKDIR/sweeps/<member>/lr<lr>/   the learning-rate sweep's short runs, and lr_sweep.json (the choice)
    WORKDIR/frontier.json, figure3.svg, figure2.svg, index.html
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from wsparse.config import to_dict
from wsparse.files import write_json
from wsparse.frontier import aggregate, stages
from wsparse.frontier.grid import Frontier, member_dir, sweep_dir

Log = Callable[[str], None]


def run_members(workdir: str, frontier: Frontier, names: list[str] | None = None, *, log: Log = print) -> None:
    """Runs the stages of the named members (default: all), in grid order; finished stages are reused."""
    for member in frontier.members:
        if names is not None and member.name not in names:
            continue
        t0 = time.perf_counter()
        log(f"\n== member {member.name} ({member.family}, {member.label})")
        stages.run_member(workdir, frontier, member, log=log)
        log(f"== member {member.name} done ({time.perf_counter() - t0:.0f}s)")


def collect(workdir: str, frontier: Frontier, *, log: Log = print, figure2: bool = True) -> dict[str, Any]:
    """Writes frontier.json, the figures and index.html from the finished members (the others are listed as
    missing); with ``figure2``, first prunes the loss-matched pair at the Figure 2 targets (reusing what exists)."""
    import json

    from wsparse import load_run
    from wsparse.frontier import plots

    members, missing, runs = [], [], {}
    for member in frontier.members:
        if not stages.member_done(workdir, member, frontier.prune, frontier.tasks):
            missing.append(member.name)
            continue
        run = load_run(member_dir(workdir, member))
        runs[member.name] = run
        entry = aggregate.summarize_member(run, member, run.cfg.optim.lr, frontier.prune.target_loss, frontier.tasks)
        sweep_path = os.path.join(sweep_dir(workdir, member), stages.SWEEP_FILE)
        entry["lr_sweep"] = json.load(open(sweep_path)) if os.path.exists(sweep_path) else None
        members.append(entry)
    fig2: dict[str, Any] = {"pair": None, "targets": []}
    pair = aggregate.matched_pair(members)
    if pair is not None:
        by_name = {m["name"]: m for m in members}
        plan = aggregate.fig2_tasks(by_name[pair[0]], by_name[pair[1]], frontier.fig2_targets,
                                    frontier.fig2_max_tasks)
        fig2 = {"pair": {"sparse": pair[0], "dense": pair[1]}, "tasks_pruned": plan, "targets": []}
        if figure2 and any(plan.values()):
            records = {}
            for family, name in zip(("sparse", "dense"), pair):
                log(f"\n== Figure 2: {name} at targets {', '.join(f'{t:g}' for t in frontier.fig2_targets)}")
                records[family] = stages.prune_at_targets(runs[name], plan, frontier.prune, log=log)
            fig2 |= aggregate.fig2_points(records)
    out = {
        "name": frontier.name,
        "val_loss": aggregate.VAL_LOSS,
        "lr_objective": stages.OBJECTIVE,
        "prune": to_dict(frontier.prune),
        "task_pairs": frontier.task_pairs,
        "members": members,
        "missing": missing,
        "headline": aggregate.headline(members),
        "by_sparse_member": aggregate.by_sparse_member(members),
        "figure2": fig2,
    }
    write_json(os.path.join(workdir, "frontier.json"), out, indent=2)
    plots.write_all(workdir, out)
    return out


def headline_line(out: dict[str, Any]) -> str:
    h = out["headline"]
    if h["edge_ratio_dense_over_sparse"] is None:
        return f"headline: no ratio ({h['note']})"
    return (f"headline: dense/sparse circuit edges {h['edge_ratio_dense_over_sparse']:.1f}x at matched val loss "
            f"{h['matched_val_loss']:.3f} (geometric mean over {len(h['tasks'])} tasks: {', '.join(h['tasks'])})")
