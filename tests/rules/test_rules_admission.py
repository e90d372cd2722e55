"""Admission (`sim.rules.admission`): the rule as documented, and parity — the same script of
arrivals, releases and capacity changes through the simulator's `Pool` (SimPy events) and the
stack's `Admission` (asyncio futures) gives the same grants, sheds, evictions and expiries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.stack.overload import Admission, Rejected
from sim.des.pool import GRANTED, Pool
from sim.rules.admission import AdaptiveLifo, AdmissionQueue

# (queue settings, script). Script steps: ("arrive", name, priority, deadline_s), ("release",),
# ("capacity", n), ("wait", seconds). Deadlines are seconds from the start of the script.
CASES: list[tuple[dict[str, Any], list[tuple[Any, ...]]]] = [
    ({"capacity": 1, "queue_limit": 2}, [  # FIFO, bounded: the third waiter is shed
        ("arrive", "a", 0, 9), ("arrive", "b", 0, 9), ("arrive", "c", 0, 9), ("arrive", "d", 0, 9),
        ("release",), ("release",), ("release",)]),
    ({"capacity": 1, "queue_limit": None, "lifo": True}, [  # LIFO serves the newest first
        ("arrive", "a", 0, 9), ("arrive", "b", 0, 9), ("arrive", "c", 0, 9), ("arrive", "d", 0, 9),
        ("release",), ("release",), ("release",)]),
    ({"capacity": 1, "queue_limit": 2, "priority": True}, [  # a full queue evicts the newest least important
        ("arrive", "x", 1, 9), ("arrive", "c1", 2, 9), ("arrive", "c2", 2, 9), ("arrive", "o1", 0, 9),
        ("arrive", "c3", 2, 9), ("arrive", "o2", 0, 9), ("release",), ("release",), ("release",)]),
    ({"capacity": 1, "queue_limit": 1, "priority": False}, [  # without priorities nobody is evicted
        ("arrive", "x", 1, 9), ("arrive", "c1", 2, 9), ("arrive", "o1", 0, 9), ("release",), ("release",)]),
    ({"capacity": 1, "queue_limit": 5, "deadline_drop": True}, [  # expired waiters leave before grants
        ("arrive", "x", 0, 9), ("arrive", "late", 0, 0.05), ("arrive", "ok", 0, 9), ("wait", 0.15),
        ("release",), ("release",)]),
    ({"capacity": 3, "queue_limit": None}, [  # capacity shrinks (fault) and grows (recovery)
        ("arrive", "a", 0, 9), ("arrive", "b", 0, 9), ("arrive", "c", 0, 9), ("arrive", "d", 0, 9),
        ("capacity", 1), ("release",), ("release",), ("capacity", 3), ("release",)]),
    # adaptive LIFO (interval 0.8 s, target 0.3 s): FIFO while the queue is young (b before x);
    # standing from 0.8 s, when the touch at `due()` drops x and c (waited >= 0.3 s) untouched by
    # the script; then newest first (e before d). Margins >= 40 ms for the stack's wall clock.
    ({"capacity": 1, "queue_limit": None, "adaptive": (0.8, 0.3)}, [
        ("arrive", "a", 0, 9), ("arrive", "b", 0, 9), ("arrive", "x", 0, 9), ("wait", 0.1), ("release",),
        ("wait", 0.2), ("arrive", "c", 0, 9), ("wait", 0.3), ("arrive", "d", 0, 9), ("arrive", "e", 0, 9),
        ("wait", 0.24), ("release",), ("release",)]),
]


def _adaptive(settings: dict[str, Any]) -> AdaptiveLifo | None:
    a = settings.get("adaptive")
    return None if a is None else AdaptiveLifo(*a)


def run_des(settings: dict[str, Any], script: list[tuple[Any, ...]]) -> list[str]:
    env = simpy.Environment()
    pool = Pool(env, "p", settings["capacity"], settings.get("queue_limit"),
                "lifo" if settings.get("lifo") else "fifo", settings.get("priority", False),
                settings.get("deadline_drop", False), _adaptive(settings))
    log: list[str] = []
    for step in script:
        if step[0] == "arrive":
            _, name, prio, deadline = step
            if pool.try_acquire():
                log.append(f"{name}:granted")
                continue
            t = pool.enqueue(prio, deadline)
            if t is None:
                log.append(f"{name}:shed")
            else:
                t.event.callbacks.append(lambda ev, n=name: log.append(f"{n}:{ev.value}"))
        elif step[0] == "release":
            pool.release()
        elif step[0] == "capacity":
            pool.set_capacity(step[1])
        else:
            env.run(until=env.now + step[1])
        env.run(until=env.now + 1e-9)  # let the woken waiters' callbacks run
    return log


async def run_stack(settings: dict[str, Any], script: list[tuple[Any, ...]]) -> list[str]:
    adm = Admission(settings["capacity"], settings.get("queue_limit"), lifo=settings.get("lifo", False),
                    priority=settings.get("priority", False), deadline_drop=settings.get("deadline_drop", False),
                    adaptive=_adaptive(settings))
    log: list[str] = []
    t0 = time.monotonic()

    async def arrive(name: str, prio: int, deadline: float) -> None:
        try:
            await adm.acquire(prio, t0 + deadline)
            log.append(f"{name}:granted")
        except Rejected as r:
            log.append(f"{name}:{ {'queue_full': 'shed', 'deadline': 'expired'}.get(r.reason, r.reason) }")

    tasks = []
    for step in script:
        if step[0] == "arrive":
            tasks.append(asyncio.create_task(arrive(*step[1:])))
        elif step[0] == "release":
            adm.release()
        elif step[0] == "capacity":
            adm.set_capacity(step[1])
        else:
            await asyncio.sleep(step[1])
        for _ in range(5):
            await asyncio.sleep(0)
    for t in tasks:
        if not t.done():
            t.cancel()
    return log


@pytest.mark.parametrize(("settings", "script"), CASES)
def test_simulator_and_stack_queue_alike(settings: dict[str, Any], script: list[tuple[Any, ...]]) -> None:
    des = run_des(settings, script)
    stack = asyncio.run(run_stack(settings, script))
    assert des == stack
    assert des  # the script did something
    if "adaptive" in settings:  # the documented outcome, not only agreement
        assert des == ["a:granted", "b:granted", "x:stale", "c:stale", "e:granted", "d:granted"]


def test_the_rule_as_documented() -> None:
    granted: list[str] = []
    dropped: list[tuple[str, str]] = []
    q: AdmissionQueue[str] = AdmissionQueue(1, 2, priority=True, grant=lambda x, w: granted.append(x),
                                            drop=lambda x, why: dropped.append((x, why)))
    assert q.try_enter()
    assert q.offer("chat1", 2, 9, 0) and q.offer("chat2", 2, 9, 0)
    assert q.offer("order", 0, 9, 0) is not None and dropped == [("chat2", "evicted")]
    assert q.offer("chat3", 2, 9, 0) is None and q.shed == 1  # nobody less important than chat3 to evict
    q.release(1.0)
    q.release(2.0)
    assert granted == ["order", "chat1"] and q.waiting == 0 and q.in_use == 1
    assert q.waiters() == []
    assert (q.evicted, q.expired) == (1, 0) and GRANTED == "granted"


# -- refuse: the decision offer makes, asked before any work is done for an arrival -------------
_OPS = st.lists(st.tuples(st.sampled_from(["arrive", "release", "leave", "capacity"]), st.integers(0, 3)),
                max_size=30)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, capacity=st.integers(0, 3), limit=st.one_of(st.none(), st.integers(0, 3)),
       priority=st.booleans(), lifo=st.booleans(), probe=st.integers(0, 3))
def test_refuse_is_exactly_offers_shedding_decision(ops, capacity, limit, priority, lifo, probe) -> None:
    """For any state of the queue, `refuse(p)` is True exactly when `offer(p)` would shed."""
    def build() -> tuple[AdmissionQueue[int], list[Any]]:
        q: AdmissionQueue[int] = AdmissionQueue(capacity, limit, lifo=lifo, priority=priority,
                                                grant=lambda i, w: None, drop=lambda i, why: None)
        waiters: list[Any] = []
        for i, (op, n) in enumerate(ops):
            if op == "arrive" and not q.try_enter():
                w = q.offer(i, n, 1e9, 0.0)
                if w is not None:
                    waiters.append(w)
            elif op == "release" and q.in_use:
                q.release(0.0)
            elif op == "leave" and waiters:
                q.leave(waiters.pop(n % len(waiters)))
            elif op == "capacity":
                q.set_capacity(n, 0.0)
        return q, waiters

    asked, _ = build()
    offered, _ = build()
    refused = asked.refuse(probe, 0.0)
    shed = not offered.try_enter() and offered.offer(-1, probe, 1e9, 0.0) is None
    assert refused == shed
    assert asked.shed == offered.shed
