"""The LLM as the gateway and the agent see it: `generate(messages, ...)` -> a `Generation`
that yields text pieces as tokens are produced, then knows its usage and finish reason.

`LocalLLM` runs `Engine` replicas (threads) behind the scenario's routing rule
(`sim.rules.routing`), with faults combined by `sim.rules.faults`; tokens cross from an engine
thread to the request's event loop through `call_soon_threadsafe` into an asyncio queue.
`RemoteLLM` (openai_backend.py) forwards to an OpenAI-compatible server instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import numpy as np
import torch

from loadtest.stack.engine import Engine, Sequence, StepStats
from loadtest.stack.errors import APIError
from loadtest.stack.faults import FaultBoard
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.model import TinyDecoder, pick_device
from loadtest.stack.options import StackOptions, kv_tokens
from loadtest.stack.vocab import Vocabulary
from sim.rules.routing import make_router
from sim.scenario.services import LLMFleet, LocalModel

Message = dict[str, str]
_STATUS = {"deadline_exceeded": 504, "upstream_error": 502, "aborted": 499}


class LLMError(Exception):
    """Generation failed: `code` is replica_down, overloaded, llm_error, deadline_exceeded,
    aborted, shutting_down or upstream_error."""

    def __init__(self, code: str, retry_after_s: float = 1.0) -> None:
        super().__init__(code)
        self.code, self.retry_after_s = code, retry_after_s

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 503)


class Generation(Protocol):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None

    def __aiter__(self) -> AsyncIterator[str]: ...
    async def close(self) -> None:
        """Stop generating (no-op once finished); safe to call more than once."""


class LLM(Protocol):
    model_name: str
    vocab: Vocabulary

    def count(self, messages: Prompt) -> int: ...
    async def generate(self, messages: Prompt, max_tokens: int, temperature: float,
                       deadline: float | None) -> Generation: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


Prompt = list[Message] | str  # chat messages, or the raw text of a completion


def render_prompt(messages: list[Message]) -> str:
    """The text the model sees: one `role: content` line per message."""
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content') or ''}" for m in messages)


def prompt_text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else render_prompt(prompt)


def _sink(loop: asyncio.AbstractEventLoop, q: asyncio.Queue):  # type: ignore[no-untyped-def]
    def put(kind: str, value: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(q.put_nowait, (kind, value))
    return put


class LocalGeneration:
    """Tokens of one sequence, as they come out of its replica's engine thread."""

    def __init__(self, llm: LocalLLM, engine: Engine, seq: Sequence, q: asyncio.Queue) -> None:
        self._llm, self._engine, self._seq, self._q = llm, engine, seq, q
        self.prompt_tokens = len(seq.prompt)
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._t0 = time.monotonic()

    async def __aiter__(self) -> AsyncIterator[str]:
        vocab = self._llm.vocab
        first = last = 0.0
        try:
            while True:
                kind, value = await self._q.get()
                if kind == "token":
                    last = time.monotonic()
                    if self.completion_tokens == 0:
                        self._llm.metrics.ttft.observe((), last - self._t0)
                        first = last
                    self.completion_tokens += 1
                    yield vocab.decode_one(int(value))  # type: ignore[arg-type]
                elif kind == "done":
                    self.finish_reason = str(value)
                    self._observe_tpot(first, last)
                    return
                else:
                    raise LLMError(str(value))
        finally:
            await self.close()  # the reader went away: free the replica's slot and KV

    def _observe_tpot(self, first: float, last: float) -> None:
        n, seq, m = self.completion_tokens, self._seq, self._llm.metrics
        if n > 1:
            m.tpot_engine.observe((), (seq.last_token_t - seq.first_token_t) / (seq.generated - 1))
            m.tpot_loop.observe((), (last - first) / (n - 1))

    async def close(self) -> None:
        if not self._seq.finished and not self._seq.aborted:
            self._engine.abort(self._seq)


class LocalLLM:
    """`replicas` engines sharing one set of weights (read-only), each with its own KV pool."""

    def __init__(self, fleet: LLMFleet, model: LocalModel, opts: StackOptions, faults: FaultBoard,
                 metrics: StackMetrics, rng: np.random.Generator, seed: int) -> None:
        self.fleet, self.model, self.faults, self.metrics, self._rng = fleet, model, faults, metrics, rng
        self.model_name = opts.model_name
        self._engine_nice = opts.engine_nice
        self.max_context = model.max_context
        self.vocab = Vocabulary(model.vocab)
        if opts.torch_threads:
            torch.set_num_threads(opts.torch_threads)
        device = pick_device(opts.device)
        shared = TinyDecoder(model, seed)
        kv = kv_tokens(fleet, model.max_context, opts.block_tokens)
        n = fleet.replicas
        self.engines = [Engine(model, fleet, kv, i, device, seed, shared, opts.block_tokens) for i in range(n)]
        for i, e in enumerate(self.engines):
            e.slowdown = self._slowdown
            e.is_down = functools.partial(self._is_down, i)
            e.on_step = self._observe
        self.router = make_router(fleet.routing)
        self._uniform: Callable[[], float] = lambda: float(rng.random())
        reg = metrics.registry
        reg.gauge("surge_llm_replicas_up", "LLM replicas serving", self._up_gauge)
        reg.gauge("surge_llm_kv_used_ratio", "share of KV cache in use", self._kv_gauge, ("replica",))
        reg.gauge("surge_llm_sequences", "sequences per replica by state", self._seq_gauge, ("replica", "state"))
        # vLLM's names for the same things (per replica; `model_name` as vLLM labels them)
        each = [(str(e.index), self.model_name) for e in self.engines]
        reg.gauge("vllm:num_requests_running", "sequences in the batch",
                  lambda: [(k, len(e.running)) for k, e in zip(each, self.engines, strict=True)], ("replica", "model_name"))
        reg.gauge("vllm:num_requests_waiting", "sequences waiting to join the batch",
                  lambda: [(k, e.queued) for k, e in zip(each, self.engines, strict=True)], ("replica", "model_name"))
        reg.gauge("vllm:kv_cache_usage_perc", "fraction of the KV cache in use (0..1)",
                  lambda: [(k, e.kv_used_tokens / e.kv_capacity_tokens) for k, e in zip(each, self.engines, strict=True)],
                  ("replica", "model_name"))
        reg.counter_from("surge_llm_step_cpu_seconds", "CPU seconds the replica's engine thread spent in steps",
                         lambda: [((str(e.index),), e.cpu_s) for e in self.engines], ("replica",))
        reg.counter_from("vllm:num_preemptions", "sequences preempted so far (recompute)",
                         lambda: [(k, e.preemptions) for k, e in zip(each, self.engines, strict=True)],
                         ("replica", "model_name"))

    def _slowdown(self) -> float:
        return self.faults.effect("llm").slowdown

    def _is_down(self, i: int) -> bool:
        """Replica `i` is down when it is among the first `units_down` (`sim.rules.faults`)."""
        return i < self.faults.effect("llm").units_down(len(self.engines))

    def _observe(self, e: Engine, s: StepStats) -> None:
        r = (str(e.index),)
        self.metrics.batch.observe(r, s.batch_seqs)
        self.metrics.step_s.observe(r, s.duration_s)
        self.metrics.gen_tokens.inc(r, s.new_tokens)
        self.metrics.prefill_tokens.inc(r, s.prefill_tokens)
        self.metrics.decode_seqs.inc(r, s.decode_seqs)
        self.metrics.kv_tokens.inc(r, s.kv_tokens)
        self.metrics.iteration_tokens.observe(r, s.prefill_tokens + s.new_tokens)

    def choose(self) -> Engine | None:
        """The replica a new sequence goes to (the scenario's routing rule), None when none is up."""
        live = [self.engines[i] for i in self.up()]
        return live[self.router.pick(live, self._uniform)] if live else None

    def up(self) -> list[int]:
        return [e.index for e in self.engines if not e.is_down()]

    def _up_gauge(self):  # type: ignore[no-untyped-def]
        return [((), len(self.up()))]

    def _kv_gauge(self):  # type: ignore[no-untyped-def]
        return [((str(e.index),), e.kv_used_tokens / e.kv_capacity_tokens) for e in self.engines]

    def _seq_gauge(self):  # type: ignore[no-untyped-def]
        out = []
        for e in self.engines:
            out += [((str(e.index), "running"), len(e.running)), ((str(e.index), "queued"), e.queued)]
        return out

    def start(self) -> None:
        for e in self.engines:
            e.start(self._engine_nice)

    def stop(self) -> None:
        for e in self.engines:
            e.stop()

    def encode(self, messages: Prompt) -> list[int]:
        return [0, *self.vocab.encode(prompt_text(messages))]  # id 0 doubles as BOS: never empty

    def count(self, messages: Prompt) -> int:
        return 1 + self.vocab.count(prompt_text(messages))

    async def generate(self, messages: Prompt, max_tokens: int, temperature: float,
                       deadline: float | None) -> LocalGeneration:
        """Queue a sequence on a replica (chat messages, or a completion's raw prompt text);
        raise `APIError` (too long) or `LLMError`."""
        prompt = self.encode(messages)
        limit = min(self.max_context, self.engines[0].kv_capacity_tokens)
        if len(prompt) + max_tokens > limit:
            raise APIError(400, f"this model's context is {limit} tokens; the prompt has {len(prompt)} and "
                           f"max_tokens asks for {max_tokens}", "context_length_exceeded", "messages")
        p_err = self.faults.effect("llm").error_rate
        if p_err and self._rng.random() < p_err:
            raise LLMError("llm_error")
        engine = self.choose()
        if engine is None:
            raise LLMError("replica_down", 5.0)
        if self.fleet.queue_limit is not None and engine.queued >= self.fleet.queue_limit:
            raise LLMError("overloaded")
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        seq = Sequence(prompt=prompt, max_tokens=max_tokens, temperature=temperature, deadline=deadline,
                       sink=_sink(loop, q))
        engine.submit(seq)
        return LocalGeneration(self, engine, seq, q)
