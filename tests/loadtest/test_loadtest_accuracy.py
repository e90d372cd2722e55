"""The error table of `surge validate-stack` (`loadtest.accuracy`) against numbers worked by hand.

Every expected figure below is computed in the test's comments from the inputs, with the
Student-t quantile t(0.975, 2) = 4.302652729911275 from tables, not from the code under test."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from loadtest import accuracy as A
from sim.results import Results

T975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom


def _run(classes: dict[str, dict[str, Any]], recovery_s: float | None = None,
         series: dict[str, list[float]] | None = None) -> Results:
    """A run that carries only what the table reads: per-class summary figures, counters per
    1-s interval (for the overload outcome) and recovery."""
    meta: dict[str, Any] = {"classes": list(classes), "interval_s": 1.0, "warmup_s": 0.0}
    if recovery_s is not None:
        meta["recovery"] = [{"recovery_s": recovery_s, "recovered": True}]
    arrays = {k: np.asarray(v, dtype=float) for k, v in (series or {}).items()}
    return Results(meta=meta, series=arrays, histograms={}, summary={"classes": classes})


def _chat(ttft_p50: float, e2e_p99: float, goodput: float = 10.0) -> dict[str, dict[str, Any]]:
    """Chat's figures; TTFT p99 and e2e p50 are 1 s on both sides (error 0)."""
    return {"chat": {"ttft": {"p50": ttft_p50, "p99": 1.0}, "e2e": {"p50": 1.0, "p99": e2e_p99},
                     "goodput_per_s": goodput}}


# 6 s at 10 arrivals a second: sheds 5 a second (load shed), or times 5 out while in flight grows
SHED = {"arrived:chat": [10.0] * 6, "completed:chat": [5.0] * 6, "failed:chat:shed": [5.0] * 6, "in_flight": [3.0] * 6}
GROW = {"arrived:chat": [10.0] * 6, "completed:chat": [5.0] * 6, "failed:chat:timeout": [5.0] * 6,
        "in_flight": [5.0, 10, 20, 40, 60, 80]}


def _level(label: str, kind: A.LevelKind, fraction: float, meas: list[Results], sim: list[Results]) -> A.Level:
    return A.Level(label, kind, fraction, fraction * 2.0, measured=meas, simulated=sim)


def _cell(table: dict[str, Any], level: str, metric: str) -> dict[str, Any]:
    return next(c for c in table["cells"] if c["level"] == level and c["metric"] == metric and c["class"] == "chat")


def test_a_cell_states_both_means_their_intervals_the_error_and_the_verdict() -> None:
    meas = [_run(_chat(0.10, 1.00)), _run(_chat(0.12, 1.10)), _run(_chat(0.11, 1.20))]
    sim = [_run(_chat(0.105, 1.05)), _run(_chat(0.13, 1.10)), _run(_chat(0.12, 1.20))]
    table = A.error_table([_level("60%", "load", 0.6, meas, sim)])
    ttft = _cell(table, "60%", "ttft.p50")
    # measured mean 0.11, sample sd 0.01 -> half-width 4.3027 * 0.01 / sqrt(3) = 0.0248414
    assert ttft["meas"]["mean"] == pytest.approx(0.11)
    assert ttft["meas"]["half_width"] == pytest.approx(T975_2 * 0.01 / math.sqrt(3))
    # simulated mean 0.355 / 3 = 0.118333; error 0.118333 / 0.11 - 1 = +7.58%: over the 5% p50 target
    assert ttft["error"] == pytest.approx(0.355 / 3 / 0.11 - 1)
    assert (ttft["target"], ttft["pass"]) == (0.05, False)
    # the paired errors per seed: +5%, +8.333%, +9.0909%; mean 7.4747%, sd 2.1525%
    paired = np.array([0.105 / 0.10, 0.13 / 0.12, 0.12 / 0.11]) - 1
    hw = T975_2 * paired.std(ddof=1) / math.sqrt(3)
    assert (ttft["error_low"], ttft["error_high"]) == pytest.approx((paired.mean() - hw, paired.mean() + hw))
    e2e = _cell(table, "60%", "e2e.p99")
    # 3.35 / 3 = 1.116667 against 1.1: +1.52%, inside the 10% p99 target
    assert e2e["error"] == pytest.approx(3.35 / 3 / 1.1 - 1)
    assert (e2e["target"], e2e["pass"]) == (0.10, True)
    # MAPE over the four judged latency cells (TTFT and e2e at p50 and p99; two of them exact)
    assert table["mape_judged"] == pytest.approx((abs(0.355 / 3 / 0.11 - 1) + abs(3.35 / 3 / 1.1 - 1)) / 4)
    assert not table["met"] and len(table["misses"]) == 1 and "ttft.p50" in table["misses"][0]


def test_latency_beyond_the_judged_loads_is_reported_not_judged_and_overload_judges_goodput() -> None:
    meas = [_run(_chat(0.2, 2.0, goodput=20.0), series=SHED), _run(_chat(0.2, 2.0, goodput=22.0), series=SHED)]
    sim = [_run(_chat(0.4, 4.0, goodput=19.0), series=GROW), _run(_chat(0.4, 4.0, goodput=21.5), series=GROW)]
    table = A.error_table([_level("110%", "overload", 1.1, meas, sim)])
    ttft = _cell(table, "110%", "ttft.p50")
    assert ttft["error"] == pytest.approx(1.0) and ttft["target"] is None and ttft["pass"] is None
    good = _cell(table, "110%", "goodput_per_s")
    # 40.5 / 2 = 20.25 against 21: -3.57%, inside the 10% overload target
    assert good["error"] == pytest.approx(20.25 / 21 - 1) and good["pass"] is True
    # but the stack shed load where the simulator let queues grow: a miss
    (over,) = table["overload"]
    assert (over["meas_outcome"], over["sim_outcome"], over["pass"]) == ("load_shed", "queues_grow", False)
    assert table["misses"] == ["110%: outcome simulated queues_grow, measured load_shed"]


def test_a_trace_replay_is_judged_like_a_load_at_its_fraction_of_the_capacity() -> None:
    meas = [_run(_chat(0.10, 1.0)), _run(_chat(0.10, 1.0))]
    sim = [_run(_chat(0.12, 1.0)), _run(_chat(0.12, 1.0))]
    table = A.error_table([_level("trace", "trace", 0.6, meas, sim), _level("trace hot", "trace", 1.0, meas, sim)])
    # 0.12 / 0.10 - 1 = +20%: over the 5% p50 target at 60% of the capacity; beyond 90% reported only
    ttft = _cell(table, "trace", "ttft.p50")
    assert ttft["error"] == pytest.approx(0.2) and ttft["target"] == 0.05 and ttft["pass"] is False
    assert _cell(table, "trace", "e2e.p99")["pass"] is True
    assert _cell(table, "trace hot", "ttft.p50")["target"] is None
    assert table["misses"] == ["trace chat ttft.p50: error +20.0% (target ±5%)"]
    assert table["mape_judged"] == pytest.approx((0.2 + 0 + 0 + 0) / 4)


def test_recovery_within_twenty_percent_passes_and_a_side_that_never_recovers_fails() -> None:
    meas = [_run(_chat(0.1, 1.0), recovery_s=x) for x in (10.0, 12.0)]
    near = [_run(_chat(0.1, 1.0), recovery_s=x) for x in (12.0, 13.0)]
    cell = A.recovery_cell(_level("fault", "fault", 0.6, meas, near), A.Targets())
    # 12.5 against 11: +13.6%
    assert cell["error"] == pytest.approx(12.5 / 11 - 1) and cell["pass"] is True
    never = [_run(_chat(0.1, 1.0)), _run(_chat(0.1, 1.0), recovery_s=11.0)]
    assert A.recovery_cell(_level("fault", "fault", 0.6, meas, never), A.Targets())["pass"] is False


def test_capacity_error_is_relative_to_the_measured_capacity() -> None:
    cell = A.capacity_cell(2.09, 2.0, 5.0, A.Targets())
    assert (cell["sim_per_s"], cell["meas_per_s"]) == pytest.approx((10.45, 10.0))
    assert cell["error"] == pytest.approx(0.045) and cell["pass"] is True
    assert A.capacity_cell(2.2, 2.0, 5.0, A.Targets())["pass"] is False


def test_a_run_is_stalled_only_when_nothing_arrived_or_nothing_ended() -> None:
    """What `surge validate-stack` measures once more: a run the machine stalled, not a slow one."""
    from loadtest.validate import stalled

    def run(arrived: float, completed: float, failed: float) -> Results:
        return Results(meta={"classes": []}, series={}, histograms={},
                       summary={"arrived": arrived, "completed": completed, "failed": failed})

    assert stalled(run(0, 0, 0)) == "no command arrived after the warm-up"
    assert stalled(run(50, 0, 0)) == "no command ended after the warm-up"
    assert stalled(run(50, 0, 50)) is None  # every command failed: a result, kept
    assert stalled(run(50, 3, 0)) is None
