"""The fleet engine: the whole system in time steps, as counts, for a batch of replications.

Per step (`dt` seconds): the faults in force; the rows that reach the client's timeout
(ghost work or cancelled); the attempts sent (new commands, retries, re-logins) through the
session check, client throttling, the rate limit and into the gateway queue; every pool and
the LLM fleet advance (services finish, waiters get slots); one pass over the stages in
order carries what finished a stage into the next (several short stages can follow each other
within one step); the gateway fills its free slots; outcomes go back to the clients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim import __version__
from sim.errors import SimulationError
from sim.fleet.client import Retries, Sessions, SessionStates, retry_target, split_comp
from sim.fleet.gateway import FleetGateway
from sim.fleet.kernels import LLMStage, choose_dt, class_plans
from sim.fleet.llm import LLMGroup, LLMOwner, llm_kv_frac
from sim.fleet.record import BatchRecorder
from sim.fleet.rows import Rows
from sim.fleet.sessions_in import session_starts
from sim.fleet.split import binomial, systematic, take_oldest
from sim.fleet.stations import Owner, Pool
from sim.results import Results
from sim.results import names as N
from sim.rules.deadlines import Deadlines
from sim.rules.faults import combine
from sim.rules.outcomes import AUTH, ERROR, OK, REJECTED, SHED, THROTTLED, TIMEOUT
from sim.rules.retry import RetryPolicy
from sim.scenario import Scenario
from sim.streams import Streams

_TRI = np.array([-0.5, -0.134, 0.134, 0.5])  # quartile midpoints of U - U' (triangular on [-1, 1])
_QUARTERS = np.full(4, 0.25)


@dataclass
class Stage:
    kind: str  # "tool" or "llm"
    station: Pool | LLMGroup
    owner: Owner | LLMOwner


@dataclass
class ClassFlow:
    """One command class: its stages and its attempts in flight."""

    name: str
    stages: list[Stage]
    comp: np.ndarray  # (R, K, S, A) attempts in flight by attempt number, session state, row
    age0: np.ndarray  # (R, K, A) sum of command ages at the attempt's start, s
    retries: Retries
    good_within_s: float
    places_order: bool
    forward: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (R, NR) into the next stage
    out: dict[str, np.ndarray] = field(default_factory=dict)  # pipeline outcomes this step, by row
    ready: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (R, K, S) to send next step
    ready_age: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (R, K)


class FleetSim:
    def __init__(self, sc: Scenario, seeds: list[int], dt: float | None = None) -> None:
        self.sc, self.seeds, self.R = sc, seeds, len(seeds)
        R = self.R
        self.rng = Streams(seeds[0])(f"fleet.batch{R}")
        self.dt = dt or choose_dt(sc)
        per = sc.run.interval_s / self.dt
        if per < 1 - 1e-9 or abs(per - round(per)) > 1e-6:
            raise SimulationError(f"the fleet time step must divide run.interval_s ({sc.run.interval_s:g} s) "
                                  f"(got {self.dt:g} s)")
        self.n_steps = max(1, math.ceil(sc.run.duration_s / self.dt - 1e-9))
        self.spi = max(1, round(sc.run.interval_s / self.dt))  # steps per results interval
        cl = sc.clients
        horizon = cl.timeout_s or cl.abandon_after_s or _age_horizon(self.dt)
        self.rows = Rows(cl.timeout_s, horizon, self.dt)
        self.deadlines = Deadlines.of(sc)
        self.cancel = self.deadlines.servers_cancel()
        self.now = 0.0
        # the retry budget and adaptive throttling see one replication's traffic each
        self.policies = [RetryPolicy(cl, lambda: float(self.rng.random()), lambda: self.now) for _ in seeds]
        self.policy = self.policies[0]  # for what does not depend on traffic: backoff, retry_on
        # the policies' traffic counts feed only adaptive throttling and the retry budget
        self.tracks_answers = bool(cl.adaptive_throttle_k)
        self.tracks_sends = cl.retry_budget_ratio is not None
        self.pending_new = np.zeros((R, SessionStates(sc).n))
        self.states = SessionStates(sc)
        self.K = cl.max_attempts
        self.classes = list(sc.workload.classes)
        self.probs = np.array([c.probability for c in sc.workload.classes.values()])
        self.rec = BatchRecorder(R, sc.run.duration_s, sc.run.interval_s, self.classes)
        sv = sc.services
        self.pools = {n: Pool(n, s, R, self.rows, self.dt) for n, s in sv.tools.items()}
        self.auth = Pool("auth", sv.auth, R, self.rows, self.dt) if sv.auth else None
        self.llm = LLMGroup(sv.llm, R, self.rows, self.dt) if sv.llm else None
        prio = {n: c.priority for n, c in sc.workload.classes.items()}
        self.gw = FleetGateway(sv.gateway, self.classes, prio, self.deadlines, R, self.rows) if sv.gateway else None
        self.sessions = Sessions(sc, R, self.states, self.dt)
        self.flows = [self._flow(n, plan) for n, plan in class_plans(sc).items()]
        self.logins = _Logins(self) if self.auth else None
        self.starts = session_starts(sc, seeds, self.dt, self.n_steps, self.rng)
        self._faults_on: list[set[int]] = []
        self.cum = {k: np.zeros(R) for k in ("arrived", "ended")}

    def _flow(self, name: str, plan: list[tuple[str, object]]) -> ClassFlow:
        R, rows, S = self.R, self.rows, self.states.n
        stages = []
        for kind, what in plan:
            if kind == "tool":
                pool = self.pools[str(what)]
                stages.append(Stage("tool", pool, pool.add_owner()))
            else:
                assert self.llm is not None and isinstance(what, LLMStage)
                stages.append(Stage("llm", self.llm, self.llm.add_owner(what)))
        slo = self.sc.slos.get(name)
        cls = self.sc.workload.classes[name]
        return ClassFlow(name, stages, np.zeros((R, self.K, S, rows.A)), np.zeros((R, self.K, rows.A)),
                         Retries(self.policy, self.K, S, R, self.dt),
                         (slo.e2e_p99_s if slo and slo.e2e_p99_s else math.inf), cls.places_order,
                         np.zeros((R, rows.NR)), {}, np.zeros((R, self.K, S)), np.zeros((R, self.K)))

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> list[Results]:
        for n in range(self.n_steps):
            self.step(n)
        return self._results()

    def step(self, n: int) -> None:
        self.now = n * self.dt
        i = min(n // self.spi, self.rec.n_intervals - 1)
        self._faults(n, i)
        self._timeouts(n, i)
        self._send(n, i)
        for p in self._all_pools():
            p.advance(n, self.rng)
        if self.llm is not None:
            self.llm.advance(n, self.rng)
        self._pass(n, i)
        for p in self._all_pools():
            p.release_late(n, self.rng)
        self._admit(n, i)
        self._settle(n, i)
        self._end_step(n, i)
        if (n + 1) % self.spi == 0 or n + 1 == self.n_steps:
            self._close_interval(i)

    def _all_pools(self) -> list[Pool]:
        return list(self.pools.values()) + ([self.auth] if self.auth else [])

    # -- faults --------------------------------------------------------------------------------
    def _faults(self, n: int, i: int) -> None:
        t0, t1 = self.now, self.now + self.dt
        on = {k for k, f in enumerate(self.sc.faults) if f.at_s < t1 and f.at_s + f.duration_s > t0}
        prev = self._faults_on[-1] if self._faults_on else set()
        if on == prev:
            return
        self._faults_on.append(on)
        for k in on - prev:
            f = self.sc.faults[k]
            self.rec.event(None, f.at_s, "fault_start", f.target, fault_kind=f.kind, magnitude=f.magnitude,
                           duration_s=f.duration_s)
            if f.kind == "session_invalidation":
                self._invalidate(1.0 - f.magnitude)
        for k in prev - on:
            f = self.sc.faults[k]
            self.rec.event(None, f.at_s + f.duration_s, "fault_end", f.target, fault_kind=f.kind)
        targets = {self.sc.faults[k].target for k in on ^ prev}
        for tgt in targets:
            eff = combine(self.sc.faults[k] for k in on if self.sc.faults[k].target == tgt
                          and self.sc.faults[k].kind != "session_invalidation")
            if tgt == "llm" and self.llm is not None:
                self.llm.set_effect(eff, self.rng)
            elif tgt == "gateway" and self.gw is not None:
                failed = self.gw.set_effect(eff)
                for ci, fl in enumerate(self.flows):
                    if failed[:, ci].any():
                        self._fail_unrowed(fl, failed[:, ci], n, i)
            elif tgt == "auth" and self.auth is not None:
                self.auth.set_effect(eff)
            elif tgt in self.pools:
                self.pools[tgt].set_effect(eff)

    def _invalidate(self, keep: float) -> None:
        st = self.states
        if not st.auth:
            return
        self.sessions.invalidate(keep, st, self.rng)
        for fl in self.flows:
            for s in range(st.n):
                if st.logged_in[s]:
                    lost = fl.comp[:, :, s] - binomial(fl.comp[:, :, s], keep, self.rng)
                    fl.comp[:, :, s] -= lost
                    fl.comp[:, :, s - st.L] += lost
                    lr = fl.retries.cal[:, :, s] - binomial(fl.retries.cal[:, :, s], keep, self.rng)
                    fl.retries.cal[:, :, s] -= lr
                    fl.retries.cal[:, :, s - st.L] += lr

    def _fail_unrowed(self, fl: ClassFlow, x: np.ndarray, n: int, i: int) -> None:
        """Queued attempts that failed (gateway outage): out of the gateway queue, by their rows
        unknown here; take them from the oldest rows of the class."""
        order = self.rows.order(n)[1:]
        comp_rows = fl.comp.sum(axis=(1, 2))
        took = take_oldest(comp_rows, np.minimum(x, comp_rows.sum(axis=1)), order)
        rows = np.zeros((self.R, self.rows.NR))
        rows[:, : self.rows.A] = took
        fl.out[ERROR] = fl.out.get(ERROR, 0) + rows

    # -- timeouts ------------------------------------------------------------------------------
    def _timeouts(self, n: int, i: int) -> None:
        if self.sc.clients.timeout_s is None:
            self._age_out(n)
            return
        r0 = n % self.rows.A
        self._stations_timeout(r0, self.cancel)
        for fl in self.flows:
            x = fl.comp[:, :, :, r0].copy()
            age = fl.age0[:, :, r0].copy()
            fl.comp[:, :, :, r0] = 0.0
            fl.age0[:, :, r0] = 0.0
            if x.any():
                cnt = x.sum(axis=2)
                mean_age = np.where(cnt > 0, age / np.maximum(cnt, 1e-12), 0.0) + self.rows.A * self.dt
                self._failed(fl, TIMEOUT, x, mean_age, n, i)
        if self.cancel and self.gw is not None:
            for q in self.gw.queues:
                q.take_older(n, self.rows.A)
        if self.logins is not None:
            self.logins.timeouts(n, i, r0)

    def _age_out(self, n: int) -> None:
        """No timeout: rows that grow older than the horizon keep going as ghosts (their e2e is
        no longer known; the horizon is chosen far beyond any latency the run sees)."""
        r0 = n % self.rows.A
        self._stations_timeout(r0, False)
        for fl in self.flows:
            if fl.comp[:, :, :, r0].any():
                fl.comp[:, :, :, r0] = 0.0
                fl.age0[:, :, r0] = 0.0

    def _stations_timeout(self, r0: int, cancel: bool) -> None:
        """Row r0's clients stopped waiting: at every pool and the LLM fleet its work becomes
        ghost work (or is dropped when servers cancel)."""
        for p in self.pools.values():
            p.timeout_row(r0, cancel)
        if self.llm is not None:
            self.llm.timeout_row(r0, cancel, self.rng)

    # -- sending attempts ----------------------------------------------------------------------
    def _send(self, n: int, i: int) -> None:
        st = self.states
        new = self.starts[:, n]
        if new.any():
            if self.logins is not None:
                self.logins.start_sessions(new, n)
            else:
                self._new_commands(np.column_stack([new] + [np.zeros(self.R)] * (st.n - 1)), n, i)
        due = self.sessions.due(n) + self.pending_new
        self.pending_new = np.zeros_like(self.pending_new)
        if due.any():
            self._new_commands(due, n, i)
        if self.logins is not None:
            self.logins.due(n)
        for fl in self.flows:
            x, age = fl.retries.due(n)
            x, age = x + fl.ready, age + fl.ready_age
            fl.ready = np.zeros_like(fl.ready)
            fl.ready_age = np.zeros_like(fl.ready_age)
            if x.any():
                self._attempts(fl, x, age, n, i)

    def _new_commands(self, sess: np.ndarray, n: int, i: int) -> None:
        """New commands for sessions (R, S): a class each, then their first attempt."""
        by_class = systematic(sess, self.probs, self.rng)  # (R, S, C)
        for ci, fl in enumerate(self.flows):
            x = by_class[:, :, ci]
            if not x.any():
                continue
            self.rec.add(N.of_class("arrived", fl.name), i, x.sum(axis=1))
            first = np.zeros((self.R, self.K, self.states.n))
            first[:, 0] = x
            self._attempts(fl, first, np.zeros((self.R, self.K)), n, i)

    def _attempts(self, fl: ClassFlow, x: np.ndarray, age: np.ndarray, n: int, i: int) -> None:
        """Send attempts x (R, K, S) of one class (command ages summed in age (R, K))."""
        st, rec, R = self.states, self.rec, self.R
        if st.auth:
            bad = x * ~st.logged_in[None, None, :]
            if bad.any():  # the session is gone: the attempt fails auth without reaching the gateway
                self._count_sent(fl, bad, i)
                frac = _frac(bad.sum(axis=2), x.sum(axis=2))
                self._failed(fl, AUTH, bad, _mean(age * frac, bad.sum(axis=2)), n, i)
                age = age * (1 - frac)
                x = x - bad
        if not x.any():
            return
        x, age = self._throttle(fl, x, age, n, i)
        if not x.any():
            return
        self._count_sent(fl, x, i)
        tot = x.sum(axis=(1, 2))
        passed = self.gw.rate_limit(tot, self.now) if self.gw is not None else tot
        for reason, keep in ((REJECTED, passed), (ERROR, self._door(passed))):
            if (keep < tot).any():
                gone = _take_share(x, tot - keep, self.rng)
                frac = _frac(gone.sum(axis=2), x.sum(axis=2))
                self._failed(fl, reason, gone, _mean(age * frac, gone.sum(axis=2)), n, i)
                age = age * (1 - frac)
                x = x - gone
                tot = x.sum(axis=(1, 2))
        if not tot.any():
            return
        if self.gw is not None:
            shed, evicted = self.gw.enqueue(fl.name, tot, n, self.rng)
            if shed.any():
                gone = _take_share(x, shed, self.rng)
                frac = _frac(gone.sum(axis=2), x.sum(axis=2))
                self._failed(fl, SHED, gone, _mean(age * frac, gone.sum(axis=2)), n, i)
                age = age * (1 - frac)
                x = x - gone
            for cj, other in enumerate(self.flows):
                if evicted[:, cj].any():
                    self._evicted(other, evicted[:, cj], n)
        r = self.rows.row(n)
        fl.comp[:, :, :, r] += x
        fl.age0[:, :, r] += age
        if self.gw is None:
            rows = np.zeros((R, self.rows.NR))
            rows[:, r] = x.sum(axis=(1, 2))
            rec.add(N.of_class("admitted", fl.name), i, rows.sum(axis=1))
            fl.forward = fl.forward + rows

    def _door(self, tot: np.ndarray) -> np.ndarray:
        """Attempts that pass the gateway's error and outage faults."""
        if self.gw is None:
            return tot
        eff = self.gw.effect
        if eff.outage:
            return np.zeros_like(tot)
        if eff.error_rate > 0:
            return tot - binomial(tot, eff.error_rate, self.rng)
        return tot

    def _evicted(self, fl: ClassFlow, x: np.ndarray, n: int) -> None:
        """A more important arrival took the place of x[r] queued attempts (the newest)."""
        comp_rows = fl.comp.sum(axis=(1, 2))
        order = self.rows.order(n)[1:][::-1]
        took = take_oldest(comp_rows, np.minimum(x, comp_rows.sum(axis=1)), order)
        rows = np.zeros((self.R, self.rows.NR))
        rows[:, : self.rows.A] = took
        fl.out[SHED] = fl.out.get(SHED, 0) + rows

    def _throttle(self, fl: ClassFlow, x: np.ndarray, age: np.ndarray, n: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.policy.may_refuse:
            return x, age
        refused = np.zeros_like(x)
        for r, pol in enumerate(self.policies):
            retr = x[r, 1:].sum()
            if retr and pol.spec.retry_budget_ratio is not None:
                allow = pol.budget_allows(float(retr), self.now)
                if allow < retr:
                    refused[r, 1:] = _take_share(x[r:r + 1, 1:], np.array([retr - allow]), self.rng)[0]
            p = pol.throttle_probability(self.now)
            if p > 0:
                more = binomial(x[r] - refused[r], p, self.rng)
                refused[r] += more
                pol.throttled_many(float(more.sum()), self.now)
        if refused.any():
            frac = _frac(refused.sum(axis=2), x.sum(axis=2))
            self._failed(fl, THROTTLED, refused, _mean(age * frac, refused.sum(axis=2)), n, i, sent=False)
            age = age * (1 - frac)
            x = x - refused
        return x, age

    def _count_sent(self, fl: ClassFlow, x: np.ndarray, i: int) -> None:
        per_k = x.sum(axis=2)
        self.rec.add(N.of_class("attempts", fl.name), i, per_k.sum(axis=1))
        self.rec.add(N.of_class("retries", fl.name), i, per_k[:, 1:].sum(axis=1))
        if self.tracks_sends:
            for r, pol in enumerate(self.policies):
                pol.sent_many(float(per_k[r, 0]), float(per_k[r, 1:].sum()), self.now)

    # -- the pass over the stages --------------------------------------------------------------
    def _pass(self, n: int, i: int) -> None:
        depth = max(len(fl.stages) for fl in self.flows)
        for j in range(depth):
            for fl in self.flows:
                if j >= len(fl.stages):
                    continue
                st = fl.stages[j]
                x, fl.forward = fl.forward, np.zeros_like(fl.forward)
                if x.any():
                    st.station.arrive(st.owner, x, n, self.rng)  # type: ignore[arg-type]
                self._collect(fl, j, n, i)
        if self.logins is not None:
            self.logins.collect(n, i)

    def _collect(self, fl: ClassFlow, j: int, n: int, i: int) -> None:
        """What stage j of a class finished in this step goes on (or ends the attempt)."""
        o = fl.stages[j].owner
        if o.done.any():
            if j + 1 < len(fl.stages):
                fl.forward = fl.forward + o.done
            else:
                fl.out[OK] = fl.out.get(OK, 0) + o.done
            o.done = np.zeros_like(o.done)
        for reason, buf in ((ERROR, o.error), (SHED, o.shed)):
            if buf.any():
                fl.out[reason] = fl.out.get(reason, 0) + buf
                buf[:] = 0.0
        if isinstance(o, LLMOwner):
            for vals, counts in o.ttft:
                self.rec.record("ttft", fl.name, vals, counts)
            o.ttft.clear()
            if o.tpot_n.any() and o.stage.mean_output > 1:
                assert self.llm is not None
                self.rec.record("tpot", fl.name, self.llm.tpot_values()[:, None], o.tpot_n[:, None])
            o.tpot_n = np.zeros_like(o.tpot_n)

    def _admit(self, n: int, i: int) -> None:
        """The gateway fills its free slots; the admitted start their first stage."""
        if self.gw is None:
            return
        for fl in self.flows:
            for reason in (OK, ERROR, SHED):  # attempts that left the pipeline give their slot back
                x = fl.out.get(reason)
                if x is not None:
                    self.gw.in_use -= x.sum(axis=1)
        self.gw.in_use = np.maximum(self.gw.in_use, 0.0)
        got = self.gw.grant(n, self.rng)
        for fl in self.flows:
            rows = got.get(fl.name)
            if rows is None:
                continue
            self.rec.add(N.of_class("admitted", fl.name), i, rows[:, : self.rows.A].sum(axis=1))
            st = fl.stages[0]
            st.station.arrive(st.owner, rows, n, self.rng)  # type: ignore[arg-type]

    # -- outcomes back to the clients ----------------------------------------------------------
    def _settle(self, n: int, i: int) -> None:
        A = self.rows.A
        ages = self.rows.ages(n) * self.dt  # (A,) seconds since each row started
        for fl in self.flows:
            out, fl.out = fl.out, {}
            for reason, rows in out.items():
                live = rows[:, :A]
                if not live.any():
                    continue
                part = split_comp(fl.comp, live, self.rng)  # (R, K, S, A)
                fl.comp -= part
                cnt = part.sum(axis=2)  # (R, K, A)
                have = cnt + fl.comp.sum(axis=2)
                age0 = fl.age0 * _frac(cnt, have)
                fl.age0 -= age0
                if reason == OK:
                    self._ok(fl, part, age0, ages, n, i)
                else:
                    k_age = (age0.sum(axis=2) + (cnt * ages).sum(axis=2))
                    self._failed(fl, reason, part.sum(axis=3), _mean(k_age, cnt.sum(axis=2)), n, i)

    def _ok(self, fl: ClassFlow, part: np.ndarray, age0: np.ndarray, ages: np.ndarray, n: int, i: int) -> None:
        st, rec = self.states, self.rec
        cnt = part.sum(axis=2)  # (R, K, A)
        r, k, a = np.nonzero(cnt)  # the cohorts that finished (most rows are empty in a cell)
        c = cnt[r, k, a]
        e2e = ages[a] + age0[r, k, a] / c
        quarters = systematic(c, _QUARTERS, self.rng)  # (m, 4): spread over the step's start and end
        vals = np.maximum(e2e[:, None] + _TRI * self.dt, 0.05 * self.dt)
        rec.record_at("e2e", fl.name, np.repeat(r, 4), vals.ravel(), quarters.ravel())
        done = cnt.sum(axis=(1, 2))
        rec.add(N.of_class("completed", fl.name), i, done)
        good = (quarters * (vals <= fl.good_within_s)).sum(axis=1)
        rec.add(N.of_class("good", fl.name), i, np.bincount(r, weights=good, minlength=self.R))
        if fl.places_order:
            rec.add(N.ORDERS, i, done)
        self.cum["ended"] += done
        if self.tracks_answers:
            for rep, pol in enumerate(self.policies):
                pol.answered_many(OK, float(done[rep]), self.now)
        sess = st.move(part.sum(axis=(1, 3)), st.after_ok)
        self.sessions.end(sess, n, self.rng)

    def _failed(self, fl: ClassFlow, reason: str, x: np.ndarray, age_s: np.ndarray, n: int, i: int,
                sent: bool = True) -> None:
        """Attempts x (R, K, S) failed with `reason`, their commands aged age_s (R, K) s: retry,
        re-login or fail, by the attempt loop's rules."""
        st, rec = self.states, self.rec
        tot = x.sum(axis=(1, 2))
        if sent:
            rec.add(N.attempt_failed(reason), i, tot)  # type: ignore[arg-type]
            if self.tracks_answers:
                for r in range(self.R):
                    self.policies[r].answered_many(reason, float(tot[r]), self.now)
        if reason == TIMEOUT:
            x = st.move(x, st.after_timeout)
        give_up = self.sc.clients.abandon_after_s or math.inf
        for k in range(self.K):
            xk = x[:, k]
            if not xk.any():
                continue
            what = retry_target(self.policy, reason, k + 1)
            if what == "fail" or (what == "relogin" and self.logins is None):
                self._command_failed(fl, reason if what == "fail" else AUTH, xk, n, i)
            elif what == "relogin":
                assert self.logins is not None
                self.logins.relogin(fl, k + 1, xk, age_s[:, k], n)
            else:
                gone = fl.retries.add(k + 1, xk, age_s[:, k], n, self.rng, give_up)
                if gone.any():
                    self._command_failed(fl, "abandoned", gone, n, i)

    def _command_failed(self, fl: ClassFlow, reason: str, x: np.ndarray, n: int, i: int) -> None:
        """Commands x (R, S) that ended in failure; their sessions go on."""
        self.rec.add(N.failed(fl.name, reason), i, x.sum(axis=1))  # type: ignore[arg-type]
        self.cum["ended"] += x.sum(axis=1)
        self.sessions.end(x, n, self.rng)

    # -- gauges --------------------------------------------------------------------------------
    def _end_step(self, n: int, i: int) -> None:
        for p in self._all_pools():
            p.end_step(self.dt)
        if self.gw is not None:
            self.gw.end_step(self.dt)

    def _close_interval(self, i: int) -> None:
        rec, span = self.rec, self.sc.run.interval_s
        pools = [(n, p) for n, p in self.pools.items()] + ([("auth", self.auth)] if self.auth else [])
        stations: list[tuple[str, Any]] = ([("gateway", self.gw)] if self.gw else []) + pools
        for name, p in stations:
            a = p.acc
            rec.set(N.of_service("queue", name), i, p.waiting)
            rec.set(N.of_service("capacity", name), i, np.full(self.R, p.capacity))
            rec.set(N.of_service("utilisation", name), i, a["busy_dt"] / np.maximum(a["cap_dt"], 1e-12))
            rec.set(N.of_service("occupancy", name), i, a["occ_dt"] / span)
            for k in ("granted", "waited", "wait_s"):
                rec.set(N.of_service(k, name), i, a[k])  # type: ignore[arg-type]
            if name != "gateway":
                rec.set(N.of_service("served", name), i, a["served"])
                rec.set(N.of_service("time_s", name), i, a["time_s"] + a["wait_s"])
            for k in a:
                a[k] = np.zeros(self.R)
        g = self.llm
        if g is not None:
            a = g.acc
            busy = a["busy_dt"]
            batch = a["batch_dt"] / np.maximum(busy, 1e-12)
            rec.set(N.LLM_BATCH, i, batch)
            rec.set(N.LLM_KV_FRAC, i, llm_kv_frac(g))
            rec.set(N.LLM_PREFILL_TOKENS, i, a["prefill_tokens"])
            rec.set(N.LLM_DECODE_TOKENS, i, a["decode_tokens"])
            rec.set(N.LLM_PREEMPTIONS, i, np.zeros(self.R))
            rec.set(N.LLM_REPLICAS_UP, i, g.up)
            rec.set(N.LLM_BUSY, i, busy / span)
            rec.set(N.of_service("queue", "llm"), i, g.waiting)
            rec.set(N.of_service("capacity", "llm"), i, g.up)
            rec.set(N.of_service("utilisation", "llm"), i, batch / g.spec.max_num_seqs)
            for k in a:
                a[k] = np.zeros(self.R)
        rec.close_interval(i)

    def _results(self) -> list[Results]:
        rec, sc = self.rec, self.sc
        arrived = sum(rec.s(N.of_class("arrived", c)) for c in self.classes)
        ended = sum(rec.s(N.of_class("completed", c)) + sum(rec.s(N.failed(c, r)) for r in N.REASONS)
                    for c in self.classes)
        rec.series[N.IN_FLIGHT] = np.cumsum(arrived - ended, axis=1)
        meta = {"source": "fleet", "engine": "numpy", "surge_version": __version__, "scenario": sc.name,
                "duration_s": sc.run.duration_s, "warmup_s": sc.run.warmup_s, "start_hour": sc.run.start_hour,
                "services": sc.services.names(), "slos": {c: s.model_dump() for c, s in sc.slos.items()},
                "fleet_dt_s": self.dt, "replications_in_batch": self.R}
        out = rec.results(meta, self.seeds)
        dump = sc.model_dump(mode="json")
        for r in out:
            r.scenario = dump
        return out


class _Logins:
    """Logins as counts: at the auth pool, by row, tagged by purpose (a new session, or the
    re-login of a class's command before its attempt k) and login attempt number."""

    def __init__(self, sim: FleetSim) -> None:
        self.sim = sim
        R, rows = sim.R, sim.rows
        self.C, self.K = len(sim.flows), sim.K
        self.P = 1 + self.C * self.K
        self.KL = sim.sc.clients.max_attempts
        assert sim.auth is not None
        self.pool = sim.auth
        self.owner = sim.auth.add_owner()
        self.comp = np.zeros((R, self.P, self.KL, rows.A))
        self.retries = Retries(sim.policy, self.KL, self.P, R, sim.dt)
        self.purpose_age = np.zeros((R, self.P))  # sum of command ages of re-logins in flight, s
        self.purpose_n = np.zeros((R, self.P))

    def _purpose(self, ci: int, k: int) -> int:
        return 1 + ci * self.K + k

    def start_sessions(self, new: np.ndarray, n: int) -> None:
        x = np.zeros((self.sim.R, self.P, self.KL))
        x[:, 0, 0] = new
        self._send(x, n)

    def relogin(self, fl: ClassFlow, k: int, x: np.ndarray, age_s: np.ndarray, n: int) -> None:
        """Commands x (R, S) lost their session before attempt k: log in again, then send it."""
        p = self._purpose(self.sim.flows.index(fl), k)
        y = np.zeros((self.sim.R, self.P, self.KL))
        y[:, p, 0] = x.sum(axis=1)
        self.purpose_age[:, p] += age_s * x.sum(axis=1)
        self.purpose_n[:, p] += x.sum(axis=1)
        self._send(y, n)

    def _send(self, x: np.ndarray, n: int) -> None:
        r = self.sim.rows.row(n)
        self.comp[:, :, :, r] += x
        rows = np.zeros((self.sim.R, self.sim.rows.NR))
        rows[:, r] = x.sum(axis=(1, 2))
        self.pool.arrive(self.owner, rows, n, self.sim.rng)

    def timeouts(self, n: int, i: int, r0: int) -> None:
        x = self.comp[:, :, :, r0].copy()
        self.comp[:, :, :, r0] = 0.0
        self.pool.timeout_row(r0, self.sim.cancel)  # the auth pool serves only logins
        if x.any():
            self._failed(x, n, i)

    def collect(self, n: int, i: int) -> None:
        """Login outcomes of this step."""
        sim, o, A = self.sim, self.owner, self.sim.rows.A
        for kind, buf in (("ok", o.done), ("fail", o.error), ("fail", o.shed)):
            live = buf[:, :A].copy()
            buf[:] = 0.0
            if not live.any():
                continue
            taken = split_comp(self.comp, live, sim.rng)
            self.comp -= taken
            part = taken.sum(axis=3)  # (R, P, KL)
            if kind == "ok":
                self._ok(part.sum(axis=2), n, i)
            else:
                self._failed(part, n, i)

    def _ok(self, x: np.ndarray, n: int, i: int) -> None:
        sim, st = self.sim, self.sim.states
        sim.rec.add(N.LOGINS, i, x.sum(axis=1))
        if x[:, 0].any():
            sess = np.zeros((sim.R, st.n))
            sess[:, st.valid0] = x[:, 0]
            sim.pending_new += sess
        for ci, fl in enumerate(sim.flows):
            for k in range(1, self.K):
                p = self._purpose(ci, k)
                if x[:, p].any():
                    age = _mean(self.purpose_age[:, p] * _frac(x[:, p], self.purpose_n[:, p]), np.ones(sim.R))
                    self.purpose_age[:, p] -= age
                    self.purpose_n[:, p] -= x[:, p]
                    fl.ready[:, k, st.valid0] += x[:, p]
                    fl.ready_age[:, k] += age

    def _failed(self, x: np.ndarray, n: int, i: int) -> None:
        sim, st = self.sim, self.sim.states
        sim.rec.add(N.LOGIN_FAILED, i, x.sum(axis=(1, 2)))
        for kl in range(self.KL):
            xk = x[:, :, kl]  # (R, P)
            if not xk.any():
                continue
            if kl + 1 < self.KL:
                self.retries.add(kl + 1, xk, np.zeros(sim.R), n, sim.rng, math.inf)
                continue
            first = xk[:, 0]
            if first.any():  # a session that could not log in: one command fails auth
                by = systematic(first, sim.probs, sim.rng)
                for ci, fl in enumerate(sim.flows):
                    sim.rec.add(N.of_class("arrived", fl.name), i, by[:, ci])
                    sim.rec.add(N.failed(fl.name, AUTH), i, by[:, ci])
            for ci, fl in enumerate(sim.flows):
                for k in range(1, self.K):
                    p = self._purpose(ci, k)
                    if xk[:, p].any():
                        self.purpose_n[:, p] -= xk[:, p]
                        self.purpose_age[:, p] *= _frac(self.purpose_n[:, p], self.purpose_n[:, p] + xk[:, p])
                        sess = np.zeros((sim.R, st.n))
                        sess[:, st.out0] = xk[:, p]
                        sim._command_failed(fl, AUTH, sess, n, i)

    def due(self, n: int) -> None:
        x, _ = self.retries.due(n)
        if x.any():
            self._send(np.moveaxis(x, 1, 2), n)


def _frac(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, a / np.maximum(b, 1e-300), 0.0)


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.where(count > 0, total / np.maximum(count, 1e-300), 0.0)


def _take_share(x: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Take k[r] of the attempts x (R, ...) in proportion to how they are spread."""
    flat = x.reshape(x.shape[0], -1)
    tot = flat.sum(axis=1, keepdims=True)
    p = np.where(tot > 0, flat / np.maximum(tot, 1e-300), 0.0)
    p[:, -1] += np.where(tot[:, 0] > 0, 0.0, 1.0)
    out = np.minimum(systematic(np.minimum(k, tot[:, 0]), p, rng), flat)
    return out.reshape(x.shape)


def _age_horizon(dt: float) -> float:
    """Without a timeout: how long an attempt's age is followed, seconds (512 steps, at most
    10 minutes); older attempts go on as ghosts of unknown age."""
    return min(600.0, 512 * dt)


def simulate_batch(sc: Scenario, seed: int | None = None, replications: int = 1,
                   dt: float | None = None) -> list[Results]:
    """Replications seed, seed + 1, ... of a scenario as one batch; one `Results` each."""
    base = sc.run.seed if seed is None else seed
    return FleetSim(sc, [base + r for r in range(replications)], dt).run()


def simulate(sc: Scenario, seed: int | None = None, dt: float | None = None) -> Results:
    """One replication with the fleet engine (source "fleet")."""
    return simulate_batch(sc, seed, 1, dt)[0]
