"""Calibrate `services.host` to the reference stack: the CPU its own work costs outside the LLM's
batch steps, measured apart from any load test.

A stack runs pinned to its core(s); this process sends it requests one at a time, from another
core, in groups of one shape each:

- logins (an HTTP request and nothing else),
- streamed chat completions of 64 prompt tokens at 1, 8 and 32 output tokens,
- streamed agent commands of an order-placing class (its LLM calls, tool calls, order ledger).

Around each group it reads the CPU time of the stack's process (`/proc/PID/stat`: every thread,
also those that ended) and of its engine threads' steps (`surge_llm_step_cpu_seconds`, the
engine's own thread CPU clock). CPU outside the steps per request, over the groups, is fitted by
non-negative least squares to

    request_cpu_s + llm_call_cpu_s x LLM calls + token_cpu_s x output tokens + tool_call_cpu_s x tool calls

The steps themselves are the cost model's (`loadtest.calibrate`); `cores` is how many cores the
stack is pinned to. One request at a time: nothing queues, so the figures are the work itself.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.calibrate import CalibrationError, nnls
from loadtest.credentials import Credentials
from loadtest.safety import fetch
from loadtest.scrape import parse

FIELDS = ("request_cpu_s", "llm_call_cpu_s", "token_cpu_s", "tool_call_cpu_s")
_WORDS = ("milk", "tea", "please", "brown", "sugar", "boba", "large", "less", "ice", "today")


@dataclass(frozen=True)
class Group:
    """Requests of one shape: per request, LLM calls, output tokens and tool calls."""

    name: str
    n: int
    llm_calls: int = 0
    tokens: int = 0
    tool_calls: int = 0
    streams: int = 1  # requests in flight at once


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (also those that have ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metrics(url: str) -> dict[str, float]:
    status, body, _ = fetch(url + "/metrics", 5.0)
    if status != 200:
        raise CalibrationError(f"{url}/metrics answered {status}")
    return parse(body.decode(errors="replace"))[0]


class HostProbe:
    """Sends each group's requests to a running stack and measures its CPU around them."""

    def __init__(self, url: str, pid: int, agent_class: str | None, credentials: Credentials,
                 model: str = "surge-tiny") -> None:
        import httpx

        self.url, self.pid, self.agent_class, self.model = url, pid, agent_class, model
        self.credentials = credentials
        self.http = httpx.Client(base_url=url, timeout=30)
        self.token = self._login()

    def close(self) -> None:
        self.http.close()

    def _login(self) -> str:
        user = f"host-{uuid.uuid4().hex[:8]}"
        r = self.http.post("/v1/auth/login", json={"username": user, "password": self.credentials.password(user)})
        r.raise_for_status()
        return str(r.json()["token"])

    def _chat(self, tokens: int) -> None:
        body = {"model": self.model, "max_tokens": tokens, "stream": True, "stream_options": {"include_usage": True},
                "ignore_eos": True, "min_tokens": tokens,
                "messages": [{"role": "user", "content": " ".join(_WORDS[i % 10] for i in range(61))}]}
        headers = {"Authorization": f"Bearer {self.token}", "X-Surge-Class": "chat"}
        with self.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.strip() == "data: [DONE]":
                    return

    def _agent(self) -> None:
        body = {"command": "help me buy a milk tea", "stream": True, "class": self.agent_class}
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": uuid.uuid4().hex}
        with self.http.stream("POST", "/v1/agent/commands", json=body, headers=headers) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.strip() == "data: [DONE]":
                    return

    def send(self, g: Group) -> None:
        if g.name == "login":
            self._login()
        elif g.name == "agent":
            self._agent()
        else:
            self._chat(g.tokens)

    def _send_all(self, g: Group, n: int) -> None:
        """`n` requests of the group, `g.streams` at a time (each stream on its own connection)."""
        if g.streams <= 1:
            for _ in range(n):
                self.send(g)
            return
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        def stream(k: int) -> None:
            probe = HostProbe.__new__(HostProbe)
            probe.url, probe.pid, probe.agent_class, probe.model = self.url, self.pid, self.agent_class, self.model
            probe.credentials, probe.token = self.credentials, self.token
            probe.http = httpx.Client(base_url=self.url, timeout=30)
            try:
                for _ in range(n // g.streams + (k < n % g.streams)):
                    probe.send(g)
            finally:
                probe.http.close()
        with ThreadPoolExecutor(g.streams) as pool:
            list(pool.map(stream, range(g.streams)))

    def measure(self, g: Group) -> dict[str, Any]:
        """The group's CPU outside the engine's steps per request (seconds), and the rest."""
        self._send_all(g, max(3, g.n // 20))  # warm this shape's code paths and caches first
        m0, c0, t0 = _metrics(self.url), process_cpu_s(self.pid), time.monotonic()
        self._send_all(g, g.n)
        c1, m1, t1 = process_cpu_s(self.pid), _metrics(self.url), time.monotonic()
        steps_cpu = m1.get("surge_llm_step_cpu_seconds_total", 0.0) - m0.get("surge_llm_step_cpu_seconds_total", 0.0)
        steps = m1.get("surge_llm_batch_sequences_count", 0.0) - m0.get("surge_llm_batch_sequences_count", 0.0)
        return {"group": g.name, "n": g.n, "streams": g.streams, "llm_calls": g.llm_calls, "tokens": g.tokens,
                "tool_calls": g.tool_calls,
                "process_cpu_s": c1 - c0, "steps_cpu_s": steps_cpu, "steps": steps, "wall_s": t1 - t0,
                "outside_per_request_s": (c1 - c0 - steps_cpu) / g.n}


def groups_of(sc: Any, n: int, streams: int = 1) -> tuple[list[Group], str | None]:
    """The groups for a scenario: logins (one at a time), chats at 1/8/32 tokens and its
    order-placing class (`streams` at a time)."""
    from loadtest.stack.agent import default_class

    k = streams
    out = [Group("login", 2 * n), Group("chat-1", n, 1, 1, streams=k), Group("chat-8", n, 1, 8, streams=k),
           Group("chat-32", n, 1, 32, streams=k)]
    klass = default_class(dict(sc.workload.classes)) if sc.workload.classes else None
    cls = sc.workload.classes.get(klass) if klass else None
    if cls is not None and cls.places_order:
        llm = [st.llm for st in cls.stages if st.llm is not None]
        tools = sum(1 for st in cls.stages if st.tool is not None)
        tokens = int(round(sum(s.output_tokens.mean for s in llm)))
        out.append(Group("agent", max(20, n // 3), len(llm), tokens, tools, streams=k))
    return out, klass if cls is not None and cls.places_order else None


def fit_host(rows: list[dict[str, Any]]) -> tuple[dict[str, float], list[float]]:
    """The four per-unit CPU costs (NNLS on relative error) and each group's relative error."""
    a = np.array([[1.0, r["llm_calls"], r["tokens"], r["tool_calls"]] for r in rows])
    y = np.array([max(r["outside_per_request_s"], 1e-9) for r in rows])
    w = 1.0 / y
    scale = np.linalg.norm(a * w[:, None], axis=0)
    scale[scale == 0] = 1.0
    coef = nnls(a * w[:, None] / scale, y * w) / scale
    pred = a @ coef
    return dict(zip(FIELDS, (float(c) for c in coef), strict=True)), [float(e) for e in pred / y - 1]


def calibrate_host(sc: Any, url: str, pid: int, cores: int, n: int = 200,
                   credentials: Credentials | None = None, streams: int = 1) -> dict[str, Any]:
    """Measure a running stack (`url`, process `pid`, pinned to `cores` cores; its users'
    `credentials`, default the environment's) for scenario `sc`: `services.host` as a mapping,
    with the per-group measurements. `streams` > 1 sends the chats and agent commands that many
    at a time: a token streamed among concurrent streams costs the event loop less than one
    streamed alone (one wake-up delivers a token to each; docs/validation.md)."""
    groups, klass = groups_of(sc, n, streams)
    probe = HostProbe(url, pid, klass, credentials or Credentials.from_env())
    try:
        rows = [probe.measure(g) for g in groups]
    finally:
        probe.close()
    coef, errs = fit_host(rows)
    for r, e in zip(rows, errs, strict=True):
        r["fit_rel_error"] = e
    host = {"cores": float(cores), "llm_steps": True, **{k: float(f"{v:.3g}") for k, v in coef.items()}}
    return {"host": host, "groups": rows}


def describe(result: dict[str, Any]) -> str:
    """One line per group: CPU outside the steps per request, measured and fitted."""
    lines = []
    for r in result["groups"]:
        lines.append(f"{r['group']:<8} n {r['n']:>4}: {1e3 * r['outside_per_request_s']:.3f} ms per request outside the "
                     f"steps (fit {100 * r['fit_rel_error']:+.0f}%); steps {r['steps'] / r['n']:.1f} per request, "
                     f"{1e3 * r['steps_cpu_s'] / max(1.0, r['steps']):.3f} ms CPU each")
    return "\n".join(lines) + "\n" + json.dumps(result["host"])


def write_host(scenario_file: Path, host: dict[str, Any]) -> None:
    """Put `services.host` into a scenario file as run (`loadtest.plan.write_scenario`'s output),
    keeping the rest of it as written."""
    import yaml

    text = scenario_file.read_text()
    data = yaml.safe_load(text)
    data.setdefault("services", {})["host"] = host
    head = "".join(line for line in text.splitlines(keepends=True)[:1] if line.startswith("#"))
    scenario_file.write_text(head + yaml.safe_dump(data, sort_keys=False))
