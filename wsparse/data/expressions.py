"""Expressions, literals and names for the synthetic generator (see ``synthetic``).

Every name and word comes from the ``Lexicon`` (mined by frequency); what is written here is Python syntax only.
Relative frequencies of the forms follow everyday code loosely: names, constants, attributes and calls dominate.
"""

from __future__ import annotations

import random

from wsparse.data.lexicon import Lexicon
from wsparse.data.vocabulary import MAX_NAME

# Python syntax, not words.
BINOPS = ("+", "+", "-", "*", "/", "//", "%")
ORDER = ("<", ">", "<=", ">=")
SEPARATORS = ("", " ", ", ", "\\n", ":", "/", ".", "-")
SPECS = ("!r", "!r", ":.2f", ":d", ":>8", "!s", ":x")
TYPES = ("int", "str", "list", "dict", "tuple", "bool", "float", "bytes", "set")
# Labels of what a name in scope holds (never written into a program).
KINDS = ("list", "dict", "set", "str", "num", "bool", "none")
METHOD_KINDS = ("list", "dict", "set", "str", "file")  # the kinds whose builtin methods a call may use


class Scope(dict):
    """Names defined so far -> the kind of value each holds ("list", "str", "obj", ...; "self" for self and cls)."""

    def of(self, *kinds: str) -> list[str]:
        return [n for n, k in self.items() if k in kinds]


class Exprs:
    """Expression-level generation; ``Gen`` adds statements on top."""

    def __init__(self, r: random.Random, lex: Lexicon) -> None:
        self.r, self.t = r, lex
        self.imports: dict[str, None] = {}  # modules to import, in order of first use
        self.froms: dict[str, dict[str, None]] = {}  # module -> names
        self.functions: list[str] = []  # defined in this program
        self.classes: list[str] = []

    # --- words -------------------------------------------------------------------------------------------------------
    def pick(self, draw) -> str:
        return draw(self.r)

    def compose(self) -> str:
        """A new snake_case name of two frequent identifier pieces."""
        a, b = self.t.word(self.r), self.t.word(self.r)
        return f"{a}_{b}" if len(a) + len(b) < MAX_NAME and a != b else a

    def new_name(self, kind: str | None = None) -> str:
        u = self.r.random()
        if kind in self.t.kind and u < 0.5:
            return self.t.kind[kind](self.r)
        return self.t.name(self.r) if u < 0.88 else self.compose()

    def var(self, sc: Scope, *kinds: str) -> str:
        """An existing name (of one of ``kinds`` when there is one), else a new one."""
        names = sc.of(*kinds) if kinds else [n for n, k in sc.items() if k != "self"]
        if not names and kinds:
            names = [n for n, k in sc.items() if k != "self"]
        if names and self.r.random() < 0.9:
            return self.r.choice(names)
        return self.new_name(kinds[0] if kinds else None)

    def sentence(self, draw, lo: int = 1, hi: int = 5) -> str:
        return " ".join(draw(self.r) for _ in range(self.r.randint(lo, hi)))

    def prose(self, lo: int = 3, hi: int = 12) -> str:
        s = self.sentence(self.t.text, lo, hi)
        return s[0].upper() + s[1:]

    # --- literals ----------------------------------------------------------------------------------------------------
    def q(self, s: str) -> str:
        c = self.t.quote(self.r)
        return c + s + c

    def num(self) -> str:
        return self.t.number(self.r) if self.t.number else str(self.r.randint(0, 9))

    def integer(self) -> str:
        return self.t.int(self.r) if self.t.int else str(self.r.randint(0, 9))

    def filename(self) -> str:
        stem = self.t.name(self.r) if self.r.random() < 0.7 else self.t.word(self.r)
        return stem + (self.t.extension(self.r) if self.t.extension else "")

    def text(self) -> str:
        u = self.r.random()
        if u < 0.45:
            return self.sentence(self.t.string_word, 1, 5)
        if u < 0.8:
            return self.t.string_value(self.r)
        if u < 0.9:
            return self.filename()
        return self.r.choice(SEPARATORS)

    def string(self) -> str:
        return self.q(self.text())

    def literal(self, d: int = 0) -> str:
        u = self.r.random()
        if u < 0.32:
            return self.num() if self.r.random() < 0.9 else "-" + self.num()
        if u < 0.7:
            return self.string()
        if u < 0.82 or d >= 2:
            return self.r.choice(("None", "True", "False"))
        if u < 0.9:
            return "[" + ", ".join(self.literal(d + 1) for _ in range(self.r.randint(0, 4))) + "]"
        if u < 0.95:
            items = [f"{self.string()}: {self.literal(d + 1)}" for _ in range(self.r.randint(0, 3))]
            return "{" + ", ".join(items) + "}"
        items = [self.literal(d + 1) for _ in range(self.r.randint(1, 3))]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    def table(self, lo: int = 2) -> str:
        """Rows of equal width: ``[(1, 'a'), (2, 'b')]``, ``[[0, 1], [1, 0]]``."""
        r = self.r
        o, c = r.choice((("(", ")"), ("[", "]")))
        width = r.randint(2, 3)
        rows = [o + ", ".join(self.literal(2) for _ in range(width)) + c for _ in range(r.randint(lo, 3))]
        return "[" + ", ".join(rows) + "]"

    def value(self, kind: str, sc: Scope) -> str:
        """A value of ``kind`` for an assignment: the shapes real code starts collections and counters with."""
        r = self.r
        if kind == "list":
            return r.choice(("[]", "[]", self.literal(0), "list()", self.table(),
                             "[" + ", ".join(self.atom(sc) for _ in range(r.randint(1, 3))) + "]"))
        if kind == "dict":
            return r.choice(("{}", "{}", "dict()", "{" + f"{self.string()}: {self.atom(sc)}" + "}",
                             "{" + ", ".join(f"{self.string()}: {self.table(1)}" for _ in range(r.randint(1, 2)))
                             + "}"))
        if kind == "set":
            return r.choice(("set()", "set()", "{" + ", ".join(self.atom(sc) for _ in range(r.randint(1, 3))) + "}"))
        if kind == "str":
            return r.choice((self.string(), self.q(""), self.fstring(sc), f"str({self.atom(sc)})"))
        if kind == "num":
            return r.choice(("0", self.num(), self.num(), f"len({self.var(sc, 'list', 'str', 'dict')})"))
        if kind == "bool":
            return r.choice(("True", "False"))
        if kind == "none":
            return "None"
        return self.expr(sc)

    # --- expressions -------------------------------------------------------------------------------------------------
    def atom(self, sc: Scope) -> str:
        u = self.r.random()
        if u < 0.03 and "self" in sc:
            return "self"
        return self.var(sc) if sc and u < 0.6 else self.literal(2)

    def args(self, sc: Scope, lo: int, hi: int, d: int) -> str:
        parts = [self.expr(sc, d + 1) for _ in range(self.r.randint(lo, hi))]
        if self.r.random() < 0.12:
            parts.append(f"{self.t.kwarg(self.r)}={self.expr(sc, d + 1)}")
        elif self.r.random() < 0.03 and sc:
            parts.append(f"*{self.var(sc, 'list')}")
        return ", ".join(parts)

    def call(self, sc: Scope, d: int = 0) -> str:
        r, t = self.r, self.t
        u = r.random()
        if u < 0.35:
            b = t.builtin_call(r)
            lo, hi = t.builtin_arity[b]
            return f"{b}({self.args(sc, lo, min(hi, lo + 1), d)})"
        if u < 0.5 and self.functions:
            return f"{r.choice(self.functions)}({self.args(sc, 0, 2, d)})"
        if u < 0.6 and self.classes:
            return f"{r.choice(self.classes)}({self.args(sc, 0, 2, d)})"
        if u < 0.75 and t.dotted_call:
            dotted = t.dotted_call(r)
            self.imports[dotted.split(".")[0]] = None
            return f"{dotted}{self.args(sc, 0, 2, d)})"
        if u < 0.82 and t.from_import:
            mod, name = t.from_import(r).split()
            self.froms.setdefault(mod, {})[name] = None
            return f"{name}({self.args(sc, 0, 2, d)})"
        return f"{t.function(r)}({self.args(sc, 0, 2, d)})"

    def method_call(self, sc: Scope, d: int = 0) -> str:
        """``obj.method(...)``, with a builtin type's own methods on a variable of that type."""
        r = self.r
        kinds = [k for k in METHOD_KINDS if sc.of(k)]
        if kinds and r.random() < 0.75:
            kind = r.choice(kinds)
            draw, arity = self.t.type_methods[kind]
            m = draw(r)
            lo, hi = arity[m]
            obj = r.choice(sc.of(kind))
            if kind == "str" and r.random() < 0.25:
                obj = self.q(r.choice(SEPARATORS))
            return f"{obj}.{m}({self.args(sc, lo, min(hi, lo + 1), d)})"
        obj = self.var(sc, "obj") if r.random() < 0.8 else "self" if "self" in sc else self.t.name(r)
        return f"{obj}.{self.t.method(r)}({self.args(sc, 0, 2, d)})"

    def attr(self, sc: Scope) -> str:
        if "self" in sc and self.r.random() < 0.6:
            return f"self.{self.t.attribute(self.r)}"
        if self.t.dotted_value and self.r.random() < 0.2:
            dotted = self.t.dotted_value(self.r)
            self.imports[dotted.split(".")[0]] = None
            return dotted
        return f"{self.var(sc, 'obj')}.{self.t.attribute(self.r)}"

    def subscript(self, sc: Scope) -> str:
        r = self.r
        u = r.random()
        if u < 0.35 and sc.of("dict"):
            return f"{r.choice(sc.of('dict'))}[{self.string() if r.random() < 0.6 else self.var(sc, 'str')}]"
        seq = self.var(sc, "list", "str")
        if u < 0.6:
            return f"{seq}[{r.choice(('0', '0', '1', '-1', self.var(sc, 'num')))}]"
        a = r.choice(("1", "2", "", "-1", self.var(sc, "num")))
        b = r.choice(("", "-1", self.integer(), self.var(sc, "num")))
        if r.random() < 0.15:
            return f"{seq}[{a}:{b}:{r.choice(('2', '-1'))}]" if r.random() < 0.5 else f"{seq}[::-1]"
        return f"{seq}[{a}:{b}]"

    def fstring(self, sc: Scope) -> str:
        parts = []
        for _ in range(self.r.randint(1, 3)):
            parts.append(self.sentence(self.t.string_word, 1, 3))
            u = self.r.random()
            if u < 0.8:
                inner = self.var(sc) if u < 0.55 or "self" not in sc else f"self.{self.t.attribute(self.r)}"
                if u > 0.7:
                    inner = f"len({self.var(sc, 'list', 'str')})"
                spec = self.r.choice(SPECS) if self.r.random() < 0.15 else ""
                parts.append("{" + inner + spec + "}")
        sep = self.r.choice((" ", " ", ": ", "="))
        return "f" + self.q(sep.join(parts))

    def compare(self, sc: Scope, d: int = 0) -> str:
        r = self.r
        a = self.var(sc)
        u = r.random()
        if u < 0.18:
            return f"{a} {r.choice(('==', '!='))} {self.literal(2)}"
        if u < 0.32:
            return f"{a} {r.choice(ORDER)} {self.num() if r.random() < 0.7 else self.var(sc, 'num')}"
        if u < 0.44:
            return f"{a} {r.choice(('is', 'is not'))} None"
        if u < 0.58:
            return f"{a if r.random() < 0.6 else self.string()} {r.choice(('in', 'not in'))} " \
                   f"{self.var(sc, 'list', 'dict', 'set', 'str')}"
        if u < 0.66:
            return f"not {a}"
        if u < 0.72:
            return a
        if u < 0.8:
            return f"isinstance({a}, {r.choice(TYPES) if r.random() < 0.8 else self.t.klass(r)})"
        if u < 0.86:
            return f"len({self.var(sc, 'list', 'str')}) {r.choice(ORDER + ('==',))} {self.integer()}"
        if u < 0.9:
            return f"{self.integer()} <= {a} < {self.integer()}"
        if u < 0.93:
            return f"{a} is {self.var(sc)}" if r.random() < 0.5 else f"{a} is not {self.var(sc)}"
        if d < 1:
            return f"{self.compare(sc, d + 1)} {r.choice(('and', 'or'))} {self.compare(sc, d + 1)}"
        return f"{a} == {self.var(sc)}"

    def lambda_(self, sc: Scope) -> str:
        names = list(dict.fromkeys(self.t.param(self.r) for _ in range(self.r.randint(1, 2))))
        inner = Scope(sc)
        inner.update({n: "obj" for n in names})
        body = self.r.choice((names[0], f"{names[0]}[{self.r.choice(('0', '1', '-1'))}]",
                              f"{names[0]}.{self.t.attribute(self.r)}", self.expr(inner, 2),
                              f"{names[0]} {self.r.choice(BINOPS)} {self.atom(inner)}"))
        return f"lambda {', '.join(names)}: {body}"

    def comprehension(self, sc: Scope) -> str:
        r = self.r
        x = self.t.loop_var(r)
        inner = Scope(sc)
        inner[x] = "obj"
        src = self.var(sc, "list", "set", "str") if r.random() < 0.8 else f"range({self.integer()})"
        head = f"for {x} in {src}"
        u = r.random()
        if u < 0.2 and sc.of("dict"):
            k, v = self._pair()
            inner.update({k: "str", v: "obj"})
            head = f"for {k}, {v} in {r.choice(sc.of('dict'))}.items()"
            x = v
        cond = f" if {self.compare(inner, 1)}" if r.random() < 0.35 else ""
        body = r.choice((x, x, self.expr(inner, 2), f"{x}.{self.t.attribute(r)}",
                         f"{x} {r.choice(BINOPS)} {self.num()}"))
        if u < 0.55:
            return f"[{body} {head}{cond}]"
        if u < 0.7:
            return f"{{{x}: {self.expr(inner, 2)} {head}{cond}}}"
        if u < 0.8:
            return f"{{{body} {head}{cond}}}"
        return f"{r.choice(('sum', 'any', 'all', 'list', 'tuple', 'max', 'min', 'set', 'sorted'))}({body} {head}{cond})"

    def _pair(self) -> tuple[str, str]:
        if self.t.loop_pair and self.r.random() < 0.8:
            a, b = self.t.loop_pair(self.r).split()
            if a != b:
                return a, b
        a, b = self.t.loop_var(self.r), self.new_name()
        return (a, b) if a != b else (a, b + "2")

    def primary(self, sc: Scope, d: int = 0) -> str:
        """An operand that binds tighter than any operator: a name, literal, call, attribute or subscript."""
        u = self.r.random()
        if d >= 2 or u < 0.45:
            return self.atom(sc)
        if u < 0.65:
            return self.call(sc, d)
        if u < 0.8:
            return self.method_call(sc, d)
        if u < 0.9:
            return self.attr(sc)
        return self.subscript(sc)

    def expr(self, sc: Scope, d: int = 0) -> str:
        r = self.r
        u = r.random()
        if d >= 2 or u < 0.3:
            return self.atom(sc)
        if u < 0.45:
            return self.call(sc, d)
        if u < 0.57:
            return self.method_call(sc, d)
        if u < 0.64:
            return self.attr(sc)
        if u < 0.71:
            return f"{self.primary(sc, d + 1)} {r.choice(BINOPS)} {self.primary(sc, d + 1)}"
        if u < 0.77:
            return self.subscript(sc)
        if u < 0.81:
            return self.compare(sc, d)
        if u < 0.85:
            return self.comprehension(sc)
        if u < 0.88:
            return self.fstring(sc)
        if u < 0.91:
            return f"{self.primary(sc, d + 1)} if {self.compare(sc, 1)} else {self.primary(sc, d + 1)}"
        if u < 0.93:
            return self.lambda_(sc)
        if u < 0.95:
            return f"{self.var(sc)} {r.choice(('or', 'and'))} {self.literal(2)}"
        if u < 0.97:
            return f"{self.q(self.sentence(self.t.string_word, 1, 3) + ' %s')} % {self.var(sc)}"
        return f"({self.expr(sc, d + 1)}, {self.expr(sc, d + 1)})"
