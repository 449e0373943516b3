"""Control-flow tasks: which keyword opened the line decides the next token."""

from __future__ import annotations

import random

from wsparse.tasks import context as C
from wsparse.tasks.base import Pair, Task
from wsparse.tasks.variables import NL_COLON

_INDEX = ("i", "j", "k", "n", "idx", "pos")


def for_while(rng: random.Random, split: str) -> Pair:
    """``for x`` -> `` in``; ``while x`` -> ``:\\n``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    x, i = rng.choice(p.names), C.ind(depth)
    body = f"{i}{C.IND}{C.statement(rng, p, comment=False)}\n"
    return Pair(C.join(head, f"{i}for {x}"), C.join(head, f"{i}while {x}"), " in", NL_COLON,
                f" {C.var(rng, p)}:\n{body}", body)


def else_elif(rng: random.Random, split: str) -> Pair:
    """After an ``if x ...:`` block: ``else`` -> ``:\\n``; ``elif`` -> `` x`` (the condition tests x again)."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=0, hi=3)
    x, i = rng.choice(p.names), C.ind(depth)
    block = [f"{i}if {C.cond(rng, p, x)}:"] + C.lines(rng, p, depth + 1, 1, 2)
    if rng.random() < 0.3:
        block += [f"{i}elif {C.cond(rng, p, x)}:"] + C.lines(rng, p, depth + 1, 1, 1)
    body = f"{i}{C.IND}{C.statement(rng, p, comment=False)}\n"
    return Pair(C.join(head + block, f"{i}else"), C.join(head + block, f"{i}elif"), NL_COLON, " " + x,
                body, f" > {C.num(rng, p)}:\n{body}")


def if_ternary(rng: random.Random, split: str) -> Pair:
    """``if cond`` -> ``:\\n``; ``y = a if cond`` -> `` else``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    i, c = C.ind(depth), C.cond(rng, p, rng.choice(p.names))
    value = rng.choice([C.num(rng, p), rng.choice(p.names), "None"])
    lhs = f"{rng.choice(p.names)} = " if depth == 0 or rng.random() < 0.7 else "return "
    return Pair(C.join(head, f"{i}if {c}"), C.join(head, f"{i}{lhs}{value} if {c}"), NL_COLON, " else",
                f"{i}{C.IND}{C.statement(rng, p, comment=False)}\n", f" {C.num(rng, p)}\n")


def indent_for(rng: random.Random, split: str) -> Pair:
    """The body of a ``for`` line is one level deeper than the ``for``: 4d+3 spaces (the regex leaves the 4th space
    to the next word). The positive's ``for`` sits inside the preceding block, the negative's after it."""
    p = C.pools(split)
    k = rng.randint(0, 1)
    head = C.opening(rng, p, k, lo=0, hi=2)
    opener = rng.choice([f"if {C.cond(rng, p)}:", f"for {C.var(rng, p)} in {C.var(rng, p)}:",
                         f"with open({C.var(rng, p)}) as {rng.choice(p.names)}:"])
    head += [C.ind(k) + opener] + C.lines(rng, p, k + 1, 1, 3)
    loop = f"for {rng.choice(p.names)} in {rng.choice([C.var(rng, p), f'range({C.num(rng, p)})'])}:\n"
    deep, shallow = " " * (4 * (k + 1) + 3), " " * (4 * k + 3)
    return Pair(C.join(head, C.ind(k + 1) + loop), C.join(head, C.ind(k) + loop), deep, shallow,
                " pass\n", " pass\n")


def enumerate_range(rng: random.Random, split: str) -> Pair:
    """``for i, x in`` -> `` enumerate``; ``for i in`` -> `` range``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    i, idx, x = C.ind(depth), rng.choice(_INDEX), rng.choice(p.names)
    body = f"{i}{C.IND}{C.statement(rng, p, comment=False)}\n"
    return Pair(C.join(head, f"{i}for {idx}, {x} in"), C.join(head, f"{i}for {idx} in"), " enumerate", " range",
                f"({C.var(rng, p)}):\n{body}", f"({C.num(rng, p)}):\n{body}")


def while_return_true(rng: random.Random, split: str) -> Pair:
    """Inside a function: ``while True`` -> ``:\\n``; ``return True`` -> end of line."""
    p = C.pools(split)
    depth = rng.randint(1, 2)
    head = C.opening(rng, p, depth, need_def=True, lo=1, hi=4)
    i = C.ind(depth)
    return Pair(C.join(head, f"{i}while True"), C.join(head, f"{i}return True"), NL_COLON, "\n",
                f"{i}{C.IND}break\n", "")


TASKS = (
    Task("for_while", for_while, (" in", NL_COLON), "'for x' continues with in, 'while x' with a colon"),
    Task("else_elif", else_elif, (NL_COLON,) + tuple(" " + n for n in C.all_names()),
         "'else' takes a colon, 'elif' a condition on the variable the if tested"),
    Task("if_ternary", if_ternary, (NL_COLON, " else"),
         "an if statement takes a colon, an if inside a conditional expression takes else"),
    Task("indent_for", indent_for, ("   ", "       ", "           "),
         "indent the body of a for loop one level deeper than the for"),
    Task("enumerate_range", enumerate_range, (" enumerate", " range"),
         "two loop variables call for enumerate, one for range"),
    Task("while_return_true", while_return_true, (NL_COLON, "\n"),
         "'while True' opens a block, 'return True' ends the line"),
)
