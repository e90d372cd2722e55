"""Users and their client: sessions of commands, each command a series of attempts through the
gateway and the command's stages, with timeouts, retries, budgets, throttling and re-login.

Retry budget and adaptive throttling are kept for the whole client population (as an app's
shared client library would see the service), over a sliding window of about a minute.
"""

from __future__ import annotations

import itertools
import math

import simpy

from sim.des.stack import StackModel
from sim.dists import sampler
from sim.results import Recorder
from sim.results import names as N
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
from sim.rules.outcomes import ABANDONED, AUTH, OK, THROTTLED, TIMEOUT
from sim.rules.ratelimit import TokenBucket
from sim.rules.retry import RetryPolicy


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
        self._s = {m: {n: rec.series(N.of_class(m, n)) for n, _ in self._classes} for m in N.CLASS_COUNTERS}
        self._failed: dict[tuple[str, str], list[float]] = {
            (n, r): rec.series(N.failed(n, r)) for n, _ in self._classes for r in N.REASONS}
        self._attempt_failed: dict[str, list[float]] = {r: rec.series(N.attempt_failed(r)) for r in N.REASONS}
        self._e2e = {n: rec.hist("e2e", n) for n, _ in self._classes}
        self.llm_hists = {n: (rec.hist("ttft", n), rec.hist("tpot", n)) for n, _ in self._classes}
        self._orders = rec.series(N.ORDERS)
        self._logins, self._login_failed = rec.series(N.LOGINS), rec.series(N.LOGIN_FAILED)

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
        sess = SessionState(stack.auth_epoch, stack.gateway.user_bucket() if stack.gateway else None,
                       SessionHealth(self.spec.session_lost_after_timeouts))
        if self.one_command and stack.auth is None:
            name, cls = self.pick_class()
            cmd = Command(name, cls, self.env.now)
            cmd.prompt0, cmd.output0 = prompt0, output0
            return self.command(sess, cmd)
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
            cmd = Command(name, cls, env.now)
            cmd.prompt0, cmd.output0 = prompt0, output0
            yield from self.command(sess, cmd)
            if k + 1 < n:
                yield env.timeout(self.think())

    def login(self, sess: SessionState):  # type: ignore[no-untyped-def]
        """Log in, retrying per the client policy; True when logged in."""
        env, auth = self.env, self.stack.auth
        assert auth is not None
        for attempt in itertools.count():
            idx = self.rec.index(env.now)
            limit = env.now + self.policy.timeout_s
            outcome = yield from self._timed(self.stack.login(limit), limit, TIMEOUT)
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
        self._s["arrived"][name][self.rec.index(self.env.now)] += 1
        self.in_flight += 1

    def _fail(self, name: str, reason: str) -> None:
        self._failed[(name, reason)][self.rec.index(self.env.now)] += 1
        self.in_flight -= 1

    def command(self, sess: SessionState, cmd: Command):  # type: ignore[no-untyped-def]
        """A command's attempts, driven by the shared attempt loop (`sim.rules.attempts`)."""
        env, rec = self.env, self.rec
        name = cmd.name
        self._arrive(name)
        loop = CommandAttempts(self.policy, cmd.t0)
        attempts, retries = self._s["attempts"][name], self._s["retries"][name]
        direct = self._untimed and loop.give_up == math.inf
        while True:
            if loop.start():
                idx = rec.index(env.now)
                attempts[idx] += 1
                if loop.attempt:
                    retries[idx] += 1
                work = self.stack.attempt(sess, cmd, self)
                if direct:
                    outcome = yield from work
                else:
                    limit = loop.time_limit(env.now)
                    outcome = yield from self._timed(work, limit, loop.expired(limit))
            else:
                outcome = THROTTLED
            if sess.health.after(outcome):
                sess.logged_in = False  # the next attempt fails auth and logs in again
            step = loop.after(outcome, env.now)
            kind = step.kind
            if kind == DONE:
                self._succeed(cmd)
                return
            self._attempt_failed[outcome][rec.index(env.now)] += 1
            if kind == FAIL:
                self._fail(name, step.reason)
                return
            if kind == RELOGIN:
                # a lost session: log in again, then retry at once (this is the login storm)
                if self.stack.auth is None or not (yield from self.login(sess)):
                    self._fail(name, AUTH)
                    return
                continue
            yield env.timeout(step.wait_s)
            if kind == ABANDON:
                self._fail(name, ABANDONED)
                return

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

    def _timed(self, work, limit: float, late: str):  # type: ignore[no-untyped-def]
        """Run an attempt until `limit` (the per-attempt timeout or the user's patience); its
        outcome, or `late` (TIMEOUT or ABANDONED) when no answer came by then. Timed-out work
        goes on unless `cancel_on_timeout` (the servers then learn of it and drop it)."""
        env = self.env
        if limit == math.inf:
            return (yield from work)
        proc = env.process(work)
        yield proc | env.timeout(limit - env.now)
        if proc.triggered:
            return proc.value
        if self.spec.cancel_on_timeout:
            proc.interrupt("cancelled")
            proc.defused = True
        return late


__all__ = ["ABANDONED", "AUTH", "THROTTLED", "Client", "Command", "SessionState"]
