"""Shared fixtures. Tests run on CPU; multi-device tests spawn subprocesses with fake CPU devices."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the suite: xdist workers and subprocesses reuse each other's compiled steps.
_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax_tests")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    """configs/tiny.py's data, prepared once per session (a few seconds): a `wsparse.data.Prepared`."""
    from configs.tiny import get_config
    from wsparse import config as C
    from wsparse import data

    cfg = dataclasses.replace(C.from_configdict(get_config()).data,
                              cache_dir=str(tmp_path_factory.mktemp("tiny_data")))
    return data.prepare(cfg, log=lambda _: None)


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """``native.available`` re-decided under the test's environment, with an empty build cache; restored after."""
    from wsparse import native

    monkeypatch.setenv("WSPARSE_NATIVE_CACHE", str(tmp_path))
    native.available.cache_clear()
    yield
    native.available.cache_clear()


# A process with N CPU devices (XLA_FLAGS must be set before jax is imported), and the names its code uses.
DEVICES_PREAMBLE = (
    "import os\n"
    "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count={n}'\n"
    "os.environ['JAX_PLATFORMS'] = 'cpu'\n"
    "import jax, jax.numpy as jnp, numpy as np\n"
    "from jax.sharding import NamedSharding, PartitionSpec as P\n")


@pytest.fixture
def run_python():
    """``run(code, devices=None)``: runs ``code`` in a fresh Python process from the repository root, with
    ``devices`` CPU devices (and jax, jnp, np, NamedSharding and P imported) if given; it must print ``ok`` last (for
    tests that need their own XLA flags or a process that may hang)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(code: str, devices: int | None = None) -> None:
        if devices:
            code = DEVICES_PREAMBLE.format(n=devices) + code
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False,
                              cwd=root)
        assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]

    return run


@pytest.fixture
def on_cpu_device():
    """Runs the test on the CPU device whatever the default backend (JAX always has one): wsparse's C++ kernels are
    CPU kernels, so their tests check them on GPU and TPU hosts too."""
    import jax

    with jax.default_device(jax.devices("cpu")[0]):
        yield
