"""The clients send attempts (fleet engine): new commands of the sessions that are due, retries
whose backoff is over, commands whose re-login succeeded; each through the session check, the
client's throttling (adaptive throttle, retry budget), the gateway's rate limit, its error and
outage faults, and its bounded admission queue (shedding, priority eviction). What fails on the
way is an outcome (`outcomes.failed`); what passes enters its row (`FleetSim`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.flows import ClassFlow
from sim.fleet.orders import OrderBook
from sim.fleet.outcomes import failed
from sim.fleet.split import binomial, fraction, mean_of, systematic, take_share
from sim.results import names as N
from sim.rules.outcomes import AUTH, ERROR, REJECTED, SHED, THROTTLED

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim


def send(sim: FleetSim, n: int, i: int) -> None:
    """This step's attempts: sessions that start or are due for a command, logins due, retries
    whose backoff is over and commands whose re-login succeeded."""
    st = sim.states
    new = sim.starts_in(n) if sim.launch is None else np.zeros(sim.R)
    if sim.launch is not None:  # the launch population's sessions (sim/fleet/launch.py)
        sim.launch.send(n, i)
    elif new.any():
        if sim.logins is not None:
            sim.logins.start_sessions(new, n)
        else:
            new_commands(sim, np.column_stack([new] + [np.zeros(sim.R)] * (st.n - 1)), n, i)
    due = sim.sessions.due(n) + sim.pending_new
    sim.pending_new = np.zeros_like(sim.pending_new)
    if due.any():
        new_commands(sim, due, n, i)
    if sim.logins is not None:
        sim.logins.due(n)
    if sim.proactive is not None:
        sim.proactive.due(n, i)
    for fl in sim.flows:
        x, age = fl.retries.due(n)
        o = None
        if fl.book is not None:  # (R, K, S * O): session and order states
            x4 = x.reshape(sim.R, sim.K, st.n, -1)
            x, o = x4.sum(axis=3), x4.sum(axis=2) + fl.book.ready
            fl.book.ready = np.zeros_like(fl.book.ready)
        x, age = x + fl.ready, age + fl.ready_age
        fl.ready = np.zeros_like(fl.ready)
        fl.ready_age = np.zeros_like(fl.ready_age)
        if x.any():
            send_attempts(sim, fl, x, age, n, i, o)


def new_commands(sim: FleetSim, sess: np.ndarray, n: int, i: int) -> None:
    """New commands for sessions (R, S): a class each, then their first attempt."""
    if sim.funnel is not None:  # the class by the user's card state, and funnel plans
        sim.funnel.new_commands(sess, n, i)
        return
    by_class = systematic(sess, sim.probs, sim.rng)  # (R, S, C)
    for ci, fl in enumerate(sim.flows):
        x = by_class[:, :, ci]
        if x.any():
            start_commands(sim, fl, x, n, i)


def start_commands(sim: FleetSim, fl: ClassFlow, x: np.ndarray, n: int, i: int) -> None:
    """New commands of one class for sessions x (R, S): their first attempt."""
    sim.rec.add(N.of_class("arrived", fl.name), i, x.sum(axis=1))
    first = np.zeros((sim.R, sim.K, sim.states.n))
    first[:, 0] = x
    send_attempts(sim, fl, first, np.zeros((sim.R, sim.K)), n, i)


def send_attempts(sim: FleetSim, fl: ClassFlow, x: np.ndarray, age: np.ndarray, n: int, i: int,
                  o: np.ndarray | None = None) -> None:
    """Send attempts x (R, K, S) of one class (command ages summed in age (R, K); order states
    o (R, K, O) of an order-placing class, None: new orders)."""
    st, rec, R = sim.states, sim.rec, sim.R
    book = fl.book
    if book is not None and o is None:
        o = book.fresh(x)
    if st.auth:
        bad = x * ~st.logged_in[None, None, :]
        if bad.any():  # the session is gone: the attempt fails auth without reaching the gateway
            _count_sent(sim, fl, bad, i)
            frac = fraction(bad.sum(axis=2), x.sum(axis=2))
            o_bad, o = _part(book, o, bad)
            failed(sim, fl, AUTH, bad, mean_of(age * frac, bad.sum(axis=2)), n, i, o=o_bad)
            age = age * (1 - frac)
            x = x - bad
    if not x.any():
        return
    x, age, o = _throttle(sim, fl, x, age, n, i, o)
    if not x.any():
        return
    _count_sent(sim, fl, x, i)
    tot = x.sum(axis=(1, 2))
    passed = sim.gw.rate_limit(tot, sim.now) if sim.gw is not None else tot
    for reason, keep in ((REJECTED, passed), (ERROR, _door(sim, passed))):
        if (keep < tot).any():
            gone = take_share(x, tot - keep, sim.rng)
            frac = fraction(gone.sum(axis=2), x.sum(axis=2))
            o_gone, o = _part(book, o, gone)
            failed(sim, fl, reason, gone, mean_of(age * frac, gone.sum(axis=2)), n, i, o=o_gone)
            age = age * (1 - frac)
            x = x - gone
            tot = x.sum(axis=(1, 2))
    if not tot.any():
        return
    if sim.gw is not None:
        shed, evicted = sim.gw.enqueue(fl.name, tot, n, sim.rng)
        if shed.any():
            gone = take_share(x, shed, sim.rng)
            frac = fraction(gone.sum(axis=2), x.sum(axis=2))
            o_gone, o = _part(book, o, gone)
            failed(sim, fl, SHED, gone, mean_of(age * frac, gone.sum(axis=2)), n, i, o=o_gone)
            age = age * (1 - frac)
            x = x - gone
        for other in sim.flows:
            if other.name in evicted:  # a more important arrival took their places (the newest)
                leave_queue(sim, other, evicted[other.name], SHED)
    r = sim.rows.row(n)
    fl.comp[:, :, :, r] += x
    fl.age0[:, :, r] += age
    if book is not None and o is not None:
        book.enter(o, r)
    if sim.gw is None:
        rows = np.zeros((R, sim.rows.NR))
        rows[:, r] = x.sum(axis=(1, 2))
        rec.add(N.of_class("admitted", fl.name), i, rows.sum(axis=1))
        fl.forward = fl.forward + rows


def _door(sim: FleetSim, tot: np.ndarray) -> np.ndarray:
    """Attempts that pass the gateway's error and outage faults."""
    if sim.gw is None:
        return tot
    eff = sim.gw.effect
    if eff.outage:
        return np.zeros_like(tot)
    if eff.error_rate > 0:
        return tot - binomial(tot, eff.error_rate, sim.rng)
    return tot


def leave_queue(sim: FleetSim, fl: ClassFlow, rows: np.ndarray, outcome: str) -> None:
    """Attempts of class `fl` that left the gateway queue with `outcome`, by their rows (R, NR)
    (evicted, or failed by a gateway outage); they never held a gateway slot."""
    fl.out[outcome] = fl.out.get(outcome, 0) + rows
    fl.unslotted = fl.unslotted + rows.sum(axis=1)
    if fl.book is not None:
        fl.book.leave_gateway(rows, outcome)


def _throttle(sim: FleetSim, fl: ClassFlow, x: np.ndarray, age: np.ndarray, n: int, i: int,
              o: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if not sim.policy.may_refuse:
        return x, age, o
    refused = np.zeros_like(x)
    for r, pol in enumerate(sim.policies):
        retr = x[r, 1:].sum()
        if retr and pol.spec.retry_budget_ratio is not None:
            allow = pol.budget_allows(float(retr), sim.now)
            if allow < retr:
                refused[r, 1:] = take_share(x[r:r + 1, 1:], np.array([retr - allow]), sim.rng)[0]
        p = pol.throttle_probability(sim.now)
        if p > 0:
            more = binomial(x[r] - refused[r], p, sim.rng)
            refused[r] += more
            pol.throttled_many(float(more.sum()), sim.now)
    if refused.any():
        frac = fraction(refused.sum(axis=2), x.sum(axis=2))
        o_ref, o = _part(fl.book, o, refused)
        failed(sim, fl, THROTTLED, refused, mean_of(age * frac, refused.sum(axis=2)), n, i, sent=False, o=o_ref)
        age = age * (1 - frac)
        x = x - refused
    return x, age, o


def _part(book: OrderBook | None, o: np.ndarray | None, gone: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The order states (R, K, O) of attempts `gone` (R, K, S) taken out of those with states o,
    and what is left of o (None, None without a book)."""
    if book is None or o is None:
        return None, o
    taken = book.take(o, gone.sum(axis=2))
    return taken, o - taken


def _count_sent(sim: FleetSim, fl: ClassFlow, x: np.ndarray, i: int) -> None:
    per_k = x.sum(axis=2)
    sim.rec.add(N.of_class("attempts", fl.name), i, per_k.sum(axis=1))
    sim.rec.add(N.of_class("retries", fl.name), i, per_k[:, 1:].sum(axis=1))
    if sim.tracks_sends:
        for r, pol in enumerate(sim.policies):
            pol.sent_many(float(per_k[r, 0]), float(per_k[r, 1:].sum()), sim.now)
