"""Feb 6, the launch day (scenarios/feb6_launch.yaml), over its first three hours: the sign-up
burst after midnight makes logins fail for a while and clears; what the mitigations change."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.campaign.overlay import load_with_overlay
from sim.des import simulate
from sim.results import Results

ROOT = Path(__file__).resolve().parents[2]
FEB6 = ROOT / "scenarios" / "feb6_launch.yaml"
LAUNCH_MITIGATIONS = ROOT / "scenarios" / "mitigations" / "launch"
FIRST_HOURS = ["run.duration_s=10800"]


def _run(overlay: Path | None = None, sets: tuple[str, ...] = ()) -> Results:
    return simulate(load_with_overlay(FEB6, overlay, [*FIRST_HOURS, *sets]))


def _minutes(r: Results, name: str, a: int, b: int) -> float:
    return float(r.series[name][a:b].sum())


def test_the_midnight_signup_burst_fails_logins_then_clears() -> None:
    r = _run()
    assert _minutes(r, "login_failed", 0, 40) >= 10  # the first half hour after the launch
    assert _minutes(r, "login_failed", 60, 180) == 0  # the burst has passed
    new = _minutes(r, "users_new:broadcast", 0, 170) + _minutes(r, "users_new:invited", 0, 170)
    assert _minutes(r, "registrations", 0, 180) >= 0.98 * new  # everyone got in, some on a later try
    wait = r.series["wait_s:auth"] / np.maximum(r.series["granted:auth"], 1)
    assert wait[:15].mean() > 10 > wait[60:].mean()  # sign-ups lag, then do not
    assert r.series["utilisation:llm"].max() < 0.6  # the fleet had room
    s = r.summary
    assert s["success_rate"] > 0.99 and s["failed"] == sum(sum(c["failed"].values()) for c in s["classes"].values())


def test_auth_provisioned_for_the_burst_has_no_failed_login() -> None:
    r = _run(LAUNCH_MITIGATIONS / "auth_for_the_burst.yaml")
    assert _minutes(r, "login_failed", 0, 180) == 0


def test_without_a_server_side_timeout_signups_lock_in() -> None:
    """Auth then also serves the registrations whose app has given up: the backlog outgrows the
    burst and nobody signs up for the rest of the window (metastable)."""
    r = _run(sets=("services.auth.deadline_drop=false",))
    assert _minutes(r, "registrations", 120, 180) < 0.05 * _minutes(r, "users_new:broadcast", 120, 180) + 1
    assert _minutes(r, "login_failed", 120, 180) > 100
