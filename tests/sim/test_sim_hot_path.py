"""Regression tests (issue 9 item 7): the hot path's shortcuts give exactly what the general path
gives. An attempt of one tool stage with no auth and no gateway is that tool call itself (no
stage walk around it); the series and histograms must be the same as with the stage walk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sim.des import simulate
from sim.des.stack import StackModel
from sim.scenario import parse_scenario


def _mmc(clients: dict[str, Any]) -> Any:
    """An M/M/2 tool at rho 0.9 with a queue limit, two classes of one tool stage."""
    return parse_scenario({
        "name": "hot_path",
        "run": {"duration_s": 2000, "interval_s": 100, "seed": 3},
        "arrivals": {"process": "poisson", "rate_per_s": 1.8},
        "clients": clients,
        "workload": {"classes": {
            "a": {"probability": 0.7, "stages": [{"tool": "server"}]},
            "b": {"probability": 0.3, "stages": [{"tool": {"service": "server", "result_tokens": {"type": "lognormal", "mean": 100, "cv": 0.5}}}]},
        }},
        "services": {"tools": {"server": {"concurrency": 2, "queue_limit": 6, "error_rate": 0.05,
                                          "latency": {"type": "exponential", "rate": 1.0}}}},
    })


def _results(sc: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    r = simulate(sc)
    return r.series, r.histograms


@pytest.mark.parametrize("clients", [
    {},  # no timeout: the attempt runs inside the command
    {"timeout_s": 3.0, "max_attempts": 3, "retry_on": ["timeout", "shed", "error"]},  # a process per attempt
    {"timeout_s": 2.0, "max_attempts": 2, "retry_on": ["timeout"], "cancel_on_timeout": True},  # interrupts
], ids=["untimed", "timed", "cancelled"])
def test_one_tool_call_attempt_equals_the_stage_walk(clients: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sc = _mmc(clients)
    short_series, short_hists = _results(sc)
    assert short_series["completed:a"].sum() > 0 and short_series["attempt_failed:shed"].sum() > 0

    init = StackModel.__init__

    def walk_stages(self: StackModel, *args: Any) -> None:
        init(self, *args)
        assert self._one_call, "the scenario should take the shortcut"
        self._one_call = {}

    monkeypatch.setattr(StackModel, "__init__", walk_stages)
    walk_series, walk_hists = _results(sc)
    assert short_series.keys() == walk_series.keys()
    for name, s in short_series.items():
        assert np.array_equal(s, walk_series[name]), name
    assert short_hists.keys() == walk_hists.keys()
    for name, h in short_hists.items():
        assert np.array_equal(h, walk_hists[name]), name
