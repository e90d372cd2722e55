"""The LLM fleet: replicas behind a router, with faults and autoscaling."""

from __future__ import annotations

import math

import numpy as np
import simpy

from sim.costmodel import StepCost
from sim.des.host import HostCpu
from sim.des.llm import DOWN, ERROR, SHED, FleetStats, Replica, Seq
from sim.results import Recorder
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.rules.routing import make_router
from sim.scenario.services import LLMFleet


class Fleet:
    """Routes each LLM call to a replica taking work, by the scenario's policy (`sim.rules.routing`)."""

    def __init__(self, env: simpy.Environment, spec: LLMFleet, rng: np.random.Generator,
                 host: HostCpu | None = None, token_cpu_s: float = 0.0) -> None:
        self.env, self.spec, self.rng = env, spec, rng
        self.host, self.token_cpu_s = host, token_cpu_s  # the shared CPU the steps run on (None: their own)
        self.cost = StepCost(spec.cost_model)
        self.stats = FleetStats()
        self.replicas: list[Replica] = []
        self.effect: FaultEffect = NO_FAULT  # the faults in force (sim.rules.faults)
        self.router = make_router(spec.routing)
        self._live_cache: list[Replica] | None = None
        self._rand: list[float] = []
        for _ in range(spec.replicas):
            self._add_replica()

    # -- routing -------------------------------------------------------------------------------
    def _uniform(self) -> float:
        if not self._rand:
            self._rand = self.rng.random(4096).tolist()
        return self._rand.pop()

    def submit(self, prompt: int, output: int) -> Seq:
        s = Seq(self.env, max(1, prompt), max(1, output))
        err = self.effect.error_rate
        if err and self._uniform() < err:
            s.state = "ended"
            s.done.succeed(ERROR)
            return s
        r = self._choose()
        if r is None:
            s.state = "ended"
            s.done.succeed(DOWN)
        elif self.spec.queue_limit is not None and r.n_waiting >= self.spec.queue_limit:
            s.state = "ended"
            s.done.succeed(SHED)
        else:
            r.submit(s)
        return s

    def _live(self) -> list[Replica]:
        """Replicas taking work (cached: `up` and `accepting` change only in this class, which
        calls `_changed()` when they do)."""
        if self._live_cache is None:
            self._live_cache = [r for r in self.replicas if r.up and r.accepting]
        return self._live_cache

    def _changed(self) -> None:
        self._live_cache = None

    def _choose(self) -> Replica | None:
        live = self._live()
        if not live:
            return None
        return live[self.router.pick(live, self._uniform)]

    # -- capacity ------------------------------------------------------------------------------
    def _add_replica(self) -> Replica:
        r = Replica(self.env, len(self.replicas), self.spec, self.cost, self.stats, self.host, self.token_cpu_s)
        r.slowdown = self.effect.slowdown
        self.replicas.append(r)
        self._changed()
        return r

    @property
    def up(self) -> int:
        return sum(1 for r in self.replicas if r.up)

    @property
    def outage(self) -> bool:
        return self.effect.outage

    def set_effect(self, effect: FaultEffect) -> None:
        """Apply the faults in force: the first `effect.units_down(n)` replicas are down (their
        work fails), every replica runs `effect.slowdown` times slower."""
        self.effect = effect
        self.apply_health()

    def apply_health(self) -> None:
        n = len(self.replicas)
        n_down = self.effect.units_down(n)
        for i, r in enumerate(self.replicas):
            should_be_up = i >= n_down
            if r.up and not should_be_up:
                r.up = False
                r.fail_all(DOWN)
                r.wake()
            elif not r.up and should_be_up and r.accepting:
                r.up = True
                r.wake()
        for r in self.replicas:
            r.slowdown = self.effect.slowdown
        self._changed()

    def kv_frac(self) -> float:
        live = [r for r in self.replicas if r.up]
        cap = sum(r.kv_cap for r in live)
        return sum(r.kv_used for r in live) / cap if cap and cap < 10**12 else 0.0

    def queue_len(self) -> int:
        return sum(r.n_waiting for r in self.replicas)

    def autoscale(self, rec: Recorder):  # type: ignore[no-untyped-def]
        """Every `interval_s`: wanted = ceil(sequences in the fleet / (max_num_seqs x target
        utilisation)), within bounds; new replicas serve after the cold start; surplus ones
        stop taking work and drain."""
        a = self.spec.autoscaling
        assert a is not None
        per_replica = self.spec.max_num_seqs * a.target_utilisation
        while True:
            yield self.env.timeout(a.interval_s)
            load = sum(r.load for r in self.replicas)
            active = [r for r in self.replicas if r.accepting]
            want = min(a.max_replicas, max(a.min_replicas, math.ceil(load / per_replica - 1e-9)))
            if want > len(active):
                for _ in range(want - len(active)):
                    self.env.process(self._cold_start(rec, a.cold_start_s))
            elif want < len(active):
                for r in sorted(active, key=lambda r: r.load)[: len(active) - want]:
                    r.accepting = False
                    self._changed()
                    rec.event(self.env.now, "scale_down", "llm", replica=r.idx)

    def _cold_start(self, rec: Recorder, cold_start_s: float):  # type: ignore[no-untyped-def]
        rec.event(self.env.now, "scale_up", "llm", cold_start_s=cold_start_s)
        yield self.env.timeout(cold_start_s)
        idle = [r for r in self.replicas if not r.accepting and not r.load]
        r = idle[0] if idle else self._add_replica()
        r.accepting = True
        r.up = not self.outage
        self._changed()
        rec.event(self.env.now, "replica_ready", "llm", replica=r.idx)
