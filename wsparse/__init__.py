"""wsparse: weight-sparse transformers on Python code and the circuits they use.

``wsparse.load_run(workdir)`` is the entry point of every stage after training.
"""


def load_run(workdir: str, step: int | None = None):
    """Config, parameters and tokenizer of a trained run (see :func:`wsparse.runs.load_run`)."""
    from wsparse.runs import load_run as _load_run

    return _load_run(workdir, step)
