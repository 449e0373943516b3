"""Typed, frozen run configuration.

Config files (``configs/*.py``) return an ``ml_collections.ConfigDict``; the entry point turns it into a
``Config`` once with :func:`from_configdict`, and library code only ever sees these frozen dataclasses. Unknown keys
and bad values raise :class:`ConfigError` naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any, Mapping

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # PyTorch nn.RMSNorm's default eps, as in the release.

ACT_SPARSITY_LOCATIONS = (
    "attn_in", "attn_q", "attn_k", "attn_v", "attn_out", "mlp_in", "mlp_neuron", "mlp_out",
)


class ConfigError(ValueError):
    """A configuration value a user can fix."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """docs/method.md section 1. Weights are stored [in, out] (x @ w)."""

    vocab_size: int = 2048
    n_ctx: int = 256
    n_layer: int = 8
    d_model: int = 256
    n_head: int = 16
    d_head: int = 16
    d_mlp: int = 1024
    afrac: float = 0.25  # AbsTopK keeps int(afrac * width); 1.0 switches activation sparsity off.
    afrac_locations: tuple[str, ...] = ACT_SPARSITY_LOCATIONS
    bias: bool = True
    attn_sink: bool = False
    bigram_table: bool = False
    pos_emb: bool = False  # learned absolute positional embedding
    rms_eps: float = FLOAT32_EPS
    init_std: float = 0.02
    dtype: str = "float32"  # compute dtype of activations; params stay float32
    # AbsTopK's exact k-th-largest search (wsparse/topk.py): auto (per backend), bisect, blocked, top_k, native
    # (wsparse's C++ kernel, CPU only) or pallas (a Pallas kernel, for GPUs). All give the same result; only the speed
    # differs.
    topk_impl: str = "auto"
    # Attention: auto (per backend), xla (scores [B, H, T, T] in memory and wsparse's own softmax backward; every
    # backend, with or without the sink), cudnn (jax.nn.dot_product_attention's fused kernel: GPU, bfloat16, no
    # sink) or native (wsparse's C++ kernel: CPU, float32, d_head a multiple of 8 up to 64, with or without the
    # sink). auto is cudnn or native where it applies, else xla; all agree up to float rounding.
    attention_impl: str = "auto"

    def validate(self) -> None:
        _check(self.n_layer >= 1, "model.n_layer", "must be >= 1")
        _check(self.d_model >= 1 and self.d_mlp >= 1 and self.d_head >= 1 and self.n_head >= 1,
               "model", "widths must be positive")
        _check(0.0 < self.afrac <= 1.0, "model.afrac", f"must be in (0, 1], got {self.afrac}")
        bad = set(self.afrac_locations) - set(ACT_SPARSITY_LOCATIONS)
        _check(not bad, "model.afrac_locations", f"unknown {sorted(bad)}; known: {ACT_SPARSITY_LOCATIONS}")
        _check(self.vocab_size >= 2, "model.vocab_size", "must be >= 2")
        _check(self.dtype in ("float32", "bfloat16"), "model.dtype", "must be float32 or bfloat16")
        _check(self.topk_impl in ("auto", "bisect", "blocked", "top_k", "native", "pallas"), "model.topk_impl",
               "must be auto, bisect, blocked, top_k, native or pallas")
        _check(self.attention_impl in ("auto", "xla", "cudnn", "native"), "model.attention_impl",
               "must be auto, xla, cudnn or native")
        _check(self.attention_impl != "native" or self.fits_attention_kernel, "model.attention_impl",
               "native needs model.dtype = float32 and d_head a multiple of 8, at most 64")
        _check(self.attention_impl != "cudnn" or (self.dtype == "bfloat16" and not self.attn_sink),
               "model.attention_impl", "cudnn needs model.dtype = bfloat16 and no attention sink")

    @property
    def d_attn(self) -> int:
        return self.n_head * self.d_head

    @property
    def fits_attention_kernel(self) -> bool:
        """Whether wsparse's C++ attention kernel takes this model: float32, d_head a multiple of 8 up to 64."""
        return self.dtype == "float32" and self.d_head % 8 == 0 and self.d_head <= 64


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    """docs/method.md section 2: per-tensor magnitude top-k after every step, annealed from dense."""

    enabled: bool = True
    interior_density: float = 1 / 16  # c_attn, attn c_proj, c_fc, mlp c_proj
    embed_density: float = 1 / 4  # wte, lm_head
    bias_density: float = 1 / 4
    min_alive_per_neuron: int = 4  # 0 disables the per-neuron reservation
    anneal_start_frac: float = 0.01
    anneal_end_frac: float = 0.5
    # The projection's exact top-k (wsparse/sparsity.py): auto (per backend), bisect, sort or native. Same result.
    topk_impl: str = "auto"

    def validate(self) -> None:
        for name in ("interior_density", "embed_density", "bias_density"):
            v = getattr(self, name)
            _check(0.0 < v <= 1.0, f"sparsity.{name}", f"must be in (0, 1], got {v}")
        _check(self.min_alive_per_neuron >= 0, "sparsity.min_alive_per_neuron", "must be >= 0")
        _check(0.0 <= self.anneal_start_frac <= self.anneal_end_frac <= 1.0, "sparsity.anneal_*_frac",
               "need 0 <= anneal_start_frac <= anneal_end_frac <= 1")
        _check(self.topk_impl in ("auto", "bisect", "sort", "native"), "sparsity.topk_impl",
               "must be auto, bisect, sort or native")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """docs/method.md section 2: RMS-clipped AdamW with the sharkfin learning rate."""

    lr: float = 1.28e-2
    warmup_frac: float = 0.01
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 0.1
    weight_decay: float = 0.1
    grad_rms_max: float = 1.0
    # "normalize" (the release: divide by the RMS every step), "clip" (the paper's text: only when above), "none".
    # With Adam eps 0.1, clipping alone leaves small models' updates tiny (docs/method.md section 2).
    grad_rms_mode: str = "normalize"
    density_lr_scaling: bool = True  # multiply lr by sqrt(target_density / current_density)

    def validate(self) -> None:
        _check(self.lr > 0, "optim.lr", "must be > 0")
        _check(self.grad_rms_mode in ("clip", "normalize", "none"), "optim.grad_rms_mode",
               "must be clip, normalize or none")
        _check(0.0 <= self.warmup_frac < 1.0, "optim.warmup_frac", "must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """docs/method.md section 3: a Python corpus, a 2048-token BPE, token shards read through grain."""

    default_sources: bool = True  # the interpreter's standard library (installed packages never)
    sources: tuple[str, ...] = ()  # extra directories or glob patterns of .py files
    max_source_bytes: int = 0  # cap on corpus bytes, real + synthetic (0: all real files, synthetic added by weight)
    max_file_bytes: int = 200_000
    synthetic_weight: float = 0.0  # fraction of corpus bytes from the synthetic simple-Python generator
    val_fraction: float = 0.02  # expected share of documents (by content hash); prepare requires >= half of it
    # With a byte cap on real sources, read on past it for validation documents only (never trained on) until they
    # hold this many bytes, so the loss on real code is measured on enough text. 0: none beyond the cap.
    val_real_min_bytes: int = 500_000
    vocab_size: int = 2048
    tokenizer_train_bytes: int = 20_000_000  # bytes of corpus the BPE is trained on
    required_tokens: tuple[str, ...] = ()  # extra strings that must be single tokens
    use_task_tokens: bool = True  # also require every registered task candidate to be one token
    cache_dir: str = ""  # "": $WSPARSE_DATA_CACHE or ~/.cache/wsparse/data (wsparse.data.store.cache_root)
    seed: int = 0

    def validate(self) -> None:
        _check(0.0 <= self.synthetic_weight <= 1.0, "data.synthetic_weight", "must be in [0, 1]")
        _check(0.0 < self.val_fraction < 0.5, "data.val_fraction", "must be in (0, 0.5)")
        _check(self.val_real_min_bytes >= 0, "data.val_real_min_bytes", "must be >= 0")
        _check(self.default_sources or self.sources or self.synthetic_weight > 0, "data.sources",
               "no corpus: enable data.default_sources, list data.sources, or set data.synthetic_weight")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32  # global, in sequences of n_ctx + 1 tokens
    log_every: int = 50
    eval_every: int = 250
    eval_batches: int = 8
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    mesh_data: int = -1  # devices on the data axis; -1: all
    # Gradients over this many equal slices of the batch, one after another: activation memory of one slice, the same
    # step up to float rounding (gradient accumulation).
    microbatches: int = 1

    def validate(self) -> None:
        _check(self.steps >= 1, "train.steps", "must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(self.microbatches >= 1 and self.batch_size % self.microbatches == 0, "train.microbatches",
               f"must be >= 1 and divide train.batch_size={self.batch_size}")
        _check(self.log_every >= 1 and self.eval_every >= 1 and self.checkpoint_every >= 1,
               "train.*_every", "intervals must be >= 1")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-host start-up through jax.distributed; off for a single process."""

    enabled: bool = False
    coordinator_address: str = ""
    num_processes: int = 1
    process_id: int = 0

    def validate(self) -> None:
        if self.enabled:
            _check(bool(self.coordinator_address), "distributed.coordinator_address", "required when enabled")


FAITHFULNESS_CONTROLS = ("swapped_answers", "random_weights", "ablation_kinds", "seeds", "node_fidelity",
                         "distribution_shift")


@dataclasses.dataclass(frozen=True)
class FaithfulnessConfig:
    """docs/method.md section 6: the faithfulness card's controls and their budgets and flag thresholds.

    The controls that prune again (swapped_answers, random_weights, ablation_kinds, seeds) use the PruneConfig's own
    budget (its sweep, steps and pair counts), so a control is as strong as the search that found the circuit.
    """

    controls: tuple[str, ...] = FAITHFULNESS_CONTROLS  # which controls the card computes
    reach_factor: float = 2.0  # swapped/random flag: the best loss the mask reaches is <= reach_factor * target
    prefix_points: int = 12  # top-k prefixes of the learned ranking scored on val (log-spaced k)
    random_seed: int = 1  # the randomly initialised model of random_weights
    ablation_kinds: tuple[str, ...] = ("mean", "zero", "resample")
    ablation_flag_ratio: float = 2.0  # flag when circuit edges under two ablation kinds differ by more than this
    n_seeds: int = 4  # mask seeds (vmapped) of the seeds control
    min_jaccard: float = 0.5  # seeds flag: mean pairwise Jaccard overlap of kept nodes below this
    min_corr: float = 0.5  # node_fidelity: a kept node below this circuit/full correlation is "low"
    max_low_frac: float = 0.1  # node_fidelity flag: more than this fraction of kept nodes is low
    max_attention_tv: float = 0.3  # node_fidelity flag: mean attention total variation of kept heads above this
    max_shift_gap: float = 0.15  # distribution_shift flag: circuit loss - full loss on the shifted prompts above this

    def validate(self) -> None:
        bad = set(self.controls) - set(FAITHFULNESS_CONTROLS)
        _check(not bad, "prune.faithfulness.controls", f"unknown {sorted(bad)}; known: {FAITHFULNESS_CONTROLS}")
        kinds = set(self.ablation_kinds) - {"mean", "zero", "resample"}
        _check(not kinds, "prune.faithfulness.ablation_kinds", f"unknown {sorted(kinds)}; use mean, zero, resample")
        _check(self.reach_factor > 0 and self.prefix_points >= 2 and self.n_seeds >= 2,
               "prune.faithfulness.reach_factor/prefix_points/n_seeds", "must be > 0, >= 2 and >= 2")


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """docs/method.md section 5: learned node masks over a frozen model, then bisection to the target loss.

    Default budget (instead of the paper's CARBS, 32 rounds x 8 runs): one vmapped sweep of 8 settings,
    k_coef {3e-5, 1e-4, 3e-4, 1e-3} x lr {3e-3, 1e-2} around the paper's centre, 1000 steps of 64 pairs each;
    masks are fitted on the train split; the smallest bisected circuit (in edges) that meets the target on the val
    split wins; every reported number is on the test split.
    """

    target_loss: float = 0.15
    ablation: str = "mean"  # mean | zero | resample
    mask_param: str = "heaviside"  # heaviside (paper: step forward, sigmoid'(tau/T) backward) | sigmoid
    temp_schedule: str = "constant"  # constant | linear | geometric | poly5
    temp_start: float = 1.0
    temp_end: float = 0.05
    tie_qk: bool = False
    k_coef: float = 1e-4
    init_noise_bias: float = 0.1
    init_noise_scale: float = 0.01
    lr: float = 3e-3
    weight_decay: float = 1e-3
    b1: float = 0.9
    b2: float = 0.95
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    steps: int = 1000
    chunk_steps: int = 50  # steps per jitted call (the progress bar's granularity)
    batch_pairs: int = 64  # also the chunk size of every evaluation pass
    n_train_pairs: int = 2000  # fit the masks
    n_val_pairs: int = 500  # bisection, the choice among sweep settings, calibration check
    n_test_pairs: int = 500  # every reported number
    means_tokens: int = 65536
    resample_bank: int = 4096  # real pretraining positions kept for resample ablation
    calibration_steps: int = 16
    n_random_controls: int = 8
    attribution_baseline: bool = True
    sweep_k_coef: tuple[float, ...] = (3e-5, 1e-4, 3e-4, 1e-3)  # empty: k_coef alone
    sweep_lr: tuple[float, ...] = (3e-3, 1e-2)  # empty: lr alone
    sweep_seeds: int = 1
    seed: int = 0
    faithfulness: FaithfulnessConfig = FaithfulnessConfig()  # never changes the circuit: only the card

    def validate(self) -> None:
        self.faithfulness.validate()
        _check(self.ablation in ("mean", "zero", "resample"), "prune.ablation", "must be mean, zero or resample")
        _check(self.mask_param in ("heaviside", "sigmoid"), "prune.mask_param", "must be heaviside or sigmoid")
        _check(self.temp_schedule in ("constant", "linear", "geometric", "poly5"), "prune.temp_schedule",
               "must be constant, linear, geometric or poly5")
        _check(self.temp_start > 0 and self.temp_end > 0, "prune.temp_start/temp_end", "must be > 0")
        _check(self.target_loss > 0, "prune.target_loss", "must be > 0")
        _check(self.steps >= 1 and self.batch_pairs >= 1 and self.chunk_steps >= 1,
               "prune.steps/batch_pairs/chunk_steps", "must be >= 1")
        _check(min(self.n_train_pairs, self.n_val_pairs, self.n_test_pairs) >= 1,
               "prune.n_train_pairs/n_val_pairs/n_test_pairs", "must be >= 1")
        _check(self.resample_bank >= 1 and self.means_tokens >= 1, "prune.resample_bank/means_tokens", "must be >= 1")
        _check(self.sweep_seeds >= 1, "prune.sweep_seeds", "must be >= 1")
        _check(0.0 <= self.warmup_frac < 1.0, "prune.warmup_frac", "must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    sparsity: SparsityConfig = SparsityConfig()
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    distributed: DistributedConfig = DistributedConfig()
    prune: PruneConfig = PruneConfig()
    name: str = "run"

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            v = getattr(self, field.name)
            if hasattr(v, "validate"):
                v.validate()
        _check(self.data.vocab_size == self.model.vocab_size, "data.vocab_size",
               f"{self.data.vocab_size} differs from model.vocab_size {self.model.vocab_size}")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config {key}: {message}")


# ---------------------------------------------------------------------------------------------------------------------
# Building from a ConfigDict / dict, and back.


def build(cls: type, values: Mapping[str, Any] | None, prefix: str = "") -> Any:
    """Builds dataclass ``cls`` from a nested mapping, recursing into dataclass fields; unknown keys are errors."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"config {prefix or '<root>'}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for name, raw in values.items():
        kwargs[name] = _coerce(hints[name], raw, f"{prefix}{name}")
    obj = cls(**kwargs)
    return obj


def _coerce(tp: Any, raw: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if hasattr(raw, "to_dict"):
            raw = raw.to_dict()
        if isinstance(raw, tp):
            return raw
        if not isinstance(raw, Mapping):
            raise ConfigError(f"config {key}: expected a mapping, got {type(raw).__name__}")
        return build(tp, raw, prefix=key + ".")
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(raw, str):
            raw = tuple(s for s in raw.split(",") if s)  # CLI-friendly: --config.x=a,b
        if not isinstance(raw, (list, tuple)):
            raise ConfigError(f"config {key}: expected a list, got {raw!r}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_coerce(item_tp, r, key) for r in raw)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None:
            return None
        return _coerce(args[0], raw, key)
    if tp is bool:
        if not isinstance(raw, (bool, np.bool_)):
            raise ConfigError(f"config {key}: expected true/false, got {raw!r}")
        return bool(raw)
    if tp is int:
        if isinstance(raw, bool) or not float(raw).is_integer():
            raise ConfigError(f"config {key}: expected an integer, got {raw!r}")
        return int(raw)
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, np.floating, np.integer)):
            raise ConfigError(f"config {key}: expected a number, got {raw!r}")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise ConfigError(f"config {key}: expected a string, got {raw!r}")
        return raw
    return raw


def from_configdict(cd: Any, cls: type = Config) -> Any:
    """The one conversion from a ConfigDict (or plain dict) to a validated frozen config."""
    raw = cd.to_dict() if hasattr(cd, "to_dict") else dict(cd)
    cfg = build(cls, raw)
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def to_dict(cfg: Any) -> dict:
    """JSON-ready nested dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def save(cfg: Any, path: str) -> None:
    with open(path, "w") as f:
        json.dump(to_dict(cfg), f, indent=2, sort_keys=True)
        f.write("\n")


def load(path: str, cls: type = Config) -> Any:
    with open(path) as f:
        return from_configdict(json.load(f), cls)


def fingerprint(cfg: Any) -> str:
    """Stable short hash of a config (sub)tree, used to key caches."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
