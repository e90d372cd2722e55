"""The endpoints, in-process through httpx.ASGITransport."""

from __future__ import annotations

import asyncio
import json

import pytest
from stack_helpers import ADMIN, chat_body, credentials, login, running, tiny_config

pytestmark = pytest.mark.anyio


async def test_login_gives_a_session_that_orders_accept(client):
    r = await client.post("/v1/auth/login", json=credentials("bob"))
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] > 0 and body["token_type"] == "bearer" and body["user"] == "bob"
    h = {"Authorization": f"Bearer {body['token']}", "Idempotency-Key": "a1"}
    r = await client.post("/v1/agent/commands", json={"command": "help me buy a mango fruit tea"}, headers=h)
    assert r.status_code == 200, r.text
    order = r.json()["order"]
    assert order["status"] == "completed" and order["item"] == "mango fruit tea" and order["payment_id"]
    assert r.json()["usage"]["total_tokens"] > 0
    got = await client.get(f"/v1/orders/{order['id']}", headers=h)
    assert got.status_code == 200 and got.json()["id"] == order["id"]


async def test_chat_completion_non_streaming_reports_usage(client):
    r = await client.post("/v1/chat/completions", json=chat_body(max_tokens=7))
    assert r.status_code == 200
    b = r.json()
    assert b["object"] == "chat.completion" and b["choices"][0]["finish_reason"] == "length"
    assert b["usage"]["completion_tokens"] == 7 and len(b["choices"][0]["message"]["content"].split()) == 7
    assert b["usage"]["total_tokens"] == b["usage"]["prompt_tokens"] + 7


async def test_chat_completion_streams_sse_ending_with_done(client):
    body = chat_body(max_tokens=5, stream=True, stream_options={"include_usage": True})
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln async for ln in r.aiter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([p for p in pieces if p]) == 5
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_models_lists_the_served_model(client):
    r = await client.get("/v1/models")
    assert [m["id"] for m in r.json()["data"]] == ["surge-tiny"]


async def test_retried_command_returns_the_original_order(client):
    h = await login(client) | {"Idempotency-Key": "same"}
    first = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
    again = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order"] == first.json()["order"]
    other = await client.post("/v1/agent/commands", json={"command": "buy a latte"}, headers=h)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


async def test_retry_while_first_attempt_runs_is_a_second_attempt_on_the_same_order(tmp_path):
    """As in the simulator, a retry is a new attempt that costs capacity (no 409), and the order
    is still placed once, paid once and answered once."""
    slow = "services.tools.payment.latency={type: constant, value: 0.3}"
    async with running(tiny_config(tmp_path, slow)) as client:
        h = await login(client) | {"Idempotency-Key": "k"}
        body = {"command": "help me buy a milk tea"}
        first = asyncio.create_task(client.post("/v1/agent/commands", json=body, headers=h))
        await asyncio.sleep(0.1)
        second = await client.post("/v1/agent/commands", json=body, headers=h)
        one = await first
        assert one.status_code == 200 and second.status_code == 200
        assert second.json()["order"]["id"] == one.json()["order"]["id"]
        assert second.json()["answer"] == one.json()["answer"]  # the first to finish stored it
        assert second.json()["timing"]["llm_calls"]  # the retry ran its own LLM stages
        counts = await client.app.state.stack.store.counts()  # type: ignore[attr-defined]
        assert counts == {"completed": 1, "payments": 1}
        assert second.json()["order"]["attempts"] == 2


async def test_agent_streams_progress_then_result(client):
    h = await login(client) | {"Idempotency-Key": "s1"}
    async with client.stream("POST", "/v1/agent/commands", json={"command": "help me buy a boba", "stream": True},
                             headers=h) as r:
        text = "".join([t async for t in r.aiter_text()])
    events = [blk.split("\n")[0] for blk in text.strip().split("\n\n")]
    assert "event: progress" in events and events[-2] == "event: result" and events[-1] == "data: [DONE]"


async def test_orders_of_other_users_are_not_visible(client):
    h = await login(client, "alice") | {"Idempotency-Key": "x"}
    r = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
    oid = r.json()["order"]["id"]
    other = await login(client, "mallory")
    r = await client.get(f"/v1/orders/{oid}", headers=other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "order_not_found"


async def test_faults_need_the_admin_token_and_expire(client):
    fault = {"kind": "slowdown", "target": "llm", "magnitude": 2.0, "duration_s": 0.3}
    assert (await client.post("/admin/faults", json=fault)).status_code == 401
    assert (await client.post("/admin/faults", json=fault, headers={"Authorization": "Bearer nope"})).status_code == 401
    r = await client.post("/admin/faults", json=fault, headers=ADMIN)
    assert r.status_code == 201 and r.json()["ends_at"] > r.json()["starts_at"]
    assert len((await client.get("/admin/faults", headers=ADMIN)).json()["faults"]) == 1
    await asyncio.sleep(0.35)
    assert (await client.get("/admin/faults", headers=ADMIN)).json()["faults"] == []
    r = await client.post("/admin/faults", json=fault | {"target": "nowhere"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "target"


async def test_session_invalidation_sends_users_back_to_login(client):
    h = await login(client) | {"Idempotency-Key": "i1"}
    await asyncio.sleep(0.01)
    r = await client.post("/admin/faults", json={"kind": "session_invalidation", "target": "auth",
                                                 "duration_s": 1}, headers=ADMIN)
    assert r.status_code == 201
    r = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    h = await login(client) | {"Idempotency-Key": "i1"}
    assert (await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"},
                              headers=h)).status_code == 200


async def test_replicas_down_answer_503_and_readyz_reports_it(client):
    r = await client.post("/admin/faults", json={"kind": "capacity_loss", "target": "llm", "magnitude": 0.5,
                                                 "duration_s": 5}, headers=ADMIN)
    assert r.status_code == 201
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["replicas_up"] == 1
    assert (await client.post("/v1/chat/completions", json=chat_body())).status_code == 200
    await client.post("/admin/faults", json={"kind": "outage", "target": "llm", "duration_s": 5}, headers=ADMIN)
    r = await client.post("/v1/chat/completions", json=chat_body())
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert (await client.get("/readyz")).status_code == 503
    assert (await client.delete("/admin/faults", headers=ADMIN)).json()["cleared"] == 2
    assert (await client.get("/readyz")).status_code == 200


async def test_metrics_expose_the_promised_series(client):
    await client.post("/v1/chat/completions", json=chat_body())
    await client.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    text = (await client.get("/metrics")).text
    for series in ('surge_http_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0',
                   'surge_http_requests_total{method="POST",route="/v1/chat/completions",status="400"} 1.0',
                   "surge_http_request_duration_seconds_bucket", "surge_gateway_queue_depth",
                   "surge_llm_batch_sequences_bucket", "surge_llm_kv_used_ratio", "vllm:generation_tokens_total",
                   "surge_llm_replicas_up 2.0", "vllm:time_to_first_token_seconds_bucket",
                   'vllm:num_requests_running{model_name="surge-tiny",replica="0"}', "vllm:kv_cache_usage_perc",
                   "# TYPE vllm:num_preemptions_total counter", 'surge_service_queue_depth{service="catalog"}'):
        assert series in text, series
