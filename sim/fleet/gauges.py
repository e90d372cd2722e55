"""The fleet engine's gauges and results: per-step accumulators of every station, closed into the
`Recorder`-format series at the end of each results interval; at the end of the run one
`Results` per replication (source "fleet").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim import __version__
from sim.fleet.llm import llm_kv_frac
from sim.results import Results
from sim.results import names as N

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim


def end_step(sim: FleetSim, n: int, i: int) -> None:
    """The time integrals of this step (busy, capacity, occupancy, waiting) at every station."""
    for p in sim.all_pools():
        p.end_step(sim.dt)
    if sim.gw is not None:
        sim.gw.end_step(sim.dt)


def close_interval(sim: FleetSim, i: int) -> None:
    """Interval i ends: the stations' gauges into the series, the accumulators reset."""
    rec, span = sim.rec, sim.sc.run.interval_s
    pools = [(n, p) for n, p in sim.pools.items()] + ([("auth", sim.auth)] if sim.auth else [])
    stations: list[tuple[str, Any]] = ([("gateway", sim.gw)] if sim.gw else []) + pools
    for name, p in stations:
        a = p.acc
        rec.set(N.of_service("queue", name), i, p.waiting)
        rec.set(N.of_service("capacity", name), i, np.full(sim.R, p.capacity))
        rec.set(N.of_service("utilisation", name), i, a["busy_dt"] / np.maximum(a["cap_dt"], 1e-12))
        rec.set(N.of_service("occupancy", name), i, a["occ_dt"] / span)
        for k in ("granted", "waited", "wait_s"):
            rec.set(N.of_service(k, name), i, a[k])  # type: ignore[arg-type]
        if name != "gateway":
            rec.set(N.of_service("served", name), i, a["served"])
            rec.set(N.of_service("time_s", name), i, a["time_s"] + a["wait_s"])
        for k in a:
            a[k] = np.zeros(sim.R)
    g = sim.llm
    if g is not None:
        a = g.acc
        busy = a["busy_dt"]
        batch = a["batch_dt"] / np.maximum(busy, 1e-12)
        rec.set(N.LLM_BATCH, i, batch)
        rec.set(N.LLM_KV_FRAC, i, llm_kv_frac(g))
        rec.set(N.LLM_PREFILL_TOKENS, i, a["prefill_tokens"])
        rec.set(N.LLM_DECODE_TOKENS, i, a["decode_tokens"])
        rec.set(N.LLM_PREEMPTIONS, i, np.zeros(sim.R))
        rec.set(N.LLM_REPLICAS_UP, i, g.up)
        rec.set(N.LLM_BUSY, i, busy / span)
        rec.set(N.of_service("queue", "llm"), i, g.waiting)
        rec.set(N.of_service("capacity", "llm"), i, g.up)
        rec.set(N.of_service("utilisation", "llm"), i, batch / g.spec.max_num_seqs)
        for k in a:
            a[k] = np.zeros(sim.R)
    if sim.orders is not None:
        sim.orders.close_interval(rec, i)
    rec.close_interval(i)


def results_of(sim: FleetSim) -> list[Results]:
    """One `Results` per replication of the batch (source "fleet")."""
    rec, sc = sim.rec, sim.sc
    arrived = sum(rec.s(N.of_class("arrived", c)) for c in sim.classes)
    ended = sum(rec.s(N.of_class("completed", c)) + sum(rec.s(N.failed(c, r)) for r in N.REASONS)
                for c in sim.classes)
    rec.series[N.IN_FLIGHT] = np.cumsum(arrived - ended, axis=1)
    meta = {"source": "fleet", "engine": "numpy", "surge_version": __version__, "scenario": sc.name,
            "duration_s": sc.run.duration_s, "warmup_s": sc.run.warmup_s, "start_hour": sc.run.start_hour,
            "services": sc.services.names(), "slos": {c: s.model_dump() for c, s in sc.slos.items()},
            "fleet_dt_s": sim.dt0, "replications_in_batch": sim.R}
    if sim.rule is not None:  # the adaptive step: its longest and the steps it took
        meta |= {"fleet_max_dt_s": sim.dt0 * 2**sim.rule.levels, "fleet_steps": sim.steps_run}
    out = rec.results(meta, sim.seeds)
    dump = sc.model_dump(mode="json")
    for r in out:
        r.scenario = dump
    return out
