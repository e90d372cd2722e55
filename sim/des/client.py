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

import math
from typing import TYPE_CHECKING, Any

import simpy

from sim.des.services import OK, TIMEOUT, TokenBucket
from sim.des.stack import AUTH, Stack
from sim.dists import sampler
from sim.funnel import GOES_AHEAD, OUTCOMES, STATES, Funnel, Plan
from sim.policy import RetryPolicy
from sim.results import Recorder

if TYPE_CHECKING:
    from sim.des.users import Users

ABANDONED, THROTTLED = "abandoned", "throttled"


class Session:
    __slots__ = ("epoch", "logged_in", "bucket", "login_at", "timeouts")

    def __init__(self, epoch: int, bucket: TokenBucket | None) -> None:
        self.epoch, self.bucket = epoch, bucket
        self.logged_in = False
        self.login_at = 0.0
        self.timeouts = 0  # timeouts in a row (clients.session_lost_after_timeouts)


class Command:
    __slots__ = ("cls", "name", "t0", "prompt0", "output0", "plan", "user", "n_stages", "pay_stage", "payments",
                 "ended")

    def __init__(self, name: str, cls: object, t0: float) -> None:
        self.name, self.cls, self.t0 = name, cls, t0
        self.prompt0 = self.output0 = -1
        self.plan: Plan | None = None  # the funnel's plan, if the class has a funnel
        self.user: Any = None  # the sim.des.users.User, for a launch
        self.n_stages = self.pay_stage = -1  # stages to run (-1: all); index of the charging payment stage
        self.payments = 0  # charges so far, over all attempts (also attempts the client gave up on)
        self.ended = False


class Client:
    """Runs sessions against a `Stack`, recording into a `Recorder`."""

    def __init__(self, env: simpy.Environment, stack: Stack, rec: Recorder, streams) -> None:  # type: ignore[no-untyped-def]
        sc = stack.scenario
        self.env, self.stack, self.rec, self.spec = env, stack, rec, sc.clients
        self.uniform = stack.uniforms("client")
        self.jitter = stack.uniforms("client.jitter")
        self._classes = list(sc.workload.classes.items())
        self._cum = [sum(c.probability for _, c in self._classes[: i + 1]) for i in range(len(self._classes))]
        self._cls_u = stack.uniforms("client.class")
        pop = sc.population
        self.n_commands = sampler(pop.commands_per_session if pop else None, streams("session.commands"))
        self.think = sampler(pop.think_time_s if pop else None, streams("session.think"))
        self.one_command = pop is None or (pop.commands_per_session.type == "constant"
                                           and pop.commands_per_session.mean == 1)  # type: ignore[union-attr]
        self.policy = RetryPolicy(self.spec, self.uniform, lambda: env.now, jitter=self.jitter)
        self.in_flight = 0
        self._untimed = self.spec.timeout_s is None
        e2e_slo = {n: s.e2e_p99_s for n, s in sc.slos.items()}
        self._good_within = {n: e2e_slo.get(n) or math.inf for n, _ in self._classes}
        self._s = {m: {n: rec.series(f"{m}:{n}") for n, _ in self._classes}
                   for m in ("arrived", "attempts", "retries", "admitted", "completed", "good")}
        self._failed = {(n, r): rec.series(f"failed:{n}:{r}") for n, _ in self._classes
                        for r in ("timeout", "rejected", "shed", "error", "abandoned", "auth", "throttled")}
        self._attempt_failed = {r: rec.series(f"attempt_failed:{r}") for r in
                                ("timeout", "rejected", "shed", "error", "abandoned", "auth", "throttled")}
        self._e2e = {n: rec.hist("e2e", n) for n, _ in self._classes}
        self.llm_hists = {n: (rec.hist("ttft", n), rec.hist("tpot", n)) for n, _ in self._classes}
        self._orders = rec.series("orders")
        self._logins, self._login_failed = rec.series("logins"), rec.series("login_failed")
        self.funnel = Funnel(sc.workload)
        self.users: Users | None = None  # the launch population (set by it)
        self._funnel_series(rec)
        auth = sc.services.auth
        self._register_s = sampler(auth.register_latency, streams("service.auth.register")) if (
            auth is not None and auth.register_latency is not None) else None
        stack.on_payment = self.paid

    def _funnel_series(self, rec: Recorder) -> None:
        names = [n for n in self.funnel.names if self.funnel.has_funnel(n)]
        self._buy = {(n, st): rec.series(f"buy:{n}:{st}") for n in names for st in STATES}
        self._buy_out = {(n, st, o): rec.series(f"buy_outcome:{n}:{st}:{o}") for n in names for st in STATES
                         for o in OUTCOMES}
        self._attempted, self._redeemed = rec.series("orders_attempted"), rec.series("cards_redeemed")
        self._payments, self._dup = rec.series("payments"), rec.series("payments_duplicated")
        self._failed_paid = rec.series("failed_after_payment")

    def pick_class(self) -> tuple[str, object]:
        u = self._cls_u()
        for i, c in enumerate(self._cum):
            if u < c:
                return self._classes[i]
        return self._classes[-1]

    # -- sessions ------------------------------------------------------------------------------
    def session(self, prompt0: int = -1, output0: int = -1):  # type: ignore[no-untyped-def]
        """A session's process body (a generator). A one-command session without login is its
        command itself: one generator level less on the hot path."""
        stack = self.stack
        sess = Session(stack.auth_epoch, stack.gateway.user_bucket() if stack.gateway else None)
        if self.one_command and stack.auth is None:
            name, cls = self.pick_class()
            cmd = Command(name, cls, self.env.now)
            cmd.prompt0, cmd.output0 = prompt0, output0
            return self.command(sess, cmd)
        return self._session(sess, prompt0, output0)

    def _session(self, sess: Session, prompt0: int, output0: int):  # type: ignore[no-untyped-def]
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
            cmd = Command(name, cls, env.now)
            cmd.prompt0, cmd.output0 = prompt0, output0
            yield from self.command(sess, cmd)
            if k + 1 < n:
                yield env.timeout(self.think())

    def user_session(self, user):  # type: ignore[no-untyped-def]
        """One session of a launch user (a generator returning True once logged in): log in when
        the app holds no fresh token (a new user registers), tell the population, run commands."""
        stack, env = self.stack, self.env
        if user.sess is None:
            user.sess = Session(stack.auth_epoch, stack.gateway.user_bucket() if stack.gateway else None)
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
            cmd = Command(name, self.funnel.classes[name], env.now)
            cmd.user = user
            yield from self.command(sess, cmd)
            if k + 1 < n:
                yield env.timeout(user.think())
        return True

    def _token_fresh(self, sess: Session) -> bool:
        """The app holds a token it believes valid (it learns of an invalidation only when refused)."""
        auth = self.stack.scenario.services.auth
        return sess.logged_in and auth is not None and self.env.now - sess.login_at <= auth.session_ttl_s

    def login(self, sess: Session, register: bool = False):  # type: ignore[no-untyped-def]
        """Log in (a new user: register, for `services.auth.register_latency`), retrying per the
        client policy; True when logged in."""
        env, auth, spec = self.env, self.stack.auth, self.spec
        assert auth is not None
        for attempt in range(spec.max_attempts):
            idx = self.rec.index(env.now)
            service_s = self._register_s() if register and self._register_s is not None else None
            outcome = yield from self._timed(auth.call(0, env.now + (spec.timeout_s or math.inf), service_s))
            if outcome == OK:
                self._logins[idx] += 1
                sess.logged_in, sess.epoch, sess.login_at = True, self.stack.auth_epoch, env.now
                return True
            self._login_failed[self.rec.index(env.now)] += 1
            if attempt + 1 < spec.max_attempts:
                yield env.timeout(self.policy.backoff_s(attempt))
        return False

    # -- commands ------------------------------------------------------------------------------
    def _arrive(self, name: str) -> None:
        self._s["arrived"][name][self.rec.index(self.env.now)] += 1
        self.in_flight += 1

    def _fail(self, name: str, reason: str, cmd: Command | None = None) -> None:
        idx = self.rec.index(self.env.now)
        self._failed[(name, reason)][idx] += 1
        self.in_flight -= 1
        if cmd is not None:
            cmd.ended = True
            if cmd.payments:
                self._failed_paid[idx] += 1  # charged, but the user was told it failed

    def _plan(self, cmd: Command) -> None:
        """A funnel command's outcome and stages, drawn from the user's state when it starts."""
        user = cmd.user
        has_card = user is not None and user.has_card  # type: ignore[attr-defined]
        draw = user.uniform if user is not None else self.uniform  # type: ignore[attr-defined]
        plan = cmd.plan = self.funnel.plan(cmd.name, has_card, draw)
        cmd.n_stages, cmd.pay_stage = plan.n_stages, plan.pay_stage
        idx = self.rec.index(self.env.now)
        self._buy[(cmd.name, plan.state)][idx] += 1
        if plan.outcome in GOES_AHEAD:
            self._attempted[idx] += 1

    def paid(self, cmd: Command) -> None:
        """The stack's call when an attempt's payment stage charged (also an attempt the client has
        given up on). With exactly-once payments a second charge of the same command is refused."""
        if cmd.payments and cmd.plan is not None and cmd.plan.exactly_once:
            return
        idx = self.rec.index(self.env.now)
        cmd.payments += 1
        self._payments[idx] += 1
        if cmd.payments > 1:
            self._dup[idx] += 1
        elif cmd.ended:
            self._failed_paid[idx] += 1  # charged after the user was told it failed

    def command(self, sess: Session, cmd: Command):  # type: ignore[no-untyped-def]
        env, spec, rec = self.env, self.spec, self.rec
        name = cmd.name
        self._arrive(name)
        if self.funnel.has_funnel(name):
            self._plan(cmd)
        give_up = cmd.t0 + spec.abandon_after_s if spec.abandon_after_s else math.inf
        attempt = 0
        attempts, retries = self._s["attempts"][name], self._s["retries"][name]
        policy = self.policy
        budget = spec.retry_budget_ratio is not None
        direct = self._untimed and give_up == math.inf
        while True:
            now = env.now
            idx = rec.index(now)
            outcome = THROTTLED if policy.may_refuse and policy.refuse(attempt) else None
            if outcome is None:
                attempts[idx] += 1
                if attempt:
                    retries[idx] += 1
                if budget:
                    policy.sent(attempt)
                if direct:
                    outcome = yield from self.stack.attempt(sess, cmd, self)
                else:
                    outcome = yield from self._timed(self.stack.attempt(sess, cmd, self), give_up)
                if spec.adaptive_throttle_k:
                    policy.answered(outcome)
            if outcome == OK:
                sess.timeouts = 0
                self._succeed(cmd)
                return
            if outcome == TIMEOUT and spec.session_lost_after_timeouts:
                sess.timeouts += 1
                if sess.timeouts >= spec.session_lost_after_timeouts:
                    # the app gives up on its session: the next attempt fails auth and logs in again
                    sess.timeouts = 0
                    sess.logged_in = False
            self._attempt_failed[outcome][rec.index(env.now)] += 1
            attempt += 1
            if outcome in (THROTTLED, ABANDONED) or not policy.retryable(outcome) or attempt >= spec.max_attempts:
                self._fail(name, outcome, cmd)
                return
            if outcome == AUTH:
                # a lost session: log in again, then retry at once (this is the login storm)
                if self.stack.auth is None or not (yield from self.login(sess)):
                    self._fail(name, AUTH, cmd)
                    return
                continue
            wait = policy.backoff_s(attempt - 1)
            if env.now + wait >= give_up:
                yield env.timeout(max(0.0, give_up - env.now))
                self._fail(name, ABANDONED, cmd)
                return
            yield env.timeout(wait)

    def _succeed(self, cmd: Command) -> None:
        now = self.env.now
        idx = self.rec.index(now)
        name = cmd.name
        e2e = now - cmd.t0
        self._s["completed"][name][idx] += 1
        if e2e <= self._good_within[name]:
            self._s["good"][name][idx] += 1
        self._e2e[name].record(now, e2e)
        cmd.ended = True
        if cmd.plan is not None:
            ordered, card = self.funnel.settle(cmd.plan, cmd.user.wallet if cmd.user is not None else None)  # type: ignore[attr-defined]
            self._buy_out[(name, cmd.plan.state, cmd.plan.outcome)][idx] += 1
            self._orders[idx] += ordered
            self._redeemed[idx] += card
        elif cmd.cls.places_order:  # type: ignore[attr-defined]
            self._orders[idx] += 1
        self.in_flight -= 1

    def _timed(self, work, give_up: float = math.inf):  # type: ignore[no-untyped-def]
        """Run an attempt under the per-attempt timeout and the user's patience; returns its
        outcome, TIMEOUT or ABANDONED. Timed-out work goes on unless `cancel_on_timeout`."""
        env, spec = self.env, self.spec
        limit = min(env.now + (spec.timeout_s or math.inf), give_up)
        if limit == math.inf:
            return (yield from work)
        proc = env.process(work)
        yield proc | env.timeout(limit - env.now)
        if proc.triggered:
            return proc.value
        if spec.cancel_on_timeout:
            proc.interrupt("cancelled")
            proc.defused = True
        return ABANDONED if limit >= give_up else TIMEOUT


__all__ = ["ABANDONED", "AUTH", "THROTTLED", "Client"]
