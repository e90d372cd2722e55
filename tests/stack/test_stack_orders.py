"""No lost or duplicated orders: clients retry through faults and through a SIGKILL of the
server; afterwards every acknowledged order exists exactly once and none was paid twice."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from stack_helpers import ADMIN, Server, credentials, running, tiny_config

RETRY = {409, 429, 502, 503, 504}


async def order_with_retries(client: httpx.AsyncClient, user: str, key: str, deadline_s: float = 60.0) -> dict:
    """What a well-behaved client does: same Idempotency-Key on every attempt, log in again
    on 401, back off on overload, retry on connection errors; returns the acknowledged order."""
    token, end = None, time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if token is None:
                r = await client.post("/v1/auth/login", json=credentials(user))
                if r.status_code != 200:
                    await asyncio.sleep(0.05)
                    continue
                token = r.json()["token"]
            r = await client.post("/v1/agent/commands", json={"command": f"help me buy a milk tea for {user}"},
                                  headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key,
                                           "X-Request-Timeout": "5"})
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if r.status_code == 200:
            return r.json()["order"]
        if r.status_code == 401:
            token = None
        elif r.status_code not in RETRY:
            raise AssertionError(f"unexpected {r.status_code}: {r.text}")
        await asyncio.sleep(0.02)
    raise AssertionError(f"{user}/{key} never acknowledged")


def check_ledger(db: Path, acked: dict[tuple[str, str], dict]) -> None:
    con = sqlite3.connect(db)
    try:
        orders = con.execute("SELECT id, user_id, idempotency_key, status, payment_id FROM orders").fetchall()
        payments = con.execute("SELECT order_id, COUNT(*) FROM payments GROUP BY order_id").fetchall()
    finally:
        con.close()
    by_key: dict[tuple[str, str], list] = {}
    for oid, user, key, status, pid in orders:
        by_key.setdefault((user, key), []).append((oid, status, pid))
    paid = dict(payments)
    assert all(n == 1 for n in paid.values()), "an order was paid twice"
    for (user, key), order in acked.items():
        rows = by_key.get((user, key), [])
        assert len(rows) == 1, f"{user}/{key}: {len(rows)} orders"
        oid, status, pid = rows[0]
        assert oid == order["id"] and status == "completed" and pid == order["payment_id"]
        assert paid.get(oid) == 1, f"acknowledged order {oid} has no payment"


@pytest.mark.anyio
async def test_concurrent_retries_under_faults_keep_orders_exactly_once(tmp_path):
    tool = "{latency: {type: exponential, mean: 0.01}, error_rate: 0.1, circuit_breaker: {failure_threshold: 5, open_s: 0.2}}"
    cfg = tiny_config(tmp_path, "services.gateway.concurrency=8", "services.gateway.queue_limit=16",
                      "clients.timeout_s=5", "clients.cancel_on_timeout=true",
                      *(f"services.tools.{t}={tool}" for t in ("catalog", "order", "payment")))
    faults = [
        {"kind": "error_rate", "target": "payment", "magnitude": 0.4, "duration_s": 1.0},
        {"kind": "capacity_loss", "target": "llm", "magnitude": 0.5, "duration_s": 1.0},
        {"kind": "session_invalidation", "target": "auth", "duration_s": 0.1},
        {"kind": "slowdown", "target": "order", "magnitude": 5, "duration_s": 0.5},
        {"kind": "outage", "target": "llm", "duration_s": 0.3},
    ]
    async with running(cfg) as client:
        async def fire() -> None:
            for f in faults:
                assert (await client.post("/admin/faults", json=f, headers=ADMIN)).status_code == 201
                await asyncio.sleep(0.25)

        keys = [(f"user{i % 12}", f"cmd-{i}") for i in range(40)]
        # Two clients race on some keys, as a user double-tapping "buy" would.
        jobs = [order_with_retries(client, u, k) for u, k in keys] + [order_with_retries(client, u, k) for u, k in keys[:8]]
        results, _ = await asyncio.gather(asyncio.gather(*jobs), fire())
    acked = {}
    for (u, k), order in zip(keys + keys[:8], results, strict=True):
        assert acked.setdefault((u, k), order)["id"] == order["id"], "one key, two orders"
    check_ledger(tmp_path / "orders.db", acked)


def test_sigkill_mid_load_then_restart_loses_and_duplicates_nothing(tmp_path):
    slow_tools = [f"services.tools.{t}.latency={{type: constant, value: 0.05}}" for t in ("catalog", "order", "payment")]
    servers = [Server(tmp_path, slow_tools).start()]
    keys = [(f"u{i % 10}", f"k{i}") for i in range(120)]
    clients = asyncio.Semaphore(20)  # 20 users at a time: orders start before and after the kill
    acked_before_kill: list[int] = []

    async def kill_and_restart() -> None:
        await asyncio.sleep(1.0)  # mid-load: some orders done, some in flight
        first = servers[0]
        acked_before_kill.append(done[0])
        first.signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        await asyncio.sleep(0.3)
        second = Server(tmp_path, slow_tools, port=first.port)
        servers.append(second)
        await asyncio.to_thread(second.start)

    done = [0]

    async def one(client: httpx.AsyncClient, user: str, key: str) -> dict:
        async with clients:
            order = await order_with_retries(client, user, key, 90)
            done[0] += 1
            return order

    async def drive() -> list[dict]:
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=10) as client:
            results, _ = await asyncio.gather(asyncio.gather(*[one(client, u, k) for u, k in keys]),
                                              kill_and_restart())
            return results

    try:
        results = asyncio.run(drive())
    finally:
        for s in servers:
            s.stop()
    assert len(servers) == 2
    check_ledger(tmp_path / "orders.db", dict(zip(keys, results, strict=True)))
    con = sqlite3.connect(tmp_path / "orders.db")
    resumed = con.execute("SELECT COUNT(*) FROM orders WHERE attempts > 1").fetchone()[0]
    con.close()
    # The kill really hit mid-load: orders were acknowledged before it, and orders in flight
    # at the kill were taken over by the restarted process.
    assert 0 < acked_before_kill[0] < len(keys) and resumed > 0, (acked_before_kill, resumed)
