"""The same seeds give the same observations on every backend: one process, a pool of two,
and a Ray instance on loopback (started by the test, two CPUs)."""

from __future__ import annotations

import json

import pytest
from planning_helpers import mmc_source

from sim.planning import Evaluator, LocalBackend, RayBackend, parse_axis, sweep

AXES = [parse_axis("services.tools.server.concurrency=5,7"), parse_axis("arrivals.rate_per_s=3,4")]


def _points(backend) -> str:  # type: ignore[no-untyped-def]
    ev = Evaluator(mmc_source(6.0, duration_s=1200), backend=backend)
    return json.dumps(sweep(ev, AXES, replications=2).points, sort_keys=True)


def test_one_process_and_a_pool_agree() -> None:
    assert _points(LocalBackend(1)) == _points(LocalBackend(2))


@pytest.mark.slow
def test_ray_gives_the_same_results_as_the_local_pool() -> None:
    ray = pytest.importorskip("ray")
    local = _points(LocalBackend(2))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        backend = RayBackend()
        assert _points(backend) == local
        backend.close()  # it did not start Ray, so it leaves it running
        assert ray.is_initialized()
    finally:
        ray.shutdown()
