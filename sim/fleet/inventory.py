"""Finite inventories in the fleet engine: the stock of an inventory service as counts
(`sim.rules.inventory.StockCounts`: units free, held and sold per item, for a batch of
replications), its hold epochs, and its series.

Holds lapse by *epoch*: time is cut into epochs of `steps_per_epoch` steps, and a hold granted in
an epoch keeps the ring slot of that epoch; at the start of the epoch that reuses the slot every
hold still in it lapses at once (its units are free again, and every order that held it holds
nothing: sim/fleet/orders.py). A hold so lives between (slots - 1) and slots epochs, on average
slots - 1/2 epochs, which `hold_epochs` makes `hold_s` (to within a step): the lapse of one hold
is early or late by at most half an epoch, the mean of many is kept.
"""

from __future__ import annotations

import numpy as np

from sim.fleet.record import BatchRecorder
from sim.fleet.split import systematic
from sim.results import names as N
from sim.rules.inventory import StockCounts, item_shares
from sim.scenario.services import Inventory

MAX_SLOTS = 32  # epochs a hold lives: the lapse of one hold is off by at most hold_s / (2 x 32)


def hold_epochs(hold_s: float, dt: float) -> tuple[int, int]:
    """(steps per epoch, slots): the finest epochs (at most MAX_SLOTS slots) whose mean hold,
    (slots - 1/2) epochs, is within max(dt, 1%) of `hold_s`, else the nearest."""
    best: tuple[float, int, int] | None = None
    for spe in range(1, max(1, int(hold_s / dt)) + 1):
        slots = max(1, round(hold_s / (spe * dt) + 0.5))
        if slots > MAX_SLOTS:
            continue
        err = abs((slots - 0.5) * spe * dt - hold_s)
        if err <= max(dt, 0.01 * hold_s) + 1e-9:
            return spe, slots
        if best is None or err < best[0] - 1e-12:
            best = (err, spe, slots)
        if slots < MAX_SLOTS // 4:
            break
    if best is None:  # hold_s is below a step: lapse at the next epoch (step) start
        return 1, 1
    return best[1], best[2]


class FleetStock:
    """One inventory service's stock in the fleet engine (holds of one `quantity` of units)."""

    def __init__(self, name: str, spec: Inventory, quantity: int, R: int, dt: float) -> None:
        self.name, self.spec, self.R = name, spec, R
        self.steps_per_epoch, self.slots = hold_epochs(spec.hold_s, dt)
        self.counts = StockCounts(spec, R, self.slots, quantity)
        self.shares = item_shares(spec)
        self._reported = {k: np.zeros(R) for k in self.counts.totals}

    def slot(self, step: int) -> int:
        """The ring slot of the epoch that `step` is in."""
        return (step // self.steps_per_epoch) % self.slots

    def epoch_starts(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0

    def wanted(self, right: np.ndarray, wrong: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Holds per item (R, items) that `right` (R,) holds ask for (`item_shares`) and `wrong`
        (R,) holds of a wrong-item mistake ask for (the item after the one wanted, as
        sim/des/orders.py takes it)."""
        out = systematic(right, self.shares, rng)
        if np.any(wrong):
            out += systematic(wrong, np.roll(self.shares, 1), rng)
        return out

    def record(self, rec: BatchRecorder, i: int) -> None:
        """The interval's hold decisions and sales, and the units at its end."""
        c, q = self.counts, float(self.counts.quantity)
        free = c.free()
        rec.set(N.of_stock("stock_free", self.name), i, free.sum(axis=1))
        rec.set(N.of_stock("stock_held", self.name), i, c.held.sum(axis=(1, 2)))
        if self.spec.hot is not None:
            rec.set(N.of_stock("hot_free", self.name), i, free[:, : self.spec.hot.items].sum(axis=1))
        for key, metric, scale in (("granted", "holds", 1.0), ("conflicts", "conflicts", 1.0),
                                   ("sold_out", "sold_out_answers", 1.0), ("lapsed", "lapsed", 1.0),
                                   ("confirmed", "sold", q)):
            now = c.totals[key]
            rec.set(N.of_stock(metric, self.name), i, (now - self._reported[key]) * scale)  # type: ignore[arg-type]
            self._reported[key] = now.copy()
