"""Variable tasks: remember a variable's type or name, and tell a comparison from an assignment."""

from __future__ import annotations

import random

from wsparse.tasks import context as C
from wsparse.tasks.base import Pair, Task

_INIT = "\0init\0"  # placeholder for the cue
NL_COLON = ":\n"  # a block-opening colon: the regex keeps the newline with it, so this is the real next token


def _set_or_string(rng: random.Random, split: str, fixed: str | None) -> Pair:
    """``x = set()`` vs ``x = ""``; later, on its own line, ``x`` -> ``.add`` vs `` +=``.

    Half the prompts also initialise a distractor variable with a random one of the two types, so the model must
    bind the type to the right name rather than to the last initialiser it saw.
    """
    p = C.pools(split)
    depth = rng.randint(0, 1)
    head = C.opening(rng, p, depth, lo=0, hi=2)
    x = fixed or rng.choice(p.names)
    other = rng.choice([n for n in p.names if n != x])
    item = rng.choice([n for n in p.names if n not in (x, other)])
    empty = rng.choice(['""', "''"])
    inits = [f"{x} = {_INIT}"]
    if rng.random() < 0.5:
        inits.insert(rng.randint(0, 1), f"{other} = {rng.choice(['set()', empty])}")
    body = [C.ind(depth) + s for s in inits] + C.lines(rng, p, depth, 0, 2)
    inner = depth
    if rng.random() < 0.7:
        body.append(C.ind(depth) + f"for {item} in {C.var(rng, p)}:")
        inner = depth + 1
        body += C.lines(rng, p, inner, 0, 1)
    else:
        body.append(C.ind(depth) + f"{item} = {rng.choice(p.funcs)}({C.var(rng, p)})")
    text = C.join(head + body, C.ind(inner) + x)
    return Pair(text.replace(_INIT, "set()"), text.replace(_INIT, empty), ".add", " +=",
                f"({item})\n", f" {item}\n")


def set_or_string(rng: random.Random, split: str) -> Pair:
    return _set_or_string(rng, split, None)


def set_or_string_fixedvarname(rng: random.Random, split: str) -> Pair:
    return _set_or_string(rng, split, "current")


def class_init(rng: random.Random, split: str) -> Pair:
    """In ``__init__(self, a, b, c)``, ``self.b =`` -> `` b``; ``self.c =`` -> `` c``. Some args are already stored."""
    p = C.pools(split)
    args = rng.sample(p.names, rng.randint(2, 4))
    x, y = rng.sample(args, 2)
    done = [a for a in args if a not in (x, y) and rng.random() < 0.6]
    head = C.preamble(rng, p) + [f"class {rng.choice(p.classes)}:"]
    if rng.random() < 0.4:
        head.append(f'{C.IND}"""{C.words(rng, p, 2, 5)}."""')
    head.append(f"{C.IND}def __init__(self, {', '.join(args)}):")
    body = [f"super().__init__()"] if rng.random() < 0.2 else []
    body += [f"self.{a} = {a}" for a in done]
    if rng.random() < 0.5:
        body.insert(rng.randint(0, len(body)), f"self.{C.var(rng, p)} = {rng.choice(['None', '[]', '0', '{}'])}")
    head += [C.IND * 2 + s for s in body]
    return Pair(C.join(head, f"{C.IND * 2}self.{x} ="), C.join(head, f"{C.IND * 2}self.{y} ="),
                " " + x, " " + y, "\n", "\n")


def var_swap(rng: random.Random, split: str) -> Pair:
    """``a, b = b,`` -> `` a``; ``c, b = b,`` -> `` c``: finish a swap by copying the first name."""
    p = C.pools(split)
    depth = rng.randint(0, 1)
    a, b, c = rng.sample(p.names, 3)
    head = C.opening(rng, p, depth, lo=0, hi=2)
    defs = [f"{n} = {rng.choice([C.num(rng, p), C.string(rng, p), C.var(rng, p)])}" for n in (a, b, c)]
    rng.shuffle(defs)
    body = [C.ind(depth) + s for s in defs] + C.lines(rng, p, depth, 0, 2)
    return Pair(C.join(head + body, C.ind(depth) + f"{a}, {b} = {b},"),
                C.join(head + body, C.ind(depth) + f"{c}, {b} = {b},"), " " + a, " " + c, "\n", "\n")


def if_equals(rng: random.Random, split: str) -> Pair:
    """``if x`` -> `` ==``; ``x`` at the start of a statement -> `` =``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    x, n = rng.choice(p.names), C.num(rng, p)
    i = C.ind(depth)
    return Pair(C.join(head, f"{i}if {x}"), C.join(head, f"{i}{x}"), " ==", " =",
                f" {n}:\n{i}{C.IND}pass\n", f" {n}\n")


def var_if(rng: random.Random, split: str) -> Pair:
    """``if x == True`` -> ``:\\n``; ``x = True`` -> end of line (``\\n``). Also with ``False``."""
    p = C.pools(split)
    depth = rng.randint(0, 2)
    head = C.opening(rng, p, depth, lo=1, hi=4)
    x, b = rng.choice(p.names), rng.choice(["True", "False"])
    i = C.ind(depth)
    return Pair(C.join(head, f"{i}if {x} == {b}"), C.join(head, f"{i}{x} = {b}"), NL_COLON, "\n",
                f"{i}{C.IND}pass\n", "")


TASKS = (
    Task("set_or_string", set_or_string, (".add", " +="),
         "a variable initialised as set() continues with .add, one initialised as a string with +="),
    Task("set_or_string_fixedvarname", set_or_string_fixedvarname, (".add", " +="),
         "set_or_string with the variable always named current"),
    Task("class_init", class_init, tuple(" " + n for n in C.all_names()),
         "copy the right argument name in self.x = x inside __init__"),
    Task("var_swap", var_swap, tuple(" " + n for n in C.all_names()),
         "complete the swap x, y = y, x with the first name"),
    Task("if_equals", if_equals, (" ==", " ="), "after 'if x' comes ==, after a statement-initial x comes ="),
    Task("var_if", var_if, (NL_COLON, "\n"), "'if x == True' opens a block, 'x = True' ends the line"),
)
