"""Collects, filters, deduplicates and splits the Python corpus (docs/method.md section 3).

Real code defaults to the running interpreter's standard library and site-packages, so a run works anywhere with no
network. Files are visited in a deterministic order that does not depend on the machine's absolute paths (sorted by a
hash of the path relative to its source root), so a byte cap samples across packages instead of taking the
alphabetically first ones. The train/val split is a hash of each document's content: a document never changes split
when the corpus grows.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import hashlib
import multiprocessing
import os
import sys
import sysconfig
from typing import Callable, Iterable, Mapping

from wsparse.data.errors import CorpusError
from wsparse.config import DataConfig
from wsparse.data import synthetic

SKIP_REASONS = ("too_large", "binary", "undecodable", "unreadable", "empty", "duplicate")
_SYNTH_CHUNK = 256  # programs per worker task


@dataclasses.dataclass(frozen=True)
class Document:
    text: str
    source: str  # a file path, or "synthetic"

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).digest()


@dataclasses.dataclass
class Corpus:
    docs: list[Document]
    roots: list[str]
    stats: dict  # files found/used, skipped by reason, bytes


# Never part of the default corpus: what else is installed differs from machine to machine.
_INSTALLED_PACKAGE_DIRS = ("site-packages", "dist-packages")


def default_roots() -> list[str]:
    """The running interpreter's standard library: the same files for the same Python version on every machine.

    Installed packages (site-packages, also the one inside the standard library's directory) are left out; list them
    in ``data.sources`` to train on them.
    """
    return [os.path.realpath(stdlib_dir())]


def stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def _expand(source: str, skip_dirs: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(root, file) pairs for one source: a directory (recursive .py files), a file, or a glob pattern."""
    source = os.path.expanduser(source)
    if os.path.isdir(source):
        out = []
        for d, subdirs, files in os.walk(source):
            subdirs[:] = sorted(s for s in subdirs if s != "__pycache__" and s not in skip_dirs)
            out += [(source, os.path.join(d, f)) for f in files if f.endswith(".py")]
        return out
    if os.path.isfile(source):
        return [(os.path.dirname(source), source)]
    out = []
    for match in glob.glob(source, recursive=True):
        out += _expand(match) if os.path.isdir(match) else [(os.path.dirname(match), match)]
    return out


def sources(cfg: DataConfig) -> list[str]:
    return (default_roots() if cfg.default_sources else []) + list(cfg.sources)


def source_key(cfg: DataConfig) -> list[str]:
    """The sources as the data cache key sees them: the standard library by Python version, not by its path on this
    machine, so the same version gives the same key everywhere; listed sources as written."""
    default = [f"<stdlib of Python {sys.version_info.major}.{sys.version_info.minor}>"] if cfg.default_sources else []
    return default + list(cfg.sources)


def list_files(srcs: Iterable[str], skip_dirs: Mapping[str, tuple[str, ...]] | None = None) -> list[str]:
    """Every .py file under ``srcs``, each once, in a machine-independent deterministic order; under a source listed
    in ``skip_dirs``, directories of those names are not searched."""
    seen: dict[str, str] = {}
    for src in srcs:
        for root, path in _expand(src, (skip_dirs or {}).get(src, ())):
            real = os.path.realpath(path)
            if real not in seen:
                seen[real] = os.path.relpath(real, os.path.realpath(root))
    return sorted(seen, key=lambda p: (hashlib.sha256(seen[p].encode()).hexdigest(), seen[p], p))


def _read(path: str, max_bytes: int) -> tuple[str | None, str]:
    """(text, "") or (None, skip reason). Never raises for a bad file."""
    try:
        if os.path.getsize(path) > max_bytes:
            return None, "too_large"
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError:
        return None, "unreadable"
    if len(raw) > max_bytes:
        return None, "too_large"
    if b"\x00" in raw:
        return None, "binary"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "undecodable"
    return (text, "") if text.strip() else (None, "empty")


def _synth_chunk(args: tuple[int, int, synthetic.Vocabulary]) -> list[str]:
    seed, start, vocab = args
    return synthetic.programs(seed, start, _SYNTH_CHUNK, vocab)


def synthetic_docs(seed: int, n_bytes: int, processes: int | None = None) -> list[str]:
    """Synthetic programs totalling at least ``n_bytes``, generated on all cores; a pure function of the seed (and of
    the generator's vocabulary, mined here once and handed to the workers)."""
    vocab = synthetic.vocabulary()
    out: list[str] = []
    made, start, mean = 0, 0, 1500.0  # mean: bytes per program, refined from what was made
    procs = processes or (os.cpu_count() or 1 if n_bytes > 4_000_000 else 1)  # a pool costs ~1 s to start
    ctx = multiprocessing.get_context("spawn" if procs > 1 else None)
    with ctx.Pool(procs) if procs > 1 else _Serial() as pool:
        while made < n_bytes:
            est = max(1, int((n_bytes - made) / (mean * _SYNTH_CHUNK)) + 1)
            starts = [(seed, start + i * _SYNTH_CHUNK, vocab) for i in range(est)]
            start += est * _SYNTH_CHUNK
            chunks = pool.map(_synth_chunk, starts)
            mean = sum(len(d) for c in chunks for d in c) / (est * _SYNTH_CHUNK)
            for chunk in chunks:
                for doc in chunk:
                    if made >= n_bytes:
                        break
                    out.append(doc)
                    made += len(doc.encode())
    return out


class _Serial:
    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def map(self, fn: Callable, xs: list) -> list:
        return [fn(x) for x in xs]


def collect(cfg: DataConfig, log: Callable[[str], None] = print) -> Corpus:
    """Reads real sources up to their share of ``max_source_bytes``, then mixes in synthetic programs by weight.

    ``max_source_bytes`` caps the whole corpus (real + synthetic); the synthetic share is ``synthetic_weight`` of it.
    Without a cap, all real files are read and synthetic bytes are added to make up ``synthetic_weight``.
    """
    w = cfg.synthetic_weight
    if w >= 1.0 and cfg.max_source_bytes <= 0:
        raise CorpusError("data.synthetic_weight=1 needs data.max_source_bytes > 0 to size the synthetic corpus")
    srcs = sources(cfg) if w < 1.0 else []
    real_budget = int(cfg.max_source_bytes * (1 - w)) if cfg.max_source_bytes > 0 else None
    skipped: collections.Counter[str] = collections.Counter({r: 0 for r in SKIP_REASONS})
    hashes: set[bytes] = set()
    docs: list[Document] = []
    skip = {root: _INSTALLED_PACKAGE_DIRS for root in default_roots()} if cfg.default_sources else {}
    files = list_files(srcs, skip)
    real_bytes, visited, extra_val_bytes = 0, 0, 0
    for path in files:
        over_budget = real_budget is not None and real_bytes >= real_budget
        if over_budget and extra_val_bytes >= cfg.val_real_min_bytes:
            break
        visited += 1
        text, reason = _read(path, cfg.max_file_bytes)
        if text is None:
            skipped[reason] += 1
            continue
        doc = Document(text, path)
        if doc.digest in hashes:
            skipped["duplicate"] += 1
            continue
        if over_budget:
            # Past the training budget, only documents of the validation split are kept, so the loss on real code
            # is measured on enough text; training never sees them either way.
            if not is_val(doc, cfg.val_fraction):
                continue
            extra_val_bytes += len(text.encode())
        else:
            real_bytes += len(text.encode())
        hashes.add(doc.digest)
        docs.append(doc)
    if w < 1.0 and not docs:
        raise CorpusError(
            f"no usable Python files in the sources searched: {srcs or '(none)'} ({len(files)} .py files found, "
            f"skipped: {dict(skipped)}); list directories or globs in data.sources, enable data.default_sources, "
            "or set data.synthetic_weight")
    synth_bytes = (int(cfg.max_source_bytes * w) if cfg.max_source_bytes > 0
                   else int(real_bytes * w / (1 - w)))
    n_synth = 0
    if synth_bytes > 0:
        log(f"generating {synth_bytes / 1e6:.1f} MB of synthetic programs")
        for text in synthetic_docs(cfg.seed, synth_bytes):
            doc = Document(text, "synthetic")
            if doc.digest in hashes:
                continue
            hashes.add(doc.digest)
            docs.append(doc)
            n_synth += 1
    stats = {
        "files_found": len(files), "files_visited": visited, "files_used": len(docs) - n_synth,
        "extra_val_bytes": extra_val_bytes,
        "skipped": dict(skipped), "real_bytes": real_bytes, "synthetic_docs": n_synth,
        "synthetic_bytes": sum(len(d.text.encode()) for d in docs[len(docs) - n_synth:]),
    }
    return Corpus(docs=docs, roots=srcs, stats=stats)


def is_val(doc: Document, val_fraction: float) -> bool:
    """Stable split: a document's content hash alone decides, so adding documents never moves existing ones."""
    return int.from_bytes(doc.digest[:8], "big") < val_fraction * 2**64


def ordered(docs: Iterable[Document]) -> list[Document]:
    """Documents in content-hash order: deterministic, and mixes real and synthetic ones."""
    return sorted(docs, key=lambda d: d.digest)
