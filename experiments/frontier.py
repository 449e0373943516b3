"""The sparse-vs-dense frontier (the paper's Figures 2 and 3) from one config of members.

    python -m experiments.frontier --config=configs/frontier.py:cpu --workdir=runs/frontier
    python -m experiments.frontier --config=configs/frontier.py:paper --workdir=W --member=2x_pfrac0p25   # one job
    python -m experiments.frontier --config=configs/frontier.py:paper --workdir=W --aggregate           # collect

Every member is an ordinary run directory under the workdir (lr sweep, training, tasks.json, circuits of every solved
task); a plain run does every member, then prunes the loss-matched pair at the Figure 2 targets and writes
frontier.json, figure3.svg, figure2.svg and index.html. `--member` runs that member alone; `--aggregate` skips the
members' stages and collects what is finished (it still prunes the pair at the Figure 2 targets unless
`--nofigure2`). Re-running reuses every finished stage; an interrupted run (SIGTERM, Ctrl-C) resumes where it stopped.
"""

import logging
import time

from absl import flags

from wsparse import cli

_CONFIG = cli.define_config_file("config", "configs/frontier.py:cpu", "Frontier config file (configs/frontier.py).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/frontier", "Experiment directory; members are run directories in it.")
_MEMBER = flags.DEFINE_string("member", None, "Run only this member's stages (no aggregation).")
_AGGREGATE = flags.DEFINE_bool("aggregate", False, "Only collect finished members into frontier.json.")
_FIGURE2 = flags.DEFINE_bool("figure2", True, "Prune the loss-matched pair at the Figure 2 targets when collecting.")


def main(argv):
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
    from wsparse import frontier
    from wsparse.frontier import pipeline, plots

    t0 = time.perf_counter()
    spec = frontier.expand(_CONFIG.value.to_dict())
    workdir = _WORKDIR.value

    def log(s):
        print(f"[{time.perf_counter() - t0:6.0f}s] {s}", flush=True)

    if _MEMBER.value and _AGGREGATE.value:
        cli.fail("--member and --aggregate exclude each other: run the members, then aggregate")
    log(f"{spec.name}: {len(spec.members)} members ({', '.join(m.name for m in spec.members)}), "
        f"{len(spec.tasks)} tasks; pruning budget (every member): {spec.prune}")
    try:
        if _MEMBER.value:
            pipeline.run_members(workdir, spec, [spec.member(_MEMBER.value).name], log=log)
            return 0
        if not _AGGREGATE.value:
            pipeline.run_members(workdir, spec, log=log)
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C: training saved a checkpoint
        print("interrupted: re-run the same command to resume", flush=True)
        return 1
    out = pipeline.collect(workdir, spec, log=log, figure2=_FIGURE2.value)
    print(f"\n== {spec.name} ({time.perf_counter() - t0:.0f}s)")
    for row in plots.members_table(out):
        print("  ".join(f"{c:>14}" for c in row))
    if out["missing"]:
        print(f"not finished: {', '.join(out['missing'])}")
    print(pipeline.headline_line(out))
    print(f"wrote {workdir}/frontier.json and {workdir}/index.html")
    return 0


if __name__ == "__main__":
    cli.run(main)
