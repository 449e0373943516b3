"""The 20 binary next-token tasks of docs/method.md section 4, their registry, encoding, contrast loss and evaluation.

    from wsparse import tasks
    tasks.names()                        # the registered task names
    pairs = tasks.get("for_while").generate("train", 2000, seed=0)
    batch = tasks.encode("for_while", tokenizer, "test", 500, n_ctx=128)
    loss, acc = tasks.contrast_loss(logits_BTV, batch)

Register your own task with ``tasks.register(tasks.Task(name, make_pair, candidates))`` (README.md, "Adding a task").
"""

import dataclasses

from wsparse.tasks import brackets, context, control_flow, files, functions, strings, variables
from wsparse.tasks.base import SPLITS, Pair, Task, TaskError
from wsparse.tasks.display import mark_tokens, show_pair
from wsparse.tasks.encode import TaskBatch, bucketed_length, check_pairs, encode, encode_pairs
from wsparse.tasks.evaluate import encode_all, evaluate, evaluate_batches, format_table
from wsparse.tasks.loss import contrast_loss, contrast_loss_per_seq, pair_loss, pair_losses
from wsparse.tasks.registry import get, names, register, required_tokens, unregister

PAPER_ORDER = (
    "single_double_quote", "bracket_counting", "set_or_string", "set_or_string_fixedvarname", "class_init",
    "with_as", "bracket_brace", "with_open", "for_while", "else_elif", "fstring_brace", "if_ternary", "var_swap",
    "indent_for", "lambda_func", "if_equals", "enumerate_range", "var_if", "while_return_true", "final_kwarg",
)


def _register_builtins() -> None:
    by_name = {t.name: t for m in (strings, brackets, variables, control_flow, functions, files) for t in m.TASKS}
    assert set(by_name) == set(PAPER_ORDER), sorted(set(by_name) ^ set(PAPER_ORDER))
    for n in PAPER_ORDER:  # every built-in prompt starts at module level: each gets the longer-context shift
        t = by_name[n]
        if t.shift is None:
            t = dataclasses.replace(t, shift=context.longer_context(t.make_pair),
                                    shift_description=context.LONGER_CONTEXT)
        register(t, replace=True)


_register_builtins()

__all__ = ["SPLITS", "PAPER_ORDER", "Pair", "Task", "TaskBatch", "TaskError", "bucketed_length", "check_pairs",
           "contrast_loss", "contrast_loss_per_seq", "encode", "encode_all", "encode_pairs", "evaluate",
           "evaluate_batches", "format_table", "get", "mark_tokens", "names", "pair_loss", "pair_losses", "register",
           "required_tokens", "show_pair", "unregister"]
