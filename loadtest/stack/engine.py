"""One LLM replica: a continuous-batching scheduler around `TinyDecoder`, in its own thread.

Each step the scheduler (1) drops sequences that were aborted or whose deadline passed,
(2) gives every decoding sequence one token slot, preempting the newest sequences by
recompute when the KV pool is full, (3) fills the rest of the `max_batched_tokens` budget
with prefill: first sequences already part-way through their prompt, then waiting ones while
fewer than `max_num_seqs` run (chunked when `chunked_prefill`), and (4) runs one batched
forward for all decodes and one for all prefill chunks. New sequences therefore join between
decode steps, and finished ones leave without stalling the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from loadtest.stack.model import Batch, KVPool, TinyDecoder
from sim.scenario.services import LLMFleet, LocalModel

_ids = itertools.count()


@dataclass(eq=False)
class Sequence:
    """One generation request. `deadline` is a `time.monotonic()` value (None = none).

    Events go to `sink(kind, value)` from the engine thread: ("token", id), ("done", reason),
    ("error", code).
    """

    prompt: list[int]
    max_tokens: int
    sink: Callable[[str, object], None]
    temperature: float = 1.0
    deadline: float | None = None
    id: int = field(default_factory=lambda: next(_ids))
    tokens: list[int] = field(default_factory=list)
    computed: int = 0  # tokens whose keys and values are in the pool
    blocks: list[int] = field(default_factory=list)  # KV accounting: blocks held
    slot: int | None = None  # cache row while running
    generated: int = 0
    first_token_t: float = 0.0  # time.monotonic() when the engine sampled the first and the latest token
    last_token_t: float = 0.0
    preemptions: int = 0
    aborted: bool = False
    finished: bool = False

    def __post_init__(self) -> None:
        self.tokens = list(self.prompt)

    @property
    def pending(self) -> int:
        """Tokens to run through the model before the next token can be sampled."""
        return len(self.tokens) - self.computed


@dataclass
class StepStats:
    """What one scheduler step did: sequences in the batch, tokens in, tokens out, seconds (wall
    time, and the CPU time of the engine's thread: less than the wall time when other threads or
    processes took the core meanwhile)."""

    batch_seqs: int
    prefill_tokens: int
    new_tokens: int
    duration_s: float
    cpu_s: float = 0.0
    decode_seqs: int = 0
    kv_tokens: int = 0  # tokens cached for the batch's sequences after the step (the cost model's context term)


class Engine:
    """A replica of the scenario's LLM fleet (`services.llm`: max_num_seqs, max_batched_tokens,
    chunked_prefill) with `kv_cache_tokens` of KV cache in blocks of `block_tokens`.
    `start()` runs the loop in a thread; `step()` may be called directly instead."""

    def __init__(self, model_spec: LocalModel, cfg: LLMFleet, kv_cache_tokens: int, index: int = 0,
                 device: torch.device | None = None, seed: int = 0, model: TinyDecoder | None = None,
                 block_tokens: int = 16) -> None:
        self.cfg, self.index = cfg, index
        self.device = device or torch.device("cpu")
        self.model = (model or TinyDecoder(model_spec, seed)).to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype
        self.pool = KVPool(model_spec, kv_cache_tokens, block_tokens, self.device, self.dtype, cfg.max_num_seqs)
        self.gen = torch.Generator(device=self.device).manual_seed(seed * 1000 + index)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._inbox: queue.SimpleQueue[Sequence | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by abort/stop: ends a slowdown pause early
        self.slowdown: Callable[[], float] = lambda: 1.0
        self.is_down: Callable[[], bool] = lambda: False
        self.on_step: Callable[[Engine, StepStats], None] = lambda e, s: None
        self.submitted = 0  # sequences handed to this replica (router reads `load`)
        self.done = 0
        self.preemptions = 0
        self.cpu_s = 0.0  # CPU seconds of this replica's steps so far (its thread's CPU clock)

    # ---- thread-safe API -------------------------------------------------------------
    @property
    def load(self) -> int:
        """Sequences submitted and not finished (what JSQ routing compares)."""
        return self.submitted - self.done

    @property
    def kv_used_tokens(self) -> int:
        return (self.pool.num_blocks - self.pool.free_blocks) * self.pool.block_tokens

    @property
    def kv_capacity_tokens(self) -> int:
        return self.pool.capacity_tokens

    @property
    def queued(self) -> int:
        """Sequences submitted and not yet running (waiting or still in the inbox)."""
        return max(0, self.load - len(self.running))

    def submit(self, seq: Sequence) -> None:
        self.submitted += 1
        self._inbox.put(seq)

    def abort(self, seq: Sequence) -> None:
        """Stop `seq` at the next step (client gone or deadline passed); frees its KV."""
        seq.aborted = True
        self._inbox.put(None)
        self._wake.set()

    def start(self, nice: int = 0) -> None:
        """Run the loop in a thread; `nice` > 0 lowers that thread's CPU priority (Linux: per
        thread), so that the event loop sharing the core gets the CPU first whenever it has work."""
        self._thread = threading.Thread(target=self._loop, args=(nice,), name=f"llm-replica-{self.index}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop; sequences still in it end with an error."""
        self._stop.set()
        self._inbox.put(None)
        self._wake.set()
        if self._thread:
            self._thread.join(timeout_s)

    # ---- engine thread -------------------------------------------------------------
    def _loop(self, nice: int = 0) -> None:
        if nice > 0:
            lower_thread_priority(nice)
        with torch.inference_mode():
            while not self._stop.is_set():
                if not self.waiting and not self.running:
                    try:
                        item = self._inbox.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    if item is not None:
                        self.waiting.append(item)
                self.step()
        for s in list(self.running) + list(self.waiting):
            self._finish(s, "error", "shutting_down")

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self.waiting.append(item)

    def _finish(self, seq: Sequence, kind: str, value: object) -> None:
        if seq.finished:
            return
        seq.finished = True
        self._free_kv(seq)
        if seq in self.running:
            self.running.remove(seq)
        self.done += 1
        seq.sink(kind, value)

    def _reap(self) -> None:
        now = time.monotonic()
        down = self.is_down()
        for s in [*self.running, *self.waiting]:
            if down:
                self._finish(s, "error", "replica_down")
            elif s.aborted:
                self._finish(s, "error", "aborted")
            elif s.deadline is not None and now > s.deadline:
                self._finish(s, "error", "deadline_exceeded")
        if any(s.finished for s in self.waiting):
            self.waiting = deque(s for s in self.waiting if not s.finished)

    def _preempt_newest(self) -> Sequence:
        victim = self.running.pop()  # newest admitted loses its cache (recompute later)
        self._free_kv(victim)
        victim.computed = 0
        victim.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(victim)
        return victim

    def _free_kv(self, seq: Sequence) -> None:
        self.pool.release(seq.blocks)
        if seq.slot is not None:
            self.pool.give_slot(seq.slot)
            seq.slot = None

    def _grow(self, seq: Sequence, tokens: int) -> bool:
        """Make `seq` own enough blocks for `tokens` tokens; False if the pool is short."""
        need = self.pool.blocks_for(tokens) - len(seq.blocks)
        if need <= 0:
            return True
        if need > self.pool.free_blocks:
            return False
        seq.blocks.extend(self.pool.allocate(need))
        return True

    def _schedule_decodes(self) -> list[Sequence]:
        decodes = []
        for s in list(self.running):
            if s.pending != 1 or s not in self.running:
                continue
            while not self._grow(s, s.computed + 1):
                if self._preempt_newest() is s:
                    break
            if s in self.running:
                decodes.append(s)
        return decodes

    def _schedule_prefills(self, budget: int) -> list[tuple[Sequence, int]]:
        chunks: list[tuple[Sequence, int]] = []
        alone = budget == self.cfg.max_batched_tokens
        for s in [r for r in self.running if r.pending > 1]:
            c = min(s.pending, budget) if self.cfg.chunked_prefill else s.pending
            if budget <= 0 or (c > budget and not alone) or not self._grow(s, s.computed + c):
                return chunks
            chunks.append((s, c))
            budget, alone = budget - c, False
        while self.waiting and len(self.running) < self.cfg.max_num_seqs and budget > 0:
            s = self.waiting[0]
            c = min(s.pending, budget) if self.cfg.chunked_prefill else s.pending
            if (c > budget and not alone) or not self._grow(s, s.computed + c):
                break
            self.running.append(self.waiting.popleft())
            s.slot = self.pool.take_slot()
            chunks.append((s, c))
            budget, alone = budget - c, False
        return chunks

    def step(self) -> StepStats:
        """One scheduler iteration; returns what it did (zeros when idle)."""
        t0, c0 = time.perf_counter(), time.thread_time()
        self._drain_inbox()
        self._reap()
        decodes = self._schedule_decodes()
        prefills = self._schedule_prefills(self.cfg.max_batched_tokens - len(decodes))
        new = 0
        if decodes:
            new += self._run([(s, 1) for s in sorted(decodes, key=lambda s: s.slot)])  # type: ignore[arg-type, return-value]
        if prefills:
            new += self._run(prefills)
        dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        self.cpu_s += cpu
        kv = sum(s.computed for s in decodes) + sum(s.computed for s, _ in prefills)
        stats = StepStats(len(decodes) + len(prefills), sum(c for _, c in prefills), new, dt, cpu, len(decodes), kv)
        if decodes or prefills:
            factor = self.slowdown()
            if factor > 1.0:  # a slowdown fault stretches every step, like a throttled GPU
                self._pause((factor - 1.0) * dt)
            self.on_step(self, stats)
        return stats

    def _pause(self, seconds: float) -> None:
        """Sleep `seconds` (the stretch of a slowed step), ending sequences that are aborted or
        whose deadline passes meanwhile at once: their clients hear it then, not a whole
        stretched step later. The others still wait the full stretch."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            self._wake.clear()
            self._reap()
            now = time.monotonic()
            due = [s.deadline for s in self.running if s.deadline is not None and s.deadline > now]
            until = min([end, *due])
            if until <= now:
                return
            self._wake.wait(until - now)

    def _batch(self, rows: list[tuple[Sequence, int]]) -> Batch:
        dev = self.device
        width = max(c for _, c in rows)
        slots = [s.slot for s, _ in rows]
        tok = [s.tokens[s.computed:s.computed + c] + [0] * (width - c) for s, c in rows]
        pos = [list(range(s.computed, s.computed + c)) + [0] * (width - c) for s, c in rows]
        write = [[s.slot] * c + [self.pool.scratch_slot] * (width - c) for s, c in rows]
        packed = slots == list(range(len(rows)))
        return Batch(
            tokens=torch.tensor(tok, device=dev), positions=torch.tensor(pos, device=dev),
            write_slots=torch.tensor(write, device=dev),
            slots=None if packed else torch.tensor(slots, device=dev),
            context=max(s.computed + c for s, c in rows),
            context_lens=torch.tensor([s.computed + c for s, c in rows], device=dev),
            last=torch.tensor([c - 1 for _, c in rows], device=dev),
        )

    def _sample(self, logits: torch.Tensor, rows: list[tuple[Sequence, int]]) -> list[int]:
        """Temperature sampling by inverse CDF (one uniform per row: much cheaper than
        torch.multinomial over the vocabulary); temperature 0 is greedy."""
        temps = torch.tensor([max(s.temperature, 1e-4) for s, _ in rows], device=logits.device)
        cdf = torch.softmax(logits.float() / temps.view(-1, 1), dim=-1).cumsum(-1)
        u = torch.rand((len(rows), 1), generator=self.gen, device=logits.device) * cdf[:, -1:]
        drawn = torch.searchsorted(cdf, u).view(-1).clamp_(max=logits.shape[-1] - 1)
        zero = torch.tensor([s.temperature <= 0 for s, _ in rows], device=logits.device)
        return torch.where(zero, logits.argmax(-1), drawn).tolist()

    def _run(self, rows: list[tuple[Sequence, int]]) -> int:
        logits = self.model(self._batch(rows), self.pool.k, self.pool.v)
        ready = [(i, s) for i, (s, c) in enumerate(rows) if s.computed + c == len(s.tokens)]
        for s, c in rows:
            s.computed += c
        if not ready:
            return 0
        picked = self._sample(logits[[i for i, _ in ready]], [rows[i] for i, _ in ready])
        now = time.monotonic()
        for (_, s), tok in zip(ready, picked, strict=True):
            s.tokens.append(tok)
            s.generated += 1
            s.last_token_t = now
            if s.generated == 1:
                s.first_token_t = now
            s.sink("token", tok)  # recompute after preemption samples only new tokens
            if s.generated >= s.max_tokens:
                self._finish(s, "done", "length")
        return len(ready)


def lower_thread_priority(nice: int) -> bool:
    """Add `nice` to the calling thread's nice value (Linux applies it to that thread alone;
    lowering one's priority needs no privilege). False where not supported."""
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        return True
    return False
