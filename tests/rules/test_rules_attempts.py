"""The client's attempt loop (`sim.rules.attempts`): the state machine as documented, and
parity — the same answers, in the same order, through the simulator's client (SimPy) and the
load test's (gevent, the real wall clock) give the same attempts, retries, re-logins and
failures. Answers that come back take 5 ms; a timeout is an answer that never comes."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.rules.attempts import ABANDON, DONE, FAIL, RELOGIN, RETRY, CommandAttempts, SessionHealth
from sim.rules.outcomes import ABANDONED, AUTH, ERROR, OK, SHED, TIMEOUT
from sim.rules.retry import RetryPolicy
from sim.scenario import Clients

HERE = Path(__file__).resolve().parent


def _policy(**clients: Any) -> RetryPolicy:
    return RetryPolicy(Clients(**clients), lambda: 0.5, lambda: 0.0)


def test_the_state_machine_as_documented() -> None:
    p = _policy(max_attempts=3, backoff={"base_s": 1, "cap_s": 4, "jitter": "none"})
    loop = CommandAttempts(p, t0=0.0)
    assert loop.start() and loop.after(SHED, 0.1) == (RETRY, 1.0, "")
    assert loop.start() and loop.after(AUTH, 1.2).kind == RELOGIN
    assert loop.start() and loop.after(ERROR, 1.3) == (FAIL, 0.0, ERROR)  # three attempts used up
    patient = CommandAttempts(_policy(max_attempts=5, abandon_after_s=2.5, backoff={"base_s": 2, "jitter": "none"}), 0.0)
    assert patient.after(SHED, 1.0) == (ABANDON, 1.5, ABANDONED)  # the wait would outlast the user
    assert CommandAttempts(p, 0.0).after(OK, 0.0).kind == DONE
    assert patient.expired(2.5) == ABANDONED and patient.expired(1.0) == TIMEOUT
    assert math.isinf(CommandAttempts(p, 0.0).time_limit(5.0))
    h = SessionHealth(2)
    assert [h.after(x) for x in (TIMEOUT, OK, TIMEOUT, TIMEOUT)] == [False, False, False, True]


# answers in order, across commands; "hang" = no answer before the timeout
CASES = {
    "retry_then_ok": ["shed", "ok", "error", "error", "ok"],
    "timeouts_lose_the_session": ["hang", "hang", "ok", "hang", "shed", "ok"],
    "rate_limited_and_auth": ["rejected", "auth", "ok", "error", "error", "error"],
    "not_retried": ["ok", "hang", "hang", "hang"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_simulator_and_load_test_clients_attempt_alike(case: str) -> None:
    from attempts_driver import run_des

    script = CASES[case]
    des = run_des(script)
    out = subprocess.run([sys.executable, str(HERE / "attempts_driver.py"), case], capture_output=True, text=True,
                         timeout=120, cwd=HERE.parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    measured = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own driver's repr of a dict
    assert des == measured
    assert des["attempts"] > 1 and sum(des["failed"].values()) + des["completed"] == des["arrived"]
