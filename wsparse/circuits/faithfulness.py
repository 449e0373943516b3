"""The faithfulness card (docs/method.md section 6): controls a skeptical reviewer asks of every circuit.

Each control is a function of (params, circuit, task pairs, config) that reuses the Pruner's compiled programs, the
masked ``node_fn`` and the node means; the ones that prune again call ``extract.search``, the same sweep, bisection
and selection rule that found the circuit, with the same budget. All reported numbers are on the test split; every
choice a control makes (which setting, which top-k prefix) is made on val.

- ``swapped_answers``: the same prompts with target and alt exchanged, a task the full model gets wrong. If the mask
  gets near the target there, it can create behaviour rather than find it.
- ``random_weights``: the real task on a randomly initialised model of the same shape and per-tensor nonzero counts
  (with its own node means). Same question.
- ``ablation_kinds``: the circuit's size and test loss under mean, zero and resample ablation.
- ``seeds``: circuits from other mask seeds (one vmapped sweep): overlap of kept nodes, spread of sizes.
- ``node_fidelity`` (``circuits.fidelity``): do kept nodes and heads behave in the circuit as in the full model?
- ``distribution_shift``: the circuit's loss on a shifted prompt distribution the task declares, against the full
  model's loss there.

Each control returns a dict with ``verdict`` ("pass", "flag" or "n/a"), a one-line ``summary`` and ``meaning``, and
its numbers; :func:`card` runs the configured controls and adds the budget and their times.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from wsparse import config as C
from wsparse import model as M
from wsparse import sparsity
from wsparse.circuits import extract, fidelity, means
from wsparse.circuits.means import NodeStats
from wsparse.circuits.prune import SETTING_KEYS, Pairs, Pruner, pairs_from_batch, ranks, settings_grid
from wsparse.circuits.record import CircuitRecord
from wsparse.config import ModelConfig, PruneConfig

CARD_VERSION = 1
MEANINGS = {
    "swapped_answers": "can the mask make the model answer the opposite of what it does? (flag: it gets near the "
                       "target, so masks can create behaviour)",
    "random_weights": "can the mask solve the task in an untrained model of the same shape? (flag: it gets near "
                      "the target, so the circuit need not reflect training)",
    "ablation_kinds": "does the circuit's size depend on how pruned nodes are replaced? (flag: edges differ by more "
                      "than the configured ratio)",
    "seeds": "do other mask seeds find the same circuit? (flag: low node overlap with the reported circuit)",
    "node_fidelity": "do kept nodes and heads act in the circuit as in the full model? (flag: many low-correlation "
                     "nodes or changed attention)",
    "distribution_shift": "does the circuit keep the model's behaviour on shifted prompts? (flag: it loses more than "
                          "the configured gap)",
}


@dataclasses.dataclass(frozen=True)
class TaskPairs:
    """A task's splits as Pairs: ``train`` unpadded (mask steps sample from it), val and test padded to the chunk
    size; ``shifted`` is the test split of the task's declared shift, or None."""

    train: Pairs
    val: Pairs
    test: Pairs
    shifted: Pairs | None = None

    @classmethod
    def from_batches(cls, pr: Pruner, batches: Mapping[str, Any]) -> "TaskPairs":
        shifted = batches.get("shifted")
        return cls(pairs_from_batch(batches["train"]), pr.pad(batches["val"]), pr.pad(batches["test"]),
                   None if shifted is None else pr.pad(shifted))

    def swapped(self) -> "TaskPairs":
        """The nonsense task: every pair's target and alt exchanged."""
        swap = lambda p: p._replace(correct=p.wrong, wrong=p.correct)  # noqa: E731
        return TaskPairs(swap(self.train), swap(self.val), swap(self.test), None)


def circuit_mask(pr: Pruner, rec: CircuitRecord) -> np.ndarray:
    """The record's kept nodes as a flat ``[N]`` 0/1 mask in the Pruner's layout."""
    m = np.zeros(pr.layout.n_nodes, np.float32)
    for name, kept in (rec.nodes or {}).items():
        m[pr.layout.slice(name).start + np.asarray(kept, int)] = 1.0
    return m


def _verdict(flag: bool) -> str:
    return "flag" if flag else "pass"


def one_by_one(pr: Pruner, m_nodes_SN: np.ndarray, pairs: Pairs) -> np.ndarray:
    """``pr.loss`` of each mask in turn: on CPU one program of one mask runs 2-3x faster per mask than the same
    program vmapped over many (measured on the demo model), and it is compiled once for every count."""
    return np.concatenate([pr.loss(m[None], pairs) for m in m_nodes_SN])


# -- can the mask reach a target it should not? ------------------------------------------------------------------------


def reach(pr: Pruner, settings: Mapping[str, np.ndarray], pairs: TaskPairs, cfg: PruneConfig) -> dict[str, Any]:
    """Trains the masks of ``settings`` on ``pairs.train`` and records the lowest loss they reach: among each
    setting's learned mask (tau > 0) and ``prefix_points`` top-k prefixes of its ranking (log-spaced k, the whole
    model included), the candidate of lowest val loss, reported on test. The pipeline's bisection is not repeated:
    it assumes the loss falls with k, which a nonsense task need not do, so it can miss what the prefixes show."""
    fc, target = cfg.faithfulness, cfg.target_loss
    full = np.ones((1, pr.layout.n_nodes), np.float32)
    scores, _ = pr.train(settings, pairs.train)
    U = scores.tau.shape[1]
    ks = np.unique(np.geomspace(1, U, fc.prefix_points).astype(int))
    cand, labels = [], []
    for s, (tau, push) in enumerate(zip(scores.tau, scores.push)):
        rank = np.asarray(ranks(jnp.asarray(tau), jnp.asarray(push)))
        cand.append(pr.units_to_nodes((tau > 0).astype(np.float32)))
        labels.append((s, "learned mask"))
        cand += [pr.units_to_nodes((rank < k).astype(np.float32)) for k in ks]
        labels += [(s, f"top-{k} prefix") for k in ks]
    cand_ = np.stack(cand)
    val = one_by_one(pr, cand_, pairs.val)  # every candidate on val; only the two chosen ones on test
    i = int(np.argmin(val))
    learned = [j for j, (_, what) in enumerate(labels) if what == "learned mask"]
    j = learned[int(np.argmin(val[learned]))]
    test = dict(zip((i, j), one_by_one(pr, cand_[[i, j]], pairs.test)))
    best, full_loss = float(test[i]), float(pr.loss(full, pairs.test)[0])
    flag = best <= fc.reach_factor * target
    return {
        "verdict": _verdict(flag),
        "summary": f"best test loss the mask reaches {best:.3f} with {int(cand_[i].sum())} nodes "
                   f"(flag at <= {fc.reach_factor * target:.3g}); full model {full_loss:.3f}",
        "full_model_test_loss": full_loss,
        "best": {"what": labels[i][1], "setting": labels[i][0], "n_nodes": int(cand_[i].sum()),
                 "val_loss": float(val[i]), "test_loss": best},
        "learned_mask": {"setting": labels[j][0], "n_nodes": int(cand_[j].sum()), "val_loss": float(val[j]),
                         "test_loss": float(test[j])},
        "flag_at": fc.reach_factor * target,
    }


def swapped_answers(pr: Pruner, pairs: TaskPairs, cfg: PruneConfig) -> dict[str, Any]:
    return reach(pr, settings_grid(cfg), pairs.swapped(), cfg)


def random_model(params: Any, model_cfg: ModelConfig, seed: int) -> Any:
    """A fresh initialisation of the same shape, projected to each sparse tensor's nonzero count in ``params``
    (the weight projection's own magnitude top-k); dense parameters keep their initial values, and biases their
    initial zeros."""
    fresh = M.init_params(model_cfg, jax.random.key(seed))

    def one(path, trained, new):
        if sparsity.family_of(path) is None:
            return new
        return sparsity.project_tensor(new, jnp.int32(np.count_nonzero(np.asarray(trained))))

    return jax.tree_util.tree_map_with_path(one, params, fresh)


def random_setup(params: Any, model_cfg: ModelConfig, cfg: PruneConfig, pretrain_tokens: np.ndarray
                 ) -> tuple[Any, NodeStats]:
    """``random_model`` and its node means over ``pretrain_tokens`` (``[n, B, T]``): the same for every task of a
    run, so a caller checking several circuits computes it once."""
    rand = random_model(params, model_cfg, cfg.faithfulness.random_seed)
    return rand, means.compute(rand, model_cfg, pretrain_tokens, n_bank=cfg.resample_bank, seed=cfg.seed)


def random_weights(params: Any, model_cfg: ModelConfig, cfg: PruneConfig, batches: Mapping[str, Any],
                   pretrain_tokens: np.ndarray | None = None, *, setup: tuple[Any, NodeStats] | None = None
                   ) -> dict[str, Any]:
    """``reach`` on the real task for ``random_model`` (``setup``, or ``random_setup`` over ``pretrain_tokens``)."""
    rand, stats = setup or random_setup(params, model_cfg, cfg, _need(pretrain_tokens))
    pr = Pruner(rand, model_cfg, cfg, stats)
    out = reach(pr, settings_grid(cfg), TaskPairs.from_batches(pr, batches), cfg)
    return out | {"random_seed": cfg.faithfulness.random_seed, "means_tokens": stats.n_tokens}


# -- how much does the circuit depend on choices of the method? ------------------------------------------------------


def _circuit_row(found: extract.Search) -> dict[str, Any]:
    row = found.rows[found.best]
    return {"n_nodes": row["n_nodes"], "n_edges": row["n_edges"], "val_loss": row["val_loss"],
            "test_loss": row["test_loss"], "meets_target_on_val": row["meets_target_on_val"]}


def ablation_kinds(params: Any, model_cfg: ModelConfig, cfg: PruneConfig, stats: NodeStats, pairs: TaskPairs,
                   rec: CircuitRecord, host_params: Any) -> dict[str, Any]:
    """The circuit found with each ablation kind (the record's own kind is the record), its edges and test loss."""
    fc, host = cfg.faithfulness, host_params
    kinds: dict[str, dict[str, Any]] = {}
    for kind in fc.ablation_kinds:
        if kind == rec.ablation:
            kinds[kind] = {"n_nodes": rec.n_nodes, "n_edges": rec.edges_total, "val_loss": rec.circuit_loss["val"],
                           "test_loss": rec.circuit_loss["test"],
                           "meets_target_on_val": rec.circuit_loss["val"] <= rec.target_loss, "is_record": True}
            continue
        pr = Pruner(params, model_cfg, dataclasses.replace(cfg, ablation=kind), stats)
        found = extract.search(pr, settings_grid(cfg), pairs.train, pairs.val, pairs.test, cfg.target_loss, host)
        kinds[kind] = _circuit_row(found)
    edges = {k: max(1, v["n_edges"]) for k, v in kinds.items()}
    ratio = max(edges.values()) / min(edges.values())
    text = ", ".join(f"{k} {v['n_edges']} edges (test {v['test_loss']:.3f})" for k, v in kinds.items())
    return {"verdict": _verdict(ratio > fc.ablation_flag_ratio), "kinds": kinds, "edge_ratio": ratio,
            "summary": f"{text}; largest/smallest {ratio:.2f} (flag above {fc.ablation_flag_ratio:g})"}


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.sum((a > 0) | (b > 0))
    return 1.0 if union == 0 else float(np.sum((a > 0) & (b > 0)) / union)


def seeds(pr: Pruner, pairs: TaskPairs, cfg: PruneConfig, rec: CircuitRecord, host_params: Any) -> dict[str, Any]:
    """The record's winning setting with ``n_seeds`` other mask seeds, trained together and bisected on val."""
    fc, hp = cfg.faithfulness, rec.hyperparameters or {}
    n = fc.n_seeds
    settings = {k: np.full(n, hp[k], np.int32 if k == "seed" else np.float32) for k in SETTING_KEYS}
    settings["seed"] = np.asarray(hp["seed"] + 1 + np.arange(n), np.int32)  # never the record's own seed
    found = extract.search(pr, settings, pairs.train, pairs.val, pairs.test, cfg.target_loss, host_params)
    ref = circuit_mask(pr, rec)
    vs_record = [jaccard(m, ref) for m in found.m_nodes]
    pairwise = [jaccard(found.m_nodes[i], found.m_nodes[j]) for i in range(n) for j in range(i + 1, n)]
    nodes, edges = [r["n_nodes"] for r in found.rows], [r["n_edges"] for r in found.rows]
    mean_vs = float(np.mean(vs_record))
    return {
        "verdict": _verdict(mean_vs < fc.min_jaccard),
        "summary": f"{n} seeds: node Jaccard with the circuit {mean_vs:.2f} (flag below {fc.min_jaccard:g}), "
                   f"between seeds {np.mean(pairwise):.2f}; edges {min(edges)}..{max(edges)} "
                   f"(circuit {rec.edges_total})",
        "seeds": settings["seed"].tolist(), "jaccard_with_circuit": vs_record, "mean_jaccard_with_circuit": mean_vs,
        "mean_pairwise_jaccard": float(np.mean(pairwise)), "n_nodes": nodes, "n_edges": edges,
        "test_loss": [r["test_loss"] for r in found.rows],
        "meets_target_on_val": [r["meets_target_on_val"] for r in found.rows],
    }


def distribution_shift(pr: Pruner, m_nodes: np.ndarray, pairs: TaskPairs, cfg: PruneConfig,
                       shift: str = "") -> dict[str, Any]:
    if pairs.shifted is None:
        return {"verdict": "n/a", "summary": "the task declares no shifted prompts"}
    full, circ = pr.loss(np.stack([np.ones_like(m_nodes), m_nodes]), pairs.shifted)
    test_full, test_circ = pr.loss(np.stack([np.ones_like(m_nodes), m_nodes]), pairs.test)
    gap = float(circ - full)
    return {"verdict": _verdict(gap > cfg.faithfulness.max_shift_gap), "shift": shift,
            "summary": f"shifted prompts ({shift or 'declared shift'}): circuit {circ:.3f} vs full model {full:.3f} "
                       f"(gap {gap:+.3f}, flag above {cfg.faithfulness.max_shift_gap:g}); on test "
                       f"{test_circ:.3f} vs {test_full:.3f}",
            "circuit_loss": float(circ), "full_model_loss": float(full), "gap": gap,
            "test_circuit_loss": float(test_circ), "test_full_model_loss": float(test_full),
            "n_pairs": int(np.sum(np.asarray(pairs.shifted.weight) > 0))}


# -- the card ----------------------------------------------------------------------------------------------------------


def card(params: Any, model_cfg: ModelConfig, cfg: PruneConfig, stats: NodeStats, batches: Mapping[str, Any],
         rec: CircuitRecord, *, pretrain_tokens: np.ndarray | None = None, shift: str = "",
         controls: tuple[str, ...] | None = None, log: Callable[[str], None] | None = None,
         random: tuple[Any, NodeStats] | None = None) -> dict[str, Any]:
    """The card for one solved circuit: ``controls`` (default ``cfg.faithfulness.controls``) on ``batches`` (the
    task's train/val/test TaskBatches, and ``"shifted"`` when the task declares a shift). ``random_weights`` needs
    ``pretrain_tokens`` for its model's node means, or ``random`` (``random_setup``'s result, shared across tasks).
    Returns the dict stored in ``validation.controls``."""
    if not rec.is_solved:
        raise ValueError(f"task {rec.task}: no circuit to check ({rec.message})")
    fc = cfg.faithfulness
    controls = tuple(controls if controls is not None else fc.controls)
    unknown = set(controls) - set(C.FAITHFULNESS_CONTROLS)
    if unknown:
        raise ValueError(f"unknown faithfulness control(s) {sorted(unknown)}; known: {C.FAITHFULNESS_CONTROLS}")
    pr = Pruner(params, model_cfg, cfg, stats)
    pairs = TaskPairs.from_batches(pr, batches)
    m = circuit_mask(pr, rec)
    host = jax.device_get(params)
    run: dict[str, Callable[[], dict[str, Any]]] = {
        "swapped_answers": lambda: swapped_answers(pr, pairs, cfg),
        "random_weights": lambda: random_weights(params, model_cfg, cfg, batches, pretrain_tokens, setup=random),
        "ablation_kinds": lambda: ablation_kinds(params, model_cfg, cfg, stats, pairs, rec, host),
        "seeds": lambda: seeds(pr, pairs, cfg, rec, host),
        "node_fidelity": lambda: fidelity.node_fidelity(pr, m, pairs.test, fc),
        "distribution_shift": lambda: distribution_shift(pr, m, pairs, cfg, shift),
    }
    out: dict[str, Any] = {"card_version": CARD_VERSION, "budget": budget(cfg), "seconds": {}, "verdicts": {}}
    for name in C.FAITHFULNESS_CONTROLS:
        if name not in controls:
            continue
        t0 = time.perf_counter()
        result = run[name]()
        out["seconds"][name] = round(time.perf_counter() - t0, 2)
        out[name] = {"meaning": MEANINGS[name]} | result
        out["verdicts"][name] = result["verdict"]
        if log:
            log(f"{rec.task} {name} ({out['seconds'][name]:.0f}s): {result['verdict']}: {result['summary']}")
    out["flags"] = [n for n, v in out["verdicts"].items() if v == "flag"]
    return out


def _need(tokens: np.ndarray | None) -> np.ndarray:
    if tokens is None:
        raise ValueError("random_weights needs pretrain_tokens (the node means of the random model)")
    return tokens


def budget(cfg: PruneConfig) -> dict[str, Any]:
    """The card's thresholds and the pruning budget every re-pruning control used."""
    s = settings_grid(cfg)
    return {"faithfulness": C.to_dict(cfg.faithfulness), "target_loss": cfg.target_loss, "ablation": cfg.ablation,
            "mask_settings": int(len(s["seed"])), "mask_steps": cfg.steps, "batch_pairs": cfg.batch_pairs,
            "n_train_pairs": cfg.n_train_pairs, "n_val_pairs": cfg.n_val_pairs, "n_test_pairs": cfg.n_test_pairs}


def merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Card ``old`` with ``new``'s controls added or replaced (both of the same budget), in the canonical order."""
    names = [n for n in C.FAITHFULNESS_CONTROLS if n in old.get("verdicts", {}) or n in new["verdicts"]]
    pick = lambda n: new if n in new["verdicts"] else old  # noqa: E731
    out: dict[str, Any] = {"card_version": CARD_VERSION, "budget": new["budget"],
                           "seconds": {n: pick(n)["seconds"][n] for n in names},
                           "verdicts": {n: pick(n)["verdicts"][n] for n in names}}
    out |= {n: pick(n)[n] for n in names}
    out["flags"] = [n for n, v in out["verdicts"].items() if v == "flag"]
    return out
