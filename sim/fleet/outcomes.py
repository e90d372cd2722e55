"""Outcomes back to the clients (fleet engine): what left the pipeline in this step (success,
error, shed) is split over the attempt numbers and session states of its row; a success ends its
command (e2e, goodput, the session goes on or ends); a failed attempt follows the attempt loop's
rules (`sim.rules.attempts` via `client.retry_target`): retry after a backoff, re-login, fail,
or abandon when the backoff would outlast the user's patience.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.client import retry_target, split_comp
from sim.fleet.flows import ClassFlow
from sim.fleet.orders import couple
from sim.fleet.split import fraction, mean_of, systematic
from sim.results import names as N
from sim.rules.outcomes import AUTH, OK, TIMEOUT

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim

_TRI = np.array([-0.5, -0.134, 0.134, 0.5])  # quartile midpoints of U - U' (triangular on [-1, 1])
_QUARTERS = np.full(4, 0.25)


def settle(sim: FleetSim, n: int, i: int) -> None:
    """What left the pipeline in this step goes back to its clients, split over its rows' tags."""
    A = sim.rows.A
    ages = sim.rows.ages(n) * sim.dt  # (A,) seconds since each row started
    for fl in sim.flows:
        out, fl.out = fl.out, {}
        for reason, rows in out.items():
            live = rows[:, :A]
            o = fl.book.outcome(reason, A) if fl.book is not None else None  # (R, K, O, A)
            if not live.any():
                continue
            if o is not None:  # the book knows their attempt numbers: session states in proportion
                R, K, S = sim.R, sim.K, sim.states.n
                by_k = split_comp(fl.comp.reshape(R * K, S, A), o.sum(axis=2).reshape(R * K, A), sim.rng)
                part = by_k.reshape(R, K, S, A)
            else:
                part = split_comp(fl.comp, live, sim.rng)  # (R, K, S, A)
            fl.comp -= part
            cnt = part.sum(axis=2)  # (R, K, A)
            have = cnt + fl.comp.sum(axis=2)
            age0 = fl.age0 * fraction(cnt, have)
            fl.age0 -= age0
            if reason == OK:
                _succeeded(sim, fl, part, age0, ages, n, i)
                if fl.book is not None and o is not None:
                    fl.book.succeeded(o.sum(axis=3), i)
            else:
                k_age = (age0.sum(axis=2) + (cnt * ages).sum(axis=2))
                failed(sim, fl, reason, part.sum(axis=3), mean_of(k_age, cnt.sum(axis=2)), n, i,
                       o=o.sum(axis=3) if o is not None else None)


def _succeeded(sim: FleetSim, fl: ClassFlow, part: np.ndarray, age0: np.ndarray, ages: np.ndarray, n: int,
               i: int) -> None:
    st, rec = sim.states, sim.rec
    cnt = part.sum(axis=2)  # (R, K, A)
    r, k, a = np.nonzero(cnt)  # the cohorts that finished (most rows are empty in a cell)
    c = cnt[r, k, a]
    e2e = ages[a] + age0[r, k, a] / c
    quarters = systematic(c, _QUARTERS, sim.rng)  # (m, 4): spread over the step's start and end
    vals = np.maximum(e2e[:, None] + _TRI * sim.dt, 0.05 * sim.dt)
    rec.record_at("e2e", fl.name, np.repeat(r, 4), vals.ravel(), quarters.ravel())
    done = cnt.sum(axis=(1, 2))
    rec.add(N.of_class("completed", fl.name), i, done)
    good = (quarters * (vals <= fl.good_within_s)).sum(axis=1)
    rec.add(N.of_class("good", fl.name), i, np.bincount(r, weights=good, minlength=sim.R))
    if fl.places_order and not (sim.funnel is not None and fl.name in sim.funnel.by_name):
        rec.add(N.ORDERS, i, done)  # a funnel class's orders are its ordered plans (sim/fleet/funnel.py)
    sim.cum["ended"] += done
    if sim.tracks_answers:
        for rep, pol in enumerate(sim.policies):
            pol.answered_many(OK, float(done[rep]), sim.now)
    sess = st.move(part.sum(axis=(1, 3)), st.after_ok)
    sim.sessions.end(sess)
    if sim.proactive is not None:
        sim.proactive.succeeded(fl.name, done, n)


def failed(sim: FleetSim, fl: ClassFlow, reason: str, x: np.ndarray, age_s: np.ndarray, n: int, i: int,
           sent: bool = True, o: np.ndarray | None = None) -> None:
    """Attempts x (R, K, S) failed with `reason`, their commands aged age_s (R, K) s: retry,
    re-login or fail, by the attempt loop's rules (o (R, K, O): their orders' states)."""
    st, rec = sim.states, sim.rec
    book = fl.book
    if book is not None and o is None:
        o = book.fresh(x)
    tot = x.sum(axis=(1, 2))
    if sent:
        rec.add(N.attempt_failed(reason), i, tot)  # type: ignore[arg-type]
        if sim.tracks_answers:
            for r in range(sim.R):
                sim.policies[r].answered_many(reason, float(tot[r]), sim.now)
    if reason == TIMEOUT:
        x = st.move(x, st.after_timeout)
    give_up = sim.sc.clients.abandon_after_s or math.inf
    for k in range(sim.K):
        xk = x[:, k]
        if not xk.any():
            continue
        what = retry_target(sim.policy, reason, k + 1)
        ok = o[:, k] if o is not None else None
        if what == "fail" or (what == "relogin" and sim.logins is None):
            command_failed(sim, fl, reason if what == "fail" else AUTH, xk, n, i, ok)
        elif what == "relogin":
            assert sim.logins is not None
            sim.logins.relogin(fl, k + 1, xk, age_s[:, k], n)
            if book is not None and ok is not None:
                book.park(k + 1, ok)
        else:
            tagged = couple(xk, ok) if ok is not None else xk  # (R, S * O)
            gone = fl.retries.add(k + 1, tagged, age_s[:, k], n, sim.rng, give_up)
            if gone.any():
                g_o = gone.reshape(sim.R, st.n, -1)
                command_failed(sim, fl, "abandoned", g_o.sum(axis=2), n, i,
                               g_o.sum(axis=1) if ok is not None else None)


def command_failed(sim: FleetSim, fl: ClassFlow, reason: str, x: np.ndarray, n: int, i: int,
                   o: np.ndarray | None = None) -> None:
    """Commands x (R, S) that ended in failure (o (R, O): their orders' states); their
    sessions go on."""
    if fl.book is not None and o is not None:
        fl.book.failed(o, i)
    sim.rec.add(N.failed(fl.name, reason), i, x.sum(axis=1))  # type: ignore[arg-type]
    sim.cum["ended"] += x.sum(axis=1)
    sim.sessions.end(x)
