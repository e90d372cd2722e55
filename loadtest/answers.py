"""What an HTTP answer of the stack says, for the load test's client: the error code, whether the
gateway admitted the attempt, and the streamed events (chat chunks, an agent command's
progress, result or error), read as they arrive. Runs in a gevent process, once per streamed piece:
no per-line work that a check on the bytes can spare (the `[DONE]` sentinel and non-data lines are
never parsed as JSON), one arrival time per received piece."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from loadtest import policy as P


def code_of(r: Any) -> str | None:
    """The OpenAI-style error code of a failed answer, if its body has one."""
    if 200 <= r.status_code < 300:
        return None
    try:
        return str(json.loads(r.content or b"{}").get("error", {}).get("code") or "") or None
    except (ValueError, AttributeError):
        return None


def admitted_by(r: Any, code: str | None) -> bool:
    """Whether the gateway admitted the attempt: the stack says so (`X-Surge-Admitted`); a replay
    counts (its work was admitted in an earlier attempt whose answer the client never saw); a
    server that does not say is judged by the status (`policy.admitted`)."""
    headers = r.headers  # None: the connection failed before an answer
    # `in` first: geventhttpclient's `get` of a missing header raises and catches a KeyError
    if headers is None or "X-Surge-Admitted" not in headers:
        return P.admitted(r.status_code, code)
    return headers.get("X-Surge-Admitted") == "1" or headers.get("Idempotent-Replayed") == "true"


def json_or_none(r: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(r.content or b"{}")
    except (ValueError, AttributeError):
        return None
    return body if isinstance(body, dict) else None


_decode = json.JSONDecoder().raw_decode


def _json(data: bytes) -> Any:
    """`json.loads` of one event's data, without its bytes-decoding detour."""
    text = data.decode()
    msg, end = _decode(text)
    if end != len(text):
        raise ValueError(f"extra data after the JSON of an event: {text[end:end + 40]!r}")
    return msg


def chunks(r: Any) -> Iterator[bytes]:
    """A streamed body in the pieces it arrives in: what geventhttpclient has buffered, then
    each receive (its `readline`'s own steps, without cutting the buffer one line per call;
    other clients: their `iter_content`)."""
    raw = getattr(r, "_response", None)
    if raw is None or not isinstance(getattr(raw, "_body_buffer", None), bytearray):
        yield from _lines(r)
        return
    while True:
        buf = raw._body_buffer
        if buf:
            data = bytes(buf)
            del buf[:]
            yield data
            continue
        if raw.message_complete:
            return
        sock = raw._sock
        if sock is None:
            from geventhttpclient.response import HTTPConnectionClosed

            raise HTTPConnectionClosed("connection closed.")
        try:
            raw.feed(sock.recv(raw.block_size))
        except BaseException:
            raw.release()
            raise


def _lines(r: Any) -> Iterator[bytes]:
    """Lines of a streamed body as soon as each arrives (geventhttpclient's `readline` returns a
    line once it is buffered; `iter_content` would wait for a whole block)."""
    raw = getattr(r, "_response", None)
    if raw is not None and hasattr(raw, "readline"):
        readline = raw.readline
        while line := readline(b"\n"):
            yield line
        return
    buf = b""
    for chunk in r.iter_content(chunk_size=4096, decode_content=False):
        buf += chunk if isinstance(chunk, bytes) else chunk.encode()
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line + b"\n"


def _produced(choice: dict[str, Any]) -> bool:
    """Whether a streamed choice carries generated tokens: content, reasoning, a tool call's
    arguments (chat), or text (completions)."""
    d = choice.get("delta") or {}
    return bool(d.get("content") or d.get("reasoning_content") or d.get("reasoning") or d.get("tool_calls")
                or choice.get("text"))


def read_stream(r: Any, now: Callable[[], float]) -> tuple[list[float], dict[str, int] | None, str | None]:
    """Read server-sent events to `[DONE]`: arrival times of content chunks, usage, error code."""
    stamps: list[float] = []
    usage: dict[str, int] | None = None
    rest = b""
    for chunk in chunks(r):
        t = now()  # every event of a piece arrived with it
        *complete, rest = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        for line in complete:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return stamps, usage, None
            msg = _json(data)
            if "error" in msg:
                return stamps, usage, str(msg["error"].get("code") or "error")
            if msg.get("usage"):
                usage = msg["usage"]
            for ch in msg.get("choices") or ():
                if _produced(ch):
                    stamps.append(t)
    return stamps, usage, "incomplete_stream"  # the connection ended before [DONE]


def read_agent_stream(r: Any, on_call: Callable[[dict[str, Any]], None]) -> tuple[dict[str, Any] | None,
                                                                                 dict[str, Any] | None]:
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
        msg = _json(data)
        if event == "progress" and msg.get("llm_call"):
            on_call(msg["llm_call"])
        elif event == "result":
            result = msg
        elif event == "error":
            error = msg
    return None, {"status": 0, "error": {"code": "incomplete_stream"}}  # the connection ended before [DONE]
