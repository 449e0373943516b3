"""The sparse-vs-dense frontier (issue 14): `python -m experiments.frontier --config=configs/frontier.py:VARIANT`.

A grid of members: sparse models at several widths and interior densities (L0) and dense models of several widths,
all on one data config (one corpus and tokenizer) and pruned with one budget. Each member's learning rate is chosen by
a short sweep on pretraining validation loss (wsparse/frontier/stages.py). Any key can be overridden:
`--config.sweep_steps=100`, `--config.members.s128_d8.set.train.steps=2000`.

Variants:
  tiny   one sparse and one dense tiny model (configs/tiny.py), two tasks, a loose target: the pipeline in a
         couple of minutes, for the end-to-end test and smoke runs. Its numbers mean nothing.
  cpu    the demo's 4-layer model and data (configs/demo.py) and its training length, 1000 steps of 32 x 64 tokens:
         sparse D=64 at interior density 1/4 and 1/2 and D=128 at 1/8 (the same interior L0 as D=64 at 1/2, twice
         the width); dense D=32, 64, 128. Three 200-step sweep runs per member; tasks scored on 100 test pairs; a
         cheap pruning budget (below); Figure 2 prunes at most 2 tasks per target. The measured wall time is in
         docs/results/frontier.md. (A first design with 500 steps and 50-step sweeps left every sparse member
         short of the pruning target: docs/results/frontier.md keeps it as a finding.)
  paper  the paper's grid for accelerators: configs/paper.py's widths 1x..16x at L0 = pfrac x 7.4M for pfrac
         0.125..2 (0.9M..14.8M; combinations whose interior density would exceed 1 are left out), and dense 1x, 2x, 4x.
"""

import ml_collections

from configs import demo, paper, prune, tiny

TARGETS = (0.5, 0.3, 0.15, 0.05)  # Figure 2's task-loss targets


def _member(family, label, lrs=None, **sections):
    m = {"family": family, "label": label, "set": sections}
    if lrs is not None:
        m["lrs"] = lrs
    return m


def _width(d, d_head=16):
    return {"d_model": d, "d_mlp": 4 * d, "n_head": max(1, d // d_head), "d_head": d_head}


def _dense(d, **model):
    return _member("dense", f"dense D{d}", model=_width(d) | {"afrac": 1.0} | model, sparsity={"enabled": False})


def _sparse(d, density, **model):
    return _member("sparse", f"D{d} 1/{round(1 / density)}", model=_width(d) | model,
                   sparsity={"enabled": True, "interior_density": density})


def tiny_variant():
    # The sparse member sweeps two learning rates, the dense one takes its single candidate without a sweep.
    c = {"name": "frontier_tiny", "base": tiny.get_config().to_dict(), "sweep_steps": 10, "task_pairs": 32,
         "tasks": ["var_if", "for_while"], "lrs": {"sparse": [1e-2, 3e-2], "dense": [1e-2]}, "fig2_max_tasks": 1}
    c["members"] = {
        "sparse": _member("sparse", "tiny sparse", sparsity={"enabled": True}),
        "dense": _member("dense", "tiny dense", sparsity={"enabled": False}, model={"afrac": 1.0}),
    }
    p = tiny.get_config().prune.to_dict()
    # A loose target so that an untrained model has tasks to prune; the Figure 2 targets include it.
    p.update(target_loss=1.0, steps=20, n_train_pairs=32, n_val_pairs=16, n_test_pairs=16, batch_pairs=8,
             n_random_controls=1, attribution_baseline=False, means_tokens=1024, resample_bank=256)
    c.update(prune=p, fig2_targets=[2.0, 1.0])
    return c


def cpu_variant():
    base = demo.get_config()
    steps = base.train.steps  # the demo's 1000: at 500, val loss still fell 0.2-0.3 nats from step 250 to 500
    base.train.update(eval_every=steps // 2, checkpoint_every=steps // 2, log_every=50)
    p = prune.get_config("fast")
    # One budget for every member: the `fast` budget with 100 mask steps (not 200) on 128 train pairs (not 256),
    # 8,192 tokens of node means, one random control and no attribution baseline (neither enters the frontier).
    p.update(steps=100, n_train_pairs=128, attribution_baseline=False, n_random_controls=1, means_tokens=8192)
    c = {"name": "frontier_cpu", "base": base.to_dict(), "sweep_steps": steps // 5, "task_pairs": 100,
         "tasks": [], "prune": p.to_dict(), "fig2_targets": list(TARGETS), "fig2_max_tasks": 2,
         "lrs": {"sparse": [1.5e-2, 3e-2, 6e-2], "dense": [5e-3, 1e-2, 2e-2]}}
    # Families alternate, the loss-matched candidates first, so that a run cut short still has both families.
    c["order"] = ["s128_d8", "dense128", "dense64", "s64_d2", "dense32", "s64_d4"]
    c["members"] = {
        "s64_d4": _sparse(64, 1 / 4),
        "s64_d2": _sparse(64, 1 / 2),
        "s128_d8": _sparse(128, 1 / 8),
        "dense32": _dense(32),
        "dense64": _dense(64),
        "dense128": _dense(128),
    }
    return c


def paper_variant():
    base = paper.get_config("1x")
    members = {}
    for e in (1, 2, 4, 8, 16):
        for pfrac in (0.125, 0.25, 0.5, 1.0, 2.0):
            if pfrac / e**2 >= 1:
                continue
            name = f"{e}x_pfrac{pfrac:g}".replace(".", "p")  # ConfigDict keys cannot hold dots
            members[name] = {"family": "sparse", "label": f"{e}x L0 {pfrac * 7.4:.2g}M",
                             "set": paper.get_config(f"{e}x,pfrac={pfrac}").to_dict()}
    for e in (1, 2, 4):
        members[f"dense_{e}x"] = {"family": "dense", "label": f"dense {e}x",
                                  "set": paper.get_config(f"{e}x,dense").to_dict()}
    return {"name": "frontier_paper", "base": base.to_dict(), "members": members, "sweep_steps": 24_000,
            "task_pairs": 500, "tasks": [], "prune": prune.get_config("").to_dict(), "fig2_targets": list(TARGETS),
            "lrs": {"sparse": [6.4e-3, 1.28e-2, 2.56e-2], "dense": [2e-3, 4e-3, 8e-3]}}


VARIANTS = {"tiny": tiny_variant, "cpu": cpu_variant, "paper": paper_variant}


def get_config(arg: str = "cpu") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/frontier.py: unknown variant {arg!r}; use {', '.join(VARIANTS)}")
    return ml_collections.ConfigDict(VARIANTS[arg]())
