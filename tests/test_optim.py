import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import tiny
from wsparse import config as C
from wsparse import optim

BASE = C.from_configdict(tiny.get_config())


def cfg_with(steps=1000, warmup_frac=0.01, **sparsity) -> C.Config:
    return dataclasses.replace(
        BASE, train=dataclasses.replace(BASE.train, steps=steps),
        optim=dataclasses.replace(BASE.optim, lr=1e-2, warmup_frac=warmup_frac, grad_rms_mode="clip"),
        sparsity=dataclasses.replace(BASE.sparsity, interior_density=0.25, anneal_start_frac=0.01,
                                     anneal_end_frac=0.5, **sparsity))


@pytest.mark.parametrize("step,shape,density", [
    (0, 1 / 10, 1.0),  # warmup W = 10 steps: (0 + 1) / 10; before the anneal
    (9, 1.0, 1.0),  # end of warmup, anneal start
    (10, 1.0, 1.0),
    (255, 745 / 990, 1 - 0.75 * 0.5),  # mid-anneal
    (500, 500 / 990, 0.25),  # anneal end
    (999, 1 / 990, 0.25),  # last step
])
def test_sharkfin_times_density_factor(step, shape, density):
    sparse = cfg_with()
    want = 1e-2 * shape * math.sqrt(0.25 / density)
    assert optim.lr_at(step, sparse) == pytest.approx(want, rel=1e-5)
    assert float(jax.jit(lambda s: optim.lr_at(s, sparse))(step)) == pytest.approx(want, rel=1e-5)
    dense = cfg_with(enabled=False)
    assert optim.lr_at(step, dense) == pytest.approx(1e-2 * shape, rel=1e-5)
    no_scaling = dataclasses.replace(sparse, optim=dataclasses.replace(sparse.optim, density_lr_scaling=False))
    assert optim.lr_at(step, no_scaling) == pytest.approx(1e-2 * shape, rel=1e-5)


def test_no_warmup_starts_at_peak():
    assert optim.lr_at(0, cfg_with(warmup_frac=0.0, enabled=False)) == pytest.approx(1e-2)


def toy_params():
    return {
        "wte": {"w": jnp.ones((4, 3))}, "lm_head": {"w": jnp.ones((4, 3))},
        "blocks": [{"ln_1": {"g": jnp.ones(3)}, "attn": {"c_attn": {"w": jnp.ones((3, 6)), "b": jnp.ones(6)},
                                                          "sink": jnp.ones(2)}}],
        "bigram": {"table": jnp.ones((4, 4))}, "ln_f": {"g": jnp.ones(3)},
    }


def test_decay_mask_matrices_only():
    m = optim.decay_mask(toy_params())
    assert m["wte"]["w"] and m["lm_head"]["w"] and m["blocks"][0]["attn"]["c_attn"]["w"]
    assert not m["bigram"]["table"] and not m["ln_f"]["g"] and not m["blocks"][0]["ln_1"]["g"]
    assert not m["blocks"][0]["attn"]["c_attn"]["b"] and not m["blocks"][0]["attn"]["sink"]


@pytest.mark.parametrize("mode,scale_rms,want_rms", [
    ("clip", 4.0, 1.0), ("clip", 0.5, 0.5), ("normalize", 0.5, 1.0), ("normalize", 4.0, 1.0), ("none", 4.0, 4.0)])
def test_global_rms_clip(mode, scale_rms, want_rms):
    g = jax.tree.map(lambda x: jax.random.normal(jax.random.key(x.size), x.shape), toy_params())
    g = jax.tree.map(lambda x: x * scale_rms / optim.global_rms(g), g)
    assert float(optim.global_rms(g)) == pytest.approx(scale_rms, rel=1e-5)
    tx = optim.scale_by_global_rms(1.0, mode)
    out, _ = tx.update(g, tx.init(g))
    assert float(optim.global_rms(out)) == pytest.approx(want_rms, rel=1e-5)
    ratios = [np.asarray(o / x) for o, x in zip(jax.tree.leaves(out), jax.tree.leaves(g))]
    np.testing.assert_allclose(np.concatenate([r.ravel() for r in ratios]), want_rms / scale_rms, rtol=1e-5)


def test_rms_is_over_all_entries():
    assert float(optim.global_rms({"a": jnp.full((3,), 2.0), "b": jnp.zeros((1,))})) == pytest.approx(math.sqrt(3))


DECAYED = {"wte/w", "lm_head/w", "blocks/0/attn/c_attn/w"}  # toy_params' matrices, bigram table excepted


def test_first_update_is_adamw():
    """Step 0: bias-corrected Adam gives g / (|g| + eps); decay 0.1 * p on matrices only; all times -lr(0)."""
    cfg = cfg_with(enabled=False)
    tx = optim.make_optimizer(cfg)
    p = jax.tree.map(lambda x: 2.0 * x, toy_params())
    g = jax.tree.map(lambda x: 0.03 * jnp.ones_like(x), p)  # RMS 0.03: below the clip
    updates, _ = jax.jit(tx.update)(g, tx.init(p), p)
    lr0 = 1e-2 / 10  # warmup of W = 10 steps: (0 + 1) / 10 of the peak
    adam = 0.03 / (0.03 + 0.1)
    seen = set()
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        seen.add(name)
        np.testing.assert_allclose(u, -lr0 * (adam + (0.1 * 2.0 if name in DECAYED else 0.0)), rtol=1e-5,
                                   err_msg=name)
    assert DECAYED < seen


def test_optimizer_uses_the_schedule_per_step():
    """Twelve steps across the warmup's end and the anneal's start: the update follows lr x sharkfin x density
    factor, written out here independently of optim.lr_at (W = 10, anneal from step 10 to 500 towards 1/4)."""
    cfg = cfg_with(enabled=True)
    tx = optim.make_optimizer(cfg)
    p = {"wte": {"w": jnp.zeros((2, 2))}, "ln_f": {"g": jnp.zeros(2)}}
    state = tx.init(p)
    g = jax.tree.map(lambda x: jnp.full_like(x, 1e3), p)  # huge: the RMS clip brings it to 1
    update = jax.jit(tx.update)
    for step in range(12):
        u, state = update(g, state, p)
        adam = 1.0 / (1.0 + 0.1)  # clipped g = 1 everywhere, so m_hat = v_hat**0.5 = 1
        density = 1.0 - 0.75 * max(0, step - 10) / 490
        lr = 1e-2 * min((step + 1) / 10, (1000 - step) / 990) * math.sqrt(0.25 / density)
        np.testing.assert_allclose(u["ln_f"]["g"], -lr * adam, rtol=1e-4)
        np.testing.assert_allclose(u["wte"]["w"], -lr * adam, rtol=1e-4)  # p = 0: decay adds nothing


def test_unknown_parameter_is_an_error():
    with pytest.raises(KeyError, match="wsparse.weights.TABLE"):
        optim.decay_mask({"mystery": jnp.ones((2, 2))})
