"""Helpers for the reference stack tests: a tiny config, an in-process app, a real server."""

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
from typing import Any

import httpx

from loadtest.stack import StackConfig, create_app
from loadtest.stack.scenario_map import config_from_dict

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer test-admin"}

# A model small enough that a whole agent command takes milliseconds on one CPU core.
TINY: dict[str, Any] = {
    "model": {"layers": 1, "hidden": 32, "heads": 2, "vocab": 128, "max_context": 256},
    "llm": {"replicas": 2, "max_num_seqs": 16, "max_batched_tokens": 256, "kv_cache_tokens": 4096,
            "torch_threads": 1},
    "auth": {"latency": {"type": "constant", "value": 0.0}},
    "tools": {t: {"latency": {"type": "constant", "value": 0.002}} for t in ("catalog", "order", "payment")},
    "admin_token": "test-admin",
}


def tiny_config(tmp_path: Path, **changes: Any) -> StackConfig:
    """The tiny stack with orders in `tmp_path`; `changes` as in `config_from_dict`."""
    data = json.loads(json.dumps(TINY))
    for k, v in changes.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) and k != "tools" else v
    data["db_path"] = str(tmp_path / "orders.db")
    return config_from_dict(StackConfig(), data)


@contextlib.asynccontextmanager
async def running(cfg: StackConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a started app in-process (lifespan entered)."""
    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stack", timeout=30) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def login(client: httpx.AsyncClient, user: str = "alice") -> dict[str, str]:
    r = await client.post("/v1/auth/login", json={"username": user})
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
    """`python -m loadtest.stack` in a subprocess on a free loopback port."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = json.loads(json.dumps(TINY)) | (config or {})
        cfg["db_path"] = str(tmp_path / "orders.db")
        self.cfg = cfg
        self.log = open(tmp_path / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest.stack", "--port", str(self.port), "--config-json", json.dumps(self.cfg)],
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
