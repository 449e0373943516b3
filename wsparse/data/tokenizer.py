"""The paper's byte-level BPE (docs/method.md section 3), with required strings guaranteed to be single tokens.

Required strings (task candidates) are NOT added as HF "added tokens": those are cut out of the text before
pre-tokenisation, so ``encode(prompt) + [id(c)]`` would stop matching ``encode(prompt + c)``. Instead we train the BPE,
then append merges (at the lowest priority) that build each missing required string from the pieces it currently
encodes to. Lower-priority merges never change how an already-single string encodes, so the result is verified once
at the end. To end at exactly ``vocab_size`` ids, the last learned merges are dropped to make room, and any room left
over is refilled with dropped merges, appended after the required ones.
"""

from __future__ import annotations

import functools
import json
from typing import Iterable, Iterator, Sequence

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from wsparse.data.errors import TokenizerError
from wsparse.files import sha256_file

PAT = r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
EOT = "<|endoftext|>"
VOCAB_SIZE = 2048
EOT_ID = VOCAB_SIZE - 1  # the last id, as in the paper; `eot_id(tok)` for other vocab sizes


@functools.cache
def _split() -> pre_tokenizers.PreTokenizer:
    """The paper's pre-tokenisation regex, compiled once per process (compiling it costs about 25 ms)."""
    return pre_tokenizers.Split(Regex(PAT), behavior="isolated", invert=False)


def _assemble(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [_split(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
    return tok


def pre_tokens(text: str) -> list[str]:
    """The paper regex's pieces of ``text`` (before the byte-level mapping)."""
    return [p for p, _ in _split().pre_tokenize_str(text)]


def _byte_level(s: str) -> str:
    (piece, _), = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(s)
    return piece


def _model_parts(tok: Tokenizer) -> tuple[dict[str, int], list[tuple[str, str]]]:
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges  # type: ignore[return-value]


def _check_required(required: Sequence[str]) -> None:
    for s in required:
        if not s:
            raise TokenizerError("required token '' is empty")
        if s == EOT:
            continue
        if pre_tokens(s) != [s]:
            raise TokenizerError(
                f"required token {s!r} is not a single pre-token under the paper's regex (it splits into "
                f"{pre_tokens(s)!r}), so no BPE can make it one token; choose candidates that are one pre-token")


class _Merges:
    """A BPE under construction: base alphabet + ordered merges; ``encode`` applies them by priority."""

    def __init__(self, alphabet: Sequence[str], merges: Sequence[tuple[str, str]]) -> None:
        self.alphabet = list(alphabet)
        self.merges = list(merges)

    def build(self) -> tuple[dict[str, int], list[tuple[str, str]]]:
        vocab = {a: i for i, a in enumerate(self.alphabet)}
        for a, b in self.merges:
            vocab.setdefault(a + b, len(vocab))
        return vocab, self.merges

    def pieces(self, s: str) -> list[str]:
        """Byte-level pieces of the single pre-token ``s``."""
        vocab, merges = self.build()
        model = models.BPE(vocab=vocab, merges=merges)
        ids = [t.id for t in model.tokenize(_byte_level(s))]
        inv = {i: t for t, i in vocab.items()}
        return [inv[i] for i in ids]

    def chain(self, s: str) -> list[tuple[str, str]]:
        """Merges that build ``s`` from its current pieces, merging the first two pieces until one is left.

        Each merge is computed with the previous ones in place, because a merge fires at every position it matches
        (``zqzq`` -> ``zq zq`` rather than ``zqz q``).
        """
        extra: list[tuple[str, str]] = []
        while len(parts := _Merges(self.alphabet, self.merges + extra).pieces(s)) > 1:
            extra.append((parts[0], parts[1]))
        return extra


def _new_tokens(m: _Merges, chains: Iterable[tuple[str, str]]) -> int:
    vocab, _ = m.build()
    seen = set(vocab)
    n = 0
    for a, b in chains:
        if a + b not in seen:
            seen.add(a + b)
            n += 1
    return n


def _with_required(alphabet: list[str], learned: list[tuple[str, str]], required: Sequence[str],
                   n_tokens: int) -> list[tuple[str, str]]:
    """Merges giving exactly ``n_tokens`` vocab entries with every required string a single token."""
    req = [s for s in dict.fromkeys(required) if s != EOT]
    k = 0  # learned merges dropped to make room
    while True:
        if k > len(learned):
            raise TokenizerError(f"vocab_size too small to make all {len(req)} required tokens single tokens")
        base = _Merges(alphabet, learned[:len(learned) - k])
        extra: list[tuple[str, str]] = []
        for s in req:  # chains are computed with earlier chains in place, so they compose
            extra += _Merges(alphabet, base.merges + extra).chain(s)
        need = _new_tokens(base, extra)
        if need <= k:
            break
        k = need
    m = _Merges(alphabet, base.merges + extra)
    for merge in learned[len(learned) - k:]:  # refill room left over, at the lowest priority
        if len(m.build()[0]) >= n_tokens:
            break
        m.merges.append(merge)
    if len(m.build()[0]) != n_tokens:
        raise TokenizerError(f"the training text only yields {len(m.build()[0])} of {n_tokens} BPE tokens; "
                             "add sources (or data.tokenizer_train_bytes) or lower data.vocab_size")
    return m.merges


def train(texts: Iterator[str], *, vocab_size: int = VOCAB_SIZE, required: Sequence[str] = ()) -> Tokenizer:
    """Trains the BPE on ``texts``; ids 0..vocab_size-2 are BPE tokens, vocab_size-1 is ``<|endoftext|>``."""
    _check_required(required)
    n_tokens = vocab_size - 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    if n_tokens < len(alphabet):
        raise TokenizerError(f"vocab_size {vocab_size} is below the byte alphabet size {len(alphabet) + 1}")
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [_split(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=n_tokens, initial_alphabet=alphabet, special_tokens=[],
                                  show_progress=False)
    raw.train_from_iterator(texts, trainer=trainer)
    vocab, learned = _model_parts(raw)
    merges = _with_required(alphabet, learned, required, n_tokens)
    tok = _assemble(*_Merges(alphabet, merges).build())
    verify(tok, required, vocab_size)
    return tok


def verify(tok: Tokenizer, required: Sequence[str], vocab_size: int) -> None:
    """Raises TokenizerError unless the vocab is exact, EOT is the last id and each required string is one token."""
    if tok.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise TokenizerError(f"tokenizer has {tok.get_vocab_size(with_added_tokens=True)} ids, expected {vocab_size}")
    if tok.token_to_id(EOT) != vocab_size - 1:
        raise TokenizerError(f"{EOT} has id {tok.token_to_id(EOT)}, expected {vocab_size - 1}")
    bad = [s for s in required if len(tok.encode(s).ids) != 1]
    if bad:
        raise TokenizerError(f"required tokens are not single tokens: {bad!r}")


def eot_id(tok: Tokenizer) -> int:
    return tok.token_to_id(EOT)


def save(tok: Tokenizer, path: str) -> str:
    """Writes ``tokenizer.json``; returns its sha256 (which the manifest and checkpoints record)."""
    tok.save(path, pretty=False)
    return sha256_file(path)


def load(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)
