"""The SimPy engine: build the stack and the users from a scenario, run, return Results."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import chain
from pathlib import Path

import simpy
from simpy.core import StopSimulation
from simpy.events import NORMAL, URGENT, EventPriority

from sim import __version__
from sim.arrivals import arrival_blocks, load_trace, proactive_times
from sim.des.client import Client
from sim.des.stack import StackModel
from sim.des.users import launch_users
from sim.errors import SimulationError
from sim.results import Recorder, Results
from sim.results import names as N
from sim.rules.inventory import Stock
from sim.scenario import Scenario
from sim.streams import Streams

Progress = Callable[[float], None]


def simulate(sc: Scenario, seed: int | None = None, progress: Progress | None = None,
             replication: int = 0) -> Results:
    """Run one replication of a scenario; `progress(fraction)` is called as simulated time passes.

    The results are a pure function of the scenario, the seed and the surge version: nothing in
    them depends on the machine or the wall clock (so the same seed writes the same bytes)."""
    seed = sc.run.seed if seed is None else seed
    env = simpy.Environment()
    streams = Streams(seed)
    rec = Recorder(sc.run.duration_s, sc.run.interval_s, list(sc.workload.classes))
    stack = StackModel(env, sc, streams, rec)
    client = Client(env, stack, rec, streams)
    if launch_users(env, sc, client, streams, rec, seed) is None:
        _arrivals(env, sc, client, streams)
    _proactive(env, sc, client, streams)
    _schedule_faults(env, sc, stack, rec)
    if stack.fleet is not None and sc.services.llm and sc.services.llm.autoscaling:
        env.process(stack.fleet.autoscale(rec))
    finish = _sample_every_interval(env, rec, _gauges(stack, client, rec))
    _run(env, sc.run.duration_s, progress)
    finish()
    meta = {
        "source": "des", "engine": "simpy", "surge_version": __version__, "scenario": sc.name,
        "seed": seed, "replication": replication, "duration_s": sc.run.duration_s,
        "warmup_s": sc.run.warmup_s, "start_hour": sc.run.start_hour, "services": stack.scenario.services.names(),
        "slos": {c: s.model_dump() for c, s in sc.slos.items()},
    }
    res = Results.from_recorder(rec, meta)
    res.scenario = sc.model_dump(mode="json")
    return res


def _run(env: simpy.Environment, horizon: float, progress: Progress | None) -> None:
    steps = 100 if progress else 1
    for k in range(1, steps + 1):
        run_guarded(env, horizon * k / steps)
        if progress:
            progress(k / steps)


MAX_EVENTS_PER_SIM_S = 1_000_000  # 100x the busiest shipped scenario (sre_failover: ~10,000)
GUARD_SPAN = 1 << 18  # events between checks: ~3 s of engine time


def run_guarded(env: simpy.Environment, until: float, span: int = GUARD_SPAN,
                max_events_per_s: float = MAX_EVENTS_PER_SIM_S) -> None:
    """`env.run(until=until)`, stopped with a `SimulationError` when simulated time stalls: each
    `span` events must advance it by at least `span / max_events_per_s` seconds. Zero latencies
    with zero think times, or a timer of 1e-300 s, would otherwise never reach `until`.

    The check costs one comparison per `span` events; the loop itself is SimPy's `run` loop."""
    stop = simpy.Event(env)
    stop._ok = True
    stop._value = None
    stop.callbacks.append(StopSimulation.callback)  # type: ignore[union-attr]
    env.schedule(stop, URGENT, until - env.now)
    step, min_advance_s = env.step, span / max_events_per_s
    try:
        while True:
            t0 = env.now
            for _ in range(span):
                step()
            if env.now - t0 < min_advance_s:
                raise SimulationError(
                    f"simulated time stalled at t={env.now:.6g} s: {span:,} events in {env.now - t0:.3g} simulated "
                    f"seconds (the engine stops above {max_events_per_s:,.0f} events per simulated second); look "
                    "for zero latencies with zero think times, or tiny periods such as autoscaling.interval_s")
    except StopSimulation:
        return


def _arrivals(env: simpy.Environment, sc: Scenario, client: Client, streams: Streams) -> None:
    """Start a session at each arrival time: a chain of bare events, one per arrival (cheaper
    than a process resumed per arrival, and in the same order)."""
    base = Path(sc.base_dir)
    tokens = None
    if sc.arrivals.trace is not None and sc.arrivals.trace.prompt_column:
        tr = load_trace(sc, base)
        tokens = (tr.prompt_tokens, tr.output_tokens)
    # one flat iterator over the blocks (chain's next is C code: no Python frame per arrival)
    times = chain.from_iterable(block.tolist() for block in arrival_blocks(sc, streams("arrivals"), base))
    session, process, timeout = client.session, env.process, env.timeout
    k = 0
    due = False

    def start() -> None:
        nonlocal k
        if tokens is None:
            process(session())
            return
        p = int(tokens[0][k])  # type: ignore[index]
        o = int(tokens[1][k]) if tokens[1] is not None else -1
        process(session(p, o))
        k += 1

    def fire(_: simpy.Event) -> None:
        # the next arrival is a Timeout (NORMAL priority, like `_at(..., NORMAL)`, one call less)
        nonlocal due
        if due:
            start()
        now = env.now
        for t in times:
            if t > now:
                due = True
                timeout(t - now).callbacks.append(fire)  # type: ignore[union-attr]
                return
            start()

    _at(env, 0.0, fire)


def _proactive(env: simpy.Environment, sc: Scenario, client: Client, streams: Streams) -> None:
    """Start each scheduled proactive task at its time (`sim.arrivals.proactive_times`)."""
    starts = proactive_times(sc, streams("proactive.schedule"))

    def start(name: str, _: simpy.Event) -> None:
        env.process(client.proactive(name))

    for t, name in zip(starts.times_s.tolist(), starts.classes, strict=True):
        _at(env, t, partial(start, name), NORMAL)


def _schedule_faults(env: simpy.Environment, sc: Scenario, stack: StackModel, rec: Recorder) -> None:
    def run(f):  # type: ignore[no-untyped-def]
        yield env.timeout(f.at_s)
        rec.event(env.now, "fault_start", f.target, fault_kind=f.kind, magnitude=f.magnitude, duration_s=f.duration_s)
        stack.start_fault(f)
        yield env.timeout(f.duration_s)
        stack.end_fault(f)
        rec.event(env.now, "fault_end", f.target, fault_kind=f.kind)

    for f in sc.faults:
        env.process(run(f))


def _gauges(stack: StackModel, client: Client, rec: Recorder) -> list[tuple[str, Callable[[], float]]]:
    """Gauges read at each interval's end; rates are differences of running totals."""
    dt = rec.interval_s
    out: list[tuple[str, Callable[[], float]]] = [(N.IN_FLIGHT, lambda: client.in_flight)]
    pools = [("gateway", stack.gateway.pool)] if stack.gateway else []
    pools += [("auth", stack.auth.pool)] if stack.auth else []
    pools += [(n, s.pool) for n, s in stack.tools.items()]
    for name, pool in pools:
        out.append((N.of_service("queue", name), partial(getattr, pool, "waiting")))
        out.append((N.of_service("capacity", name), partial(getattr, pool, "capacity")))
        out.append((N.of_service("utilisation", name), _utilisation(pool)))
        out.append((N.of_service("occupancy", name), _time_average(pool.occupancy_area, pool.env)))
        out.append((N.of_service("granted", name), _rate(partial(getattr, pool, "granted"))))
        out.append((N.of_service("waited", name), _rate(partial(getattr, pool, "queued"))))
        out.append((N.of_service("wait_s", name), _rate(partial(getattr, pool, "wait_s"))))
    services = ([("auth", stack.auth)] if stack.auth else []) + list(stack.tools.items())
    for name, svc in services:
        out.append((N.of_service("served", name), _rate(partial(getattr, svc, "served"))))
        out.append((N.of_service("time_s", name), _rate(partial(getattr, svc, "time_s"))))
    for name, svc in stack.tools.items():
        if svc.stock is not None:
            out += _stock_gauges(name, svc.stock, stack.env)
    fl = stack.fleet
    if fl is not None:
        st = fl.stats
        last = {"steps": 0, "batch": 0, "prefill": 0, "decode": 0, "pre": 0, "busy": 0.0, "occ": 0, "occ_steps": 0}

        def delta(key: str, now: float) -> float:
            d = now - last[key]
            last[key] = now
            return d

        def batch() -> float:
            steps = delta("steps", st.steps)
            return delta("batch", st.batch_seqs) / steps if steps else 0.0

        up = lambda: sum(1 for r in fl.replicas if r.up and r.accepting)  # noqa: E731
        gauges: list[tuple[str, Callable[[], float]]] = [
            (N.LLM_BATCH, batch),
            (N.LLM_KV_FRAC, fl.kv_frac),
            (N.LLM_PREFILL_TOKENS, lambda: delta("prefill", st.prefill_tokens)),
            (N.LLM_DECODE_TOKENS, lambda: delta("decode", st.decode_tokens)),
            (N.LLM_PREEMPTIONS, lambda: delta("pre", st.preemptions)),
            (N.LLM_REPLICAS_UP, up),
            (N.of_service("queue", "llm"), fl.queue_len),
            (N.of_service("capacity", "llm"), up),
            # how full the batches are: mean sequences per step / max_num_seqs
            (N.of_service("utilisation", "llm"), lambda: delta("occ", st.batch_seqs) / max(1, delta("occ_steps", st.steps))
             / fl.spec.max_num_seqs),
            (N.LLM_BUSY, lambda: delta("busy", st.busy_s) / (dt * max(1, up()))),
        ]
        out += gauges
    return out


def _stock_gauges(name: str, stock: Stock, env: simpy.Environment) -> list[tuple[str, Callable[[], float]]]:
    """An inventory's hold decisions and sales per interval, and its units at the interval's end
    (holds due to lapse by then are lapsed first: expiry is a function of time)."""
    def at_end(attr: str) -> Callable[[], float]:
        def read() -> float:
            stock.expire(env.now)
            return float(getattr(stock, attr))
        return read

    units_sold = lambda: stock.sold_units  # noqa: E731
    hot = [(N.of_stock("hot_free", name), at_end("hot_free_units"))] if stock.spec.hot else []
    return [(N.of_stock("stock_free", name), at_end("free_units")),  # first: it applies expiry
            (N.of_stock("stock_held", name), at_end("held_units")), *hot,
            (N.of_stock("holds", name), _rate(partial(getattr, stock, "granted"))),
            (N.of_stock("conflicts", name), _rate(partial(getattr, stock, "conflicts"))),
            (N.of_stock("sold_out_answers", name), _rate(partial(getattr, stock, "sold_out"))),
            (N.of_stock("lapsed", name), _rate(partial(getattr, stock, "lapsed"))),
            (N.of_stock("sold", name), _rate(units_sold))]


def _rate(total: Callable[[], float], scale: float = 1.0) -> Callable[[], float]:
    """A gauge of how much a running total grew during the interval (times `scale`)."""
    last = [0.0]

    def read() -> float:
        now = total()
        d, last[0] = now - last[0], now
        return d * scale

    return read


def _time_average(area: Callable[[], float], env: simpy.Environment) -> Callable[[], float]:
    """A gauge of the time average over the interval of a quantity whose integral is `area()`
    (the last interval may be short)."""
    last = [0.0, 0.0]

    def read() -> float:
        a, now = area(), env.now
        avg = (a - last[0]) / (now - last[1]) if now > last[1] else 0.0
        last[0], last[1] = a, now
        return avg

    return read


def _utilisation(pool) -> Callable[[], float]:  # type: ignore[no-untyped-def]
    last = [0.0, 0.0]

    def read() -> float:
        busy, cap = pool.busy_area()
        d_busy, d_cap = busy - last[0], cap - last[1]
        last[0], last[1] = busy, cap
        return d_busy / d_cap if d_cap > 0 else 0.0

    return read


def _sample_every_interval(env: simpy.Environment, rec: Recorder, gauges: list) -> Callable[[], None]:  # type: ignore[type-arg]
    """Sample gauges at each interval end, before any other event at that instant (URGENT),
    so a sample sees exactly the events of its own interval. Returns the call that takes the
    last sample (the run stops at the horizon before that instant's events)."""
    for name, read in gauges:
        rec.gauge(name, read)
    state = {"i": 0}

    def fire(_: simpy.Event) -> None:
        rec.sample(state["i"])
        state["i"] += 1
        if state["i"] < rec.n_intervals:
            _at(env, rec.interval_s, fire)

    _at(env, rec.interval_s, fire)

    def finish() -> None:
        while state["i"] < rec.n_intervals:
            rec.sample(state["i"])
            state["i"] += 1

    return finish


def _at(env: simpy.Environment, delay: float, callback: Callable[[simpy.Event], None],
        priority: EventPriority = URGENT) -> None:
    ev = simpy.Event(env)
    ev._ok = True
    ev._value = None
    ev.callbacks.append(callback)  # type: ignore[union-attr]
    env.schedule(ev, priority, delay)
