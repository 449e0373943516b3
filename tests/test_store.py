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


def test_past_the_real_budget_only_validation_documents_are_read(tmp_path):
    src = tmp_path / "src"
    for i in range(400):
        (src / f"m{i}.py").parent.mkdir(parents=True, exist_ok=True)
        (src / f"m{i}.py").write_text(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" * 20)
    base = DataConfig(default_sources=False, sources=(str(src),), synthetic_weight=0.5, max_source_bytes=60_000,
                      val_fraction=0.1, val_real_min_bytes=0)
    capped = corpus.collect(base, log=lambda _: None)
    more = corpus.collect(dataclasses.replace(base, val_real_min_bytes=20_000), log=lambda _: None)
    real = lambda c: [d for d in c.docs if d.source != "synthetic"]  # noqa: E731
    train_of = lambda c: [d for d in real(c) if not corpus.is_val(d, 0.1)]  # noqa: E731
    val_of = lambda c: [d for d in real(c) if corpus.is_val(d, 0.1)]  # noqa: E731
    assert train_of(more) == train_of(capped)  # the training documents do not change
    assert sum(len(d.text) for d in val_of(more)) >= 20_000 > sum(len(d.text) for d in val_of(capped))
    assert more.stats["extra_val_bytes"] > 0 == capped.stats["extra_val_bytes"]
