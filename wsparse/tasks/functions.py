"""Function tasks: lambda vs def, and defaults in a signature."""

from __future__ import annotations

import random

from wsparse.tasks import context as C
from wsparse.tasks.base import Pair, Task

_DEFAULTS = ("None", "None", "0", "True", "False", '""', "[]")


def lambda_func(rng: random.Random, split: str) -> Pair:
    """``f = lambda x`` -> ``:`` (then the body on the same line); ``def x`` -> ``(``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    i, x = C.ind(depth), rng.choice(p.names)
    f = rng.choice([n for n in p.names if n != x])
    return Pair(C.join(head, f"{i}{f} = lambda {x}"), C.join(head, f"{i}def {x}"), ":", "(",
                f" {x} * {C.num(rng, p)}\n", f"):\n{i}{C.IND}pass\n")


def final_kwarg(rng: random.Random, split: str) -> Pair:
    """``def f(a, b=None, c`` -> ``=`` (after a default, every argument needs one); ``def f(a, b, c`` -> ``):\\n``."""
    p = C.pools(split)
    method = rng.random() < 0.4
    head = C.preamble(rng, p) + C.lines(rng, p, 0, 0, 2)
    if method:
        head += [f"class {rng.choice(p.classes)}:"]
    i = C.ind(int(method))
    args = rng.sample(p.names, rng.randint(2, 4))
    first = ["self"] if method else []
    plain = first + args[:-2] + [args[-2]]
    dflt = first + args[:-2] + [f"{args[-2]}={rng.choice(_DEFAULTS)}"]
    name = rng.choice(p.funcs)
    end = f"{i}{C.IND}return {args[-1]}\n"
    return Pair(C.join(head, f"{i}def {name}({', '.join(dflt)}, {args[-1]}"),
                C.join(head, f"{i}def {name}({', '.join(plain)}, {args[-1]}"), "=", "):\n",
                f"None):\n{end}", end)


TASKS = (
    Task("lambda_func", lambda_func, (":", "("), "after 'lambda x' comes a colon, after 'def x' a parenthesis"),
    Task("final_kwarg", final_kwarg, ("=", "):\n"),
         "once an argument has a default the last one needs one too; without defaults the signature can close"),
)
