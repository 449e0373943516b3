"""Bracket tasks: how deep a list literal is nested, and whether a literal is a dict or a list."""

from __future__ import annotations

import random

from wsparse.tasks import context as C
from wsparse.tasks.base import Pair, Task


def _items(rng: random.Random, p: C.Pools, lo: int, hi: int) -> str:
    """Comma-separated numbers or names (never strings: a quote would merge with the closing bracket)."""
    pick = rng.choice([lambda: C.num(rng, p), lambda: rng.choice(p.names)])
    return ", ".join(pick() for _ in range(rng.randint(lo, hi)))


def bracket_counting(rng: random.Random, split: str) -> Pair:
    """Depth 2 -> ``]]``, depth 1 -> ``]``. Either ``[[a, b`` vs ``[a, b``, or ``[[a], [b`` vs ``[[a], b``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=3)
    pre = C.ind(depth) + f"{C.var(rng, p)} = "
    if rng.random() < 0.5:
        items = _items(rng, p, 1, 4)
        pos, neg = f"{pre}[[{items}", f"{pre}[{items}"
    else:
        first, rest = _items(rng, p, 1, 3), _items(rng, p, 1, 3)
        pos, neg = f"{pre}[[{first}], [{rest}", f"{pre}[[{first}], {rest}"
    return Pair(C.join(head, pos), C.join(head, neg), "]]", "]", "\n", "\n")


def bracket_brace(rng: random.Random, split: str) -> Pair:
    """``x = {"key`` -> ``":`` (a dict key); ``x = ["key`` -> ``",`` (a list item). Only the bracket differs."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    pre = C.ind(depth) + rng.choice([f"{C.var(rng, p)} = ", f"{C.var(rng, p)} = {rng.choice(p.funcs)}(",
                                      f"{C.var(rng, p)}.append("])
    close = ")" if pre.endswith("(") else ""
    key = rng.choice(p.words)
    return Pair(C.join(head, pre + '{"' + key), C.join(head, pre + '["' + key), '":', '",',
                f" {C.num(rng, p)}}}{close}\n", f' "{rng.choice(p.words)}"]{close}\n')


TASKS = (
    Task("bracket_counting", bracket_counting, ("]]", "]"),
         "close a list literal with ] or ]] according to its nesting depth"),
    Task("bracket_brace", bracket_brace, ('":', '",'),
         "after a string inside a dict literal comes ':', inside a list literal ','"),
)
