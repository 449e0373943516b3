"""Entry points: a user's mistake is one `error:` line on stderr and exit status 2; a bug keeps its traceback."""

import os
import subprocess
import sys

import pytest
from absl import flags

import wsparse
from configs import demo, tiny
from wsparse import checkpoint, cli, config, data, runs, tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_error_line(capsys, fn, *args) -> str:
    with pytest.raises(SystemExit) as exit_:
        fn(*args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


def _raising(exc):
    def main(argv):
        raise exc
    return main


@pytest.mark.parametrize("exc", [
    config.ConfigError("config model.afrac: must be in (0, 1], got 2.0"),
    tasks.TaskError("unknown task 'nope'"),
    data.DataError("cannot read manifest.json"),
    data.IncompatibleDataError("data were tokenised with tokenizer sha256 0000"),
    runs.RunMismatch("workdir w holds a run with a different config\n(model.d_model: 48 -> 32)"),
    runs.RunNotFound("run directory /x does not exist"),
    checkpoint.CheckpointError("no checkpoint under /x/checkpoints"),
])
def test_user_errors_are_one_line_and_status_2(capsys, exc):
    line = _user_error_line(capsys, cli.reporting(_raising(exc)), ["prog"])
    assert line == "error: " + " ".join(str(exc).split())


def test_bad_config_value_and_missing_workdir(capsys, tmp_path):
    cd = tiny.get_config()
    cd.model.afrac = 2.0
    line = _user_error_line(capsys, cli.reporting(lambda argv: config.from_configdict(cd)), ["prog"])
    assert "model.afrac" in line
    line = _user_error_line(capsys, cli.reporting(lambda argv: wsparse.load_run(str(tmp_path / "nope"))), ["prog"])
    assert "does not exist" in line


def test_bugs_keep_their_traceback(capsys):
    main = cli.reporting(_raising(KeyError("a bug")))
    with pytest.raises(KeyError, match="a bug"):
        main(["prog"])
    assert capsys.readouterr().err == ""


@pytest.fixture
def parse(tmp_path):
    """Parses a command line of a fresh flag set: --config (default configs/tiny.py) and --workdir."""
    def parse(*args: str) -> flags.FlagValues:
        fv, argv = flags.FlagValues(), ["prog", *args]
        cli.define_config_file("config", "configs/tiny.py", "Config file.", flag_values=fv, sys_argv=argv)
        flags.DEFINE_string("workdir", None, "Run directory.", flag_values=fv, required=True)
        cli.parse_flags(argv, fv)
        return fv
    return parse


def test_parses_config_flags(parse):
    fv = parse("--workdir=w")
    assert fv.config.train.steps == 20 and fv.config.name == "tiny"  # the deferred default
    fv = parse("--workdir=w", "--config.train.steps=7", "--config.model.d_model=64")
    assert fv.config.train.steps == 7 and fv.config.model.d_model == 64
    assert parse("--workdir=w", "--config=configs/tiny.py:dense").config.model.afrac == 1.0


@pytest.mark.parametrize("args, message", [
    (["--workdir=w", "--config.train.steps=abc"], "--config.train.steps=abc: invalid literal for int()"),
    (["--workdir=w", "--config.train.stepz=3"], "--config.train.stepz=3: the config has no key 'stepz'"),
    (["--workdir=w", "--config=configs/prune.py:bogus"], "unknown variant 'bogus'"),
    (["--workdir=w", "--config=configs/nope.py"], "--config: cannot load the config file: [Errno 2]"),
    (["--config.train.steps=3"], "Flag --workdir must have a value"),
    (["--workdri=w"], "Unknown command line flag 'workdri'"),
])
def test_command_line_mistakes(capsys, parse, args, message):
    assert message in _user_error_line(capsys, parse, *args)


def test_a_config_file_bug_keeps_its_traceback(parse, tmp_path):
    path = tmp_path / "buggy.py"
    path.write_text("def get_config(arg=''):\n    return 1 + 'x'\n")
    with pytest.raises(flags.Error, match="TypeError"):
        parse("--workdir=w", f"--config={path}")


def _entry_point(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_demo_refuses_a_workdir_of_another_config_before_any_work(tmp_path):
    config.save(config.from_configdict(demo.get_config()), str(tmp_path / "config.json"))
    out = _entry_point("experiments.demo", f"--workdir={tmp_path}", "--config.train.steps=7")
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: workdir ") and "train.steps: 1000 -> 7" in out.stderr
    assert "use a new --workdir or delete it" in out.stderr
    assert os.listdir(tmp_path) == ["config.json"]


def test_eval_tasks_unknown_task(tmp_path):
    out = _entry_point("experiments.eval_tasks", f"--workdir={tmp_path}", "--tasks=for_while,nope")
    assert out.returncode == 2 and out.stderr.startswith("error: unknown task 'nope'"), out.stderr[-3000:]
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--task=for_whlie"], "error: unknown task 'for_whlie'"),
    (["--controls=swapped"], "error: config prune.faithfulness.controls: unknown ['swapped']"),
])
def test_faithfulness_mistakes_fail_before_loading_the_run(tmp_path, args, message):
    """The workdir does not exist: had the run been loaded first, the error would be RunNotFound."""
    out = _entry_point("experiments.faithfulness", f"--workdir={tmp_path / 'absent'}", *args)
    assert out.returncode == 2 and out.stderr.startswith(message), out.stderr[-3000:]
    assert len(out.stderr.strip().splitlines()) == 1


def test_compile_cache_dir_follows_the_environment(tmp_path):
    home = {"XDG_CACHE_HOME": str(tmp_path)}
    assert cli.compile_cache_dir(home) == os.path.join(str(tmp_path), "wsparse", "xla")
    assert cli.compile_cache_dir(home | {cli.COMPILE_CACHE_ENV: str(tmp_path / "c")}) == str(tmp_path / "c")
    for off in ("off", "", "0"):
        assert cli.compile_cache_dir(home | {cli.COMPILE_CACHE_ENV: off}) is None
    # JAX's own setting stands: wsparse neither overrides nor duplicates it.
    assert cli.compile_cache_dir(home | {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "j")}) is None


_CACHED_PROGRAM = """
import jax, jax.numpy as jnp
from wsparse import cli
hits = []
jax.monitoring.register_event_listener(lambda e, **kw: hits.append(e) if e.endswith("cache_hits") else None)
print(cli.enable_compile_cache())
x = jax.jit(lambda a: jnp.tanh(a @ a.T).sum(0))(jnp.arange(64.0).reshape(8, 8) / 64)
print(len(hits), x.tolist())
"""


def test_entry_points_reuse_compilations_across_processes(tmp_path):
    """A second process loads the first one's executable from the persistent cache and computes the same bits."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env[cli.COMPILE_CACHE_ENV] = str(tmp_path / "xla")

    def once():
        out = subprocess.run([sys.executable, "-c", _CACHED_PROGRAM], env=env, capture_output=True, text=True,
                             check=True).stdout.splitlines()
        return out[0], int(out[1].split(" ", 1)[0]), out[1].split(" ", 1)[1]

    first, second = once(), once()
    assert first[0] == second[0] == str(tmp_path / "xla") and os.listdir(first[0])
    assert first[1] == 0 and second[1] >= 1
    assert first[2] == second[2]
