"""Drives scripted answers through the simulator's client (`run_des`, in-process) and the load
test's client (`run_loadtest`, gevent: run this file as a script, it prints the counts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sim.scenario import parse_scenario  # noqa: E402

ANSWER_S, HANG_S, TIMEOUT_S = 0.005, 0.5, 0.08
SCENARIO: dict[str, Any] = {
    "name": "attempts", "arrivals": {"rate_per_s": 1},
    "workload": {"classes": {"c": {"probability": 1, "stages": [{"tool": "t"}]}}},
    "clients": {"timeout_s": TIMEOUT_S, "max_attempts": 3, "relogin": True, "session_lost_after_timeouts": 2,
                "backoff": {"base_s": 0.01, "cap_s": 0.01, "multiplier": 1, "jitter": "none"},
                "retry_on": ["timeout", "shed", "error", "rejected"]},
    "services": {"auth": {"concurrency": 4}, "tools": {"t": {}}},
}
COMMANDS = 3


def counts(series: dict[str, float]) -> dict[str, Any]:
    reasons = ("timeout", "rejected", "shed", "error", "abandoned", "auth", "throttled")
    return {"arrived": series.get("arrived:c", 0), "attempts": series.get("attempts:c", 0),
            "retries": series.get("retries:c", 0), "completed": series.get("completed:c", 0),
            "logins": series.get("logins", 0),
            "failed": {r: series.get(f"failed:c:{r}", 0) for r in reasons if series.get(f"failed:c:{r}", 0)},
            "attempt_failed": {r: series.get(f"attempt_failed:{r}", 0) for r in reasons
                               if series.get(f"attempt_failed:{r}", 0)}}


def run_des(script: list[str]) -> dict[str, Any]:
    import simpy

    from sim.des.client import Client, SessionState
    from sim.des.client import SimCommand as Command
    from sim.des.services import Uniforms
    from sim.results import Recorder
    from sim.streams import Streams

    sc = parse_scenario(SCENARIO)
    env = simpy.Environment()
    answers = iter(script + ["ok"] * 20)

    class Auth:
        def call(self, prio: int, deadline: float, service_s: float | None = None):  # type: ignore[no-untyped-def]
            yield env.timeout(ANSWER_S)
            return "ok"

    class FakeStack:
        scenario, gateway, auth, auth_epoch = sc, None, Auth(), 0

        def uniforms(self, name: str) -> Uniforms:
            return Uniforms(Streams(1)(name))

        def login(self, limit: float, service_s: float | None = None):  # type: ignore[no-untyped-def]
            return (yield from self.auth.call(0, limit, service_s))

        def attempt(self, sess, cmd, client):  # type: ignore[no-untyped-def]
            if not sess.logged_in:
                return "auth"  # the app dropped its session: nothing is sent
            a = next(answers)
            yield env.timeout(HANG_S if a == "hang" else ANSWER_S)
            return a

    rec = Recorder(100, 100, ["c"])
    client = Client(env, FakeStack(), rec, Streams(1))  # type: ignore[arg-type]

    def user():  # type: ignore[no-untyped-def]
        from sim.rules.attempts import SessionHealth

        sess = SessionState(0, None, SessionHealth(sc.clients.session_lost_after_timeouts))
        yield from client.login(sess)
        for _ in range(COMMANDS):
            yield from client.command(sess, Command("c", sc.workload.classes["c"], env.now))

    env.process(user())
    env.run()
    return counts({k: float(v.sum()) for k, v in rec.all_series().items()})


def run_loadtest(script: list[str]) -> dict[str, Any]:
    import gevent

    from loadtest.commands import HttpClient
    from loadtest.http_commands import HttpCommand
    from loadtest.plan import Plan
    from loadtest.tally import Tally

    sc = parse_scenario(SCENARIO)
    tally = Tally(100, 100)
    wl = HttpClient(sc, Plan("-", "http://127.0.0.1:1", "-"), tally, client=None, stream_key="t", t0=0.0)
    wl.t0 = __import__("time").time()
    answers = iter(script + ["ok"] * 20)

    def attempt(sess: Any, cmd: Any) -> str:
        a = next(answers)
        gevent.sleep(HANG_S if a == "hang" else ANSWER_S)
        return a

    def login_once(sess: Any) -> str:
        gevent.sleep(ANSWER_S)
        sess.token = "t"
        return "ok"

    wl._attempt = attempt  # type: ignore[method-assign]
    wl._login_once = login_once  # type: ignore[method-assign]
    wl.has_auth = True
    sess = wl.new_session("u")
    wl.login(sess)
    for _ in range(COMMANDS):
        cmd = HttpCommand(wl.specs[0], wl.now())
        wl.command(sess, cmd)
    series: dict[str, float] = {}
    for name, _i, v in tally.drain()["series"]:
        series[name] = series.get(name, 0) + v
    return counts(series)


if __name__ == "__main__":
    from test_rules_attempts import CASES

    print(repr(run_loadtest(CASES[sys.argv[1]])))
