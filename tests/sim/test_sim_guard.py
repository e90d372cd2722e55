"""What keeps a run bounded (issue 15): the engine's guard on simulated-time progress, and
Poisson arrivals drawn in bounded chunks at any rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from sim.arrivals import MAX_DRAW, RateCurve, poisson_times
from sim.des.engine import run_guarded
from sim.errors import SimulationError


def _ticker(env: simpy.Environment, step_s: float, seen: list[float]):  # type: ignore[no-untyped-def]
    while True:
        seen.append(env.now)
        yield env.timeout(step_s)


@pytest.mark.parametrize("step_s", [0.0, 1e-300])
def test_a_stalled_clock_stops_with_a_simulation_error(step_s: float) -> None:
    """Zero-delay loops (zero latency and think time) and 1e-300 s timers never reach `until`."""
    env = simpy.Environment()
    env.process(_ticker(env, step_s, []))
    with pytest.raises(SimulationError, match=r"simulated time stalled at t=.* 1,000 events in"):
        run_guarded(env, 10.0, span=1000)


def test_the_guard_lets_a_busy_but_moving_clock_run() -> None:
    """1,000 events per simulated second, well under the limit: runs to the end."""
    env = simpy.Environment()
    seen: list[float] = []
    env.process(_ticker(env, 1e-3, seen))
    run_guarded(env, 5.0, span=1000)
    assert env.now == 5.0 and len(seen) == pytest.approx(5000, abs=2)


def test_run_guarded_gives_the_same_run_as_simpy_run() -> None:
    """Parity: the guarded loop steps the same events in the same order as `Environment.run`,
    and stops at `until` before that instant's events, like SimPy."""
    def trace(runner) -> list[tuple[float, int]]:  # type: ignore[no-untyped-def]
        env, rng, log = simpy.Environment(), np.random.default_rng(3), []
        server = simpy.Resource(env, capacity=2)

        def job(k: int):  # type: ignore[no-untyped-def]
            with server.request() as req:
                yield req
                yield env.timeout(rng.exponential(0.4))
                log.append((env.now, k))

        def source():  # type: ignore[no-untyped-def]
            for k in range(2000):
                yield env.timeout(rng.exponential(0.25))
                env.process(job(k))

        env.process(source())
        runner(env)
        return log

    assert trace(lambda env: run_guarded(env, 300.0, span=64)) == trace(lambda env: env.run(until=300.0))


def test_poisson_draws_are_bounded_at_a_high_rate() -> None:
    """At 100,000/s (the schema's cap) a 60 s window would hold 6 million candidates: each draw
    holds at most MAX_DRAW (~1 million) and the count is still Poisson(rate x horizon)."""
    rate, horizon = 1e5, 30.0
    blocks = list(poisson_times(RateCurve(rate), horizon, np.random.default_rng(5)))
    assert max(len(b) for b in blocks) <= MAX_DRAW * 1.01
    times = np.concatenate(blocks)
    assert (np.diff(times) >= 0).all() and times[0] >= 0 and times[-1] < horizon
    n, mean = len(times), rate * horizon
    assert abs(n - mean) < 5 * math.sqrt(mean), (n, mean)
