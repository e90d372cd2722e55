"""What the reference stack reads: the validated `Scenario` (every mechanism it names), plus
`StackOptions` for what a scenario does not describe (where it runs, what it may accept).

The stack has no configuration of its own for anything a scenario says: the gateway, auth,
the tools, the LLM fleet, the command classes and the client's deadline rules come from the
scenario, through the same `sim.rules` the simulator uses. Without a scenario it serves
`DEFAULT_SCENARIO` (chat and help_me_buy on a small CPU fleet).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.credentials import ADMIN_ENV, SESSION_ENV, USERS_ENV, new_secret
from sim.errors import SurgeError
from sim.scenario import Scenario, parse_scenario
from sim.scenario.services import LLMFleet


class OptionsError(SurgeError):
    """A stack option is not usable (an empty secret, a timeout that is not a positive number)."""


def _db_default() -> str:
    return str(Path(tempfile.gettempdir()) / f"surge-stack-{os.getpid()}" / "orders.db")


@dataclass(frozen=True)
class StackOptions:
    """Deployment options of one stack process (none of them is in a scenario)."""

    db_path: str = field(default_factory=_db_default)  # SQLite file of orders and payments
    # Secrets (loadtest.credentials): from the environment, else generated for this deployment.
    admin_token: str = field(default_factory=lambda: os.environ.get(ADMIN_ENV) or new_secret())
    session_secret: str = field(default_factory=lambda: os.environ.get(SESSION_ENV) or new_secret())
    user_secret: str = field(default_factory=lambda: os.environ.get(USERS_ENV) or new_secret())
    model_name: str = "surge-tiny"  # the name /v1/models lists and chat requests must use
    device: str = "auto"  # torch device for the local model: auto = cuda when present, else cpu
    torch_threads: int | None = None  # intra-op threads (None: torch's default)
    block_tokens: int = 16  # KV-cache block size of the local engine
    max_tokens_cap: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 16
    max_body_bytes: int = 1_000_000
    order_lease_s: float = 60.0  # an order whose attempt holds it longer may be taken over
    drain_timeout_s: float = 30.0
    upstream_api_key: str = "none"  # openai backend: the key sent upstream
    chat_requires_session: bool = False  # chat completions need a session (else any bearer is an API key)
    seed: int | None = None  # None: the scenario's run.seed
    # Connection timeouts (seconds): a request head must arrive within header_timeout_s of the
    # connection opening or of its first byte; a body within body_timeout_s of its head; an
    # idle connection between requests closes after keep_alive_s.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 30.0
    # How long a thread may hold the GIL while another waits (sys.setswitchinterval, set by
    # `serve`). The engine threads run Python between torch calls; at Python's default of
    # 5 ms the event loop waits up to that long for each of its turns (a convoy: every I/O
    # wait hands the GIL to an engine thread), which is what made rejections and /healthz slow.
    gil_switch_interval_s: float = 0.0005
    # Nice value added to each local engine thread. The engines and the event loop share the
    # process's CPU; when both want it, the loop, whose turns are short (admission, rejection,
    # /healthz, streaming a token), goes first, so an engine step cannot hold up a 503 or a
    # health check for a whole scheduler slice. The engines still get every cycle the loop does
    # not use. 0: no change.
    engine_nice: int = 5

    def __post_init__(self) -> None:
        for name in ("admin_token", "session_secret", "user_secret"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise OptionsError(f"'{name}' must be a non-empty string (got {v!r}): the admin API and "
                                   "sessions need a secret (leave it out to have one generated)")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s", "gil_switch_interval_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise OptionsError(f"'{name}' must be a positive number of seconds (got {v!r})")
        if isinstance(self.engine_nice, bool) or not isinstance(self.engine_nice, int) or not 0 <= self.engine_nice <= 19:
            raise OptionsError(f"'engine_nice' must be an integer from 0 to 19 (got {self.engine_nice!r})")
        if isinstance(self.max_body_bytes, bool) or not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1:
            raise OptionsError(f"'max_body_bytes' must be a positive integer (got {self.max_body_bytes!r})")

    def with_(self, **changes: Any) -> StackOptions:
        return dataclasses.replace(self, **changes)


DEFAULT_SCENARIO: dict[str, Any] = {
    "name": "reference_stack",
    "description": "The reference stack's own workload when no scenario is given.",
    "arrivals": {"rate_per_s": 5},
    "workload": {"classes": {
        "chat": {"probability": 0.7, "priority": 1, "stages": [
            {"llm": {"prompt_tokens": {"type": "constant", "value": 64},
                     "output_tokens": {"type": "constant", "value": 16}}}]},
        "help_me_buy": {"probability": 0.3, "priority": 0, "places_order": True, "stages": [
            {"llm": {"prompt_tokens": {"type": "constant", "value": 64},
                     "output_tokens": {"type": "constant", "value": 16}}},
            {"tool": "catalog"}, {"tool": "order"}, {"tool": "payment"},
            {"llm": {"prompt_tokens": {"type": "constant", "value": 96},
                     "output_tokens": {"type": "constant", "value": 24}}}]},
    }},
    "services": {
        "gateway": {"concurrency": 64, "queue_limit": 256, "priority": True},
        "auth": {"concurrency": 64, "latency": {"type": "constant", "value": 0.0}, "session_ttl_s": 3600},
        "llm": {"replicas": 2, "max_num_seqs": 32, "max_batched_tokens": 512, "kv_cache_tokens": 16384,
                "queue_limit": 256, "routing": "jsq"},
        "tools": {t: {"concurrency": 64, "latency": {"type": "exponential", "mean": 0.005}}
                  for t in ("catalog", "order", "payment")},
    },
}


def default_scenario() -> Scenario:
    return parse_scenario(DEFAULT_SCENARIO, file="<reference stack default>")


def kv_tokens(fleet: LLMFleet, max_context: int, block_tokens: int) -> int:
    """KV-cache tokens one local engine accounts for: the scenario's per-replica capacity (in
    whole blocks; the physical cache is one row of `max_context` per running sequence, so a
    large capacity costs no memory)."""
    return max(block_tokens, fleet.kv_tokens)
