"""String tasks: which quote closes a string, and whether a print is an f-string."""

from __future__ import annotations

import random

from wsparse.tasks import context as C
from wsparse.tasks.base import Pair, Task


def _callee(rng: random.Random, p: C.Pools) -> str:
    return rng.choice(["print", "print", "logger.info", "log.warning", "self.emit", rng.choice(p.funcs)])


def single_double_quote(rng: random.Random, split: str) -> Pair:
    """``print("some words`` -> ``")``; ``print('some words`` -> ``')``. Earlier lines use both quote styles."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    call = _callee(rng, p)
    if rng.random() < 0.3:
        call = f"{C.var(rng, p)} = {rng.choice(p.funcs)}"
    text = C.words(rng, p, 1, 4)
    pre = C.ind(depth) + call
    return Pair(C.join(head, f'{pre}("{text}'), C.join(head, f"{pre}('{text}"), '")', "')", "\n", "\n")


def fstring_brace(rng: random.Random, split: str) -> Pair:
    """``print(f"words`` -> `` {`` (a placeholder); ``print("words`` -> ``",`` (pass the value as an argument)."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    v = C.var(rng, p)
    pre = C.ind(depth) + _callee(rng, p)
    text = C.words(rng, p, 1, 4)
    return Pair(C.join(head, f'{pre}(f"{text}'), C.join(head, f'{pre}("{text}'), " {", '",',
                f'{v}}}")\n', f" {v})\n")


TASKS = (
    Task("single_double_quote", single_double_quote, ('")', "')"),
         "close a string with the quote type that opened it"),
    Task("fstring_brace", fstring_brace, (" {", '",'),
         "inside an f-string open a {placeholder}; in a plain string close it and pass the value as an argument"),
)
