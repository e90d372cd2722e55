"""Users and their client: sessions of commands, each command a series of attempts through the
gateway and the command's stages, with timeouts, retries, budgets, throttling and re-login.

Retry budget and adaptive throttling are kept for the whole client population (as an app's
shared client library would see the service), over a sliding window of about a minute.

With `population.launch`, sessions belong to users (`sim.des.users`): `user_session` keeps the
user's login across sessions (a first login registers), and the funnel (`sim.funnel`) is asked
at a command's start (class by card state, outcome, stages to run) and at its success (order,
card spent); the stack reports each charge of a payment stage (`paid`).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import PENDING

from sim.arrivals import FollowUps
from sim.des.stack import StackModel
from sim.dists import sampler
from sim.funnel import GOES_AHEAD, OUTCOMES, STATES, Funnel, Plan
from sim.results import Recorder
from sim.results import names as N
from sim.results.recorder import IntervalHistogram
from sim.rules.attempts import (
    ABANDON,
    DONE,
    FAIL,
    RELOGIN,
    Command,
    CommandAttempts,
    SessionHealth,
    login_retry_wait,
)
from sim.rules.orders import (
    CHARGED_AGAIN,
    DUPLICATE_PREVENTED,
    FAILED_AFTER_PAYMENT,
    WRONG_ITEM,
    at_end,
    charge,
)
from sim.rules.outcomes import ABANDONED, AUTH, OK, THROTTLED, TIMEOUT
from sim.rules.ratelimit import TokenBucket
from sim.rules.retry import RetryPolicy

if TYPE_CHECKING:
    from sim.des.users import Users


class SimCommand(Command):
    """A command as the simulator runs it: with the funnel's plan and the user, if any."""

    __slots__ = ("plan", "user", "n_stages", "pay_stage", "payments", "ended")

    def __init__(self, name: str, cls: Any, t0: float, prompt0: int = -1, output0: int = -1) -> None:
        # Command's fields set here rather than by super().__init__: one call less per command
        self.name, self.cls, self.t0, self.prompt0, self.output0 = name, cls, t0, prompt0, output0
        self.order: Any = None  # the order this command places (sim.rules.orders), once it has one
        self.plan: Plan | None = None  # the funnel's plan, if the class has a funnel
        self.user: Any = None  # the sim.des.users.User, for a launch
        self.n_stages = self.pay_stage = -1  # stages to run (-1: all); index of the charging payment stage
        self.payments = 0  # charges so far, over all attempts (also attempts the client gave up on)
        self.ended = False


class ClassTally:
    """One command class's series and histograms, fetched from the recorder once: the hot path
    increments them by interval index, with no lookup by name."""

    __slots__ = ("arrived", "attempts", "retries", "admitted", "completed", "good", "e2e", "llm",
                 "good_within_s", "funnel", "places_order")

    def __init__(self, rec: Recorder, name: str, cls: Any, hists: tuple[IntervalHistogram, ...],
                 good_within_s: float, funnel: bool) -> None:
        self.arrived, self.attempts, self.retries, self.admitted, self.completed, self.good = (
            rec.series(N.of_class(m, name)) for m in ("arrived", "attempts", "retries", "admitted", "completed", "good"))
        self.e2e = hists[0]
        self.llm = hists[1:]  # (ttft, tpot), per LLM call (sim.des.stack)
        self.good_within_s = good_within_s  # a success this fast counts as good (the class e2e SLO)
        self.funnel = funnel
        self.places_order = bool(cls.places_order)


class SessionState:
    """A session as the simulated client and stack see it: login, auth epoch, rate bucket."""

    __slots__ = ("epoch", "logged_in", "bucket", "login_at", "health")

    def __init__(self, epoch: int, bucket: TokenBucket | None, health: SessionHealth) -> None:
        self.epoch, self.bucket, self.health = epoch, bucket, health
        self.logged_in = False
        self.login_at = 0.0


class Client:
    """Runs sessions against a `StackModel`, recording into a `Recorder`."""

    def __init__(self, env: simpy.Environment, stack: StackModel, rec: Recorder, streams) -> None:  # type: ignore[no-untyped-def]
        sc = stack.scenario
        self.env, self.stack, self.rec, self.spec = env, stack, rec, sc.clients
        self.uniform = stack.uniforms("client")
        self.jitter = stack.uniforms("client.jitter")
        self._classes = list(sc.workload.classes.items())
        self._cum = [sum(c.probability for _, c in self._classes[: i + 1]) for i in range(len(self._classes))]
        self._cls_u = stack.uniforms("client.class")
        self._picks = list(zip(self._cum, self._classes, strict=True))
        pop = sc.population
        self.n_commands = sampler(pop.commands_per_session if pop else None, streams("session.commands"))
        self.think = sampler(pop.think_time_s if pop else None, streams("session.think"))
        self.one_command = pop is None or (pop.commands_per_session.type == "constant"
                                           and pop.commands_per_session.mean == 1)  # type: ignore[union-attr]
        self.policy = RetryPolicy(self.spec, self.uniform, lambda: env.now, jitter=self.jitter)
        self.in_flight = 0
        self._untimed = self.spec.timeout_s is None
        e2e_slo = {n: s.e2e_p99_s for n, s in sc.slos.items()}
        self.funnel = Funnel(sc.workload)
        # histograms created in this order (all e2e, then ttft and tpot per class): it is the files' order
        e2e = {n: rec.hist("e2e", n) for n, _ in self._classes}
        llm = {n: (rec.hist("ttft", n), rec.hist("tpot", n)) for n, _ in self._classes}
        self.tallies = {n: ClassTally(rec, n, c, (e2e[n], *llm[n]), e2e_slo.get(n) or math.inf,
                                      self.funnel.has_funnel(n)) for n, c in self._classes}
        self._failed: dict[tuple[str, str], list[float]] = {
            (n, r): rec.series(N.failed(n, r)) for n, _ in self._classes for r in N.REASONS}
        self._attempt_failed: dict[str, list[float]] = {r: rec.series(N.attempt_failed(r)) for r in N.REASONS}
        self._orders = rec.series(N.ORDERS)
        self._logins, self._login_failed = rec.series(N.LOGINS), rec.series(N.LOGIN_FAILED)
        self.users: Users | None = None  # the launch population (set by it)
        self._funnel_series(rec)
        auth = sc.services.auth
        self._register_s = sampler(auth.register_latency, streams("service.auth.register")) if (
            auth is not None and auth.register_latency is not None) else None
        stack.on_payment = self.paid
        self.follow_ups = FollowUps(sc, streams("proactive.follow_ups"))
        # a one-command session without login is its command itself (see `session`)
        self._session_is_command = self.one_command and stack.auth is None

    def _funnel_series(self, rec: Recorder) -> None:
        names = [n for n in self.funnel.names if self.funnel.has_funnel(n)]
        self._buy = {(n, st): rec.series(N.buy(n, st)) for n in names for st in STATES}
        self._buy_out = {(n, st, o): rec.series(N.buy_outcome(n, st, o)) for n in names for st in STATES
                         for o in OUTCOMES}
        self._attempted, self._redeemed = rec.series(N.ORDERS_ATTEMPTED), rec.series(N.CARDS_REDEEMED)
        self._payments, self._dup = rec.series(N.PAYMENTS), rec.series(N.PAYMENTS_DUPLICATED)
        self._failed_paid = rec.series(N.FAILED_AFTER_PAYMENT)
        orders = any(c.places_order for c in self.funnel.classes.values())
        self._prevented = rec.series(N.DUPLICATES_PREVENTED) if orders else None
        self._wrong = rec.series(N.WRONG_ITEMS) if orders else None

    def pick_class(self) -> tuple[str, object]:
        if len(self._picks) == 1:  # nothing to draw (the stream serves only this choice)
            return self._classes[0]
        u = self._cls_u()
        for c, name_cls in self._picks:
            if u < c:
                return name_cls
        return self._classes[-1]

    # -- sessions ------------------------------------------------------------------------------
    def session(self, prompt0: int = -1, output0: int = -1):  # type: ignore[no-untyped-def]
        """A session's process body (a generator). A one-command session without login is its
        command itself: one generator level less on the hot path."""
        stack = self.stack
        sess = SessionState(stack.auth_epoch, stack.gateway.user_bucket() if stack.gateway else None,
                            SessionHealth(self.spec.session_lost_after_timeouts))
        if self._session_is_command:
            name, cls = self.pick_class()
            return self.command(sess, SimCommand(name, cls, self.env.now, prompt0, output0))
        return self._session(sess, prompt0, output0)

    def _session(self, sess: SessionState, prompt0: int, output0: int):  # type: ignore[no-untyped-def]
        stack, env = self.stack, self.env
        if stack.auth is not None:
            ok = yield from self.login(sess)
            if not ok:
                name, cls = self.pick_class()
                self._arrive(name)
                self._fail(name, AUTH)
                return
        n = 1 if self.one_command else max(1, round(self.n_commands()))
        for k in range(n):
            name, cls = self.pick_class()
            cmd = SimCommand(name, cls, env.now)
            cmd.prompt0, cmd.output0 = prompt0, output0
            prompt0 = output0 = -1  # a trace row is the session's first command (as the load test's)
            yield from self.command(sess, cmd)
            if k + 1 < n:
                yield env.timeout(self.think())

    def user_session(self, user):  # type: ignore[no-untyped-def]
        """One session of a launch user (a generator returning True once logged in): log in when
        the app holds no fresh token (a new user registers), tell the population, run commands."""
        stack, env = self.stack, self.env
        if user.sess is None:
            user.sess = SessionState(stack.auth_epoch, stack.gateway.user_bucket() if stack.gateway else None,
                                     SessionHealth(self.spec.session_lost_after_timeouts))
        sess = user.sess
        if stack.auth is not None and not self._token_fresh(sess):
            ok = yield from self.login(sess, register=not user.registered)
            if not ok:
                name = self.funnel.pick_class(user.has_card, user.uniform())
                self._arrive(name)
                self._fail(name, AUTH)
                return False
        users = self.users
        assert users is not None
        users.logged_in(user, env.now)
        n = max(1, round(user.n_commands()))
        for k in range(n):
            first = users.cards.first_command(user.uniform()) if user.trying else None
            user.trying = False
            name = first or self.funnel.pick_class(user.has_card, user.uniform())
            cmd = SimCommand(name, self.funnel.classes[name], env.now)
            cmd.user = user
            yield from self.command(sess, cmd)
            if k + 1 < n:
                yield env.timeout(user.think())
        return True

    def _token_fresh(self, sess: SessionState) -> bool:
        """The app holds a token it believes valid (it learns of an invalidation only when refused)."""
        auth = self.stack.scenario.services.auth
        return sess.logged_in and auth is not None and self.env.now - sess.login_at <= auth.session_ttl_s

    def login(self, sess: SessionState, register: bool = False):  # type: ignore[no-untyped-def]
        """Log in (a new user: register, for `services.auth.register_latency`), retrying per the
        client policy; True when logged in."""
        env, auth = self.env, self.stack.auth
        assert auth is not None
        for attempt in itertools.count():
            idx = self.rec.index(env.now)
            limit = env.now + self.policy.timeout_s
            service_s = self._register_s() if register and self._register_s is not None else None
            outcome = yield from self._timed(self.stack.login(limit, service_s), limit, TIMEOUT)
            if outcome == OK:
                self._logins[idx] += 1
                sess.logged_in, sess.epoch, sess.login_at = True, self.stack.auth_epoch, env.now
                return True
            self._login_failed[self.rec.index(env.now)] += 1
            wait = login_retry_wait(self.policy, attempt)
            if wait is None:
                return False
            yield env.timeout(wait)
        return False  # pragma: no cover - the loop returns

    # -- commands ------------------------------------------------------------------------------
    def _arrive(self, name: str) -> None:
        self.tallies[name].arrived[self.rec.index(self.env.now)] += 1
        self.in_flight += 1

    def _fail(self, name: str, reason: str, cmd: SimCommand | None = None) -> None:
        idx = self.rec.index(self.env.now)
        self._failed[(name, reason)][idx] += 1
        self.in_flight -= 1
        if cmd is not None:
            cmd.ended = True
            if at_end(cmd.order, False) == FAILED_AFTER_PAYMENT:
                self._failed_paid[idx] += 1  # charged (not refunded), but the user was told it failed

    # -- proactive tasks -------------------------------------------------------------------------
    def proactive(self, name: str):  # type: ignore[no-untyped-def]
        """A scheduled task the agent starts: one command of class `name` on a session of its own
        (logged in first when the stack has auth)."""
        stack = self.stack
        sess = SessionState(stack.auth_epoch, stack.gateway.user_bucket() if stack.gateway else None,
                            SessionHealth(self.spec.session_lost_after_timeouts))
        if stack.auth is not None and not (yield from self.login(sess)):
            self._arrive(name)
            self._fail(name, AUTH)
            return
        yield from self.command(sess, SimCommand(name, self.funnel.classes[name], self.env.now))

    def _follow_up(self, sess: SessionState, name: str, delay_s: float):  # type: ignore[no-untyped-def]
        yield self.env.timeout(delay_s)
        yield from self.command(sess, SimCommand(name, self.funnel.classes[name], self.env.now))

    def _plan(self, cmd: SimCommand) -> None:
        """A funnel command's outcome and stages, drawn from the user's state when it starts."""
        user = cmd.user
        has_card = user is not None and user.has_card
        draw = user.uniform if user is not None else self.uniform
        plan = cmd.plan = self.funnel.plan(cmd.name, has_card, draw)
        cmd.n_stages, cmd.pay_stage = plan.n_stages, plan.pay_stage
        idx = self.rec.index(self.env.now)
        self._buy[(cmd.name, plan.state)][idx] += 1
        if plan.outcome in GOES_AHEAD:
            self._attempted[idx] += 1

    def paid(self, cmd: SimCommand) -> None:
        """The stack's call when an attempt's payment stage did its work (also an attempt the
        client has given up on): `sim.rules.orders.charge` says whether it charged. With
        exactly-once payments (the default) a second charge of the same order is prevented."""
        idx = self.rec.index(self.env.now)
        what = charge(cmd.payments, cmd.plan.exactly_once if cmd.plan is not None else True)
        if what == DUPLICATE_PREVENTED:
            if self._prevented is not None:
                self._prevented[idx] += 1
            return
        cmd.payments += 1
        if cmd.order is not None:
            cmd.order.paid = True
        self._payments[idx] += 1
        if what == CHARGED_AGAIN:
            self._dup[idx] += 1
        elif cmd.ended:
            self._failed_paid[idx] += 1  # charged after the user was told it failed

    def command(self, sess: SessionState, cmd: SimCommand):  # type: ignore[no-untyped-def]
        """A command's attempts, driven by the shared attempt loop (`sim.rules.attempts`)."""
        env, rec = self.env, self.rec
        name = cmd.name
        tally = self.tallies[name]
        now = env.now
        idx = rec.index(now)
        tally.arrived[idx] += 1  # as `_arrive` (the index is the first attempt's too)
        self.in_flight += 1
        if tally.funnel:
            self._plan(cmd)
        loop = CommandAttempts(self.policy, cmd.t0)
        direct = self._untimed and loop.give_up == math.inf
        health = sess.health
        while True:
            if loop.start():
                if loop.attempt:  # a retry (the first attempt goes at the arrival's instant)
                    now = env.now
                    idx = rec.index(now)
                    tally.retries[idx] += 1
                tally.attempts[idx] += 1
                work = self.stack.attempt(sess, cmd, self)
                if direct:
                    outcome = yield from work
                else:
                    limit = loop.time_limit(now)
                    outcome = yield from self._timed(work, limit, loop.expired(limit))
            else:
                outcome = THROTTLED
            if health.after(outcome):
                sess.logged_in = False  # the next attempt fails auth and logs in again
            now = env.now
            step = loop.after(outcome, now)
            kind = step.kind
            if kind == DONE:
                self._succeed(cmd, sess, tally, now)
                return
            self._attempt_failed[outcome][rec.index(now)] += 1
            if kind == FAIL:
                self._fail(name, step.reason, cmd)
                return
            if kind == RELOGIN:
                # a lost session: log in again, then retry at once (this is the login storm)
                if self.stack.auth is None or not (yield from self.login(sess)):
                    self._fail(name, AUTH, cmd)
                    return
                continue
            yield env.timeout(step.wait_s)
            if kind == ABANDON:
                self._fail(name, ABANDONED, cmd)
                return

    def _succeed(self, cmd: SimCommand, sess: SessionState, tally: ClassTally, now: float) -> None:
        idx = self.rec.index(now)
        e2e = now - cmd.t0
        tally.completed[idx] += 1
        if e2e <= tally.good_within_s:
            tally.good[idx] += 1
        tally.e2e.record(now, e2e)
        cmd.ended = True
        if cmd.plan is not None:
            ordered, card = self.funnel.settle(cmd.plan, cmd.user.wallet if cmd.user is not None else None)
            self._buy_out[(cmd.name, cmd.plan.state, cmd.plan.outcome)][idx] += 1
            self._orders[idx] += ordered
            self._redeemed[idx] += card
        elif tally.places_order:
            self._orders[idx] += 1
        if self._wrong is not None and at_end(cmd.order, True) == WRONG_ITEM:
            self._wrong[idx] += 1
        self.in_flight -= 1
        if self.follow_ups:
            for start, delay in self.follow_ups.after(cmd.name):
                self.env.process(self._follow_up(sess, start, delay))

    def _timed(self, work, limit: float, late: str):  # type: ignore[no-untyped-def]
        """Run an attempt until `limit` (the per-attempt timeout or the user's patience); its
        outcome, or `late` (TIMEOUT or ABANDONED) when no answer came by then. Timed-out work
        goes on unless `cancel_on_timeout` (the servers then learn of it and drop it)."""
        env = self.env
        if limit == math.inf:
            return (yield from work)
        proc = env.process(work)
        timer = env.timeout(limit - env.now)
        # `proc | timer` without a Condition: the same events in the same order (the first of
        # the two to fire schedules `first` now), less of the Condition's bookkeeping
        first = simpy.Event(env)

        def fired(ev: simpy.Event) -> None:
            if first._value is PENDING:
                if ev._ok:
                    first.succeed()
                else:
                    ev._defused = True
                    first.fail(ev._value)  # type: ignore[arg-type]

        proc.callbacks.append(fired)  # type: ignore[union-attr]
        timer.callbacks.append(fired)  # type: ignore[union-attr]
        yield first
        if proc.triggered:
            return proc.value
        if self.spec.cancel_on_timeout:
            proc.interrupt("cancelled")
            proc.defused = True
        return late


__all__ = ["ABANDONED", "AUTH", "THROTTLED", "Client", "Command", "SessionState", "SimCommand"]
