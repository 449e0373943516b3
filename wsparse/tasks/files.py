"""File tasks: ``with open(...) as`` vs an assignment, and the mode implied by the path's name."""

from __future__ import annotations

import random

from wsparse.tasks import context as C
from wsparse.tasks.base import Pair, Task

# (read word, write word): the cue inside the path variable's name. The suffixes differ between splits.
_MODE_WORDS = (("input", "output"), ("in", "out"), ("src", "dst"), ("source", "dest"), ("read", "write"))
_SUFFIXES = C.carve({"train": ("path", "file", "csv", "json"), "test": ("fname", "filename", "txt", "log")})


def _open_distractor(rng: random.Random, p: C.Pools) -> str:
    f, path = rng.choice(p.names), C.var(rng, p)
    block = f"with open({path}) as {f}:\n{C.IND}{C.statement(rng, p, comment=False)}"
    return rng.choice([block, f"{f} = open({path})", f"{f}.close()"])


def with_as(rng: random.Random, split: str) -> Pair:
    """``with open(path`` -> ``)`` (` as f:` follows); ``f = open(path`` -> ``)\\n`` (the statement ends)."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4, extra=(_open_distractor,))
    i, f, path = C.ind(depth), rng.choice(p.names), C.var(rng, p)
    args = path + rng.choice(["", "", ", mode", ", encoding=enc"])
    return Pair(C.join(head, f"{i}with open({args}"), C.join(head, f"{i}{f} = open({args}"), ")", ")\n",
                f" as {f}:\n{i}{C.IND}{f}.read()\n", "")


def with_open(rng: random.Random, split: str) -> Pair:
    """``with open(input_path, '`` -> ``r``; ``with open(output_path, '`` -> ``w``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4, extra=(_open_distractor,))
    read, write = rng.choice(_MODE_WORDS)
    suffix, q = rng.choice(_SUFFIXES[split]), rng.choice("'\"")
    i, f = C.ind(depth), rng.choice(p.names)
    rest = f"{q}) as {f}:\n{i}{C.IND}{C.statement(rng, p, comment=False)}\n"
    pos = C.join(head, f"{i}with open({read}_{suffix}, {q}")
    neg = C.join(head, f"{i}with open({write}_{suffix}, {q}")
    return Pair(pos, neg, "r", "w", rest, rest)


TASKS = (
    Task("with_as", with_as, (")", ")\n"), "after 'with open(...' comes ') as', after 'f = open(...' the line ends"),
    Task("with_open", with_open, ("r", "w"), "open an input path for reading and an output path for writing"),
)
