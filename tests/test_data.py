"""Corpus collection, caching, shard integrity and the resumable, per-process batch pipeline."""

import ast
import dataclasses
import os
import shutil

import numpy as np
import pytest

from wsparse import data
from wsparse.config import DataConfig
from wsparse.files import sha256_file
from wsparse.data import corpus, pipeline, synthetic
from wsparse.data import tokenizer as T


# --- synthetic -----------------------------------------------------------------------------------------------------
# The generator and its mined vocabulary are tested in tests/test_synthetic.py.
def test_synthetic_documents_stream_matches_corpus_chunks():
    vocab = synthetic.vocabulary()
    stream = list(synthetic.documents(3, 20_000, vocab=vocab))
    assert sum(len(d.encode()) for d in stream) >= 20_000
    chunk = corpus._synth_chunk((3, 0, vocab))  # what a worker process makes from the vocabulary it is handed
    assert len(chunk) == corpus._SYNTH_CHUNK and chunk[:len(stream)] == stream
    assert corpus.synthetic_docs(3, 20_000) == stream


# --- corpus --------------------------------------------------------------------------------------------------------
def _write(path, content: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


@pytest.fixture
def messy_dir(tmp_path):
    src = tmp_path / "src"
    for i in range(30):
        _write(str(src / f"pkg{i % 3}" / f"mod{i}.py"), f"def f{i}(x):\n    return x + {i}\n".encode())
    _write(str(src / "dup.py"), b"def f0(x):\n    return x + 0\n")  # same content as mod0.py
    _write(str(src / "binary.py"), b"\x00\x01\x02 not python")
    _write(str(src / "latin1.py"), b"x = '\xe9\xff\xfe'\n")
    _write(str(src / "huge.py"), b"x = 1\n" * 10_000)
    _write(str(src / "empty.py"), b"")
    _write(str(src / "notes.txt"), b"not a python file")
    return str(src)


def test_collect_counts_skips_and_is_ordered(messy_dir):
    cfg = DataConfig(default_sources=False, sources=(messy_dir,), max_file_bytes=1000)
    c = corpus.collect(cfg, log=lambda _: None)
    assert c.stats["skipped"] == {"too_large": 1, "binary": 1, "undecodable": 1, "unreadable": 0, "empty": 1,
                                  "duplicate": 1}
    assert c.stats["files_found"] == 35 and c.stats["files_used"] == 30
    again = corpus.collect(cfg, log=lambda _: None)
    assert [d.source for d in again.docs] == [d.source for d in c.docs]
    # The order ignores where the tree lives: a copy elsewhere lists the same relative paths in the same order.
    copy = os.path.join(os.path.dirname(messy_dir), "elsewhere")
    shutil.copytree(messy_dir, copy)
    moved = corpus.collect(dataclasses.replace(cfg, sources=(copy,)), log=lambda _: None)
    assert [os.path.relpath(d.source, copy) for d in moved.docs] == [os.path.relpath(d.source, messy_dir)
                                                                     for d in c.docs]


def test_collect_glob_and_byte_cap(messy_dir):
    cfg = DataConfig(default_sources=False, sources=(os.path.join(messy_dir, "pkg1", "*.py"),))
    assert len(corpus.collect(cfg, log=lambda _: None).docs) == 10
    capped = corpus.collect(DataConfig(default_sources=False, sources=(messy_dir,), max_source_bytes=100),
                            log=lambda _: None)
    assert 1 <= len(capped.docs) <= 4


def test_split_is_stable_under_growth():
    docs = [corpus.Document(synthetic.program(i), "synthetic") for i in range(1500)]
    small = {d.text for d in docs[:500] if corpus.is_val(d, 0.02)}
    big = {d.text for d in docs if corpus.is_val(d, 0.02)}
    assert small == {d.text for d in docs[:500]} & big
    assert 0.01 < len(big) / len(docs) < 0.03


def test_default_sources_are_the_standard_library_without_installed_packages(tmp_path, monkeypatch):
    roots = corpus.default_roots()
    assert len(roots) == 1 and os.path.exists(os.path.join(roots[0], "os.py"))
    # A stand-in standard library with packages installed inside it (as a base interpreter's site-packages is):
    # only its own modules are read, so what else is installed never changes the corpus.
    lib = tmp_path / "lib"
    for rel in ("os.py", "json/decoder.py", "site-packages/extra/mod.py", "dist-packages/other.py"):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(f"# {rel}\nx = 1\n")
    monkeypatch.setattr(corpus, "stdlib_dir", lambda: str(lib))
    got = corpus.collect(DataConfig(default_sources=True), log=lambda _: None)
    assert sorted(os.path.relpath(d.source, lib) for d in got.docs) == ["json/decoder.py", "os.py"]
    listed = corpus.collect(DataConfig(default_sources=False, sources=(str(lib),)), log=lambda _: None)
    assert len(listed.docs) == 4  # listing the directory explicitly reads everything under it


def test_no_python_files_error_names_sources(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    _write(str(empty / "readme.txt"), b"hi")
    cfg = DataConfig(default_sources=False, sources=(str(empty),), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(data.CorpusError, match="nothing_here") as e:
        data.prepare(cfg, log=lambda _: None)
    assert isinstance(e.value, ValueError)


def test_val_too_small_error(tmp_path):
    text = "\n".join(synthetic.program(i) for i in range(20))
    assert not corpus.is_val(corpus.Document(text, ""), 0.02)  # one document, which the hash puts in train
    _write(str(tmp_path / "one" / "only.py"), text.encode())
    cfg = DataConfig(default_sources=False, sources=(str(tmp_path / "one"),), vocab_size=300,
                     use_task_tokens=False, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(data.CorpusError, match="validation split too small"):
        data.prepare(cfg, log=lambda _: None)
    assert not [p for p in os.listdir(tmp_path / "cache") if not p.startswith(".")]  # no half-built cache


# --- prepared cache ------------------------------------------------------------------------------------------------
def test_prepared_manifest_and_reuse(tiny_prepared):
    m = tiny_prepared.manifest
    assert os.path.basename(tiny_prepared.dir) == m["fingerprint"]
    assert m["eot_id"] == 2047 and m["tokenizer_sha256"] == sha256_file(tiny_prepared.tokenizer_path)
    train, val = tiny_prepared.train_tokens(), tiny_prepared.val_tokens()
    assert train.dtype == np.uint16 and len(train) == m["tokens"]["train"] and len(val) == m["tokens"]["val"]
    assert len(val) >= 0.01 * (len(train) + len(val))
    assert train[0] == 2047 and train.max() == 2047
    cfg = DataConfig(**{**m["data_config"], "sources": tuple(m["data_config"]["sources"]),
                        "required_tokens": tuple(m["data_config"]["required_tokens"])})
    messages = []
    again = data.prepare(cfg, log=messages.append)  # benchmarks/data.py times this reuse
    assert again.dir == tiny_prepared.dir and messages == [f"reusing prepared data in {tiny_prepared.dir}"]
    tok = T.load(again.tokenizer_path)
    doc = np.asarray(train[1:np.flatnonzero(train[1:] == 2047)[0] + 1])
    ast.parse(tok.decode(doc.tolist()))  # a whole document decodes back to valid Python


def test_fingerprint_covers_config_and_required():
    cfg = DataConfig()
    assert data.store.fingerprint(cfg, ()) != data.store.fingerprint(cfg, ('")',))
    assert data.store.fingerprint(cfg, ()) != data.store.fingerprint(dataclasses.replace(cfg, seed=1), ())
    assert data.store.fingerprint(cfg, ()) == data.store.fingerprint(dataclasses.replace(cfg, cache_dir="x"), ())


def test_check_compatible(tiny_prepared):
    data.check_compatible(tiny_prepared, tiny_prepared.tokenizer_sha256, vocab_size=2048)
    with pytest.raises(data.IncompatibleDataError, match="tokenizer sha256"):
        data.check_compatible(tiny_prepared, "0" * 64)
    with pytest.raises(data.IncompatibleDataError, match="vocab_size"):
        data.check_compatible(tiny_prepared, tiny_prepared.tokenizer_sha256, vocab_size=4096)


def test_truncated_and_corrupt_shards(tiny_prepared, tmp_path):
    broken = str(tmp_path / "copy")
    shutil.copytree(tiny_prepared.dir, broken)
    p = data.load(broken)
    p.verify()
    path = os.path.join(broken, "train.bin")
    with open(path, "r+b") as f:  # flip a byte: same size, wrong checksum
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(data.ShardError, match="train.bin"):
        p.verify()
    with open(path, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(data.ShardError, match="train.bin"):
        p.train_tokens()


# --- pipeline ------------------------------------------------------------------------------------------------------
def _it(prepared, **kw):
    args = {"n_ctx": 32, "global_batch": 8, "seed": 0, **kw}
    return pipeline.train_iterator(prepared, **args)


def test_batches_are_windows_and_deterministic(tiny_prepared):
    it = _it(tiny_prepared)
    b = next(it)
    assert b.dtype == np.int32 and b.shape == (8, 33)
    train = np.asarray(tiny_prepared.train_tokens())
    for row in b:  # every row is a contiguous window of train.bin starting at a multiple of n_ctx
        starts = [s for s in range(0, len(train) - 32, 32) if train[s] == row[0] and train[s + 1] == row[1]]
        assert any(np.array_equal(train[s:s + 33], row) for s in starts)
    a = [next(_it(tiny_prepared)) for _ in range(1)] + [next(it) for _ in range(3)]
    other = _it(tiny_prepared)
    assert all(np.array_equal(x, next(other)) for x in [b] + a[1:])
    assert not np.array_equal(next(_it(tiny_prepared, seed=1)), b)


def test_resume_mid_epoch_and_across_epochs(tiny_prepared):
    it = _it(tiny_prepared, global_batch=64)
    n_epoch = it.get_state()["windows"] // 64
    for _ in range(n_epoch - 2):
        next(it)
    state = it.get_state()
    import json
    state = json.loads(json.dumps(state))
    expected = [next(it) for _ in range(5)]  # crosses into the next epoch
    resumed = _it(tiny_prepared, global_batch=64)
    resumed.set_state(state)
    assert all(np.array_equal(e, next(resumed)) for e in expected)
    with pytest.raises(data.DataError, match="seed"):
        _it(tiny_prepared, global_batch=64, seed=3).set_state(state)


def test_epochs_cover_windows_once_and_reshuffle(tiny_prepared):
    it = _it(tiny_prepared, global_batch=64)
    n = it.get_state()["windows"]
    ds = it._ds  # noqa: SLF001 - window indices, to check the permutation itself
    first = np.concatenate([ds[s] for s in range(n // 64)])
    assert len(set(first.tolist())) == len(first)
    second = np.concatenate([ds[s] for s in range(n // 64, 2 * (n // 64))])
    assert not np.array_equal(first[:64], second[:64])


def test_process_slices_are_disjoint_and_cover_the_global_batch(tiny_prepared):
    whole = _it(tiny_prepared, global_batch=12)
    parts = [_it(tiny_prepared, global_batch=12, process_index=p, process_count=3) for p in range(3)]
    for _ in range(4):
        g = next(whole)
        ps = [next(p) for p in parts]
        assert all(p.shape == (4, 33) for p in ps)
        assert np.array_equal(np.concatenate(ps), g)
        rows = {r.tobytes() for p in ps for r in p}
        assert len(rows) == 12
    with pytest.raises(ValueError, match="divisible"):
        _it(tiny_prepared, global_batch=10, process_count=3)


def test_val_batches_fixed(tiny_prepared):
    v = pipeline.val_batches(tiny_prepared, n_ctx=32, batch=4, n_batches=3)
    assert v.shape == (3, 4, 33) and v.dtype == np.int32
    assert np.array_equal(v, pipeline.val_batches(tiny_prepared, n_ctx=32, batch=4, n_batches=3))
    assert np.array_equal(v[0, 0], np.asarray(tiny_prepared.val_tokens()[:33], np.int32))
