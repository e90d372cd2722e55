"""Your own command classes for `surge loadtest`, for an agent API that is not the reference stack's.

Write one function per command class of the scenario — one attempt of that command, over your
API — and pass the file with `--plugin my_agent.py`. Everything else stays surge's: the arrival
schedule, sessions and think times, the client policy (timeouts, retries, backoff, budgets,
re-login), the counting into the results format, the comparison with the simulation.

    # my_agent.py
    from loadtest.plugins import Attempt, command

    @command("help_me_buy")
    def buy(a: Attempt) -> str:
        prompt, output = a.tokens(0)  # the class's first LLM stage, drawn as the simulator draws it
        r = a.post("/api/v2/shop/orders", json={"text": "help me buy a milk tea", "max_tokens": output},
                   name="orders", headers={"Idempotency-Key": a.key})
        if r.status_code != 200:
            return a.outcome(r)  # 429 -> rejected, 503 -> shed, 401 -> auth, ... (loadtest.policy)
        for call in r.json().get("llm_calls", []):  # optional: timings your API reports
            a.llm_call(ttft_s=call["ttft"], tpot_s=call["tpot"], output_tokens=call["tokens"])
        return "ok"

An attempt returns an outcome (`sim.rules.outcomes`: "ok", "shed", "rejected", "error",
"auth"; a timeout is measured by surge). Requests go only to `--host`, never follow redirects,
and count against `--max-requests`. Classes without a function run as surge's own (chat or the
reference stack's agent command).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import ScenarioError

if TYPE_CHECKING:
    from loadtest.commands import HttpClient
    from loadtest.http_commands import HttpCommand, HttpSession

AttemptFn = Callable[["Attempt"], str]
REGISTRY: dict[str, AttemptFn] = {}


def command(class_name: str) -> Callable[[AttemptFn], AttemptFn]:
    """Register `fn` as the attempt of the scenario's class `class_name`."""
    def register(fn: AttemptFn) -> AttemptFn:
        REGISTRY[class_name] = fn
        return fn
    return register


def load(paths: list[str], classes: list[str]) -> None:
    """Import each plugin file (its `@command`s register themselves); a class name the
    scenario does not have is an error, not a silently unused function."""
    for i, path in enumerate(paths):
        p = Path(path)
        if not p.is_file():
            raise ScenarioError(f"--plugin: no such file {path!r}")
        spec = importlib.util.spec_from_file_location(f"surge_plugin_{i}", p)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    unknown = sorted(set(REGISTRY) - set(classes))
    if unknown:
        raise ScenarioError(f"--plugin: command classes {unknown} are not in the scenario (it has {sorted(classes)})")


class Attempt:
    """One attempt of a command, for a plugin: requests, outcome helpers, token draws, timings."""

    def __init__(self, client: HttpClient, session: HttpSession, cmd: HttpCommand) -> None:
        self._client, self.session, self._cmd = client, session, cmd

    @property
    def class_name(self) -> str:
        return self._cmd.name

    @property
    def key(self) -> str:
        """The command's idempotency key: the same on every attempt of this command."""
        return self._cmd.key

    @property
    def user(self) -> str:
        return self.session.user

    def tokens(self, stage: int) -> tuple[int, int]:
        """(prompt, output) tokens of the class's LLM stage `stage`, drawn from its distributions."""
        llm = self._cmd.cls.stages[stage].llm
        if llm is None:
            raise ScenarioError(f"stage {stage} of class {self._cmd.name!r} is not an LLM stage")
        rng = self._client._tok
        return max(1, round(llm.prompt_tokens.sample(rng))), max(1, round(llm.output_tokens.sample(rng)))

    def request(self, method: str, path: str, name: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        """An HTTP request to the target (Locust's FastHttpSession response); the session's
        token (or --api-key), the deadline and --header are sent unless `headers` overrides them."""
        h = self._client._headers(self.session) | (headers or {})
        r = self._client._request(method, path, name, headers=h, **kw)
        from loadtest.answers import admitted_by, code_of

        self._cmd.admitted = self._cmd.admitted or admitted_by(r, code_of(r))
        return r

    def get(self, path: str, name: str, **kw: Any) -> Any:
        return self.request("GET", path, name, **kw)

    def post(self, path: str, name: str, **kw: Any) -> Any:
        return self.request("POST", path, name, **kw)

    def outcome(self, response: Any) -> str:
        """The outcome surge assigns an HTTP answer (`loadtest.policy.classify`)."""
        from loadtest import policy
        from loadtest.answers import code_of

        return policy.classify(response.status_code, code_of(response))

    def llm_call(self, ttft_s: float, tpot_s: float | None = None, output_tokens: int = 0) -> None:
        """Record one LLM call's timing, as the stack's agent reports its calls."""
        self._client._record_call(self._cmd.name, {"ttft_s": ttft_s, "tpot_s": tpot_s, "output_tokens": output_tokens})
