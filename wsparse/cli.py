"""Entry points report a user's mistake as one line and exit status 2; a bug keeps its traceback.

    if __name__ == "__main__":
        cli.run(main)   # instead of absl's app.run(main)

A user's mistake is an exception of one of :data:`USER_ERRORS` raised by ``main`` (a bad config value, an unknown
task, unusable data, a workdir of another run, a missing run directory or checkpoint, a diverged training run),
or a bad command line: an unknown flag, a bad ``--config.key=value`` override, a ``--config`` file that does not
exist or whose ``get_config`` rejects its argument with a ValueError. Everything else propagates with its
traceback. Config-file flags must be defined with :func:`define_config_file` for their errors to be caught.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from typing import Any, Callable, NoReturn

from absl import app, flags

EXIT_USER_ERROR = 2

flags.disclaim_key_flags()  # flags defined through define_config_file belong to the entry point (--helpshort)

# module -> the classes of user errors it defines. They are looked up only in modules already imported (an
# exception cannot be an instance of a class that was never defined), so this module imports nothing heavy.
USER_ERRORS: dict[str, tuple[str, ...]] = {
    "wsparse.config": ("ConfigError",),
    "wsparse.tasks.base": ("TaskError",),
    "wsparse.data.errors": ("DataError",),  # CorpusError, TokenizerError, ShardError, ... are DataErrors
    "wsparse.checkpoint": ("CheckpointError",),
    "wsparse.runs": ("RunMismatch", "RunNotFound"),
    "wsparse.train": ("TrainingDiverged",),
}


def is_user_error(e: BaseException) -> bool:
    classes = tuple(getattr(sys.modules[mod], name) for mod, names in USER_ERRORS.items() if mod in sys.modules
                    for name in names)
    return isinstance(e, classes)


def fail(message: str) -> NoReturn:
    """Prints ``error: <message>`` (on one line) to stderr and exits with status 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def reporting(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """``main`` with user errors turned into :func:`fail`."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> Any:
        try:
            return main(argv)
        except Exception as e:
            if not is_user_error(e):
                raise
            fail(str(e))

    return wrapped


def _chain(e: BaseException):
    """``e``, then the exception it was raised from or while handling, and so on."""
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def _raised_in(e: BaseException, path_part: str) -> bool:
    return any(path_part in frame.filename.replace("\\", "/") for frame in traceback.extract_tb(e.__traceback__))


# Config-file flags defined by define_config_file, with the file each reads when the command line names none.
_DEFERRED_DEFAULTS: dict[flags.Flag, str] = {}


def define_config_file(name: str, default: str | None, help_string: str, *,
                       flag_values: flags.FlagValues = flags.FLAGS, **kwargs) -> flags.FlagHolder:
    """``config_flags.DEFINE_config_file``, except that the default file is read when :func:`run` parses flags.

    ml_collections reads a default config file, and applies ``--config.key=value`` overrides to it, as soon as the
    flag is defined (when the module is imported): a mistake there would escape :func:`run`.
    """
    from ml_collections import config_flags

    holder = config_flags.DEFINE_config_file(name, None, help_string, flag_values=flag_values, **kwargs)
    if default is not None:
        _DEFERRED_DEFAULTS[flag_values[name]] = default
        flag_values[name].default_as_str = repr(default)  # what --help shows
    return holder


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl's flag parsing (``app.run``'s ``flags_parser``) with command-line mistakes reported by :func:`fail`."""
    argv = list(argv)
    for name in list(flag_values):
        default = _DEFERRED_DEFAULTS.get(flag_values[name])
        if default is not None and not any(re.match(rf"^--?{re.escape(name)}(=|$)", a) for a in argv[1:]):
            argv.insert(1, f"--{name}={default}")
    try:
        args = flag_values(argv)
    except flags.Error as e:
        if "\n" not in str(e).strip():  # absl's one line: unknown flag, missing required flag, unparsable value
            fail(str(e))
        # ml_collections puts the traceback of a config file's get_config into the message: a ValueError there
        # (an unknown variant) is the user's; anything else is a bug in the config file, shown in full.
        inner = list(_chain(e))[-1]
        if not isinstance(inner, ValueError):
            raise
        fail(f"{str(e).split(': Error whilst parsing', 1)[0]}: {inner}")
    except (AttributeError, KeyError) as e:
        # ml_collections raises these, unwrapped, for an override of a key the config does not have.
        if not _raised_in(e, "ml_collections/config_flags/config_path"):
            raise
        key_error = next((c for c in _chain(e) if isinstance(c, KeyError) and c.args), e)
        key, _, hint = str(key_error.args[0] if key_error.args else e).partition("\n")
        override = next((a for a in argv[1:] if a.startswith("-") and key.strip("'\"") in
                         re.split(r"[.=]", a.lstrip("-").split("=", 1)[0])), "a --config override")
        fail(f"{override}: the config has no key {key}" + (f"; {hint}" if hint else ""))
    _check_config_files(flag_values)
    return args


def _check_config_files(flag_values: flags.FlagValues) -> None:
    """ml_collections defers a missing ``--config`` file's error until the config is first read: raise it now."""
    from ml_collections.config_flags.config_flags import ConfigFileFlagParser

    for name in list(flag_values):
        flag = flag_values[name]
        if isinstance(flag.parser, ConfigFileFlagParser) and flag.value is not None:
            try:
                getattr(flag.value, "lock", None)
            except OSError as e:
                detail = str(e.__cause__ or e).strip().splitlines()[-1].strip()
                fail(f"--{name}: cannot load the config file: {detail}")


COMPILE_CACHE_ENV = "WSPARSE_COMPILE_CACHE"
COMPILE_CACHE_MAX_BYTES = 4 << 30  # least recently used entries are evicted beyond this


def compile_cache_dir(environ: Any = None) -> str | None:
    """Where entry points keep XLA's persistent compilation cache: ``$WSPARSE_COMPILE_CACHE`` (``off`` or empty:
    none), else ``$XDG_CACHE_HOME/wsparse/xla`` (``~/.cache/wsparse/xla``). None also when JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` is set: that choice stands (the test suite sets it)."""
    env = os.environ if environ is None else environ
    if env.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    d = env.get(COMPILE_CACHE_ENV)
    if d is None:
        d = os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "wsparse", "xla")
    if d.strip().lower() in ("", "off", "0", "none"):
        return None
    return os.path.abspath(os.path.expanduser(d))


def enable_compile_cache() -> str | None:
    """Turns on XLA's persistent compilation cache in :func:`compile_cache_dir` and returns the directory.

    A new process that compiles a program an earlier one compiled (the same HLO, shapes, options, device and jax
    version: JAX's cache key) loads the executable instead of compiling it again, with bit-identical results: the
    second ``experiments.prune`` of a run, a sweep's seeds, a report after training. Every compilation is cached,
    however short (an entry point compiles hundreds of small programs); the directory is capped at
    :data:`COMPILE_CACHE_MAX_BYTES`."""
    d = compile_cache_dir()
    if d is None:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", d)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_MAX_BYTES)
    return d


def run(main: Callable[[list[str]], Any]) -> None:
    """``app.run(main)``, with user errors and command-line mistakes reported as one line and exit status 2, and
    XLA's persistent compilation cache on (:func:`enable_compile_cache`)."""
    enable_compile_cache()
    app.run(reporting(main), flags_parser=parse_flags)
