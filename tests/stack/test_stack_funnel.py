"""The buy funnel on the reference stack: a command told its outcome (`outcome`, sim.funnel) runs
only that outcome's stages, ends unpaid unless ordered, and says so; payment errors from the
funnel and from the payment service leave no paid order, and retries never pay twice."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from stack_helpers import ADMIN, credentials, login, running, tiny_config

pytestmark = pytest.mark.anyio

FUNNEL = "workload.classes.help_me_buy.funnel={convert_with_card: 0.5, convert_without_card: 0.5}"
RETRY = {409, 429, 502, 503, 504}
# TINY's help_me_buy: llm, catalog, order, payment, llm. Per outcome: (tools called, LLM calls).
RUNS = {
    "ordered": (["catalog", "order", "payment"], 2),
    "changed_mind": (["catalog"], 1),
    "no_card": (["catalog"], 1),
    "out_of_stock": (["catalog", "order"], 1),
    "payment_error": (["catalog", "order", "payment"], 1),
}


def tool_calls(metrics: str) -> dict[str, float]:
    """Calls per tool so far, from `surge_tool_calls_total` (any outcome)."""
    out: dict[str, float] = {}
    for m in re.finditer(r'^surge_tool_calls_total\{([^}]*)\} ([0-9.e+]+)$', metrics, re.M):
        tool = re.search(r'tool="([^"]+)"', m.group(1))
        assert tool is not None
        out[tool.group(1)] = out.get(tool.group(1), 0.0) + float(m.group(2))
    return out


def ledger(db: Path) -> tuple[dict[str, tuple[str, str, str | None]], dict[str, int]]:
    """Orders by (user/key): (id, status, payment_id); payment rows per order id."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT user_id, idempotency_key, id, status, payment_id FROM orders").fetchall()
        paid = dict(con.execute("SELECT order_id, COUNT(*) FROM payments GROUP BY order_id").fetchall())
    finally:
        con.close()
    return {f"{u}/{k}": (i, s, p) for u, k, i, s, p in rows}, paid


async def test_each_outcome_runs_its_stages_and_only_ordered_is_paid(tmp_path: Path) -> None:
    async with running(tiny_config(tmp_path, FUNNEL)) as client:
        h = await login(client)
        for outcome, (tools, llm_calls) in RUNS.items():
            before = tool_calls((await client.get("/metrics")).text)
            hk = h | {"Idempotency-Key": f"k-{outcome}"}
            body = {"command": "help me buy a milk tea", "outcome": outcome}
            r = await client.post("/v1/agent/commands", json=body, headers=hk)
            assert r.status_code == 200, r.text
            res = r.json()
            after = tool_calls((await client.get("/metrics")).text)
            ran = sorted(t for t in after if after[t] > before.get(t, 0.0))
            assert ran == sorted(tools), outcome
            assert len(res["timing"]["llm_calls"]) == llm_calls, outcome
            assert res["outcome"] == outcome
            order = res["order"]
            assert order["status"] == ("completed" if outcome == "ordered" else outcome)
            assert (order["payment_id"] is not None) == (outcome == "ordered")
            again = await client.post("/v1/agent/commands", json=body, headers=hk)  # a retry replays it
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.json()["outcome"] == outcome and again.json()["order"]["id"] == order["id"]
    orders, paid = ledger(tmp_path / "orders.db")
    assert {s for _, s, _ in orders.values()} == {"completed", "changed_mind", "no_card", "out_of_stock",
                                                  "payment_error"}
    assert list(paid.values()) == [1] and orders["alice/k-ordered"][0] in paid


async def test_bad_outcomes_are_400_naming_the_field(tmp_path: Path) -> None:
    async with running(tiny_config(tmp_path, FUNNEL)) as client:
        h = await login(client) | {"Idempotency-Key": "b1"}
        r = await client.post("/v1/agent/commands", json={"command": "buy", "outcome": "maybe"}, headers=h)
        assert r.status_code == 400 and r.json()["error"]["param"] == "outcome", r.text
        r = await client.post("/v1/agent/commands", json={"command": "hi", "class": "chat", "outcome": "ordered"},
                              headers=h)
        assert r.status_code == 400 and r.json()["error"]["param"] == "outcome", r.text
        assert "has no funnel" in r.json()["error"]["message"]
        ok = await client.post("/v1/agent/commands", json={"command": "buy", "outcome": "no_card"}, headers=h)
        assert ok.status_code == 200, ok.text
        other = await client.post("/v1/agent/commands", json={"command": "buy", "outcome": "ordered"}, headers=h)
        assert other.status_code == 422  # the same key with another outcome is another command
    (tmp_path / "plain").mkdir()
    async with running(tiny_config(tmp_path / "plain")) as client:  # no funnel: no such field
        h = await login(client) | {"Idempotency-Key": "b2"}
        r = await client.post("/v1/agent/commands", json={"command": "buy", "outcome": "ordered"}, headers=h)
        assert r.status_code == 400 and r.json()["error"]["param"] == "outcome", r.text
        assert "outcome" not in (await client.get("/openapi.json")).json()["components"]["schemas"]["AgentCommand"][
            "properties"]


async def buy_with_retries(client: httpx.AsyncClient, user: str, key: str, outcome: str) -> dict:
    """A well-behaved client: the same key and outcome on every attempt, log in again on 401,
    back off on overload; returns the acknowledged result."""
    token, end = None, time.monotonic() + 60.0
    while time.monotonic() < end:
        if token is None:
            r = await client.post("/v1/auth/login", json=credentials(user))
            if r.status_code != 200:
                await asyncio.sleep(0.05)
                continue
            token = r.json()["token"]
        r = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea", "outcome": outcome},
                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
        if r.status_code == 200:
            return dict(r.json())
        if r.status_code == 401:
            token = None
        elif r.status_code not in RETRY:
            raise AssertionError(f"unexpected {r.status_code}: {r.text}")
        await asyncio.sleep(0.02)
    raise AssertionError(f"{user}/{key} never acknowledged")


async def test_payment_errors_leave_no_paid_order_and_retries_never_pay_twice(tmp_path: Path) -> None:
    """Half the payment service's errors strike after the charge (the answer is lost): the
    client retries the same key, two clients race on some keys; funnel payment errors charge
    nothing, ordered commands are charged exactly once."""
    tool = "{latency: {type: exponential, mean: 0.005}, error_rate: 0.3}"
    cfg = tiny_config(tmp_path, FUNNEL, *(f"services.tools.{t}={tool}" for t in ("order", "payment")))
    outcomes = ["ordered", "payment_error", "out_of_stock", "ordered", "changed_mind"]
    jobs = [(f"user{i % 5}", f"cmd-{i}", outcomes[i % len(outcomes)]) for i in range(30)]
    async with running(cfg) as client:
        fault = {"kind": "error_rate", "target": "payment", "magnitude": 0.3, "duration_s": 1.0}
        assert (await client.post("/admin/faults", json=fault, headers=ADMIN)).status_code == 201
        results = await asyncio.gather(*(buy_with_retries(client, u, k, o) for u, k, o in jobs + jobs[:10]))
    orders, paid = ledger(tmp_path / "orders.db")
    assert len(orders) == len(jobs), "one key, one order"
    assert all(n == 1 for n in paid.values()), "an order was paid twice"
    for (u, k, o), res in zip(jobs + jobs[:10], results, strict=True):
        oid, status, pid = orders[f"{u}/{k}"]
        assert res["outcome"] == o and res["order"]["id"] == oid
        if o == "ordered":
            assert status == "completed" and paid.get(oid) == 1 and pid == res["order"]["payment_id"]
        else:
            assert status == o and oid not in paid and pid is None, f"{u}/{k} ({o}) was paid"
    assert sum(paid.values()) == sum(1 for _, _, o in jobs if o == "ordered")
    assert max(res["order"]["attempts"] for res in results) > 1, "no order was retried: the test tested nothing"
