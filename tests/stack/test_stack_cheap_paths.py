"""What must stay cheap under overload (issue 15, overload collapse): liveness answered at the
edge, shed 503s made from the request head alone with minimal headers, engine threads below
the event loop in CPU priority, the event loop's lag observed. The figures are
`benchmarks/bench_overload.py`'s; these tests pin the mechanisms."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import httpx
import pytest
from stack_helpers import chat_body, running, tiny_config

from loadtest.stack.engine import lower_thread_priority
from loadtest.stack.options import OptionsError, StackOptions

pytestmark = pytest.mark.anyio
SLOW_LLM = {"kind": "slowdown", "target": "llm", "magnitude": 400.0, "duration_s": 30}
ADMIN = {"Authorization": "Bearer test-admin"}
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _count(metrics: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))


async def test_healthz_is_answered_at_the_edge_and_counted(tmp_path):
    async with running(tiny_config(tmp_path)) as client:
        r = await client.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert r.headers["content-type"] == "application/json"
        # HEAD too (regression: the FastAPI route alone answered HEAD with 405)
        head = await client.head("/healthz")
        assert head.status_code == 200 and head.content == b""
        m = (await client.get("/metrics")).text
        assert _count(m, 'surge_http_requests_total{method="GET",route="/healthz",status="200"}') == 1
        assert _count(m, 'surge_http_requests_total{method="HEAD",route="/healthz",status="200"}') == 1
        # still documented
        assert "/healthz" in (await client.get("/openapi.json")).json()["paths"]


async def test_healthz_answers_while_the_gateway_sheds(tmp_path):
    cfg = tiny_config(tmp_path, "services.gateway.concurrency=1", "services.gateway.queue_limit=0")
    async with running(cfg) as client:
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        held = asyncio.create_task(client.post("/v1/chat/completions", json=chat_body(max_tokens=50)))
        await asyncio.sleep(0.2)
        shed = await client.post("/v1/chat/completions", json=chat_body(), headers={"X-Surge-Class": "probe"})
        assert shed.status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        held.cancel()


async def test_a_shed_503_is_the_same_minimal_answer_every_time(tmp_path):
    cfg = tiny_config(tmp_path, "services.gateway.concurrency=1", "services.gateway.queue_limit=0")
    async with running(cfg) as client:
        await client.post("/admin/faults", json=SLOW_LLM, headers=ADMIN)
        held = asyncio.create_task(client.post("/v1/chat/completions", json=chat_body(max_tokens=50)))
        await asyncio.sleep(0.2)
        answers = [await client.post("/v1/chat/completions", content=b"{not even json",
                                     headers={"X-Surge-Class": "probe", "Content-Type": "application/json"})
                   for _ in range(3)]
        held.cancel()
    for r in answers:
        # shed from the head alone: the broken body was never read (else 400)
        assert r.status_code == 503 and r.headers["X-Surge-Shed"] == "queue_full"
        assert r.json()["error"] == {"message": "server overloaded, try again later", "type": "overloaded_error",
                                     "param": None, "code": "overloaded"}
        assert sorted(r.headers) == ["content-length", "content-type", "retry-after", "x-surge-admitted",
                                     "x-surge-shed"]
        assert int(r.headers["content-length"]) == len(r.content)
    assert len({(r.content, tuple(r.headers.items())) for r in answers}) == 1


@linux_only
def test_lower_thread_priority_changes_only_the_calling_thread():
    seen: dict[str, int] = {}

    def lowered() -> None:
        assert lower_thread_priority(3)
        seen["tid"] = threading.get_native_id()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, seen["tid"])

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=lowered)
    t.start()
    t.join()
    assert seen["nice"] == min(19, before + 3)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


@linux_only
async def test_engine_threads_run_below_the_event_loop(tmp_path):
    async with running(tiny_config(tmp_path, engine_nice=4)) as client:
        assert (await client.get("/healthz")).status_code == 200
        loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        engines = [t for t in threading.enumerate() if t.name.startswith("llm-replica-")]
        assert engines
        for t in engines:
            assert t.native_id is not None
            assert os.getpriority(os.PRIO_PROCESS, t.native_id) == min(19, loop_nice + 4)


@pytest.mark.parametrize("bad", [-1, 20, True, 2.5, "5"])
def test_engine_nice_must_be_0_to_19(bad):
    with pytest.raises(OptionsError, match=r"'engine_nice' must be an integer from 0 to 19 \(got "):
        StackOptions(engine_nice=bad)


async def test_the_event_loop_lag_is_observed(tmp_path):
    async with running(tiny_config(tmp_path)) as client:
        await asyncio.sleep(0.12)
        time.sleep(0.3)  # blocks the loop on purpose: the watcher must see a late wake-up
        await asyncio.sleep(0.2)
        m = (await client.get("/metrics")).text
    assert _count(m, "surge_event_loop_lag_seconds_count") >= 2
    # the watcher's timer was due at most 50 ms into the 300 ms block: one wake-up >= 250 ms late (> 100 ms)
    assert _count(m, 'surge_event_loop_lag_seconds_bucket{le="0.1"}') < _count(m, "surge_event_loop_lag_seconds_count")


async def test_on_the_wire_answers_carry_no_server_header(server):
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.get("/healthz")
    assert r.status_code == 200 and "server" not in r.headers and r.json() == {"status": "ok"}
