"""Helpers for the reference stack tests: a tiny scenario, an in-process app, a real server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import yaml

from loadtest.credentials import password_for
from loadtest.stack import StackOptions, create_app
from sim.scenario import Scenario, apply_override, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer test-admin"}


def _const(v: float) -> dict[str, Any]:
    return {"type": "constant", "value": v}


# A scenario small enough that a whole agent command takes milliseconds on one CPU core.
TINY: dict[str, Any] = {
    "name": "tiny_stack",
    "arrivals": {"rate_per_s": 5},
    "workload": {"classes": {
        "chat": {"probability": 0.7, "priority": 1,
                 "stages": [{"llm": {"prompt_tokens": _const(16), "output_tokens": _const(4)}}]},
        "help_me_buy": {"probability": 0.3, "priority": 0, "places_order": True, "stages": [
            {"llm": {"prompt_tokens": _const(64), "output_tokens": _const(16)}},
            {"tool": "catalog"}, {"tool": "order"}, {"tool": "payment"},
            {"llm": {"prompt_tokens": _const(96), "output_tokens": _const(24)}}]},
    }},
    "services": {
        "gateway": {"concurrency": 64, "queue_limit": 256, "priority": True},
        "auth": {"concurrency": 64, "latency": _const(0.0), "session_ttl_s": 3600},
        "llm": {"replicas": 2, "max_num_seqs": 16, "max_batched_tokens": 256, "kv_cache_tokens": 4096,
                "queue_limit": 256,
                "backend": {"type": "local", "model": {"layers": 1, "hidden": 32, "heads": 2, "vocab": 128,
                                                       "max_context": 256}}},
        "tools": {t: {"concurrency": 64, "latency": _const(0.002)} for t in ("catalog", "order", "payment")},
    },
}
USER_SECRET = "test-users"  # seeds the user table: password_for(USER_SECRET, name)
OPTIONS: dict[str, Any] = {"admin_token": "test-admin", "user_secret": USER_SECRET, "torch_threads": 1}


class TinyStack(NamedTuple):
    scenario: Scenario
    options: StackOptions


def tiny_scenario(*sets: str) -> Scenario:
    """The tiny scenario with `--set`-style overrides (`services.gateway.concurrency=8`)."""
    data = json.loads(json.dumps(TINY))
    for item in sets:
        apply_override(data, item)
    return parse_scenario(data, file="<tiny stack>")


def tiny_config(tmp_path: Path, *sets: str, **options: Any) -> TinyStack:
    """The tiny stack with orders in `tmp_path`: scenario overrides and `StackOptions` fields."""
    opts = StackOptions(**(OPTIONS | {"db_path": str(tmp_path / "orders.db")} | options))
    return TinyStack(tiny_scenario(*sets), opts)


@contextlib.asynccontextmanager
async def running(cfg: TinyStack, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a started app in-process (lifespan entered)."""
    app = create_app(cfg.scenario, cfg.options, **kw)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stack", timeout=30) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def credentials(user: str) -> dict[str, str]:
    """The login body of `user` in the test stacks' user table."""
    return {"username": user, "password": password_for(USER_SECRET, user)}


async def login(client: httpx.AsyncClient, user: str = "alice") -> dict[str, str]:
    r = await client.post("/v1/auth/login", json=credentials(user))
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def chat_body(**kw: Any) -> dict[str, Any]:
    return {"model": "surge-tiny", "messages": [{"role": "user", "content": "help me buy a milk tea"}],
            "max_tokens": 4, **kw}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m loadtest.stack` in a subprocess on a free loopback port, serving the tiny
    scenario with `sets` overrides and `StackOptions` fields `options`."""

    def __init__(self, tmp_path: Path, sets: tuple[str, ...] | list[str] = (), port: int | None = None,
                 **options: Any) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scenario_file = tmp_path / f"tiny-{self.port}.yaml"
        self.scenario_file.write_text(yaml.safe_dump(tiny_scenario(*sets).model_dump(mode="json")))
        self.options = OPTIONS | {"db_path": str(tmp_path / "orders.db")} | options
        self.log = open(tmp_path / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest.stack", "--port", str(self.port), "--scenario", str(self.scenario_file),
             "--options-json", json.dumps(self.options)],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout_s} s; see {self.log.name}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
