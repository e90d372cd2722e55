"""The fleet gateway's slots are conserved: at the end of every step the slots in use are exactly
the admitted attempts still in the pipeline (waiting at, or served by, a stage, ghost work
included). Evicted attempts and those a gateway outage fails never held a slot, and those the
servers drop at the client's timeout give theirs back once."""

from __future__ import annotations

import numpy as np
import pytest
from fleet_helpers import scenario

from sim.fleet.engine import FleetSim
from sim.results import names as N

# the Feb 8 cell at its peak with a queue small enough to evict (priority levels), the LLM
# slowed to overload it, and a gateway outage while the queue is full
OVERLOADED = ("run.start_hour=14", "run.duration_s=900", "services.gateway.priority=true",
              "services.gateway.queue_limit=60",
              "faults=[{at_s: 120, duration_s: 600, target: llm, kind: slowdown, magnitude: 3},"
              " {at_s: 400, duration_s: 30, target: gateway, kind: outage, magnitude: 1.0}]")


def _in_pipeline(sim: FleetSim) -> np.ndarray:
    """Admitted attempts at the stages, per replication (R,): waiting, in service, finished but
    not yet collected."""
    held = np.zeros(sim.R)
    for fl in sim.flows:
        for st in fl.stages:
            o = st.owner
            for a in (o.wait, o.cal, o.done, o.error, o.shed):
                held += a.reshape(sim.R, -1).sum(axis=1)
    return held


@pytest.mark.parametrize(("cancel", "discipline"), [(False, "fifo"), (True, "fifo"), (False, "adaptive_lifo")])
def test_gateway_slots_are_the_attempts_in_the_pipeline(cancel: bool, discipline: str) -> None:
    """adaptive_lifo: its stale waiters leave the queue too (after the step's slots came back)."""
    sc = scenario("feb8_outage.yaml", *OVERLOADED, f"clients.cancel_on_timeout={str(cancel).lower()}",
                  f"services.gateway.discipline={discipline}")
    sim = FleetSim(sc, [11, 12])
    assert sim.gw is not None
    worst = 0.0
    for n in range(sim.n_steps):
        sim.step(n)
        worst = max(worst, float(np.abs(sim.gw.in_use - _in_pipeline(sim)).max()))
        assert (sim.gw.in_use <= sim.gw.spec.concurrency + 1e-9).all()
    assert worst < 1e-6, f"gateway slots in use differ from the attempts in the pipeline by up to {worst:g}"
    shed = sim.rec.s(N.attempt_failed("shed")).sum()
    errors = sim.rec.s(N.attempt_failed("error")).sum()
    assert shed > 0 and errors > 0  # the case evicts and the outage fails queued attempts
