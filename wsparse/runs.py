"""Run directories: what a trained run holds, how later stages load it, and which runs a command may resume.

A run directory (``--workdir``) holds ``config.json``, its own ``tokenizer.json`` and ``data.json`` (the manifest of
the data it was trained on), ``checkpoints/``, ``metrics.jsonl`` and ``tb/``. It belongs to one config: a command
with a different config (other than :data:`RESUMABLE_KEYS`) is refused with :class:`RunMismatch` instead of
silently resuming, reusing or overwriting another model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from typing import Any, Literal

import jax
import numpy as np

from wsparse import checkpoint as ckpt_lib
from wsparse import config as config_lib
from wsparse import files, optim, parallel
from wsparse.config import Config


class RunMismatch(ValueError):
    """A workdir that belongs to another config or tokenizer."""


class RunNotFound(FileNotFoundError):
    """A directory that is not a (finished or started) wsparse run."""


# Keys that may differ between the command that started a run and one that resumes or reuses it.
RESUMABLE_KEYS = frozenset({"train.log_every", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
                            "train.keep_checkpoints", "train.mesh_data", "distributed", "prune", "name",
                            "data.cache_dir",
                            # the top-k implementations give equal results; the attention ones and microbatching
                            # the same up to float rounding
                            "model.topk_impl", "sparsity.topk_impl", "model.attention_impl", "train.microbatches"})


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_same_run(saved: Config, new: Config, workdir: str) -> None:
    """Raises :class:`RunMismatch` unless ``new`` differs from the run's ``saved`` config only in resumable keys."""
    a, b = _flatten(config_lib.to_dict(saved)), _flatten(config_lib.to_dict(new))
    diff = sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS))
    if diff:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:6])
        raise RunMismatch(f"workdir {workdir} holds a run with a different config ({shown}); "
                          "use a new --workdir or delete it, or run with the same config")


def _paths(workdir: str) -> tuple[str, str, str]:
    return (os.path.join(workdir, "config.json"), os.path.join(workdir, "tokenizer.json"),
            os.path.join(workdir, "checkpoints"))


def trained_state(workdir: str, cfg: Config) -> Literal["absent", "partial", "done"]:
    """Whether ``workdir`` holds no run, a run of ``cfg`` short of ``cfg.train.steps``, or a finished one.

    Raises :class:`RunMismatch` when it holds a run of another config, before any data or training work.
    """
    cfg_path, _, ckpt_dir = _paths(os.path.abspath(workdir))
    if not os.path.exists(cfg_path):
        return "absent"
    check_same_run(config_lib.load(cfg_path), cfg, workdir)
    if not os.path.isdir(ckpt_dir):
        return "partial"
    checkpointer = ckpt_lib.Checkpointer(ckpt_dir, keep=cfg.train.keep_checkpoints)
    try:
        return "done" if checkpointer.latest_step() == cfg.train.steps else "partial"
    finally:
        checkpointer.close()


def claim(cfg: Config, workdir: str, prepared: Any) -> None:
    """Makes ``workdir`` the run of ``cfg`` trained on ``prepared`` data, or checks that it already is.

    Writes config.json, a copy of the tokenizer and data.json (process 0 only); raises :class:`RunMismatch` if
    the directory belongs to another config or another tokenizer.
    """
    cfg_path, tok_path, _ = _paths(workdir)
    if os.path.exists(cfg_path):
        check_same_run(config_lib.load(cfg_path), cfg, workdir)
    if os.path.exists(tok_path) and files.sha256_file(tok_path) != prepared.tokenizer_sha256:
        raise RunMismatch(f"{tok_path} differs from the tokenizer of the prepared data {prepared.dir} "
                          "(the data config or the task registry changed); use a new --workdir")
    if jax.process_index() == 0:
        config_lib.save(cfg, cfg_path)
        if not os.path.exists(tok_path):
            shutil.copyfile(prepared.tokenizer_path, tok_path)
        # The manifest plus where the data live, so later stages read the run's own data and never rebuild them.
        files.write_json(os.path.join(workdir, "data.json"), prepared.manifest | {"dir": prepared.dir}, indent=2)


@dataclasses.dataclass
class Run:
    """What every later stage needs from a trained run."""

    cfg: Config
    params: Any
    tokenizer: Any
    tokenizer_sha256: str
    step: int
    workdir: str

    def prepared(self) -> Any:
        """The prepared data this run was trained on, found where ``data.json`` says (or under this machine's data
        cache by the same fingerprint). Never builds anything: missing data raise a DataError saying how to prepare
        them."""
        from wsparse import data as data_lib
        from wsparse.data import store

        path = os.path.join(self.workdir, "data.json")
        if not os.path.exists(path):
            raise data_lib.DataError(f"{path} is missing: {self.workdir} does not say which data it was trained on")
        with open(path) as f:
            manifest = json.load(f)
        fp = manifest["fingerprint"]
        places = list(dict.fromkeys(p for p in (manifest.get("dir"), os.path.join(
            store.cache_root(self.cfg.data.cache_dir), fp)) if p))
        for place in places:
            if os.path.exists(os.path.join(place, "manifest.json")):
                prepared = data_lib.load(place)
                data_lib.check_compatible(prepared, self.tokenizer_sha256, self.cfg.model.vocab_size)
                return prepared
        raise data_lib.DataError(
            f"the prepared data of run {self.workdir} (fingerprint {fp}) are not in {' or '.join(places)}; prepare "
            f"them with `python -m experiments.prepare_data --workdir={self.workdir}`")

    def val_tokens(self, n_tokens: int, batch: int = 16) -> np.ndarray:
        """``[n, batch, n_ctx]`` validation windows (at least ``n_tokens`` positions) from the run's own data.

        Node means and top-activating contexts must use the data and tokenizer the model was trained with, so they
        come from :meth:`prepared` (which never rebuilds data).
        """
        from wsparse.data import pipeline

        n_ctx = self.cfg.model.n_ctx
        n_batches = max(1, math.ceil(n_tokens / (batch * n_ctx)))
        return np.asarray(pipeline.val_batches(self.prepared(), n_ctx=n_ctx, batch=batch,
                                               n_batches=n_batches))[..., :n_ctx]


def load_run(workdir: str, step: int | None = None) -> Run:
    """Config, parameters and tokenizer of a trained run, from its latest (or the given) checkpoint."""
    from wsparse.data import tokenizer as tok_lib
    from wsparse.train_step import abstract_state

    workdir = os.path.abspath(workdir)
    if not os.path.isdir(workdir):
        raise RunNotFound(f"run directory {workdir} does not exist")
    cfg_path, tok_path, ckpt_dir = _paths(workdir)
    for path in (cfg_path, tok_path):
        if not os.path.exists(path):
            raise RunNotFound(f"{path} is missing: is {workdir} a wsparse run directory "
                              "(made by `python -m experiments.train`)?")
    cfg = config_lib.load(cfg_path)
    # An explicit target sharding lets a run trained on a pod be loaded on one laptop CPU, and vice versa.
    abstract = ckpt_lib.abstract_like(abstract_state(cfg, optim.make_optimizer(cfg)),
                                      sharding=parallel.replicated(parallel.make_mesh()))
    checkpointer = ckpt_lib.Checkpointer(ckpt_dir, keep=cfg.train.keep_checkpoints)
    try:
        step, state, extra = checkpointer.restore(abstract, step)
    finally:
        checkpointer.close()
    sha = files.sha256_file(tok_path)
    if extra.get("tokenizer_sha256") not in (None, sha):
        raise RunMismatch(f"{tok_path} (sha256 {sha[:12]}) is not the tokenizer checkpoint {step} was trained with "
                          f"(sha256 {extra['tokenizer_sha256'][:12]})")
    return Run(cfg=cfg, params=state.params, tokenizer=tok_lib.load(tok_path), tokenizer_sha256=sha, step=step,
               workdir=workdir)
