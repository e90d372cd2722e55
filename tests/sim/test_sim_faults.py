"""Faults happen on schedule (events and capacity series), and autoscaling adds replicas only
after the cold start."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sim.des import simulate
from sim.scenario import parse_scenario


def _tool_scenario(faults: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": "faults",
        "run": {"duration_s": 100, "interval_s": 5, "seed": 3},
        "arrivals": {"process": "poisson", "rate_per_s": 20},
        "workload": {"classes": {"job": {"probability": 1.0, "stages": [{"tool": "svc"}]}}},
        "services": {"tools": {"svc": {"concurrency": 8, "latency": {"type": "constant", "value": 0.1}}}},
        "faults": faults,
        **extra,
    }


def test_faults_start_and_end_on_schedule() -> None:
    faults = [
        {"at_s": 20, "duration_s": 10, "target": "svc", "kind": "capacity_loss", "magnitude": 0.5},
        {"at_s": 50, "duration_s": 15, "target": "svc", "kind": "outage"},
        {"at_s": 70, "duration_s": 10, "target": "svc", "kind": "error_rate", "magnitude": 1.0},
    ]
    r = simulate(parse_scenario(_tool_scenario(faults)))
    got = [(e["t_s"], e["kind"], e["target"], e.get("fault_kind")) for e in r.events]
    assert got == [
        (20.0, "fault_start", "svc", "capacity_loss"), (30.0, "fault_end", "svc", "capacity_loss"),
        (50.0, "fault_start", "svc", "outage"), (65.0, "fault_end", "svc", "outage"),
        (70.0, "fault_start", "svc", "error_rate"), (80.0, "fault_end", "svc", "error_rate"),
    ]
    cap = r.series["capacity:svc"]  # sampled at each interval's end (t = 5, 10, ...)
    assert cap[3] == 8 and cap[4] == cap[5] == 4 and cap[6] == 8  # ends at 20/25 lost half, 30 restored
    assert (cap[10:13] == 0).all() and cap[13] == 8  # outage 50..65
    errors = r.series["failed:job:error"]
    assert errors[:10].sum() == 0 and errors[10:13].sum() > 0  # outage fails calls
    assert errors[14:16].sum() > 50 and errors[16:].sum() == 0  # error_rate 1.0 from 70 to 80


def test_faults_in_the_written_events_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    faults = [{"at_s": 12.5, "duration_s": 5, "target": "svc", "kind": "slowdown", "magnitude": 3}]
    simulate(parse_scenario(_tool_scenario(faults))).write(tmp_path / "run")
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events == [
        {"t_s": 12.5, "kind": "fault_start", "target": "svc", "fault_kind": "slowdown", "magnitude": 3.0,
         "duration_s": 5.0},
        {"t_s": 17.5, "kind": "fault_end", "target": "svc", "fault_kind": "slowdown"},
    ]


def test_session_invalidation_causes_a_login_storm() -> None:
    data = _tool_scenario([{"at_s": 50, "duration_s": 1, "target": "auth", "kind": "session_invalidation",
                            "magnitude": 1.0}])
    data["population"] = {"daily_active_users": 1000, "commands_per_session": {"type": "constant", "value": 20},
                          "think_time_s": {"type": "constant", "value": 2}}
    data["arrivals"] = {"process": "poisson", "rate_per_s": 1}
    data["services"]["auth"] = {"concurrency": 4, "latency": {"type": "constant", "value": 0.01}}
    data["clients"] = {"max_attempts": 2}
    r = simulate(parse_scenario(data))
    logins = r.series["logins"]
    # before: about one login per new session (5 per interval); just after: every live session again
    assert logins[10] > 2 * logins[5:10].mean()
    assert r.series["attempt_failed:auth"][10] > 0


@pytest.mark.parametrize("cold_start_s", [0.0, 30.0])
def test_autoscaling_adds_replicas_after_the_cold_start(cold_start_s: float) -> None:
    data = {
        "name": "autoscale",
        "run": {"duration_s": 300, "interval_s": 10, "seed": 1},
        "arrivals": {"process": "poisson", "rate_per_s": 20},
        "workload": {"classes": {"chat": {"probability": 1.0, "stages": [{"llm": {
            "prompt_tokens": {"type": "constant", "value": 200}, "output_tokens": {"type": "constant", "value": 200}}}]}}},
        "services": {"llm": {
            "replicas": 1, "max_num_seqs": 8,
            "cost_model": {"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5, "per_decode_seq_s": 1e-3},
            "autoscaling": {"min_replicas": 1, "max_replicas": 6, "target_utilisation": 0.8, "interval_s": 20,
                            "cold_start_s": cold_start_s},
        }},
    }
    r = simulate(parse_scenario(data))
    ups = [e for e in r.events if e["kind"] == "scale_up"]
    ready = [e for e in r.events if e["kind"] == "replica_ready"]
    assert ups and len(ready) == len([u for u in ups if u["t_s"] + cold_start_s < 300])
    for u, rd in zip(ups, ready, strict=False):
        assert rd["t_s"] == pytest.approx(u["t_s"] + cold_start_s)
    first_up = ups[0]["t_s"]
    up = r.series["llm_replicas_up"]
    t_end = (np.arange(len(up)) + 1) * 10.0  # gauges are read at interval ends
    assert (up[t_end < first_up + cold_start_s] == 1).all()
    assert up.max() > 1


def test_gateway_error_rate_fault_fails_that_fraction() -> None:
    data = _tool_scenario([{"at_s": 20, "duration_s": 50, "target": "gateway", "kind": "error_rate", "magnitude": 0.5}])
    data["services"]["gateway"] = {"concurrency": 100}
    r = simulate(parse_scenario(data))
    errors, arrived = r.series["failed:job:error"], r.series["arrived:job"]
    assert errors[:4].sum() == 0 and errors[14:].sum() == 0
    assert errors[4:14].sum() / arrived[4:14].sum() == pytest.approx(0.5, abs=0.05)
