"""The task datatypes: a ``Pair`` of minimally different prompts and a ``Task`` that draws them from a seed."""

from __future__ import annotations

import dataclasses
import random
from typing import Callable

SPLITS = ("train", "val", "test")  # mask fitting, selection, every reported number


class TaskError(ValueError):
    """A task cannot produce what was asked (bad candidates, too few distinct pairs, wrong tokenizer)."""


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two prompts that differ only in the cue; ``target`` is correct after ``positive``, ``alt`` after ``negative``.

    ``pos_rest`` / ``neg_rest`` optionally finish each program after its correct candidate; tests use them to check
    that the prompt plus its continuation is a valid prefix of Python (``ast.parse`` of the whole).
    """

    positive: str
    negative: str
    target: str
    alt: str
    pos_rest: str = ""
    neg_rest: str = ""


PairFn = Callable[[random.Random, str], Pair]


@dataclasses.dataclass(frozen=True)
class Task:
    """A named binary next-token task.

    ``make_pair(rng, split)`` draws one pair for ``split`` ("train", "val" or "test"); it must draw its names and
    values from pools that differ between the splits. ``shift``, a PairFn of the same kind, optionally declares a
    shifted distribution of the same task (e.g. a longer context), on which the faithfulness card compares a circuit
    with the full model. ``candidates`` lists every string a pair may use as ``target`` or ``alt``:
    the tokenizer keeps each as one token.
    """

    name: str
    make_pair: PairFn
    candidates: tuple[str, ...]
    description: str = ""
    shift: PairFn | None = None  # optional: a shifted prompt distribution (the faithfulness card's last control)
    shift_description: str = ""

    def generate(self, split: str, n: int, seed: int = 0, *, shifted: bool = False) -> list[Pair]:
        """``n`` distinct pairs, a pure function of (task name, split, seed); a longer list extends a shorter one.
        ``shifted`` draws from ``shift`` instead (its own stream, the same split's pools)."""
        if split not in SPLITS:
            raise TaskError(f"task {self.name}: split must be one of {SPLITS}, got {split!r}")
        if shifted and self.shift is None:
            raise TaskError(f"task {self.name} declares no shifted prompt distribution")
        make_pair = self.shift if shifted else self.make_pair
        rng = random.Random(f"{self.name}/{split}/{seed}" + ("/shifted" if shifted else ""))
        out: list[Pair] = []
        seen: set[tuple[str, str]] = set()
        for _ in range(20 * n + 1000):
            if len(out) == n:
                return out
            p = make_pair(rng, split)
            if p.target not in self.candidates or p.alt not in self.candidates:
                raise TaskError(f"task {self.name}: pair uses candidate {p.target!r}/{p.alt!r}, which is not in "
                                f"its declared candidates; add it to Task.candidates")
            if p.target == p.alt or p.positive == p.negative:
                raise TaskError(f"task {self.name}: a pair must differ in prompt and in answer: {p}")
            if (p.positive, p.negative) not in seen:
                seen.add((p.positive, p.negative))
                out.append(p)
        if len(out) == n:
            return out
        raise TaskError(f"task {self.name}: only {len(out)} distinct {split} pairs in {20 * n + 1000} draws, "
                        f"{n} asked; widen its pools of names and values")
