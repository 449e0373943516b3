import ml_collections
import pytest

from wsparse import config as C


def test_defaults_validate():
    cfg = C.from_configdict({})
    assert cfg.model.vocab_size == 2048 and cfg.optim.eps == 0.1


def test_unknown_key_names_it():
    with pytest.raises(C.ConfigError, match="model.*nlayers"):
        C.from_configdict({"model": {"nlayers": 3}})


def test_bad_value_names_key():
    with pytest.raises(C.ConfigError, match="model.afrac"):
        C.from_configdict({"model": {"afrac": 0.0}})


def test_roundtrip_json(tmp_path):
    cd = ml_collections.ConfigDict({"model": {"n_layer": 2, "afrac_locations": ["attn_q"]}, "train": {"steps": 5}})
    cfg = C.from_configdict(cd)
    C.save(cfg, tmp_path / "c.json")
    assert C.load(tmp_path / "c.json") == cfg
    assert C.fingerprint(cfg.model) == C.fingerprint(C.load(tmp_path / "c.json").model)


def test_csv_tuple_from_cli_string():
    cfg = C.from_configdict({"model": {"afrac_locations": "attn_q,mlp_neuron"}})
    assert cfg.model.afrac_locations == ("attn_q", "mlp_neuron")
