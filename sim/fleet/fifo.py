"""A queue of cohorts: counts by arrival step in a ring, per lane (e.g. per command class).

Serving takes the oldest steps first (FIFO) or the newest (LIFO); within one arrival step the
lanes are served in proportion to their counts (arrival order inside a step is random). The
age of every waiting request is known to one step, so queue waits, deadline drops and the
client's timeouts come out of the same ring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.split import systematic, take_oldest

if TYPE_CHECKING:
    from sim.fleet.timestep import Regrid


class Fifo:
    def __init__(self, R: int, lanes: int, ring: int) -> None:
        self.W = ring
        self.q = np.zeros((R, lanes, ring))
        self._stamp = np.full(ring, -1)  # the step whose arrivals each bin holds
        self.oldest = 0  # no request is older than this step (a bound; lets operations skip the empty ring)
        self.n = np.zeros((R, lanes))  # requests waiting per lane (kept as the ring changes: summing it is slow)

    def regrid(self, g: Regrid) -> None:
        """The queue on another step grid: cohorts to the bins of their arrival step there."""
        self.q = g.past(self.q, 2)
        s = np.arange(g.n_new - self.W, g.n_new)
        self._stamp[s % self.W] = s
        self.oldest = max(g.n_new - self.W, int(g.step_of(np.array([self.oldest]))[0]) - 1)

    @property
    def waiting(self) -> np.ndarray:
        """Requests waiting, per replication (R,)."""
        return self.n.sum(axis=1)

    def lane_waiting(self) -> np.ndarray:
        return self.n.copy()

    def clear(self) -> None:
        self.q[:] = 0.0
        self.n[:] = 0.0

    def push(self, step: int, x: np.ndarray) -> None:
        """Add arrivals x (R, lanes) at `step`. A cohort as old as the ring moves up one bin."""
        w = step % self.W
        if self._stamp[w] != step:
            old = self.q[:, :, w]
            if old.any():
                self.q[:, :, (w + 1) % self.W] += old
                old[:] = 0.0
            self._stamp[w] = step
        self.q[:, :, w] += x
        self.n += x
        if self.oldest < step - self.W + 1:
            self.oldest = step - self.W + 1

    def window(self, step: int) -> np.ndarray:
        """Ring bins that may hold requests, oldest first."""
        self._trim(step)
        return np.arange(self.oldest, step + 1) % self.W

    def _trim(self, step: int) -> None:
        """Move `oldest` up past empty bins."""
        lo = max(self.oldest, step - self.W + 1)
        if lo < step:
            span = np.arange(lo, step + 1) % self.W
            has = self.q[:, :, span].any(axis=(0, 1))
            first = int(np.argmax(has)) if has.any() else len(span) - 1
            lo += first
        self.oldest = lo

    def pop(self, step: int, k: np.ndarray, rng: np.random.Generator, lifo: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Serve k[r] requests; returns (taken (R, lanes, n), their ages in steps (n,))."""
        win = self.window(step)
        sub = self.q[:, :, win]
        tot = sub.sum(axis=1)
        k = np.minimum(k, tot.sum(axis=1))
        ages = step - (np.arange(len(win)) + self.oldest)
        if not k.any():
            return np.zeros_like(sub), ages
        idx = np.arange(len(win)) if not lifo else np.arange(len(win) - 1, -1, -1)
        took = take_oldest(tot, k, idx)
        out = self.split_lanes(took, tot, sub, rng)
        self.q[:, :, win] = sub - out
        self.n -= out.sum(axis=2)
        return out, ages

    @staticmethod
    def split_lanes(took: np.ndarray, tot: np.ndarray, sub: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Split amounts per bin (R, n) over lanes in proportion to what each lane has there."""
        if sub.shape[1] == 1:
            return took[:, None, :]
        nz = took > 0
        out = np.zeros_like(sub)
        if not nz.any():
            return out
        r, w = np.nonzero(nz)
        have = sub[r, :, w]  # (m, lanes)
        p = have / np.maximum(have.sum(axis=1, keepdims=True), 1e-300)
        part = np.minimum(systematic(took[r, w], p, rng), have)
        out[r, :, w] = part
        return out

    def arrived_at(self, step: int) -> np.ndarray:
        """Requests waiting that arrived at `step`, per replication (R,)."""
        w = step % self.W
        return self.q[:, :, w].sum(axis=1) if self._stamp[w] == step else np.zeros(self.q.shape[0])

    def ages(self, step: int) -> np.ndarray:
        """Age in steps of each ring bin at `step` (W,)."""
        return (step - np.arange(self.W)) % self.W

    def take_older(self, step: int, age_steps: int, where: np.ndarray | None = None) -> np.ndarray:
        """Remove every cohort at least `age_steps` old (only in replications `where` (R,) when
        given); returns how many per lane (R, lanes)."""
        return self.take_older_bins(step, age_steps, where)[0].sum(axis=2)

    def take_older_bins(self, step: int, age_steps: int,
                        where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`take_older`, by cohort: (taken (R, lanes, n), their ages in steps (n,)), as `pop`."""
        win = self.window(step)
        old = win[: max(0, len(win) - age_steps)]
        if not len(old):
            return np.zeros((*self.q.shape[:2], 0)), np.zeros(0, dtype=np.int64)
        out = self.q[:, :, old].copy()
        if where is None:
            self.q[:, :, old] = 0.0
        else:
            out *= where[:, None, None]
            self.q[:, :, old] *= ~where[:, None, None]
        self.n -= out.sum(axis=2)
        return out, (step - np.asarray(old)) % self.W

    def take_newest(self, step: int, k: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Remove the k[r] newest (eviction, overflow); returns (taken (R, lanes, n), their ages
        in steps (n,)), as `pop`."""
        return self.pop(step, k, rng, lifo=True)

    def scale(self, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Keep each waiting request with probability keep[r]; returns those removed."""
        win = self.window(step=int(self._stamp.max()))
        sub = self.q[:, :, win]
        kept = rng.binomial(sub.astype(np.int64), np.clip(keep, 0, 1)[:, None, None]).astype(np.float64)
        self.q[:, :, win] = kept
        gone = sub - kept
        self.n -= gone.sum(axis=2)
        return gone
