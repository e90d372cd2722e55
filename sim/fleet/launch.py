"""The launch population in the fleet engine (`population.launch`), as counts of users.

The SimPy engine's users (sim/des/users.py) become counts by *group*: group 0 holds the users
who had the app and have not opened it since the launch; group 1 + s the users in the campaign
with wallet state s (cards earned and held, `sim.funnel.WalletStates`: the per-user card rules
as moves between states). The same rules, in counts:

- at each clock midnight every group's users are active with `CardRules.p_active` (binomial),
  with 1 + Poisson(sessions_per_user_per_day - 1) sessions each at times from the day's density
  (a multinomial over the day's minutes; within a minute uniform over the fine steps);
- people reached from outside the app join at `BroadcastCurve`'s rate (Poisson per step); a
  joiner's invitations are drawn when it joins (Poisson of the sum of its accepted-per-user
  means) and each friend's first session comes after its own delay in phone-activity time;
- a group-0 session after the launch is that user's first: they join (cards, invitations, a
  first command that tries the free order); a new user's join day has Poisson(lam x the day's
  mass still to come) more sessions.

Which users a session belongs to is not kept: a session due now is dealt to the groups in
proportion to their expected sessions still to come today (every user's remaining sessions of
the day follow the same density, so they are exchangeable in time); a card spent, or earned by an
inviter, moves users between groups with their share of today's sessions. A session's card state
is known when it starts; its later commands use the card share of the sessions in progress
(`card_share`: started with a card, less those whose user spent the last one). What is not
modelled: registration failures (every new user registers at its first login, as in
sim/campaign/launch.py's expectation), logins of returning users (they hold a token), the
inviter of a friend (a user of the campaign picked in proportion to the groups).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.arrivals import DAY_S, BroadcastCurve, DailyProfile, first_session_cdf, sessions_after_first
from sim.fleet.split import proportional, systematic
from sim.funnel import CardRules
from sim.results import names as N
from sim.streams import Streams

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim

_FLAT = (1.0,) * 24
_MIN_S = 60.0


class FleetLaunch:
    """The launch population of a batch (see the module docstring)."""

    def __init__(self, sim: FleetSim) -> None:
        sc, R = sim.sc, sim.R
        p = sc.population
        assert p is not None and p.launch is not None
        self.sim, self.R, self.L = sim, R, p.launch
        self.rng = Streams(sim.seeds[0])(f"fleet.launch.batch{R}")
        self.cards = CardRules(p.launch)
        ws = self.cards.wallet_states()
        self.G = 1 + ws.n
        self.join_to = 1 + int(ws.joined[ws.index(0, 0)])  # a user who just joined (an empty wallet)
        self.join_earns = int(ws.join_earns[ws.index(0, 0)])
        self.invited_to = np.concatenate([[0], 1 + ws.invited])
        self.invite_earns = np.concatenate([[0], ws.invite_earns])
        self.spent_to = np.concatenate([[0], 1 + ws.spent])
        self.p_active = np.concatenate([[p.launch.active_without_cards], ws.p_active])
        self.card = np.concatenate([[False], ws.has_card])
        self.earned = np.concatenate([[0], ws.earned])
        self.join_card = bool(self.card[self.join_to])
        self.horizon = sc.run.duration_s
        self.day = DailyProfile(p.diurnal or _FLAT, sc.run.start_hour)
        self.activity = DailyProfile(p.launch.activity or p.diurnal or _FLAT, sc.run.start_hour)
        self.lam = p.sessions_per_user_per_day - 1.0
        cell = p.scale * sc.arrivals.scale
        self.users = np.zeros((R, self.G))
        n = p.daily_active_users / p.launch.active_without_cards * cell
        for r, seed in enumerate(sim.seeds):  # the SimPy engine's draw for the same seed
            self.users[r, 0] = math.floor(n) + (Streams(seed)("users.existing").random() < n - math.floor(n))
        self.act = np.zeros((R, self.G))  # users active today
        self.rem = np.zeros((R, self.G))  # their sessions still to come today (expected)
        self.n_min = max(1, math.ceil(self.horizon / _MIN_S))
        self.cal = np.zeros((2, R, self.n_min))  # sessions, friends' first sessions by minute
        self.dt0 = sim.dt0
        self.ring = np.zeros((2, R, 2 * math.ceil(_MIN_S / self.dt0) + 4))
        self.released = 0  # minutes spread over their fine steps so far
        edges = np.minimum(np.arange(sim.n_steps + 1) * self.dt0, self.horizon)
        self.broadcast = np.diff(BroadcastCurve(p.launch, self.activity, cell).joined(edges))
        self.next_midnight = self.day.day_start(0.0)
        self.live = np.zeros((R, 2))  # sessions in progress: with a card, without
        self.max_earned = np.zeros(R)
        sim.sessions.on_end = self.sessions_ended

    @staticmethod
    def of(sim: FleetSim) -> FleetLaunch | None:
        p = sim.sc.population
        return FleetLaunch(sim) if p is not None and p.launch is not None else None

    # -- a step --------------------------------------------------------------------------------
    def send(self, n: int, i: int) -> None:
        """This step's sessions: planned ones (returning users, and the first session after the
        launch of users who had the app), new users, and new users whose first login is done."""
        sim, lvl = self.sim, self.sim.level
        now = sim.now
        while self.next_midnight < now + sim.dt - 1e-9:
            self._plan_day(self.next_midnight)
            self.next_midnight += DAY_S
        k0, k1 = n << lvl, min((n + 1) << lvl, sim.n_steps)
        due, friends = self._due(k0, k1)
        new = friends + self.rng.poisson(self.broadcast[k0:k1].sum(), self.R)
        d = _deal(due, self._weights(), self.rng) if due.any() else np.zeros((self.R, self.G))
        self.rem = np.maximum(self.rem - d, 0.0)
        sim.rec.add(N.SESSIONS, i, due + new)
        joining = d[:, 0] if now >= self.L.at_s else np.zeros(self.R)
        plain = d[:, ~self.card].sum(axis=1) - joining
        card = d[:, self.card].sum(axis=1)
        if joining.any():
            self._existing_join(joining, now, i)
        if new.any():
            self._new_users(new, friends, now, i)
        pend = sim.pending_new.sum(axis=1)  # new users whose first login is done: their session goes on
        sim.pending_new = np.zeros_like(sim.pending_new)
        trying = joining + (pend if sim.logins is not None else new)
        if sim.logins is not None and new.any():
            sim.logins.start_sessions(new, n)
        try_card, try_plain = (trying, 0.0 * trying) if self.join_card else (0.0 * trying, trying)
        self.live[:, 0] += card + try_card
        self.live[:, 1] += plain + try_plain
        assert sim.funnel is not None
        sim.funnel.start(self._logged_in(card), self._logged_in(plain), self._logged_in(try_card),
                         self._logged_in(try_plain), n, i)
        self._gauge(i)

    def _weights(self) -> np.ndarray:
        """What a session due now is dealt by: the groups' sessions still to come today (their
        active users, or users, when the plan ran dry by chance)."""
        for w in (self.rem, self.act, self.users):
            if (w.sum(axis=1) > 0).all():
                return w
        return self.users + 1e-12

    def _logged_in(self, v: np.ndarray) -> np.ndarray:
        """Sessions v (R,) as (R, S): logged in, no timeouts."""
        x = np.zeros((self.R, self.sim.states.n))
        x[:, self.sim.states.valid0] = v
        return x

    def _due(self, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        """Sessions and friends' first sessions in fine steps k0 .. k1 - 1 (R,) each."""
        while self.released < self.n_min and self._lo(self.released) < k1:
            self._release(self.released)
            self.released += 1
        idx = np.arange(k0, k1) % self.ring.shape[2]
        out = self.ring[:, :, idx].sum(axis=2)
        self.ring[:, :, idx] = 0.0
        return out[0], out[1]

    def _lo(self, m: int) -> int:
        return math.ceil(m * _MIN_S / self.dt0 - 1e-9)

    def _release(self, m: int) -> None:
        """Minute m's sessions, uniform over its fine steps."""
        lo, hi = self._lo(m), max(self._lo(m + 1), self._lo(m) + 1)
        idx = np.arange(lo, hi) % self.ring.shape[2]
        w = np.full(hi - lo, 1.0 / (hi - lo))
        for c in range(2):
            for r in np.nonzero(self.cal[c, :, m])[0]:
                self.ring[c, r, idx] += self.rng.multinomial(int(self.cal[c, r, m]), w)
        self.cal[:, :, m] = 0.0

    def _schedule(self, c: int, r: int, times_s: np.ndarray) -> None:
        """Sessions (c = 0) or friends' first sessions (c = 1) of replication r at these instants."""
        m = np.floor(times_s[times_s < self.horizon] / _MIN_S).astype(np.int64)
        m = np.maximum(m, self.released)  # a minute already spread: its next one
        m = m[m < self.n_min]
        if len(m):
            self.cal[c, r] += np.bincount(m, minlength=self.n_min)[: self.n_min]

    # -- the day's plan ------------------------------------------------------------------------
    def _plan_day(self, start: float) -> None:
        """Who is active on the clock day from `start`, and when their sessions are."""
        A = self.rng.binomial(self.users.astype(np.int64), self.p_active[None, :]).astype(np.float64)
        S = A + self.rng.poisson(self.lam * A)
        self.act, self.rem = A, S.copy()
        edges = start + np.arange(int(DAY_S / _MIN_S) + 1) * _MIN_S
        mass = np.diff(self.day.elapsed(edges)) / DAY_S
        mass = np.maximum(mass, 0.0) / mass.sum()
        m0 = round(start / _MIN_S)
        for r in range(self.R):
            tot = int(S[r].sum())
            if not tot:
                continue
            per_min = self.rng.multinomial(tot, mass)
            m = np.arange(m0, m0 + len(mass))
            keep = (m >= 0) & (m < self.n_min)
            mm = np.maximum(m[keep], self.released)
            np.add.at(self.cal[0, r], mm, per_min[keep])
        self._returning(A.sum(axis=1), start)

    def _returning(self, active: np.ndarray, start: float) -> None:
        """Users active today are counted (once) at their first session: its time's distribution."""
        rec = self.sim.rec
        iv = rec.interval_s
        i0, i1 = math.floor(start / iv + 1e-9), math.ceil((start + DAY_S) / iv - 1e-9)
        edges = np.clip(np.arange(i0, i1 + 1) * iv, start, start + DAY_S)
        frac = (self.day.elapsed(edges) - self.day.elapsed(start)) / DAY_S
        p = np.maximum(np.diff(first_session_cdf(np.clip(frac, 0.0, 1.0), self.lam)), 0.0)
        parts = systematic(active, p / max(p.sum(), 1e-300), self.rng)
        idx = np.arange(i0, i1)
        keep = (idx >= 0) & (idx < rec.n_intervals)
        rec.s(N.USERS_RETURNING)[:, idx[keep]] += parts[:, keep]

    # -- joining the campaign ------------------------------------------------------------------
    def _existing_join(self, x: np.ndarray, now: float, i: int) -> None:
        """x users who had the app open it for the first time since the launch: they join, with
        the sessions still to come today of a user whose first session is now."""
        rest = x * sessions_after_first(self.lam * self.day.mass_after(now))
        j = self.join_to
        for a, v in ((self.users, x), (self.act, x)):
            a[:, 0] -= v
            a[:, j] += v
        moved = np.minimum(self.rem[:, 0], rest)
        self.rem[:, 0] -= moved
        self.rem[:, j] += rest
        np.maximum(self.users, 0.0, out=self.users)
        np.maximum(self.act, 0.0, out=self.act)
        self._campaign_join(x, now, i)

    def _new_users(self, new: np.ndarray, friends: np.ndarray, now: float, i: int) -> None:
        """New users open the app (download, register): their join day and their inviters' cards."""
        rec, j = self.sim.rec, self.join_to
        rec.add(N.users_new("broadcast"), i, new - friends)
        rec.add(N.users_new("invited"), i, friends)
        rec.add(N.REGISTRATIONS, i, new)
        self.users[:, j] += new
        self.act[:, j] += new
        extra = self.rng.poisson(self.lam * self.day.mass_after(now) * new).astype(np.float64)
        self.rem[:, j] += extra
        for r in np.nonzero(extra)[0]:
            self._schedule(0, int(r), self.day.sample_after(self.rng, int(extra[r]), now))
        if friends.any():
            self._inviters_earn(friends, i)
        self._campaign_join(new, now, i)

    def _campaign_join(self, x: np.ndarray, now: float, i: int) -> None:
        """Cards for joining (`CardRules.join`) and the invitations x joiners send."""
        rec, inv = self.sim.rec, self.L.invitations
        rec.add(N.CARDS_EARNED, i, x * self.join_earns)
        for r in np.nonzero(x)[0]:
            means = inv.accepted_per_user.sample_n(self.rng, int(x[r]))
            k = int(self.rng.poisson(float(np.sum(means))))
            if k:
                rec.s(N.INVITATIONS)[r, i] += k
                self._schedule(1, int(r), self.activity.advance(now, inv.delay_s.sample_n(self.rng, k)))

    def _inviters_earn(self, friends: np.ndarray, i: int) -> None:
        """Each friend who registered earns its inviter a card (`CardRules.invited`)."""
        pick = np.zeros((self.R, self.G))
        pick[:, 1:] = proportional(friends, self.users[:, 1:], self.rng)
        self.sim.rec.add(N.CARDS_EARNED, i, (pick * self.invite_earns[None, :]).sum(axis=1))
        self._move(pick, self.invited_to, active=False)

    def spend(self, x: np.ndarray) -> None:
        """x users active today with a card placed an order paid with one (`Wallet.spend`)."""
        if not x.any():
            return
        held = self.act * self.card[None, :]
        pick = proportional(x, np.where(held.sum(axis=1, keepdims=True) > 0, held,
                                        self.users * self.card[None, :]), self.rng)
        lost = (pick * (self.card & ~self.card[self.spent_to])[None, :]).sum(axis=1)
        self._move(pick, self.spent_to, active=True)
        moved = np.minimum(lost, self.live[:, 0])
        self.live[:, 0] -= moved
        self.live[:, 1] += moved

    def _move(self, x: np.ndarray, to: np.ndarray, active: bool) -> None:
        """x (R, G) users leave their groups for groups `to`, with their share of today's plan
        (active: they are among today's active users)."""
        x = np.minimum(x, self.users)
        share_act = x if active else x * _ratio(self.act, self.users)
        share_act = np.minimum(share_act, self.act)
        share_rem = share_act * _ratio(self.rem, self.act)
        for a, v in ((self.users, x), (self.act, share_act), (self.rem, share_rem)):
            a -= v
            np.add.at(a.T, to, v.T)  # rows of a.T are groups; repeated targets add up

    # -- sessions in progress --------------------------------------------------------------------
    def sessions_ended(self, ended: np.ndarray) -> None:
        tot = self.live.sum(axis=1, keepdims=True)
        self.live -= self.live * np.minimum(1.0, ended[:, None] / np.maximum(tot, 1e-300))
        np.maximum(self.live, 0.0, out=self.live)

    def card_share(self) -> np.ndarray:
        """Of the sessions in progress, the share whose user holds a card (R,)."""
        tot = self.live.sum(axis=1)
        return np.where(tot > 0, self.live[:, 0] / np.maximum(tot, 1e-300), 0.0)

    def _gauge(self, i: int) -> None:
        have = self.users > 0
        self.max_earned = np.maximum(self.max_earned, (have * self.earned[None, :]).max(axis=1))
        self.sim.rec.set(N.CARDS_MAX_EARNED, i, self.max_earned)


def _deal(total: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split total (R,) over the groups in proportion to weights (R, G) (systematic)."""
    return systematic(total, weights / weights.sum(axis=1, keepdims=True), rng)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, np.minimum(a / np.maximum(b, 1e-300), 1e12), 0.0)


__all__ = ["FleetLaunch"]
