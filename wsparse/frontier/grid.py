"""The frontier's grid: which members it trains, from one plain-dict spec (built by configs/frontier.py).

A spec is ``{"name", "base": <full Config dict>, "members": {name: {"family", "label", "set": <nested overrides>,
["lrs"]}}, "lrs": {"sparse": [...], "dense": [...]}, "sweep_steps", "task_pairs", "prune": <PruneConfig dict>,
"fig2_targets", "fig2_max_tasks", "tasks", "order"}`` (``tasks`` empty: every registered task). Every member is the base
config with its overrides and the one shared pruning config: the members differ only where the spec says they do,
and the pruning budget cannot differ between them.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Mapping

from wsparse import config as config_lib
from wsparse.config import Config, ConfigError, PruneConfig

FAMILIES = ("sparse", "dense")


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of the grid. ``cfg`` carries the spec's learning rate; the sweep's choice replaces it."""

    name: str
    family: str
    label: str
    cfg: Config
    lrs: tuple[float, ...]

    def with_lr(self, lr: float) -> Config:
        return dataclasses.replace(self.cfg, optim=dataclasses.replace(self.cfg.optim, lr=float(lr)))


@dataclasses.dataclass(frozen=True)
class Frontier:
    name: str
    members: tuple[Member, ...]
    sweep_steps: int  # length of each learning-rate sweep run (its schedules scaled to it)
    task_pairs: int  # test pairs per task for the unpruned evaluation (tasks.json)
    prune: PruneConfig  # the one pruning budget of every member
    tasks: tuple[str, ...]  # the tasks evaluated and pruned (all registered tasks when the spec names none)
    fig2_targets: tuple[float, ...]  # target losses at which the loss-matched pair is pruned (Figure 2)
    fig2_max_tasks: int = 0  # prune at most this many of the pair's shared tasks (registry order) there; 0: all

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise ConfigError(f"--member: no member {name!r} in {self.name}; members: "
                          f"{', '.join(m.name for m in self.members)}")


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``base`` with ``overrides`` applied key by key; a key the base lacks is a ConfigError naming it."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else key
        if key not in out:
            raise ConfigError(f"frontier member override {path!r}: the run config has no such key")
        out[key] = deep_merge(out[key], value, path) if isinstance(value, Mapping) else copy.deepcopy(value)
    return out


def expand(spec: Mapping[str, Any]) -> Frontier:
    """The spec's members as validated run configs, each named ``<frontier>_<member>`` with the shared pruning
    config. Checks what would make the comparison meaningless: an unknown family, a family that disagrees with
    ``sparsity.enabled``, members that do not share one data config (so one corpus and tokenizer serve all)."""
    prune = config_lib.from_configdict(dict(spec["prune"]), cls=PruneConfig)
    members = []
    for name, m in spec["members"].items():
        family = m.get("family")
        if family not in FAMILIES:
            raise ConfigError(f"frontier member {name!r}: family must be sparse or dense, got {family!r}")
        raw = deep_merge(spec["base"], m.get("set", {}))
        raw["name"] = f"{spec['name']}_{name}"
        raw["prune"] = config_lib.to_dict(prune)
        cfg = config_lib.from_configdict(raw)
        if cfg.sparsity.enabled != (family == "sparse"):
            raise ConfigError(f"frontier member {name!r}: family {family} but sparsity.enabled="
                              f"{cfg.sparsity.enabled}")
        lrs = tuple(float(x) for x in m.get("lrs", spec["lrs"][family]))
        if not lrs:
            raise ConfigError(f"frontier member {name!r}: no learning rate to sweep")
        members.append(Member(name, family, m.get("label", name), cfg, lrs))
    if not members:
        raise ConfigError(f"frontier {spec['name']!r} has no members")
    order = list(spec.get("order") or [])  # the run order (a ConfigDict sorts its keys); unnamed members last
    unknown = set(order) - {m.name for m in members}
    if unknown:
        raise ConfigError(f"frontier order names unknown members {sorted(unknown)}")
    members.sort(key=lambda m: order.index(m.name) if m.name in order else len(order))
    if len({config_lib.fingerprint(m.cfg.data) for m in members}) > 1:
        raise ConfigError("frontier members must share one data config (one corpus and tokenizer for all)")
    sweep_steps = int(spec["sweep_steps"])
    if sweep_steps < 1:
        raise ConfigError("frontier sweep_steps must be >= 1")
    from wsparse import tasks

    names = tuple(spec.get("tasks") or tasks.names())
    for name in names:
        tasks.get(name)  # TaskError for an unknown task, before any work
    return Frontier(name=spec["name"], members=tuple(members), sweep_steps=sweep_steps,
                    task_pairs=int(spec["task_pairs"]), prune=prune, tasks=names,
                    fig2_targets=tuple(float(t) for t in spec["fig2_targets"]),
                    fig2_max_tasks=int(spec.get("fig2_max_tasks", 0)))


def sweep_config(member: Member, lr: float, steps: int) -> Config:
    """A short run of the member at ``lr``: the same model and data, every schedule scaled to ``steps``, one
    evaluation (and checkpoint) at the end."""
    cfg = member.with_lr(lr)
    train = dataclasses.replace(cfg.train, steps=steps, eval_every=steps, checkpoint_every=steps,
                                log_every=min(cfg.train.log_every, steps), keep_checkpoints=1)
    return dataclasses.replace(cfg, train=train, name=f"{cfg.name}_lr{lr:g}")


def member_dir(workdir: str, member: Member) -> str:
    return os.path.join(workdir, member.name)


def sweep_dir(workdir: str, member: Member, lr: float | None = None) -> str:
    base = os.path.join(workdir, "sweeps", member.name)
    return base if lr is None else os.path.join(base, f"lr{lr:g}")
