"""The clients in the fleet engine: sessions, commands and their attempts, logins, as counts.

An attempt in flight is counted in its row (`Rows`) and, on the client's side, by attempt
number and session state (`comp`: logged in or not, timeouts in a row). The pipeline only
knows rows; when an outcome leaves row r, it is split over the attempt numbers and session
states present in r in proportion (attempts that started together are alike to the servers).
What follows an outcome is `sim.rules`: `RetryPolicy` (backoff as a kernel over future steps,
retry budget, adaptive throttling), the attempt loop's rules (retry, re-login, give up, abandon)
and `session_lost_after_timeouts`.

Session states: index v * L + t, with v = 1 logged in (0 not) and t = timeouts in a row (< L).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.kernels import delay_kernel, dist_key, latency_samples
from sim.fleet.split import add_run, binomial, systematic
from sim.rules.attempts import FAIL, RELOGIN, RETRY, next_kind
from sim.rules.outcomes import TIMEOUT
from sim.rules.retry import RetryPolicy
from sim.scenario import Scenario

if TYPE_CHECKING:
    from sim.fleet.timestep import Regrid


def split_comp(comp: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Take x[r, a] requests out of comp[r, ..., a] in proportion to what each tag has there."""
    R, A = x.shape
    out = np.zeros_like(comp)
    r, a = np.nonzero(x)
    if not len(r):
        return out
    have = np.moveaxis(comp, -1, 1)[r, a]  # (n, *tags)
    shape = have.shape
    flat = have.reshape(len(r), -1)
    tot = flat.sum(axis=1, keepdims=True)
    p = np.where(tot > 0, flat / np.maximum(tot, 1e-300), 1.0 / flat.shape[1])
    part = np.minimum(systematic(np.minimum(x[r, a], tot[:, 0]), p, rng), flat).reshape(shape)
    moved = np.moveaxis(out, -1, 1)
    moved[r, a] = part
    return out


class SessionStates:
    """Session-state bookkeeping: which state an outcome leads to."""

    def __init__(self, sc: Scenario) -> None:
        self.auth = sc.services.auth is not None
        lim = sc.clients.session_lost_after_timeouts
        self.L = lim if (lim and self.auth) else 1
        self.n = 2 * self.L if self.auth else 1
        self.valid0 = self.L if self.auth else 0  # logged in, no timeouts
        self.out0 = 0
        idx = np.arange(self.n)
        v, t = (idx // self.L, idx % self.L) if self.auth else (np.ones(1, int), np.zeros(1, int))
        self.logged_in = v.astype(bool)
        lost_t = t + 1
        self.after_timeout = np.where(lost_t >= self.L, 0, v * self.L + lost_t) if (self.auth and lim) else idx
        self.after_ok = np.where(v == 1, self.valid0, self.out0) if self.auth else idx

    def move(self, x: np.ndarray, to: np.ndarray) -> np.ndarray:
        """Re-index the last axis (session states) of x by the map `to`."""
        out = np.zeros_like(x)
        for s in range(self.n):
            out[..., to[s]] += x[..., s]
        return out


class Sessions:
    """Sessions thinking between commands (a calendar by session state)."""

    def __init__(self, sc: Scenario, R: int, states: SessionStates, dt: float) -> None:
        pop = sc.population
        self.dt = dt
        if pop is None or (pop.commands_per_session.type == "constant" and pop.commands_per_session.mean == 1):
            self.q = 0.0
        else:
            n = np.maximum(1, np.round(latency_samples(dist_key(pop.commands_per_session))))
            # a session goes on after each command with probability q: geometric, with the
            # scenario's mean number of commands per session
            self.q = 1.0 - 1.0 / float(n.mean())
        think = pop.think_time_s if pop is not None else None
        self._think = latency_samples(dist_key(think)) if think is not None and think.mean > 0 else None
        self._kernels: dict[float, np.ndarray] = {}
        self.kernel = self._kernel(dt)
        self.H = len(self.kernel) + 2
        self.cal = np.zeros((R, states.n, self.H))
        self.ended = np.zeros((R, states.n))
        self.thinking = np.zeros(R)
        self.on_end: Callable[[np.ndarray], None] | None = None  # told the sessions (R,) that end

    def _kernel(self, dt: float) -> np.ndarray:
        k = self._kernels.get(dt)
        if k is None:
            k = self._kernels[dt] = delay_kernel(self._think, dt) if self._think is not None else np.array([1.0])
        return k

    def regrid(self, g: Regrid, dt: float) -> None:
        """Thinking sessions to the same moments on another step grid."""
        self.cal = g.future(self.cal, 2)
        self.kernel = self._kernel(dt)
        self.dt = dt

    def end(self, x: np.ndarray) -> None:
        """Commands ended for sessions x (R, S) in this step (their think times start in `flush`)."""
        if self.q > 0:
            self.ended += x
        elif self.on_end is not None:
            self.on_end(x.sum(axis=1))

    def flush(self, step: int, rng: np.random.Generator) -> None:
        """The step's ended commands: some sessions go on, after a think time (one split per step:
        the think time starts at the next step whichever moment of this step the command ended)."""
        x, self.ended = self.ended, np.zeros_like(self.ended)
        if self.q <= 0 or not x.any():
            return
        go = binomial(x, self.q, rng)
        if self.on_end is not None:
            self.on_end(x.sum(axis=1) - go.sum(axis=1))
        r, s = np.nonzero(go)
        if not len(r):
            return
        parts = systematic(go[r, s], self.kernel, rng)
        if parts.shape[1] > 1:  # a think time shorter than a step: the next step (bins distinct from here)
            parts[:, 1] += parts[:, 0]
            parts = parts[:, 1:]
        add_run(self.cal, r, s, (step + 1) % self.H, parts)  # (r, s) pairs distinct

    def due(self, step: int) -> np.ndarray:
        b = step % self.H
        out = self.cal[:, :, b].copy()
        self.cal[:, :, b] = 0.0
        return out

    def invalidate(self, keep: float, states: SessionStates, rng: np.random.Generator) -> None:
        """A session invalidation: each logged-in session stays valid with probability `keep`."""
        for s in range(states.n):
            if states.logged_in[s]:
                lost = self.cal[:, s, :] - binomial(self.cal[:, s, :], keep, rng)
                self.cal[:, s, :] -= lost
                self.cal[:, s - states.L, :] += lost


class Retries:
    """Attempts waiting out their backoff: a calendar by attempt number and session state, with
    the commands' ages (for e2e and abandonment)."""

    def __init__(self, policy: RetryPolicy, K: int, S: int, R: int, dt: float) -> None:
        self.policy, self.K = policy, K
        self.kernels = self._kernels(dt)
        self.H = max(len(k) for k in self.kernels) + 2
        self.cal = np.zeros((R, K, S, self.H))
        self.age = np.zeros((R, K, self.H))  # sum of command ages at the retry's start, s
        self.dt = dt

    def _kernels(self, dt: float) -> list[np.ndarray]:
        return _backoff_kernels(self.policy, self.K, dt)

    def regrid(self, g: Regrid, dt: float) -> None:
        """Retries waiting out their backoff to the same moments on another step grid."""
        self.cal = g.future(self.cal, 3)
        self.age = g.future(self.age, 2)
        self.kernels = self._kernels(dt)
        self.dt = dt

    def add(self, k: int, x: np.ndarray, age_s: np.ndarray, step: int, rng: np.random.Generator,
            give_up_s: float) -> np.ndarray:
        """Schedule retries (attempt k) of x (R, S) commands aged age_s (R,) s; returns those
        whose backoff would outlast the user's patience (R, S), abandoned instead."""
        kern = self.kernels[min(k - 1, len(self.kernels) - 1)]
        parts = systematic(x, kern, rng)  # (R, S, J): J = 1, 2, ... steps
        j = np.arange(1, parts.shape[-1] + 1)
        late = (age_s[:, None] + j[None, :] * self.dt) >= give_up_s  # (R, J)
        gone = (parts * late[:, None, :]).sum(axis=-1)
        parts = parts * ~late[:, None, :]
        bins = (step + j) % self.H
        self.cal[:, k, :, bins] += np.moveaxis(parts, -1, 0)
        self.age[:, k, bins] += parts.sum(axis=1) * (age_s[:, None] + j[None, :] * self.dt)
        return gone

    def due(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        b = step % self.H
        x, a = self.cal[:, :, :, b].copy(), self.age[:, :, b].copy()
        self.cal[:, :, :, b] = 0.0
        self.age[:, :, b] = 0.0
        return x, a


_BACKOFF: dict[tuple[str, int, float], list[np.ndarray]] = {}


def _backoff_kernels(policy: RetryPolicy, K: int, dt: float) -> list[np.ndarray]:
    """The backoff kernels of attempts 1 .. K-1 on steps of dt (computed once per client spec and
    step: they depend on nothing else)."""
    key = (policy.spec.model_dump_json(), K, dt)
    if key not in _BACKOFF:
        _BACKOFF[key] = [_from_next_step(np.asarray(policy.backoff_kernel(k, dt))) for k in range(max(1, K - 1))]
    return _BACKOFF[key]


def _from_next_step(kern: np.ndarray) -> np.ndarray:
    """A backoff kernel over steps 1, 2, ...: a retry due in the step that failed goes next step."""
    out = kern[1:].copy() if len(kern) > 1 else np.ones(1)
    out[0] += kern[0] if len(kern) > 1 else 0.0
    return out / out.sum()


def retry_target(policy: RetryPolicy, reason: str, k_next: int) -> str:
    """What the attempt loop does after a failed attempt (`sim.rules.attempts.next_kind`, the rule
    of `CommandAttempts.after`): 'fail', 'relogin' or 'retry'."""
    return {FAIL: "fail", RELOGIN: "relogin", RETRY: "retry"}[next_kind(policy, reason, k_next)]


__all__ = ["Retries", "SessionStates", "Sessions", "TIMEOUT", "math", "retry_target", "split_comp"]
