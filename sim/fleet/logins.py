"""Logins in the fleet engine: new sessions and the re-logins of commands that lost their session,
as counts at the auth pool, with their own retries; a session that cannot log in fails one
command with `auth`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.client import Retries, split_comp
from sim.fleet.flows import ClassFlow
from sim.fleet.outcomes import command_failed
from sim.fleet.split import fraction, mean_of, systematic
from sim.results import names as N
from sim.rules.outcomes import AUTH

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim
    from sim.fleet.timestep import Regrid


class Logins:
    """Logins as counts: at the auth pool, by row, tagged by purpose (a new session, or the
    re-login of a class's command before its attempt k) and login attempt number."""

    def __init__(self, sim: FleetSim) -> None:
        self.sim = sim
        R, rows = sim.R, sim.rows
        self.C, self.K = len(sim.flows), sim.K
        self.P = 1 + self.C * self.K
        self.KL = sim.sc.clients.max_attempts
        assert sim.auth is not None
        self.pool = sim.auth
        self.owner = sim.auth.add_owner()
        self.comp = np.zeros((R, self.P, self.KL, rows.A))
        self.retries = Retries(sim.policy, self.KL, self.P, R, sim.dt)
        self.purpose_age = np.zeros((R, self.P))  # sum of command ages of re-logins in flight, s
        self.purpose_n = np.zeros((R, self.P))

    def regrid(self, g: Regrid, dt: float) -> None:
        """Logins in flight (by row) and waiting to retry, on another step grid."""
        self.comp = g.past(self.comp, 3, self.sim.rows.A)
        self.retries.regrid(g, dt)

    def _purpose(self, ci: int, k: int) -> int:
        return 1 + ci * self.K + k

    def start_sessions(self, new: np.ndarray, n: int) -> None:
        x = np.zeros((self.sim.R, self.P, self.KL))
        x[:, 0, 0] = new
        self._send(x, n)

    def relogin(self, fl: ClassFlow, k: int, x: np.ndarray, age_s: np.ndarray, n: int) -> None:
        """Commands x (R, S) lost their session before attempt k: log in again, then send it."""
        p = self._purpose(self.sim.flows.index(fl), k)
        y = np.zeros((self.sim.R, self.P, self.KL))
        y[:, p, 0] = x.sum(axis=1)
        self.purpose_age[:, p] += age_s * x.sum(axis=1)
        self.purpose_n[:, p] += x.sum(axis=1)
        self._send(y, n)

    def _send(self, x: np.ndarray, n: int) -> None:
        r = self.sim.rows.row(n)
        self.comp[:, :, :, r] += x
        rows = np.zeros((self.sim.R, self.sim.rows.NR))
        rows[:, r] = x.sum(axis=(1, 2))
        self.pool.arrive(self.owner, rows, n, self.sim.rng)

    def timeouts(self, n: int, i: int, r0: int) -> None:
        x = self.comp[:, :, :, r0].copy()
        self.comp[:, :, :, r0] = 0.0
        self.pool.timeout_row(r0, self.sim.cancel)  # the auth pool serves only logins
        if x.any():
            self._failed(x, n, i)

    def collect(self, n: int, i: int) -> None:
        """Login outcomes of this step."""
        sim, o, A = self.sim, self.owner, self.sim.rows.A
        for kind, buf in (("ok", o.done), ("fail", o.error), ("fail", o.shed)):
            live = buf[:, :A].copy()
            buf[:] = 0.0
            if not live.any():
                continue
            taken = split_comp(self.comp, live, sim.rng)
            self.comp -= taken
            part = taken.sum(axis=3)  # (R, P, KL)
            if kind == "ok":
                self._ok(part.sum(axis=2), n, i)
            else:
                self._failed(part, n, i)

    def _ok(self, x: np.ndarray, n: int, i: int) -> None:
        sim, st = self.sim, self.sim.states
        sim.rec.add(N.LOGINS, i, x.sum(axis=1))
        if x[:, 0].any():
            sess = np.zeros((sim.R, st.n))
            sess[:, st.valid0] = x[:, 0]
            sim.pending_new += sess
        for ci, fl in enumerate(sim.flows):
            for k in range(1, self.K):
                p = self._purpose(ci, k)
                if x[:, p].any():
                    age = mean_of(self.purpose_age[:, p] * fraction(x[:, p], self.purpose_n[:, p]), np.ones(sim.R))
                    self.purpose_age[:, p] -= age
                    self.purpose_n[:, p] -= x[:, p]
                    fl.ready[:, k, st.valid0] += x[:, p]
                    fl.ready_age[:, k] += age
                    if fl.book is not None:
                        fl.book.unpark(k, x[:, p], ready=True)

    def _failed(self, x: np.ndarray, n: int, i: int) -> None:
        sim, st = self.sim, self.sim.states
        sim.rec.add(N.LOGIN_FAILED, i, x.sum(axis=(1, 2)))
        for kl in range(self.KL):
            xk = x[:, :, kl]  # (R, P)
            if not xk.any():
                continue
            if kl + 1 < self.KL:
                self.retries.add(kl + 1, xk, np.zeros(sim.R), n, sim.rng, math.inf)
                continue
            first = xk[:, 0]
            if first.any():  # a session that could not log in: one command fails auth
                by = systematic(first, sim.probs, sim.rng)
                for ci, fl in enumerate(sim.flows):
                    sim.rec.add(N.of_class("arrived", fl.name), i, by[:, ci])
                    sim.rec.add(N.failed(fl.name, AUTH), i, by[:, ci])
            for ci, fl in enumerate(sim.flows):
                for k in range(1, self.K):
                    p = self._purpose(ci, k)
                    if xk[:, p].any():
                        self.purpose_n[:, p] -= xk[:, p]
                        self.purpose_age[:, p] *= fraction(self.purpose_n[:, p], self.purpose_n[:, p] + xk[:, p])
                        sess = np.zeros((sim.R, st.n))
                        sess[:, st.out0] = xk[:, p]
                        o = fl.book.unpark(k, xk[:, p], ready=False) if fl.book is not None else None
                        command_failed(sim, fl, AUTH, sess, n, i, o)

    def due(self, n: int) -> None:
        x, _ = self.retries.due(n)
        if x.any():
            self._send(np.moveaxis(x, 1, 2), n)
