"""Graceful shutdown on a real server: SIGTERM lets in-flight work finish, then exits 0."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from stack_helpers import ADMIN, Server


def test_sigterm_drains_in_flight_requests(tmp_path):
    server = Server(tmp_path).start()
    try:
        httpx.post(server.url + "/admin/faults", headers=ADMIN,
                   json={"kind": "slowdown", "target": "llm", "magnitude": 100, "duration_s": 60})
        result: dict = {}

        def slow_request() -> None:
            r = httpx.post(server.url + "/v1/chat/completions", timeout=30, json={
                "model": "surge-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 15})
            result["status"], result["tokens"] = r.status_code, r.json().get("usage", {}).get("completion_tokens")

        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.5)  # the request is generating, slowly
        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        code = server.wait(30)
        t.join(30)
        assert result == {"status": 200, "tokens": 15}  # finished, not cut off
        # uvicorn re-raises the signal once drained, so the exit status says "ended by SIGTERM".
        assert code in (0, -signal.SIGTERM) and time.monotonic() - t0 > 0.1
    finally:
        server.stop()
