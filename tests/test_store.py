"""Prepared data as a user meets them on several machines: an absolute cache, a machine-independent key, a corpus
hash, and validation shards by kind."""

import dataclasses
import os

import numpy as np
import pytest

from wsparse import data
from wsparse.config import DataConfig
from wsparse.data import corpus, store


def test_cache_root_is_absolute_and_overridable(tmp_path, monkeypatch):
    monkeypatch.delenv("WSPARSE_DATA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.cache_root("") == str(tmp_path / "xdg" / "wsparse" / "data")
    monkeypatch.setenv("WSPARSE_DATA_CACHE", str(tmp_path / "env"))
    assert store.cache_root("") == str(tmp_path / "env")
    monkeypatch.chdir(tmp_path)
    assert store.cache_root("rel/dir") == str(tmp_path / "rel" / "dir")  # a relative setting is made absolute


def _fake_stdlib(root, extra_packages=()):
    files = {"os.py": "import sys\nSEP = '/'\n", "json/__init__.py": "def dumps(obj):\n    return str(obj)\n",
             "shutil.py": "def copy(src, dst):\n    return dst\n"}
    files |= {f"string{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(60)}
    files |= {f"site-packages/{name}/__init__.py": f"NAME = '{name}'\n" for name in extra_packages}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("w", [0.5])
def test_same_corpus_whatever_else_is_installed(tmp_path, monkeypatch, w):
    """Two interpreters of the same version at different paths, with different packages installed: the same cache key,
    the same corpus hash, the same tokens."""
    made = []
    for i, extra in enumerate([(), ("numpy_like", "torch_like")]):
        lib = _fake_stdlib(tmp_path / f"python{i}" / "lib", extra)
        monkeypatch.setattr(corpus, "stdlib_dir", lambda lib=lib: str(lib))
        cfg = DataConfig(default_sources=True, synthetic_weight=w, max_source_bytes=200_000, vocab_size=512,
                         tokenizer_train_bytes=100_000, use_task_tokens=False, val_fraction=0.2,
                         cache_dir=str(tmp_path / f"cache{i}"))
        made.append(data.prepare(cfg, log=lambda _: None))
    a, b = made
    assert a.manifest["fingerprint"] == b.manifest["fingerprint"]
    assert a.manifest["corpus_sha256"] == b.manifest["corpus_sha256"]
    assert a.tokenizer_sha256 == b.tokenizer_sha256
    np.testing.assert_array_equal(a.train_tokens(), b.train_tokens())


def test_val_shards_by_kind_partition_val(tmp_path):
    src = _fake_stdlib(tmp_path / "src")
    cfg = DataConfig(default_sources=False, sources=(str(src),), synthetic_weight=0.5, max_source_bytes=200_000,
                     vocab_size=512, tokenizer_train_bytes=100_000, use_task_tokens=False, val_fraction=0.2,
                     cache_dir=str(tmp_path / "cache"))
    p = data.prepare(cfg, log=lambda _: None)
    n = {kind: len(p.val_tokens(kind)) for kind in store.VAL_KINDS}
    assert n["real"] > 0 and n["synthetic"] > 0 and n["real"] + n["synthetic"] == n["all"]
    assert p.manifest["tokens"]["val_real"] == n["real"]
    eot = p.manifest["eot_id"]
    # Every real val document is a file of the source tree: its tokens decode to one of them.
    from wsparse.data import tokenizer as tok_lib

    tok = tok_lib.load(p.tokenizer_path)
    real = np.asarray(p.val_tokens("real"))
    texts = {f.read_text() for f in src.rglob("*.py")}
    docs = [tok.decode(d.tolist()) for d in np.split(real, np.flatnonzero(real == eot))[1:]]
    assert docs and all(d[len("<|endoftext|>"):] in texts or d in texts for d in docs)
    with pytest.raises(ValueError, match="val kind"):
        p.val_tokens("other")
    assert dataclasses.replace(cfg, cache_dir="elsewhere") != cfg and store.fingerprint(
        dataclasses.replace(cfg, cache_dir="elsewhere"), ()) == store.fingerprint(cfg, ())
    assert os.path.isabs(p.dir)
