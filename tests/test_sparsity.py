import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from wsparse import config as C
from wsparse import model as M
from wsparse import native
from wsparse import sparsity as S

CFG = C.from_configdict(tiny.get_config())
SP = CFG.sparsity  # interior 0.25, embed 0.5, bias 0.5, j = 2, anneal 1% .. 50%
TOTAL = 1000


def params(**kw):
    cfg = dataclasses.replace(CFG.model, vocab_size=64, **kw)
    return jax.jit(M.init_params, static_argnums=0)(cfg, jax.random.key(0))


project = jax.jit(S.project, static_argnums=(2, 3))


def test_families():
    p = params(attn_sink=True, bigram_table=True, pos_emb=True)
    f = S.families(p)
    assert f["wte"]["w"] == "embed" and f["lm_head"]["w"] == "embed"
    assert f["wpe"]["w"] is None and f["bigram"]["table"] is None and f["ln_f"]["g"] is None
    blk = f["blocks"][1]
    assert blk["attn"]["c_attn"]["w"] == blk["attn"]["c_proj"]["w"] == "interior"
    assert blk["mlp"]["c_fc"]["w"] == blk["mlp"]["c_proj"]["w"] == "interior"
    assert blk["attn"]["c_attn"]["b"] == blk["mlp"]["c_proj"]["b"] == "bias"
    assert blk["attn"]["sink"] is None and blk["ln_1"]["g"] is None


@pytest.mark.parametrize("step,expected", [(0, 1.0), (10, 1.0), (255, 1 - 0.75 * 0.5), (500, 0.25), (999, 0.25)])
def test_density_schedule(step, expected):
    assert S.density_at(step, TOTAL, SP, "interior") == pytest.approx(expected, abs=1e-6)
    assert float(jax.jit(lambda s: S.density_at(s, TOTAL, SP, "interior"))(step)) == pytest.approx(expected, abs=1e-6)
    assert S.density_at(step, TOTAL, SP, None) == 1.0
    assert S.density_at(step, TOTAL, dataclasses.replace(SP, enabled=False), "embed") == 1.0


def test_embed_and_bias_anneal_to_their_targets():
    assert S.density_at(500, TOTAL, SP, "embed") == pytest.approx(0.5)
    assert S.density_at(255, TOTAL, SP, "bias") == pytest.approx(1 - 0.5 * 0.5, abs=1e-6)


def nonzero_mask_reference(w: np.ndarray, k: int) -> np.ndarray:
    """Magnitude top-k, ties by lowest flat index."""
    order = np.lexsort((np.arange(w.size), -np.abs(w).ravel()))
    keep = np.zeros(w.size, bool)
    keep[order[:k]] = True
    return keep.reshape(w.shape)


@pytest.mark.parametrize("step", [0, 100, 255, 700])
def test_project_exact_counts_and_min_alive(step):
    p = params()
    p = jax.tree.map(lambda x: x + 0.01 * jax.random.normal(jax.random.key(1), x.shape), p)  # nonzero biases too
    q = project(p, step, TOTAL, SP)
    for path, w in jax.tree_util.tree_leaves_with_path(q):
        fam = S.family_of(path)
        orig = p
        for key in path:
            orig = orig[getattr(key, "key", getattr(key, "idx", None))]
        if fam is None:
            np.testing.assert_array_equal(w, orig)
            continue
        k = max(1, round(S.density_at(step, TOTAL, SP, fam) * w.size))
        assert int(jnp.count_nonzero(w)) == k, path
        np.testing.assert_array_equal(np.asarray(w)[np.asarray(w) != 0], np.asarray(orig)[np.asarray(w) != 0])
        if fam == "interior":
            name = str(path[-2].key)
            alive = np.count_nonzero(np.asarray(w), axis=0 if name in ("c_attn", "c_fc") else 1)
            assert alive.min() >= SP.min_alive_per_neuron, path
    counts = jax.jit(S.nonzero_counts)(q)
    assert set(counts) == {"interior", "embed", "bias"}
    nnz, size = counts["embed"]
    assert size == 2 * 64 * CFG.model.d_model
    assert int(nnz) == 2 * max(1, round(S.density_at(step, TOTAL, SP, "embed") * 64 * CFG.model.d_model))


def test_project_without_min_alive_is_plain_magnitude_topk():
    w = jax.random.normal(jax.random.key(2), (32, 96))
    for k in (1, 7, 500, 32 * 96):
        got = np.asarray(jax.jit(S.project_tensor)(w, jnp.int32(k))) != 0
        np.testing.assert_array_equal(got, nonzero_mask_reference(np.asarray(w), k))


@pytest.mark.parametrize("min_alive,axis", [(0, None), (3, 0), (3, 1), (40, 0)])
def test_project_sort_and_native_equal_bisect(min_alive, axis):
    """The accelerator path (one stable sort) and the CPU default (wsparse's C++ radix select) keep exactly the
    entries the bisection keeps, ties included. (The C++ kernel is left out on an accelerator backend, where it does
    not run.)"""
    w = jnp.round(jax.random.normal(jax.random.key(7), (24, 40)) * 3) / 3  # many exact ties
    w = w.at[3].set(0.0)
    project = jax.jit(S.project_tensor, static_argnums=(2, 3, 4))
    for k in (1, 5, 100, 333, 24 * 40):
        a = project(w, jnp.int32(k), min_alive, axis, "bisect")
        for impl in ("sort",) + (("native",) if native.in_use() else ()):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(project(w, jnp.int32(k), min_alive, axis, impl)))


def test_ties_broken_by_index_and_deterministic():
    w = jnp.concatenate([jnp.full((10,), 0.5), jnp.full((10,), -0.5), jnp.array([2.0, 0.1])]).reshape(2, 11)
    got = np.asarray(S.project_tensor(w, jnp.int32(5))).ravel()
    want = np.zeros(22)
    want[[0, 1, 2, 3]] = 0.5
    want[20] = 2.0
    np.testing.assert_array_equal(got, want)


def test_fewer_nonzeros_than_k_keeps_them_all():
    w = jnp.zeros((8, 8)).at[0, 3].set(1.0).at[5, 5].set(-2.0)
    np.testing.assert_array_equal(S.project_tensor(w, jnp.int32(10)), w)


def test_min_alive_rescues_a_weak_neuron():
    """Column 0 holds the smallest weights: plain top-k kills it, the reservation keeps its top-j along fan-in."""
    w = jax.random.uniform(jax.random.key(3), (16, 8), minval=1.0, maxval=2.0)
    w = w.at[:, 0].set(jnp.linspace(0.01, 0.1, 16))
    plain = S.project_tensor(w, jnp.int32(20))
    assert int(jnp.count_nonzero(plain[:, 0])) == 0
    kept = np.asarray(S.project_tensor(w, jnp.int32(30), min_alive=3, neuron_axis=0))  # 24 reserved
    assert np.count_nonzero(kept) == 30
    np.testing.assert_array_equal(np.nonzero(kept[:, 0])[0], [13, 14, 15])
    rows = np.asarray(S.project_tensor(w.T, jnp.int32(30), min_alive=3, neuron_axis=1))  # fan-out: per row
    np.testing.assert_array_equal(np.nonzero(rows[0])[0], [13, 14, 15])


def test_reservations_beyond_budget_keep_exactly_k():
    w = jax.random.normal(jax.random.key(4), (16, 8))
    kept = S.project_tensor(w, jnp.int32(5), min_alive=2, neuron_axis=0)  # 16 reserved > k = 5
    assert int(jnp.count_nonzero(kept)) == 5


def test_disabled_is_identity_and_traced_step_does_not_retrace():
    p = params()
    assert S.project(p, 900, TOTAL, dataclasses.replace(SP, enabled=False)) is p
    project(p, 1, TOTAL, SP)
    before = project._cache_size()
    for step in (10, 200, 300):
        project(p, step, TOTAL, SP)
    assert project._cache_size() == before
