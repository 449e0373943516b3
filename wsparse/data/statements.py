"""Statements for the synthetic generator (see ``synthetic``).

Each method returns lines without the block's own indentation. ``Ctx`` says what is legal where: ``return`` and
``yield`` inside functions, ``break``/``continue`` inside loops (``self`` is in a method's scope).
"""

from __future__ import annotations

import dataclasses
import inspect

from wsparse.data.expressions import KINDS, TYPES, Exprs, Scope

AUG = ("+=", "+=", "+=", "-=", "*=", "|=", "//=")
PRINT_KEYWORDS = tuple(p.name for p in inspect.signature(print).parameters.values() if p.kind == p.KEYWORD_ONLY)


@dataclasses.dataclass(frozen=True)
class Ctx:
    func: bool = False
    loop: bool = False
    gen: bool = False


def indent(lines: list[str]) -> list[str]:
    return ["    " + ln if ln else ln for ln in lines] or ["    pass"]


_JUMPS = ("return", "raise", "break", "continue")


def _before_jump(body: list[str], *lines: str) -> list[str]:
    """``body`` (an indented block) with ``lines`` added at its end, but before a final jump, so they are reachable."""
    last = body[-1] if body else ""
    at = len(body) - 1 if last.startswith("    ") and last[4:].startswith(_JUMPS) else len(body)
    return body[:at] + indent(list(lines)) + body[at:]


class Gen(Exprs):
    # --- blocks ------------------------------------------------------------------------------------------------------
    def block(self, sc: Scope, ctx: Ctx, depth: int, lo: int = 1, hi: int = 3) -> list[str]:
        """Statements; a nested block may end with a jump (return, raise, break, continue), never followed by
        unreachable code."""
        out: list[str] = []
        for _ in range(self.r.randint(lo, hi)):
            out += self.stmt(sc, ctx, depth)
        if depth >= 2 and (ctx.func or ctx.loop) and self.r.random() < 0.2:
            u = self.r.random()
            if ctx.loop and (u < 0.4 or not ctx.func):
                out.append(self.r.choice(("break", "continue")))
            elif u < 0.85 or not sc:
                out.append(f"return {self.expr(sc, 1)}" if self.r.random() < 0.75 else "return")
            else:
                out.append(self.raise_(sc))
        return indent(out)

    def stmt(self, sc: Scope, ctx: Ctx, depth: int) -> list[str]:
        r = self.r
        u = r.random()
        if depth < 3 and u < 0.26:
            return r.choice((self.if_, self.if_, self.if_, self.for_, self.for_, self.with_, self.try_, self.while_))(
                sc, ctx, depth + 1)
        u = r.random()
        if u < 0.3:
            return self.assign(sc)
        if u < 0.55:
            return [self.call_stmt(sc)]
        if u < 0.61:
            v = self.var(sc, "num")
            sc[v] = "num"
            return [f"{v} {r.choice(AUG)} {self.expr(sc, 1)}"]
        if u < 0.66:
            return self.unpack(sc)
        if u < 0.71:
            target = self.subscript(sc) if r.random() < 0.5 else self.attr(sc)
            return [f"{target} = {self.expr(sc, 1)}"]
        if u < 0.74:
            return ["# " + self.sentence(self.t.text, 2, 10)] + self.stmt(sc, ctx, depth)
        if u < 0.747:
            return [f"assert {self.compare(sc)}" + (f", {self.string()}" if r.random() < 0.3 else "")]
        if u < 0.8 and sc:
            return [f"del {self.subscript(sc) if r.random() < 0.5 else self.var(sc)}"]
        if u < 0.83 and ctx.gen:
            return [f"yield {self.expr(sc, 1)}"]
        return self.assign(sc)

    # --- simple statements -------------------------------------------------------------------------------------------
    def assign(self, sc: Scope) -> list[str]:
        r = self.r
        u = r.random()
        if u < 0.4:
            kind = r.choice(KINDS)
            name = self.new_name(kind)
            val = self.value(kind, sc)
        else:
            name, kind = self.new_name(), "obj"
            val = self.comprehension(sc) if u < 0.5 else self.expr(sc)
        if r.random() < 0.01:  # an annotated assignment
            val = f"{name}: {r.choice(TYPES)} = {val}"
            sc[name] = kind
            return [val]
        sc[name] = kind
        if r.random() < 0.03:
            return [f"{name} = {val}  # {self.sentence(self.t.text, 1, 6)}"]
        return [f"{name} = {val}"]

    def call_stmt(self, sc: Scope) -> str:
        r = self.r
        u = r.random()
        if u < 0.3:
            parts = [self.fstring(sc) if r.random() < 0.4 else self.string()] if r.random() < 0.7 else []
            parts += [self.expr(sc, 1) for _ in range(r.randint(0 if parts else 1, 2))]
            if r.random() < 0.1:
                parts.append(f"{r.choice(PRINT_KEYWORDS)}={self.string() if r.random() < 0.7 else self.var(sc)}")
            return f"print({', '.join(parts)})"
        if u < 0.7:
            return self.method_call(sc)
        return self.call(sc)

    def unpack(self, sc: Scope) -> list[str]:
        r = self.r
        a, b = self._pair()
        u = r.random()
        values = [n for n, k in sc.items() if k != "self"]
        if u < 0.3 and len(values) >= 2:
            x, y = r.sample(values, 2)
            return [f"{x}, {y} = {y}, {x}"]
        sc[a], sc[b] = "obj", "obj"
        if u < 0.55:
            sc[b] = "list"
            target = f"{a}, *{b}" if r.random() < 0.7 else f"*{b}, {a}"
            return [f"{target} = {self.var(sc, 'list')}"]
        if u < 0.8:
            return [f"{a}, {b} = {self.call(sc)}"]
        return [f"{a}, {b} = {self.expr(sc, 1)}, {self.expr(sc, 1)}"]

    def raise_(self, sc: Scope) -> str:
        exc = self.t.exception(self.r)
        u = self.r.random()
        if u < 0.6:
            return f"raise {exc}({self.fstring(sc) if self.r.random() < 0.4 else self.string()})"
        return f"raise {exc}" if u < 0.8 else f"raise {exc}({self.var(sc)}) from None"

    # --- compound statements -----------------------------------------------------------------------------------------
    def if_(self, sc: Scope, ctx: Ctx, depth: int) -> list[str]:
        r = self.r
        if r.random() < 0.05:
            v = self.new_name()
            sc[v] = "obj"
            out = [f"if ({v} := {self.expr(sc, 1)}) is not None:"] + self.block(sc, ctx, depth)
        else:
            out = [f"if {self.compare(sc)}:"] + self.block(sc, ctx, depth)
        for _ in range(r.choice((0, 0, 0, 1, 1, 2))):
            out += [f"elif {self.compare(sc)}:"] + self.block(sc, ctx, depth)
        if r.random() < 0.35:
            out += ["else:"] + self.block(sc, ctx, depth)
        return out

    def for_(self, sc: Scope, ctx: Ctx, depth: int) -> list[str]:
        r, t = self.r, self.t
        u = r.random()
        if u < 0.3 and t.iter_pair:
            x, xs = t.iter_pair(r).split()
            pre = [] if xs in sc else [f"{xs} = {self.value('list', sc)}"]
            sc[xs], sc[x] = "list", "obj"
            head = f"for {x} in {xs}:"
        else:
            pre = []
            if u < 0.5:
                x = t.loop_var(r)
                sc[x] = "num"
                n = r.choice((self.integer(), f"len({self.var(sc, 'list', 'str')})",
                              f"{self.integer()}, {self.integer()}"))
                head = f"for {x} in range({n}):"
            elif u < 0.62:
                i, x = self._pair()
                sc[i], sc[x] = "num", "obj"
                head = f"for {i}, {x} in enumerate({self.var(sc, 'list', 'str')}):"
            elif u < 0.75:
                k, v = self._pair()
                d = self.var(sc, "dict")
                sc[k], sc[v] = "str", "obj"
                head = f"for {k}, {v} in {d}.items():"
            elif u < 0.82:
                a, b = self._pair()
                head = f"for {a}, {b} in zip({self.var(sc, 'list')}, {self.var(sc, 'list')}):"
                sc[a], sc[b] = "obj", "obj"
            else:
                x = t.loop_var(r)
                src = self.var(sc, "list", "set", "str", "file")
                if r.random() < 0.3:
                    src = f"{r.choice(('sorted', 'reversed', 'list'))}({src})"
                sc[x] = "obj"
                head = f"for {x} in {src}:"
        out = pre + [head] + self.block(sc, dataclasses.replace(ctx, loop=True), depth)
        if r.random() < 0.04:
            out += ["else:"] + self.block(sc, ctx, depth, 1, 1)
        return out

    def while_(self, sc: Scope, ctx: Ctx, depth: int) -> list[str]:
        r = self.r
        loop = dataclasses.replace(ctx, loop=True)
        u = r.random()
        if u < 0.3:
            return ["while True:"] + _before_jump(self.block(sc, loop, depth), f"if {self.compare(sc)}:", "    break")
        if u < 0.6:
            xs = self.var(sc, "list")
            x = self.t.loop_var(r)
            sc[x] = "obj"
            return [f"while {xs}:", f"    {x} = {xs}.pop({r.choice(('', '', '0'))})"] + self.block(sc, loop, depth)
        n = self.var(sc, "num")
        sc[n] = "num"
        if r.random() < 0.6:
            head = f"while {n} {r.choice(('<', '<='))} {self.integer()}:"
            return [head] + _before_jump(self.block(sc, loop, depth), f"{n} += 1")
        return [f"while {n} > 0:"] + _before_jump(self.block(sc, loop, depth), f"{n} -= 1")

    def with_(self, sc: Scope, ctx: Ctx, depth: int) -> list[str]:
        r, t = self.r, self.t
        f = t.with_name(r)
        u = r.random()
        if u < 0.7:
            mode = t.open_mode(r)
            path = self.var(sc, "str") if r.random() < 0.4 else self.q(self.filename())
            mode_arg = "" if mode == "r" and r.random() < 0.6 else f", {self.q(mode)}"
            enc = f", encoding={self.q(t.string_value(r))}" if r.random() < 0.1 else ""
            head = f"with open({path}{mode_arg}{enc}) as {f}:"
            sc[f] = "file"
            if "r" in mode and r.random() < 0.5:
                x = t.loop_var(r)
                sc[x] = "str"
                body = [f"for {x} in {f}:"] + self.block(sc, dataclasses.replace(ctx, loop=True), depth, 1, 2)
                return [head] + indent(body)
        elif u < 0.85 and t.with_call:
            w = t.with_call(r)
            if w.startswith("self.") and "self" not in sc:
                w = w[len("self."):]
            if w.split(".")[0] in t.module.items:
                self.imports[w.split(".")[0]] = None
            head = f"with {w}({self.args(sc, 0, 2, 1)})" + (f" as {f}:" if r.random() < 0.7 else ":")
            sc[f] = "obj"
        else:
            head = f"with {self.attr(sc) if r.random() < 0.5 else self.var(sc, 'obj')}:"
        return [head] + self.block(sc, ctx, depth)

    def try_(self, sc: Scope, ctx: Ctx, depth: int) -> list[str]:
        r, t = self.r, self.t
        out = ["try:"] + self.block(sc, ctx, depth, 1, 2)
        for i in range(r.choice((1, 1, 1, 2))):
            exc = t.exception(r) if r.random() < 0.85 else f"({t.exception(r)}, {t.exception(r)})"
            if r.random() < 0.4:
                e = t.except_name(r)
                sc[e] = "obj"
                body = [self.r.choice((f"print({self.fstring(sc)})", f"{self.call(sc)}", self.raise_(sc)
                                       if ctx.func else "pass", "raise"))]
                out += [f"except {exc} as {e}:"] + indent(body)
            else:
                out += [f"except {exc}:"] + (self.block(sc, ctx, depth, 1, 2) if r.random() < 0.8 else ["    pass"])
        if r.random() < 0.1:
            out += ["else:"] + self.block(sc, ctx, depth, 1, 1)
        if r.random() < 0.2:
            out += ["finally:"] + self.block(sc, ctx, depth, 1, 1)
        return out
