"""Overload behaviour: 429 and 503 with Retry-After, deadlines drop work, orders before chat,
circuit breakers fail fast."""

from __future__ import annotations

import asyncio
import time

import pytest
from stack_helpers import chat_body, credentials, login, running, tiny_config

from loadtest.stack.overload import Admission, Rejected
from sim.rules.admission import AdaptiveLifo

pytestmark = pytest.mark.anyio
SLOW_LLM = {"kind": "slowdown", "target": "llm", "magnitude": 400.0, "duration_s": 30}
ADMIN = {"Authorization": "Bearer test-admin"}
# the stack acts on a client's deadline when the scenario's servers learn of timeouts
CANCEL = ("clients.timeout_s=5", "clients.cancel_on_timeout=true")


async def test_admission_serves_by_priority_then_fifo_or_lifo():
    for discipline, expected in (("fifo", ["a0", "a1", "c0", "c1"]), ("lifo", ["a1", "a0", "c1", "c0"])):
        adm = Admission(1, queue_limit=10, lifo=discipline == "lifo", priority=True)
        await adm.acquire()
        order: list[str] = []

        async def wait(adm: Admission, order: list[str], name: str, prio: int) -> None:
            await adm.acquire(prio)
            order.append(name)
            adm.release()

        tasks = []
        for name, prio in (("c0", 1), ("a0", 0), ("c1", 1), ("a1", 0)):
            tasks.append(asyncio.create_task(wait(adm, order, name, prio)))
            await asyncio.sleep(0)
        adm.release()
        await asyncio.gather(*tasks)
        assert order == expected, discipline


async def test_full_queue_evicts_less_important_work_for_orders():
    adm = Admission(1, queue_limit=1, priority=True)
    await adm.acquire()
    chat = asyncio.create_task(adm.acquire(priority=1))
    await asyncio.sleep(0)
    order = asyncio.create_task(adm.acquire(priority=0))
    await asyncio.sleep(0)
    with pytest.raises(Rejected, match="evicted"):
        await chat
    with pytest.raises(Rejected, match="queue_full"):
        await adm.acquire(priority=1)
    adm.release()
    await order
    assert adm.in_use == 1 and adm.waiting == 0


async def test_deadline_drops_queued_work():
    adm = Admission(1, queue_limit=5, deadline_drop=True)
    await adm.acquire()
    t0 = time.monotonic()
    with pytest.raises(Rejected, match="deadline"):
        await adm.acquire(deadline=time.monotonic() + 0.05)
    assert time.monotonic() - t0 < 0.5 and adm.waiting == 0


async def test_adaptive_lifo_fails_a_stale_waiter_fast_with_nothing_else_happening():
    """The stack's timer at the rule's `due()`: no arrival or release touches the queue, yet the
    waiter is refused once the queue has stood 50 ms (it had waited its 20 ms target by then)."""
    adm = Admission(1, queue_limit=10, adaptive=AdaptiveLifo(0.05, 0.02))
    await adm.acquire()
    t0 = time.monotonic()
    with pytest.raises(Rejected, match="stale"):
        await adm.acquire()
    assert 0.05 <= time.monotonic() - t0 < 0.5 and adm.waiting == 0 and adm.q.stale == 1


async def test_rate_limits_answer_429_with_retry_after(tmp_path):
    cfg = tiny_config(tmp_path, "services.gateway.rate_limit={per_user_per_s: 0.5, per_user_burst: 2}")
    async with running(cfg) as client:
        codes = [(await client.post("/v1/auth/login", json=credentials("eve"))).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = await client.post("/v1/auth/login", json=credentials("eve"))
        assert r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["Retry-After"]) >= 1
        assert (await client.post("/v1/auth/login", json=credentials("other"))).status_code == 200


async def test_global_rate_limit(tmp_path):
    async with running(tiny_config(tmp_path, "services.gateway.rate_limit={global_per_s: 1.0, burst: 2}")) as client:
        codes = [(await client.post("/v1/auth/login", json=credentials(f"u{i}"))).status_code for i in range(4)]
        assert codes.count(429) == 2


async def test_full_admission_queue_answers_503_with_retry_after(tmp_path):
    async with running(tiny_config(tmp_path, "services.gateway.concurrency=1", "services.gateway.queue_limit=1",
                                   *CANCEL)) as client:
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        slow = [asyncio.create_task(client.post("/v1/chat/completions", json=chat_body(max_tokens=50),
                                                headers={"X-Request-Timeout": "2"})) for _ in range(2)]
        await asyncio.sleep(0.2)
        r = await client.post("/v1/chat/completions", json=chat_body())
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
        assert int(r.headers["Retry-After"]) >= 1
        # The admitted one runs out of time inside the engine; the queued one while waiting.
        assert sorted(t.status_code for t in await asyncio.gather(*slow)) == [504, 504]


async def test_deadline_stops_generation_and_frees_the_engine(tmp_path):
    async with running(tiny_config(tmp_path, *CANCEL)) as client:
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        t0 = time.monotonic()
        r = await client.post("/v1/chat/completions", json=chat_body(max_tokens=200), headers={"X-Request-Timeout": "0.3"})
        assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
        assert time.monotonic() - t0 < 3
        engines = client.app.state.stack.llm.engines
        await asyncio.sleep(0.3)
        assert all(e.load == 0 and e.kv_used_tokens == 0 for e in engines)


async def test_breaker_opens_on_tool_errors_and_fails_fast(tmp_path):
    breaker = "services.tools.payment.circuit_breaker={failure_threshold: 2, open_s: 30}"
    async with running(tiny_config(tmp_path, breaker)) as client:
        h = await login(client)
        await client.post("/admin/faults", json={"kind": "error_rate", "target": "payment", "magnitude": 1.0,
                                                 "duration_s": 30}, headers=ADMIN)
        codes = []
        for i in range(3):
            r = await client.post("/v1/agent/commands", json={"command": "help me buy a milk tea"},
                                  headers=h | {"Idempotency-Key": f"b{i}"})
            codes.append(r.json()["error"]["code"])
        assert codes == ["payment_error", "payment_error", "payment_breaker_open"]
        assert (await client.get("/readyz")).json()["breakers"]["payment"] == "open"


async def test_a_cancelled_waiter_leaves_the_queue_and_never_holds_a_slot():
    """Regression: cancelling a request waiting for admission cancelled its future, which then
    stayed queued; the grant it later got held the slot for good."""
    adm = Admission(1, queue_limit=5)
    await adm.acquire()
    waiter = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    assert adm.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert adm.waiting == 0
    adm.release()
    assert adm.in_use == 0
    # cancelled in the same tick as the grant: the slot goes straight back
    await adm.acquire()
    late = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    adm.release()  # grants `late`
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    await asyncio.sleep(0)
    assert adm.in_use == 0 and adm.waiting == 0
