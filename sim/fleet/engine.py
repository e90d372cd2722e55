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

import numpy as np

from sim.errors import SimulationError
from sim.fleet.client import Retries, Sessions, SessionStates
from sim.fleet.flows import ClassFlow, Stage
from sim.fleet.funnel import FleetFunnel
from sim.fleet.gateway import FleetGateway
from sim.fleet.gauges import close_interval, end_step, results_of
from sim.fleet.kernels import LLMStage, choose_dt, class_plans
from sim.fleet.launch import FleetLaunch
from sim.fleet.llm import LLMGroup, LLMOwner
from sim.fleet.logins import Logins
from sim.fleet.orders import FleetOrders
from sim.fleet.outcomes import failed, settle
from sim.fleet.proactive import FleetProactive
from sim.fleet.record import BatchRecorder
from sim.fleet.rows import Rows
from sim.fleet.sending import leave_queue, send
from sim.fleet.sessions_in import session_starts
from sim.fleet.split import binomial
from sim.fleet.stations import Pool
from sim.fleet.timestep import Regrid, StepRule
from sim.results import Results
from sim.results import names as N
from sim.rules.deadlines import Deadlines
from sim.rules.faults import combine
from sim.rules.outcomes import ERROR, OK, SHED, TIMEOUT
from sim.rules.retry import RetryPolicy
from sim.scenario import Scenario
from sim.streams import Streams


class FleetSim:
    """The state of a batch of replications and the order of one time step (the module's
    docstring); the phases live in `sending`, `outcomes`, `logins` and `gauges`."""

    def __init__(self, sc: Scenario, seeds: list[int], dt: float | None = None,
                 max_dt: float | None = None) -> None:
        self.sc, self.seeds, self.R = sc, seeds, len(seeds)
        R = self.R
        self.rng = Streams(seeds[0])(f"fleet.batch{R}")
        self.dt = dt or choose_dt(sc)
        per = sc.run.interval_s / self.dt
        if per < 1 - 1e-9 or abs(per - round(per)) > 1e-6:
            raise SimulationError(f"the fleet time step must divide run.interval_s ({sc.run.interval_s:g} s) "
                                  f"(got {self.dt:g} s)")
        self.dt0 = self.dt  # the fine step; the step is dt0 x 2^level (`timestep`)
        self.level = 0
        self.n_steps = max(1, math.ceil(sc.run.duration_s / self.dt - 1e-9))  # of dt0
        self.spi = max(1, round(sc.run.interval_s / self.dt))  # steps of dt0 per results interval
        self.steps_run = 0
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
        plans = class_plans(sc)
        outputs = [w.mean_output for plan in plans.values() for k, w in plan if isinstance(w, LLMStage)]
        self.llm = LLMGroup(sv.llm, R, self.rows, self.dt, min(outputs, default=None)) if sv.llm else None
        prio = {n: c.priority for n, c in sc.workload.classes.items()}
        self.gw = FleetGateway(sv.gateway, self.classes, prio, self.deadlines, R, self.rows) if sv.gateway else None
        self.sessions = Sessions(sc, R, self.states, self.dt)
        self.step_n = 0
        self.orders = FleetOrders.of(self, Streams(seeds[0])(f"fleet.orders.batch{R}"))
        self.flows = [self._flow(n, plan) for n, plan in plans.items()]
        self.proactive = FleetProactive.of(self, Streams(seeds[0])(f"fleet.proactive.batch{R}"))
        self.logins = Logins(self) if self.auth else None
        self.launch = FleetLaunch.of(self)  # population.launch: sessions come from its users
        self.funnel = FleetFunnel.of(self)  # the class mix by card state and the buy funnel
        self.starts = session_starts(sc, seeds, self.dt, self.n_steps, self.rng)
        self._faults_on: list[set[int]] = []
        self.cum = {k: np.zeros(R) for k in ("arrived", "ended")}
        # hold epochs and proactive starts are kept on the fine grid: no adaptive step with them
        fine_only = bool(self.orders is not None and self.orders.stocks) or self.proactive is not None
        self.rule = (StepRule(self, self.dt0, max_dt) if max_dt is not None and max_dt > self.dt0
                     and not fine_only else None)

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
        book = self.orders.books.get(name) if self.orders is not None else None
        n_tags = book.tags.n if book is not None else 1  # retries keep (session state, order state) together
        fl = ClassFlow(name, stages, np.zeros((R, self.K, S, rows.A)), np.zeros((R, self.K, rows.A)),
                       Retries(self.policy, self.K, S * n_tags, R, self.dt),
                       (slo.e2e_p99_s if slo and slo.e2e_p99_s else math.inf), cls.places_order, book,
                       np.zeros((R, rows.NR)), {}, np.zeros((R, self.K, S)), np.zeros((R, self.K)), np.zeros(R))
        if book is not None:
            book.retries_cal = fl.retries.cal
        return fl

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> list[Results]:
        n = 0  # the step's index on the grid of the current step length
        while (n << self.level) < self.n_steps:
            if self.rule is not None:
                self.now = n * self.dt
                want = self.rule.factor(self, self.level, n)
                while want != self.level:
                    n = self._regrid(n, coarser=want > self.level)
            self.step(n)
            n += 1
        return results_of(self)

    def _regrid(self, n: int, coarser: bool) -> int:
        """Double (coarser) or halve the time step before step n; returns n on the new grid."""
        g = Regrid(n, coarser)
        self.level += 1 if coarser else -1
        self.dt = dt = self.dt0 * 2**self.level
        self.rows.regrid(dt)
        for p in self.all_pools():
            p.regrid(g, dt)
        if self.llm is not None:
            self.llm.regrid(g, dt)
        if self.gw is not None:
            self.gw.regrid(g)
        self.sessions.regrid(g, dt)
        for fl in self.flows:
            fl.regrid(g, self.rows.A, dt)
        if self.logins is not None:
            self.logins.regrid(g, dt)
        return g.n_new

    def starts_in(self, n: int) -> np.ndarray:
        """Sessions starting in step n (R,): the fine steps it covers."""
        if self.level == 0:
            return self.starts[:, n]
        b = n << self.level
        return self.starts[:, b: b + (1 << self.level)].sum(axis=1)

    def step(self, n: int) -> None:
        self.now = n * self.dt
        self.steps_run += 1
        self.step_n = n
        i = min((n << self.level) // self.spi, self.rec.n_intervals - 1)
        if self.orders is not None:
            self.orders.step_start(n)
        self._faults(n, i)
        self._timeouts(n, i)
        send(self, n, i)
        for p in self.all_pools():
            p.advance(n, self.rng)
        if self.llm is not None:
            self.llm.advance(n, self.rng)
        self._pass(n, i)
        for p in self.all_pools():
            p.release_late(n, self.rng)
        self._admit(n, i)
        settle(self, n, i)
        self.sessions.flush(n, self.rng)
        end_step(self, n, i)
        end = (n + 1) << self.level
        if end % self.spi == 0 or end >= self.n_steps:
            close_interval(self, i)

    def all_pools(self) -> list[Pool]:
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
                failed = self.gw.set_effect(eff, n)
                for fl in self.flows:
                    if fl.name in failed and failed[fl.name].any():
                        leave_queue(self, fl, failed[fl.name], ERROR)
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
                    cal = fl.retries.cal.reshape(self.R, self.K, st.n, -1, fl.retries.H)  # (.., S, O, H)
                    lr = cal[:, :, s] - binomial(cal[:, :, s], keep, self.rng)
                    cal[:, :, s] -= lr
                    cal[:, :, s - st.L] += lr

    # -- timeouts ------------------------------------------------------------------------------
    def _timeouts(self, n: int, i: int) -> None:
        if self.sc.clients.timeout_s is None:
            self._age_out(n)
            return
        r0 = n % self.rows.A
        self._stations_timeout(r0, self.cancel)
        queued = self._queue_timeout(n)
        for fl in self.flows:
            x = fl.comp[:, :, :, r0].copy()
            age = fl.age0[:, :, r0].copy()
            fl.comp[:, :, :, r0] = 0.0
            fl.age0[:, :, r0] = 0.0
            if self.cancel and self.gw is not None and x.any():
                # the servers dropped the row's admitted attempts: their gateway slots are free
                # (the rest of the row was still in the queue, dropped there, or has just left
                # it: a gateway outage in this step, in `out` and never admitted)
                left = sum((v[:, r0] for v in fl.out.values()), np.zeros(self.R))
                self.gw.in_use -= x.sum(axis=(1, 2)) - queued[fl.name] - left
            o = (fl.book.timeout_row(r0, self.cancel, self.gw is not None and self.gw.drops)
                 if fl.book is not None else None)
            if x.any():
                cnt = x.sum(axis=2)
                mean_age = np.where(cnt > 0, age / np.maximum(cnt, 1e-12), 0.0) + self.rows.A * self.dt
                failed(self, fl, TIMEOUT, x, mean_age, n, i, o=o)
        if self.logins is not None:
            self.logins.timeouts(n, i, r0)

    def _queue_timeout(self, n: int) -> dict[str, np.ndarray]:
        """When servers cancel, the gateway drops the waiters whose clients timed out; how many
        per class (R,) (zeros otherwise)."""
        out = {fl.name: np.zeros(self.R) for fl in self.flows}
        gw = self.gw
        if not (self.cancel and gw is not None):
            return out
        taken = [q.take_older(n, self.rows.A) for q in gw.queues]
        for c in self.classes:
            out[c] = taken[gw.lane[c]][:, gw.lane_idx[c]]
        return out

    def _age_out(self, n: int) -> None:
        """No timeout: rows that grow older than the horizon keep going as ghosts (their e2e is
        no longer known; the horizon is chosen far beyond any latency the run sees)."""
        r0 = n % self.rows.A
        self._stations_timeout(r0, False)
        for fl in self.flows:
            if fl.book is not None:
                fl.book.timeout_row(r0, False, False)
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
        if fl.book is not None:  # the stage's order work; attempts whose work failed leave `o.done`
            fl.book.collect(j, o, fl.out, i)
        if self.funnel is not None:  # plans that stop after stage j end their command here
            self.funnel.collect(fl, j, o, i)  # type: ignore[arg-type]
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
            for r_idx, vals, counts in o.ttft:
                self.rec.record_at("ttft", fl.name, r_idx, vals, counts)
            o.ttft.clear()
            if o.tpot_n.any() and o.stage.mean_output > 1:
                assert self.llm is not None
                self.rec.record("tpot", fl.name, self.llm.tpot_values()[:, None], o.tpot_n[:, None])
            o.tpot_n = np.zeros_like(o.tpot_n)

    def _admit(self, n: int, i: int) -> None:
        """The gateway fills its free slots; the admitted start their first stage."""
        if self.gw is None:
            return
        newest_first = None
        if self.gw.adaptive is not None:  # adaptive LIFO: a standing queue's stale waiters fail fast
            stale, newest_first = self.gw.drop_stale(n, self.now, self.dt)
            for fl in self.flows:
                if fl.name in stale and stale[fl.name].any():
                    leave_queue(self, fl, stale[fl.name], SHED)
        for fl in self.flows:
            # attempts that left the pipeline give their slot back; those that left the queue
            # (evicted, stale, a gateway outage) never held one
            for x in fl.out.values():
                self.gw.in_use -= x.sum(axis=1)
            self.gw.in_use += fl.unslotted
            fl.unslotted = np.zeros(self.R)
        got = self.gw.grant(n, self.rng, newest_first, self.now)
        for fl in self.flows:
            rows = got.get(fl.name)
            if rows is None:
                continue
            self.rec.add(N.of_class("admitted", fl.name), i, rows[:, : self.rows.A].sum(axis=1))
            if fl.book is not None:
                fl.book.admitted(rows)
            st = fl.stages[0]
            st.station.arrive(st.owner, rows, n, self.rng)  # type: ignore[arg-type]


def _age_horizon(dt: float) -> float:
    """Without a timeout: how long an attempt's age is followed, seconds (512 steps, at most
    10 minutes); older attempts go on as ghosts of unknown age."""
    return min(600.0, 512 * dt)


def simulate_batch(sc: Scenario, seed: int | None = None, replications: int = 1,
                   dt: float | None = None, max_dt: float | None = None) -> list[Results]:
    """Replications seed, seed + 1, ... of a scenario as one batch; one `Results` each. `dt`:
    the (fine) time step; `max_dt`: the adaptive step's longest (`timestep`; None: fixed dt)."""
    base = sc.run.seed if seed is None else seed
    return FleetSim(sc, [base + r for r in range(replications)], dt, max_dt).run()


def simulate(sc: Scenario, seed: int | None = None, dt: float | None = None,
             max_dt: float | None = None) -> Results:
    """One replication with the fleet engine (source "fleet")."""
    return simulate_batch(sc, seed, 1, dt, max_dt)[0]
