"""Decode stretches: many batch steps of an LLM replica as one SimPy event.

When a step prefills nothing, nothing inside the replica changes until the next sequence
finishes or the KV cache would overflow: every step until then is planned at once (a decode
step is `StepCost.decode_steps_s`, its end the previous end plus its time, as SimPy adds a
delay, so the times are bit-identical to one event per step) and the stretch is one event at
the last step's end. A prefill step that completes every prompt in the batch, with nothing
left waiting and nothing finishing at its end, may head a stretch (its first tokens are
stamped with that step's end).

Anything from outside (a submit, a cancel, the replica going down, a new slowdown) cuts the
stretch at the end of the step in progress, which ends as an ordinary step; the cut stretch's
end event is then stale (a generation counter) and ignored. Reads of the KV cache and of the
fleet's counters first settle the steps ended so far, so every read sees what one event per
step shows at that instant. Only the order of events at exactly the same instant from unrelated
sources could differ (SimPy orders ties by when they were scheduled).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from itertools import accumulate
from typing import TYPE_CHECKING

import simpy
from simpy.events import NORMAL

from sim.costmodel import StepCost
from sim.des.calls import call_at_time
from sim.rules.tokens import output_tokens

if TYPE_CHECKING:
    from sim.des.llm import Replica, Seq

STRETCH_MAX_STEPS = 4096  # the longest stretch planned at once (a cut wastes the rest)

Plan = tuple[list[tuple["Seq", int]], int, int]  # a step: prefill chunks, prefill tokens, decoding sequences


class _Stretch:
    """Steps planned at once: `head` (a prefill step, or None), then decode steps of `n`
    sequences; `ends_s[i]` is step i's end, `dts_s[i]` its duration. `done` steps are
    settled; `started` have had their start counted."""

    __slots__ = ("head", "n", "ends_s", "dts_s", "done", "started")

    def __init__(self, head: Plan | None, n: int, ends_s: list[float], dts_s: list[float]) -> None:
        self.head, self.n, self.ends_s, self.dts_s = head, n, ends_s, dts_s
        self.done = 0
        self.started = 0 if head is None else 1  # a head step's start is counted when planned


class DecodeStretches:
    """The part of `Replica` that runs stretches (state it shares with the batch loop below)."""

    env: simpy.Environment
    cost: StepCost
    stats: FleetStats
    kv_cap: int
    decoding: list[tuple[int, int, Seq]]
    prefilling: list[Seq]
    n_waiting: int
    n_dec: int
    dec_ctx: int
    step_no: int
    _kv: int
    _slowdown: float
    _step: Plan
    _stretch: _Stretch | None
    _gen: int

    def _on_step(self, ev: simpy.Event) -> None:
        raise NotImplementedError

    def _advance(self, prefill: list[tuple[Seq, int]], now: float) -> int:
        raise NotImplementedError

    def _start_stretch(self, head_s: float | None) -> bool:
        """Plan the steps until the next sequence finishes or the KV cache would overflow (at
        most STRETCH_MAX_STEPS) as one event; False (an ordinary step) when that is one step.
        The step starting now has been planned by the batch loop: a decode step, or (taking
        `head_s` seconds) the prefill step in `_step`. Later steps would plan the same: no
        prefill, the batch and its limits as they are, and a waiting prompt that does not fit
        now does not fit later, as the cache only fills."""
        heap = self.decoding
        while heap and (heap[0][2].state != "decode" or heap[0][2].finish_step != heap[0][0]):
            heapq.heappop(heap)  # stale: ended, or preempted and readmitted
        after = self._after_decode_step() if head_s is None else self._after_prefill_step()
        if after is None:
            return False
        n, ctx, kv, k = after  # the k decode steps after the first: n sequences, from ctx and kv
        if n > 1:  # (a lone sequence is never preempted)
            k = min(k, (self.kv_cap - kv) // n)
        k = min(k, STRETCH_MAX_STEPS - 1)
        if k < 1:
            return False
        if head_s is None:
            dts_s = self.cost.decode_steps_s(n, self.dec_ctx, k + 1, self._slowdown)
        else:
            dts_s = [head_s, *self.cost.decode_steps_s(n, ctx, k, self._slowdown)]
        if not dts_s[0] > 0.0:  # zero-time steps would all end at this instant: keep their order
            return False
        ends_s = list(accumulate(dts_s, initial=self.env.now))  # ((now + dt1) + dt2) + ...
        del ends_s[0]
        self._stretch = _Stretch(self._step if head_s is not None else None, n, ends_s, dts_s)
        self.stats._open[self] = None  # type: ignore[index]
        self._gen += 1
        call_at_time(self.env, ends_s[-1], self._on_stretch_end, NORMAL, self._gen)
        return True

    def _after_decode_step(self) -> tuple[int, int, int, int]:
        """After the decode step starting now: (decoding sequences, their context, KV tokens
        held, decode steps until the next sequence finishes, that one included)."""
        n = self.n_dec
        heap = self.decoding
        k = heap[0][0] - self.step_no - 1 if heap else STRETCH_MAX_STEPS
        return n, self.dec_ctx + n, self._kv + n, k

    def _after_prefill_step(self) -> tuple[int, int, int, int] | None:
        """The same after the prefill step in `_step`, or None when it cannot head a stretch:
        a prompt stays partly filled or waiting, or a sequence finishes at its end."""
        prefill = self._step[0]
        if self.n_waiting or len(prefill) != len(self.prefilling):
            return None
        n = self.n_dec
        first = self.step_no + 1
        heap = self.decoding
        k = heap[0][0] - first if heap else STRETCH_MAX_STEPS
        ctx, kv = self.dec_ctx + n, self._kv + n
        for s, c in prefill:
            if c != s.todo:
                return None
            fresh = s.t_first is None  # its first token comes from this step, into the cache
            remaining = s.output - (1 if fresh else s.gen0)
            if remaining <= 0:
                return None
            n += 1
            ctx += s.prompt + fresh
            kv += fresh
            k = min(k, remaining)
        return (n, ctx, kv, k) if k >= 1 else None

    def _settle(self, ended: int | None = None) -> None:
        """Bring the replica and the fleet's counters up to now inside the stretch: the steps
        ended before now (or the first `ended`) are done, the next one has started."""
        st, stats = self._stretch, self.stats
        assert st is not None
        last = len(st.ends_s) - 1
        j = min(bisect_left(st.ends_s, self.env.now), last) if ended is None else ended
        if j > st.done and st.done == 0 and st.head is not None:
            prefill, tokens, n_dec = st.head
            stats.prefill_tokens += tokens
            stats._decode_tokens += output_tokens(n_dec, self._advance(prefill, st.ends_s[0]))
            st.done = 1
        if j > st.done:
            tokens = (j - st.done) * st.n
            self.step_no += j - st.done
            self._kv += tokens
            self.dec_ctx += tokens
            stats._decode_tokens += tokens
            st.done = j
        started = min(j + 1, last + 1)
        if started > st.started:
            stats._steps += started - st.started
            stats._batch_seqs += (started - st.started) * st.n
            busy = stats._busy_s
            for dt in st.dts_s[st.started:started]:  # one by one, as one event per step adds them
                busy += dt
            stats._busy_s = busy
            st.started = started

    def _close_stretch(self, st: _Stretch) -> None:
        """The stretch's step in progress becomes an ordinary step (its start counted)."""
        self._stretch = None
        del self.stats._open[self]  # type: ignore[arg-type]
        self._step = st.head if st.head is not None and st.done == 0 else ([], 0, st.n)

    def _cut(self) -> None:
        """Something from outside changed mid-stretch: the step in progress is the last."""
        st = self._stretch
        assert st is not None
        self._settle()
        self._close_stretch(st)
        if st.done + 1 < len(st.ends_s):
            self._gen += 1  # the stretch's end event is stale
            call_at_time(self.env, st.ends_s[st.done], self._on_step, NORMAL)
        # else the stretch's end event ends the step in progress, an ordinary one now

    def _on_stretch_end(self, ev: simpy.Event) -> None:
        if ev._value != self._gen:
            return  # cut: the step in progress ended as an ordinary one at its own event
        st = self._stretch
        if st is not None:
            self._settle(len(st.ends_s) - 1)
            self._close_stretch(st)
        self._on_step(ev)


class FleetStats:
    """Counters the recorder turns into per-interval series. Reads settle the replicas' open
    stretches first, so a read sees every step ended (or started) before now."""

    __slots__ = ("_steps", "_batch_seqs", "_busy_s", "prefill_tokens", "_decode_tokens", "preemptions", "_open")

    def __init__(self) -> None:
        self._steps = self._batch_seqs = self.prefill_tokens = self._decode_tokens = self.preemptions = 0
        self._busy_s = 0.0
        self._open: dict[Replica, None] = {}  # replicas inside a stretch, in a fixed order

    def _settled(self) -> FleetStats:
        for r in self._open:
            r._settle()
        return self

    @property
    def steps(self) -> int:
        """Batch steps started."""
        return self._settled()._steps

    @property
    def batch_seqs(self) -> int:
        """Sequences in the batch, summed over steps started."""
        return self._settled()._batch_seqs

    @property
    def busy_s(self) -> float:
        """Replica-seconds of steps started."""
        return self._settled()._busy_s

    @property
    def decode_tokens(self) -> int:
        """Decode tokens of steps ended (prefill steps: `prefill_tokens`, and their first tokens)."""
        return self._settled()._decode_tokens
