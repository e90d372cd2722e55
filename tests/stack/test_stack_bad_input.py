"""Client mistakes are 4xx with an OpenAI-style error body naming what was wrong; never a 500."""

from __future__ import annotations

import pytest
from stack_helpers import chat_body, login

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"


def _err(r, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["message"]
    if param is not None:
        assert e["param"] == param, e
    if code is not None:
        assert e["code"] == code, e
    return e


@pytest.mark.parametrize("raw", [b"{", b"not json", b"", b"[1, 2", b"\xff\xfe"])
async def test_malformed_json_is_400(client, raw):
    r = await client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    _err(r, 400)


@pytest.mark.parametrize(("change", "param"), [
    ({"model": 5}, "model"),
    ({"messages": "hi"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"max_tokens": "lots"}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": 9}, "temperature"),
    ({"stream": "yes"}, "stream"),
    ({"n": 3}, "n"),
])
async def test_wrong_types_and_ranges_are_400_naming_the_field(client, change, param):
    _err(await client.post(CHAT, json=chat_body(**change)), 400, param)


async def test_max_tokens_over_the_cap_is_400(client):
    e = _err(await client.post(CHAT, json=chat_body(max_tokens=10_000)), 400, "max_tokens")
    assert "1024" in e["message"]


async def test_oversized_prompt_is_400_context_length_exceeded(client):
    long = " ".join(["tea"] * 400)  # the tiny model's context is 256 tokens
    body = chat_body(messages=[{"role": "user", "content": long}])
    _err(await client.post(CHAT, json=body), 400, "messages", "context_length_exceeded")


async def test_body_over_the_byte_limit_is_413(client):
    body = chat_body(messages=[{"role": "user", "content": "x" * 1_200_000}])
    _err(await client.post(CHAT, json=body), 413, code="request_too_large")


async def test_unknown_model_is_404(client):
    _err(await client.post(CHAT, json=chat_body(model="gpt-17")), 404, "model", "model_not_found")


async def test_unknown_route_and_method_are_shaped_errors(client):
    _err(await client.get("/v1/nothing"), 404)
    _err(await client.get(CHAT), 405)


@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer nonsense", "Basic abc", "Bearer a.b"])
async def test_missing_or_wrong_session_is_401(client, auth):
    h = {"Idempotency-Key": "k"} | ({"Authorization": auth} if auth else {})
    r = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
    _err(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_tampered_session_token_is_401(client):
    h = await login(client)
    token = h["Authorization"].split()[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = await client.get("/v1/orders/ord_x", headers={"Authorization": f"Bearer {forged}"})
    _err(r, 401, code="invalid_token")


async def test_agent_command_needs_an_idempotency_key_and_a_command(client):
    h = await login(client)
    _err(await client.post("/v1/agent/commands", json={"command": "buy tea"}, headers=h), 400, "Idempotency-Key")
    h = h | {"Idempotency-Key": "k"}
    _err(await client.post("/v1/agent/commands", json={"command": ""}, headers=h), 400, "command")
    _err(await client.post("/v1/agent/commands", json={"command": 7}, headers=h), 400, "command")
    _err(await client.post("/v1/agent/commands", json={"cmd": "x"}, headers=h), 400)


@pytest.mark.parametrize("body", [{}, {"username": ""}, {"username": 5}, {"username": "a", "role": "admin"}])
async def test_bad_login_bodies_are_400(client, body):
    _err(await client.post("/v1/auth/login", json=body), 400)


@pytest.mark.parametrize(("header", "value", "status"), [
    ("X-Request-Timeout", "soon", 400), ("X-Request-Timeout", "-1", 400), ("X-Request-Timeout", "nan", 400),
    ("X-Request-Deadline", "1", 504),
])
async def test_bad_or_past_deadlines(client, header, value, status):
    _err(await client.post(CHAT, json=chat_body(), headers={header: value}), status)


@pytest.mark.parametrize("fault", [
    {"kind": "meteor", "target": "llm", "duration_s": 1},
    {"kind": "outage", "target": "llm", "duration_s": -1},
    {"kind": "error_rate", "target": "payment", "magnitude": 2, "duration_s": 1},
    {"kind": "session_invalidation", "target": "llm", "duration_s": 1},
    {"kind": "outage", "target": "llm"},
])
async def test_bad_faults_are_400(client, fault):
    _err(await client.post("/admin/faults", json=fault, headers={"Authorization": "Bearer test-admin"}), 400)


# -- text that is not Unicode: a lone surrogate is legal JSON and no UTF-8 encoder takes it -------
LONE = '"x\\ud800y"'  # the JSON escape, as a hostile client sends it
PAIR = '"x\\ud83d\\ude00y"'  # a surrogate pair is a real character (an emoji): fine


def _chat_raw(messages: str, **extra: str) -> bytes:
    rest = "".join(f', "{k}": {v}' for k, v in extra.items())
    return f'{{"model": "surge-tiny", "max_tokens": 2, "messages": {messages}{rest}}}'.encode()


@pytest.mark.parametrize("stream", ["false", "true"])
@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant", "tool"])
async def test_lone_surrogate_in_chat_content_is_400(client, role, stream):
    """Regression: HTTP 500 (UnicodeEncodeError in the tokenizer)."""
    raw = _chat_raw(f'[{{"role": "{role}", "content": {LONE}}}]', stream=stream)
    e = _err(await client.post(CHAT, content=raw, headers={"content-type": "application/json"}), 400,
             "messages.0.content")
    assert "surrogate" in e["message"]


@pytest.mark.parametrize(("raw", "param"), [
    (_chat_raw(f'[{{"role": "user", "content": [{{"type": "text", "text": {LONE}}}]}}]'), "messages.0.content.0.text"),
    (f'{{"model": {LONE}, "messages": [{{"role": "user", "content": "hi"}}]}}'.encode(), "model"),
])
async def test_lone_surrogate_elsewhere_in_chat_is_400(client, raw, param):
    _err(await client.post(CHAT, content=raw, headers={"content-type": "application/json"}), 400, param)


async def test_lone_surrogates_where_chat_ignores_them_are_harmless(client):
    raw = _chat_raw(f'[{{"role": "user", "content": {PAIR}, "name": {LONE}}}]', user=LONE)
    r = await client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


async def test_lone_surrogate_in_an_unknown_key_is_400(client):
    raw = _chat_raw('[{"role": "user", "content": "hi"}]', **{"x\\ud800": "1"})
    _err(await client.post(CHAT, content=raw, headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_lone_surrogate_in_an_agent_command_is_400(client, stream):
    h = await login(client) | {"Idempotency-Key": "s1", "content-type": "application/json"}
    raw = f'{{"command": {LONE}, "stream": {stream}}}'.encode()
    _err(await client.post("/v1/agent/commands", content=raw, headers=h), 400, "command")


@pytest.mark.parametrize(("raw", "status"), [
    (f'{{"username": {LONE}, "password": "p"}}', 400), (f'{{"username": "a", "password": {LONE}}}', 400),
    (f'{{"username": "a", "password": "p", {LONE}: 1}}', 400), (f'{{"command": "x", {LONE}: 1}}', 400),
])
async def test_lone_surrogates_in_names_and_logins_are_4xx_never_500(client, raw, status):
    path = "/v1/auth/login" if "username" in raw else "/v1/agent/commands"
    h = (await login(client) if "command" in raw else {}) | {"Idempotency-Key": "s2", "content-type": "application/json"}
    r = await client.post(path, content=raw.encode(), headers=h)
    _err(r, status)


@pytest.mark.parametrize("order_id", ["%ED%A0%80", "%FF", "%00", "x" * 64])
async def test_odd_order_ids_are_404(client, order_id):
    h = await login(client)
    _err(await client.get(f"/v1/orders/{order_id}", headers=h), 404)
