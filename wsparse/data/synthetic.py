"""A seeded generator of short, valid, everyday Python programs, for the "simple Python" part of the corpus.

It models the language broadly, never the evaluation tasks: imports, constants, functions (defaults, keyword
arguments, ``*args``, docstrings, decorators, generators), classes (``__init__``, methods, properties, dunders,
inheritance), if/elif/else, for/while loops over ranges, enumerate, zip and dict items, try/except/else/finally,
``with``, comprehensions, lambdas, ternaries, f-strings, slices, unpacking, the builtin types' methods, comparisons
(``==``, ``is``, ``in``, ``not in``, ``is not``, ...), returns and yields. Every name, word, number and string in a
program is drawn by frequency from a vocabulary mined from real Python source (``vocabulary.mine()``: the standard
library); the only words written here are Python's own. Every program is checked with ``ast.parse``; the output is a
pure function of (seed, vocabulary).
"""

from __future__ import annotations

import ast
import inspect
import os
import random
import re
from typing import Iterator

from wsparse.data import expressions as _expressions
from wsparse.data import lexicon as _lexicon
from wsparse.data import statements as _statements
from wsparse.data import vocabulary as _vocabulary
from wsparse.data.expressions import KINDS, TYPES, Scope
from wsparse.data.statements import Ctx, Gen, indent
from wsparse.data.vocabulary import Vocabulary

# Every module the generated text depends on: the data cache key hashes them all.
SOURCE_FILES = tuple(os.path.abspath(m.__file__) for m in (_vocabulary, _lexicon, _expressions, _statements)) + (
    os.path.abspath(__file__),)
# Special names the generator writes as syntax (besides the mined dunder methods).
SPECIAL = ("__init__", "__name__", "__main__")


def vocabulary() -> Vocabulary:
    """The default vocabulary (mined from the running interpreter's standard library once a process)."""
    return _vocabulary.mine()


def program(seed: int, vocab: Vocabulary | None = None) -> str:
    """One valid program; a pure function of ``seed`` and the vocabulary (by default the standard library's)."""
    lex = _lexicon.lexicon(vocab or vocabulary())
    src = _Program(random.Random(seed), lex).program()
    ast.parse(src)  # a generator bug must never reach the corpus silently
    return src


def programs(seed: int, start: int, n: int, vocab: Vocabulary | None = None) -> list[str]:
    """The programs for indices start..start+n-1 of the stream ``documents(seed, ...)`` yields."""
    vocab = vocab or vocabulary()
    return [program(seed * 1_000_003 + i, vocab) for i in range(start, start + n)]


def documents(seed: int, n_bytes: int, *, start: int = 0, vocab: Vocabulary | None = None) -> Iterator[str]:
    """Programs for seeds derived from (seed, i), i = start, start+1, ..., until ``n_bytes`` bytes are produced."""
    vocab = vocab or vocabulary()
    made = 0
    i = start
    while made < n_bytes:
        src = program(seed * 1_000_003 + i, vocab)
        made += len(src.encode())
        i += 1
        yield src


def language_words(vocab: Vocabulary | None = None) -> frozenset[str]:
    """Every word a program may contain that is not from the vocabulary: Python's keywords, builtins, the builtin
    types' methods, the parameters of print() and open(), special names, and the letters of literal syntax (the f of
    an f-string, the n of a newline escape, format specifications)."""
    lex = _lexicon.lexicon(vocab or vocabulary())
    syntax = " ".join(_expressions.SEPARATORS + _expressions.SPECS + SPECIAL) + " f"
    return frozenset(lex.language | set(inspect.signature(print).parameters) | set(inspect.signature(open).parameters)
                     | set(re.findall("[A-Za-z]+", syntax)))


class _Program(Gen):
    """Definitions (functions, classes) and whole programs on top of ``Gen``'s statements."""

    # --- definitions -------------------------------------------------------------------------------------------------
    def signature(self, sc: Scope, first: str | None, bare: bool = False) -> str:
        r, t = self.r, self.t
        n = 0 if bare else r.choice((0, 1, 1, 2, 2, 3, 4))
        names = [p for p in dict.fromkeys(t.param(r) for _ in range(n)) if p != first]
        self.params = names
        if bare:
            return first or ""
        n_default = r.randint(0, len(names)) if r.random() < 0.4 else 0
        parts = [first] if first else []
        for i, p in enumerate(names):
            sc[p] = "obj"
            ann = f": {r.choice(TYPES)}" if r.random() < 0.08 else ""
            parts.append(p + ann + (f"={self.literal(2)}" if i >= len(names) - n_default else ""))
        if r.random() < 0.1:
            for draw, kind in ((t.star_args, "list"), (t.star_kwargs, "dict")):
                s = draw(r) if draw and r.random() < 0.7 else ""
                if s and s.lstrip("*") not in sc:
                    sc[s.lstrip("*")] = kind
                    parts.append(s)
        elif r.random() < 0.05:
            kw = t.kwarg(r)
            if kw not in sc:
                sc[kw] = "obj"
                parts += ["*", f"{kw}={self.literal(2)}"]
        return ", ".join(parts)

    def docstring(self) -> list[str]:
        q = '"""'
        if self.r.random() < 0.7:
            return [f"{q}{self.prose(2, 10)}.{q}"]
        return [q + self.prose(2, 10) + ".", ""] + [self.prose(4, 12) + "." for _ in range(self.r.randint(1, 2))] + [q]

    def function(self, sc: Scope, method: str | None = None, name: str | None = None, bare: bool = False) -> list[str]:
        r = self.r
        fsc = Scope({method: "self"} if method else {})  # self (or cls), never a value of another kind
        name = name or self.t.function(r)
        aio = r.random() < 0.02
        gen = not aio and r.random() < 0.08
        kw = "async def" if aio else "def"
        head = [f"{kw} {name}({self.signature(fsc, method, bare)}):"]
        if r.random() < 0.05:
            head[0] = head[0][:-1] + f" -> {r.choice(TYPES + ('None',))}:"
        ctx = Ctx(func=True, gen=gen)
        body = self.docstring() if r.random() < 0.3 else []
        body += [ln[4:] for ln in self.block(fsc, ctx, 1, 1, 4)]
        if aio:
            body.append(f"await {self.call(fsc) if r.random() < 0.5 else self.method_call(fsc)}")
        if gen:
            x = self.t.loop_var(r)
            fsc[x] = "obj"
            body += [f"for {x} in {self.var(fsc, 'list')}:", f"    yield {self.expr(fsc, 1)}"] \
                if r.random() < 0.8 else [f"yield from {self.var(fsc, 'list')}"]
        else:
            u = r.random()
            if u < 0.55:
                body.append(f"return {self.expr(fsc)}")
            elif u < 0.7:
                body.append(f"return {r.choice(('None', 'True', 'False', self.literal(2), 'self' if method else '0'))}")
            elif u < 0.78:
                body.append(f"return {self.var(fsc)}, {self.var(fsc)}")
        return head + indent(body)

    def decorated(self, sc: Scope) -> list[str]:
        d = self.t.decorator(self.r)
        if "." in d:
            self.imports[d.split(".")[0]] = None
        if d.endswith("("):
            d += self.args(sc, 0, 1, 1) + ")"
        return ["@" + d]

    def klass(self, sc: Scope) -> list[str]:
        r, t = self.r, self.t
        name = t.klass(r)
        base = ""
        if r.random() < 0.4:
            base = f"({t.base(r) if t.base and r.random() < 0.8 else t.klass(r)})"
        out = self.decorated(sc) if r.random() < 0.05 else []
        out.append(f"class {name}{base}:")
        body = self.docstring() if r.random() < 0.3 else []
        for _ in range(r.choice((0, 0, 0, 1, 2))):
            body.append(f"{t.constant(r) if r.random() < 0.5 else t.attribute(r)} = {self.literal(1)}")
        csc = Scope({"self": "self"})
        methods = []
        if r.random() < 0.8:  # __init__ stores its arguments, maybe a few more attributes
            isc = Scope(csc)
            head = f"def __init__({self.signature(isc, 'self')}):"
            store = [f"self.{p} = {p}" for p in self.params]
            if r.random() < 0.11:  # as often as the standard library's __init__s store them out of order
                r.shuffle(store)
            if base and r.random() < 0.4:
                store.insert(0, "super().__init__()")
            if r.random() < 0.4:
                store.append(f"self.{t.attribute(r)} = {self.value(r.choice(KINDS), isc)}")
            if r.random() < 0.25 or not store:
                store += [ln[4:] for ln in self.block(isc, Ctx(), 1, 1, 2)]  # __init__ returns nothing
            methods.append([head] + indent(store))
        for _ in range(r.choice((0, 1, 1, 2, 3))):
            u = r.random()
            if u < 0.25 and t.dunder:
                d, n = t.dunder(r).split()  # a special method, with as many parameters as code gives it
                params = list(dict.fromkeys(t.param(r) for _ in range(int(n))))
                msc = Scope(csc, **{p: "obj" for p in params})
                methods.append([f"def {d}({', '.join(['self'] + params)}):", f"    return {self.expr(msc, 1)}"])
                continue
            dec = self.decorated(csc) if u < 0.4 else []
            first = "cls" if dec == ["@classmethod"] else None if dec == ["@staticmethod"] else "self"
            methods.append(dec + self.function(csc, first, bare=dec == ["@property"]))
        for m in methods:
            body += ([""] if body else []) + m
        self.classes.append(name)
        sc[name] = "cls"
        return out + indent(body)

    # --- programs ----------------------------------------------------------------------------------------------------
    def program(self) -> str:
        r, t = self.r, self.t
        sc = Scope()
        chunks: list[list[str]] = []
        if r.random() < 0.25:
            for _ in range(r.randint(1, 3)):
                c = t.constant(r)
                chunks.append([f"{c} = {self.literal(1)}"])
                sc[c] = "obj"
        for _ in range(r.randint(2, 6)):
            u = r.random()
            if u < 0.3:
                dec = self.decorated(sc) if r.random() < 0.08 else []
                chunks.append(dec + self.function(sc))
                self.functions.append(chunks[-1][len(dec)].split("def ")[1].split("(")[0])
            elif u < 0.5:
                chunks.append(self.klass(sc))
                if r.random() < 0.5:
                    obj = self.new_name()
                    chunks.append([f"{obj} = {self.classes[-1]}({self.args(sc, 0, 2, 1)})"])
                    sc[obj] = "obj"
            else:
                lines: list[str] = []
                for _ in range(r.randint(1, 4)):
                    lines += self.stmt(sc, Ctx(), 0)
                chunks.append(lines)
        if r.random() < 0.15:
            main = r.choice(self.functions) if self.functions else t.function(r)
            chunks.append([f"if __name__ == {self.q('__main__')}:", f"    {main}()"])
        if t.module and r.random() < 0.3:
            self.imports[t.module(r)] = None
        head = [f"import {m}" for m in self.imports]
        head += [f"from {m} import {', '.join(ns)}" for m, ns in self.froms.items()]
        out = (self.docstring() if r.random() < 0.2 else []) + head
        prev_defn = False
        for c in chunks:  # two blank lines around definitions, one after other indented blocks
            defn = c[0].startswith(("def ", "class ", "@", "async "))
            if out:
                out += [""] * (2 if defn or prev_defn else 1 if out[-1].startswith(" ") or out[-1] in head else 0)
            out += c
            prev_defn = defn
        return "\n".join(out) + "\n"
