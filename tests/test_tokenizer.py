"""The BPE: exact vocab, EOT id, round trip, required strings as single tokens at pre-token boundaries."""

import random

import pytest

from wsparse.data import synthetic
from wsparse.data import tokenizer as T

REQUIRED = ('")', "')", "]]", " enumerate", " range", " as", ".add", " +=", "=None", "):\n", "zqzqxjv", " frobnicated")


@pytest.fixture(scope="module")
def tok():
    docs = [synthetic.program(i) for i in range(1200)]
    return T.train(iter(docs), vocab_size=2048, required=REQUIRED)


def test_vocab_and_eot(tok, tiny_prepared):
    assert tok.get_vocab_size(with_added_tokens=True) == 2048
    assert tok.token_to_id(T.EOT) == T.EOT_ID == 2047
    loaded = T.load(tiny_prepared.tokenizer_path)
    assert loaded.get_vocab_size(with_added_tokens=True) == 2048 and T.eot_id(loaded) == 2047
    assert tok.encode(T.EOT).ids == [2047]


def _random_text(rng: random.Random) -> str:
    pools = ["abc xyz", " \t\n\r", "()[]{}:;.,'\"=+-*/\\#@!?<>|&^%$~`", "0123456789", "éßçøπλжд", "中文字漢",
             "😀🚀🐍", "\x00\x01\x7f\u200b\ufeff"]
    out = []
    for _ in range(rng.randint(0, 60)):
        r = rng.random()
        if r < 0.8:
            out.append(rng.choice(rng.choice(pools)))
        else:  # any non-surrogate code point
            c = rng.randint(0, 0x10FFFF)
            out.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
    return "".join(out)


def test_round_trip_random_text(tok):
    rng = random.Random(0)
    texts = [_random_text(rng) for _ in range(500)] + [synthetic.program(10_000 + i) for i in range(20)]
    texts += ["", " ", "\n\n\n", "    x = 1\n", "a<|endoftext|>b", "\r\n\t \u3000 "]
    for s in texts:
        ids = tok.encode(s, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == s


def test_required_tokens_are_single(tok):
    for s in REQUIRED:
        assert len(tok.encode(s).ids) == 1, s


def test_required_tokens_at_prompt_boundaries(tok):
    """encode(prompt) + [id(c)] == encode(prompt + c): candidates are pre-tokens, not split-out added tokens."""
    cases = [('print("hello', '")'), ("print('hello", "')"), ("x = [[1, 2], [3, 4", "]]"),
             ("for i, x in", " enumerate"), ("for i in", " range"), ("with open(path)", " as"),
             ("seen", ".add"), ("text", " +="), ("def f(a, b", "=None"), ("def f(a, b", "):\n")]
    for prompt, cand in cases:
        (cid,) = tok.encode(cand).ids
        assert tok.encode(prompt).ids + [cid] == tok.encode(prompt + cand).ids, (prompt, cand)


def test_required_not_a_pre_token_raises():
    with pytest.raises(T.TokenizerError, match="'a b'"):
        T.train(iter(["a b"]), required=["a b"])


def test_vocab_too_small_for_corpus_raises():
    with pytest.raises(T.TokenizerError, match="vocab_size"):
        T.train(iter(["x = 1\n"] * 10), vocab_size=2048)


def test_tiny_prepared_task_tokens_single(tiny_prepared):
    tok = T.load(tiny_prepared.tokenizer_path)
    req = tiny_prepared.manifest["required_tokens"]
    assert all(len(tok.encode(s).ids) == 1 for s in req)


def test_every_data_error_is_a_data_error():
    """Entry points report DataError as a user's mistake (one line, no traceback): every data error must be one."""
    from wsparse import data

    for cls in (data.CorpusError, data.TokenizerError, data.ShardError, data.IncompatibleDataError):
        assert issubclass(cls, data.DataError), cls


def test_pre_tokenisation_pieces():
    """The paper's regex, checked on a line of Python: words take their leading space, a colon keeps its newline,
    an indent leaves one space for the next word."""
    assert T.pre_tokens('for x in range(10):\n    y = "a"') == [
        "for", " x", " in", " range", "(", "10", "):\n", "   ", " y", " =", ' "', "a", '"']
