"""The official `openai` client works unchanged, against a real uvicorn on loopback; the
`openai` backend forwards the same gateway to another OpenAI-compatible server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from stack_helpers import credentials, login, running, tiny_config

from loadtest.stack import create_app

pytestmark = pytest.mark.anyio
MSGS = [{"role": "system", "content": "you sell tea"}, {"role": "user", "content": "help me buy a milk tea"}]


def test_openai_client_against_real_server(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0)
    assert [m.id for m in client.models.list()] == ["surge-tiny"]

    done = client.chat.completions.create(model="surge-tiny", messages=MSGS, max_tokens=6)
    assert done.choices[0].finish_reason == "length"
    assert done.usage.completion_tokens == 6 and len(done.choices[0].message.content.split()) == 6

    stream = client.chat.completions.create(model="surge-tiny", messages=MSGS, max_tokens=5, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5 and chunks[-1].usage.completion_tokens == 5

    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=MSGS)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="surge-tiny", messages=MSGS, max_tokens=100_000)


def test_real_server_serves_an_order_and_metrics(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        tok = c.post("/v1/auth/login", json=credentials("ann")).json()["token"]
        r = c.post("/v1/agent/commands", json={"command": "help me buy a matcha latte"},
                   headers={"Authorization": f"Bearer {tok}", "Idempotency-Key": "m1"})
        assert r.status_code == 200 and r.json()["order"]["item"] == "matcha latte"
        assert "surge_orders_total" in c.get("/metrics").text
        assert c.get("/openapi.json").json()["info"]["title"] == "surge reference stack"


async def test_async_openai_client_in_process(client):
    oa = openai.AsyncOpenAI(base_url="http://stack/v1", api_key="k", http_client=client, max_retries=0)
    r = await oa.chat.completions.create(model="surge-tiny", messages=MSGS, max_tokens=3)
    assert r.usage.completion_tokens == 3
    stream = await oa.chat.completions.create(model="surge-tiny", messages=MSGS, max_tokens=3, stream=True)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 3


async def test_openai_backend_forwards_to_an_upstream_server(tmp_path):
    (tmp_path / "up").mkdir()
    async with running(tiny_config(tmp_path / "up")) as upstream:
        transport = httpx.ASGITransport(app=upstream.app)
        cfg = tiny_config(tmp_path, "services.llm.backend={type: openai, base_url: 'http://upstream/v1', model: surge-tiny}")
        app = create_app(cfg.scenario, cfg.options, llm_transport=transport)
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as gw:
                r = await gw.post("/v1/chat/completions", json={"model": "surge-tiny", "messages": MSGS,
                                                                "max_tokens": 4})
                assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
                h = await login(gw) | {"Idempotency-Key": "fwd"}
                r = await gw.post("/v1/agent/commands", json={"command": "help me buy a milk tea"}, headers=h)
                assert r.status_code == 200 and r.json()["order"]["status"] == "completed"
        assert 'route="/v1/chat/completions",status="200"' in (await upstream.get("/metrics")).text


async def test_text_completions_stream_and_not(client) -> None:
    body = {"model": "surge-tiny", "prompt": "help me buy a milk tea", "max_tokens": 5}
    r = await client.post("/v1/completions", json=body)
    assert r.status_code == 200 and r.json()["object"] == "text_completion"
    assert r.json()["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}  # BOS + 6 words
    async with client.stream("POST", "/v1/completions", json=body | {"stream": True,
                                                                      "stream_options": {"include_usage": True}}) as s:
        lines = [line async for line in s.aiter_lines() if line.startswith("data:")]
    pieces = [json.loads(x[5:]) for x in lines[:-1]]
    assert sum(1 for p in pieces if p["choices"] and p["choices"][0]["text"]) == 5 and lines[-1] == "data: [DONE]"
    assert pieces[-1]["usage"]["completion_tokens"] == 5
    bad = await client.post("/v1/completions", json=body | {"max_tokens": "5"})
    assert bad.status_code == 400
