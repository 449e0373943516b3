"""The 20 tasks: determinism, sizes, minimal pairs, disjoint splits, valid Python, the token-boundary rule, the loss,
user registration and evaluation on a tiny model."""

import ast
import dataclasses
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsparse import tasks
from wsparse.data.tokenizer import pre_tokens
from wsparse.tasks import context

N_TRAIN, N_VAL, N_TEST = 2000, 500, 500
MAX_DIFF_CHARS = 24  # after removing the common prefix and suffix, each prompt's differing span is at most this
N_RULE = 100  # pairs per split checked against the project tokenizer (the full sets are checked by encode)

@pytest.fixture(scope="module")
def generated():
    """Each task's full train, val and test sets, generated once."""
    sizes = {"train": N_TRAIN, "val": N_VAL, "test": N_TEST}
    return {n: tuple(tasks.get(n).generate(split, sizes[split], seed=0) for split in tasks.SPLITS)
            for n in tasks.PAPER_ORDER}


@pytest.fixture(scope="module")
def tokenizer(tiny_prepared):
    from wsparse.data import tokenizer as tok_lib

    return tok_lib.load(tiny_prepared.tokenizer_path)


def test_registry_holds_the_papers_tasks():
    assert tasks.names()[:20] == tasks.PAPER_ORDER
    req = tasks.required_tokens()
    assert len(req) == len(set(req)) and len(req) <= 100  # each costs a vocab entry out of 2048
    assert {c for n in tasks.PAPER_ORDER for c in tasks.get(n).candidates} == set(req)
    with pytest.raises(tasks.TaskError, match="unknown task 'nope'"):
        tasks.get("nope")


def test_split_pools_are_disjoint():
    assert tasks.SPLITS == ("train", "val", "test")
    train, val, test = (context.pools(s).strings() for s in tasks.SPLITS)
    assert not train & val and not train & test and not val & test
    assert all(len(context.pools(s).names) >= 8 for s in tasks.SPLITS)
    # val is carved from the written train lists by rule (every fourth entry), not chosen by hand
    assert context.carve({"train": tuple("abcdefgh"), "test": ("z",)}) == {
        "train": tuple("abcefg"), "val": ("d", "h"), "test": ("z",)}
    assert all(n.isalpha() and n.islower() for n in context.all_names())  # one pre-token each, with a space


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_generation_is_deterministic_with_sizes(name, generated):
    train, val, test = generated[name]
    task = tasks.get(name)
    assert (len(train), len(val), len(test)) == (N_TRAIN, N_VAL, N_TEST)
    assert len({p.positive for p in train}) == N_TRAIN and len({p.positive for p in test}) == N_TEST
    assert len({p.positive for p in val}) == N_VAL
    assert task.generate("train", 50, seed=0) == train[:50]  # same seed, same stream (prefix-stable)
    assert task.generate("test", 50, seed=1) != test[:50]


def _diff_span(a: str, b: str) -> tuple[str, str]:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
        j += 1
    return a[i:len(a) - j], b[i:len(b) - j]


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_pairs_differ_minimally(name, generated):
    task = tasks.get(name)
    for p in [p for split in generated[name] for p in split]:
        a, b = _diff_span(p.positive, p.negative)
        assert 0 < max(len(a), len(b)) <= MAX_DIFF_CHARS, (name, a, b)
        assert "\n" not in a + b  # the cue is within one line
        assert p.target != p.alt and {p.target, p.alt} <= set(task.candidates)


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_splits_are_disjoint(name, generated):
    train, val, test = generated[name]
    prompts = lambda ps: {x for p in ps for x in (p.positive, p.negative)}  # noqa: E731
    assert not prompts(train) & prompts(test) and not prompts(train) & prompts(val)
    assert not prompts(val) & prompts(test)


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_prompt_plus_answer_is_python(name, generated):
    """prompt + correct candidate + the pair's completion parses, so prompt + candidate is a valid prefix."""
    for p in generated[name][0][:500] + generated[name][1] + generated[name][2]:
        for prompt, good, rest in ((p.positive, p.target, p.pos_rest), (p.negative, p.alt, p.neg_rest)):
            try:
                ast.parse(prompt + good + rest)
            except SyntaxError as e:
                pytest.fail(f"{name}: {prompt + good + rest!r} does not parse: {e}")


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_candidates_are_single_pre_tokens_at_a_boundary(name, generated):
    """Tokenizer-independent half of the rule: each candidate is its own pre-token right after the prompt."""
    for p in [p for split in generated[name] for p in split[:N_RULE]]:
        for prompt in (p.positive, p.negative):
            base = pre_tokens(prompt)
            for c in (p.target, p.alt):
                assert pre_tokens(prompt + c) == base + [c], (name, prompt[-40:], c)


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_token_boundary_rule_under_project_tokenizer(name, generated, tokenizer):
    pairs = [p for split in generated[name] for p in split[:N_RULE]]
    ok, why = tasks.check_pairs(tokenizer, pairs)
    assert len(ok) == len(pairs), dict(why)


def test_encode_layout_and_truncation(tokenizer):
    pairs = tasks.get("for_while").generate("test", 8)
    b = tasks.encode("for_while", tokenizer, "test", 8, n_ctx=256)
    assert b.tokens.shape == (16, 256) and b.tokens.dtype == np.int32
    ids = lambda s: tokenizer.encode(s).ids  # noqa: E731
    for i, p in enumerate(pairs):
        for row, prompt in ((i, p.positive), (i + 8, p.negative)):
            want = ids(prompt)
            assert b.last[row] == len(want) - 1 and list(b.tokens[row, :len(want)]) == want
            assert not b.tokens[row, len(want):].any()
        assert b.correct[i] == b.wrong[i + 8] == ids(p.target)[0]
        assert b.wrong[i] == b.correct[i + 8] == ids(p.alt)[0]
    short = tasks.encode("for_while", tokenizer, "test", 8, n_ctx=12)
    full = [ids(p.positive) for p in pairs] + [ids(p.negative) for p in pairs]
    assert sum(len(f) > 12 for f in full) >= 8  # the check below truncates most rows
    for row, f in enumerate(full):  # left-truncated: the cue end survives
        assert short.last[row] == min(len(f), 12) - 1 and list(short.tokens[row, :len(f[-12:])]) == f[-12:]


def test_contrast_loss_matches_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 7)).astype(np.float32)
    batch = tasks.TaskBatch(np.zeros((4, 5), np.int32), np.array([4, 2, 0, 3], np.int32),
                            np.array([1, 2, 3, 4], np.int32), np.array([0, 6, 5, 2], np.int32))
    loss, acc = tasks.contrast_loss(jnp.asarray(logits), batch)
    want, right = [], []
    for i in range(4):
        c, w = logits[i, batch.last[i], batch.correct[i]], logits[i, batch.last[i], batch.wrong[i]]
        want.append(-np.log(np.exp(c) / (np.exp(c) + np.exp(w))))
        right.append(c > w)
    # rows 0, 1 are positives and 2, 3 their negatives: per sequence = the mean over pairs of (pair sum / 2)
    assert float(loss) == pytest.approx(((want[0] + want[2]) / 2 + (want[1] + want[3]) / 2) / 2, rel=1e-5)
    assert float(acc) == pytest.approx(np.mean(right))
    per_seq, correct = tasks.contrast_loss_per_seq(jnp.asarray(logits), batch)
    np.testing.assert_allclose(per_seq, want, rtol=1e-5)
    # equal logits give log 2; a huge margin gives ~0 without overflow
    flat = jnp.zeros((4, 5, 7)).at[:, :, 1].set(1e4)
    loss_big, _ = tasks.contrast_loss(flat, batch._replace(correct=np.ones(4, np.int32)))
    assert float(loss_big) == pytest.approx(0.0, abs=1e-6)
    loss_eq, acc_eq = tasks.contrast_loss(jnp.zeros((4, 5, 7)), batch)
    assert float(loss_eq) == pytest.approx(np.log(2)) and float(acc_eq) == 0.0


# A user task, defined and registered from outside the package, as README.md ("Adding a task") shows.
def _none_or_true(rng: random.Random, split: str) -> tasks.Pair:
    names = ["alpha", "beta", "gamma"] if split == "train" else ["delta", "omega"]
    x = rng.choice(names) + str(rng.randint(0, 999))
    return tasks.Pair(f"{x} = None\nif {x} is", f"{x} = True\nif {x} is", " None", " True")


def test_custom_task_registers_from_outside(tokenizer):
    task = tasks.Task("none_or_true", _none_or_true, (" None", " True"), "recall which constant x holds")
    tasks.register(task)
    try:
        assert "none_or_true" in tasks.names() and tasks.get("none_or_true") is task
        assert {" None", " True"} <= set(tasks.required_tokens())
        with pytest.raises(tasks.TaskError, match="already registered"):
            tasks.register(task)
        b = tasks.encode("none_or_true", tokenizer, "train", 20, n_ctx=32)
        assert b.tokens.shape == (40, 32)
        bad = dataclasses.replace(task, name="bad_candidate", candidates=(" None", " True", " zzqqxv"),
                                  make_pair=lambda r, s: dataclasses.replace(_none_or_true(r, s), alt=" zzqqxv"))
        with pytest.raises(tasks.TaskError, match=r"bad_candidate.*' zzqqxv' is not a single token"):
            tasks.encode(bad, tokenizer, "train", 20, n_ctx=32)
        undeclared = dataclasses.replace(task, name="undeclared", candidates=(" None",))
        with pytest.raises(tasks.TaskError, match="undeclared.*not in its declared candidates"):
            undeclared.generate("train", 5)
    finally:
        tasks.unregister("none_or_true")
    assert "none_or_true" not in tasks.names()


def test_evaluate_on_tiny_model(tokenizer):
    from configs.tiny import get_config
    from wsparse import config as C
    from wsparse import model

    cfg = C.from_configdict(get_config()).model
    params = model.init_params(cfg, jax.random.key(0))
    names = ["single_double_quote", "var_swap", "indent_for"]
    res = tasks.evaluate(params, cfg, tokenizer, names, n=24, batch_size=16)
    assert list(res) == names
    forward = jax.jit(model.forward, static_argnums=2)
    for name in names:  # the bucketed, batched evaluation equals one plain forward over the padded batch
        b = tasks.encode(name, tokenizer, "test", 24, cfg.n_ctx)
        loss, acc = tasks.contrast_loss(forward(params, jnp.asarray(b.tokens), cfg), b)
        assert res[name]["n"] == 24
        assert res[name]["loss"] == pytest.approx(float(loss), rel=1e-4)
        assert res[name]["accuracy"] == pytest.approx(float(acc))
    assert "single_double_quote" in tasks.format_table(res)


def test_show_pair_marks_token_boundaries(tokenizer):
    p = tasks.get("indent_for").generate("test", 1)[0]
    text = tasks.show_pair(tokenizer, p)
    assert "|" in text and "⏎" in text and "correct" in text
    assert text.replace("|", "").count("positive") == 1


@pytest.mark.parametrize("name", tasks.PAPER_ORDER)
def test_shifted_prompts_are_python_and_longer(name):
    """Every built-in task declares the longer-context shift: the same cue after more module-level code, still
    valid Python, from its own stream and the split's own pools."""
    task = tasks.get(name)
    assert task.shift is not None and task.shift_description
    plain, shifted = task.generate("test", 40, seed=0), task.generate("test", 40, seed=0, shifted=True)
    assert {p.positive for p in plain}.isdisjoint({p.positive for p in shifted})
    assert np.mean([len(p.positive) for p in shifted]) > np.mean([len(p.positive) for p in plain])
    for p in shifted:
        for prompt, good, rest in ((p.positive, p.target, p.pos_rest), (p.negative, p.alt, p.neg_rest)):
            ast.parse(prompt + good + rest)
    assert task.generate("test", 40, seed=0, shifted=True) == shifted  # deterministic


def test_a_task_without_a_shift_refuses_shifted_prompts():
    task = tasks.Task("no_shift", tasks.get("for_while").make_pair, tasks.get("for_while").candidates)
    with pytest.raises(tasks.TaskError, match="no shifted"):
        task.generate("test", 4, shifted=True)
