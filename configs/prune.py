"""Pruning configs (PruneConfig fields only): `--config=configs/prune.py[:variant]`, overrides `--config.k_coef=...`.

Variants:
  ""        the default budget: one vmapped sweep of 8 settings (k_coef 3e-5..1e-3 x lr 3e-3, 1e-2), 1000 steps
  single    the paper's search centre alone (k_coef 1e-4, lr 3e-3), 1000 steps
  fast      one setting (lr 1e-2), 200 steps of 8 pairs, 64 test pairs, fewer controls: the CPU demo (about 35 s
            per task for the demo model on 2 cores, against hours for the default sweep there)
  sweep     a larger sweep: 4 k_coef x 3 lr x 2 seeds = 24 settings, 2000 steps
  zero, resample   the default with another ablation mode (docs/method.md section 5's criticism to test against)
  cheap_card  the faithfulness card's cheapest telling control only (swapped_answers, 6 prefixes instead of
              12): `make demo` (with random_weights too it measured over its 20-minute budget)

The faithfulness card (`python -m experiments.faithfulness`, docs/method.md section 6) reads `faithfulness.*`: which
controls to run and each flag threshold. Its re-pruning controls use the circuit's own budget above.
"""

import ml_collections

from wsparse import config as C


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(C.to_dict(C.PruneConfig()))
    for variant in [a for a in arg.split(",") if a]:
        if variant == "single":
            c.update(sweep_k_coef=(), sweep_lr=(), k_coef=1e-4, lr=3e-3)
        elif variant == "fast":
            c.update(sweep_k_coef=(), sweep_lr=(), k_coef=1e-4, lr=1e-2, steps=200, batch_pairs=8,
                     n_train_pairs=256, n_val_pairs=64, n_test_pairs=64, means_tokens=16384, n_random_controls=2)
        elif variant == "sweep":
            c.update(sweep_k_coef=(3e-5, 1e-4, 3e-4, 1e-3), sweep_lr=(1e-3, 3e-3, 1e-2), sweep_seeds=2, steps=2000)
        elif variant in ("zero", "resample"):
            c.ablation = variant
        elif variant == "cheap_card":
            c.faithfulness.controls = ("swapped_answers",)  # random_weights too would take the demo past 20 min
            c.faithfulness.prefix_points = 6  # half the default's prefixes: the demo's time budget
        else:
            raise ValueError(f"configs/prune.py: unknown variant {variant!r}; use single, fast, sweep, zero, resample, cheap_card")
    return c
