"""wsparse.host_memory: with the package imported, a compiled CPU program's large temporary buffer comes back from
the heap already mapped, so repeated calls fault in (almost) no pages; WSPARSE_KEEP_HEAP=0 leaves glibc's default,
under which every call faults the whole buffer in again."""

import pytest

from wsparse import host_memory

# The fault counts below are glibc malloc's behaviour, and so is the setting: on macOS or musl there is nothing to set,
# and test_does_nothing_without_glibc checks that keep_freed_memory() then leaves malloc alone.
needs_glibc = pytest.mark.skipif(not host_memory.is_glibc(),
                                 reason="not glibc: no mallopt setting to measure (test_does_nothing_without_glibc)")

CODE = """
import os
os.environ["WSPARSE_KEEP_HEAP"] = "{keep}"
os.environ["JAX_PLATFORMS"] = "cpu"
import resource, time
import wsparse, jax, jax.numpy as jnp

assert wsparse.KEEPS_HEAP == ({keep} == 1), wsparse.KEEPS_HEAP
# two 64 MiB intermediates that XLA cannot fuse away (each scan reads the other's result): its temporary buffer is
# far over glibc's largest mmap threshold (32 MiB)
f = jax.jit(lambda x: jnp.cumsum(jnp.cumsum(x, axis=0) * 1.5, axis=1).sum())
x = jnp.ones((4096, 4096), jnp.float32)
def call():
    f(x).block_until_ready()
    time.sleep(0.1)  # XLA frees a call's buffer just after its result is ready: let it, before the next call

# the first calls still grow the heap: small blocks allocated meanwhile split the freed buffer's space
for _ in range(8):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    call()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
pages = 2 * 4096 * 4096 * 4 / resource.getpagesize()
assert ({keep} == 1 and faults < 0.05 * pages) or ({keep} == 0 and faults > 0.4 * pages), (faults, pages)
print("ok")
"""


@needs_glibc
@pytest.mark.parametrize("keep", [1, 0])
def test_large_temporary_buffer_faults_in_once(run_python, keep):
    run_python(CODE.format(keep=keep))


@needs_glibc
def test_importing_after_a_computation_warns(run_python):
    run_python("""
import os, warnings
os.environ["JAX_PLATFORMS"] = "cpu"
import jax.numpy as jnp
jnp.ones(3).block_until_ready()  # XLA:CPU's threads exist now
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import wsparse
assert wsparse.KEEPS_HEAP and any("imported after JAX's first computation" in str(w.message) for w in caught), caught
print("ok")
""")


def test_left_alone_where_jax_will_use_an_accelerator(run_python):
    run_python("""
import os
os.environ["JAX_PLATFORMS"] = "cuda"  # nothing is computed: only the import's choice is checked
import wsparse
from wsparse import host_memory
assert not wsparse.KEEPS_HEAP and host_memory.accelerator_expected()
os.environ["JAX_PLATFORMS"] = "cpu"
assert not host_memory.accelerator_expected()
print("ok")
""")


def test_does_nothing_without_glibc(monkeypatch):
    called = []
    monkeypatch.setattr(host_memory, "is_glibc", lambda: False)
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda *a: called.append(a))
    monkeypatch.delenv("WSPARSE_KEEP_HEAP", raising=False)
    assert host_memory.keep_freed_memory() is False and not called
