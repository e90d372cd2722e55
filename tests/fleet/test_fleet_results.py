"""The fleet engine writes the results format of every engine: conservation at every interval,
the same bytes for the same seed, and readers (summary, reports' series, metastability) work."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
from fleet_helpers import scenario

from sim.campaign import analyse
from sim.engines import choose, simulate
from sim.fleet import simulate_batch
from sim.results import Results
from sim.results import names as N

SHORT = ("run.duration_s=600", "run.start_hour=13", "faults=[]")


def _short_feb8(*extra: str):  # type: ignore[no-untyped-def]
    return scenario("feb8_outage.yaml", *SHORT, *extra)


def test_conservation_at_every_interval_and_source_fleet() -> None:
    sc = _short_feb8("services.gateway.concurrency=8", "services.gateway.queue_limit=40")
    for r in simulate_batch(sc, replications=2):
        assert r.meta["source"] == "fleet"
        arrived = sum(np.cumsum(r.series[N.of_class("arrived", c)]) for c in r.meta["classes"])
        ended = sum(np.cumsum(r.series[N.of_class("completed", c)]
                              + sum(r.series[N.failed(c, x)] for x in N.REASONS)) for c in r.meta["classes"])
        assert np.array_equal(arrived - ended, r.series[N.IN_FLIGHT])
        assert (r.series[N.IN_FLIGHT] >= 0).all()
        assert r.summary["arrived"] > 500
        assert sum(r.summary["classes"][c]["failed"]["shed"] for c in r.meta["classes"]) > 0  # the small queue sheds


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    sc = _short_feb8("run.duration_s=300")
    a = simulate(sc, engine="fleet").write(tmp_path / "a")
    b = simulate(sc, engine="fleet").write(tmp_path / "b")
    for name in ("run.json", "timeseries.csv", "histograms.npz", "events.jsonl", "summary.json"):
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    c = simulate(sc, engine="fleet", seed=99).write(tmp_path / "c")
    assert not filecmp.cmp(a / "timeseries.csv", c / "timeseries.csv", shallow=False)


def test_results_read_back_and_analyse(tmp_path: Path) -> None:
    sc = _short_feb8("run.duration_s=300")
    res = simulate(sc, engine="fleet")
    back = Results.read(res.write(tmp_path / "run"))
    assert back.meta["source"] == "fleet"
    assert back.summary["completed"] == res.summary["completed"] > 0
    for c in back.meta["classes"]:
        assert back.summary["classes"][c]["e2e"]["count"] > 0
        assert back.summary["classes"][c]["ttft"]["count"] > 0
    a = analyse(back, scenario=sc)
    assert a["goodput_fraction"] > 0.9


def test_auto_picks_the_fleet_for_the_full_fleet_and_des_for_a_cell() -> None:
    from sim.rules.scaling import scale_scenario

    cell = scenario("feb8_outage.yaml")
    assert choose(cell, "auto") == "des"
    assert choose(scale_scenario(cell, 1 / 1.5e-4), "auto") == "fleet"
    assert choose(scenario("smoke.yaml"), "auto") == "des"  # per-user rate limits: SimPy only
