"""The training loop: run directory, resume exactness, preemption, divergence, mismatches, multi-device."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import wsparse
from configs import tiny
from wsparse import config as config_lib
from wsparse import model, runs, sparsity, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(cache_dir, **overrides):
    cd = tiny.get_config()
    cd.data.cache_dir = str(cache_dir)
    for key, value in overrides.items():
        section, name = key.split("__")
        cd[section][name] = value
    return config_lib.from_configdict(cd)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, cache_dir):
    """One uninterrupted 20-step run that several tests read."""
    workdir = tmp_path_factory.mktemp("full")
    result = train.train(tiny_config(cache_dir), str(workdir), progress=False, log=lambda s: None)
    return workdir, result


def test_run_directory_contents(full_run):
    workdir, result = full_run
    for name in ("config.json", "tokenizer.json", "data.json", "metrics.jsonl", "checkpoints", "tb"):
        assert (workdir / name).exists(), name
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
    for r in train_rows:
        assert math.isfinite(r["loss"]) and r["tokens_per_s"] > 0 and "grad_rms" in r and "lr" in r
    assert [r["step"] for r in rows if "eval_loss" in r] == [10, 20]
    # The tiny corpus is all generated programs: validation by kind has synthetic documents and no library code,
    # and the synthetic-only loss is then the overall one.
    evals = [r for r in rows if "eval_loss" in r]
    assert all("eval_loss_real" not in r and r["eval_loss_synthetic"] == r["eval_loss"] for r in evals)
    assert result.final_eval_losses == {"all": evals[-1]["eval_loss"], "synthetic": evals[-1]["eval_loss"]}
    assert sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()) == [10, 20]
    # The untrained model is near uniform (ln 2048 = 7.62); 20 steps must already lower the loss.
    assert train_rows[-1]["loss"] < train_rows[0]["loss"] < 7.7


def _sparse_tensors(params, step: int, cfg) -> list[tuple[str, int, int, int]]:
    """(family, exact keep count at ``step``, size, nonzeros) of every sparse tensor of ``params``."""
    out = []
    for path, w in jax.tree_util.tree_leaves_with_path(params):
        fam = sparsity.family_of(path)
        if fam is not None:
            k = int(sparsity.keep_count(sparsity.density_at(step, cfg.train.steps, cfg.sparsity, fam), w.size))
            out.append((fam, k, w.size, int(jnp.count_nonzero(w))))
    return out


def _family_density(tensors: list, family: str) -> float:
    return sum(k for f, k, _, _ in tensors if f == family) / sum(n for f, _, n, _ in tensors if f == family)


def test_logged_density_is_the_exact_keep_count_of_the_logged_step(full_run, cache_dir):
    workdir, result = full_run
    cfg = tiny_config(cache_dir)
    # After a real step every sparse tensor holds exactly keep_count(density at that step) nonzeros.
    for step, params in ((10, wsparse.load_run(str(workdir), step=10).params), (20, result.state.params)):
        tensors = _sparse_tensors(params, step, cfg)
        assert {f for f, *_ in tensors} == set(sparsity.FAMILIES)
        assert [nnz for *_, nnz in tensors] == [k for _, k, _, _ in tensors], step
    # The logged density is that of the logged step, not of the one after it (steps 5 and 6 are in the anneal).
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    for r in (r for r in rows if "loss" in r):
        tensors = _sparse_tensors(result.state.params, r["step"], cfg)
        for fam in sparsity.FAMILIES:
            assert r[f"density/{fam}"] == pytest.approx(_family_density(tensors, fam), rel=1e-6), (r["step"], fam)
    at5, at6 = (_sparse_tensors(result.state.params, s, cfg) for s in (5, 6))
    assert _family_density(at5, "interior") != pytest.approx(_family_density(at6, "interior"), rel=1e-6)


def test_load_run(full_run):
    workdir, result = full_run
    run = wsparse.load_run(str(workdir))
    assert run.step == 20 and run.cfg.name == "tiny"
    np.testing.assert_array_equal(run.params["wte"]["w"], result.state.params["wte"]["w"])
    assert run.tokenizer.get_vocab_size() == 2048
    early = wsparse.load_run(str(workdir), step=10)
    assert early.step == 10
    with pytest.raises(Exception, match="no checkpoint for step 7"):
        wsparse.load_run(str(workdir), step=7)


def test_resume_is_bitwise_identical(full_run, tmp_path, cache_dir):
    _, full = full_run
    cfg = tiny_config(cache_dir)
    first = train.train(cfg, str(tmp_path), progress=False, log=lambda s: None, max_steps=10)
    assert int(first.state.step) == 10 and runs.trained_state(str(tmp_path), cfg) == "partial"
    resumed = train.train(cfg, str(tmp_path), progress=False, log=lambda s: None)
    assert resumed.resumed_from == 10 and int(resumed.state.step) == 20
    assert runs.trained_state(str(tmp_path), cfg) == "done"
    for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(resumed.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sigterm_saves_and_exits_cleanly(tmp_path, cache_dir, monkeypatch):
    from wsparse.data import pipeline

    real = pipeline.train_iterator

    class SignalAtStep:
        def __init__(self, it):
            self.it, self.n = it, 0

        def __next__(self):
            self.n += 1
            if self.n == 7:
                os.kill(os.getpid(), signal.SIGTERM)
            return next(self.it)

        def __getattr__(self, name):
            return getattr(self.it, name)

    monkeypatch.setattr(pipeline, "train_iterator", lambda *a, **k: SignalAtStep(real(*a, **k)))
    messages = []
    result = train.train(tiny_config(cache_dir), str(tmp_path), progress=False, log=messages.append)
    assert result.stopped_early and int(result.state.step) == 7
    assert any("interrupted" in m for m in messages)
    assert wsparse.load_run(str(tmp_path)).step == 7


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(tmp_path, cache_dir):
    cfg = tiny_config(cache_dir, optim__lr=1e30, optim__grad_rms_mode="none", train__checkpoint_every=1)
    with pytest.raises(train.TrainingDiverged, match=r"at step \d+") as err:
        train.train(cfg, str(tmp_path), progress=False, log=lambda s: None)
    bad_step = int(str(err.value).split("at step ")[1].split(";")[0])
    assert wsparse.load_run(str(tmp_path)).step == bad_step - 1


def test_workdir_of_another_config_is_refused(full_run, cache_dir):
    workdir, _ = full_run
    with pytest.raises(train.RunMismatch, match="model.d_model"):
        train.train(tiny_config(cache_dir, model__d_model=48), str(workdir), progress=False, log=lambda s: None)


def test_trained_state_decides_reuse_before_any_work(full_run, tmp_path, cache_dir):
    """What experiments/demo.py asks before training: absent, partial (resume), done (reuse), or refused."""
    workdir, _ = full_run
    cfg = tiny_config(cache_dir)
    assert runs.trained_state(str(tmp_path / "new"), cfg) == "absent"
    assert runs.trained_state(str(workdir), cfg) == "done"
    assert runs.trained_state(str(workdir), tiny_config(cache_dir, train__log_every=2)) == "done"  # resumable key
    # Another top-k implementation computes the same model: a run saved with another one (or before the switch
    # existed) is the same run.
    assert runs.trained_state(str(workdir), tiny_config(cache_dir, model__topk_impl="bisect",
                                                        sparsity__topk_impl="sort")) == "done"
    other = tmp_path / "other"
    other.mkdir()
    config_lib.save(tiny_config(cache_dir, model__d_model=48), str(other / "config.json"))
    before = sorted(os.listdir(other))
    with pytest.raises(runs.RunMismatch, match="model.d_model: 48 -> 32.*use a new --workdir or delete it"):
        runs.trained_state(str(other), cfg)
    assert sorted(os.listdir(other)) == before


def test_load_run_on_a_plain_directory(tmp_path):
    with pytest.raises(runs.RunNotFound, match="config.json is missing"):
        wsparse.load_run(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        wsparse.load_run(str(tmp_path / "nowhere"))


_MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, {repo!r})
    import jax, numpy as np
    from configs import tiny
    from wsparse import config as config_lib, optim, parallel, train
    cfg = config_lib.from_configdict(tiny.get_config())
    optimizer = optim.make_optimizer(cfg)
    step = jax.jit(train.make_train_step(cfg, optimizer))
    batch = np.random.default_rng(0).integers(0, 2048, (8, cfg.model.n_ctx + 1)).astype(np.int32)
    import dataclasses
    two = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, microbatches=2))
    micro = jax.jit(train.make_train_step(two, optimizer))
    for n, f, name in ((1, step, "1"), (4, step, "4"), (4, micro, "4x2")):
        mesh = parallel.make_mesh(n)
        assert mesh.devices.size == n
        state = parallel.replicate(jax.jit(lambda k: train.init_state(cfg, k, optimizer))(jax.random.key(0)), mesh)
        losses = []
        for _ in range(3):
            state, m = f(state, parallel.global_batch(batch, mesh))
            losses.append(float(m["loss"]))
        print("LOSSES", name, *losses)
""")


def test_same_loss_on_one_and_four_devices_and_in_microbatches():
    out = subprocess.run([sys.executable, "-c", _MULTI_DEVICE_SCRIPT.format(repo=REPO)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    losses = {line.split()[1]: np.array([float(x) for x in line.split()[2:]])
              for line in out.stdout.splitlines() if line.startswith("LOSSES")}
    np.testing.assert_allclose(losses["1"], losses["4"], rtol=1e-5)
    np.testing.assert_allclose(losses["4x2"], losses["4"], rtol=1e-5)  # 2 microbatches over 4 devices: same steps
    assert losses["1"][2] < losses["1"][0]


def test_val_tokens_refuse_data_of_another_tokenizer(full_run):
    from wsparse.data import IncompatibleDataError

    run = wsparse.load_run(str(full_run[0]))
    tokens = run.val_tokens(1000, batch=4)
    assert tokens.shape[1:] == (4, run.cfg.model.n_ctx) and tokens.shape[0] * 4 * run.cfg.model.n_ctx >= 1000
    run.tokenizer_sha256 = "0" * 64
    with pytest.raises(IncompatibleDataError, match="tokenizer sha256"):
        run.val_tokens(1000)


def test_val_tokens_read_the_runs_own_data_from_anywhere_and_never_rebuild(full_run, tmp_path, monkeypatch):
    from wsparse import data as data_lib

    run = wsparse.load_run(str(full_run[0]))
    want = run.val_tokens(500, batch=4)
    monkeypatch.chdir(tmp_path)  # another working directory: the same data, found through data.json
    monkeypatch.setattr(data_lib, "prepare", lambda *a, **k: pytest.fail("val_tokens must not prepare data"))
    np.testing.assert_array_equal(run.val_tokens(500, batch=4), want)
    # Data that are gone are reported with the command that prepares them, not rebuilt behind the user's back.
    manifest = json.loads((full_run[0] / "data.json").read_text())
    moved = dataclasses.replace(run, workdir=str(tmp_path / "copy"))
    os.makedirs(moved.workdir)
    (tmp_path / "copy" / "data.json").write_text(json.dumps(manifest | {"dir": str(tmp_path / "gone")}))
    moved = dataclasses.replace(moved, cfg=dataclasses.replace(
        run.cfg, data=dataclasses.replace(run.cfg.data, cache_dir=str(tmp_path / "empty_cache"))))
    with pytest.raises(data_lib.DataError, match="prepare_data --workdir="):
        moved.val_tokens(500)


def test_microbatches_give_the_batch_loss_and_gradients():
    """``train.microbatches = 4``: the scan over four slices of the batch gives the whole batch's mean loss and
    gradients, up to float rounding, in under half the temporary memory (XLA's own count for the compiled program),
    and a batch it cannot split is refused."""
    from wsparse import train_step as ts

    cfg = config_lib.from_configdict(tiny.get_config())
    params = model.init_params(cfg.model, jax.random.key(0))
    batch = jax.random.randint(jax.random.key(1), (8, cfg.model.n_ctx + 1), 0, cfg.model.vocab_size)
    four = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, microbatches=4))
    grads = jax.jit(ts.loss_and_grads, static_argnums=2)
    (l1, g1), (l4, g4) = (grads(params, batch, c) for c in (cfg, four))
    temp = [grads.lower(params, batch, c).compile().memory_analysis().temp_size_in_bytes for c in (cfg, four)]
    assert temp[1] < 0.5 * temp[0], temp
    np.testing.assert_allclose(l4, l1, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(g4), jax.tree_util.tree_leaves(g1)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    with pytest.raises(config_lib.ConfigError, match="train.microbatches"):
        dataclasses.replace(cfg.train, batch_size=6, microbatches=4).validate()
