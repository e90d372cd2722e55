"""LLM replicas with continuous batching, simulated one batch step (one SimPy event) at a time.

Each step: decoding sequences produce one token each; prompts are prefilled (in chunks when
`chunked_prefill`) within `max_batched_tokens`; waiting sequences join between steps while
`max_num_seqs` and the KV cache allow. When decode growth would overflow the KV cache, the
most recently admitted sequence is preempted and later recomputed (vLLM's default).

Decode progress is kept in aggregate (a step counter and a heap of finishing steps) so a step
costs O(sequences that start, finish or prefill), not O(batch size).

Decode stretches: when a step would admit and prefill nothing, nothing inside the replica
changes until the next sequence finishes or the KV cache would overflow, so the steps until
then are planned at once (their times added up in order, as one event per step would) and run
as one event at the last step's end. Anything from outside (a submit, a cancel, the replica
going down, a new slowdown) cuts the stretch at the end of the step in progress, which ends as
an ordinary step; the cut stretch's end event is stale (a generation counter) and ignored.
Reads of the KV cache and of the fleet's counters first settle the steps ended so far, so they
see what one event per step shows at that instant. Event times are bit-identical to one event
per step; only the order of events at exactly the same instant from unrelated sources could
differ (SimPy orders ties by when they were scheduled).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from itertools import accumulate

import simpy
from simpy.events import NORMAL, URGENT, EventPriority

from sim.costmodel import StepCost
from sim.scenario.services import LLMFleet

OK, ERROR, DOWN, SHED, CANCELLED = "ok", "error", "down", "shed", "cancelled"
STRETCH_MAX_STEPS = 4096  # the longest decode stretch planned at once (a cut wastes the rest)


class Seq:
    """One LLM call. `done` fires with OK/ERROR/DOWN/SHED/CANCELLED; `t_first` is the time of
    its first output token (set when prefill completes)."""

    __slots__ = ("prompt", "output", "todo", "filled", "gen0", "held0", "dec_start", "finish_step",
                 "t_first", "t_done", "done", "state", "replica", "order")

    def __init__(self, env: simpy.Environment, prompt: int, output: int) -> None:
        self.prompt = prompt  # tokens to prefill (grows on recompute after preemption)
        self.output = output
        self.todo = prompt  # prompt tokens left to prefill
        self.filled = 0
        self.gen0 = 0  # tokens generated before the current decode run
        self.held0 = 0  # KV tokens held when the current decode run started
        self.dec_start = 0  # replica step number when the current decode run started
        self.finish_step = 0
        self.t_first: float | None = None
        self.t_done = 0.0
        self.done = env.event()
        self.state = "new"  # new | waiting | prefill | decode | ended
        self.replica: Replica | None = None
        self.order = 0


class _Stretch:
    """Decode-only steps planned at once: `n` sequences each step; `ends_s[i]` is step i's end,
    `dts_s[i]` its duration. `done` steps are settled; `started` have had their start counted."""

    __slots__ = ("n", "ends_s", "dts_s", "done", "started")

    def __init__(self, n: int, ends_s: list[float], dts_s: list[float]) -> None:
        self.n, self.ends_s, self.dts_s = n, ends_s, dts_s
        self.done = self.started = 0


class Replica:
    """One LLM replica: a continuous-batching loop over its waiting, prefilling and decoding
    sequences. `decode_stretches = False` runs one event per step (the reference the
    equivalence test compares the stretches with)."""

    decode_stretches = True

    def __init__(self, env: simpy.Environment, idx: int, spec: LLMFleet, cost: StepCost, stats: FleetStats) -> None:
        self.env, self.idx, self.spec, self.cost, self.stats = env, idx, spec, cost, stats
        self.kv_cap = spec.kv_tokens
        self._kv = 0  # KV tokens held (inside a stretch: as of the last settle)
        self.waiting: deque[Seq] = deque()
        self.n_waiting = 0  # live sequences in `waiting` (cancelled ones leave the deque lazily)
        self.prefilling: list[Seq] = []
        self.decoding: list[tuple[int, int, Seq]] = []  # heap of (finish_step, order, seq)
        self.admitted: list[Seq] = []  # admission order, for choosing preemption victims
        self.n_dec = 0
        # sequences submitted and not ended (waiting or running), what routing compares: a plain
        # attribute, kept = n_waiting + len(prefilling) + n_dec, as routing reads it per replica
        self.load = 0
        self.dec_ctx = 0  # KV tokens held by decoding sequences
        self.step_no = 0
        self._up = True
        self.accepting = True
        self._slowdown = 1.0
        self._order = 0
        # The batch loop is driven by callbacks on bare events, not a SimPy process: a step is
        # one scheduled event and one call, with no generator to resume. States: starting (the
        # first iteration is scheduled), stepping (a step's end is scheduled), in a stretch
        # (its last step's end is scheduled), idle (waiting for work or for the replica to come
        # up), waking (idle, an iteration scheduled at once).
        self._idle = False
        self._waking = False
        self._step: tuple[list[tuple[Seq, int]], int, int] = ([], 0, 0)  # in progress: prefill chunks, tokens, decodes
        self._stretch: _Stretch | None = None
        self._gen = 0  # the live stretch's generation: older end events are stale
        _call_at(env, 0.0, self._on_wake, URGENT)

    @property
    def kv_used(self) -> int:
        """KV-cache tokens held now."""
        if self._stretch is not None:
            self._settle()
        return self._kv

    @property
    def kv_used_tokens(self) -> int:
        return self.kv_used

    @property
    def kv_capacity_tokens(self) -> int:
        return self.kv_cap

    @property
    def up(self) -> bool:
        return self._up

    @up.setter
    def up(self, value: bool) -> None:
        if value != self._up and self._stretch is not None:
            self._cut()
        self._up = value

    @property
    def slowdown(self) -> float:
        """Step-time multiplier (a slowdown fault); a new value applies from the next step."""
        return self._slowdown

    @slowdown.setter
    def slowdown(self, value: float) -> None:
        if value != self._slowdown and self._stretch is not None:
            self._cut()
        self._slowdown = value

    def submit(self, s: Seq) -> None:
        s.replica, s.state = self, "waiting"
        self.waiting.append(s)
        self.n_waiting += 1
        self.load += 1
        self.wake()

    # -- the batch loop ------------------------------------------------------------------------
    def _on_wake(self, _: simpy.Event) -> None:
        self._waking = self._idle = False
        self._iterate()

    def _iterate(self) -> None:
        """Start the next batch step (or decode stretch), or go idle when there is nothing to run."""
        if not self._up or not (self.waiting or self.prefilling or self.n_dec):
            self._idle = True
            return
        if self.n_dec and self._kv + self.n_dec > self.kv_cap:
            self._make_room()
        if self.waiting or self.prefilling:
            prefill, kv_read, attended = self._plan_prefill()
        else:  # decode only: the common step
            prefill, kv_read, attended = [], 0, 0
        n_dec = self.n_dec
        if not prefill:
            if not n_dec:  # nothing fits (KV full of waiting prompts): wait
                self._idle = True
                return
            if self.decode_stretches and not self.prefilling and self._start_stretch():
                return
        tokens = 0
        for _, c in prefill:
            tokens += c
        dt = self._slowdown * self.cost.step_s(tokens, n_dec, kv_read + self.dec_ctx, attended + self.dec_ctx)
        stats = self.stats
        stats._steps += 1
        stats._batch_seqs += n_dec + len(prefill)
        stats._busy_s += dt
        self._step = (prefill, tokens, n_dec)
        _call_at(self.env, dt, self._on_step, NORMAL)

    def _on_step(self, _: simpy.Event) -> None:
        if self._up:
            prefill, tokens, n_dec = self._step
            self.stats.prefill_tokens += tokens
            self.stats._decode_tokens += n_dec  # as planned: a cancelled sequence's token was computed
            self._advance(prefill)
        self._iterate()

    # -- decode stretches ---------------------------------------------------------------------
    def _start_stretch(self) -> bool:
        """Plan the decode-only steps until the next sequence finishes or the KV cache would
        overflow (at most STRETCH_MAX_STEPS) as one event; False (an ordinary step) for fewer
        than two. The step that starts now has been planned like any other by `_iterate`;
        later ones would plan the same (no prefill: the batch and its limits stay as they are,
        a waiting prompt that does not fit now does not fit later, as the cache only fills)."""
        heap, n = self.decoding, self.n_dec
        while heap and (heap[0][2].state != "decode" or heap[0][2].finish_step != heap[0][0]):
            heapq.heappop(heap)  # stale: ended, or preempted and readmitted
        k = heap[0][0] - self.step_no if heap else STRETCH_MAX_STEPS
        if n > 1:  # a lone sequence is never preempted (`_make_room`)
            k = min(k, (self.kv_cap - self._kv) // n)
        k = min(k, STRETCH_MAX_STEPS)
        if k < 2:
            return False
        dts_s, ends_s = self._stretch_times(n, k)
        if not dts_s[0] > 0.0:  # zero-time steps would all end at this instant: keep their order
            return False
        self._stretch = _Stretch(n, ends_s, dts_s)
        self.stats._open[self] = None
        self._gen += 1
        _call_at_time(self.env, ends_s[-1], self._on_stretch_end, NORMAL, self._gen)
        return True

    def _stretch_times(self, n: int, k: int) -> tuple[list[float], list[float]]:
        """Durations and end times of k decode steps from now, computed as k single steps
        would be (each end is the previous end plus the step's time, as SimPy adds a delay)."""
        dts_s = self.cost.decode_steps_s(n, self.dec_ctx, k, self._slowdown)
        ends_s = list(accumulate(dts_s, initial=self.env.now))  # ((now + dt1) + dt2) + ...
        del ends_s[0]
        return dts_s, ends_s

    def _settle(self, ended: int | None = None) -> None:
        """Bring the step counter, the KV cache and the fleet's counters up to now inside a
        stretch: the steps ended before now (or `ended` of them) are done, the next one started."""
        st, stats = self._stretch, self.stats
        assert st is not None
        last = len(st.ends_s) - 1
        j = min(bisect_left(st.ends_s, self.env.now), last) if ended is None else ended
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
        del self.stats._open[self]
        self._step = ([], 0, st.n)

    def _cut(self) -> None:
        """Something from outside changed mid-stretch: the step in progress is the last."""
        st = self._stretch
        assert st is not None
        self._settle()
        self._close_stretch(st)
        if st.done + 1 < len(st.ends_s):
            self._gen += 1  # the stretch's end event is stale
            _call_at_time(self.env, st.ends_s[st.done], self._on_step, NORMAL, None)
        # else the stretch's end event ends the step in progress, an ordinary one now

    def _on_stretch_end(self, ev: simpy.Event) -> None:
        if ev._value != self._gen:
            return  # cut: the step in progress ended as an ordinary one at its own event
        st = self._stretch
        if st is not None:
            self._settle(len(st.ends_s) - 1)
            self._close_stretch(st)
        self._on_step(ev)

    def _plan_prefill(self) -> tuple[list[tuple[Seq, int]], int, int]:
        """Prefill chunks for this step: continue partial prompts, then admit waiting ones."""
        budget = self.spec.max_batched_tokens - self.n_dec
        chunked = self.spec.chunked_prefill
        plan: list[tuple[Seq, int]] = []
        kv_read = attended = 0
        for s in self.prefilling:
            if budget <= 0:
                break
            c = min(s.todo, budget) if chunked else s.todo
            plan.append((s, c))
            kv_read += s.filled + c
            attended += c * (s.filled + c // 2)
            budget -= c
        while self.waiting and budget > 0 and len(self.prefilling) + self.n_dec < self.spec.max_num_seqs:
            s = self.waiting[0]
            if s.state == "ended":  # cancelled while waiting
                self.waiting.popleft()
                continue
            if self._kv + s.prompt + 1 > self.kv_cap and (self.n_dec or self.prefilling):
                break  # wait for room; an empty replica admits anyway (one huge prompt)
            if not chunked and s.todo > budget and plan:
                break
            self.waiting.popleft()
            self.n_waiting -= 1
            self._kv += s.prompt
            s.state = "prefill"
            self._order += 1
            s.order = self._order
            self.prefilling.append(s)
            self.admitted.append(s)
            if len(self.admitted) > 2 * (self.n_dec + len(self.prefilling)) + 256:
                self.admitted = [a for a in self.admitted if a.state in ("prefill", "decode")]
            c = min(s.todo, budget) if chunked else s.todo
            plan.append((s, c))
            kv_read += c
            attended += c * (c // 2)
            budget -= c
        return plan, kv_read, attended

    def _advance(self, prefill: list[tuple[Seq, int]]) -> None:
        now = self.env.now
        self.step_no += 1
        self._kv += self.n_dec
        self.dec_ctx += self.n_dec
        heap = self.decoding
        while heap and heap[0][0] <= self.step_no:
            _, _, s = heapq.heappop(heap)
            if s.state == "decode" and s.finish_step == self.step_no:
                self._end(s, OK)
        for s, c in prefill:
            if s.state != "prefill":
                continue
            s.todo -= c
            s.filled += c
            if s.todo == 0:
                self.prefilling.remove(s)
                s.held0 = s.prompt
                if s.t_first is None:  # the last prefill chunk yields the first token
                    s.t_first = now
                    s.gen0 = 1
                    s.held0 += 1
                    self._kv += 1
                remaining = s.output - s.gen0
                if remaining <= 0:
                    self._kv -= s.held0
                    self._end(s, OK)
                    continue
                s.state = "decode"
                s.dec_start = self.step_no
                s.finish_step = self.step_no + remaining
                self.n_dec += 1
                self.dec_ctx += s.held0
                heapq.heappush(heap, (s.finish_step, s.order, s))

    def _make_room(self) -> None:
        """Preempt (newest first) until the next decode step fits in the KV cache. A sequence
        alone on the replica is never preempted: it would be readmitted at once and recomputed
        for ever (the one-huge-prompt case runs to the end instead)."""
        while self.n_dec and self._kv + self.n_dec > self.kv_cap and self.n_dec + len(self.prefilling) > 1:
            victim = self._newest_decoding()
            if victim is None:
                return
            generated = victim.gen0 + (self.step_no - victim.dec_start)
            self._release(victim)
            victim.prompt = victim.prompt + generated  # recompute the prompt and what it produced
            victim.todo, victim.filled, victim.gen0 = victim.prompt, 0, generated
            victim.state = "waiting"
            self.waiting.appendleft(victim)
            self.n_waiting += 1
            self.stats.preemptions += 1

    def _newest_decoding(self) -> Seq | None:
        adm = self.admitted
        for i in range(len(adm) - 1, -1, -1):
            s = adm[i]
            if s.state == "decode" and s.replica is self:
                del adm[i]
                return s
            if s.state == "ended":
                del adm[i]
        return None

    def _release(self, s: Seq) -> None:
        """Free the KV cache a sequence holds."""
        if s.state == "decode":
            held = s.held0 + (self.step_no - s.dec_start)
            self.n_dec -= 1
            self.dec_ctx -= held
            self._kv -= held
        elif s.state == "prefill":
            self.prefilling.remove(s)
            self._kv -= s.prompt

    def _end(self, s: Seq, outcome: str) -> None:
        if s.state == "decode":
            self._release(s)
        s.state = "ended"
        self.load -= 1
        s.t_done = self.env.now
        s.done.succeed(outcome)

    def cancel(self, s: Seq) -> None:
        """The client stopped waiting and told the server: drop the work, free its KV."""
        if self._stretch is not None and s.state != "ended":
            self._cut()
        if s.state in ("decode", "prefill"):
            self._release(s)
        elif s.state == "waiting":
            self.n_waiting -= 1
        if s.state != "ended":
            s.state = "ended"
            self.load -= 1
            s.done.succeed(CANCELLED)

    def fail_all(self, outcome: str = DOWN) -> int:
        """The replica went down: every sequence on it fails."""
        if self._stretch is not None:
            self._cut()
        n = 0
        for s in list(self.waiting) + list(self.prefilling) + [e[2] for e in self.decoding]:
            if s.state != "ended":
                s.state = "ended"
                s.done.succeed(outcome)
                n += 1
        self.waiting.clear()
        self.n_waiting = 0
        self.prefilling.clear()
        self.decoding.clear()
        self.admitted.clear()
        self.n_dec = self.dec_ctx = self._kv = self.load = 0
        return n

    def wake(self) -> None:
        """Work arrived or the replica came up: an idle loop runs again (later at this instant);
        a stretch ends with the step in progress, so that the next step sees the change."""
        if self._stretch is not None:
            self._cut()
        elif self._idle and not self._waking:
            self._waking = True
            _call_at(self.env, 0.0, self._on_wake, NORMAL)


def _call_at(env: simpy.Environment, delay: float, callback, priority: EventPriority) -> None:  # type: ignore[no-untyped-def]
    """Call `callback(event)` after `delay` seconds: a bare event, cheaper than a process."""
    ev = simpy.Event(env)
    ev._ok = True
    ev._value = None
    ev.callbacks.append(callback)  # type: ignore[union-attr]
    env.schedule(ev, priority, delay)


def _call_at_time(env: simpy.Environment, t: float, callback, priority: EventPriority, value: object) -> None:  # type: ignore[no-untyped-def]
    """Call `callback(event)` at time `t` exactly (not now + (t - now), which may round);
    `event._value` is `value`."""
    ev = simpy.Event(env)
    ev._ok = True
    ev._value = value
    ev.callbacks.append(callback)  # type: ignore[union-attr]
    heapq.heappush(env._queue, (t, priority, next(env._eid), ev))  # what env.schedule does


class FleetStats:
    """Counters the recorder turns into per-interval series. Reads settle the replicas'
    open decode stretches first, so a read sees every step ended (or started) before now."""

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
        """Decode tokens of steps ended."""
        return self._settled()._decode_tokens
