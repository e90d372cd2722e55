"""The one time axis: clock time when the load follows the clock, elapsed time otherwise."""

from __future__ import annotations

import pytest

from sim.results import clock as C


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (3.5, "3.5 s"), (45, "45 s"), (85, "1 min 25 s"), (600, "10 min"), (660, "11 min"), (9960, "2 h 46 min"),
    (15780, "4 h 23 min"), (7200, "2 h"), (3 * 86400 + 4 * 3600, "3 d 4 h"), (None, "–")])
def test_durations_read_at_a_glance(seconds: float | None, text: str) -> None:
    assert C.duration(seconds) == text


def test_clock_times_wrap_at_midnight_and_name_days_on_long_runs() -> None:
    assert C.clock(8820, 12.0) == "14:27"
    assert C.clock(46800, 12.0) == "01:00"  # 13 h after noon
    assert C.clock(85, 12.0, seconds=True) == "12:01:25"
    assert C.clock(2 * 86400 + 3600, 0.0, span_s=7 * 86400) == "day 3 01:00"
    assert C.at(85, None) == "t = 1 min 25 s" and C.at(85, 12.0, interval_s=5) == "12:01:25"
    assert C.span(8400, 8460, 12.0) == "14:20–14:21"


def test_a_run_is_on_a_clock_when_its_load_follows_the_clock() -> None:
    day = {"run": {"start_hour": 0}, "population": {"daily_active_users": 1}, "arrivals": {"rate_per_s": None}}
    fixed = {"run": {"start_hour": 0}, "population": {"daily_active_users": 1}, "arrivals": {"rate_per_s": 5}}
    assert C.start_hour({"start_hour": 12.0}) == 12.0  # set explicitly: a clock
    assert C.start_hour({"start_hour": 0.0}, day) == 0.0  # the diurnal profile drives the rate: midnight
    assert C.start_hour({"start_hour": 0.0}, fixed) is None  # a fixed rate from t = 0: elapsed time
    assert C.start_hour({"start_hour": 0.0}) is None and C.start_hour({}) is None
