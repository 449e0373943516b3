"""wsparse: weight-sparse transformers on Python code and the circuits they use.

``wsparse.load_run(workdir)`` is the entry point of every stage after training.

Importing the package sets glibc's malloc to keep the memory XLA:CPU frees between calls (:mod:`wsparse.host_memory`;
``WSPARSE_KEEP_HEAP=0`` leaves malloc alone). Import it before the first JAX computation for that to reach XLA's
threads.
"""

from wsparse import host_memory as _host_memory

KEEPS_HEAP = _host_memory.keep_freed_memory()


def load_run(workdir: str, step: int | None = None):
    """Config, parameters and tokenizer of a trained run (see :func:`wsparse.runs.load_run`)."""
    from wsparse.runs import load_run as _load_run

    return _load_run(workdir, step)
