"""sim.stats: Student-t quantiles against published tables, CIs, paired (CRN) and Welch
comparisons, warm-up helpers, and the replications.json summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim import stats


@pytest.mark.parametrize(("p", "df", "table"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776), (0.975, 9, 2.262), (0.975, 29, 2.045),
    (0.975, 120, 1.980), (0.95, 5, 2.015), (0.995, 10, 3.169), (0.9, 20, 1.325), (0.975, 1e7, 1.960),
])
def test_t_quantile_matches_published_table(p: float, df: float, table: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(table, abs=5e-4)


def test_t_quantile_is_symmetric_and_inverts_the_cdf() -> None:
    assert stats.t_quantile(0.025, 9) == pytest.approx(-stats.t_quantile(0.975, 9))
    assert stats.t_cdf(stats.t_quantile(0.8, 3.5), 3.5) == pytest.approx(0.8, abs=1e-10)
    with pytest.raises(ValueError, match="0 < p < 1"):
        stats.t_quantile(1.0, 3)


def test_mean_ci_known_example() -> None:
    ci = stats.mean_ci([1, 2, 3, 4, 5])  # s = sqrt(2.5), t(0.975, 4) = 2.776
    assert ci["mean"] == 3 and ci["n"] == 5
    assert ci["half_width"] == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-5)
    assert math.isnan(stats.mean_ci([4.0])["half_width"])
    assert stats.mean_ci([1.0, float("nan"), None, 3.0])["n"] == 2  # type: ignore[list-item]


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40))
def test_mean_ci_contains_the_mean(xs: list[float]) -> None:
    ci = stats.mean_ci(xs)
    assert ci["low"] <= ci["mean"] + 1e-9 and ci["mean"] <= ci["high"] + 1e-9


def test_paired_ci_is_narrower_than_welch_under_common_random_numbers() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(10, 3, 30)  # the shared randomness both configurations see
    a, b = common + rng.normal(0, 0.1, 30), common + 0.5 + rng.normal(0, 0.1, 30)
    paired, welch = stats.paired_ci(a, b), stats.welch_ci(a, b)
    assert paired["significant"] == 1.0 and paired["low"] < 0.5 < paired["high"]
    assert welch["significant"] == 0.0  # the common noise hides the difference
    assert paired["half_width"] < welch["half_width"] / 5
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_ci([1, 2], [1])


def test_welch_ci_matches_hand_computation() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 5
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    ci = stats.welch_ci(a, b)
    assert ci["mean"] == pytest.approx(3.5)
    assert ci["half_width"] == pytest.approx(stats.t_quantile(0.975, df) * math.sqrt(va + vb))


def test_direction_of_kpis() -> None:
    assert stats.direction("chat.e2e_p99_s") == "lower"
    assert stats.direction("attempts_per_command") == "lower"
    assert stats.direction("success_rate") == "higher"
    assert stats.direction("goodput_per_s") == "higher"


def test_drop_warmup_drops_whole_intervals_before_warmup() -> None:
    assert stats.drop_warmup(np.arange(10.0), {"interval_s": 10, "warmup_s": 25}).tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert len(stats.drop_warmup(np.arange(10.0), {"interval_s": 10})) == 10


def test_mser5_finds_an_initial_transient() -> None:
    rng = np.random.default_rng(1)
    y = 5 + rng.normal(0, 0.3, 400)
    y[:60] -= np.linspace(5, 0, 60)  # a queue filling from empty
    w = stats.mser5_warmup(y, interval_s=10)
    assert 300 <= w <= 800
    assert stats.mser5_warmup(5 + rng.normal(0, 0.3, 400), 10) <= 200
    assert stats.mser5_warmup([1.0, 2.0], 10) == 0.0


def test_kpis_flatten_a_summary() -> None:
    summary = {"success_rate": 0.99, "goodput_per_s": 3.0, "classes": {"chat": {
        "success_rate": 1.0, "goodput_per_s": 3.0, "attempts_per_command": 1.0,
        "e2e": {"count": 10, "p50": 1.0, "p90": 2.0, "p99": 3.0, "mean": 1.5}, "ttft": {"count": 0}}}}
    k = stats.kpis(summary)
    assert k["chat.e2e_p99_s"] == 3.0 and k["success_rate"] == 0.99
    assert "chat.ttft_p99_s" not in k  # no samples, no KPI


def _fake(seed: int, shift: float = 0.0):  # a minimal Results-like object
    from sim.results import Recorder, Results

    rng = np.random.default_rng(seed)
    rec = Recorder(100, 10, ["job"])
    for i in range(10):
        rec.series("arrived:job")[i] = rec.series("completed:job")[i] = rec.series("attempts:job")[i] = 10
        for x in rng.exponential(1.0 + shift, 10):
            rec.hist("e2e", "job").record(i * 10 + 1, float(x))
    return Results.from_recorder(rec, {"source": "fixture", "scenario": "t", "seed": seed, "warmup_s": 20})


def test_replication_summary_is_json_and_has_cis() -> None:
    reps = [_fake(s) for s in range(1, 6)]
    rs = stats.replication_summary(reps)
    json.dumps(rs, allow_nan=False)
    assert rs["n"] == 5 and rs["seeds"] == [1, 2, 3, 4, 5] and rs["warmup_s"] == 20
    e = rs["kpis"]["job.e2e_p99_s"]
    assert e["low"] < e["mean"] < e["high"] and len(e["values"]) == 5
    assert stats.replication_summary(reps, warmup_s=50)["warmup_s"] == 50


def test_compare_replications_pairs_only_matching_seeds() -> None:
    a = stats.replication_summary([_fake(s) for s in range(1, 6)])
    b = stats.replication_summary([_fake(s, shift=1.0) for s in range(1, 6)])
    c = stats.replication_summary([_fake(s, shift=1.0) for s in range(11, 16)])
    paired = stats.compare_replications(a, b)["job.e2e_p99_s"]
    assert paired["paired"] == 1.0 and paired["significant"] == 1.0 and paired["mean"] > 0
    assert stats.compare_replications(a, c)["job.e2e_p99_s"]["paired"] == 0.0
