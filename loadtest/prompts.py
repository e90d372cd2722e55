"""What a streamed generation request carries: fresh prompt text and its JSON body, cheaply.

Every prompt is its own draw of words (no two prompts share a prefix a server could cache; the
reference stack counts one token per word). The draw is the same as drawing each prompt's words
one by one from the stream, only done in blocks: a block of words is drawn and joined once, and
a prompt is the next `n` words of it, one string slice — so a prompt costs the same whatever its
length, where a join per prompt costs a Python step per word.

The body is `json.dumps` of the request, from a template made once by `json.dumps` itself (the
prompt's words need no escaping: checked when the template is made), so a request is a few
string joins instead of a dict and an encoder pass.
"""

from __future__ import annotations

import json
from array import array
from typing import Any, Literal

import numpy as np

from loadtest.stack.vocab import Vocabulary

WORDS: tuple[str, ...] = Vocabulary(4096).words
_BLOCK_WORDS = 2048  # words drawn at a time (per client: a closed-model user has its own stream)


def _plain(words: tuple[str, ...]) -> bool:
    """Whether every word is its own JSON text (no quote, backslash, control or non-ASCII character)."""
    return all(json.dumps(w) == f'"{w}"' and " " not in w for w in words)


class WordStream:
    """Consecutive words of one seeded stream, handed out `n` at a time as one string."""

    def __init__(self, rng: np.random.Generator, words: tuple[str, ...] = WORDS, block_words: int = _BLOCK_WORDS) -> None:
        self._rng, self._words, self._block = rng, words, block_words
        self._len = np.array([len(w) + 1 for w in words], dtype=np.int64)  # each word and its space
        self.plain = _plain(words)
        self._text, self._starts, self._pos, self._n = "", array("q", [0]), 0, 0

    def _refill(self, at_least: int) -> None:
        """A new block (what is left of the old one is not used: every word is still a fresh draw)."""
        n = max(self._block, at_least)
        idx = self._rng.integers(0, len(self._words), n)
        self._text = " ".join(map(self._words.__getitem__, idx.tolist())) + " "
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(self._len[idx], out=starts[1:])
        self._starts, self._pos, self._n = array("q", starts.tobytes()), 0, n

    def text(self, n_words: int) -> str:
        """The next `n_words` words (at least one), separated by single spaces."""
        n_words = max(1, n_words)
        if self._pos + n_words > self._n:
            self._refill(n_words)
        a, self._pos = self._pos, self._pos + n_words
        return self._text[self._starts[a]:self._starts[self._pos] - 1]


_MAX, _TEXT = 917_346_285_107, "surge-prompt-text-mark"  # stand-ins for the values in the template


class GenerationBody:
    """The JSON body of one streamed generation (chat: one user message; completions: a prompt),
    exactly `json.dumps` of the request dict, for any prompt text and `max_tokens`."""

    def __init__(self, endpoint: Literal["chat", "completions"], model: str, ignore_eos: bool) -> None:
        self.path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
        self.overhead_tokens = 3 if endpoint == "chat" else 1  # BOS (+ "user", ":") as the reference stack counts them
        sample = json.dumps(self.request(endpoint, model, ignore_eos, _MAX, _TEXT))
        template = sample.replace("{", "{{").replace("}", "}}")
        self.endpoint, self.model, self.ignore_eos = endpoint, model, ignore_eos
        fmt: Any = template.replace(json.dumps(_TEXT), '"{1}"').replace(str(_MAX), "{0}").format
        exact = fmt(7, "a b") == json.dumps(self.request(endpoint, model, ignore_eos, 7, "a b"))
        self._format = fmt if exact else None  # a model name that holds a stand-in: json.dumps every time

    @staticmethod
    def request(endpoint: str, model: str, ignore_eos: bool, max_tokens: int, text: str) -> dict[str, Any]:
        """The request as a dict (what the template reproduces)."""
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": True,
                                "stream_options": {"include_usage": True}}
        if endpoint == "chat":
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        if ignore_eos:
            body |= {"ignore_eos": True, "min_tokens": max_tokens}
        return body

    def encode(self, text: str, max_tokens: int, plain_text: bool = True) -> bytes:
        """The body's bytes; `plain_text`: the text needs no JSON escaping (`WordStream.plain`)."""
        if not plain_text or self._format is None:
            return json.dumps(self.request(self.endpoint, self.model, self.ignore_eos, max_tokens, text)).encode()
        return self._format(max_tokens, text).encode()
