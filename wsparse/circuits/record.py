"""The circuit artifact ``RUN/circuits/<task>/circuit.json`` as a typed, versioned record.

``circuits.extract`` writes it; the workflow, the report and the entry points read it through :func:`load`, never
by key paths into raw JSON. The file carries ``schema_version``; a file of another version, one missing a required
field, or one with a field this version does not know raises :class:`RecordError` naming the file, so a stale
artifact is never half-read.

    from wsparse.circuits import record
    rec = record.load(record.path_for("runs/demo", "for_while"))
    rec.is_solved, rec.edges_total, rec.sufficient, rec.circuit_loss["test"]

Loss mappings are keyed by split name (``"train"``, ``"val"``, ``"test"``, and ``"<split>_calibrated"`` for the
calibrated circuit loss). Masks are fitted on train, chosen on val (``selected_on``), and reported on test.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

from wsparse.files import write_json

SCHEMA_VERSION = 2  # 2: three task splits (n_val_pairs, selected_on, losses on val)
STATUSES = ("ok", "unsolved")  # "unsolved": the unpruned model misses the target, so nothing was pruned
FILE, SWEEP_FILE = "circuit.json", "sweep.jsonl"


class RecordError(ValueError):
    """A circuit.json this version of wsparse cannot read: another schema version, a missing or unknown field."""


def path_for(workdir: str, task: str) -> str:
    """``RUN/circuits/<task>/circuit.json``."""
    return os.path.join(workdir, "circuits", task, FILE)


# ---------------------------------------------------------------------------------------------------------------------
# Validation sub-records (wsparse.circuits.validate).


class _Json:
    """Field-by-field JSON for a flat frozen dataclass; subclasses convert their nested fields in ``_convert``."""

    @classmethod
    def from_json(cls, d: Any, where: str = ""):
        return cls(**_checked(cls, d, where or cls.__name__))  # type: ignore[call-arg]

    def to_json(self) -> dict[str, Any]:
        return _drop_none({f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)})  # type: ignore


@dataclasses.dataclass(frozen=True)
class Sufficiency(_Json):
    """The circuit alone (everything else ablated) on the test split."""

    loss: float
    meets_target: bool


@dataclasses.dataclass(frozen=True)
class Necessity(_Json):
    """Only the circuit ablated in the full model: a faithful circuit cripples the task."""

    loss: float
    increase: float  # over the unpruned test loss


@dataclasses.dataclass(frozen=True)
class RandomControls(_Json):
    """Random circuits with the circuit's node count per location; ``n == 0`` when none were drawn."""

    n: int
    losses: tuple[float, ...] = ()
    mean: float | None = None
    min: float | None = None
    frac_meeting_target: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "losses", tuple(float(x) for x in self.losses))


@dataclasses.dataclass(frozen=True)
class AttributionBaseline(_Json):
    """Top units by |gradient x (activation - mean)|, bisected like the learned masks."""

    k_units: int
    test_loss: float
    test_loss_at_learned_size: float
    n_nodes: int
    n_edges: int


@dataclasses.dataclass(frozen=True)
class Validation(_Json):
    sufficiency: Sufficiency
    necessity: Necessity
    random_controls: RandomControls
    attribution_baseline: AttributionBaseline | None = None
    controls: dict[str, Any] | None = None  # further faithfulness controls, free-form until they get a type

    @classmethod
    def from_json(cls, d: Any, where: str = "validation") -> Validation:
        d = _checked(cls, d, where)
        attr = d.get("attribution_baseline")
        return cls(sufficiency=Sufficiency.from_json(d["sufficiency"], f"{where}.sufficiency"),
                   necessity=Necessity.from_json(d["necessity"], f"{where}.necessity"),
                   random_controls=RandomControls.from_json(d["random_controls"], f"{where}.random_controls"),
                   attribution_baseline=None if attr is None else AttributionBaseline.from_json(
                       attr, f"{where}.attribution_baseline"),
                   controls=d.get("controls"))


@dataclasses.dataclass(frozen=True)
class Calibration(_Json):
    """The scale and shift of the circuit's logit difference, fit on ``fit_on``."""

    a: float
    b: float
    steps: int
    form: str = "a * (logit[target] - logit[alt]) + b"
    fit_on: str = "train"


# ---------------------------------------------------------------------------------------------------------------------
# The record.

_CIRCUIT_FIELDS = ("nodes", "n_nodes", "k_units", "edges", "n_edges", "circuit_loss", "calibration",
                   "hyperparameters", "validation")


@dataclasses.dataclass(frozen=True)
class CircuitRecord:
    """One task's circuit. Fields after ``message`` are set when ``status == "ok"`` and None otherwise; the
    provenance fields (``checkpoint_step`` on) are set by ``extract.prune_task``, None for a bare ``extract``."""

    task: str
    status: str
    target_loss: float
    unpruned_loss: dict[str, float]  # split -> loss of the unpruned model
    ablation: str
    n_model_nodes: int
    n_train_pairs: int
    n_test_pairs: int
    message: str | None = None  # why a task is unsolved
    n_val_pairs: int | None = None
    selected_on: str | None = None  # the split the bisection and the choice among settings used ("val")
    nodes: dict[str, tuple[int, ...]] | None = None  # location -> kept channels (every location listed)
    n_nodes: int | None = None
    k_units: int | None = None
    edges: tuple[tuple[str, str, float], ...] | None = None  # (source, destination, weight)
    n_edges: dict[str, int] | None = None  # edge type (graph.EDGE_TYPES, the paper's four) -> count, and "total"
    circuit_loss: dict[str, float] | None = None  # per split, and "<split>_calibrated"
    calibration: Calibration | None = None
    hyperparameters: dict[str, Any] | None = None  # the winning sweep setting and the mask-training settings
    validation: Validation | None = None
    checkpoint_step: int | None = None
    tokenizer_sha256: str | None = None
    prune_config: dict[str, Any] | None = None  # config.to_dict(PruneConfig)
    means_tokens: int | None = None  # pretraining tokens behind the ablation means

    def __post_init__(self):
        if self.status not in STATUSES:
            raise RecordError(f"task {self.task}: status {self.status!r} is not one of {STATUSES}")
        if self.is_solved:
            missing = [f for f in _CIRCUIT_FIELDS if getattr(self, f) is None]
            if missing:
                raise RecordError(f"task {self.task}: a solved circuit needs {', '.join(missing)}")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen: normalise once, here)
        set_("unpruned_loss", _losses(self.unpruned_loss))
        if self.circuit_loss is not None:
            set_("circuit_loss", _losses(self.circuit_loss))
        if self.nodes is not None:
            set_("nodes", {str(k): tuple(int(i) for i in v) for k, v in self.nodes.items()})
        if self.edges is not None:
            set_("edges", tuple((str(s), str(d), float(w)) for s, d, w in self.edges))
        if self.n_edges is not None:
            set_("n_edges", {str(k): int(v) for k, v in self.n_edges.items()})

    # Conveniences for readers.

    @property
    def is_solved(self) -> bool:
        """A circuit was extracted (``status == "ok"``); it may still miss the target, see ``sufficient``."""
        return self.status == "ok"

    @property
    def edges_total(self) -> int | None:
        """The circuit size the paper reports: nonzero weights between kept nodes."""
        return None if self.n_edges is None else self.n_edges["total"]

    @property
    def sufficient(self) -> bool | None:
        """Whether the circuit alone meets the target on the test split (None when unsolved)."""
        return None if self.validation is None else self.validation.sufficiency.meets_target

    @property
    def node_names(self) -> list[str]:
        """Kept nodes as ``"LOCATION:INDEX"``, sorted."""
        return sorted(f"{loc}:{i}" for loc, ix in (self.nodes or {}).items() for i in ix)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict, ``schema_version`` first; None fields are left out."""
        body = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"schema_version": SCHEMA_VERSION} | _drop_none(body)

    @classmethod
    def from_json(cls, d: Any, source: str = "circuit.json") -> CircuitRecord:
        """Strict: raises RecordError (naming ``source``) for another schema version or a missing/unknown field."""
        if not isinstance(d, Mapping):
            raise RecordError(f"{source}: expected a JSON object, got {type(d).__name__}")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"{source}: schema_version {version!r}, but this wsparse reads version "
                              f"{SCHEMA_VERSION}; extract the circuit again (python -m experiments.prune)")
        d = _checked(cls, {k: v for k, v in d.items() if k != "schema_version"}, source)
        try:
            if d.get("calibration") is not None:
                d["calibration"] = Calibration.from_json(d["calibration"], f"{source}: calibration")
            if d.get("validation") is not None:
                d["validation"] = Validation.from_json(d["validation"], f"{source}: validation")
            return cls(**d)
        except RecordError as e:
            raise RecordError(e.args[0] if str(e).startswith(source) else f"{source}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise RecordError(f"{source}: malformed field value ({type(e).__name__}: {e})") from None


def load(path: str) -> CircuitRecord:
    """The record in ``path``; RecordError (naming the file) if it is not valid JSON or not a valid record."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e})") from None
    return CircuitRecord.from_json(raw, source=path)


def save(rec: CircuitRecord, path: str) -> None:
    """Writes atomically (a reader never sees half a file)."""
    write_json(path, rec.to_json())


# ---------------------------------------------------------------------------------------------------------------------
# Helpers.


def _checked(cls: type, d: Any, where: str) -> dict[str, Any]:
    """``d`` as a dict after checking it names every required field of ``cls`` and nothing else."""
    if not isinstance(d, Mapping):
        raise RecordError(f"{where}: expected a JSON object, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)} (schema version {SCHEMA_VERSION})")
    missing = [n for n, f in fields.items() if n not in d
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecordError(f"{where}: missing required field(s) {', '.join(missing)}")
    return dict(d)


def _losses(d: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in d.items()}


def _plain(v: Any) -> Any:
    """Dataclasses to dicts, tuples to lists: what ``json.load`` gives back."""
    if isinstance(v, _Json):
        return v.to_json()
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
