"""A word-level tokenizer over a small, deterministic vocabulary.

Token ids 0..V-1 each map to one word. The first words are real ones (so answers read like
the domain); the rest are pronounceable syllable pairs. Unknown words map to a stable id via
CRC32 (never `hash()`, which changes between processes).
"""

from __future__ import annotations

import re
import zlib

_WORDS = ["the", "a", "to", "and", "of", "you", "your", "i", "it", "is", "for", "with", "on", "order", "milk", "tea", "boba", "coffee", "latte", "cup", "large", "small", "medium", "sugar", "ice", "hot", "cold", "no", "less", "more", "extra", "free", "card", "campaign", "today", "shop", "store", "near", "me", "help", "buy", "pay", "paid", "payment", "total", "price", "yuan", "cents", "done", "ready", "pick", "up", "deliver", "delivery", "minutes", "sure", "okay", "here", "please", "thanks", "found", "best", "choice", "jasmine", "oolong", "matcha", "mango", "taro", "brown", "peach", "lemon", "green", "black", "pearls", "cream", "cheese", "foam", "confirm", "confirmed", "placed", "cart", "add", "item", "items", "menu", "size", "sweet", "half", "quarter", "full"]
_CONS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SPLIT = re.compile(r"\w+|[^\w\s]")


def _syllables() -> list[str]:
    return [c + v for c in _CONS for v in _VOWELS]


class Vocabulary:
    """Maps text to token ids and back; `size` ids, id i is `words[i]`."""

    def __init__(self, size: int) -> None:
        if size < 16:
            raise ValueError(f"'vocab' must be >= 16 (got {size})")
        words = list(dict.fromkeys(_WORDS))[:size]
        seen = set(words)
        syl = _syllables()
        i = 0
        while len(words) < size:
            # Two or three syllables: 70^2 + 70^3 ids before anything repeats.
            n, k = divmod(i, len(syl))
            w = syl[k] + syl[n % len(syl)] + (syl[n // len(syl) - 1] if n >= len(syl) else "")
            if w not in seen:
                seen.add(w)
                words.append(w)
            i += 1
        self.words: tuple[str, ...] = tuple(words)
        self._ids = {w: j for j, w in enumerate(self.words)}

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: one per word or punctuation mark."""
        out = []
        for piece in _SPLIT.findall(text.lower()):
            j = self._ids.get(piece)
            out.append(j if j is not None else zlib.crc32(piece.encode()) % self.size)
        return out

    def count(self, text: str) -> int:
        """Number of tokens in `text` (without building the id list)."""
        return sum(1 for _ in _SPLIT.finditer(text))

    def decode_one(self, token_id: int) -> str:
        """The text of one generated token, with its leading space."""
        return " " + self.words[token_id]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.decode_one(t) for t in ids).lstrip()

    def filler(self, n_tokens: int, offset: int = 0) -> str:
        """A deterministic text of exactly `n_tokens` tokens (used to pad agent prompts)."""
        return " ".join(self.words[(offset + 7 * i) % self.size] for i in range(n_tokens))
