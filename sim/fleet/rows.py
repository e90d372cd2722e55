"""Rows: every in-flight attempt belongs to the row of the step it started in.

A ring of A rows (A steps = the client's timeout) plus one ghost row for work whose client has
stopped waiting (timed out) but that the servers still do (`cancel_on_timeout: false`). Every
queue and service calendar of the pipeline keeps its counts by row, so the age of any request
is known to one step wherever it is: the client's timeouts, the e2e latency of a success and
the ghost work of a retry storm all follow from it.
"""

from __future__ import annotations

import math

import numpy as np


class Rows:
    def __init__(self, timeout_s: float | None, horizon_s: float, dt: float) -> None:
        self.dt = dt
        self.timeout_s = timeout_s
        self.span_s = span = timeout_s if timeout_s is not None else horizon_s
        # attempts time out at the start of the step A steps after they started: on average
        # A - 1/2 steps after their (uniform) start, so A = ceil(T/dt + 1/2) keeps the mean at T
        self.A = max(2, math.ceil(span / dt + 0.5 - 1e-9))
        self.GHOST = self.A
        self.NR = self.A + 1
        self._order_step = -1
        self._order = np.zeros(0, dtype=np.int64)

    def regrid(self, dt: float) -> None:
        """The rows of another step length (the arrays by row are moved by `Regrid.rows`)."""
        self.dt = dt
        self.A = max(2, math.ceil(self.span_s / dt + 0.5 - 1e-9))
        self.GHOST = self.A
        self.NR = self.A + 1
        self._order_step = -1

    def row(self, step: int) -> int:
        return step % self.A

    def ages(self, step: int) -> np.ndarray:
        """Age in steps of each ring row at `step` (A,): the row started at step s has age step - s."""
        return (step - np.arange(self.A)) % self.A

    def order(self, step: int) -> np.ndarray:
        """Rows from the oldest (the ghost row, then age A-1) to the newest (age 0)."""
        if step != self._order_step:  # asked for many times per step: computed once
            ring = (step - np.arange(self.A - 1, -1, -1)) % self.A
            self._order = np.concatenate([[self.GHOST], ring])
            self._order.setflags(write=False)
            self._order_step = step
        return self._order
