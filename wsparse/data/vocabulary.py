"""Names and words for the synthetic generator, mined by frequency from real Python source.

Nothing here is a hand-written word list: every name, word, number, file name, module, decorator and exception the
generator writes comes from counting what real code uses, in the role it uses it in (a loop variable is mined from
``for NAME in``, a class name from ``class NAME``, a comment word from a comment, ...). The default source is the
running interpreter's own standard library (its top-level public modules, the part every installation of a Python
version ships), so the vocabulary is the same for the same Python version on every machine and needs no config.
The only lists written by hand are Python-language facts (keywords, builtins and module names, which are read from
the standard library itself, and the ``STRUCTURAL`` conventions below).
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import functools
import hashlib
import json
import keyword
import os
import re
import sys
import sysconfig
from typing import Iterable

# Python-language conventions the generator writes as syntax, not as words: a method's first parameter.
STRUCTURAL = ("self", "cls")
KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)
BUILTINS = frozenset(n for n in dir(builtins) if not n.startswith("_"))
MODULES = frozenset(n for n in sys.stdlib_module_names if not n.startswith("_"))
LANGUAGE = KEYWORDS | BUILTINS | frozenset(STRUCTURAL)

MAX_NAME = 20  # longer identifiers are rare in everyday code and cost many tokens
DEFAULT_BYTES = 3_000_000  # about two thirds of the top-level modules; mined in about a second

# Most patterns start with a literal, which the regex engine finds fast; strings are matched from their quote (a
# prefix letter left in the code is removed with the string).
_A = re.ASCII | re.M
_LEX = re.compile(r"(#[^\n]*)|("
                  r""""{3}[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"{3}|'{3}[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'{3}"""
                  r"""|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')""")
_PREFIX = re.compile(r'[rRbBuUfF]{1,2}""')
_TOKEN = re.compile(r"[A-Za-z_]\w*\(?|\d+(?:\.\d+)?\w*", re.ASCII)  # "(" kept: a call
_NUMBER = re.compile(r"\d{1,4}(?:\.\d{1,3})?")
_PIECE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
_ASSIGN = re.compile(r"\n[ \t]*([A-Za-z_]\w*)[ \t]+=(?!=)[ \t]*([^\n]{0,5})", _A)  # `a=b`: a keyword argument
_CONST = re.compile(r"\n([A-Z][A-Z0-9_]*)[ \t]*=(?!=)", _A)
_ATTR = re.compile(r"self\.([A-Za-z_]\w*)\b(?![ \t]*\()", _A)
_FOR = re.compile(r"for[ \t]+([\w, \t()]+?)[ \t]+in[ \t]+([^\n]*?):[ \t]*$", _A)
_DEF = re.compile(r"def[ \t]+(\w+)[ \t]*\(([^)]*)\)", _A)
_CLASS = re.compile(r"class[ \t]+(\w+)[ \t]*(?:\(([^)]*)\))?[ \t]*:", _A)
_DECOR = re.compile(r"@([A-Za-z_][\w.]*)(\()?", _A)
_IMPORT = re.compile(r"import[ \t]+([\w., \t]+)", _A)
_FROM = re.compile(r"from[ \t]+(\w[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]+)", _A)
_EXCEPT = re.compile(r"except[ \t]+\(?([\w., \t]+?)\)?(?:[ \t]+as[ \t]+(\w+))?[ \t]*:", _A)
_RAISE = re.compile(r"raise[ \t]+([A-Za-z_]\w*)", _A)
_WITH_AS = re.compile(r"with[ \t][^\n]*?[ \t]as[ \t]+(\w+)[ \t]*:", _A)
_WITH_CALL = re.compile(r"with[ \t]+([A-Za-z_][\w.]*)\(", _A)
_CALL = re.compile(r"(\w+)\.([A-Za-z_]\w*)\(", _A)
_DOTTED = re.compile(r"[a-z_][\w.]*\.\w+\(?", _A)
_KWARG = re.compile(r"[(,][ \t]*([A-Za-z_]\w*)=(?!=)", _A)
_OPEN_MODE = re.compile(r"""open\([^,()\n]+,[ \t]*(?:mode=)?['"]([rwabxt+]{1,3})['"]""", _A)
_WORD = re.compile(r"(?<![\w'.\\-])[A-Za-z]+(?![\w'-])", re.ASCII)
_ESCAPE = re.compile(r"\\.|\{[^{}]*\}|%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")
_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,15}", re.ASCII)
_EXTENSION = re.compile(r"\.[a-z][a-z0-9]{0,3}", re.ASCII)
# What an assignment's value starts with says what kind of value its name holds.
_KINDS = (("list", ("[", "list(")), ("dict", ("{}", "dict(", '{""')), ("set", ("set(",)),
          ("str", ('""', "str(")), ("bool", ("True", "False")), ("none", ("None",)), ("num", tuple("0123456789-")))


@dataclasses.dataclass(frozen=True)
class Pool:
    """Mined items, most frequent first (ties by name), with their counts."""

    items: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.items)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Everything the generator may write, each pool mined from one syntactic role. Picklable, so worker processes
    receive it instead of mining again."""

    words: Pool  # lowercase pieces of identifiers (snake_case and CamelCase parts)
    names: Pool  # whole variable names: assignment targets, parameters, loop variables
    kind_names: dict[str, Pool]  # assignment targets by the kind of value assigned: "list", "dict", "str", ...
    loop_vars: Pool  # `for NAME in ...`
    loop_pairs: Pool  # `for A, B in ...`, as "A B"
    iter_pairs: Pool  # `for A in B:` over a plain name, as "A B"
    functions: Pool  # `def NAME(`, public, not dunder
    dunders: Pool  # `def __NAME__(`, as "__NAME__ N" with N its number of parameters besides self
    params: Pool  # parameter names of functions (without self/cls)
    star_params: Pool  # `*NAME` and `**NAME` parameters, with their stars
    attributes: Pool  # `self.NAME` not called
    methods: Pool  # `.NAME(` calls on objects (not on modules)
    builtin_calls: Pool  # builtin functions called: `len(`, `isinstance(`, ...
    kwargs: Pool  # `NAME=` inside calls and signatures
    classes: Pool  # `class NAME`
    bases: Pool  # `class X(NAME)`
    decorators: Pool  # `@NAME` or `@NAME(` (kept with its parenthesis)
    modules: Pool  # imported standard-library modules
    from_imports: Pool  # `from M import N` as "M N"
    dotted: Pool  # `module.attr[.attr]` uses of standard-library modules, "(" appended when called
    exceptions: Pool  # builtin exceptions caught or raised
    except_names: Pool  # `except E as NAME`
    with_names: Pool  # `with ... as NAME`
    with_calls: Pool  # `with NAME(`: the context managers code opens, dotted ("os.scandir(")
    constants: Pool  # module-level `UPPER_CASE =`
    numbers: Pool  # numeric literals
    text: Pool  # words of comments and docstrings
    string_words: Pool  # words of one-line string literals
    string_values: Pool  # whole short word-like string literals ('utf-8', 'strict', ...)
    extensions: Pool  # string literals that are file extensions ('.py', ...)
    open_modes: Pool  # the mode argument of open()
    quotes: Pool  # the quote character of one-line string literals
    source: str  # what was mined, for the report
    digest: str  # sha256 of all of the above

    def pieces(self) -> frozenset[str]:
        """Every lowercase word piece of every mined item: what a program may contain besides language words."""
        out: set[str] = set()
        for f in dataclasses.fields(self):
            pools = getattr(self, f.name)
            for pool in pools.values() if isinstance(pools, dict) else [pools] if isinstance(pools, Pool) else []:
                for item in pool.items:
                    out.update(p.lower() for p in _PIECE.findall(item))
        return frozenset(out)


def _pool(counter: collections.Counter, min_count: int, top: int) -> Pool:
    ranked = sorted(((c, k) for k, c in counter.items() if c >= min_count), key=lambda t: (-t[0], t[1]))[:top]
    return Pool(tuple(k for _, k in ranked), tuple(c for c, _ in ranked))


def _is_name(s: str) -> bool:
    """A plausible public identifier: ASCII, not private or dunder, not a keyword or builtin, not too long."""
    return (s.isascii() and s.isidentifier() and not s.startswith("_") and len(s) <= MAX_NAME and s not in LANGUAGE)


def _is_var(s: str) -> bool:
    return _is_name(s) and not s[0].isupper()


def _split_params(sig: str) -> Iterable[str]:
    for p in sig.split(","):
        p = p.split("=")[0].split(":")[0].strip()
        if p and p not in ("*", "/"):
            yield p


def _prose(counter: collections.Counter, text: str) -> None:
    """Counts the words of prose, lowercased unless written with inner capitals (acronyms, CamelCase)."""
    for w, n in collections.Counter(_WORD.findall(_ESCAPE.sub(" ", text))).items():
        if len(w) <= MAX_NAME:
            counter[w if any(c.isupper() for c in w[1:]) else w.lower()] += n


_NOT_POOLS = frozenset({"kind_names", "source", "digest"})  # Vocabulary fields that are not word pools


def mine_texts(texts: Iterable[str], *, source: str = "texts", min_count: int = 2, top: int = 3000) -> Vocabulary:
    """Mines a vocabulary from Python source texts. Deterministic: the same texts give the same vocabulary.

    Names defined once (functions, classes, constants) are weighted by how often the name is used anywhere; every
    other pool counts its syntactic role. Items seen fewer than ``min_count`` times are dropped, as are all but the
    ``top`` most frequent of each pool.
    """
    C = collections.Counter
    c: dict[str, collections.Counter] = collections.defaultdict(C)
    code_parts, prose, literals = [], [], []
    for text in texts:
        parts = _LEX.split(text)
        code_parts.append('""'.join(parts[0::3]))
        prose += [s[1:] for s in parts[1::3] if s]
        for s in parts[2::3]:
            if s and s[:3] in ('"""', "'''"):
                prose.append(s[3:-3])
            elif s:
                literals.append(s[1:-1])
                c["quotes"][s[0]] += 1
        c["open_modes"].update(_OPEN_MODE.findall(text))
    code = _PREFIX.sub('""', "\n" + "\n".join(code_parts))
    _prose(c["text"], "\n".join(prose))
    _prose(c["string_words"], "\n".join(literals))
    for s in literals:
        if _EXTENSION.fullmatch(s):
            c["extensions"][s] += 1
        elif _VALUE.fullmatch(s):
            c["string_values"][s] += 1
    tokens = C(_TOKEN.findall(code))
    uses = C({t.rstrip("("): 0 for t in tokens})
    for tok, n in tokens.items():
        uses[tok.rstrip("(")] += n
    for tok, n in uses.items():
        if tok[0].isdigit():
            if _NUMBER.fullmatch(tok):
                c["numbers"][tok] += n
        elif tok not in KEYWORDS and tok not in STRUCTURAL and not tok.startswith("__"):
            for p in _PIECE.findall(tok):
                if 2 <= len(p) <= MAX_NAME and p.lower() not in keyword.kwlist:
                    c["words"][p.lower()] += n
    kinds: dict[str, collections.Counter] = {k: C() for k, _ in _KINDS}
    for name, value in _ASSIGN.findall(code):
        if _is_var(name):
            c["names"][name] += 1
            for kind, starts in _KINDS:
                if value.startswith(starts):
                    kinds[kind][name] += 1
                    break
    c["attributes"].update(a for a in _ATTR.findall(code) if _is_var(a))
    for target, it in _FOR.findall(code):
        tgt = [t for t in (t.strip("() \t") for t in target.split(",")) if t]
        if tgt and all(_is_var(t) for t in tgt):
            c["names"].update(tgt)
            if len(tgt) == 1:
                c["loop_vars"][tgt[0]] += 1
                if _is_var(it) and it != tgt[0]:
                    c["iter_pairs"][f"{tgt[0]} {it}"] += 1
            elif len(tgt) == 2:
                c["loop_pairs"][" ".join(tgt)] += 1
    defined: dict[str, set[str]] = collections.defaultdict(set)
    for name, sig in _DEF.findall(code):
        params = list(_split_params(sig))
        if name.startswith("__") and name.endswith("__") and name != "__init__":
            if params[:1] == ["self"] and all(_is_var(p) for p in params[1:]):
                c["dunders"][f"{name} {len(params) - 1}"] += 1
        elif _is_var(name):
            defined["functions"].add(name)
        for p in params:
            if p.startswith("*") and _is_var(p.lstrip("*")):
                c["star_params"][p] += 1
            elif _is_var(p):
                c["params"][p] += 1
                c["names"][p] += 1
    for name, bases in _CLASS.findall(code):
        if _is_name(name) and name[0].isupper():
            defined["classes"].add(name)
        c["bases"].update(b for b in map(str.strip, bases.split(",")) if b in BUILTINS or _is_name(b))
    defined["constants"] = {k for k in _CONST.findall(code) if _is_name(k) and len(k) > 1}
    for pool, names in defined.items():  # a function by how often it is called, a class or constant by its uses
        c[pool] = C({k: tokens[k + "("] if pool == "functions" else uses[k] for k in names})
    for name, call in _DECOR.findall(code):
        if name.split(".")[0] in BUILTINS or _is_name(name.split(".")[0]):
            c["decorators"][name + call] += 1
    for group in _IMPORT.findall(code):
        c["modules"].update(m.split()[0].split(".")[0] for m in group.split(",") if m.split())
    for mod, names in _FROM.findall(code):
        for n in names.strip("()").split(","):
            if mod.split(".")[0] in MODULES and n.split() and _is_name(n.split()[0]):
                c["from_imports"][f"{mod} {n.split()[0]}"] += 1
    c["modules"] = C({m: n for m, n in c["modules"].items() if m in MODULES})
    for dotted, n in C(_DOTTED.findall(code)).items():
        parts = dotted.rstrip("(").split(".")
        if parts[0] in c["modules"] and all(_is_name(p) for p in parts[1:]):
            c["dotted"][dotted] += n
    for group, name in _EXCEPT.findall(code):
        c["exceptions"].update(e.strip() for e in group.split(","))
        if _is_var(name):
            c["except_names"][name] += 1
    c["exceptions"].update(_RAISE.findall(code))
    c["exceptions"] = C({e: n for e, n in c["exceptions"].items() if e in BUILTINS and e[0].isupper()})
    c["with_names"].update(n for n in _WITH_AS.findall(code) if _is_var(n))
    for w in _WITH_CALL.findall(code):  # open() is written as syntax
        root, *rest = w.split(".")
        if w != "open" and (root in c["modules"] or root in BUILTINS or _is_name(root) or root in STRUCTURAL) \
                and not any(p.startswith("_") for p in rest):
            c["with_calls"][w] += 1
    c["methods"].update(m for obj, m in _CALL.findall(code)  # methods of objects, not functions of modules
                        if obj not in c["modules"] and not m.startswith("_") and len(m) <= MAX_NAME)
    c["builtin_calls"] = C({b: tokens[b + "("] - c["methods"][b] for b in BUILTINS if b.islower()})
    c["kwargs"].update(k for k in _KWARG.findall(code) if _is_var(k))
    fields = {f.name for f in dataclasses.fields(Vocabulary)} - _NOT_POOLS
    pools = {f: _pool(c[f], min_count, top) for f in sorted(fields)}
    kind_pools = {k: _pool(kinds[k], min_count, top) for k, _ in _KINDS}
    blob = json.dumps([source, {f: [p.items, p.counts] for f, p in pools.items()},
                       {k: [p.items, p.counts] for k, p in kind_pools.items()}], sort_keys=True)
    return Vocabulary(**pools, kind_names=kind_pools, source=source, digest=hashlib.sha256(blob.encode()).hexdigest())


def stdlib_files(root: str | None = None, max_bytes: int = DEFAULT_BYTES) -> list[str]:
    """The standard library's top-level public modules (``os.py``, ``argparse.py``, ...), in the order of a hash of
    their names (a spread across the alphabet, the same everywhere), while they fit in ``max_bytes``.

    Only top-level modules: they ship with every installation of a Python version, while distributions package some
    subdirectories (the test suite, tkinter, idlelib) separately, and installed packages (site-packages) differ from
    machine to machine. Private modules are skipped (``_sysconfigdata_*.py`` is generated for each build).
    """
    root = os.path.realpath(root or sysconfig.get_paths()["stdlib"])
    names = [n for n in os.listdir(root) if n.endswith(".py") and not n.startswith("_")]
    out, total = [], 0
    for name in sorted(names, key=lambda n: (hashlib.sha256(n.encode()).hexdigest(), n)):
        path = os.path.join(root, name)
        if os.path.isfile(path) and total + os.path.getsize(path) <= max_bytes:
            total += os.path.getsize(path)
            out.append(path)
    return out


@functools.lru_cache(maxsize=4)
def mine(root: str | None = None, max_bytes: int = DEFAULT_BYTES) -> Vocabulary:
    """The vocabulary of the standard library (or of the ``.py`` files directly in ``root``); mined once a process."""
    texts = []
    for path in stdlib_files(root, max_bytes):
        with open(path, "rb") as f:
            texts.append(f.read().decode("utf-8", "replace"))
    where = "stdlib" if root is None else os.path.basename(os.path.realpath(root))
    return mine_texts(texts, source=f"{where} of Python {sys.version_info[0]}.{sys.version_info[1]}, "
                                    f"{len(texts)} files")
