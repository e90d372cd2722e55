"""LLM replicas with continuous batching.

Each batch step: decoding sequences produce one token each; prompts are prefilled (in chunks
when `chunked_prefill`) within `max_batched_tokens`; waiting sequences join between steps while
`max_num_seqs` and the KV cache allow. When decode growth would overflow the KV cache, the
most recently admitted sequence is preempted and later recomputed (vLLM's default).

Decode progress is kept in aggregate (a step counter and a heap of finishing steps) so a step
costs O(sequences that start, finish or prefill), not O(batch size). A step is one SimPy
event, except where nothing can change inside the replica for many steps: those run as one
event, a decode stretch (`sim.des.stretch`), with the same results.
"""

from __future__ import annotations

import heapq
from collections import deque

import simpy
from simpy.events import NORMAL, URGENT

from sim.costmodel import StepCost
from sim.des.calls import call_at
from sim.des.host import HostCpu
from sim.des.stretch import DecodeStretches, FleetStats, Plan, _Stretch
from sim.rules.tokens import output_tokens
from sim.scenario.services import LLMFleet

OK, ERROR, DOWN, SHED, CANCELLED = "ok", "error", "down", "shed", "cancelled"


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


class Replica(DecodeStretches):
    """One LLM replica: a continuous-batching loop over its waiting, prefilling and decoding
    sequences. `decode_stretches = False` runs one event per step (the reference the
    equivalence test compares the stretches with). On a shared host CPU (`services.host`) a
    step's cost is CPU time and its duration what processor sharing makes of it, so every step
    is its own event there."""

    decode_stretches = True

    def __init__(self, env: simpy.Environment, idx: int, spec: LLMFleet, cost: StepCost, stats: FleetStats,
                 host: HostCpu | None = None, token_cpu_s: float = 0.0) -> None:
        self.env, self.idx, self.spec, self.cost, self.stats = env, idx, spec, cost, stats
        # on a shared host CPU (`services.host`) a step's cost is CPU time, its duration what
        # processor sharing makes of it; each token then costs `token_cpu_s` more CPU outside the step
        self.host, self.token_cpu_s = host, token_cpu_s
        self._t_step = 0.0
        self.kv_cap = spec.kv_tokens
        self._kv = 0  # KV tokens held (inside a stretch: as of the last settle)
        self.waiting: deque[Seq] = deque()
        self.n_waiting = 0  # live sequences in `waiting` (cancelled ones leave the deque lazily)
        self.prefilling: list[Seq] = []
        self.decoding: list[tuple[int, int, Seq]] = []  # heap of (finish_step, order, seq)
        self.admitted: list[Seq] = []  # admission order, for choosing preemption victims
        self.n_dec = 0
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
        self._step: Plan = ([], 0, 0)  # in progress: prefill chunks, tokens, decodes
        self._stretch: _Stretch | None = None
        self._gen = 0  # the live stretch's generation: older end events are stale
        call_at(env, 0.0, self._on_wake, URGENT)

    @property
    def load(self) -> int:
        """Sequences submitted and not finished (waiting or running): what routing compares."""
        return self.n_waiting + len(self.prefilling) + self.n_dec

    @property
    def kv_used(self) -> int:
        """KV-cache tokens held now."""
        if self._stretch is not None:
            self._settle()
        return self._kv

    @kv_used.setter
    def kv_used(self, tokens: int) -> None:
        """Put the replica in a given state (tests of routing and of the gauges)."""
        if self._stretch is not None:
            self._cut()
        self._kv = tokens

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
            if self.host is None and self.decode_stretches and not self.prefilling and self._start_stretch(None):
                return
        tokens = 0
        for _, c in prefill:
            tokens += c
        cost = self.cost.step_s(tokens, n_dec, kv_read + self.dec_ctx, attended + self.dec_ctx)
        stats = self.stats
        stats._steps += 1
        stats._batch_seqs += n_dec + len(prefill)
        self._step = (prefill, tokens, n_dec)
        if self.host is not None:
            self._t_step = self.env.now
            self.host.run(cost, self._after_cpu)
            return
        dt = self._slowdown * cost
        stats._busy_s += dt
        if not (prefill and self.decode_stretches and self._start_stretch(dt)):
            call_at(self.env, dt, self._on_step, NORMAL)

    def _after_cpu(self) -> None:
        """The step's CPU work is done; a slowdown fault then stretches it by (factor - 1) x its
        duration, as the stack's engine sleeps after each step."""
        host, wall = self.host, self.env.now - self._t_step
        prefill, _, n_dec = self._step
        assert host is not None
        if self.token_cpu_s:
            host.run(self.token_cpu_s * (n_dec + len(prefill)), _nothing)
        self.stats._busy_s += self._slowdown * wall
        if self._slowdown > 1.0:
            call_at(self.env, (self._slowdown - 1.0) * wall, self._on_step, NORMAL)
        else:
            self._on_step(None)  # type: ignore[arg-type]

    def _on_step(self, _: simpy.Event) -> None:
        if self._up:
            prefill, tokens, n_dec = self._step
            self.stats.prefill_tokens += tokens
            firsts = self._advance(prefill, self.env.now)
            # as planned: a cancelled sequence's token was computed
            self.stats._decode_tokens += output_tokens(n_dec, firsts)
        self._iterate()

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

    def _advance(self, prefill: list[tuple[Seq, int]], now: float) -> int:
        """The step that ends at `now` (in a stretch, maybe settled later) is done; how many
        prompts it gave their first token."""
        firsts = 0
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
                    firsts += 1
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
        return firsts

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
        self.n_dec = self.dec_ctx = self._kv = 0
        return n

    def wake(self) -> None:
        """Work arrived or the replica came up: an idle loop runs again (later at this instant);
        a stretch ends with the step in progress, so that the next step sees the change."""
        if self._stretch is not None:
            self._cut()
        elif self._idle and not self._waking:
            self._waking = True
            call_at(self.env, 0.0, self._on_wake, NORMAL)


def _nothing() -> None:
    return None


__all__ = ["CANCELLED", "DOWN", "ERROR", "OK", "SHED", "FleetStats", "Replica", "Seq"]
