"""Frequency-weighted samplers over a mined ``Vocabulary``, with the Python-language facts the generator needs.

Each pool is sampled with probability proportional to count**ALPHA: frequent names come often, and the long tail
still appears. An empty pool (a vocabulary mined from little source) falls back to another mined pool, never to a
word written here. The builtin types' methods, and how many arguments each takes, are read from Python itself.
"""

from __future__ import annotations

import bisect
import builtins
import inspect
import io
import itertools
import re
from typing import Sequence

from wsparse.data.vocabulary import BUILTINS, LANGUAGE, MAX_NAME, MODULES, Pool, Vocabulary

ALPHA = 0.7  # < 1 flattens the head of the frequency distribution: more distinct names, a long tail


class Draw:
    """Draws an item with probability proportional to count**ALPHA. ``draw(r)`` needs only ``r.random()``."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items: Sequence[str], counts: Sequence[float], alpha: float = ALPHA) -> None:
        self.items = tuple(items)
        self.cum = tuple(itertools.accumulate(c ** alpha for c in counts))
        self.total = self.cum[-1] if self.cum else 0.0

    @classmethod
    def of(cls, pool: Pool, keep=None, alpha: float = ALPHA) -> "Draw":
        pairs = [(i, c) for i, c in zip(pool.items, pool.counts) if keep is None or keep(i)]
        return cls([i for i, _ in pairs], [c for _, c in pairs], alpha)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __call__(self, r) -> str:
        return self.items[bisect.bisect_right(self.cum, r.random() * self.total)]

    def map(self, fn) -> "Draw":
        """The same weights over ``fn(item)``."""
        d = Draw((), ())
        d.items, d.cum, d.total = tuple(map(fn, self.items)), self.cum, self.total
        return d

    def __repr__(self) -> str:
        return f"Draw({len(self.items)} items)"


def _first(*draws: Draw) -> Draw:
    """The first non-empty sampler: a pool's fallback is another mined pool."""
    for d in draws:
        if d:
            return d
    raise ValueError("the vocabulary has no words: mine it from more source text")


def _usage(args: str) -> tuple[int, int]:
    """(required, total) positional arguments of a docstring's usage line: ``object, name[, default]`` is (2, 3);
    ``*args`` counts as two optional ones, what follows it or a bare ``*`` as none (keyword-only)."""
    req = opt = depth = 0
    keyword_only = False  # after `*` or `*args`
    for tok in re.findall(r"\[|\]|[^,\[\]]+", args):
        item = tok.strip()
        if tok in "[]":
            depth += 1 if tok == "[" else -1
        elif item.startswith("*"):
            opt += 2 * (item[1:].isidentifier() and not keyword_only)
            keyword_only = True
        elif "=" in item and not keyword_only:
            opt += 1
        elif item.isidentifier() and not keyword_only:
            req, opt = (req, opt + 1) if depth else (req + 1, opt)
    return req, req + opt


def _positional(fn, instance=None) -> tuple[int, int]:
    """(required, total) positional arguments of a builtin function or method: from its signature, else from the
    usage line of its docstring (``getattr(object, name[, default]) -> value``), else, for a method, by calling it on
    an empty ``instance`` with no argument and with one (a TypeError says that count is wrong)."""
    try:
        ps = inspect.signature(fn).parameters.values()
        pos = [p for p in ps if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        req = sum(p.default is p.empty for p in pos)
        return req, len(pos) + 2 * any(p.kind == p.VAR_POSITIONAL for p in ps)
    except (TypeError, ValueError):
        pass
    m = re.match(r"\s*(?:\w+\.)?\w+\(([^)]*)\)", fn.__doc__ or "")
    if m:
        return _usage(m.group(1))
    if instance is None:
        return 1, 1
    ok = []
    for args in ((), (instance(),)):
        try:
            getattr(instance(), fn.__name__)(*args)
            ok.append(True)
        except TypeError:
            ok.append(False)
        except Exception:  # noqa: BLE001 - any other error (an empty set's pop) means the call was accepted
            ok.append(True)
    return (0, int(ok[1])) if ok[0] else (1, 1)


def _type_methods(t: type, mined: Pool) -> tuple[Draw, dict[str, tuple[int, int]]]:
    """A builtin type's public methods, weighted by how often code calls them, and their positional arities."""
    names = {n for n in dir(t) if not n.startswith("_") and callable(getattr(t, n))}
    arity = {}
    for n in names:
        arity[n] = _positional(getattr(t, n), t)
    counts = dict(zip(mined.items, mined.counts))
    used = sorted(n for n in names if counts.get(n))
    if not used:  # nothing mined: all methods, equally likely
        return Draw(sorted(names), [1] * len(names)), arity
    return Draw(used, [counts[n] for n in used]), arity


class Lexicon:
    """Everything the generator samples, built once per vocabulary."""

    def __init__(self, v: Vocabulary) -> None:
        var = lambda s: len(s) <= MAX_NAME  # noqa: E731
        self.digest = v.digest
        self.word = _first(Draw.of(v.words, lambda w: w.isalpha() and len(w) <= 12))
        self.name = _first(Draw.of(v.names, var), self.word)
        self.kind = {k: _first(Draw.of(p), self.name) for k, p in v.kind_names.items()}
        self.loop_var = _first(Draw.of(v.loop_vars), self.name)
        self.loop_pair = Draw.of(v.loop_pairs)
        self.iter_pair = Draw.of(v.iter_pairs)
        self.function = _first(Draw.of(v.functions), self.word)
        self.dunder = Draw.of(v.dunders)
        self.param = _first(Draw.of(v.params), self.name)
        self.star_args = Draw.of(v.star_params, lambda s: not s.startswith("**"))
        self.star_kwargs = Draw.of(v.star_params, lambda s: s.startswith("**"))
        self.attribute = _first(Draw.of(v.attributes), self.name)
        self.method = _first(Draw.of(v.methods, lambda m: m.isidentifier()), self.function)
        self.kwarg = _first(Draw.of(v.kwargs), self.param)
        self.klass = _first(Draw.of(v.classes), self.word.map(str.capitalize))
        self.base = Draw.of(v.bases)
        self.decorator = _first(Draw.of(v.decorators), Draw(["property", "staticmethod", "classmethod"], [1, 1, 1]))
        self.module = Draw.of(v.modules, lambda m: m in MODULES)
        self.from_import = Draw.of(v.from_imports)
        self.dotted_call = Draw.of(v.dotted, lambda d: d.endswith("("))
        self.dotted_value = Draw.of(v.dotted, lambda d: not d.endswith("("))
        exc = sorted(n for n in BUILTINS if isinstance(getattr(builtins, n), type)
                     and issubclass(getattr(builtins, n), Exception) and n[0].isupper())
        self.exception = _first(Draw.of(v.exceptions), Draw(exc, [1] * len(exc)))
        self.except_name = _first(Draw.of(v.except_names), self.name)
        self.with_name = _first(Draw.of(v.with_names), self.name)
        self.with_call = Draw.of(v.with_calls)
        self.constant = _first(Draw.of(v.constants), self.word.map(str.upper))
        self.number = Draw.of(v.numbers)
        self.int = Draw.of(v.numbers, str.isdigit)
        self.text = _first(Draw.of(v.text, str.isalpha), self.word)
        self.string_word = _first(Draw.of(v.string_words, str.isalpha), self.text)
        self.string_value = _first(Draw.of(v.string_values), self.word)
        self.extension = Draw.of(v.extensions)
        self.open_mode = _first(Draw.of(v.open_modes), Draw(["r", "w"], [1, 1]))  # open()'s own default and "w"
        self.quote = _first(Draw.of(v.quotes, alpha=1.0), Draw(['"', "'"], [1, 1]))
        calls = Draw.of(v.builtin_calls, lambda b: callable(getattr(builtins, b, None)) and b != "super")
        self.builtin_call = _first(calls, Draw(["len", "print"], [1, 1]))
        self.builtin_arity = {b: _positional(getattr(builtins, b)) for b in self.builtin_call.items}
        self.type_methods = {k: _type_methods(t, v.methods)
                             for k, t in (("list", list), ("dict", dict), ("set", set), ("str", str))}
        self.type_methods["file"] = _type_methods(io.TextIOWrapper, v.methods)
        # The words the generator may write that are not mined: Python's own (keywords and builtins are in LANGUAGE).
        methods = {n for d, _ in self.type_methods.values() for n in d.items}
        self.language = LANGUAGE | methods | set(self.open_mode.items)


_CACHE: dict[str, Lexicon] = {}


def lexicon(v: Vocabulary) -> Lexicon:
    """The samplers for ``v``, built once per process and vocabulary."""
    lex = _CACHE.get(v.digest)
    if lex is None:
        lex = _CACHE[v.digest] = Lexicon(v)
    return lex
