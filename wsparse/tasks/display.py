"""Human-readable pairs with token boundaries marked, so a person can check a task under a tokenizer."""

from __future__ import annotations

from tokenizers import Tokenizer

from wsparse.tasks.base import Pair

_VISIBLE = str.maketrans({" ": "·", "\n": "⏎\n", "\t": "→"})


def mark_tokens(tokenizer: Tokenizer, text: str) -> str:
    """``text`` split into its tokens by ``|``, spaces shown as ``·`` and newlines as ``⏎``."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    return "|".join(text[a:b].translate(_VISIBLE) for a, b in enc.offsets)


def show_pair(tokenizer: Tokenizer, pair: Pair) -> str:
    out = []
    for label, prompt, good, bad in (("positive", pair.positive, pair.target, pair.alt),
                                     ("negative", pair.negative, pair.alt, pair.target)):
        out.append(f"--- {label}: correct {good!r}, wrong {bad!r}")
        out.append(mark_tokens(tokenizer, prompt) + "|[" + good.translate(_VISIBLE) + "]")
    return "\n".join(out)
