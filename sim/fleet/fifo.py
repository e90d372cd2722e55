"""A queue of cohorts: counts by arrival step in a ring, per lane (e.g. per command class).

Serving takes the oldest steps first (FIFO) or the newest (LIFO); within one arrival step the
lanes are served in proportion to their counts (arrival order inside a step is random). The
age of every waiting request is known to one step, so queue waits, deadline drops and the
client's timeouts come out of the same ring.
"""

from __future__ import annotations

import numpy as np

from sim.fleet.split import systematic, take_oldest


class Fifo:
    def __init__(self, R: int, lanes: int, ring: int) -> None:
        self.W = ring
        self.q = np.zeros((R, lanes, ring))
        self._stamp = np.full(ring, -1)  # the step whose arrivals each bin holds

    @property
    def waiting(self) -> np.ndarray:
        """Requests waiting, per replication (R,)."""
        return self.q.sum(axis=(1, 2))

    def lane_waiting(self) -> np.ndarray:
        return self.q.sum(axis=2)

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

    def order(self, step: int, lifo: bool) -> np.ndarray:
        """Ring bins from the oldest to the newest (or the reverse for LIFO)."""
        ages = np.arange(self.W - 1, -1, -1) if not lifo else np.arange(self.W)
        return (step - ages) % self.W

    def pop(self, step: int, k: np.ndarray, rng: np.random.Generator, lifo: bool = False) -> np.ndarray:
        """Serve k[r] requests; returns what was taken (R, lanes, W)."""
        tot = self.q.sum(axis=1)
        k = np.minimum(k, tot.sum(axis=1))
        if not k.any():
            return np.zeros_like(self.q)
        order = np.broadcast_to(self.order(step, lifo), tot.shape)
        took = take_oldest(tot, k, order)
        out = self.split_lanes(took, tot, rng)
        self.q -= out
        return out

    def split_lanes(self, took: np.ndarray, tot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Split amounts per bin (R, W) over lanes in proportion to what each lane has there."""
        if self.q.shape[1] == 1:
            return took[:, None, :]
        nz = took > 0
        out = np.zeros_like(self.q)
        if not nz.any():
            return out
        r, w = np.nonzero(nz)
        have = self.q[r, :, w]  # (n, lanes)
        p = have / np.maximum(have.sum(axis=1, keepdims=True), 1e-300)
        part = np.minimum(systematic(took[r, w], p, rng), have)
        out[r, :, w] = part
        return out

    def ages(self, step: int) -> np.ndarray:
        """Age in steps of each ring bin at `step` (W,)."""
        return (step - np.arange(self.W)) % self.W

    def take_older(self, step: int, age_steps: int) -> np.ndarray:
        """Remove every cohort at least `age_steps` old; returns it (R, lanes, W)."""
        mask = self.ages(step) >= age_steps
        out = np.where(mask, self.q, 0.0)
        self.q = np.where(mask, 0.0, self.q)
        return out

    def take_newest(self, step: int, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Remove the k[r] newest (eviction, overflow)."""
        return self.pop(step, k, rng, lifo=True)

    def scale(self, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Keep each waiting request with probability keep[r]; returns those removed."""
        kept = rng.binomial(self.q.astype(np.int64), np.clip(keep, 0, 1)[:, None, None]).astype(np.float64)
        gone = self.q - kept
        self.q = kept
        return gone
