"""Which engine runs a scenario: `simulate(sc, engine="auto" | "des" | "fleet")`.

- `des` (SimPy): one request at a time, exact and traceable; its cost grows with the number of
  commands (a few thousand per CPU-second). For cells, short runs, per-request questions, the
  queueing-theory cases, and anything the fleet engine does not model exactly.
- `fleet` (numpy): counts in time steps; its cost grows with simulated time and the number of
  classes and stages, not with the number of users or replicas. For the full fleet (millions of
  users, thousands of replicas), whole campaign days and batches of replications.
  `--engine fleet` refuses a scenario with something it does not model at all (`fleet_missing`:
  orders holding several inventory stages or varying quantities, proactive tasks with logins or
  multi-command sessions) rather than ignore it.
- `auto`: `fleet` when the run would send more commands than the SimPy engine simulates in
  about a minute (`AUTO_COMMANDS`) and the fleet engine models the scenario; else `des`.
"""

from __future__ import annotations

from typing import Literal

from sim.errors import SimulationError
from sim.results import Results
from sim.scenario import Scenario

Engine = Literal["auto", "des", "fleet"]
ENGINES: tuple[str, ...] = ("auto", "des", "fleet")
AUTO_COMMANDS = 300_000  # about a minute of the SimPy engine on one core


def expected_commands(sc: Scenario) -> float:
    """Commands the run would start: session starts x commands per session (trace: its rows),
    plus the scheduled proactive tasks (follow-ups are not counted)."""
    from sim.fleet.client import Sessions, SessionStates
    from sim.fleet.sessions_in import expected_sessions

    per_session = 1.0
    if sc.population is not None:
        q = Sessions(sc, 1, SessionStates(sc), sc.run.interval_s).q
        per_session = 1.0 / (1.0 - q)
    scheduled = sum(len(t.firings(sc.run.duration_s)) * t.commands * sc.arrivals.scale
                    for t in (sc.proactive.schedules if sc.proactive else ()))
    return expected_sessions(sc) * per_session + scheduled


def fleet_missing(sc: Scenario) -> str | None:
    """What of this scenario the fleet engine does not model at all (None: nothing): its results
    would be silently wrong, so `--engine fleet` refuses the scenario (`choose`). Inventories
    (one hold stage of one constant quantity per class), money, image tokens, wrong-item faults,
    proactive tasks, the launch population and the buy funnel are modelled (sim/fleet/orders.py,
    holdwork.py, inventory.py, proactive.py, launch.py, funnel.py)."""
    from sim.fleet.holdwork import fleet_inventory_missing

    missing = fleet_inventory_missing(sc)
    if missing is not None:
        return missing
    if sc.proactive is not None:
        if sc.services.auth is not None:
            return "proactive tasks with a login (proactive with services.auth: a task's session logs in first)"
        pop = sc.population
        if pop is not None and not (pop.commands_per_session.type == "constant" and pop.commands_per_session.mean == 1):
            return ("proactive tasks in sessions of several commands (proactive with "
                    "population.commands_per_session: a task's session ends with it)")
    return None


def fleet_unsupported(sc: Scenario) -> str | None:
    """Why the fleet engine cannot run this scenario as the SimPy engine would (None: it can)."""
    missing = fleet_missing(sc)
    if missing is not None:
        return missing
    gw = sc.services.gateway
    if gw is not None and gw.rate_limit is not None and gw.rate_limit.per_user_per_s:
        return "per-user rate limits (services.gateway.rate_limit.per_user_per_s) need one bucket per user"
    if any(s.circuit_breaker for s in sc.services.tools.values()):
        return "circuit breakers (services.tools.*.circuit_breaker) need the order of outcomes"
    if sc.arrivals.process == "trace" and sc.arrivals.trace and sc.arrivals.trace.prompt_column:
        return "token lengths from a trace (arrivals.trace.prompt_column) are per request"
    if sc.services.host is not None:
        return "a shared host CPU (services.host) is processor sharing of each piece of work"
    return None


def choose(sc: Scenario, engine: str = "auto") -> str:
    """The engine `simulate` would use (see the module docstring)."""
    if engine not in ENGINES:
        raise SimulationError(f"'--engine' must be one of {list(ENGINES)} (got {engine!r})")
    if engine == "fleet" and (missing := fleet_missing(sc)) is not None:
        raise SimulationError(f"'--engine fleet': the fleet engine does not model {missing}; "
                              f"run scenario {sc.name!r} with '--engine des'")
    if engine != "auto":
        return engine
    if fleet_unsupported(sc) is None and expected_commands(sc) > AUTO_COMMANDS:
        return "fleet"
    return "des"


def simulate(sc: Scenario, engine: str = "auto", seed: int | None = None, replication: int = 0,
             fleet_dt: float | None = None, fleet_max_dt: float | None = None) -> Results:
    """One replication with the chosen engine (`fleet_dt`: the fleet engine's time step, s;
    None = `sim.fleet.kernels.choose_dt`; `fleet_max_dt`: its adaptive step's longest, None = fixed)."""
    which = choose(sc, engine)
    if which == "des":
        from sim.des import simulate as des

        return des(sc, seed=seed, replication=replication)
    from sim.fleet import simulate as fleet

    res = fleet(sc, seed=seed, dt=fleet_dt, max_dt=fleet_max_dt)
    res.meta["replication"] = replication
    return res
