"""Sessions and commands over real HTTP, counted like the simulator counts them.

A session logs in (when the scenario has an auth service), then runs its commands one after
another with think times. A command is a series of attempts under the client policy
(`loadtest.policy`); an attempt is
- for a chat-like class (LLM stages only): one streamed `/v1/chat/completions` call per LLM
  stage — time to first token, inter-token gaps, time per output token, tokens;
- for an agent class (tool stages or `places_order`): `POST /v1/agent/commands` with an
  `Idempotency-Key` kept across retries and the class's name (`class`, for an order-placing
  class), streamed: the stack reports every inner LLM call's TTFT and TPOT as it ends, recorded
  into the class's `ttft`/`tpot`; after a success the order is checked with
  `GET /v1/orders/{id}` (outside the command's latency). A class with a funnel tells the stack
  the outcome its user drew (`outcome`) and is settled on the outcome the stack answers
  (`loadtest.funnel`, the simulator's `sim.funnel` rules and series).

An attempt is `admitted` when the stack says its gateway admitted it (`X-Surge-Admitted: 1`);
for a server that does not say, it is inferred from the status.

Latency is coordinated-omission-correct: `e2e` runs from the command's intended start (the
schedule's time; a late dispatch counts against the system), `e2e_send` from the first send.
Runs in a gevent process (Locust); `client` is a Locust `FastHttpSession`.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import time
from typing import Any

import gevent
import numpy as np
from gevent.pool import Group

from loadtest import plugins
from loadtest import policy as P
from loadtest.answers import admitted_by, code_of, json_or_none, read_agent_stream, read_stream
from loadtest.credentials import Credentials
from loadtest.funnel import LoadFunnel
from loadtest.http_commands import (
    AGENT_TEXT,
    CLASS_HEADER,
    HttpCommand,
    HttpSession,
    Spec,
    SpecKeys,
    deadline_header,
    length_samplers,
    specs_of,
)
from loadtest.plan import Plan
from loadtest.prompts import GenerationBody, WordStream
from loadtest.tally import Tally
from sim.arrivals import FollowUps
from sim.dists import Sampler, Uniform, sampler
from sim.funnel import ORDERED
from sim.results import names as N
from sim.rules.attempts import (
    ABANDON,
    DONE,
    FAIL,
    RELOGIN,
    CommandAttempts,
    SessionHealth,
    login_retry_wait,
)
from sim.rules.calls import trace_lengths
from sim.rules.orders import FAILED_AFTER_PAYMENT, WRONG_ITEM, OrderState, at_end
from sim.scenario import Scenario
from sim.streams import Streams


class OutOfRequests(Exception):
    """The run's request bound is reached: no more traffic from this process."""


class HttpClient:
    """Runs the scenario's sessions against `plan.host` from one process, into `tally`."""

    def __init__(self, sc: Scenario, plan: Plan, tally: Tally, client: Any, stream_key: str, t0: float = 0.0,
                 kind: str | None = None, policy: P.RetryPolicy | None = None,
                 credentials: Credentials | None = None) -> None:
        """`kind` ("chat" or "agent") restricts the mix to those classes (closed-model users);
        `policy` is shared by the workloads of one process (one retry budget, one throttle);
        `credentials` log users in (default: the environment's, `loadtest.credentials`)."""
        self.sc, self.plan, self.tally, self.client, self.t0 = sc, plan, tally, client, t0
        streams = Streams(sc.run.seed)
        self.specs = [s for s in specs_of(sc) if kind is None or s.kind == kind] or specs_of(sc)
        self._cum = np.cumsum([s.cls.probability for s in self.specs]).tolist()
        self._uniform = Sampler(Uniform(low=0.0, high=1.0), streams(f"loadtest.{stream_key}.class"))
        self._tok = streams(f"loadtest.{stream_key}.tokens")
        self._lengths = {s.name: length_samplers(s, streams(f"loadtest.{stream_key}.tokens.{s.name}"))
                         for s in self.specs if s.kind == "chat"}
        self._words = WordStream(streams(f"loadtest.{stream_key}.words"))
        self._gen = GenerationBody(plan.endpoint, plan.model, plan.ignore_eos)
        jit = streams(f"loadtest.{stream_key}.jitter")
        self.policy = policy or P.RetryPolicy(sc.clients, lambda: float(jit.random()), time.time)
        pop = sc.population
        self.n_commands = sampler(pop.commands_per_session if pop else None, streams(f"loadtest.{stream_key}.n"))
        self.think = sampler(pop.think_time_s if pop else None, streams(f"loadtest.{stream_key}.think"))
        self.one_command = pop is None or (pop.commands_per_session.type == "constant"
                                           and pop.commands_per_session.mean == 1)  # type: ignore[union-attr]
        self.has_auth = sc.services.auth is not None
        self.credentials = credentials or Credentials.from_env()
        self.requests_left = plan.max_requests
        self.in_flight = 0
        self._timeout_hdr = deadline_header(sc)
        # the headers of a chat request without a token, per class (a request adds the token to a copy)
        self._chat_hdr = {s.name: {"Content-Type": "application/json", "Accept": "application/json",
                                   **self._timeout_hdr, **plan.headers, CLASS_HEADER: s.name} for s in specs_of(sc)}
        self.buying = LoadFunnel(sc, tally)
        self.by_name = {s.name: s for s in specs_of(sc)}
        self.follow_ups = FollowUps(sc, streams(f"loadtest.{stream_key}.follow_ups"))
        self.proactive = Group()  # follow-ups waiting or running (killed at the run's end)
        if any(s.cls.places_order for s in self.specs):
            for name in N.MONEY_COUNTERS:  # present, as in the simulator's results, even when all stay 0
                tally.count(name, 0.0, 0)

    # -- time and bookkeeping ------------------------------------------------------------------
    def now(self) -> float:
        return time.time() - self.t0

    def pick(self, sess: HttpSession | None = None) -> Spec:
        """A command's class: by the user's card state and draws in a launch (every class), else
        by the mix's probabilities from this process's class stream (the only one, without a draw)."""
        specs = self.specs
        if sess is not None and self.buying.picks_classes and len(specs) == len(self.by_name):
            return self.by_name[self.buying.pick_class(sess)]
        if len(specs) == 1:
            return specs[0]
        i = bisect.bisect_right(self._cum, self._uniform() * self._cum[-1])
        return specs[min(i, len(specs) - 1)]

    def _arrive(self, spec: Spec, t: float) -> None:
        self.tally.count(spec.keys.arrived, t)
        self.in_flight += 1

    def _fail(self, spec: Spec, reason: str, cmd: HttpCommand | None = None, now: float | None = None) -> None:
        now = self.now() if now is None else now
        self.tally.count(N.failed(spec.name, reason), now)  # type: ignore[arg-type]
        self.in_flight -= 1
        if cmd is not None and at_end(cmd.order, False) == FAILED_AFTER_PAYMENT:
            self.tally.count(N.FAILED_AFTER_PAYMENT, now)

    def _request(self, method: str, path: str, name: str, **kw: Any) -> Any:
        if self.requests_left <= 0:
            raise OutOfRequests
        self.requests_left -= 1
        return self.client.request(method, path, name=name, allow_redirects=False, **kw)

    # -- sessions ------------------------------------------------------------------------------
    def session(self, user: str, late_s: float = 0.0, prompt0: int = -1, output0: int = -1) -> None:
        """One session: login, then its commands. `late_s`: how late its start was dispatched."""
        sess = self.new_session(user)
        if self.has_auth and not self.login(sess):
            spec = self.pick(sess)
            self._arrive(spec, self.now() - late_s)
            self._fail(spec, P.AUTH)
            return
        self.buying.opened(sess, self.now())
        n = 1 if self.one_command else max(1, round(self.n_commands()))
        for k in range(n):
            cmd = HttpCommand(self.pick(sess), self.now() - (late_s if k == 0 else 0.0), prompt0=prompt0, output0=output0)
            prompt0 = output0 = -1
            self.command(sess, cmd)
            if k + 1 < n:
                gevent.sleep(self.think())

    def new_session(self, user: str) -> HttpSession:
        return HttpSession(user, SessionHealth(self.sc.clients.session_lost_after_timeouts))

    def proactive_task(self, user: str, klass: str, late_s: float = 0.0) -> None:
        """A scheduled task the agent starts: one command of `klass` on a session of its own."""
        sess = self.new_session(user)
        spec = self.by_name[klass]
        if self.has_auth and not self.login(sess):
            self._arrive(spec, self.now() - late_s)
            self._fail(spec, P.AUTH)
            return
        self.command(sess, HttpCommand(spec, self.now() - late_s))

    def _follow_up(self, sess: HttpSession, klass: str) -> None:
        with contextlib.suppress(OutOfRequests):  # the request bound: the follow-up is not sent
            self.command(sess, HttpCommand(self.by_name[klass], self.now()))

    def stop_proactive(self) -> int:
        """Kill the follow-ups still waiting or running (the run's end); how many there were."""
        n = len(self.proactive)
        self.proactive.kill(block=True, timeout=5)
        return n

    def login(self, sess: HttpSession) -> bool:
        for attempt in itertools.count():
            outcome = self._timed(lambda: self._login_once(sess), self.now() + self.policy.timeout_s, P.TIMEOUT)
            if not self.has_auth:  # a plain OpenAI-compatible server: no sessions to keep
                return True
            if outcome == P.OK:
                self.tally.count(N.LOGINS, self.now())
                return True
            self.tally.count(N.LOGIN_FAILED, self.now())
            wait = login_retry_wait(self.policy, attempt)
            if wait is None:
                return False
            gevent.sleep(wait)
        return False  # pragma: no cover - the loop returns

    def _login_once(self, sess: HttpSession) -> str:
        body = {"username": sess.user, "password": self.credentials.password(sess.user)}
        r = self._request("POST", "/v1/auth/login", "login", json=body, headers=self._timeout_hdr)
        if r.status_code in (404, 405):
            self.has_auth = False
            return P.OK
        outcome = P.classify(r.status_code, code_of(r))
        if outcome == P.OK:
            sess.token = r.json()["token"]
        return outcome

    # -- commands ------------------------------------------------------------------------------
    def command(self, sess: HttpSession, cmd: HttpCommand) -> None:
        """Attempts until success, a final failure or the user gives up: the shared attempt loop
        (`sim.rules.attempts`), as the simulator's client runs it."""
        spec, keys, tally = cmd.spec, cmd.spec.keys, self.tally
        self._arrive(spec, cmd.t0)
        cmd.plan = self.buying.plan(sess, spec.name, cmd.t0)
        loop = CommandAttempts(self.policy, cmd.t0)
        while True:
            if loop.start():
                now = self.now()
                tally.count(keys.attempts, now)
                if loop.attempt:
                    tally.count(keys.retries, now)
                if cmd.first_send is None:
                    cmd.first_send = now
                cmd.admitted = False
                if self.has_auth and sess.token is None:  # the app lost its session: no traffic
                    outcome = P.AUTH
                else:
                    limit = loop.time_limit(now)
                    outcome = self._timed(lambda: self._attempt(sess, cmd), limit, loop.expired(limit), now)
                if cmd.admitted:
                    tally.count(keys.admitted, now)
            else:
                outcome = P.THROTTLED
            if sess.health.after(outcome):
                sess.token = None  # the next attempt fails auth and logs in again
            now = self.now()
            step = loop.after(outcome, now)
            if step.kind == DONE:
                self._succeed(sess, cmd, now)
                return
            tally.count(N.attempt_failed(outcome), now)  # type: ignore[arg-type]
            if step.kind == FAIL:
                self._fail(spec, step.reason, cmd, now)
                return
            if step.kind == RELOGIN:
                if not self.has_auth or not self.login(sess):
                    self._fail(spec, P.AUTH, cmd)
                    return
                continue
            gevent.sleep(step.wait_s)
            if step.kind == ABANDON:
                self._fail(spec, P.ABANDONED, cmd)
                return

    def _timed(self, work: Any, limit: float, late: str, now: float | None = None) -> str:
        """Run one attempt until `limit` (run clock; `now`: the time it starts, if the caller has
        it); its outcome, or `late` when no answer came."""
        if limit == math.inf:
            return self._guarded(work)
        try:
            with gevent.Timeout(max(0.0, limit - (self.now() if now is None else now))):
                return self._guarded(work)
        except gevent.Timeout:
            return late

    @staticmethod
    def _guarded(work: Any) -> str:
        try:
            return str(work())
        except OutOfRequests:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # broken connection or body
            return P.ERROR

    def _succeed(self, sess: HttpSession, cmd: HttpCommand, now: float) -> None:
        """The command succeeded at `now` (run clock)."""
        spec, tally = cmd.spec, self.tally
        keys = spec.keys
        e2e = now - cmd.t0
        tally.count(keys.completed, now)
        if e2e <= spec.good_within_s:
            tally.count(keys.good, now)
        tally.observe(keys.e2e, now, e2e)
        if cmd.first_send is not None:
            tally.observe(keys.e2e_send, now, now - cmd.first_send)
        if cmd.plan is not None:
            self.buying.settle(sess, spec.name, cmd.plan, cmd.outcome, now)
        elif spec.cls.places_order:
            self.tally.count(N.ORDERS, now)
        if spec.cls.places_order and at_end(cmd.order, True) == WRONG_ITEM:
            self.tally.count(N.WRONG_ITEMS, now)
        self.in_flight -= 1
        for klass, delay in self.follow_ups.after(spec.name) if self.follow_ups else ():
            self.proactive.add(gevent.spawn_later(delay, self._follow_up, sess, klass))
        if spec.kind == "agent" and cmd.order_id and cmd.outcome in (None, ORDERED):
            self._check_order(sess, cmd)

    def _attempt(self, sess: HttpSession, cmd: HttpCommand) -> str:
        own = plugins.REGISTRY.get(cmd.spec.name)
        if own is not None:  # the user's own HTTP calls for this class (--plugin)
            return str(own(plugins.Attempt(self, sess, cmd)))
        if cmd.spec.kind == "agent":
            return self._agent(sess, cmd)
        prompt_n, output_n, image_n = self._lengths[cmd.name]  # a chat class is one LLM stage (`kind_of`)
        prompt = cmd.prompt0 if cmd.prompt0 >= 0 else round(prompt_n())
        if image_n is not None:  # the images' tokens, prefilled with the text (words stand in)
            prompt += max(0, round(image_n()))
        out = cmd.output0 if cmd.output0 >= 0 else round(output_n())  # a retry resends a trace row's lengths
        return self._chat(sess, cmd, max(1, prompt), max(1, out))

    # -- HTTP ----------------------------------------------------------------------------------
    def _headers(self, sess: HttpSession) -> dict[str, str]:
        h = dict(self._timeout_hdr) | self.plan.headers
        token = sess.token or self.plan.api_key
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    def _chat_headers(self, sess: HttpSession, spec: Spec) -> dict[str, str]:
        """A chat request's headers: JSON, the deadline, --header, the class, the token if any."""
        h = self._chat_hdr[spec.name]
        token = sess.token or self.plan.api_key
        return h | {"Authorization": f"Bearer {token}"} if token else h

    def _chat(self, sess: HttpSession, cmd: HttpCommand, prompt_tokens: int, max_tokens: int) -> str:
        """One streamed chat completion (or text completion) of the command's class; records
        ttft, itl and tpot, and the tokens asked for against those the server says it used.
        The reference stack counts BOS (and "user", ":" for chat) as prompt tokens too."""
        max_tokens = min(max_tokens, self.plan.max_tokens_cap)
        prompt_tokens = max(1, min(prompt_tokens, self.plan.max_context - max_tokens))
        gen, words = self._gen, self._words
        body = gen.encode(words.text(prompt_tokens - gen.overhead_tokens), max_tokens, words.plain)
        sent = self.now()
        r = self._request("POST", gen.path, "chat", data=body, headers=self._chat_headers(sess, cmd.spec), stream=True)
        code = code_of(r)
        cmd.admitted = admitted_by(r, code)
        if r.status_code != 200:
            return P.classify(r.status_code, code)
        stamps, usage, err = read_stream(r, self.now)
        if err is not None:
            return P.classify_stream_error(err)
        if not stamps:
            return P.ERROR
        self._record_stream(cmd.spec.keys, sent, stamps, usage)
        if usage:  # what the server counted, against what the scenario asked for
            tot = self.tally.totals
            tot["prompt_tokens_asked"] += prompt_tokens
            tot["prompt_tokens_reported"] += int(usage.get("prompt_tokens") or 0)
            tot["output_tokens_asked"] += max_tokens
            tot["output_tokens_reported"] += int(usage.get("completion_tokens") or 0)
        return P.OK

    def _record_stream(self, keys: SpecKeys, sent: float, stamps: list[float], usage: dict[str, int] | None) -> None:
        """A stream's TTFT (from `sent`), gaps between token chunks, TPOT and tokens (the server's
        count when it reports usage, else one per chunk)."""
        tally, first, last = self.tally, stamps[0], stamps[-1]
        tally.observe(keys.ttft, first, first - sent)
        itl = keys.itl
        for a, b in zip(stamps, stamps[1:], strict=False):
            tally.observe(itl, b, b - a)
        n_out = (usage or {}).get("completion_tokens") or len(stamps)
        if n_out > 1:
            tally.observe(keys.tpot, last, (last - first) / (n_out - 1))
        tally.count(keys.tokens_out, last, n_out)

    def _agent(self, sess: HttpSession, cmd: HttpCommand) -> str:
        """One agent command, streamed: each LLM call's timing arrives in a progress event as the
        call ends and is recorded like a chat call's (as the simulator records every call that
        produced tokens, also in an attempt that fails later)."""
        # the class in a header too: the stack can then shed the attempt before reading its body
        h = self._headers(sess) | {"Idempotency-Key": cmd.key, CLASS_HEADER: cmd.spec.name}
        body: dict[str, Any] = {"command": AGENT_TEXT, "stream": True, "class": cmd.spec.name}
        if cmd.plan is not None:  # the stack runs that outcome's stages and answers it
            body["outcome"] = cmd.plan.outcome
        if cmd.prompt0 >= 0:  # a trace row: its lengths go to the first LLM call, as in the simulator
            prompt, out = trace_lengths(cmd.prompt0, cmd.output0)
            body["first_call"] = {"prompt_tokens": prompt, "max_tokens": out}
        r = self._request("POST", "/v1/agent/commands", "agent", json=body, headers=h, stream=True)
        code = code_of(r)
        cmd.admitted = admitted_by(r, code)
        if r.status_code != 200:
            if r.status_code == 409:
                self._money(cmd, json_or_none(r))
            return P.classify(r.status_code, code)
        if not str(r.headers.get("content-type") or "").startswith("text/event-stream"):
            result: dict[str, Any] | None = r.json()  # a replay: the stored answer, as JSON
        else:
            result, error = read_agent_stream(r, lambda call: self._record_call(cmd.spec.name, call))
            if error is not None:
                self._money(cmd, error)
                err_code = (error.get("error") or {}).get("code")
                return P.classify(int(error.get("status") or 500), str(err_code) if err_code else None)
        if not result:
            return P.ERROR
        self._money(cmd, result)
        order = result.get("order")  # null for a class that places no order
        cmd.order_id = str(order["id"]) if order else None
        cmd.outcome = result.get("outcome")
        return P.OK

    def _money(self, cmd: HttpCommand, body: dict[str, Any] | None) -> None:
        """What an answer says about the command's order and the money (`ledger`, `order`)."""
        if not body or not cmd.spec.cls.places_order:
            return
        now = self.now()
        led = body.get("ledger") or {}
        for key, name in (("charged", N.PAYMENTS), ("duplicates_prevented", N.DUPLICATES_PREVENTED),
                          ("refunds", N.REFUNDS)):
            if led.get(key):
                self.tally.count(name, now, int(led[key]))
        order = body.get("order") or {}
        if cmd.order is None:
            cmd.order = OrderState()
        status = order.get("status")
        cmd.order.paid = cmd.order.paid or status in ("paid", "completed", "refunded") or bool(led.get("charged"))
        cmd.order.refunded = cmd.order.refunded or status == "refunded"
        cmd.order.wrong_item = cmd.order.wrong_item or bool(order.get("wrong_item"))

    def _record_call(self, name: str, call: dict[str, Any]) -> None:
        """An LLM call inside an agent command, timed by the stack (`timing.llm_calls`)."""
        now = self.now()
        self.tally.observe(N.hist("ttft", name), now, float(call["ttft_s"]))
        if call.get("tpot_s") is not None:
            self.tally.observe(N.hist("tpot", name), now, float(call["tpot_s"]))
        self.tally.count(N.tokens_out(name), now, int(call.get("output_tokens") or 0))

    def _check_order(self, sess: HttpSession, cmd: HttpCommand) -> None:
        """The order a success acknowledged exists and is paid (outside the command's latency);
        a session lost meanwhile (a session invalidation) logs in again first, as the app would."""
        status = 0
        try:
            for _ in range(2):
                r = self._request("GET", f"/v1/orders/{cmd.order_id}", "order", headers=self._headers(sess))
                status = r.status_code
                if status != 401 or not self.has_auth or not self.login(sess):
                    break
            ok = status == 200 and r.json().get("status") in ("paid", "completed")
        except (OSError, ValueError, OutOfRequests):
            ok = False
        self.tally.totals["orders_checked"] += 1
        if not ok:
            self.tally.totals["orders_check_failed"] += 1
            self.tally.totals[f"orders_check_failed:{status}"] += 1
