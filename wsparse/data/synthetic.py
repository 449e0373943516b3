"""A seeded generator of short, valid, "simple Python" programs.

The paper's small models train on a simple, repetitive-idioms corpus; ours is tiny and trains for minutes, so it learns
everyday idioms (quotes, brackets, `self.x = x`, `with open(..) as f`, f-strings, ternaries, ...) from this component.
It models the language, not the tasks: it shares no code or pools with ``wsparse.tasks``. Every program is checked with
``ast.parse``; the output is a pure function of the seed.
"""

from __future__ import annotations

import ast
import random
from typing import Callable, Iterator

_NOUNS = (
    "item", "value", "name", "count", "total", "price", "score", "word", "line", "row", "node", "user", "key", "path",
    "size", "index", "result", "record", "entry", "data", "token", "label", "text", "number", "point", "city", "color",
    "animal", "book", "order", "task", "event", "message", "step", "level", "weight", "age", "title", "amount", "file",
    "student", "grade", "page", "box", "car", "fruit", "shape", "queue", "stack", "batch", "chunk", "field", "block",
    # A broad everyday vocabulary: a model that sees many names learns rules about names, not about these few words.
    "speed", "image", "owner", "cache", "status", "length", "depth", "mode", "port", "host", "url", "query", "request",
    "response", "option", "flag", "buffer", "offset", "limit", "width", "height", "source", "target", "parent", "child",
    "group", "model", "layer", "cell", "grid", "frame", "sample", "signal", "channel", "packet", "header", "content",
    "payload", "state", "phase", "stage", "answer", "guess", "letter", "digit", "char", "pixel", "position",
    "distance", "angle", "radius", "area", "volume", "rate", "ratio", "balance", "cost", "salary", "budget", "stock",
    "product", "customer", "client", "server", "session", "account", "profile", "member", "player", "team", "game",
    "move", "board", "card", "deck", "coin", "reward", "delay", "duration", "date", "year", "month", "day", "hour",
    "minute", "counter", "average", "threshold", "goal", "rank", "priority", "factor", "unit", "column", "table",
    "folder", "suffix", "prefix", "pattern", "sentence", "document", "section", "note", "comment", "tag", "category",
    "kind", "email", "phone", "address", "country", "region", "zone", "location", "origin", "route", "edge", "tree",
    "leaf", "root", "branch", "element", "handler", "callback", "action", "job", "worker", "thread", "process", "lock",
    "author", "reader", "writer", "photo", "video", "song", "force", "energy", "power", "temperature", "health",
    "damage", "ticket", "invoice", "vehicle", "sensor", "reading", "measure", "version", "release", "build",
)
_ADJS = ("max", "min", "new", "old", "last", "first", "next", "best", "raw", "clean", "big", "small", "good", "bad",
         "sorted", "unique", "total", "current", "final", "valid", "temp", "extra", "short", "long")
_VERBS = ("get", "make", "load", "save", "parse", "build", "find", "check", "update", "compute", "read", "write",
          "count", "clean", "format", "process", "add", "remove", "merge", "split", "collect", "filter", "show",
          "send", "sum", "scale", "convert", "validate", "render", "print", "fetch", "emit", "resolve", "transform",
          "handle", "apply", "encode", "decode", "store", "register", "create", "delete", "reset", "start", "stop",
          "run", "draw", "track", "sort", "group", "match", "notify", "publish", "refresh")
_CLASSES = ("Point", "Account", "Student", "Counter", "Inventory", "Node", "Graph", "Robot", "Timer", "Library",
            "Player", "Shape", "Vector", "Parser", "Buffer", "Report", "Garden", "Queue", "Recipe", "Ticket")
_WORDS = ("hello", "world", "apple", "banana", "red", "blue", "green", "done", "error", "ok", "yes", "no", "cat", "dog",
          "spam", "eggs", "alpha", "beta", "north", "south", "small", "large", "on", "off", "start", "stop", "open",
          "closed", "high", "low", "Monday", "Friday", "Paris", "Tokyo", "python", "code", "test", "empty", "full",
          # Everyday message and comment words: strings and comments in real code use a wide English vocabulary.
          "connecting", "connected", "stopped", "skipped", "created", "deleted", "saved", "loaded", "busy", "idle",
          "active", "disabled", "enabled", "success", "failure", "please", "wait", "try", "again", "new", "old", "not",
          "is", "the", "a", "of", "for", "to", "in", "at", "from", "with", "and", "or", "value", "result", "file",
          "line", "row", "user", "name", "item", "step", "server", "client", "request", "response", "reply", "ready",
          "loading", "saving", "reading", "writing", "sending", "receiving", "received", "sent", "waiting", "pending",
          "running", "finished", "complete", "completed", "failed", "invalid", "valid", "missing", "found", "unknown",
          "updated", "removed", "added", "changed", "parsed", "checking", "checked", "opening", "closing", "starting",
          "stopping", "retry", "retrying", "timeout", "warning", "debug", "info", "fatal", "critical", "ignored",
          "model", "cell", "query", "packet", "record", "entry", "table", "page", "image", "message", "event", "job",
          "task", "queue", "cache", "config", "setting", "option", "input", "output", "total", "count", "size", "time",
          "date", "day", "week", "year", "left", "right", "up", "down", "first", "last", "next", "previous", "best",
          "worst", "good", "bad", "fast", "slow", "hot", "cold", "big", "tiny", "long", "short", "true", "false",
          "none", "all", "any", "some", "many", "more", "less", "most", "each", "every", "other", "same", "different",
          "here", "there", "now", "later", "today", "soon", "never", "always", "maybe", "please", "thanks", "sorry",
          "welcome", "goodbye", "login", "logout", "password", "account", "order", "payment", "price", "cost",
          "shipping", "delivered", "cancelled", "approved", "rejected", "accepted", "denied", "allowed", "blocked",
          "locked", "unlocked", "visible", "hidden", "selected", "current", "default", "custom", "local", "remote",
          "online", "offline", "upload", "download", "backup", "restore", "install", "upgrade", "version", "build")
_FILES = ("data.txt", "notes.txt", "log.txt", "input.txt", "output.txt", "names.csv", "scores.csv", "config.json",
          "report.md", "words.txt", "results.txt", "todo.txt", "cache.dat", "items.csv")
_READ_PATHS = ("input_path", "in_path", "src_path", "source_file", "read_path", "infile_name", "data_path")
_WRITE_PATHS = ("output_path", "out_path", "dest_path", "target_file", "write_path", "report_path", "save_path")
_WORKLISTS = ("stack", "queue", "todo", "pending", "frontier", "jobs", "items_left", "work")
_SHORT = ("i", "j", "k", "n", "x", "y", "a", "b", "s", "t")
_TYPES = ("int", "str", "list", "set", "dict", "bool", "float")


class _Scope:
    """Names defined so far, with their rough type, so generated code uses each name plausibly."""

    def __init__(self) -> None:
        self.vars: dict[str, str] = {}

    def of(self, kind: str) -> list[str]:
        return [n for n, k in self.vars.items() if k == kind]


class _Gen:
    """Builds one program as a list of lines; every method returns lines without leading indentation."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    # --- atoms -------------------------------------------------------------------------------------------------------
    def q(self, s: str) -> str:
        """A string literal in a random quote style."""
        return f'"{s}"' if self.r.random() < 0.55 else f"'{s}'"

    def word(self) -> str:
        return self.r.choice(_WORDS)

    def name(self) -> str:
        r = self.r.random()
        if r < 0.5:
            return self.r.choice(_NOUNS)
        if r < 0.8:
            return f"{self.r.choice(_ADJS)}_{self.r.choice(_NOUNS)}"
        if r < 0.9:
            return self.r.choice(_NOUNS) + "s"
        return self.r.choice(_SHORT)

    def fname(self) -> str:
        return f"{self.r.choice(_VERBS)}_{self.r.choice(_NOUNS)}" if self.r.random() < 0.8 else self.r.choice(_VERBS)

    def num(self) -> str:
        r = self.r.random()
        if r < 0.6:
            return str(self.r.randint(0, 10))
        if r < 0.85:
            return str(self.r.randint(11, 1000))
        return f"{self.r.randint(0, 99)}.{self.r.randint(0, 99)}"

    def literal(self, depth: int = 0) -> str:
        r = self.r.random()
        if r < 0.35:
            return self.num()
        if r < 0.65:
            return self.q(self.word())
        if r < 0.72:
            return self.r.choice(("True", "False", "None"))
        if depth < 2 and r < 0.85:
            return self.list_lit(depth + 1)
        if depth < 2 and r < 0.93:
            return self.dict_lit(depth + 1)
        return self.num()

    def list_lit(self, depth: int = 0) -> str:
        n = self.r.randint(0, 4)
        if depth < 2 and self.r.random() < 0.3:
            return "[" + ", ".join(self.list_lit(depth + 1) for _ in range(max(n, 1))) + "]"
        return "[" + ", ".join(self.literal(depth + 1) for _ in range(n)) + "]"

    def dict_lit(self, depth: int = 0) -> str:
        n = self.r.randint(0, 4)
        return "{" + ", ".join(f"{self.q(self.word())}: {self.literal(depth + 1)}" for _ in range(n)) + "}"

    def set_lit(self) -> str:
        n = self.r.randint(1, 4)
        return "{" + ", ".join(self.q(self.word()) if self.r.random() < 0.5 else self.num() for _ in range(n)) + "}"

    def expr(self, sc: _Scope) -> str:
        names = list(sc.vars)
        r = self.r.random()
        if names and r < 0.35:
            return self.r.choice(names)
        if names and r < 0.55:
            a = self.r.choice(names)
            return f"{a} {self.r.choice(('+', '-', '*', '//', '%'))} {self.num()}"
        if names and r < 0.65:
            return f"len({self.r.choice(names)})"
        if r < 0.72:
            return f"{self.fname()}({', '.join(self.r.choice(names or ['x']) for _ in range(self.r.randint(0, 2)))})"
        return self.literal()

    def cond(self, sc: _Scope) -> str:
        names = list(sc.vars) or [self.name()]
        a = self.r.choice(names)
        r = self.r.random()
        if r < 0.25:
            return f"{a} == {self.literal(2)}"
        if r < 0.4:
            return f"{a} != {self.num()}"
        if r < 0.55:
            return f"{a} {self.r.choice(('<', '>', '<=', '>='))} {self.num()}"
        if r < 0.65:
            return f"{a} in {self.r.choice(names)}"
        if r < 0.72:
            return f"not {a}"
        if r < 0.8:
            return f"{a} is None"
        if r < 0.88:
            return f"{a} == True" if self.r.random() < 0.5 else f"{a} == False"
        if r < 0.94:
            return f"isinstance({a}, {self.r.choice(_TYPES)})"
        return f"{self.cond(sc)} and {a} > {self.num()}"

    def compare(self, a: str) -> str:
        """``a`` against a value: the tests an if/elif chain makes of one variable."""
        op = self.r.choice(("==", "==", "!=", "<", ">", "<=", ">="))
        return f"{a} {op} {self.literal(2) if op in ('==', '!=') else self.num()}"

    def sentence(self) -> str:
        """A few words, as in a message string."""
        return " ".join(self.r.choice(_WORDS) for _ in range(self.r.randint(1, 4)))

    def fstring(self, sc: _Scope) -> str:
        parts = []
        for _ in range(self.r.randint(1, 3)):
            parts.append(self.sentence())
            if sc.vars and self.r.random() < 0.85:
                v = self.r.choice(list(sc.vars))
                parts.append("{" + v + (self.r.choice((":.2f", "!r", "")) if self.r.random() < 0.2 else "") + "}")
        body = " ".join(parts)
        return f'f"{body}"' if self.r.random() < 0.6 else f"f'{body}'"

    # --- statements --------------------------------------------------------------------------------------------------
    def block(self, sc: _Scope, depth: int, n: int | None = None, loop: bool = False) -> list[str]:
        n = n if n is not None else self.r.randint(1, 3)
        out: list[str] = []
        for _ in range(n):
            out += self.stmt(sc, depth, loop)
        return [("    " + ln) if ln else ln for ln in out] or ["    pass"]

    def stmt(self, sc: _Scope, depth: int, loop: bool = False) -> list[str]:
        simple: list[Callable[[_Scope], list[str]]] = [
            self.assign, self.assign, self.string_build, self.set_build, self.print_stmt, self.print_stmt,
            self.ternary, self.swap, self.aug, self.call_stmt, self.flag,
        ]
        compound: list[Callable[[_Scope, int], list[str]]] = [
            self.if_stmt, self.if_stmt, self.for_stmt, self.for_stmt, self.while_stmt, self.with_stmt,
            self.try_stmt, self.comprehension_block,
        ]
        if loop and self.r.random() < 0.08:
            return [self.r.choice(("break", "continue"))]
        if depth < 3 and self.r.random() < 0.35:
            return self.r.choice(compound)(sc, depth + 1)
        return self.r.choice(simple)(sc)

    def assign(self, sc: _Scope) -> list[str]:
        v = self.name()
        kind, val = self.r.choice((
            ("int", self.num()), ("str", self.q(self.word())), ("list", self.list_lit()), ("dict", self.dict_lit()),
            ("set", self.set_lit()), ("list", "[]"), ("dict", "{}"), ("set", "set()"), ("str", '""'), ("str", "''"),
            ("int", "0"), ("bool", "True"), ("bool", "False"), ("int", self.expr(sc)),
        ))
        sc.vars[v] = kind
        return [f"{v} = {val}"]

    def string_build(self, sc: _Scope) -> list[str]:
        v = self.r.choice(sc.of("str") or [self.r.choice(("text", "out", "msg", "line", "result", "buf"))])
        out = [] if v in sc.vars else [f"{v} = {self.q('')}"]
        sc.vars[v] = "str"
        for _ in range(self.r.randint(1, 3)):
            r = self.r.random()
            if r < 0.4:
                out.append(f"{v} += {self.q(self.word())}")
            elif r < 0.7:
                out.append(f"{v} += {self.fstring(sc)}")
            elif r < 0.85:
                out.append(f"{v} = {v} + {self.q(' ' + self.word())}")
            else:
                out.append(f"{v} += str({self.expr(sc)})")
        return out

    def set_build(self, sc: _Scope) -> list[str]:
        v = self.r.choice(sc.of("set") or [self.r.choice(("seen", "visited", "tags", "names", "keys", "found"))])
        out = [] if v in sc.vars else [f"{v} = set()"]
        sc.vars[v] = "set"
        for _ in range(self.r.randint(1, 3)):
            r = self.r.random()
            item = self.r.choice(list(sc.vars)) if self.r.random() < 0.5 else self.literal(2)
            if r < 0.6:
                out.append(f"{v}.add({item})")
            elif r < 0.8:
                out.append(f"{v}.discard({item})")
            else:
                out.append(f"{v}.update({self.list_lit(1)})")
        return out

    def print_stmt(self, sc: _Scope) -> list[str]:
        r = self.r.random()
        call = self.r.choice(("print", "print", "print", "logging.info", "log.debug", "warn"))
        if r < 0.3:
            return [f"{call}({self.q(self.sentence())})"]
        if r < 0.6:
            return [f"{call}({self.fstring(sc)})"]
        if r < 0.85 and sc.vars:
            msg = self.sentence() + self.r.choice(("", "", ":", " ="))
            return [f"{call}({self.q(msg)}, {self.r.choice(list(sc.vars))})"]
        return [f"print({self.expr(sc)})"]

    def ternary(self, sc: _Scope) -> list[str]:
        v = self.name()
        line = f"{v} = {self.literal(2)} if {self.cond(sc)} else {self.literal(2)}"
        sc.vars[v] = "int"
        return [line]

    def swap(self, sc: _Scope) -> list[str]:
        names = list(sc.vars)
        if len(names) < 2:
            a, b = self.r.sample(_SHORT, 2)
            return [f"{a}, {b} = {self.num()}, {self.num()}", f"{a}, {b} = {b}, {a}"]
        a, b = self.r.sample(names, 2)
        if self.r.random() < 0.2:  # the Fibonacci-style update
            return [f"{a}, {b} = {b}, {a} + {b}"]
        return [f"{a}, {b} = {b}, {a}"]

    def aug(self, sc: _Scope) -> list[str]:
        v = self.r.choice(sc.of("int") or ["total"])
        pre = [] if v in sc.vars else [f"{v} = 0"]
        sc.vars[v] = "int"
        return pre + [f"{v} {self.r.choice(('+=', '-=', '*='))} {self.r.choice(sc.of('int') + [self.num()])}"]

    def call_stmt(self, sc: _Scope) -> list[str]:
        lst = sc.of("list")
        if lst and self.r.random() < 0.6:
            return [f"{self.r.choice(lst)}.append({self.expr(sc)})"]
        d = sc.of("dict")
        if d and self.r.random() < 0.6:
            return [f"{self.r.choice(d)}[{self.q(self.word())}] = {self.expr(sc)}"]
        return [f"{self.fname()}({self.expr(sc)})"]

    def flag(self, sc: _Scope) -> list[str]:
        v = self.r.choice(("found", "done", "ready", "running", "ok", "valid", "active", "changed"))
        sc.vars[v] = "bool"
        return [f"{v} = {self.r.choice(('True', 'False'))}"]

    def if_stmt(self, sc: _Scope, depth: int) -> list[str]:
        if self.r.random() < 0.15:  # truthiness: `if items:`, `if not line:`
            return [f"if {self.r.choice(('', 'not '))}{self.r.choice(list(sc.vars) or [self.name()])}:"] + \
                self.block(sc, depth)
        # An elif chain usually keeps testing the variable the if tested: `if x < 0: .. elif x == 0: .. else:`.
        subject = self.r.choice(list(sc.vars) or [self.name()]) if self.r.random() < 0.6 else None
        test = (lambda: self.compare(subject)) if subject else (lambda: self.cond(sc))
        out = [f"if {test()}:"] + self.block(sc, depth)
        for _ in range(self.r.choice((0, 0, 1, 1, 2))):
            out += [f"elif {test()}:"] + self.block(sc, depth)
        if self.r.random() < 0.6:
            out += ["else:"] + self.block(sc, depth)
        return out

    def for_stmt(self, sc: _Scope, depth: int) -> list[str]:
        r = self.r.random()
        seqs = sc.of("list") + sc.of("str") + sc.of("set")
        seq = self.r.choice(seqs) if seqs else self.list_lit(1)
        if r < 0.3:
            v = self.r.choice(("i", "j", "k", "n", "step", "idx"))
            head = f"for {v} in range({self.r.choice((self.num(), f'len({seq})', f'1, {self.num()}'))}):"
            sc.vars[v] = "int"
        elif r < 0.55:
            i, v = self.r.choice(("i", "idx", "n", "pos", "index")), self.name()
            head = f"for {i}, {v} in enumerate({seq}):"
            sc.vars[i], sc.vars[v] = "int", "int"
        elif r < 0.7 and sc.of("dict"):
            k, v = self.r.choice((("key", "value"), ("k", "v"), ("name", "score"), ("word", "count")))
            head = f"for {k}, {v} in {self.r.choice(sc.of('dict'))}.items():"
            sc.vars[k], sc.vars[v] = "str", "int"
        elif r < 0.78:
            a, b = self.r.sample(_SHORT, 2)
            head = f"for {a}, {b} in zip({seq}, {self.list_lit(1)}):"
            sc.vars[a], sc.vars[b] = "int", "int"
        else:
            v = self.name()
            head = f"for {v} in {seq}:"
            sc.vars[v] = "int"
        out = [head] + self.block(sc, depth, loop=True)
        if self.r.random() < 0.05:
            out += ["else:"] + self.block(sc, depth, 1)
        return out

    def while_stmt(self, sc: _Scope, depth: int) -> list[str]:
        if self.r.random() < 0.35:
            body = self.block(sc, depth, loop=True)
            return ["while True:"] + body + [f"    if {self.cond(sc)}:", "        break"]
        if self.r.random() < 0.15:  # walking linked nodes: `while node:` ... `node = node.next`
            v = self.name()
            sc.vars[v] = "obj"
            return [f"while {v}:"] + self.block(sc, depth, loop=True) + [
                f"    {v} = {v}.{self.r.choice(('next', 'parent', 'left', 'right', 'child'))}"]
        if self.r.random() < 0.4:  # truthiness of a collection: `while queue:` ... `.pop()`
            coll, item = self.r.choice(_WORKLISTS), self.name()
            sc.vars[coll], sc.vars[item] = "list", "int"
            return ([f"{coll} = [{', '.join(self.num() for _ in range(self.r.randint(1, 4)))}]", f"while {coll}:",
                     f"    {item} = {coll}.pop()"] + self.block(sc, depth, loop=True))
        v = self.r.choice(("i", "n", "count", "tries", "left", "steps"))
        sc.vars[v] = "int"
        up = self.r.random() < 0.5
        init = "0" if up else self.num()
        test = f"{v} < {self.num()}" if up else f"{v} > 0"
        return [f"{v} = {init}", f"while {test}:"] + self.block(sc, depth, loop=True) + [
            f"    {v} {'+=' if up else '-='} 1"]

    def with_stmt(self, sc: _Scope, depth: int) -> list[str]:
        fn = self.r.choice(("f", "fh", "infile", "outfile", "handle", "src", "out"))
        read = self.r.random() < 0.5
        mode = self.q(self.r.choice(("r", "r", "rb")) if read else self.r.choice(("w", "w", "a")))
        path, setup = self.q(self.r.choice(_FILES)), []
        if self.r.random() < 0.5:  # a path variable whose name says which way the data flow
            path = self.r.choice(_READ_PATHS if read else _WRITE_PATHS)
            setup = [f"{path} = {self.q(self.r.choice(_FILES))}"]
        if self.r.random() < 0.25:  # the non-with form, closed explicitly
            call = f"open({path})" if read and self.r.random() < 0.5 else f"open({path}, {mode})"
            return setup + [f"{fn} = {call}", f"{fn}.{'read()' if read else 'write(' + self.q(self.word()) + ')'}",
                            f"{fn}.close()"]
        head = f"with open({path}, {mode}) as {fn}:"
        if read and self.r.random() < 0.4:
            head = f"with open({path}) as {fn}:"
        if read:
            v = self.name()
            sc.vars[v] = "str"
            body = self.r.choice((
                [f"for {v} in {fn}:", f"    print({v}.strip())"],
                [f"{v} = {fn}.read()"],
                [f"{v} = {fn}.readlines()"],
                [f"for {v} in {fn}:"] + ["    " + ln for ln in self.block(sc, depth, 1, loop=True)],
            ))
        else:
            body = self.r.choice((
                [f"{fn}.write({self.fstring(sc)})"],
                [f"{fn}.write({self.q(self.word() + chr(92) + 'n')})"],
                [f"for {self.r.choice(_SHORT)} in {self.list_lit(1)}:",
                 f"    {fn}.write(str({self.r.choice(list(sc.vars) or ['x'])}))"],
            ))
        return setup + [head] + ["    " + ln for ln in body]

    def try_stmt(self, sc: _Scope, depth: int) -> list[str]:
        exc = self.r.choice(("ValueError", "KeyError", "IndexError", "TypeError", "ZeroDivisionError",
                             "FileNotFoundError", "Exception"))
        out = ["try:"] + self.block(sc, depth)
        if self.r.random() < 0.5:
            out += [f"except {exc} as e:", f"    print(f\"{self.word()}: {{e}}\")"]
        else:
            out += [f"except {exc}:"] + self.block(sc, depth, 1)
        if self.r.random() < 0.2:
            out += ["finally:"] + self.block(sc, depth, 1)
        return out

    def comprehension_block(self, sc: _Scope, depth: int) -> list[str]:
        v = self.name()
        x = self.r.choice(_SHORT)
        src = self.r.choice(sc.of("list") or [f"range({self.num()})"])
        r = self.r.random()
        if r < 0.4:
            sc.vars[v] = "list"
            cond = f" if {x} {self.r.choice(('>', '<', '!='))} {self.num()}" if self.r.random() < 0.4 else ""
            return [f"{v} = [{x} {self.r.choice(('*', '+', '-'))} {self.num()} for {x} in {src}{cond}]"]
        if r < 0.6:
            sc.vars[v] = "set"
            return [f"{v} = {{{x} for {x} in {src}}}"]
        if r < 0.8:
            sc.vars[v] = "dict"
            return [f"{v} = {{{x}: {x} * {x} for {x} in {src}}}"]
        sc.vars[v] = "int"
        return [f"{v} = sum({x} for {x} in {src})"]

    # --- top-level definitions ---------------------------------------------------------------------------------------
    def params(self) -> tuple[list[str], str]:
        names = self.r.sample(_NOUNS, self.r.randint(0, 4))
        n_def = self.r.randint(0, len(names)) if self.r.random() < 0.6 else 0
        parts = []
        for i, p in enumerate(names):
            if i >= len(names) - n_def:
                parts.append(f"{p}={self.r.choice(('None', 'None', '0', '1', 'True', 'False', chr(34) * 2, '[]'))}")
            else:
                parts.append(p)
        return names, ", ".join(parts)

    def function(self, sc: _Scope) -> list[str]:
        names, sig = self.params()
        fsc = _Scope()
        for p in names:
            fsc.vars[p] = self.r.choice(("int", "str", "list"))
        out = [f"def {self.fname()}({sig}):"]
        if self.r.random() < 0.2:
            out.append(f'    """{self.word().capitalize()} the {self.r.choice(_NOUNS)}."""')
        out += self.block(fsc, 1, self.r.randint(1, 4))
        ret = self.r.random()
        if ret < 0.5:
            out.append(f"    return {self.expr(fsc)}")
        elif ret < 0.65:
            out.append(f"    return {self.r.choice(('True', 'False', 'None'))}")
        elif ret < 0.75:
            out.append(f"    return {self.expr(fsc)} if {self.cond(fsc)} else {self.literal(2)}")
        return out

    def lambda_def(self, sc: _Scope) -> list[str]:
        a = self.r.choice(_SHORT) if self.r.random() < 0.4 else self.r.choice(_NOUNS)
        name = self.fname()
        r = self.r.random()
        if r < 0.4:
            return [f"{name} = lambda {a}: {a} {self.r.choice(('*', '+', '%', '**'))} {self.num()}"]
        if r < 0.7:
            seq = self.r.choice(sc.of("list") or [self.list_lit(1)])
            return [f"{self.name()} = sorted({seq}, key=lambda {a}: {self.r.choice((a, f'-{a}', f'len(str({a}))'))})"]
        if r < 0.85:
            return [f"{self.name()} = list(map(lambda {a}: {a} * 2, {self.list_lit(1)}))"]
        return [f"def {name}({a}):", f"    return {a} + {self.num()}"]

    def klass(self, sc: _Scope) -> list[str]:
        cls = self.r.choice(_CLASSES)
        attrs = self.r.sample(_NOUNS, self.r.randint(1, 4))
        n_def = self.r.randint(0, len(attrs)) if self.r.random() < 0.4 else 0
        sig = ", ".join(a if i < len(attrs) - n_def else f"{a}=None" for i, a in enumerate(attrs))
        base = self.r.choice(("", "", "", "(object)", "(Exception)"))
        out = [f"class {cls}{base}:"]
        if self.r.random() < 0.2:
            out.append(f"    {self.r.choice(_ADJS)}_{self.r.choice(_NOUNS)} = {self.num()}")
        out.append(f"    def __init__(self, {sig}):")
        body = [f"        self.{a} = {a}" for a in attrs]
        if self.r.random() < 0.5:  # not always in signature order
            self.r.shuffle(body)
        if self.r.random() < 0.4:
            body.insert(self.r.randint(0, len(body)),
                        f"        self.{self.r.choice(('items', 'cache', 'history', 'children'))} = "
                        f"{self.r.choice(('[]', '{}', 'set()', '0'))}")
        out += body
        for _ in range(self.r.randint(0, 2)):
            a = self.r.choice(attrs)
            m = self.r.choice((
                [f"    def {self.fname()}(self):", f"        return self.{a}"],
                ["    def __repr__(self):", f"        return f\"{cls}({a}={{self.{a}!r}})\""],
                [f"    def {self.fname()}(self, {self.r.choice(_SHORT)}):",
                 f"        self.{a} = {self.r.choice(_SHORT)}"],
                ["    def __str__(self):", f"        return {self.q(cls + ' ')} + str(self.{a})"],
            ))
            out += [""] + m
        inst = self.r.choice(_NOUNS)
        sc.vars[inst] = "obj"
        args = ", ".join(self.literal(2) for _ in range(len(attrs) - n_def))
        return out + ["", f"{inst} = {cls}({args})"]

    def main_guard(self, sc: _Scope) -> list[str]:
        return ['if __name__ == "__main__":' if self.r.random() < 0.7 else "if __name__ == '__main__':",
                f"    {self.fname()}()"]

    def program(self) -> str:
        sc = _Scope()
        chunks: list[list[str]] = []
        top = [self.function, self.function, self.klass, self.lambda_def]
        for _ in range(self.r.randint(3, 8)):
            if self.r.random() < 0.45:
                chunks.append(self.r.choice(top)(sc))
            else:
                chunks.append(self.stmt(sc, 0))
        if self.r.random() < 0.15:
            chunks.append(self.main_guard(sc))
        if self.r.random() < 0.3:
            chunks.insert(0, [f"import {self.r.choice(('os', 'sys', 'math', 'json', 'random', 're', 'time'))}"])
        lines: list[str] = []
        for c in chunks:
            blank = c[0].startswith(("def ", "class ")) or (lines and lines[-1].startswith(" "))
            if lines and blank:
                lines += [""] * (2 if c[0].startswith(("def ", "class ")) else 1)
            lines += c
        return "\n".join(lines) + "\n"


def program(seed: int) -> str:
    """One valid program; a pure function of ``seed``."""
    src = _Gen(random.Random(seed)).program()
    ast.parse(src)  # a generator bug must never reach the corpus silently
    return src


def documents(seed: int, n_bytes: int, *, start: int = 0) -> Iterator[str]:
    """Programs for seeds derived from (seed, i), i = start, start+1, ..., until ``n_bytes`` bytes are produced."""
    made = 0
    i = start
    while made < n_bytes:
        src = program(seed * 1_000_003 + i)
        made += len(src.encode())
        i += 1
        yield src
