"""`sweep`: the grid, common random numbers, the report files, and resuming from the cache."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from planning_helpers import evaluator, mmc_source

from sim.planning import PlanningError, pareto_front, parse_axis, sweep
from sim.planning.points import PointCache

SERVERS = "services.tools.server.concurrency"
RATE = "arrivals.rate_per_s"


def test_a_two_parameter_sweep_produces_the_grid(tmp_path: Path) -> None:
    axes = [parse_axis(f"{SERVERS}=5,6,8"), parse_axis(f"{RATE}=3,4")]
    ev = evaluator(mmc_source(6.0, duration_s=1500))
    sw = sweep(ev, axes, replications=3)
    got = [(p["values"][SERVERS], p["values"][RATE]) for p in sw.points]
    assert got == [(5, 3), (5, 4), (6, 3), (6, 4), (8, 3), (8, 4)]
    assert all(p["n"] == 3 for p in sw.points) and sw.seeds == [1, 2, 3]
    assert ev.computed == 18 and ev.reused == 0
    p99 = {(p["values"][SERVERS], p["values"][RATE]): p["slos"]["job.e2e_p99_s"]["mean"] for p in sw.points}
    for rate in (3, 4):  # more servers, shorter waits; more load, longer ones
        assert p99[(5, rate)] > p99[(6, rate)] > p99[(8, rate)]
    for c in (5, 6, 8):
        assert p99[(c, 4)] > p99[(c, 3)]

    from reports.planning import sweep_report

    files = sweep_report(sw.write(tmp_path))
    names = {f.name for f in files}
    assert {"sweep.csv", "sweep.md", "sweep_slos.png", "sweep_heatmap.png"} <= names
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [(int(r[SERVERS]), int(r[RATE])) for r in rows] == got
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["format"] == "surge-sweep/1" and len(doc["points"]) == 6


def test_resume_after_interruption_reuses_cached_points(tmp_path: Path) -> None:
    axes = [parse_axis(f"{SERVERS}=5,6,7")]
    src = mmc_source(6.0, duration_s=1200)
    cache = tmp_path / "cache"
    ev = evaluator(src, jobs=2, cache=cache)

    def interrupt(done: int, total: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    ev.progress = interrupt
    with pytest.raises(KeyboardInterrupt):
        sweep(ev, axes, replications=3)
    finished = ev.computed
    assert 4 <= finished < 9
    again = evaluator(src, jobs=2, cache=cache)
    resumed = sweep(again, axes, replications=3)
    assert again.reused == finished and again.computed == 9 - finished
    fresh = sweep(evaluator(src, jobs=1), axes, replications=3)  # no cache, one process
    assert json.dumps(resumed.points, sort_keys=True) == json.dumps(fresh.points, sort_keys=True)


def test_the_cache_key_separates_seed_engine_and_scenario() -> None:
    src = mmc_source(6.0)
    a, b = src.load(seed=1), src.load(seed=2)
    c = src.load([f"{SERVERS}=7"], seed=1)
    keys = {PointCache.key(a, 1, "des"), PointCache.key(b, 2, "des"), PointCache.key(c, 1, "des"),
            PointCache.key(a, 1, "fleet")}
    assert len(keys) == 4
    assert PointCache.key(a, 1, "des") == PointCache.key(src.load(seed=1), 1, "des")


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = [{"cost_per_hour": c, "attainment": a} for c, a in [(1, 0.0), (2, 0.5), (3, 0.5), (4, 1.0), (5, 1.0)]]
    assert pareto_front(pts) == [0, 1, 3]
    assert pareto_front([{"cost_per_hour": None, "attainment": 1.0}]) == []


@pytest.mark.parametrize("spec, texts", [
    ("a.b=1,2,4", ("1", "2", "4")),
    ("a.b=1..4", ("1", "2", "3", "4")),
    ("a.b=0.5..1.0..0.25", ("0.5", "0.75", "1.0")),
    ("a.b=fifo,lifo", ("fifo", "lifo")),
])
def test_axis_values(spec: str, texts: tuple[str, ...]) -> None:
    assert parse_axis(spec).texts == texts


@pytest.mark.parametrize("spec", ["=1,2", "a..b=1", "a.b=", "a.b=3..1", "a.b=1,1", "a.b=1..2..0"])
def test_bad_axes_are_one_line_errors(spec: str) -> None:
    with pytest.raises(PlanningError, match="--vary"):
        parse_axis(spec)


def test_a_priced_sweep_marks_the_pareto_front(tmp_path: Path) -> None:
    """Server slots at 0.5 per hour: cost grows with servers, attainment too; the front is what
    no other point beats on both, and the cost figure is written."""
    src = mmc_source(5.4, duration_s=1500).with_sets("cost.slot_hour.server=0.5")
    sw = sweep(evaluator(src), [parse_axis(f"{SERVERS}=5,6,8")], replications=3)
    assert [p["cost_per_hour"] for p in sw.points] == [2.5, 3.0, 4.0]
    front = pareto_front(sw.points)
    assert front and front == sorted(front, key=lambda i: sw.points[i]["cost_per_hour"])
    for i in front:
        c, a = sw.points[i]["cost_per_hour"], sw.points[i]["attainment"]
        assert not any(q["cost_per_hour"] <= c and q["attainment"] >= a and (q["cost_per_hour"], q["attainment"]) != (c, a)
                       for q in sw.points)
    from reports.planning import sweep_report

    assert "sweep_cost.png" in {f.name for f in sweep_report(sw.write(tmp_path))}


def test_a_sweep_runs_on_the_fleet_engine_and_agrees_with_the_simpy_engine_in_direction() -> None:
    """The same grid on both engines: the fleet engine's runs are its own (engine in the cache key)
    and show the same ordering of waits; an unknown engine fails before any work."""
    from sim.planning import Evaluator, LocalBackend, PointCache

    axes = [parse_axis(f"{SERVERS}=5,8")]
    src = mmc_source(6.0, duration_s=1500)
    p99 = {}
    for engine in ("des", "fleet"):
        ev = Evaluator(src, engine, LocalBackend(1), PointCache(None))
        sw = sweep(ev, axes, replications=2)
        assert ev.computed == 4
        p99[engine] = [p["slos"]["job.e2e_p99_s"]["mean"] for p in sw.points]
    for engine in ("des", "fleet"):
        assert p99[engine][0] > p99[engine][1] > 0  # 5 servers wait longer than 8
    with pytest.raises(PlanningError, match="--engine"):
        Evaluator(src, "warp", LocalBackend(1), PointCache(None))
