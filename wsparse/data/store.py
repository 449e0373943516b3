"""Prepared data on disk: uint16 token shards + tokenizer + manifest, cached by a fingerprint of what made them.

The cache key covers the DataConfig (minus ``cache_dir``), the effective required-token list, the source roots, the
synthetic generator's code and a format version, so changing any of them builds a new cache instead of silently
reusing a stale one. The manifest also records ``corpus_sha256``, a hash of the documents' contents, so two machines
can check that they trained on the same text. A cache is built in a temporary directory and renamed into place, so a
crash never leaves half of one. The cache lives under an absolute directory (``cache_root``), so every working
directory finds the same one.

Validation documents are written twice: all of them to ``val.bin``, and by kind to ``val_real.bin`` (files of the
real corpus) and ``val_synthetic.bin`` (generated programs), so validation loss can be reported for each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from wsparse import config as C
from wsparse.data import corpus as corpus_lib
from wsparse.data import synthetic
from wsparse.data import tokenizer as tok_lib
from wsparse.data.errors import DataError, IncompatibleDataError, ShardError
from wsparse.files import sha256_file

FORMAT = 2
VAL_KINDS = ("all", "real", "synthetic")
SHARDS = ("train.bin", "val.bin", "val_real.bin", "val_synthetic.bin")
DTYPE = np.uint16
_ENCODE_BATCH_BYTES = 4_000_000


@dataclasses.dataclass(frozen=True)
class Prepared:
    dir: str
    manifest: dict

    @property
    def tokenizer_path(self) -> str:
        return os.path.join(self.dir, "tokenizer.json")

    @property
    def tokenizer_sha256(self) -> str:
        return self.manifest["tokenizer_sha256"]

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.dir, "manifest.json")

    def _tokens(self, name: str) -> np.ndarray:
        path = os.path.join(self.dir, name)
        expected = self.manifest["shards"][name]["tokens"]
        size = os.path.getsize(path) if os.path.exists(path) else -1
        if size != expected * np.dtype(DTYPE).itemsize:
            raise ShardError(f"token shard {path} is truncated or corrupt: {size} bytes, manifest says "
                             f"{expected * np.dtype(DTYPE).itemsize}; delete {self.dir} to rebuild it")
        if expected == 0:  # e.g. no real documents in val: numpy cannot map an empty file
            return np.zeros(0, DTYPE)
        return np.memmap(path, dtype=DTYPE, mode="r")

    def train_tokens(self) -> np.ndarray:
        return self._tokens("train.bin")

    def val_tokens(self, kind: str = "all") -> np.ndarray:
        """Validation tokens: every val document, or only those of the real corpus or of the generator."""
        if kind not in VAL_KINDS:
            raise ValueError(f"val kind must be one of {VAL_KINDS}, got {kind!r}")
        return self._tokens("val.bin" if kind == "all" else f"val_{kind}.bin")

    def verify(self) -> None:
        """Checks every shard's size and sha256 and the tokenizer's sha256 against the manifest."""
        for name in SHARDS:
            self._tokens(name)
            path = os.path.join(self.dir, name)
            if sha256_file(path) != self.manifest["shards"][name]["sha256"]:
                raise ShardError(f"token shard {path} is corrupt (sha256 differs from the manifest); "
                                 f"delete {self.dir} to rebuild it")
        if not os.path.exists(self.tokenizer_path) or sha256_file(self.tokenizer_path) != self.tokenizer_sha256:
            raise ShardError(f"{self.tokenizer_path} is missing or corrupt (sha256 differs from the manifest)")


def check_compatible(prepared: Prepared, expected_tokenizer_sha256: str, vocab_size: int | None = None) -> None:
    """For the trainer: raises if ``prepared`` was tokenised differently from what a checkpoint expects."""
    got = prepared.tokenizer_sha256
    if got != expected_tokenizer_sha256:
        raise IncompatibleDataError(
            f"data in {prepared.dir} were tokenised with tokenizer sha256 {got[:12]}..., but the run expects "
            f"{expected_tokenizer_sha256[:12]}...; prepare data with the run's data config (or start a new run)")
    if vocab_size is not None and prepared.manifest["vocab_size"] != vocab_size:
        raise IncompatibleDataError(f"data in {prepared.dir} have vocab_size {prepared.manifest['vocab_size']}, "
                                    f"the model expects {vocab_size}")


def required_tokens(cfg: C.DataConfig, log: Callable[[str], None] = print) -> tuple[str, ...]:
    """The config's required strings plus, when enabled, every registered task candidate."""
    req = list(cfg.required_tokens)
    if cfg.use_task_tokens:
        try:
            from wsparse.tasks import required_tokens as task_tokens
        except ImportError:
            log("wsparse.tasks not available: task candidates are not required single tokens")
        else:
            req += list(task_tokens())
    return tuple(dict.fromkeys(req))


def fingerprint(cfg: C.DataConfig, required: Sequence[str]) -> str:
    data = C.to_dict(cfg)
    data.pop("cache_dir")
    blob = {"format": FORMAT, "data": data, "required": list(required), "sources": corpus_lib.source_key(cfg)}
    if cfg.synthetic_weight > 0:  # a change to the generator's code is a change to the corpus
        blob["synthetic"] = [sha256_file(p) for p in synthetic.SOURCE_FILES] + [synthetic.vocabulary().digest]
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(cache_dir: str) -> str:
    """The absolute directory holding prepared data: ``cache_dir`` if set (relative to the working directory), else
    ``$WSPARSE_DATA_CACHE``, else ``$XDG_CACHE_HOME/wsparse/data`` (``~/.cache/wsparse/data``)."""
    if not cache_dir:
        cache_dir = os.environ.get("WSPARSE_DATA_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "wsparse", "data")
    return os.path.abspath(os.path.expanduser(cache_dir))


def prepared_dir(cfg: C.DataConfig, *, log: Callable[[str], None] = print) -> str:
    """Where ``prepare(cfg)`` builds or finds its data (nothing is built)."""
    return os.path.join(cache_root(cfg.cache_dir), fingerprint(cfg, required_tokens(cfg, log)))


def prepare(cfg: C.DataConfig, *, log: Callable[[str], None] = print) -> Prepared:
    """Builds (or reuses) the cache under ``cache_root(cfg.cache_dir)/<fingerprint>/``."""
    req = required_tokens(cfg, log)
    fp = fingerprint(cfg, req)
    root = cache_root(cfg.cache_dir)
    final = os.path.join(root, fp)
    if os.path.exists(os.path.join(final, "manifest.json")):
        prepared = load(final)
        prepared.verify()
        log(f"reusing prepared data in {final}")
        return prepared
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".tmp-{fp}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        _build(cfg, req, fp, tmp, log)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first; its cache is as good as ours
            if not os.path.exists(os.path.join(final, "manifest.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load(final)


def corpus_sha256(docs: Sequence[corpus_lib.Document]) -> str:
    """A hash of the corpus text: the ordered documents' contents (not their paths), identical on every machine that
    collected the same text."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.digest)
    return h.hexdigest()


def load(path: str) -> Prepared:
    manifest_path = os.path.join(path, "manifest.json")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {manifest_path}: {e}") from e
    if manifest.get("format") != FORMAT:
        raise DataError(f"{manifest_path} has format {manifest.get('format')}, expected {FORMAT}; delete {path}")
    return Prepared(dir=path, manifest=manifest)


def _build(cfg: C.DataConfig, req: Sequence[str], fp: str, out: str, log: Callable[[str], None]) -> None:
    t0 = time.time()
    corpus = corpus_lib.collect(cfg, log)
    docs = corpus_lib.ordered(corpus.docs)
    split = [corpus_lib.is_val(d, cfg.val_fraction) for d in docs]
    log(f"corpus: {len(docs)} documents ({corpus.stats['files_used']} files, {corpus.stats['synthetic_docs']} "
        f"synthetic), {sum(split)} in val; skipped {corpus.stats['skipped']}")

    def train_texts():
        n = 0
        for d, v in zip(docs, split):
            if n >= cfg.tokenizer_train_bytes:
                return
            if not v:
                n += len(d.text)
                yield d.text

    log(f"training the {cfg.vocab_size}-token BPE on {cfg.tokenizer_train_bytes / 1e6:.0f} MB")
    tok = tok_lib.train(train_texts(), vocab_size=cfg.vocab_size, required=req)
    tok_sha = tok_lib.save(tok, os.path.join(out, "tokenizer.json"))
    eot = tok_lib.eot_id(tok)

    counts = {"train": 0, "val": 0, "val_real": 0, "val_synthetic": 0}
    files = {name: open(os.path.join(out, f"{name}.bin"), "wb") for name in counts}
    total = sum(len(d.text.encode()) for d in docs)
    eot_arr = np.array([eot], DTYPE)
    try:
        with tqdm(total=total, unit="B", unit_scale=True, desc="tokenizing", mininterval=1.0) as bar:
            i = 0
            while i < len(docs):
                j, size = i, 0
                while j < len(docs) and size < _ENCODE_BATCH_BYTES:
                    size += len(docs[j].text)
                    j += 1
                encs = tok.encode_batch_fast([d.text for d in docs[i:j]], add_special_tokens=False)
                for enc, doc, is_v in zip(encs, docs[i:j], split[i:j]):
                    kind = "val_synthetic" if doc.source == "synthetic" else "val_real"
                    ids = np.asarray(enc.ids, dtype=DTYPE)
                    for name in ("val", kind) if is_v else ("train",):
                        files[name].write(eot_arr.tobytes())
                        files[name].write(ids.tobytes())
                        counts[name] += 1 + len(ids)
                bar.update(sum(len(d.text.encode()) for d in docs[i:j]))
                i = j
    finally:
        for f in files.values():
            f.close()
    n_total = counts["train"] + counts["val"]
    if counts["val"] < 0.5 * cfg.val_fraction * n_total:
        raise corpus_lib.CorpusError(
            f"validation split too small: {counts['val']} of {n_total} tokens (< {0.5 * cfg.val_fraction:.2%}); "
            "the corpus has too few documents for a hash split; add sources or raise data.val_fraction")
    manifest = {
        "format": FORMAT,
        "fingerprint": fp,
        "data_config": C.to_dict(cfg),
        "sources": corpus.roots,
        "files": {k: v for k, v in corpus.stats.items() if k != "skipped"},
        "skipped": corpus.stats["skipped"],
        "documents": {"train": len(docs) - sum(split), "val": sum(split)},
        "corpus_sha256": corpus_sha256(docs),
        "tokens": counts,
        "vocab_size": cfg.vocab_size,
        "eot_id": eot,
        "tokenizer_sha256": tok_sha,
        "required_tokens": list(req),
        "shards": {f"{k}.bin": {"tokens": v, "sha256": sha256_file(os.path.join(out, f"{k}.bin"))}
                   for k, v in counts.items()},
        "build_seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

