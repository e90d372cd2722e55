"""Inside a Locust process (local runner, master or worker): users, the load shape, and the
wiring that turns a run into a results folder. Imported only by `loadtest/locustfile.py`, in a
process Locust has already patched with gevent — never by the `surge` command itself.

Clock: the master (or local runner) fixes t0 = test start + `plan.lead_s` and sends it to every
worker (`surge_t0` message), so all intervals line up across processes.
Counts: workers send `Tally` deltas in every worker report and a last one (`surge_final`) when
they stop; the master adds them up (`Collector`) and writes the results with the run's faults.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import Counter
from typing import Any

import gevent
from gevent.event import Event
from locust import LoadTestShape, User, events, task
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtest import live, plugins
from loadtest.commands import HttpClient, OutOfRequests
from loadtest.credentials import Credentials
from loadtest.dispatch import LATENESS, Dispatcher
from loadtest.faults import FaultDriver
from loadtest.http_commands import HttpCommand, specs_of
from loadtest.plan import Plan
from loadtest.policy import RetryPolicy
from loadtest.recovery import recovery
from loadtest.schedule import schedule_of
from loadtest.tally import Collector, Tally
from sim import __version__
from sim.scenario import load_scenario
from sim.streams import Streams

log = logging.getLogger("surge.loadtest")
# Follow no redirect, ever (loadtest.safety). Per-request `allow_redirects=False` is not enough:
# Locust implements it by swapping the redirect codes of the client that every greenlet of the
# process shares, so a concurrent request can find them restored and follow a 307 off loopback
# (regression: measured in a network namespace, tests/loadtest/test_loadtest_loopback_guard.py).
NO_REDIRECTS = 0
MEASURED = "measured"


class RunState:
    """What one Locust process knows about the run."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.sc = load_scenario(plan.scenario_file)
        self.t0: float | None = None
        self.t0_set = Event()
        self.tally = Tally(plan.duration_s, self.sc.run.interval_s)
        self.collector: Collector | None = None
        self.finals: set[int] = set()
        self.dispatchers: list[Dispatcher] = []
        self.workloads: list[HttpClient] = []
        self.role = "local"
        self.index = 0
        self.faults: FaultDriver | None = None
        self.policy: RetryPolicy | None = None
        self.done = False
        self.wall0 = time.time()
        self.cpu0_s = time.process_time()
        self.environment: Any = None

    def set_t0(self, t0: float) -> None:
        self.t0 = t0
        self.cpu0_s = time.process_time()  # the load generator's own CPU from here (`_finish`)
        for w in self.workloads:
            w.t0 = t0
        self.t0_set.set()

    def event(self, t: float, kind: str, target: str = "", **detail: Any) -> None:
        self.tally.event(t, kind, target, **detail)


STATE = RunState(Plan.read(os.environ["SURGE_LOADTEST_PLAN"]))
plugins.load(STATE.plan.plugins, list(STATE.sc.workload.classes))


# -- process wiring ------------------------------------------------------------------------------
# The end of the run is driven by the run's own clock, not by Locust's stop/quit sequence: at
# t0 + duration (+ drain) every load-generating process kills its starts still running, freezes
# its counts and sends the last delta (`surge_final`); the master (or local runner) waits for
# every worker's last delta, writes the results, and only then lets the load shape end the run.
@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    st, runner = STATE, environment.runner
    st.environment = environment
    if isinstance(runner, WorkerRunner):
        st.role = "worker"

        def on_t0(environment: Any, msg: Any, **kw: Any) -> None:
            st.index = _worker_index(environment)
            st.set_t0(float(msg.data))
            gevent.spawn(_finish, runner)

        runner.register_message("surge_t0", on_t0)

        @events.report_to_master.add_listener
        def _report(client_id: str, data: dict[str, Any], **kw: Any) -> None:
            data["surge"] = st.tally.drain()
    else:
        st.role = "master" if isinstance(runner, MasterRunner) else "local"
        st.collector = Collector(st.plan.duration_s, st.sc.run.interval_s, list(st.sc.workload.classes))
    if isinstance(runner, MasterRunner):
        runner.register_message("surge_final", _on_final)

        @events.worker_report.add_listener
        def _worker_report(client_id: str, data: dict[str, Any], **kw: Any) -> None:
            assert st.collector is not None
            st.collector.merge(data.get("surge"))


def _on_final(environment: Any, msg: Any, **_: Any) -> None:
    assert STATE.collector is not None
    STATE.collector.merge(msg.data["delta"])
    STATE.finals.add(int(msg.data["index"]))


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    st, runner = STATE, environment.runner
    if st.role == "worker":
        return
    t0 = time.time() + (st.plan.lead_s if st.plan.mode == "open" else 0.0)
    st.set_t0(t0)
    if isinstance(runner, MasterRunner):
        runner.send_message("surge_t0", t0)  # type: ignore[arg-type]  # Locust sends any msgpack value
    if st.plan.apply_faults and st.sc.faults:
        token = Credentials.from_env().admin_token or ""
        st.faults = FaultDriver(st.sc.faults, st.plan.host, token, t0, st.event, gevent.sleep)
        gevent.spawn(st.faults.run)
    if st.role == "local":
        gevent.spawn(_finish, runner)
    gevent.spawn(_stopper)
    gevent.spawn(_live_writer, environment)


def _snapshot(environment: Any) -> dict[str, Any]:
    """The run so far, for the live display and (at the end) the measured run's `http` meta."""
    st = STATE
    assert st.collector is not None and st.t0 is not None
    series, buckets, events = st.collector.peek()
    if st.role == "local":  # the local runner's own counts are merged only at the end
        s2, b2, e2 = st.tally.peek()
        for k, v in s2.items():
            series[k] += v
        for k, c in b2.items():
            buckets.setdefault(k, Counter()).update(c)
        events = events + e2
    elapsed = max(0.0, min(time.time() - st.t0, st.plan.duration_s))
    late = buckets.get(LATENESS)
    series.setdefault("scheduled", 0.0)
    series.setdefault("dropped", 0.0)
    return {"scenario": st.sc.name, "host": st.plan.host, "elapsed_s": elapsed, "duration_s": st.plan.duration_s,
            "dispatched": series["scheduled"] - series["dropped"], "dropped": series["dropped"],
            "lateness_p99_s": live.quantiles(late)[1],
            "commands": live.command_stats(series, buckets, list(st.sc.workload.classes), elapsed),
            "faults": [e for e in events if e.get("kind") == "fault_start"],
            "http": live.http_stats(environment.stats)}


def _live_writer(environment: Any) -> None:
    """Once a second until the run ends: `live.json` in the run folder (`surge loadtest` shows it)."""
    while not STATE.done:
        gevent.sleep(1.0)
        try:
            live.write_live(STATE.plan.out_dir, _snapshot(environment))
        except Exception:  # noqa: BLE001 - the display must never stop the run
            log.exception("live snapshot failed")


def _end_s() -> float:
    assert STATE.t0 is not None
    return STATE.t0 + STATE.plan.duration_s + STATE.plan.drain_s


def _finish(runner: Any) -> None:
    """In a load-generating process, at the end: kill running starts, freeze, send the last counts."""
    st = STATE
    gevent.sleep(max(0.0, _end_s() - time.time()))
    running = sum(d.shutdown() for d in st.dispatchers) + sum(w.stop_proactive() for w in st.workloads)
    tot = st.tally.totals
    tot["in_flight_at_end"] += sum(w.in_flight for w in st.workloads)
    tot["killed_at_end"] += running
    tot["dispatched"] += sum(d.dispatched for d in st.dispatchers)
    tot["dropped"] += sum(d.dropped for d in st.dispatchers)
    tot["requests_sent"] += sum(st.plan.max_requests - w.requests_left for w in st.workloads)
    tot["loadgen_cpu_us"] += round(1e6 * (time.process_time() - st.cpu0_s))  # summed over processes
    delta = st.tally.freeze()
    if st.role == "worker":
        runner.send_message("surge_final", {"index": st.index, "delta": delta})
    else:
        assert st.collector is not None
        st.collector.merge(delta)
        st.finals.add(0)


def _stopper() -> None:
    """On the master (or local runner): wait for every last delta, write the results, end the run."""
    st = STATE
    gevent.sleep(max(0.0, _end_s() - time.time()))
    need = max(1, st.plan.workers)
    deadline = time.time() + 20
    while len(st.finals) < need and time.time() < deadline:
        gevent.sleep(0.05)
    try:
        _write_results(st)
    finally:
        st.done = True  # the shape's next tick ends the run (one quit, Locust's own)


def _write_results(st: RunState) -> None:
    assert st.collector is not None
    st.collector.merge(st.tally.drain())
    sc, plan = st.sc, st.plan
    meta = {
        "source": "loadtest", "engine": "locust", "surge_version": __version__, "scenario": sc.name,
        "seed": sc.run.seed, "replication": 0, "duration_s": plan.duration_s, "warmup_s": sc.run.warmup_s,
        "services": sc.services.names(), "slos": {c: s.model_dump() for c, s in sc.slos.items()},
        "slos_not_measured": [], "host": plan.host, "model": plan.model, "mode": plan.mode,
        "workers": plan.workers, "t0_unix": st.t0, "wall_s": round(time.time() - st.wall0, 3),
        "worker_finals": sorted(st.finals), "totals": dict(st.collector.totals),
        "faults_applied": st.faults.applied if st.faults else 0,
    }
    res = st.collector.results(meta)
    res.meta["recovery"] = recovery(res)
    res.meta["http"] = live.http_stats(st.environment.stats) if st.environment is not None else {}
    res.write(os.path.join(plan.out_dir, MEASURED))
    log.warning("surge: results written to %s", os.path.join(plan.out_dir, MEASURED))


# -- users ---------------------------------------------------------------------------------------
def _worker_index(environment: Any) -> int:
    runner = environment.runner
    return max(0, int(getattr(runner, "worker_index", 0))) if isinstance(runner, WorkerRunner) else 0


class OpenModelUser(User):
    """One per process: dispatches this process's share of the scenario's session starts."""

    fixed_count = 0

    @task
    def dispatch(self) -> None:
        st, plan = STATE, STATE.plan
        st.index = _worker_index(self.environment)
        st.t0_set.wait()
        assert st.t0 is not None
        client = FastHttpSession(base_url=plan.host, request_event=self.environment.events.request, user=None,
                                 concurrency=plan.max_in_flight, network_timeout=_net_timeout(st.sc),
                                 connection_timeout=10.0, max_retries=0, insecure=True, max_redirects=NO_REDIRECTS)
        wl = HttpClient(st.sc, plan, st.tally, client, f"w{st.index}", st.t0)
        sched = schedule_of(st.sc).share(st.index, max(1, plan.workers))
        d = Dispatcher(sched, lambda k, late: _start(wl, sched, k, late), st.tally, st.t0, plan.duration_s,
                       plan.max_in_flight)
        st.workloads.append(wl)
        st.dispatchers.append(d)
        d.run()  # `_finish` ends what is still running at the end of the run
        while True:  # stay until the master stops the run
            gevent.sleep(3600)


def _start(wl: HttpClient, sched: Any, k: int, late: float) -> None:
    p = int(sched.prompt_tokens[k]) if sched.prompt_tokens is not None else -1
    o = int(sched.output_tokens[k]) if sched.output_tokens is not None else -1
    try:
        task = sched.task(k)
        if task:
            wl.proactive_task(f"u{STATE.index}-{k}", task, late)
        else:
            wl.session(f"u{STATE.index}-{k}", late, p, o)
    except OutOfRequests:  # the request bound: no more starts from this process
        for d in STATE.dispatchers:
            d.stopped = True
    except Exception:  # noqa: BLE001 - a bug in one session must not stop the dispatcher
        log.exception("session %s failed", k)


def _net_timeout(sc: Any) -> float:
    return min(600.0, (sc.clients.timeout_s or 300.0) + 5.0)


_user_ids = itertools.count()


def _jitter(st: RunState) -> Any:
    rng = Streams(st.sc.run.seed)(f"loadtest.closed{st.index}.jitter")
    return lambda: float(rng.random())


class _ClosedUser(FastHttpUser):
    """Closed model: a fixed population looping over commands of its kind, with think times."""

    abstract = True
    kind = "chat"
    concurrency = 4
    max_redirects = NO_REDIRECTS

    def on_start(self) -> None:
        st = STATE
        st.t0_set.wait()
        n = next(_user_ids)
        if st.policy is None:
            st.policy = RetryPolicy(st.sc.clients, _jitter(st), time.time)
        self.wl = HttpClient(st.sc, st.plan, st.tally, self.client, f"{self.kind}{st.index}-{n}", st.t0 or 0.0,
                           self.kind, st.policy)
        st.workloads.append(self.wl)
        self.sess = self.wl.new_session(f"{self.kind}{st.index}-{n}")
        if self.wl.has_auth:
            self.wl.login(self.sess)

    def wait_time(self) -> float:
        return float(self.wl.think()) if self.wl.sc.population else 0.0

    @task
    def run_command(self) -> None:
        if STATE.t0 is not None and time.time() - STATE.t0 >= STATE.plan.duration_s:
            gevent.sleep(1)
            return
        try:
            self.wl.command(self.sess, HttpCommand(self.wl.pick(), self.wl.now()))
        except OutOfRequests:
            raise StopUser() from None


class ChatUser(_ClosedUser):
    """Streams chat completions (TTFT, inter-token gaps, TPOT) like the scenario's chat classes."""

    kind = "chat"


class AgentBuyer(_ClosedUser):
    """Logs in, runs "help me buy" agent commands with an Idempotency-Key, checks the order."""

    kind = "agent"


class RunShape(LoadTestShape):
    """Bounds every run: open model = one dispatcher per process; closed = users and spawn rate.
    Returns None (stop) once the duration (plus drain) has passed."""

    def tick(self) -> tuple[int, float] | None:
        st, plan = STATE, STATE.plan
        if st.done or (st.t0 is not None and time.time() >= st.t0 + plan.duration_s + plan.drain_s + 30):
            return None  # `_stopper` sets `done` once the results are written; the rest is a fallback
        if plan.mode == "open":
            n = max(1, plan.workers)
            return n, float(n)
        return plan.users, plan.spawn_rate


def exported() -> dict[str, Any]:
    """The user classes and shape the locustfile exposes for this plan's mode."""
    st = STATE
    if st.plan.mode == "open":
        return {"OpenModelUser": OpenModelUser, "RunShape": RunShape}
    kinds = {s.kind: s.cls.probability for s in specs_of(st.sc)}
    out: dict[str, Any] = {"RunShape": RunShape}
    weights: dict[str, float] = {}
    for s in specs_of(st.sc):
        weights[s.kind] = weights.get(s.kind, 0.0) + s.cls.probability
    if "chat" in kinds:
        ChatUser.weight = max(1, round(100 * weights["chat"]))
        out["ChatUser"] = ChatUser
    if "agent" in kinds:
        AgentBuyer.weight = max(1, round(100 * weights["agent"]))
        out["AgentBuyer"] = AgentBuyer
    return out
