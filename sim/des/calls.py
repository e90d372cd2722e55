"""Callbacks on bare SimPy events: cheaper than a process (no generator to resume)."""

from __future__ import annotations

import heapq
from collections.abc import Callable

import simpy
from simpy.events import EventPriority

Callback = Callable[[simpy.Event], None]


def call_at(env: simpy.Environment, delay: float, callback: Callback, priority: EventPriority) -> None:
    """Call `callback(event)` after `delay` seconds."""
    ev = simpy.Event(env)
    ev._ok = True
    ev._value = None
    ev.callbacks.append(callback)  # type: ignore[union-attr]
    env.schedule(ev, priority, delay)


def call_at_time(env: simpy.Environment, t: float, callback: Callback, priority: EventPriority,
                 value: object = None) -> None:
    """Call `callback(event)` at time `t` exactly (scheduling `t - now` as a delay could round
    to another time); the event's value is `value`."""
    ev = simpy.Event(env)
    ev._ok = True
    ev._value = value
    ev.callbacks.append(callback)  # type: ignore[union-attr]
    heapq.heappush(env._queue, (t, priority, next(env._eid), ev))  # what env.schedule does
