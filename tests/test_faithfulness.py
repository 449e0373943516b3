"""The faithfulness card: on the planted-circuit model every control passes; on a model built so that masking can
create the opposite behaviour, swapped_answers flags it; each control's numbers mean what they say."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from planted import CFG, PRUNE, cue_batch, node_stats, planted_params, splits, symmetric_pretraining, two_path_params
from wsparse import config as C
from wsparse import sparsity
from wsparse.circuits import faithfulness as F
from wsparse.circuits import fidelity, prune, record
from wsparse.circuits.extract import extract

CARD_CFG = dataclasses.replace(PRUNE, faithfulness=C.FaithfulnessConfig(n_seeds=2, prefix_points=8,
                                                                    ablation_kinds=("mean", "zero")))


def with_shift(batches, length=8):
    """A declared shift for the cue task: the same cue further from the answer (two more filler tokens)."""
    return batches | {"shifted": cue_batch(32, 5, length=length)}


@pytest.fixture(scope="module")
def planted_card():
    params = planted_params()
    stats = node_stats(params)
    rec, _ = extract(params, CFG, CARD_CFG, stats, splits(), task="cue")
    card = F.card(params, CFG, CARD_CFG, stats, with_shift(splits()), rec, pretrain_tokens=symmetric_pretraining(),
                  shift="two more fillers")
    return rec, card


def test_planted_circuit_passes_every_control(planted_card):
    rec, card = planted_card
    assert rec.is_solved and rec.n_nodes == 6
    assert set(card["verdicts"]) == set(C.FAITHFULNESS_CONTROLS) and card["flags"] == []
    assert card["card_version"] == F.CARD_VERSION and set(card["seconds"]) == set(C.FAITHFULNESS_CONTROLS)
    for name in C.FAITHFULNESS_CONTROLS:
        assert card[name]["verdict"] == "pass" and card[name]["summary"] and card[name]["meaning"] == F.MEANINGS[name]


def test_nonsense_tasks_stay_far_from_the_target_on_the_planted_model(planted_card):
    _, card = planted_card
    for name in ("swapped_answers", "random_weights"):
        c = card[name]
        assert c["best"]["test_loss"] > c["flag_at"] == CARD_CFG.faithfulness.reach_factor * PRUNE.target_loss
    assert card["swapped_answers"]["full_model_test_loss"] > 2.0  # the full model is confidently "wrong" there


def test_seeds_fidelity_and_shift_on_the_planted_model(planted_card):
    rec, card = planted_card
    seeds = card["seeds"]
    assert seeds["seeds"] == [rec.hyperparameters["seed"] + 1 + i for i in range(2)]
    assert seeds["mean_jaccard_with_circuit"] == pytest.approx(1.0) and seeds["n_edges"] == [4, 4]
    fid = card["node_fidelity"]
    assert fid["n_kept"] == 6 and fid["n_low"] == 0 and fid["corr_quantiles"]["min"] > 0.999
    assert fid["last_position"]["n_low"] == 0
    assert fid["mean_head_tv"] < 1e-6  # q = k = 0: attention is uniform in both
    shift = card["distribution_shift"]
    assert shift["n_pairs"] == 32 and abs(shift["gap"]) < 0.05 and shift["shift"] == "two more fillers"
    kinds = card["ablation_kinds"]["kinds"]
    assert set(kinds) == {"mean", "zero"} and kinds["mean"]["is_record"]
    assert kinds["mean"]["n_edges"] == rec.edges_total


def test_swapped_answers_flags_a_model_whose_mask_can_create_the_opposite_answer():
    """Two paths of opposite sign, the planted one stronger: the full model is right, but ablating the planted path
    leaves the weaker one alone, which gives the swapped answer. The card must say so."""
    params = two_path_params()
    stats = node_stats(params)
    pr = prune.Pruner(params, CFG, CARD_CFG, stats)
    full = np.ones((1, pr.layout.n_nodes), np.float32)
    test = pr.pad(cue_batch(32, 2))
    assert pr.loss(full, test)[0] < PRUNE.target_loss  # the real task is solved ...
    swapped = F.TaskPairs.from_batches(pr, splits()).swapped()
    assert pr.loss(full, swapped.test)[0] > 2.0  # ... and the swapped one is not
    result = F.swapped_answers(pr, F.TaskPairs.from_batches(pr, splits()), CARD_CFG)
    assert result["verdict"] == "flag" and result["best"]["test_loss"] < PRUNE.target_loss


def test_node_fidelity_flags_nodes_whose_inputs_were_ablated():
    """A 'circuit' without the cue's residual channel: v:1 and everything after it lose all their variation."""
    params = planted_params()
    pr = prune.Pruner(params, CFG, PRUNE, node_stats(params))
    m = np.zeros(pr.layout.n_nodes, np.float32)
    for name, idx in {"0.attn.v": 1, "0.attn.resid_delta": 2, "0.mlp.act_in": 2, "0.mlp.post_act": 3}.items():
        m[pr.layout.slice(name).start + idx] = 1.0
    out = fidelity.node_fidelity(pr, m, pr.pad(cue_batch(32, 2)), PRUNE.faithfulness)
    assert out["verdict"] == "flag" and out["n_low"] == 4 and out["low_frac"] == 1.0
    # At the last position (a filler token) v:1 reads a zero residual in both runs: constant, so undefined there.
    assert out["last_position"]["n_low"] == out["last_position"]["n_defined"] == 3
    assert set(out["lowest"]) == {"0.attn.v:1", "0.attn.resid_delta:2", "0.mlp.act_in:2", "0.mlp.post_act:3"}


def test_attention_change_of_a_kept_head_is_measured():
    """Give the head a query/key that attend to the cue; a circuit that keeps v but ablates q and k attends
    uniformly, which the total variation distance sees."""
    p = jax.tree.map(np.array, planted_params())
    A = CFG.d_attn
    p["blocks"][0]["attn"]["c_attn"]["b"][0] = 3.0  # q:0 is 3 everywhere (a constant query) ...
    p["blocks"][0]["attn"]["c_attn"]["w"][0, A] = 3.0  # ... and act_in:0 -> k:0: the cue's position stands out
    params = jax.tree.map(np.asarray, p)
    pr = prune.Pruner(params, CFG, PRUNE, node_stats(params))
    test = pr.pad(cue_batch(32, 2))
    full = np.ones(pr.layout.n_nodes, np.float32)
    no_qk = full.copy()
    no_qk[pr.layout.slice("0.attn.q")] = no_qk[pr.layout.slice("0.attn.k")] = 0.0
    same = fidelity.node_fidelity(pr, full, test, PRUNE.faithfulness)
    changed = fidelity.node_fidelity(pr, no_qk, test, PRUNE.faithfulness)
    assert same["mean_head_tv"] < 1e-6 and list(same["head_tv"]) == ["0.h0"]
    assert changed["mean_head_tv"] > 0.05


def test_correlations_handle_constant_nodes():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    cols = {"a": (x, 2 * x + 1), "b": (x, -x), "c": (x, np.ones(4)), "d": (np.ones(4), np.ones(4))}
    m = {k: np.zeros(4) for k in fidelity.MOMENTS}
    for j, (xs, ys) in enumerate(cols.values()):
        m["n"][j], m["x"][j], m["y"][j] = 4, xs.sum(), ys.sum()
        m["xx"][j], m["yy"][j], m["xy"][j] = (xs * xs).sum(), (ys * ys).sum(), (xs * ys).sum()
    r, constant = fidelity.correlations(m)
    assert r[:3] == pytest.approx([1.0, -1.0, 0.0]) and np.isnan(r[3])
    assert constant.tolist() == [False, False, False, True]


def test_random_model_keeps_shape_and_nonzero_counts():
    params = planted_params()
    rand = F.random_model(params, CFG, seed=3)
    flat_p, flat_r = jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(rand)
    assert len(flat_p) == len(flat_r)
    for (path, p), r in zip(flat_p, flat_r):
        assert p.shape == r.shape
        if sparsity.family_of(path) in ("interior", "embed"):
            assert np.count_nonzero(r) == np.count_nonzero(p)
        elif sparsity.family_of(path) == "bias":  # a fresh model's biases are zero
            assert np.count_nonzero(r) == 0
    assert not np.array_equal(np.asarray(rand["lm_head"]["w"]), np.asarray(params["lm_head"]["w"]))


def test_shift_is_not_applicable_without_shifted_prompts():
    params = planted_params()
    pr = prune.Pruner(params, CFG, PRUNE, node_stats(params))
    out = F.distribution_shift(pr, np.ones(pr.layout.n_nodes, np.float32), F.TaskPairs.from_batches(pr, splits()),
                               PRUNE)
    assert out["verdict"] == "n/a"


def test_card_survives_the_record_file(planted_card, tmp_path):
    rec, card = planted_card
    rec = dataclasses.replace(rec, validation=dataclasses.replace(rec.validation, controls=card))
    record.save(rec, str(tmp_path / "circuit.json"))
    back = record.load(str(tmp_path / "circuit.json"))
    assert back.validation.controls["verdicts"] == card["verdicts"]
    assert back.validation.controls["budget"] == F.budget(CARD_CFG)


def test_card_rejects_unknown_controls_and_needs_pretraining_tokens(planted_card):
    rec, _ = planted_card
    params = planted_params()
    stats = node_stats(params)
    with pytest.raises(ValueError, match="unknown faithfulness control"):
        F.card(params, CFG, CARD_CFG, stats, splits(), rec, controls=("nope",))
    with pytest.raises(ValueError, match="pretrain_tokens"):
        F.card(params, CFG, CARD_CFG, stats, splits(), rec, controls=("random_weights",))
    with pytest.raises(C.ConfigError, match="faithfulness.controls"):
        C.FaithfulnessConfig(controls=("nope",)).validate()


def test_merge_adds_and_renews_controls_in_order():
    old = {"budget": {"b": 1}, "seconds": {"seeds": 3.0, "node_fidelity": 1.0},
           "verdicts": {"seeds": "pass", "node_fidelity": "flag"}, "seeds": {"v": "old"}, "node_fidelity": {"v": "old"}}
    new = {"budget": {"b": 1}, "seconds": {"swapped_answers": 2.0, "node_fidelity": 0.5},
           "verdicts": {"swapped_answers": "flag", "node_fidelity": "pass"}, "swapped_answers": {"v": "new"},
           "node_fidelity": {"v": "new"}}
    card = F.merge(old, new)
    assert list(card["verdicts"]) == ["swapped_answers", "seeds", "node_fidelity"]
    assert card["verdicts"] == {"swapped_answers": "flag", "seeds": "pass", "node_fidelity": "pass"}
    assert card["node_fidelity"] == {"v": "new"} and card["seeds"] == {"v": "old"}
    assert card["flags"] == ["swapped_answers"] and card["seconds"]["node_fidelity"] == 0.5


def test_random_setup_is_shared_not_recomputed(planted_card):
    """The card takes a precomputed random model and means (one per run) and gives the numbers it computes alone."""
    _, card = planted_card
    params = planted_params()
    setup = F.random_setup(params, CFG, CARD_CFG, symmetric_pretraining())
    shared = F.random_weights(params, CFG, CARD_CFG, splits(), setup=setup)
    assert shared["best"] == card["random_weights"]["best"]
    with pytest.raises(ValueError, match="pretrain_tokens"):
        F.random_weights(params, CFG, CARD_CFG, splits())
