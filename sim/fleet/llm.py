"""The LLM fleet in the fleet engine: identical replicas behind the router, as one group.

Each replica runs continuous-batching steps whose duration is the scenario's cost model
(`StepCost`) at the group's mean batch: K = (busy time in the step) / (step time) engine steps
per time step, every decoding sequence advancing one token per engine step. A sequence's
progress is kept in a calendar of finishing engine steps (bins of `B` tokens) by row, so its
decode time follows its own output length and the batch it ran in. Waiting sequences join
between steps while `max_num_seqs`, the prefill budget (`max_batched_tokens`) and the KV cache
allow. TTFT = queue wait + the rest of the engine step in progress + the step that prefills
the prompt, the queue wait from the call's submission, or for a chat class from the attempt's
start (`sim.rules.calls`: the gateway's queue counts, the row says since when); TPOT = the
engine step time over the sequence's decode.

The group is the fleet as jsq (or least_kv, power-of-two) routing keeps it: balanced. A fault
takes replicas out (`FaultEffect.units_up`): their sequences fail.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.costmodel import StepCost
from sim.fleet.fifo import Fifo
from sim.fleet.kernels import LLMStage, token_kernel
from sim.fleet.rows import Rows
from sim.fleet.split import add_cohorts, binomial, proportional, systematic, take_oldest
from sim.rules.calls import client_still_waiting
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.rules.tokens import output_tokens
from sim.scenario.services import LLMFleet

if TYPE_CHECKING:
    from sim.fleet.timestep import Regrid

Q = 16  # random representatives of a cohort's prompt lengths (TTFT), drawn afresh each time


class LLMOwner:
    """One LLM stage of one class."""

    def __init__(self, R: int, rows: Rows, stage: LLMStage, B: int) -> None:
        self.stage = stage
        self.kernel = token_kernel(stage.decode_steps, B)
        self.H = len(self.kernel) + 64
        self.cal = np.zeros((R, rows.NR, self.H))  # (replication, row, finishing bin)
        self.wait = np.zeros((R, rows.NR))
        self.sub = Fifo(R, 1, 4096)  # submit steps of the waiting, for their TTFT
        self.done = np.zeros((R, rows.NR))
        self.error = np.zeros((R, rows.NR))
        self.shed = np.zeros((R, rows.NR))
        self.kv_each = stage.mean_prompt + stage.mean_output
        self.n_in = np.zeros(R)  # sequences in this owner's calendar (decoding)
        # TTFT samples of this step: (replication index, values s, counts), flat
        self.ttft: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.tpot_n = np.zeros(R)


class LLMGroup:
    def __init__(self, spec: LLMFleet, R: int, rows: Rows, dt: float, shortest_output: float | None = None) -> None:
        """`shortest_output`: the smallest mean output tokens of the stages it serves (bounds the
        finishing bins' width)."""
        self.spec, self.R, self.rows, self.dt = spec, R, rows, dt
        self.cost = StepCost(spec.cost_model)
        self.effect: FaultEffect = NO_FAULT
        self.replicas = np.full(R, float(spec.replicas))  # accepting (autoscaling changes it)
        self.up = self.replicas.copy()
        self.kv_cap = float(spec.kv_tokens)
        typical = float(self.cost.step_s(0, max(1, spec.max_num_seqs // 2), 0, 0))
        # about two finishing bins per time step, and narrow beside the shortest outputs: a sequence
        # holds its slot to the end of its finishing bin, up to B engine steps longer than it decodes
        per_step = int(dt / typical / 2)
        self.B = max(1, per_step if shortest_output is None else min(per_step, int(shortest_output / 8)))
        self.E = np.zeros(R)  # engine steps run so far by each replica
        self.K = np.zeros(R)
        self.step_s = np.full(R, typical)
        self.n_dec = np.zeros(R)
        self.kv = np.zeros(R)
        self.prefill_prev = np.zeros(R)
        self.prefill = np.zeros(R)
        self.free = np.zeros(R)
        self._free_now = np.zeros(R)  # slots free now (not only later in this step)
        self.owners: list[LLMOwner] = []
        self.Q = Q  # TTFT representatives per admission: Q per fine step's worth (see regrid)
        self._dt0 = dt
        self._means = (1.0, 1.0)
        self.acc = {k: np.zeros(R) for k in ("batch_dt", "busy_dt", "prefill_tokens", "decode_tokens")}

    def add_owner(self, stage: LLMStage) -> LLMOwner:
        o = LLMOwner(self.R, self.rows, stage, self.B)
        self.owners.append(o)
        # the mean prompt and KV of a joining sequence, over the stages (for the room left)
        self._means = (float(np.mean([w.stage.mean_prompt for w in self.owners])),
                       float(np.mean([w.kv_each for w in self.owners])))
        return o

    @property
    def waiting(self) -> np.ndarray:
        return sum((o.wait.sum(axis=1) for o in self.owners), np.zeros(self.R))

    def regrid(self, g: Regrid, dt: float) -> None:
        """The group on another step length: its counts by row and its queues' submit steps move;
        the decode calendars count engine steps, not time steps, and stay."""
        self.dt = dt
        self.Q = Q * max(1, round(dt / self._dt0))  # as many TTFT representatives per second as at dt0
        a = self.rows.A
        for o in self.owners:
            o.wait, o.done, o.shed, o.error = (g.rows(x, 1, a) for x in (o.wait, o.done, o.shed, o.error))
            o.cal = g.rows(o.cal, 1, a)
            o.sub.regrid(g)

    def set_effect(self, effect: FaultEffect, rng: np.random.Generator) -> None:
        """Apply the faults in force: replicas that go down fail every sequence they hold."""
        self.effect = effect
        self.set_up(np.array([effect.units_up(int(n)) for n in self.replicas], dtype=float), rng)

    def set_up(self, up: np.ndarray, rng: np.random.Generator) -> None:
        lost = np.where(self.up > 0, np.clip(1.0 - up / np.maximum(self.up, 1e-12), 0.0, 1.0), 0.0)
        if lost.any():
            for o in self.owners:
                gone = binomial(o.cal, lost[:, None, None], rng)
                o.cal -= gone
                g = gone.sum(axis=2)
                o.error += g
                o.n_in -= g.sum(axis=1)
                self.n_dec -= g.sum(axis=1)
                self.kv -= g.sum(axis=1) * o.kv_each
                wg = binomial(o.wait, lost[:, None], rng)
                o.wait -= wg
                o.error += wg
                o.sub.scale(1.0 - lost, rng)
            self.kv = np.maximum(self.kv, 0.0)
        self.up = up

    # -- phase A -------------------------------------------------------------------------------
    def advance(self, step: int, rng: np.random.Generator) -> None:
        """Run this time step's engine steps: finish sequences, then admit the waiting."""
        m = np.maximum(self.up, 1e-12)
        self.prefill_prev = self.prefill
        waiting = self.waiting
        busy = (self.n_dec > 0) | (waiting > 0)
        n_bar = self.n_dec / m
        per_step_prefill = self.prefill_prev / np.maximum(self.K * m, 1.0)  # one replica's engine step
        st = self.cost.step_s_array(per_step_prefill, n_bar, self.kv / m, self.kv / m) * self.effect.slowdown
        self.step_s = np.maximum(st, 1e-6)
        self.K = np.where(busy & (self.up > 0), self.dt / self.step_s, 0.0)
        e0, e1 = self.E, self.E + self.K
        b0, b1 = np.floor(e0 / self.B).astype(np.int64), np.floor(e1 / self.B).astype(np.int64)
        nb = b1 - b0
        self.acc["batch_dt"] += n_bar * self.dt
        self.acc["busy_dt"] += np.where(self.K > 0, self.dt, 0.0)
        self.kv += self.n_dec * self.K
        slots = self.up * self.spec.max_num_seqs
        self._free_now = np.maximum(0.0, slots - self.n_dec)  # free at the step's start
        self._finish_bins(b0, nb)
        self.E = e1
        self._b0, self._b1 = b0, b1
        self.free = np.maximum(0.0, slots - self.n_dec)
        kv_room = np.maximum(0.0, self.up * self.kv_cap - self.kv)
        prefill_room = self.K * self.up * max(1.0, self.spec.max_batched_tokens - float(n_bar.mean()))
        self.prefill = np.zeros(self.R)
        self._kv_room, self._prefill_room = kv_room, prefill_room
        if not waiting.any():
            return
        w = np.stack([o.wait.sum(axis=1) for o in self.owners], axis=1)
        g = np.minimum(self._room(), waiting)
        per = proportional(np.floor(g), w, rng)
        order = self.rows.order(step)
        for i, o in enumerate(self.owners):
            took = take_oldest(o.wait, per[:, i], order)
            if not took.any():
                continue
            o.wait -= took
            popped, ages = o.sub.pop(step, took.sum(axis=1), rng)
            got = popped[:, 0, :]
            wait_s = (got * ages).sum(axis=1) * self.dt / np.maximum(got.sum(axis=1), 1e-12)
            self._admit(o, took, wait_s, step, rng)

    def _finish_bins(self, b0: np.ndarray, nb: np.ndarray) -> None:
        """Sequences in the finishing bins b0[r] .. b0[r] + nb[r] - 1 are done (all bins at once)."""
        J = int(nb.max()) if len(nb) else 0
        if J <= 0:
            return
        j = np.arange(J)
        live = (j[None, :] < nb[:, None])[:, :, None]  # (R, J, 1)
        rr = np.arange(self.R)[:, None]
        for o in self.owners:
            if not o.n_in.any():
                continue
            # a step longer than the calendar (short outputs, fast engine steps) finishes it all
            jo = min(J, o.H)
            idx = (b0[:, None] + j[None, :jo]) % o.H  # (R, jo): distinct bins
            sel = o.cal[rr, :, idx]  # (R, jo, NR)
            lv = live[:, :jo]
            o.cal[rr, :, idx] = np.where(lv, 0.0, sel)
            self._finish(o, (sel * lv).sum(axis=1))

    def _room(self) -> np.ndarray:
        """Sequences that can still join in this step (slots, prefill budget, KV cache)."""
        mean_prompt, mean_kv = self._means
        return np.maximum(0.0, np.minimum(np.minimum(self.free, (self._prefill_room - self.prefill) / mean_prompt),
                                          self._kv_room / mean_kv))

    def _step_in_progress(self, o: LLMOwner, rng: np.random.Generator) -> np.ndarray:
        """Durations (R, Q) of the engine steps that new sequences find in progress: an arrival
        lands in a step in proportion to its length, so steps that prefill another prompt (the
        fraction f of steps, each a*P longer) are found more often than f (inspection paradox)."""
        m = np.maximum(self.up, 1e-12)
        cm = self.cost.spec
        a = getattr(cm, "per_prefill_token_s", None)
        if a is None:  # roofline: the marginal cost of prefill tokens, from the model
            a = float(self.cost.step_s(1000, 0, 0, 0) - self.cost.step_s(0, 0, 0, 0)) / 1000
        a *= self.effect.slowdown
        mean_p = o.stage.mean_prompt
        per_step = self.prefill_prev / np.maximum(self.K * m, 1e-12)
        f = np.clip(per_step / mean_p, 0.0, 1.0)
        extra = a * mean_p
        decode = np.maximum(self.step_s - f * extra, 1e-6)
        w = f * (decode + extra) / np.maximum(decode + f * extra, 1e-12)  # time share of prefill steps
        other = o.stage.prompt_tokens[rng.integers(0, len(o.stage.prompt_tokens), self.Q)]
        in_prefill = rng.random((self.R, self.Q)) < w[:, None]
        return decode[:, None] + in_prefill * (a * other[None, :])

    def _finish(self, o: LLMOwner, fin: np.ndarray) -> None:
        n = fin.sum(axis=1)
        if not n.any():
            return
        o.done += fin
        # their decode steps (`sim.rules.tokens`: the first token came with the prefill): counted as
        # they finish, since a short sequence can join and finish within one time step, which a
        # count of the batch at the steps' starts never sees
        self.acc["decode_tokens"] += n * (o.stage.mean_output - 1)
        o.tpot_n += n
        o.n_in -= n
        self.n_dec -= n
        self.kv = np.maximum(0.0, self.kv - n * o.kv_each)

    def _admit(self, o: LLMOwner, x: np.ndarray, wait_s: np.ndarray, step: int, rng: np.random.Generator,
               arriving: bool = False) -> None:
        """Sequences x (R, NR) join the batch at a uniform point of this step: their prompt is
        prefilled in the next engine step, then they decode in the calendar.

        TTFT = wait + the rest of the engine step in progress + the step that prefills the prompt
        together with the others that joined during the step in progress (Poisson). A call
        arriving in this step (`arriving`) that takes a slot freed during the step (not free at
        its start) waits for it if the slot frees after the call arrives (both at uniform moments
        of the step), as a pool's arrivals wait for slots freed after them (`Pool.advance`)."""
        n = x.sum(axis=1)
        late = np.clip(n - self._free_now, 0.0, n)
        self._free_now = np.maximum(0.0, self._free_now - n)
        self.free -= n
        self.prefill += n * o.stage.mean_prompt
        self._kv_room -= n * o.kv_each
        self.kv += n * o.stage.mean_prompt
        self.acc["prefill_tokens"] += n * o.stage.mean_prompt
        # their prefill step samples their first tokens: output tokens too (`sim.rules.tokens`)
        self.acc["decode_tokens"] = output_tokens(self.acc["decode_tokens"], n)
        m = np.maximum(self.up, 1e-12)
        prompts = o.stage.prompt_tokens[rng.integers(0, len(o.stage.prompt_tokens), self.Q)]
        in_progress = self._step_in_progress(o, rng)  # (R, Q)
        mean_prompt = self._means[0]
        joins_per_step = self.prefill_prev / np.maximum(self.K * m, 1e-12) / mean_prompt
        others = rng.poisson(joins_per_step[:, None] * in_progress / self.step_s[:, None]) * mean_prompt
        tokens = prompts[None, :] + others
        pre = self.cost.step_s_array(tokens, (self.n_dec / m)[:, None], (self.kv / m)[:, None],
                                     (self.kv / m)[:, None] + tokens ** 2 / 2) * self.effect.slowdown
        slot = np.zeros((self.R, self.Q))
        if arriving and late.any():  # the slot frees, and the call arrives, at uniform moments of the step
            slot_wait = np.maximum(0.0, rng.random((self.R, self.Q)) - rng.random((self.R, self.Q))) * self.dt
            slot = (rng.random((self.R, self.Q)) < (late / np.maximum(n, 1e-12))[:, None]) * slot_wait
        if o.stage.ttft_from_attempt:
            self._ttft_from_attempt(o, x, slot + rng.random(self.Q)[None, :] * in_progress + pre, step, rng)
        else:
            counts = systematic(n, np.full(self.Q, 1.0 / self.Q), rng)
            vals = wait_s[:, None] + slot + rng.random(self.Q)[None, :] * in_progress + pre
            o.ttft.append((np.repeat(np.arange(self.R), self.Q), vals.ravel(), counts.ravel()))
        r, row = np.nonzero(x)
        u = rng.random(len(r))
        e_in = self.E[r] - self.K[r] * (1 - u) + 1.0  # the engine step after the one in progress
        parts = systematic(x[r, row], o.kernel, rng)
        target = np.floor(e_in / self.B).astype(np.int64)[:, None] + np.arange(parts.shape[1])[None, :]
        now = target < self._b1[r][:, None]
        self.n_dec += n
        o.n_in += n
        if now.any():
            fin = np.zeros_like(x)
            fin[r, row] = (parts * now).sum(axis=1)
            self._finish(o, fin)
        keep = parts * ~now
        add_cohorts(o.cal, r, row, target % o.H, keep)

    def _ttft_from_attempt(self, o: LLMOwner, x: np.ndarray, after_join: np.ndarray, step: int,
                           rng: np.random.Generator) -> None:
        """A chat class's TTFT (`sim.rules.calls`): from the attempt's start, so the gateway's and
        the engine's queues count. The row of a cohort x[r, row] says how long ago its attempt
        started (row age, the attempt and the join at uniform moments of their steps); to that
        the time from joining the batch to the first token (after_join (R, Q)) is added. Recorded
        only while the client still waited; ghost rows (clients gone) are nobody's TTFT."""
        r, row = np.nonzero(x[:, : self.rows.A])
        if not len(r):
            return
        age = self.rows.ages(step)[row].astype(np.float64)
        since_s = (age + np.where(age > 0, rng.random(len(r)) - rng.random(len(r)), 0.0)) * self.dt
        vals = since_s[:, None] + after_join[r]  # (m, Q)
        counts = systematic(x[r, row], np.full(self.Q, 1.0 / self.Q), rng)
        counts = counts * client_still_waiting(vals, self.rows.timeout_s)
        o.ttft.append((np.repeat(r, self.Q), vals.ravel(), counts.ravel()))

    # -- phase B -------------------------------------------------------------------------------
    def arrive(self, o: LLMOwner, x: np.ndarray, step: int, rng: np.random.Generator) -> None:
        """LLM calls of one stage submitted in this step."""
        if not x.any():
            return
        if self.effect.error_rate > 0:
            e = binomial(x, self.effect.error_rate, rng)
            o.error += e
            x = x - e
        down = self.up <= 0
        if down.any():
            o.error += x * down[:, None]
            x = x * ~down[:, None]
        idle = (self.K <= 0) & (self.up > 0)
        if idle.any():  # an idle replica wakes up when work arrives (on average mid-step)
            self.K = np.where(idle, 0.5 * self.dt / self.step_s, self.K)
            self.E = np.where(idle, self.E + self.K, self.E)
            self._b1 = np.floor(self.E / self.B).astype(np.int64)
            mbt = max(1.0, float(self.spec.max_batched_tokens))
            self._prefill_room = np.where(idle, self.K * self.up * mbt, self._prefill_room)
        order = self.rows.order(step)
        nobody = self.waiting <= 0
        g = np.where(nobody, np.minimum(np.floor(self._room()), x.sum(axis=1)), 0.0)
        take = take_oldest(x, g, order)
        if take.any():
            self._admit(o, take, np.zeros(self.R), step, rng, arriving=True)
        rest = x - take
        if not rest.any():
            return
        lim = self.spec.queue_limit
        if lim is not None:
            room = np.maximum(0.0, lim * self.up - self.waiting)
            kept = take_oldest(rest, np.minimum(rest.sum(axis=1), room), order)
            o.shed += rest - kept
            rest = kept
        o.wait += rest
        o.sub.push(step, rest.sum(axis=1)[:, None])

    def timeout_row(self, r0: int, cancel: bool, rng: np.random.Generator) -> None:
        G = self.rows.GHOST
        for o in self.owners:
            has_cal, has_wait = o.cal[:, r0].any(), o.wait[:, r0].any()
            if not (has_cal or has_wait):
                continue
            if cancel:
                n = o.cal[:, r0].sum(axis=1)
                o.n_in -= n
                self.n_dec -= n
                self.kv = np.maximum(0.0, self.kv - n * o.kv_each)
                o.sub.scale(1.0 - o.wait[:, r0] / np.maximum(o.wait.sum(axis=1), 1e-12), rng)
            else:
                o.wait[:, G] += o.wait[:, r0]
                o.cal[:, G] += o.cal[:, r0]
            o.wait[:, r0] = 0.0
            o.cal[:, r0] = 0.0
        for o in self.owners:  # finished since the last pass, not yet collected: with their row
            for a in (o.done, o.error, o.shed):
                if a[:, r0].any():
                    if not cancel:
                        a[:, G] += a[:, r0]
                    a[:, r0] = 0.0

    def tpot_values(self) -> np.ndarray:
        """TPOT of the sequences that finished in this step: the engine step time (R,)."""
        return self.step_s


def llm_kv_frac(g: LLMGroup) -> np.ndarray:
    cap = g.up * g.kv_cap
    return np.where((cap > 0) & (cap < 1e12), g.kv / np.maximum(cap, 1e-12), 0.0)


__all__ = ["LLMGroup", "LLMOwner", "llm_kv_frac", "math"]
