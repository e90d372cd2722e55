"""Pool: a server pool whose capacity changes while running, with a bounded queue, FIFO/LIFO,
priorities, deadline drops, cancellation, outages, and the wait/occupancy accounting."""

from __future__ import annotations

import pytest
import simpy

from sim.des.pool import DOWN, EXPIRED, GRANTED, Pool


def _grants(env: simpy.Environment, pool: Pool, tickets: dict) -> list[str]:  # type: ignore[type-arg]
    """Names in the order their tickets were granted (runs the environment)."""
    order: list[str] = []
    for name, t in tickets.items():
        t.event.callbacks.append(lambda ev, name=name: order.append(f"{name}:{ev.value}"))
    env.run()
    return order


def test_fast_path_then_queue_then_shed() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=2, queue_limit=1)
    assert pool.try_acquire() and pool.try_acquire()
    assert not pool.try_acquire()
    t = pool.enqueue()
    assert t is not None and pool.waiting == 1
    assert pool.enqueue() is None  # queue full: shed
    pool.release()
    env.run()
    assert t.event.value == GRANTED and pool.busy == 2 and pool.waiting == 0


@pytest.mark.parametrize("discipline,expected", [("fifo", ["a", "b", "c"]), ("lifo", ["c", "b", "a"])])
def test_fifo_and_lifo(discipline: str, expected: list[str]) -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=1, discipline=discipline)
    assert pool.try_acquire()
    tickets = {n: pool.enqueue() for n in "abc"}
    for _ in range(3):
        pool.release()
    assert [s.split(":")[0] for s in _grants(env, pool, tickets)] == expected


def test_priority_then_arrival_order() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=1, priority=True)
    assert pool.try_acquire()
    tickets = {"low1": pool.enqueue(prio=2), "high1": pool.enqueue(prio=0), "low2": pool.enqueue(prio=2),
               "high2": pool.enqueue(prio=0)}
    for _ in range(4):
        pool.release()
    assert [s.split(":")[0] for s in _grants(env, pool, tickets)] == ["high1", "high2", "low1", "low2"]


def test_deadline_drop_expires_late_work_at_grant_time() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=1, deadline_drop=True)
    assert pool.try_acquire()
    late, ok = pool.enqueue(deadline=1.0), pool.enqueue(deadline=100.0)

    def later():  # type: ignore[no-untyped-def]
        yield env.timeout(5.0)
        pool.release()

    env.process(later())
    env.run()
    assert late.event.value == EXPIRED and ok.event.value == GRANTED
    assert pool.dropped == 1 and pool.busy == 1


def test_capacity_shrinks_and_grows_while_running() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=3)
    for _ in range(3):
        assert pool.try_acquire()
    waiting = [pool.enqueue() for _ in range(3)]
    pool.set_capacity(1)  # work in service finishes; nobody new is let in
    pool.release()
    pool.release()
    env.run()
    assert pool.busy == 1 and all(not t.event.triggered for t in waiting)
    pool.set_capacity(4)  # grows: three more at once
    env.run()
    assert pool.busy == 4 and all(t.event.value == GRANTED for t in waiting)


def test_cancel_and_outage() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=1)
    assert pool.try_acquire()
    a, b, c = pool.enqueue(), pool.enqueue(), pool.enqueue()
    pool.cancel(b)
    assert pool.waiting == 2
    assert pool.fail_waiting() == 2
    env.run()
    assert a.event.value == DOWN and c.event.value == DOWN and not b.event.triggered
    assert pool.waiting == 0


def test_leave_gives_back_a_granted_server() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=1)
    assert pool.try_acquire()
    t = pool.enqueue()
    pool.release()  # granted to t
    assert pool.busy == 1
    pool.leave(t)  # but its client was interrupted
    assert pool.busy == 0


def test_wait_and_occupancy_accounting() -> None:
    env = simpy.Environment()
    pool = Pool(env, "p", capacity=1)

    def job(start: float, service: float):  # type: ignore[no-untyped-def]
        yield env.timeout(start)
        if not pool.try_acquire():
            t = pool.enqueue()
            yield t.event
        yield env.timeout(service)
        pool.release()

    env.process(job(0, 4))  # served 0..4
    env.process(job(1, 2))  # waits 1..4, served 4..6
    env.run(until=10)
    assert pool.granted == 2 and pool.queued == 1 and pool.wait_s == pytest.approx(3.0)
    # calls present: 1 on [0,1), 2 on [1,4), 1 on [4,6) -> 1 + 6 + 2 = 9 call-seconds
    assert pool.occupancy_area() == pytest.approx(9.0)
    busy, cap = pool.busy_area()
    assert busy == pytest.approx(6.0) and cap == pytest.approx(10.0)
