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
  `GET /v1/orders/{id}` (outside the command's latency).

An attempt is `admitted` when the stack says its gateway admitted it (`X-Surge-Admitted: 1`);
for a server that does not say, it is inferred from the status.

Latency is coordinated-omission-correct: `e2e` runs from the command's intended start (the
schedule's time; a late dispatch counts against the system), `e2e_send` from the first send.
Runs in a gevent process (Locust); `client` is a Locust `FastHttpSession`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gevent
import numpy as np

from loadtest import policy as P
from loadtest.plan import Plan
from loadtest.tally import Tally
from sim.dists import sampler
from sim.scenario import CommandClass, Scenario
from sim.streams import Streams

_WORDS = ["please", "help", "me", "buy", "a", "milk", "tea", "with", "less", "sugar", "and", "extra", "pearls", "from", "the", "shop", "near", "me"]
AGENT_TEXT = "help me buy a milk tea"


@dataclass
class Spec:
    """A command class as the load test runs it."""

    name: str
    cls: CommandClass
    kind: str  # "chat" or "agent"
    good_within_s: float  # the class's e2e SLO (goodput), inf when none


@dataclass
class Session:
    user: str
    token: str | None = None
    timeouts: int = 0  # timeouts in a row (clients.session_lost_after_timeouts)


@dataclass
class Command:
    spec: Spec
    t0: float  # intended start, seconds since the run's t0
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    first_send: float | None = None
    prompt0: int = -1
    output0: int = -1
    order_id: str | None = None
    admitted: bool = False  # the current attempt got past the gateway (see `policy.admitted`)


def specs_of(sc: Scenario) -> list[Spec]:
    out = []
    for name, cls in sc.workload.classes.items():
        agent = cls.places_order or any(st.tool is not None for st in cls.stages)
        slo = sc.slos.get(name)
        out.append(Spec(name, cls, "agent" if agent else "chat", (slo.e2e_p99_s if slo else None) or math.inf))
    return out


def deadline_header(sc: Scenario) -> dict[str, str]:
    """`X-Request-Timeout` when the scenario says servers learn of client timeouts
    (`clients.cancel_on_timeout`, or a gateway that drops work past its deadline); then the stack
    drops work nobody waits for, as the simulator does. Otherwise servers finish abandoned work."""
    gw = sc.services.gateway
    learn = sc.clients.cancel_on_timeout or (gw is not None and gw.deadline_drop)
    t = sc.clients.timeout_s
    return {"X-Request-Timeout": f"{t:g}"} if t and learn else {}


class OutOfRequests(Exception):
    """The run's request bound is reached: no more traffic from this process."""


class Workload:
    """Runs the scenario's sessions against `plan.host` from one process, into `tally`."""

    def __init__(self, sc: Scenario, plan: Plan, tally: Tally, client: Any, stream_key: str, t0: float = 0.0,
                 kind: str | None = None, policy: P.RetryPolicy | None = None) -> None:
        """`kind` ("chat" or "agent") restricts the mix to those classes (closed-model users);
        `policy` is shared by the workloads of one process (one retry budget, one throttle)."""
        self.sc, self.plan, self.tally, self.client, self.t0 = sc, plan, tally, client, t0
        streams = Streams(sc.run.seed)
        self.specs = [s for s in specs_of(sc) if kind is None or s.kind == kind] or specs_of(sc)
        self._cum = np.cumsum([s.cls.probability for s in self.specs])
        self._rng = streams(f"loadtest.{stream_key}.class")
        self._tok = streams(f"loadtest.{stream_key}.tokens")
        jit = streams(f"loadtest.{stream_key}.jitter")
        self.policy = policy or P.RetryPolicy(sc.clients, lambda: float(jit.random()), time.time)
        pop = sc.population
        self.n_commands = sampler(pop.commands_per_session if pop else None, streams(f"loadtest.{stream_key}.n"))
        self.think = sampler(pop.think_time_s if pop else None, streams(f"loadtest.{stream_key}.think"))
        self.one_command = pop is None or (pop.commands_per_session.type == "constant"
                                           and pop.commands_per_session.mean == 1)  # type: ignore[union-attr]
        self.has_auth = sc.services.auth is not None
        self.requests_left = plan.max_requests
        self.in_flight = 0
        self._timeout_hdr = deadline_header(sc)

    # -- time and bookkeeping ------------------------------------------------------------------
    def now(self) -> float:
        return time.time() - self.t0

    def pick(self) -> Spec:
        i = int(np.searchsorted(self._cum, self._rng.random() * self._cum[-1], side="right"))
        return self.specs[min(i, len(self.specs) - 1)]

    def _arrive(self, spec: Spec, t: float) -> None:
        self.tally.count(f"arrived:{spec.name}", t)
        self.in_flight += 1

    def _fail(self, spec: Spec, reason: str) -> None:
        self.tally.count(f"failed:{spec.name}:{reason}", self.now())
        self.in_flight -= 1

    def _request(self, method: str, path: str, name: str, **kw: Any) -> Any:
        if self.requests_left <= 0:
            raise OutOfRequests
        self.requests_left -= 1
        return self.client.request(method, path, name=name, **kw)

    # -- sessions ------------------------------------------------------------------------------
    def session(self, user: str, late_s: float = 0.0, prompt0: int = -1, output0: int = -1) -> None:
        """One session: login, then its commands. `late_s`: how late its start was dispatched."""
        sess = Session(user)
        if self.has_auth and not self.login(sess):
            spec = self.pick()
            self._arrive(spec, self.now() - late_s)
            self._fail(spec, P.AUTH)
            return
        n = 1 if self.one_command else max(1, round(self.n_commands()))
        for k in range(n):
            cmd = Command(self.pick(), self.now() - (late_s if k == 0 else 0.0), prompt0=prompt0, output0=output0)
            prompt0 = output0 = -1
            self.command(sess, cmd)
            if k + 1 < n:
                gevent.sleep(self.think())

    def login(self, sess: Session) -> bool:
        for attempt in range(self.sc.clients.max_attempts):
            outcome = self._timed(lambda: self._login_once(sess))
            if not self.has_auth:  # a plain OpenAI-compatible server: no sessions to keep
                return True
            if outcome == P.OK:
                self.tally.count("logins", self.now())
                return True
            self.tally.count("login_failed", self.now())
            if attempt + 1 < self.sc.clients.max_attempts:
                gevent.sleep(self.policy.backoff_s(attempt))
        return False

    def _login_once(self, sess: Session) -> str:
        r = self._request("POST", "/v1/auth/login", "login", json={"username": sess.user}, headers=self._timeout_hdr)
        if r.status_code in (404, 405):
            self.has_auth = False
            return P.OK
        outcome = P.classify(r.status_code, _code(r))
        if outcome == P.OK:
            sess.token = r.json()["token"]
        return outcome

    # -- commands ------------------------------------------------------------------------------
    def command(self, sess: Session, cmd: Command) -> None:
        """Attempts until success, a final failure or the user gives up (as sim.des.client)."""
        spec, pol, spec_c = cmd.spec, self.policy, self.sc.clients
        self._arrive(spec, cmd.t0)
        give_up = cmd.t0 + spec_c.abandon_after_s if spec_c.abandon_after_s else math.inf
        attempt = 0
        while True:
            outcome = P.THROTTLED if pol.refuse(attempt) else None
            if outcome is None:
                now = self.now()
                self.tally.count(f"attempts:{spec.name}", now)
                if attempt:
                    self.tally.count(f"retries:{spec.name}", now)
                if cmd.first_send is None:
                    cmd.first_send = now
                pol.sent(attempt)
                cmd.admitted = False
                if self.has_auth and sess.token is None:  # the app lost its session: no traffic
                    outcome = P.AUTH
                else:
                    outcome = self._timed(lambda: self._attempt(sess, cmd), give_up)
                pol.answered(outcome)
                if cmd.admitted:
                    self.tally.count(f"admitted:{spec.name}", now)
            if outcome == P.OK:
                sess.timeouts = 0
                self._succeed(sess, cmd)
                return
            self._count_timeouts(sess, outcome)
            self.tally.count(f"attempt_failed:{outcome}", self.now())
            attempt += 1
            if outcome in (P.THROTTLED, P.ABANDONED) or not pol.retryable(outcome) or attempt >= spec_c.max_attempts:
                self._fail(spec, outcome)
                return
            if outcome == P.AUTH:
                if not self.has_auth or not self.login(sess):
                    self._fail(spec, P.AUTH)
                    return
                continue
            wait = pol.backoff_s(attempt - 1)
            if self.now() + wait >= give_up:
                gevent.sleep(max(0.0, give_up - self.now()))
                self._fail(spec, P.ABANDONED)
                return
            gevent.sleep(wait)

    def _count_timeouts(self, sess: Session, outcome: str) -> None:
        """After `clients.session_lost_after_timeouts` timeouts in a row the app drops its session
        (as sim.des.client): the next attempt fails auth and logs in again."""
        limit = getattr(self.sc.clients, "session_lost_after_timeouts", None)
        if outcome != P.TIMEOUT or not limit:
            return
        sess.timeouts += 1
        if sess.timeouts >= limit:
            sess.timeouts, sess.token = 0, None

    def _timed(self, work: Any, give_up: float = math.inf) -> str:
        """Run one attempt under the per-attempt timeout and the user's patience."""
        now = self.now()
        limit = min(now + self.policy.timeout_s, give_up)
        if limit == math.inf:
            return self._guarded(work)
        try:
            with gevent.Timeout(max(0.0, limit - now)):
                return self._guarded(work)
        except gevent.Timeout:
            return P.ABANDONED if limit >= give_up else P.TIMEOUT

    @staticmethod
    def _guarded(work: Any) -> str:
        try:
            return str(work())
        except OutOfRequests:
            raise
        except (OSError, ValueError, KeyError, TypeError):  # broken connection or body
            return P.ERROR

    def _succeed(self, sess: Session, cmd: Command) -> None:
        now = self.now()
        spec = cmd.spec
        e2e = now - cmd.t0
        self.tally.count(f"completed:{spec.name}", now)
        if e2e <= spec.good_within_s:
            self.tally.count(f"good:{spec.name}", now)
        self.tally.observe(f"e2e:{spec.name}", now, e2e)
        if cmd.first_send is not None:
            self.tally.observe(f"e2e_send:{spec.name}", now, now - cmd.first_send)
        if spec.cls.places_order:
            self.tally.count("orders", now)
        self.in_flight -= 1
        if spec.kind == "agent" and cmd.order_id:
            self._check_order(sess, cmd)

    def _attempt(self, sess: Session, cmd: Command) -> str:
        if cmd.spec.kind == "agent":
            return self._agent(sess, cmd)
        context = 0
        for st in cmd.spec.cls.stages:
            if st.llm is None:
                continue
            prompt = cmd.prompt0 if cmd.prompt0 >= 0 else round(st.llm.prompt_tokens.sample(self._tok))
            out = cmd.output0 if cmd.output0 >= 0 else round(st.llm.output_tokens.sample(self._tok))
            cmd.prompt0 = cmd.output0 = -1
            outcome, used = self._chat(sess, cmd, context + max(1, prompt), max(1, out))
            if outcome != P.OK:
                return outcome
            context = context + used if cmd.spec.cls.carry_context else 0
        return P.OK

    # -- HTTP ----------------------------------------------------------------------------------
    def _headers(self, sess: Session) -> dict[str, str]:
        h = dict(self._timeout_hdr)
        if sess.token:
            h["Authorization"] = f"Bearer {sess.token}"
        return h

    def _chat(self, sess: Session, cmd: Command, prompt_tokens: int, max_tokens: int) -> tuple[str, int]:
        """One streamed chat completion; records ttft, itl and tpot. Returns (outcome, tokens used)."""
        max_tokens = min(max_tokens, self.plan.max_tokens_cap)
        prompt_tokens = max(1, min(prompt_tokens, self.plan.max_context - max_tokens - 16))
        words = max(1, prompt_tokens - 3)  # "user", ":" and the BOS token count too
        text = " ".join(_WORDS[i % len(_WORDS)] for i in range(words))
        body = {"model": self.plan.model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
                "stream": True, "stream_options": {"include_usage": True}}
        sent = self.now()
        r = self._request("POST", "/v1/chat/completions", "chat", json=body, headers=self._headers(sess), stream=True)
        code = _code(r)
        cmd.admitted = cmd.admitted or _admitted(r, code)
        if r.status_code != 200:
            return P.classify(r.status_code, code), 0
        stamps, usage, err = _read_stream(r, self.now)
        if err is not None:
            return P.SHED if err in ("deadline_exceeded", "overloaded") else P.ERROR, 0
        if not stamps:
            return P.ERROR, 0
        name = cmd.spec.name
        self.tally.observe(f"ttft:{name}", stamps[0], stamps[0] - sent)
        for a, b in zip(stamps, stamps[1:], strict=False):
            self.tally.observe(f"itl:{name}", b, b - a)
        n_out = (usage or {}).get("completion_tokens") or len(stamps)
        if n_out > 1:
            self.tally.observe(f"tpot:{name}", stamps[-1], (stamps[-1] - stamps[0]) / (n_out - 1))
        self.tally.count(f"tokens_out:{name}", stamps[-1], n_out)
        return P.OK, ((usage or {}).get("prompt_tokens") or prompt_tokens) + n_out

    def _agent(self, sess: Session, cmd: Command) -> str:
        """One agent command, streamed: each LLM call's timing arrives in a progress event as the
        call ends and is recorded like a chat call's (as the simulator records every call that
        produced tokens, also in an attempt that fails later)."""
        h = self._headers(sess) | {"Idempotency-Key": cmd.key}
        body: dict[str, Any] = {"command": AGENT_TEXT, "stream": True}
        if cmd.spec.cls.places_order:  # the stack maps the stages of each order-placing class
            body["class"] = cmd.spec.name
        r = self._request("POST", "/v1/agent/commands", "agent", json=body, headers=h, stream=True)
        code = _code(r)
        cmd.admitted = _admitted(r, code)
        if r.status_code != 200:
            return P.classify(r.status_code, code)
        if not str(r.headers.get("content-type") or "").startswith("text/event-stream"):
            result: dict[str, Any] | None = r.json()  # a replay: the stored answer, as JSON
        else:
            result, error = _read_agent_stream(r, lambda call: self._record_call(cmd.spec.name, call))
            if error is not None:
                err_code = (error.get("error") or {}).get("code")
                return P.classify(int(error.get("status") or 500), str(err_code) if err_code else None)
        if not result:
            return P.ERROR
        cmd.order_id = str(result["order"]["id"])
        return P.OK

    def _record_call(self, name: str, call: dict[str, Any]) -> None:
        """An LLM call inside an agent command, timed by the stack (`timing.llm_calls`)."""
        now = self.now()
        self.tally.observe(f"ttft:{name}", now, float(call["ttft_s"]))
        if call.get("tpot_s") is not None:
            self.tally.observe(f"tpot:{name}", now, float(call["tpot_s"]))
        self.tally.count(f"tokens_out:{name}", now, int(call.get("output_tokens") or 0))

    def _check_order(self, sess: Session, cmd: Command) -> None:
        try:
            r = self._request("GET", f"/v1/orders/{cmd.order_id}", "order", headers=self._headers(sess))
            ok = r.status_code == 200 and r.json().get("status") in ("paid", "completed")
        except (OSError, ValueError, OutOfRequests):
            ok = False
        self.tally.totals["orders_checked"] += 1
        if not ok:
            self.tally.totals["orders_check_failed"] += 1


def _code(r: Any) -> str | None:
    """The OpenAI-style error code of a failed answer, if its body has one."""
    if 200 <= r.status_code < 300:
        return None
    try:
        return str(json.loads(r.content or b"{}").get("error", {}).get("code") or "") or None
    except (ValueError, AttributeError):
        return None


def _admitted(r: Any, code: str | None) -> bool:
    """Whether the gateway admitted the attempt: the stack says so (`X-Surge-Admitted`); a replay
    counts (its work was admitted in an earlier attempt whose answer the client never saw); a
    server that does not say is judged by the status (`policy.admitted`)."""
    said = r.headers.get("X-Surge-Admitted")
    if said is None:
        return P.admitted(r.status_code, code)
    return said == "1" or r.headers.get("Idempotent-Replayed") == "true"


def _lines(r: Any) -> Any:
    """Lines of a streamed body as soon as each arrives (geventhttpclient's `readline` returns a
    line once it is buffered; `iter_content` would wait for a whole block)."""
    raw = getattr(r, "_response", None)
    if raw is not None and hasattr(raw, "readline"):
        while line := raw.readline(b"\n"):
            yield line
        return
    buf = b""
    for chunk in r.iter_content(chunk_size=4096, decode_content=False):
        buf += chunk if isinstance(chunk, bytes) else chunk.encode()
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line + b"\n"


def _read_stream(r: Any, now: Any) -> tuple[list[float], dict[str, int] | None, str | None]:
    """Read server-sent events to `[DONE]`: arrival times of content chunks, usage, error code."""
    stamps: list[float] = []
    usage: dict[str, int] | None = None
    for line in _lines(r):
        if not line.startswith(b"data:"):
            continue
        t = now()
        data = line[5:].strip()
        if data == b"[DONE]":
            return stamps, usage, None
        msg = json.loads(data)
        if "error" in msg:
            return stamps, usage, str(msg["error"].get("code") or "error")
        if msg.get("usage"):
            usage = msg["usage"]
        for ch in msg.get("choices") or ():
            if (ch.get("delta") or {}).get("content"):
                stamps.append(t)
    return stamps, usage, "incomplete_stream"  # the connection ended before [DONE]


def _read_agent_stream(r: Any, on_call: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Read an agent command's events to `[DONE]`, calling `on_call(llm_call)` as each LLM call's
    timing arrives. Returns (result, None), or (None, error) with the error's `status`."""
    event, result, error = "", None, None
    for line in _lines(r):
        if line.startswith(b"event:"):
            event = line[6:].strip().decode()
            continue
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return (result, None) if result is not None else (None, error or {"status": 500})
        msg = json.loads(data)
        if event == "progress" and msg.get("llm_call"):
            on_call(msg["llm_call"])
        elif event == "result":
            result = msg
        elif event == "error":
            error = msg
    return None, {"status": 0, "error": {"code": "incomplete_stream"}}  # the connection ended before [DONE]
