"""The circuit record: typed, versioned, strict, and the same after a trip through its file."""

import dataclasses
import json
import types

import numpy as np
import pytest

from wsparse import config as config_lib
from wsparse.circuits import extract, record
from wsparse.circuits.record import CircuitRecord, RecordError


def solved(**changes) -> CircuitRecord:
    rec = CircuitRecord(
        task="for_while", status="ok", target_loss=0.15,
        unpruned_loss={"train": 0.03, "val": 0.035, "test": 0.04}, ablation="mean", n_model_nodes=1234,
        n_train_pairs=64, n_test_pairs=32,
        nodes={"0.attn.act_in": [3, 7], "0.attn.v": [5], "1.mlp.post_act": []}, n_nodes=3, k_units=2,
        edges=[["0.attn.act_in:3", "0.attn.v:5", 0.25], ["0.attn.act_in:7", "0.attn.v:5", -0.5]],
        n_edges={"total": 2, "attn.act_in->qkv": 2, "attn.act_in->v": 2},
        circuit_loss={"train": 0.1, "test": 0.12, "train_calibrated": 0.08, "test_calibrated": 0.09},
        calibration=record.Calibration(a=1.25, b=-0.5, steps=16), hyperparameters={"k_coef": 1e-4, "lr": 0.003},
        validation=record.Validation(
            sufficiency=record.Sufficiency(loss=0.12, meets_target=True),
            necessity=record.Necessity(loss=1.5, increase=1.46),
            random_controls=record.RandomControls(n=2, losses=[0.9, 1.1], mean=1.0, min=0.9, frac_meeting_target=0.0),
            attribution_baseline=record.AttributionBaseline(k_units=4, test_loss=0.14, test_loss_at_learned_size=0.6,
                                                            n_nodes=5, n_edges=7),
            controls={"faithfulness": {"score": 0.9}}),
        checkpoint_step=20, tokenizer_sha256="ab" * 32, prune_config=config_lib.to_dict(config_lib.PruneConfig()),
        means_tokens=4096)
    return dataclasses.replace(rec, **changes)


def unsolved() -> CircuitRecord:
    return CircuitRecord(task="var_swap", status="unsolved", target_loss=0.15, message="loss 0.6 above 0.15",
                         unpruned_loss={"train": 0.5, "test": 0.6}, ablation="zero", n_model_nodes=1234,
                         n_train_pairs=64, n_test_pairs=32)


@pytest.mark.parametrize("make", [solved, unsolved])
def test_save_then_load_is_the_same_record(tmp_path, make):
    rec = make()
    path = str(tmp_path / "circuits" / rec.task / "circuit.json")
    record.save(rec, path)
    assert record.load(path) == rec
    raw = json.loads(open(path).read())
    assert next(iter(raw)) == "schema_version" and raw["schema_version"] == record.SCHEMA_VERSION == 2
    assert raw["task"] == rec.task and raw["status"] == rec.status


def test_the_file_keeps_the_artifact_layout():
    """Scripts read circuit.json directly: keys and shapes stay the documented ones."""
    raw = solved().to_json()
    assert raw["edges"][1] == ["0.attn.act_in:7", "0.attn.v:5", -0.5]
    assert raw["nodes"]["0.attn.act_in"] == [3, 7] and raw["n_edges"]["total"] == 2
    assert raw["validation"]["necessity"] == {"loss": 1.5, "increase": 1.46}
    assert raw["validation"]["controls"] == {"faithfulness": {"score": 0.9}}
    assert raw["calibration"] == {"a": 1.25, "b": -0.5, "steps": 16, "form": "a * (logit[target] - logit[alt]) + b",
                                  "fit_on": "train"}
    assert "nodes" not in unsolved().to_json() and unsolved().to_json()["message"] == "loss 0.6 above 0.15"
    assert "attribution_baseline" not in dataclasses.replace(
        solved(), validation=dataclasses.replace(solved().validation, attribution_baseline=None)).to_json()["validation"]


def test_convenience_properties():
    rec, un = solved(), unsolved()
    assert rec.is_solved and rec.edges_total == 2 and rec.sufficient is True
    assert rec.node_names == ["0.attn.act_in:3", "0.attn.act_in:7", "0.attn.v:5"]
    assert not un.is_solved and un.edges_total is None and un.sufficient is None and un.node_names == []
    assert rec.edges[0] == ("0.attn.act_in:3", "0.attn.v:5", 0.25) and rec.nodes["0.attn.v"] == (5,)
    assert rec.unpruned_loss["val"] == 0.035  # loss mappings are keyed by split: a new split needs no schema change


def _write(tmp_path, raw):
    path = str(tmp_path / "circuit.json")
    with open(path, "w") as f:
        json.dump(raw, f)
    return path


@pytest.mark.parametrize("version", [0, 1, 3, None, "2"])
def test_another_schema_version_is_refused_naming_the_file(tmp_path, version):
    raw = solved().to_json()
    if version is None:
        del raw["schema_version"]
    else:
        raw["schema_version"] = version
    path = _write(tmp_path, raw)
    with pytest.raises(RecordError, match="schema_version") as e:
        record.load(path)
    assert str(e.value).startswith(path)


@pytest.mark.parametrize("where, key", [((), "task"), ((), "unpruned_loss"), ((), "n_model_nodes"),
                                        (("validation",), "necessity"), (("validation", "sufficiency"), "loss"),
                                        (("calibration",), "a")])
def test_a_missing_required_field_is_refused(tmp_path, where, key):
    raw = solved().to_json()
    d = raw
    for k in where:
        d = d[k]
    del d[key]
    path = _write(tmp_path, raw)
    with pytest.raises(RecordError, match=f"missing required field.*{key}") as e:
        record.load(path)
    assert str(e.value).startswith(path)


def test_a_solved_record_needs_its_circuit(tmp_path):
    raw = solved().to_json()
    del raw["edges"]
    with pytest.raises(RecordError, match=r"circuit.json: task for_while: a solved circuit needs edges"):
        record.load(_write(tmp_path, raw))
    with pytest.raises(RecordError, match="status 'maybe'"):
        dataclasses.replace(unsolved(), status="maybe")


def test_unknown_fields_bad_values_and_bad_json_are_refused(tmp_path):
    raw = solved().to_json()
    raw["nodse"] = {}
    with pytest.raises(RecordError, match="unknown field.*nodse"):
        record.load(_write(tmp_path, raw))
    raw = solved().to_json()
    raw["validation"]["necessity"]["p_value"] = 0.01
    with pytest.raises(RecordError, match="validation.necessity: unknown field.*p_value"):
        record.load(_write(tmp_path, raw))
    raw = solved().to_json()
    raw["edges"] = [["a", "b"]]
    with pytest.raises(RecordError, match="malformed"):
        record.load(_write(tmp_path, raw))
    path = str(tmp_path / "half.json")
    with open(path, "w") as f:
        f.write('{"schema_version": 2, "task": ')
    with pytest.raises(RecordError, match="not valid JSON") as e:
        record.load(path)
    assert str(e.value).startswith(path)
    assert isinstance(e.value, ValueError)


def test_prune_task_adds_provenance_and_writes_the_record(tmp_path, monkeypatch):
    """prune_task: the run's checkpoint step and tokenizer hash, the config and the means' token count go into
    RUN/circuits/<task>/circuit.json (extraction itself is replaced here; test_circuits runs it for real)."""
    bare = dataclasses.replace(solved(), checkpoint_step=None, tokenizer_sha256=None, prune_config=None,
                               means_tokens=None)
    monkeypatch.setattr(extract, "extract", lambda *a, **k: (bare, [{"setting": 0, "n_edges": 2}]))
    monkeypatch.setattr("wsparse.tasks.encode", lambda *a, **k: None)
    cfg = config_lib.PruneConfig(steps=5)
    run = types.SimpleNamespace(cfg=types.SimpleNamespace(model=types.SimpleNamespace(n_ctx=8)), params=None,
                                tokenizer=None, tokenizer_sha256="cd" * 32, step=np.int64(30),
                                workdir=str(tmp_path))
    stats = types.SimpleNamespace(n_tokens=2048)
    rec = extract.prune_task(run, "for_while", cfg, stats)
    assert (rec.checkpoint_step, rec.tokenizer_sha256, rec.means_tokens) == (30, "cd" * 32, 2048)
    assert rec.prune_config == config_lib.to_dict(cfg) and type(rec.checkpoint_step) is int
    assert record.load(record.path_for(str(tmp_path), "for_while")) == rec
    assert (tmp_path / "circuits" / "for_while" / "sweep.jsonl").read_text() == '{"setting": 0, "n_edges": 2}\n'
