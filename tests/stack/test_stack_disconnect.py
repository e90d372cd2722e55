"""A client that closes its connection is gone for real: its work stops and its gateway slot is
freed, streamed or not (regression: a non-streaming chat kept generating and held its slot).
An order-placing agent command is the exception, on purpose: it finishes, so a retry replays it.

In-process tests drive the ASGI app with a `receive` that reports `http.disconnect` when the
test says; one test closes a real socket against a real server."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from stack_helpers import ADMIN, Server, chat_body, login, running, tiny_config

pytestmark = pytest.mark.anyio
SLOW_LLM = {"kind": "slowdown", "target": "llm", "magnitude": 400.0, "duration_s": 60}
CHAT = "/v1/chat/completions"


async def _leave_after(app: Any, path: str, body: dict[str, Any], headers: dict[str, str], after_s: float) -> list[dict]:
    """Send one request straight to the ASGI app; the client disconnects after `after_s`."""
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": raw, "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80), "state": {}}
    gone = asyncio.Event()
    body_sent = False
    sent: list[dict] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(after_s)
    gone.set()
    await asyncio.wait_for(task, 10)
    return sent


async def _until(check: Any, timeout_s: float = 3.0) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError("not freed in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


def _idle(app: Any) -> bool:
    st = app.state.stack
    return (st.gateway.admission.in_use == 0 and st.gateway.admission.waiting == 0
            and all(e.load == 0 and e.kv_used_tokens == 0 for e in st.llm.engines))


@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_whose_client_left_stops_and_frees_its_slot(tmp_path: Path, stream: bool) -> None:
    async with running(tiny_config(tmp_path)) as client:
        app = client.app  # type: ignore[attr-defined]
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        sent = await _leave_after(app, CHAT, chat_body(max_tokens=200, stream=stream), {}, 0.3)
        took = await _until(lambda: _idle(app))
        assert took < 2.0
        if not stream:
            assert not any(m.get("status") == 200 for m in sent)  # nobody was there to answer


async def test_a_queued_chat_whose_client_left_leaves_the_queue(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "services.gateway.concurrency=1")
    async with running(cfg) as client:
        app = client.app  # type: ignore[attr-defined]
        adm = app.state.stack.gateway.admission
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        holder = asyncio.create_task(_leave_after(app, CHAT, chat_body(max_tokens=200), {}, 1.5))
        await _until(lambda: adm.in_use == 1)
        await _leave_after(app, CHAT, chat_body(), {}, 0.3)  # queued behind the holder, then gone
        assert adm.waiting == 0 and adm.in_use == 1
        await holder
        await _until(lambda: _idle(app))


async def test_an_agent_command_without_an_order_stops_when_its_client_leaves(tmp_path: Path) -> None:
    async with running(tiny_config(tmp_path)) as client:
        app = client.app  # type: ignore[attr-defined]
        h = await login(client)
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        await _leave_after(app, "/v1/agent/commands", {"command": "hi", "class": "chat"},
                           h | {"Idempotency-Key": "c1"}, 0.3)
        await _until(lambda: _idle(app))


async def test_an_order_in_progress_finishes_after_its_client_left_and_a_retry_replays_it(tmp_path: Path) -> None:
    async with running(tiny_config(tmp_path)) as client:
        app = client.app  # type: ignore[attr-defined]
        h = await login(client) | {"Idempotency-Key": "o1"}
        await client.post("/admin/faults", json=SLOW_LLM | {"duration_s": 0.6}, headers=ADMIN)
        await _leave_after(app, "/v1/agent/commands", {"command": "help me buy a milk tea"}, h, 0.2)
        await _until(lambda: _idle(app), timeout_s=20)
        r = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
        assert r.status_code == 200 and r.headers.get("Idempotent-Replayed") == "true"
        assert r.json()["order"]["status"] == "completed"


def _in_progress(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return float(re.search(r"^surge_gateway_in_progress (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_closed_socket_frees_the_slot_on_a_real_server(tmp_path: Path) -> None:
    server = Server(tmp_path).start()
    try:
        httpx.post(server.url + "/admin/faults", json=SLOW_LLM, headers=ADMIN, timeout=5)
        body = json.dumps(chat_body(max_tokens=200)).encode()
        socks = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            socks.append(s)
        t0 = time.monotonic()
        while _in_progress(server.url) < 4:
            assert time.monotonic() - t0 < 10, "the requests were not admitted"
            time.sleep(0.05)
        for s in socks:
            s.close()
        t0 = time.monotonic()
        while _in_progress(server.url) > 0:
            assert time.monotonic() - t0 < 3, "slots still held after the clients left"
            time.sleep(0.05)
    finally:
        server.stop()
