"""Users and their client: sessions of commands, each command a series of attempts through the
gateway and the command's stages, with timeouts, retries, budgets, throttling and re-login.

Retry budget and adaptive throttling are kept for the whole client population (as an app's
shared client library would see the service), over a sliding window of about a minute.
"""

from __future__ import annotations

import math

import simpy

from sim.des.services import OK, TIMEOUT, TokenBucket
from sim.des.stack import AUTH, Stack
from sim.dists import sampler
from sim.results import Recorder
from sim.rules.retry import RetryPolicy

ABANDONED, THROTTLED = "abandoned", "throttled"


class Session:
    __slots__ = ("epoch", "logged_in", "bucket", "login_at", "timeouts")

    def __init__(self, epoch: int, bucket: TokenBucket | None) -> None:
        self.epoch, self.bucket = epoch, bucket
        self.logged_in = False
        self.login_at = 0.0
        self.timeouts = 0  # timeouts in a row (clients.session_lost_after_timeouts)


class Command:
    __slots__ = ("cls", "name", "t0", "prompt0", "output0")

    def __init__(self, name: str, cls: object, t0: float) -> None:
        self.name, self.cls, self.t0 = name, cls, t0
        self.prompt0 = self.output0 = -1


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

    def login(self, sess: Session):  # type: ignore[no-untyped-def]
        """Log in, retrying per the client policy; True when logged in."""
        env, auth, spec = self.env, self.stack.auth, self.spec
        assert auth is not None
        for attempt in range(spec.max_attempts):
            idx = self.rec.index(env.now)
            outcome = yield from self._timed(auth.call(0, env.now + (spec.timeout_s or math.inf)))
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

    def _fail(self, name: str, reason: str) -> None:
        self._failed[(name, reason)][self.rec.index(self.env.now)] += 1
        self.in_flight -= 1

    def command(self, sess: Session, cmd: Command):  # type: ignore[no-untyped-def]
        env, spec, rec = self.env, self.spec, self.rec
        name = cmd.name
        self._arrive(name)
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
                self._fail(name, outcome)
                return
            if outcome == AUTH:
                # a lost session: log in again, then retry at once (this is the login storm)
                if self.stack.auth is None or not (yield from self.login(sess)):
                    self._fail(name, AUTH)
                    return
                continue
            wait = policy.backoff_s(attempt - 1)
            if env.now + wait >= give_up:
                yield env.timeout(max(0.0, give_up - env.now))
                self._fail(name, ABANDONED)
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
        if cmd.cls.places_order:  # type: ignore[attr-defined]
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
