"""The launch population in the SimPy engine: users, not anonymous sessions (`population.launch`).

- Users who had the app before the launch: daily_active_users / active_without_cards of them
  (in the cell), each opening the app on a day with the probability `CardRules.p_active` gives.
- New users reached from outside the app join at `BroadcastCurve`'s rate (thinned Poisson):
  download, register at auth (a failed registration is tried again later, or the user is lost),
  first session.
- Friends: at a user's first login after the launch the user's accepted invitations are drawn;
  each friend opens the app after a delay in phone-activity time and is a new user in turn.
- A user active on a day has 1 + Poisson(sessions_per_user_per_day - 1) sessions at times from
  `population.diurnal`; a new user's join day has the first session plus the share of that still
  to come after the join.

Each user draws from its own random stream (keyed by who brought it in), so what users decide —
classes, funnel outcomes, invitations, days — does not depend on how fast the stack served
them: a demand-only run and a full run of the same seed place the same orders.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from sim.arrivals import BroadcastCurve, DailyProfile, poisson_times
from sim.dists import sampler
from sim.funnel import CardRules, Wallet, poisson_from
from sim.results import Recorder
from sim.results import names as N
from sim.scenario import Scenario
from sim.streams import Streams

EXISTING, BROADCAST, INVITED = 0, 1, 2  # the first element of a user's key: who brought it in
_FLAT = (1.0,) * 24


class User:
    """One user: who brought them in, cards, login session, and their own random draws."""

    __slots__ = ("key", "registered", "in_campaign", "trying", "wallet", "sess", "inviter", "day", "tries",
                 "_rng", "_buf", "n_commands", "think")

    def __init__(self, key: tuple[int, ...], registered: bool, seed: int, draws: tuple[object, object],
                 inviter: User | None = None) -> None:
        self.key, self.registered, self.inviter = key, registered, inviter
        self.in_campaign = False
        self.trying = False  # this session is the user's first in the campaign (CardRules.first_command)
        self.wallet = Wallet()
        self.sess: object = None  # the client's login session, kept across the user's sessions
        self.day = -1  # the last clock day the user opened the app
        self.tries = 0  # sessions in which registration failed
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(7919, *key))))
        self._buf: list[float] = []
        n_dist, think_dist = draws
        self.n_commands = sampler(n_dist, self._rng, 8)  # type: ignore[arg-type]
        self.think = sampler(think_dist, self._rng, 8)  # type: ignore[arg-type]

    def uniform(self) -> float:
        if not self._buf:
            self._buf = self._rng.random(32).tolist()
        return self._buf.pop()

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @property
    def has_card(self) -> bool:
        return self.wallet.held > 0


class Users:
    """Starts every user's sessions; `logged_in` is the client's call after a session's login."""

    def __init__(self, env: simpy.Environment, sc: Scenario, client, streams: Streams, rec: Recorder,  # type: ignore[no-untyped-def]
                 seed: int) -> None:
        p = sc.population
        assert p is not None and p.launch is not None
        self.env, self.sc, self.client, self.streams, self.seed = env, sc, client, streams, seed
        self.launch = L = p.launch
        self.cell = p.scale * sc.arrivals.scale
        self.horizon = sc.run.duration_s
        self.day_shape = DailyProfile(p.diurnal or _FLAT, sc.run.start_hour)
        self.activity = DailyProfile(L.activity or p.diurnal or _FLAT, sc.run.start_hour)
        self.broadcast = BroadcastCurve(L, self.activity, self.cell)
        self.cards = CardRules(L)
        self.extra_sessions = p.sessions_per_user_per_day - 1.0
        self._draws = (p.commands_per_session, p.think_time_s)
        self.users: list[User] = []  # users whose days are planned at each midnight
        self._retry = L.registration.retry_after_s
        s = rec.series
        self._new = {BROADCAST: s(N.users_new("broadcast")), INVITED: s(N.users_new("invited"))}
        self._returning, self._sessions = s(N.USERS_RETURNING), s(N.SESSIONS)
        self._registered, self._lost = s(N.REGISTRATIONS), s(N.USERS_LOST)
        self._earned, self._invited = s(N.CARDS_EARNED), s(N.INVITATIONS)
        self.rec = rec
        self.max_earned = 0  # the most cards any user has earned (the rule caps it)
        rec.gauge(N.CARDS_MAX_EARNED, lambda: self.max_earned)

    # -- starting users ------------------------------------------------------------------------
    def start(self) -> None:
        p = self.sc.population
        assert p is not None
        n = p.daily_active_users / self.launch.active_without_cards * self.cell
        n_existing = math.floor(n) + (self.streams("users.existing").random() < n - math.floor(n))
        for i in range(n_existing):
            self.users.append(self._user((EXISTING, i), registered=True))
        self.env.process(self._days())
        joins = (t for block in poisson_times(self.broadcast, self.horizon, self.streams("users.broadcast"))
                 for t in block.tolist())
        self.env.process(self._broadcast(joins))

    def _user(self, key: tuple[int, ...], registered: bool, inviter: User | None = None) -> User:
        return User(key, registered, self.seed, self._draws, inviter)

    def _broadcast(self, times):  # type: ignore[no-untyped-def]
        env = self.env
        for k, t in enumerate(times):
            yield env.timeout(t - env.now)
            self.open(self._user((BROADCAST, k), registered=False))

    def _days(self):  # type: ignore[no-untyped-def]
        """Plan every known user's day at each clock midnight (the first from t = 0)."""
        env, shape = self.env, self.day_shape
        day = shape.day_start(0.0)
        while day < self.horizon:
            self._plan_day(day)
            day += 86_400.0
            if day < self.horizon:
                yield env.timeout(day - env.now)

    def _plan_day(self, day_start: float) -> None:
        plan: list[tuple[float, int, User]] = []
        for i, u in enumerate(self.users):
            if u.uniform() >= self.cards.p_active(u.wallet if u.in_campaign else None):
                continue
            n = 1 + poisson_from(u.uniform, self.extra_sessions)
            for t in self.day_shape.sample_day(u.rng, n, day_start).tolist():
                if self.env.now <= t < self.horizon:
                    plan.append((t, i, u))
        plan.sort(key=lambda x: (x[0], x[1]))
        self.env.process(self._at_times([(t, u) for t, _, u in plan]))

    def _at_times(self, plan: list[tuple[float, User]]):  # type: ignore[no-untyped-def]
        env = self.env
        for t, u in plan:
            if t > env.now:
                yield env.timeout(t - env.now)
            self.open(u)

    # -- a session -----------------------------------------------------------------------------
    def open(self, user: User) -> None:
        """The user opens the app now: counted once a clock day (new or returning), then a session."""
        now = self.env.now
        idx = self.rec.index(now)
        day = math.floor((now + self.day_shape.offset_s) / 86_400.0)
        if user.day != day:
            if user.day < 0 and user.key[0] != EXISTING:
                self._new[user.key[0]][idx] += 1  # a download: the first time this user opens the app
            else:
                self._returning[idx] += 1
            user.day = day
        self._sessions[idx] += 1
        self.env.process(self._visit(user))

    def _visit(self, user: User):  # type: ignore[no-untyped-def]
        ok = yield from self.client.user_session(user)
        if ok or user.registered:
            return
        user.tries += 1
        if user.tries >= self.launch.registration.max_tries:
            self._lost[self.rec.index(self.env.now)] += 1
            return
        wait = float(self._retry.sample_n(user.rng, 1)[0])
        self._later([self.env.now + wait], user)

    def _later(self, times: list[float], user: User) -> None:
        items = [(t, user) for t in sorted(times) if t < self.horizon]
        if items:
            self.env.process(self._at_times(items))

    def logged_in(self, user: User, now: float) -> None:
        """The client's call once a session has a valid login: registration bookkeeping, the
        campaign's cards for joining, and the invitations a user sends when joining."""
        idx = self.rec.index(now)
        if not user.registered:
            user.registered = True
            self.users.append(user)
            self._registered[idx] += 1
            if user.inviter is not None:
                self._earned[idx] += self.cards.invited(user.inviter.wallet)
                self.max_earned = max(self.max_earned, user.inviter.wallet.earned)
            n = poisson_from(user.uniform, self.extra_sessions * self.day_shape.mass_after(now))
            self._later(self.day_shape.sample_after(user.rng, n, now).tolist(), user)
        if now >= self.launch.at_s and not user.in_campaign:
            user.in_campaign = user.trying = True
            self._earned[idx] += self.cards.join(user.wallet)
            self.max_earned = max(self.max_earned, user.wallet.earned)
            self._invite(user, now, idx)

    def _invite(self, user: User, now: float, idx: int) -> None:
        mean = float(self.launch.invitations.accepted_per_user.sample_n(user.rng, 1)[0])
        k = poisson_from(user.uniform, mean)
        if not k:
            return
        self._invited[idx] += k
        delays = self.launch.invitations.delay_s.sample_n(user.rng, k)
        for j, t in enumerate(self.activity.advance(now, delays).tolist()):
            if t < self.horizon:
                friend = self._user((INVITED, *user.key, j), registered=False, inviter=user)
                self.env.process(self._at_times([(t, friend)]))


def launch_users(env: simpy.Environment, sc: Scenario, client, streams: Streams, rec: Recorder,  # type: ignore[no-untyped-def]
                 seed: int) -> Users | None:
    """The launch population for a scenario with `population.launch` (None otherwise), wired to
    the client and started."""
    if sc.population is None or sc.population.launch is None:
        return None
    users = Users(env, sc, client, streams, rec, seed)
    client.users = users
    users.start()
    return users


__all__ = ["User", "Users", "launch_users"]
