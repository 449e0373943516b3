"""Circuit extraction: a planted circuit is recovered exactly; masks, ablation, edges and calibration behave."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsparse import model as M
from wsparse import tasks
from wsparse.circuits import extract as extract_lib
from wsparse.circuits import graph, masks, means, prune, record, validate
from wsparse.circuits.extract import extract
from wsparse.config import PruneConfig

from planted import CFG, PLANTED, PRUNE, cue_batch, planted_params, splits  # noqa: E402


@pytest.fixture(scope="module")
def planted():
    params = planted_params()
    pre = np.random.default_rng(1).integers(0, CFG.vocab_size, size=(2, 8, CFG.n_ctx))
    stats = means.compute(params, CFG, pre, n_bank=64)
    return params, stats


def test_planted_model_solves_task(planted):
    params, stats = planted
    pr = prune.Pruner(params, CFG, PRUNE, stats)
    test = pr.pad(cue_batch(32, 1))
    assert pr.loss(np.ones((1, pr.layout.n_nodes)), test)[0] < 0.05


def test_my_loss_matches_contrast_loss(planted):
    params, stats = planted
    b = cue_batch(16, 3)
    b.correct[:3], b.wrong[:3] = b.wrong[:3].copy(), b.correct[:3].copy()  # some wrong predictions: loss not ~0
    pr = prune.Pruner(params, CFG, PRUNE, stats)
    ref, _ = tasks.contrast_loss(M.forward(params, jnp.asarray(b.tokens), CFG), b)
    assert pr.loss(np.ones((1, pr.layout.n_nodes)), pr.pad(b))[0] == pytest.approx(float(ref), rel=1e-5)


def test_bisection_evaluation_decides_like_the_full_loss_and_stops_early(planted):
    """``prune._meets_target`` (each bisection step) gives ``loss <= target`` for targets around the loss, and reads
    a single chunk where the first one alone is over the whole budget."""
    params, stats = planted
    b = cue_batch(32, 4)
    b.correct[:5], b.wrong[:5] = b.wrong[:5].copy(), b.correct[:5].copy()  # some wrong answers: a loss well above 0
    pr = prune.Pruner(params, CFG, PRUNE, stats)
    pairs = pr.pad(b)
    n_chunks = pairs.n // PRUNE.batch_pairs
    assert n_chunks >= 2
    meets = jax.jit(prune._meets_target, static_argnums=0)
    masks_ = np.ones((3, pr.layout.n_nodes), np.float32)
    masks_[1, ::2] = 0
    masks_[2] = 0
    for m, loss in zip(masks_, pr.loss(masks_, pairs)):
        for target in (0.0, loss / 3, np.nextafter(loss, 0, dtype=np.float32), loss,
                       np.nextafter(loss, 1e9, dtype=np.float32), 2 * loss, 1e6):
            ok, read = meets(pr.spec, pr.params, pr.stats, jnp.asarray(m), pairs, jnp.float32(target))
            assert bool(ok) == bool(loss <= np.float32(target)), (loss, target)
            assert int(read) == n_chunks or not ok
    first = pr.loss(masks_[2:], prune.Pairs(*(a[:PRUNE.batch_pairs] for a in pairs)))[0]
    target = first / n_chunks / 2  # the first chunk alone is over the budget of all of them
    ok, read = meets(pr.spec, pr.params, pr.stats, jnp.asarray(masks_[2]), pairs, jnp.float32(target))
    assert not ok and int(read) == 1


def test_pruner_recovers_planted_circuit(planted, tmp_path):
    params, stats = planted
    rec, rows = extract(params, CFG, PRUNE, stats, splits(), task="cue")
    assert rec.status == "ok" and rec.is_solved and rec.selected_on == "val"
    assert (rec.n_train_pairs, rec.n_val_pairs, rec.n_test_pairs) == (32, 32, 32)
    assert set(rec.circuit_loss) == {"train", "val", "test", "train_calibrated", "val_calibrated", "test_calibrated"}
    kept = {k: list(v) for k, v in rec.nodes.items() if v}
    assert kept == PLANTED
    assert rec.n_nodes == 6
    assert rec.n_edges["total"] == rec.edges_total == 4
    assert {e[0] + ">" + e[1] for e in rec.edges} == {
        "0.attn.act_in:0>0.attn.v:1", "0.attn.v:1>0.attn.resid_delta:2",
        "0.mlp.act_in:2>0.mlp.post_act:3", "0.mlp.post_act:3>0.mlp.resid_delta:5"}
    v = rec.validation
    assert v.sufficiency.meets_target and rec.sufficient
    assert v.necessity.increase > 0.5  # ablating the circuit alone destroys the task
    assert v.random_controls.min > PRUNE.target_loss and v.random_controls.n == len(v.random_controls.losses) == 2
    assert rec.circuit_loss["test_calibrated"] <= rec.circuit_loss["test"] + 1e-6
    assert len(rows) == 1 and rows[0]["n_nodes"] == 6
    # The real extractor's record survives its file: written, read back equal, and at the current schema version.
    extract_lib.write(rec, rows, str(tmp_path))
    assert record.load(str(tmp_path / "circuit.json")) == rec
    assert json.loads((tmp_path / "circuit.json").read_text())["schema_version"] == record.SCHEMA_VERSION
    assert [json.loads(line) for line in (tmp_path / "sweep.jsonl").read_text().splitlines()] == rows


def test_unsolved_task_is_reported_not_pruned(planted, tmp_path):
    params, stats = planted
    b = cue_batch(16, 2)
    b = b._replace(correct=b.wrong, wrong=b.correct)  # the model confidently predicts the other candidate
    rec, rows = extract(params, CFG, PRUNE, stats, {"train": b, "val": b, "test": b}, task="flipped")
    assert rec.status == "unsolved" and not rec.is_solved and rows == [] and rec.nodes is None
    assert rec.unpruned_loss["val"] > PRUNE.target_loss and "above the target" in rec.message
    extract_lib.write(rec, rows, str(tmp_path))
    assert "nodes" not in json.loads((tmp_path / "circuit.json").read_text())
    assert record.load(str(tmp_path / "circuit.json")) == rec


def test_the_circuit_is_chosen_on_val_and_only_reported_on_test(planted):
    """A test split the model gets wrong changes no choice (same nodes, same sweep decisions), only what is
    reported: the circuit fails sufficiency there."""
    params, stats = planted
    b = cue_batch(32, 2)
    flipped = b._replace(correct=b.wrong, wrong=b.correct)
    rec, rows = extract(params, CFG, PRUNE, stats, splits(flipped), task="cue")
    assert {k: list(v) for k, v in rec.nodes.items() if v} == PLANTED
    assert rows[0]["meets_target_on_val"] and rows[0]["test_loss"] > 1.0
    assert rec.circuit_loss["test"] > 1.0 and not rec.sufficient and rec.circuit_loss["val"] <= PRUNE.target_loss


def test_same_seed_same_masks_and_seed_matters(planted):
    params, stats = planted
    pr = prune.Pruner(params, CFG, PRUNE, stats)
    train = prune.pairs_from_batch(cue_batch(32, 0))
    settings = prune.settings_grid(dataclasses.replace(PRUNE, sweep_seeds=2))
    tau_a, _ = pr.train(settings, train)
    tau_b, _ = pr.train(settings, train)
    np.testing.assert_array_equal(tau_a.tau, tau_b.tau)
    np.testing.assert_array_equal(tau_a.push, tau_b.push)
    assert not np.array_equal(tau_a.tau[0], tau_a.tau[1])
    # a setting trained alone equals the same setting trained inside the vmapped sweep
    tau_1, _ = pr.train(prune.take_setting(settings, 1), train)
    np.testing.assert_allclose(tau_1.tau[0], tau_a.tau[1], atol=1e-5)


@pytest.fixture(scope="module")
def random_model():
    cfg = dataclasses.replace(CFG, vocab_size=16, n_layer=2, d_model=16, n_head=2, d_head=4, d_mlp=32, afrac=0.5,
                              afrac_locations=("attn_q", "mlp_neuron"), attn_sink=True, bigram_table=True)
    params = M.init_params(cfg, jax.random.key(3))
    pre = np.random.default_rng(0).integers(0, 16, size=(2, 4, cfg.n_ctx))
    return cfg, params, means.compute(params, cfg, pre, n_bank=32), pre


def masked_logits(pr: prune.Pruner, m_nodes, toks) -> np.ndarray:
    f = jax.jit(lambda params, stats, m, t: prune.masked_logits(pr.spec, params, stats, m, t, jax.random.key(0)))
    return np.asarray(f(pr.params, pr.stats, jnp.asarray(m_nodes, jnp.float32), jnp.asarray(toks)))


@pytest.mark.parametrize("mode", ["mean", "resample"])
def test_all_on_is_the_unpruned_model(random_model, mode):
    cfg, params, stats, _ = random_model
    pr = prune.Pruner(params, cfg, dataclasses.replace(PRUNE, ablation=mode), stats)
    toks = np.random.default_rng(5).integers(0, 16, size=(4, cfg.n_ctx))
    full = jax.jit(lambda p, t: M.forward(p, t, cfg))(params, jnp.asarray(toks))
    np.testing.assert_array_equal(masked_logits(pr, np.ones(pr.layout.n_nodes), toks), np.asarray(full))


@pytest.mark.parametrize("mode", ["mean", "resample"])
def test_masked_logits_at_positions_are_the_full_pass_there(random_model, mode):
    """With ``positions_B`` the last block's MLP runs at those positions alone, so resampled ablation values must be
    read there too: a partial mask's logits equal the full masked pass's at each sequence's position."""
    cfg, params, stats, _ = random_model
    pr = prune.Pruner(params, cfg, dataclasses.replace(PRUNE, ablation=mode), stats)
    rng = np.random.default_rng(8)
    toks, pos = rng.integers(0, 16, size=(6, cfg.n_ctx)), np.array([cfg.n_ctx - 1, 0, 3, 5, 2, cfg.n_ctx - 2])
    m = (rng.random(pr.layout.n_nodes) < 0.6).astype(np.float32)
    f = jax.jit(lambda m, t, q: prune.masked_logits(pr.spec, pr.params, pr.stats, m, t, jax.random.key(0),
                                                    positions_B=q))
    at = np.asarray(f(jnp.asarray(m), jnp.asarray(toks), jnp.asarray(pos)))
    full = masked_logits(pr, m, toks)
    np.testing.assert_allclose(at, full[np.arange(6), pos], rtol=1e-5, atol=1e-5)
    assert np.abs(at - full[:, 0]).max() > 1e-3  # the positions matter: reading position 0 would differ


def test_all_off_mean_ablation_is_constant(random_model):
    """Every path between positions runs through nodes, so with all of them at their means the logits at a position
    depend on nothing but that position's own token (the embedding -> unembedding and bigram paths)."""
    cfg, params, stats, _ = random_model
    pr = prune.Pruner(params, cfg, PRUNE, stats)
    toks = np.random.default_rng(6).integers(0, 16, size=(6, cfg.n_ctx))
    toks[:, -1] = 9
    full = masked_logits(pr, np.ones(pr.layout.n_nodes), toks)[:, -1]
    assert np.ptp(full, axis=0).max() > 1e-4  # the unpruned model does read the context
    off = masked_logits(pr, np.zeros(pr.layout.n_nodes), toks)[:, -1]
    np.testing.assert_allclose(off, np.broadcast_to(off[:1], off.shape), rtol=0, atol=1e-5)


def test_means_are_means_of_captured_nodes(random_model):
    cfg, params, stats, pre = random_model

    def capture(params, toks):
        cap = {}
        M.forward(params, toks, cfg, node_fn=lambda n, x: cap.setdefault(n, x))
        return cap

    cap = jax.jit(capture)(params, jnp.asarray(pre.reshape(8, -1)))
    assert set(cap) == set(M.node_shapes(cfg))
    for name, x in cap.items():
        np.testing.assert_allclose(stats.means[name], np.asarray(x).mean((0, 1)), atol=1e-5)
        assert stats.bank[name].shape == (32, x.shape[-1])
        rows = np.asarray(x).reshape(-1, x.shape[-1])
        assert all(np.isclose(rows, r, atol=1e-6).all(1).any() for r in stats.bank[name])


def test_surrogate_gradient():
    tau = jnp.array([-0.7, -0.1, 0.0, 0.05, 0.9])
    for temp in (1.0, 0.3):
        np.testing.assert_array_equal(masks.heaviside(tau, temp), (tau > 0).astype(jnp.float32))
        g = jax.grad(lambda t: masks.heaviside(t, temp).sum())(tau)
        s = jax.nn.sigmoid(tau / temp)
        np.testing.assert_allclose(g, s * (1 - s) / temp, rtol=1e-6)


def test_temperature_schedules():
    p = jnp.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(masks.temperature("constant", 1.0, 0.1, p), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(masks.temperature("linear", 1.0, 0.1, p), [1.0, 0.55, 0.1], rtol=1e-6)
    np.testing.assert_allclose(masks.temperature("geometric", 1.0, 0.01, p), [1.0, 0.1, 0.01], rtol=1e-5)
    np.testing.assert_allclose(masks.temperature("poly5", 1.0, 0.0 + 0.1, p), [1.0, 0.1 + 0.9 / 32, 0.1], rtol=1e-6)


def test_tied_qk_layout():
    shapes = M.node_shapes(CFG)
    lay = masks.make_layout(shapes, tie_qk=True)
    assert lay.n_units == lay.n_nodes - CFG.d_attn
    q, k = lay.slice("0.attn.q"), lay.slice("0.attn.k")
    np.testing.assert_array_equal(lay.unit_of_node[q], lay.unit_of_node[k])
    m = np.asarray(lay.nodes(jnp.arange(lay.n_units, dtype=jnp.float32)))
    assert len(np.unique(m)) == lay.n_units


def test_edges_on_hand_made_sparse_model():
    p = jax.tree.map(lambda a: np.zeros(a.shape, np.float32), M.init_params(CFG, jax.random.key(0)))
    blk = p["blocks"][0]
    A = CFG.d_attn
    blk["attn"]["c_attn"]["w"][1, 0] = 0.5  # act_in:1 -> q:0
    blk["attn"]["c_attn"]["w"][1, A + 2] = -1.0  # act_in:1 -> k:2
    blk["attn"]["c_attn"]["w"][3, 2 * A + 2] = 2.0  # act_in:3 -> v:2 (act_in:3 not kept)
    blk["attn"]["c_proj"]["w"][2, 4] = 1.5  # v:2 -> resid_delta:4 (v:2 kept)
    blk["mlp"]["c_fc"]["w"][0, 7] = 3.0  # act_in:0 -> post_act:7
    blk["mlp"]["c_fc"]["w"][0, 6] = 3.0  # post_act:6 not kept
    blk["mlp"]["c_proj"]["w"][7, 1] = -2.0  # post_act:7 -> resid_delta:1
    keep = {n: np.zeros(w) for n, w in M.node_shapes(CFG).items()}
    for name, idx in {"0.attn.act_in": [1], "0.attn.q": [0], "0.attn.k": [2], "0.attn.v": [2],
                      "0.attn.resid_delta": [4], "0.mlp.act_in": [0], "0.mlp.post_act": [7],
                      "0.mlp.resid_delta": [1]}.items():
        keep[name][idx] = 1
    edges, counts = graph.edges(p, keep)
    assert sorted(edges) == sorted([
        ["0.attn.act_in:1", "0.attn.q:0", 0.5], ["0.attn.act_in:1", "0.attn.k:2", -1.0],
        ["0.attn.v:2", "0.attn.resid_delta:4", 1.5], ["0.mlp.act_in:0", "0.mlp.post_act:7", 3.0],
        ["0.mlp.post_act:7", "0.mlp.resid_delta:1", -2.0]])
    assert counts["total"] == 5 and counts["attn.act_in->qkv"] == 2 and counts["attn.act_in->v"] == 0
    assert counts["attn.v->resid_delta"] == counts["mlp.act_in->post_act"] == counts["mlp.post_act->resid_delta"] == 1


def test_calibration_fixes_a_shifted_scaled_circuit():
    rng = np.random.default_rng(0)
    d = np.stack([rng.normal(2, 1, 256), rng.normal(-2, 1, 256)], 1).astype(np.float32)
    w = jnp.ones(256)
    bad = 0.3 * d + 1.5  # under-confident and biased toward the target
    a, b = prune.calibrate(jnp.asarray(bad), w, 16)
    before = float(tasks.pair_loss(jnp.asarray(bad), w))
    after = float(tasks.pair_loss(jnp.asarray(bad), w, a, b))
    assert after < before - 0.1 and a > 1.0 and b < 0


def test_random_masks_keep_counts_per_location(planted):
    params, stats = planted
    pr = prune.Pruner(params, CFG, PRUNE, stats)
    m = np.zeros(pr.layout.n_nodes, np.float32)
    m[[0, 3, 9, 40, 41]] = 1
    r = validate.random_masks(pr, m, 4, seed=0)
    for name in pr.layout.names:
        sl = pr.layout.slice(name)
        assert (r[:, sl].sum(1) == m[sl].sum()).all()


def test_sigmoid_relaxation_tied_qk_zero_ablation_also_recover_planted_circuit(planted):
    params, stats = planted
    cfg = dataclasses.replace(PRUNE, mask_param="sigmoid", temp_schedule="geometric", temp_start=1.0, temp_end=0.05,
                              tie_qk=True, ablation="zero")
    pr = prune.Pruner(params, CFG, cfg, stats)
    tau, _ = pr.train(prune.settings_grid(cfg), prune.pairs_from_batch(cue_batch(32, 0)))
    assert tau.tau.shape == tau.push.shape == (1, pr.layout.n_nodes - CFG.d_attn)
    _, m_units = pr.bisect(tau, pr.pad(cue_batch(32, 1)), cfg.target_loss)
    kept = {k: v for k, v in graph.kept_indices(pr.layout.split(pr.units_to_nodes(m_units[0]))).items() if v}
    assert kept == PLANTED


def test_mask_spec_and_host_fields_cover_the_prune_config_exactly():
    """Every PruneConfig field is either read by compiled code (MaskSpec: part of the compile key) or host-only."""
    spec_fields = {f.name for f in dataclasses.fields(prune.MaskSpec)} - {"model"}
    config_fields = {f.name for f in dataclasses.fields(PruneConfig)}
    assert spec_fields | prune.HOST_FIELDS == config_fields
    assert not spec_fields & prune.HOST_FIELDS


def test_pruners_share_programs_by_spec_and_hold_no_params(planted):
    import gc
    import weakref

    params, stats = planted
    test = prune.pairs_from_batch(cue_batch(16, 1), pad_to=PRUNE.batch_pairs)
    full = np.ones((1, prune.MaskSpec.of(CFG, PRUNE).layout.n_nodes), np.float32)
    own = jax.tree.map(lambda x: x + 0.0, params)  # a copy only this pruner references
    pr = prune.Pruner(own, CFG, PRUNE, stats)
    pr.loss(full, test)
    n_programs = prune._margins._cache_size()
    # Host-only fields (target, lr, k_coef, split sizes) reuse the compiled program; a traced field does not.
    prune.Pruner(params, CFG, dataclasses.replace(PRUNE, target_loss=0.3, lr=0.5, k_coef=2.0, n_test_pairs=7),
                 stats).loss(full, test)
    assert prune._margins._cache_size() == n_programs
    prune.Pruner(params, CFG, dataclasses.replace(PRUNE, ablation="zero"), stats).loss(full, test)
    assert prune._margins._cache_size() == n_programs + 1
    # The compiled programs' cache keys hold the spec, not the pruner: its parameters can be freed.
    ref = weakref.ref(own["lm_head"]["w"])
    del pr, own
    gc.collect()
    assert ref() is None


def test_ranks_break_tau_ties_by_push_then_index():
    tau = jnp.array([1.0, 0.5, 1.0, 1.0, -1.0])
    push = jnp.array([0.2, 0.0, 0.9, 0.2, -3.0])
    np.testing.assert_array_equal(prune.ranks(tau, push), [1, 3, 0, 2, 4])  # unit 2 pushed hardest; 0 before 3
    np.testing.assert_array_equal(prune.ranks(tau), [0, 3, 1, 2, 4])  # without a tie-break: index order


def test_tie_counts_at_the_bound_and_the_cut():
    scores = prune.UnitScores(tau=np.array([[1.0, 1.0, 1.0, 0.3, 1.0]]), push=np.array([[0.5, 0.1, 0.1, 0.0, 2.0]]))
    # ranked: 4 (push 2), 0 (0.5), 1 and 2 (0.1, by index), 3. A cut after 2 units splits the tau = 1 group (4 units)
    # by push; a cut after 3 splits units 1 and 2, whose tau and push are equal.
    assert prune.tie_counts(scores, np.array([2])) == [{"at_upper_bound": 4, "tied_at_cut": 4, "unresolved_at_cut": 0}]
    assert prune.tie_counts(scores, np.array([3])) == [{"at_upper_bound": 4, "tied_at_cut": 4, "unresolved_at_cut": 2}]
    assert prune.tie_counts(scores, np.array([4]))[0]["tied_at_cut"] == 0  # 1.0 | 0.3: no tie across the cut


def test_pair_loss_is_the_contrast_loss_of_the_same_logits():
    """The pruner's pair form and the evaluation's logit form are one loss."""
    rng = np.random.default_rng(3)
    n, V = 6, 9
    logits = jnp.asarray(rng.normal(size=(2 * n, V)), jnp.float32)
    correct = rng.integers(0, V, n)
    wrong = (correct + 1 + rng.integers(0, V - 1, n)) % V
    batch = tasks.TaskBatch(np.zeros((2 * n, 1), np.int32), np.zeros(2 * n, np.int32),
                            np.concatenate([correct, wrong]).astype(np.int32),
                            np.concatenate([wrong, correct]).astype(np.int32))
    want, _ = tasks.contrast_loss(logits, batch)
    rows = np.arange(2 * n)
    d = np.asarray(logits)[rows, batch.correct] - np.asarray(logits)[rows, batch.wrong]  # correct - wrong
    d_P2 = jnp.asarray(np.stack([d[:n], -d[n:]], 1))  # target - alt for the positive, then the negative
    assert float(tasks.pair_loss(d_P2, jnp.ones(n))) == pytest.approx(float(want), rel=1e-6)
