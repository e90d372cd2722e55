"""Connections are bounded in time and size (raw sockets against a real server): a connection
that sends nothing, a slow request head, a slow body and an idle keep-alive connection are
closed within the stated time; an oversized head is 431; a chunked body over the limit is 413
(regression: it was 400)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack_helpers import Server, chat_body, running, tiny_config

LIMIT_S = 1.0  # every timeout of the server under test
SLACK_S = 1.5  # how much later than the limit the close may come (a loaded 2-core machine)


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("timed"), header_timeout_s=LIMIT_S, body_timeout_s=LIMIT_S,
               keep_alive_s=LIMIT_S).start()
    try:
        yield s
    finally:
        s.stop()


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=LIMIT_S + SLACK_S + 5)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (head and body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _closed_after(sock: socket.socket, t0: float, drip: bytes = b"", every_s: float = 0.2) -> tuple[float, bytes]:
    """Send `drip` one byte every `every_s` until the server closes; (seconds from t0, answer)."""
    sock.settimeout(every_s)
    out = b""
    i = 0
    while time.monotonic() - t0 < LIMIT_S + SLACK_S + 5:
        try:
            chunk = sock.recv(65536)
            if not chunk:
                return time.monotonic() - t0, out
            out += chunk
            continue
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - t0, out
        if i < len(drip):
            try:
                sock.sendall(drip[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0, out
            i += 1
    raise AssertionError("the server kept the connection open")


def test_a_connection_that_sends_nothing_is_closed(timed: Server) -> None:
    t0 = time.monotonic()
    with _connect(timed) as sock:
        took, answer = _closed_after(sock, t0)
    assert LIMIT_S * 0.8 <= took <= LIMIT_S + SLACK_S, took
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_slow_request_head_is_closed(timed: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    t0 = time.monotonic()
    with _connect(timed) as sock:
        took, answer = _closed_after(sock, t0, drip=head, every_s=0.05)
    assert took <= LIMIT_S + SLACK_S and answer.startswith(b"HTTP/1.1 408"), (took, answer[:80])


def test_a_slow_body_is_408_and_closed(timed: Server) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n")
    with _connect(timed) as sock:
        sock.sendall(head)
        t0 = time.monotonic()
        took, answer = _closed_after(sock, t0, drip=b"{" + b" " * 400, every_s=0.05)
    assert took <= LIMIT_S + SLACK_S, took
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer, answer[:200]


def test_an_idle_keep_alive_connection_is_closed(timed: Server) -> None:
    with _connect(timed) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = _read_response(sock)
        t0 = time.monotonic()
        took, rest = _closed_after(sock, t0)
    assert first.startswith(b"HTTP/1.1 200") and rest == b""
    assert LIMIT_S * 0.8 <= took <= LIMIT_S + SLACK_S, took


def test_keep_alive_serves_requests_in_turn(timed: Server) -> None:
    with _connect(timed) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(LIMIT_S / 3)


def test_an_oversized_head_is_431(timed: Server) -> None:
    with _connect(timed) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]


def test_a_chunked_body_over_the_limit_is_413_on_the_wire(timed: Server) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"x" * 65536
    with _connect(timed) as sock:
        sock.sendall(head)
        try:
            for _ in range(20):  # 1.3 MB
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        try:
            answer = _read_until_closed(sock)
        except ConnectionResetError:
            pytest.fail("the connection was reset before the 413 could be read")
    assert answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer, answer[:200]


@pytest.mark.anyio
async def test_a_chunked_body_over_the_limit_is_413(tmp_path: Path) -> None:
    """Regression: a body with no Content-Length that grows past `max_body_bytes` was 400."""
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "surge-tiny", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}]}'

    async with running(tiny_config(tmp_path)) as client:
        r = await client.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large", r.text
        small = await client.post("/v1/chat/completions", json=chat_body())
        assert small.status_code == 200


def test_a_declared_body_over_the_limit_is_413_for_a_plain_client(timed: Server) -> None:
    """A client that sends its whole body before reading still gets the 413 (the rest of the
    body is read and dropped before the connection closes, not reset under it)."""
    r = httpx.post(timed.url + "/v1/chat/completions", content=b"x" * 1_200_000,
                   headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
