"""Pools of names and values, and the plausible Python that surrounds each task's cue.

The three splits draw from disjoint pools: ``train`` fits circuit masks, ``val`` chooses among them (bisection,
sweep settings, calibration checks), ``test`` gives every reported number, on names neither of the others saw. The
val pools are carved from the train lists by a fixed rule (every fourth entry, see ``carve``), not chosen by hand. ``names`` are single lowercase words: tasks that copy a name (class_init, var_swap, else_elif)
use them as candidates, so each ``" " + name`` is a required token and the pools stay small.
"""

from __future__ import annotations

import dataclasses
import functools
import random

IND = "    "

_NAMES_BY_SPLIT = {
    "train": ("count", "total", "value", "items", "result", "index", "name", "data", "size", "path", "key", "text",
              "line", "node", "user", "score", "price", "width", "height", "label", "token", "state", "limit",
              "offset", "buffer", "color", "level", "weight", "message", "parent", "source", "target"),
    "test": ("amount", "length", "record", "entry", "title", "owner", "status", "number", "field", "queue",
             "stack", "cache", "depth", "speed", "image", "block"),
}
_IDENTS_BY_SPLIT = {  # context-only variables
    "train": ("config", "results", "max_size", "counter", "rows", "options", "tmp_dir", "user_id", "num_items",
              "output", "values", "scores", "lines", "prefix", "matrix", "words"),
    "test": ("settings", "batch", "min_len", "matches", "lookup", "chunk_size", "seen_ids", "columns", "report",
             "pairs", "suffix", "grid", "tokens", "weights"),
}
_FUNCS_BY_SPLIT = {
    "train": ("load_data", "parse_line", "compute_total", "process_batch", "update_state", "build_index",
              "handle_request", "read_config", "format_row", "check_input", "main", "run_job"),
    "test": ("fetch_items", "render_page", "validate_entry", "transform", "collect_stats", "merge_tables",
             "resolve_path", "emit_event"),
}
_CLASSES_BY_SPLIT = {
    "train": ("Parser", "Node", "Session", "Worker", "Buffer", "Account", "Player", "Order"),
    "test": ("Registry", "Tracker", "Reader", "Scheduler", "Profile", "Window"),
}
_WORDS_BY_SPLIT = {  # string contents and comments; letters only
    "train": ("hello", "world", "done", "error", "loading", "saving", "ready", "failed", "starting", "finished",
              "missing", "invalid", "warning", "found", "skipping", "retry", "connected", "timeout", "file",
              "step", "row", "column", "input", "check", "update", "debug", "server", "client"),
    "test": ("complete", "pending", "updated", "removed", "received", "unknown", "empty", "closing", "opening",
             "waiting", "parsed", "sending", "model", "cell", "query", "packet"),
}
_MODULES_BY_SPLIT = {"train": ("os", "sys", "json", "math", "re"), "test": ("time", "random", "csv", "string")}


def carve(two_splits: dict[str, tuple]) -> dict[str, tuple]:
    """``{"train", "test"}`` lists -> three disjoint splits: every fourth train entry (indices 3, 7, ...) is val."""
    train = two_splits["train"]
    return {"train": tuple(x for i, x in enumerate(train) if i % 4 != 3), "val": train[3::4],
            "test": two_splits["test"]}


_NAMES, _IDENTS, _FUNCS, _CLASSES, _WORDS, _MODULES = map(carve, (
    _NAMES_BY_SPLIT, _IDENTS_BY_SPLIT, _FUNCS_BY_SPLIT, _CLASSES_BY_SPLIT, _WORDS_BY_SPLIT, _MODULES_BY_SPLIT))


def _numbers(split: str) -> tuple[int, ...]:
    nums = list(range(2, 1000))
    random.Random(0).shuffle(nums)
    return carve({"train": tuple(nums[:660]), "test": tuple(nums[660:])})[split]


@dataclasses.dataclass(frozen=True)
class Pools:
    split: str
    names: tuple[str, ...]
    idents: tuple[str, ...]
    funcs: tuple[str, ...]
    classes: tuple[str, ...]
    words: tuple[str, ...]
    modules: tuple[str, ...]
    numbers: tuple[int, ...]

    def strings(self) -> set[str]:
        """Every name and value of this split (tests check the splits share none)."""
        return {*self.names, *self.idents, *self.funcs, *self.classes, *self.words, *self.modules,
                *map(str, self.numbers)}


@functools.cache
def pools(split: str) -> Pools:
    return Pools(split, _NAMES[split], _IDENTS[split], _FUNCS[split], _CLASSES[split], _WORDS[split],
                 _MODULES[split], _numbers(split))


def all_names() -> tuple[str, ...]:
    """Every split's single-word names: the copy tasks' candidate pool."""
    return _NAMES["train"] + _NAMES["val"] + _NAMES["test"]


# ---------------------------------------------------------------------------------------------------------------------
# Surrounding code. Every helper returns whole lines (no newline) that leave no bracket or string open.


def ind(depth: int) -> str:
    return IND * depth


def var(rng: random.Random, p: Pools) -> str:
    return rng.choice(p.idents + p.names)


def num(rng: random.Random, p: Pools) -> str:
    return str(rng.choice(p.numbers))


def words(rng: random.Random, p: Pools, lo: int = 1, hi: int = 3) -> str:
    """A few words ending in a letter (so a closing quote after them starts its own pre-token)."""
    text = " ".join(rng.choice(p.words) for _ in range(rng.randint(lo, hi)))
    return text.capitalize() if rng.random() < 0.3 else text


def string(rng: random.Random, p: Pools) -> str:
    q = rng.choice("\"'")
    return f"{q}{words(rng, p)}{q}"


def cond(rng: random.Random, p: Pools, x: str | None = None) -> str:
    """A condition ending in a letter or digit (so a following ``:`` or `` else`` starts a pre-token)."""
    x = x or var(rng, p)
    return rng.choice([f"{x} > {num(rng, p)}", f"{x} < {num(rng, p)}", f"{x} == {num(rng, p)}", f"{x}",
                       f"not {x}", f"{x} is None", f"{x} is not None", f"len({x}) > {num(rng, p)}"])


def statement(rng: random.Random, p: Pools, comment: bool = True) -> str:
    """One simple statement, valid at any indentation (a comment too, unless it must be a block's only line)."""
    v, w = var(rng, p), var(rng, p)
    kind = rng.randrange(12)
    if kind == 6 and not comment:
        kind = 0
    if kind == 0:
        return f"{v} = {num(rng, p)}"
    if kind == 1:
        return f"{v} = {string(rng, p)}"
    if kind == 2:
        return f"{v} = {rng.choice(p.funcs)}({w})"
    if kind == 3:
        return f"{v} = [{', '.join(num(rng, p) for _ in range(rng.randint(0, 3)))}]"
    if kind == 4:
        return f"{v} += {num(rng, p)}"
    if kind == 5:
        return rng.choice([f"print({v})", f"print({string(rng, p)})", f"print(f\"{words(rng, p)} {{{v}}}\")"])
    if kind == 6:
        return f"# {words(rng, p, 2, 5)}"
    if kind == 7:
        return f"{v}.append({w})"
    if kind == 8:
        return f"{v} = {w} * {num(rng, p)}"
    if kind == 9:
        return f"{v} = {{\"{rng.choice(p.words)}\": {num(rng, p)}}}"
    if kind == 10:
        return f"{v} = {rng.choice(p.funcs)}({w}, {string(rng, p)})"
    return f"{v} = {w}[{rng.randint(0, 3)}]"


def lines(rng: random.Random, p: Pools, depth: int, lo: int = 1, hi: int = 3, extra=()) -> list[str]:
    """``lo..hi`` statements at ``depth``; a few are small closed blocks. ``extra`` adds task-specific distractors."""
    out: list[str] = []
    for _ in range(rng.randint(lo, hi)):
        r = rng.random()
        if extra and r < 0.2:
            out += [ind(depth) + s if s else s for s in rng.choice(extra)(rng, p).split("\n")]
        elif r < 0.32:
            head = rng.choice([f"for {var(rng, p)} in {var(rng, p)}:", f"if {cond(rng, p)}:"])
            out += [ind(depth) + head, ind(depth + 1) + statement(rng, p, comment=False)]
        else:
            out.append(ind(depth) + statement(rng, p, comment=bool(out)))  # a block's first line is code
    return out


def preamble(rng: random.Random, p: Pools) -> list[str]:
    """Module-level lines that may open a file: imports, constants."""
    out = []
    if rng.random() < 0.4:
        out.append(f"import {rng.choice(p.modules)}")
    if rng.random() < 0.3:
        out.append(f"{rng.choice(p.names).upper()} = {num(rng, p)}")
    if out:
        out.append("")
    return out


def opening(rng: random.Random, p: Pools, depth: int, *, need_def: bool = False, lo: int = 1, hi: int = 3,
            extra=()) -> list[str]:
    """Lines that end inside ``depth`` open blocks, with some statements in each; the caller continues at ``depth``."""
    out = preamble(rng, p)
    if depth == 0:
        return out + lines(rng, p, 0, lo, hi, extra)
    for d in range(depth):
        if d == 0 and (need_def or rng.random() < 0.7):
            args = ", ".join(rng.sample(p.names, rng.randint(0, 3)))
            out.append(f"def {rng.choice(p.funcs)}({args}):")
        else:
            out.append(ind(d) + rng.choice([f"for {var(rng, p)} in {var(rng, p)}:", f"if {cond(rng, p)}:",
                                            f"while {cond(rng, p)}:"]))
        last = d == depth - 1
        out += lines(rng, p, d + 1, lo if last else 0, hi if last else 1, extra)
    return out


def join(lines_: list[str], tail: str) -> str:
    """The prompt: context lines, then the unfinished cue line ``tail``."""
    return "\n".join(lines_ + [tail])


LONGER_CONTEXT = "3 to 6 more module-level statements (the split's own names and values) before the prompt"


def longer_context(make_pair, lo: int = 3, hi: int = 6):
    """A shift of any task whose prompts start at module level: ``lo..hi`` more statements before both prompts (so
    the cue sits further from the start, and with a short context window, its start is cut)."""

    def shifted(rng: random.Random, split: str):
        pair = make_pair(rng, split)
        extra = "\n".join(lines(rng, pools(split), 0, lo, hi)) + "\n"
        return dataclasses.replace(pair, positive=extra + pair.positive, negative=extra + pair.negative)

    return shifted
