"""What the stack tells a load test, so that measurement means what the simulator models:
per-LLM-call timings of agent commands, admission made visible, sessions checked on chat too,
partial session invalidation, and one set of stages per order-placing class."""

from __future__ import annotations

import json

import pytest
from stack_helpers import ADMIN, chat_body, login, running, tiny_config

from loadtest.stack.auth import EXPIRED, FOREIGN, INVALIDATED, VALID, TokenSessions
from loadtest.stack.faults import FaultBoard

pytestmark = pytest.mark.anyio
BUY = {"command": "help me buy a milk tea"}


def _sessions(seed: int, n: int = 400) -> tuple[FaultBoard, TokenSessions, list[str]]:
    clock = [1000.0]
    board = FaultBoard(["auth"], clock=lambda: clock[0])
    s = TokenSessions("secret", 1e9, board, seed)
    tokens = [s.issue(f"u{i}") for i in range(n)]
    clock[0] = 2e12  # after every token's issue time (tokens carry time.time())
    return board, s, tokens


def _lost(s: TokenSessions, tokens: list[str]) -> set[int]:
    return {i for i, t in enumerate(tokens) if s.inspect(t)[1] == INVALIDATED}


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_session_invalidation_takes_a_seeded_fraction(fraction: float) -> None:
    board, s, tokens = _sessions(seed=7)
    board.add("session_invalidation", "auth", fraction, 1.0)
    lost = _lost(s, tokens)
    assert abs(len(lost) / len(tokens) - fraction) < 0.08
    # deterministic: the same seed decides alike, whoever asks and however often
    again = TokenSessions("secret", 1e9, board, 7)
    assert _lost(again, tokens) == lost == _lost(s, tokens)
    if 0 < fraction < 1:
        assert _lost(TokenSessions("secret", 1e9, board, 8), tokens) != lost  # another seed, other sessions


def test_invalidations_compound_and_spare_later_sessions() -> None:
    board, s, tokens = _sessions(seed=1)
    board.add("session_invalidation", "auth", 0.5, 1.0)
    first = _lost(s, tokens)
    board.add("session_invalidation", "auth", 0.5, 1.0)
    both = _lost(s, tokens)
    assert first < both and abs(len(both) / len(tokens) - 0.75) < 0.08  # kept with (1 - 0.5)^2
    assert s.inspect("sk-not-ours")[1] == FOREIGN
    past = FaultBoard(["auth"], clock=lambda: 1000.0)  # an invalidation long before any token
    past.add("session_invalidation", "auth", 1.0, 1.0)
    later = TokenSessions("secret", 1e9, past, 1)
    assert later.inspect(later.issue("late"))[1] == VALID
    short = TokenSessions("secret", -1.0, board, 1)
    assert short.inspect(short.issue("x"))[1] == EXPIRED


async def test_chat_checks_a_session_and_takes_other_keys(client) -> None:
    h = await login(client)
    assert (await client.post("/v1/chat/completions", json=chat_body(), headers=h)).status_code == 200
    other = {"Authorization": "Bearer sk-anything"}
    assert (await client.post("/v1/chat/completions", json=chat_body(), headers=other)).status_code == 200
    await client.post("/admin/faults", json={"kind": "session_invalidation", "target": "auth", "magnitude": 1.0,
                                             "duration_s": 1}, headers=ADMIN)
    r = await client.post("/v1/chat/completions", json=chat_body(), headers=h)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    assert r.headers["X-Surge-Admitted"] == "0"
    assert (await client.post("/v1/chat/completions", json=chat_body(), headers=other)).status_code == 200


async def test_chat_can_require_a_session(tmp_path) -> None:
    async with running(tiny_config(tmp_path, chat_requires_session=True)) as client:
        for h in ({}, {"Authorization": "Bearer sk-anything"}):
            r = await client.post("/v1/chat/completions", json=chat_body(), headers=h)
            assert r.status_code == 401, h
        assert (await client.post("/v1/chat/completions", json=chat_body(),
                                  headers=await login(client))).status_code == 200


async def test_answers_say_whether_the_gateway_admitted_them(client) -> None:
    r = await client.post("/v1/chat/completions", json=chat_body())
    assert r.headers["X-Surge-Admitted"] == "1" and "queue;dur=" in ",".join(r.headers.get_list("Server-Timing"))
    h = await login(client) | {"Idempotency-Key": "adm"}
    r = await client.post("/v1/agent/commands", json=BUY, headers=h)
    assert r.status_code == 200 and r.headers["X-Surge-Admitted"] == "1"
    replay = await client.post("/v1/agent/commands", json=BUY, headers=h)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.headers["X-Surge-Admitted"] == "0"
    r = await client.post("/v1/agent/commands", json=BUY, headers={"Idempotency-Key": "x"})
    assert r.status_code == 401 and r.headers["X-Surge-Admitted"] == "0"
    await client.post("/admin/faults", json={"kind": "outage", "target": "llm", "duration_s": 5}, headers=ADMIN)
    r = await client.post("/v1/chat/completions", json=chat_body())  # admitted, then no replica
    assert r.status_code == 503 and r.headers["X-Surge-Admitted"] == "1"
    assert "X-Surge-Admitted" not in (await client.get("/v1/models")).headers


async def test_agent_reports_every_llm_call(client) -> None:
    h = await login(client) | {"Idempotency-Key": "t1"}
    r = await client.post("/v1/agent/commands", json=BUY, headers=h)
    timing = r.json()["timing"]
    calls = timing["llm_calls"]
    assert [c["output_tokens"] for c in calls] == [16, 24]  # the default stages
    assert calls[1]["prompt_tokens"] > calls[0]["prompt_tokens"]  # the context grows
    for c in calls:
        assert 0 < c["ttft_s"] < c["end_s"] <= timing["total_s"] and 0 < c["tpot_s"] < 1
    h["Idempotency-Key"] = "t2"
    async with client.stream("POST", "/v1/agent/commands", json=BUY | {"stream": True}, headers=h) as s:
        text = "".join([t async for t in s.aiter_text()])
    blocks = [b.split("\n") for b in text.strip().split("\n\n")]
    progress = [json.loads(b[1][6:]) for b in blocks if b[0] == "event: progress"]
    timed = [p for p in progress if "llm_call" in p]
    assert [p["stage"] for p in timed] == ["llm_0", "llm_4"] and timed[0]["llm_call"]["output_tokens"] == 16
    result = json.loads(blocks[-2][1][6:])
    assert [c["output_tokens"] for c in result["timing"]["llm_calls"]] == [16, 24]


async def test_agent_runs_the_stages_of_the_named_class(tmp_path) -> None:
    quick = ("workload.classes.quick_buy={probability: 0.1, places_order: true, priority: 2, stages: "
             "[{llm: {prompt_tokens: {type: constant, value: 8}, output_tokens: {type: constant, value: 3}}}, "
             "{tool: catalog}, {tool: order}, {tool: payment}]}")
    async with running(tiny_config(tmp_path, quick, "workload.classes.chat.probability=0.6")) as client:
        h = await login(client) | {"Idempotency-Key": "c1"}
        r = await client.post("/v1/agent/commands", json=BUY | {"class": "quick_buy"}, headers=h)
        assert r.status_code == 200 and [c["output_tokens"] for c in r.json()["timing"]["llm_calls"]] == [3]
        h["Idempotency-Key"] = "c2"
        r = await client.post("/v1/agent/commands", json=BUY, headers=h)  # no class: the most likely buyer
        assert [c["output_tokens"] for c in r.json()["timing"]["llm_calls"]] == [16, 24]
        h["Idempotency-Key"] = "c3"
        r = await client.post("/v1/agent/commands", json=BUY | {"class": "chat"}, headers=h)  # any class
        assert r.status_code == 200 and r.json()["order"] is None
        assert [c["prompt_tokens"] for c in r.json()["timing"]["llm_calls"]] == [16]
        h["Idempotency-Key"] = "c4"
        r = await client.post("/v1/agent/commands", json=BUY | {"class": "nope"}, headers=h)
        assert r.status_code == 400 and r.json()["error"]["param"] == "class"


async def test_prompts_carry_the_simulators_context(tmp_path) -> None:
    """Prompt sizes follow the simulator's rule: context (prompt + output, + tool results) plus
    the stage's new tokens; without carry_context each call sees only its own."""
    grow = "workload.classes.help_me_buy.stages.1={tool: {service: catalog, result_tokens: {type: constant, value: 10}}}"
    async with running(tiny_config(tmp_path, grow)) as client:
        h = await login(client) | {"Idempotency-Key": "p1"}
        calls = (await client.post("/v1/agent/commands", json=BUY, headers=h)).json()["timing"]["llm_calls"]
        assert [c["prompt_tokens"] for c in calls] == [64, 64 + 16 + 10 + 96]
    async with running(tiny_config(tmp_path, "workload.classes.help_me_buy.carry_context=false")) as client:
        h = await login(client) | {"Idempotency-Key": "p2"}
        calls = (await client.post("/v1/agent/commands", json=BUY, headers=h)).json()["timing"]["llm_calls"]
        assert [c["prompt_tokens"] for c in calls] == [64, 96]
