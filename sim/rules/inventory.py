"""Finite inventory: items with stock, holds that lapse, conflict and sold-out answers, hot items.

One rule for every consumer. The SimPy engine keeps the stock in memory (`Stock`, here); the
reference stack keeps it in SQLite (`loadtest/stack/inventory.py`), where the transaction is
the real contention: it reads the item rows inside the transaction, decides with the functions
here, and writes what they decided. No clock of its own: every call takes `now` (seconds), every
random choice takes its U(0, 1) draw.

- Items are in order of preference (the best seats, the most wanted SKU first); each starts
  with `stock` units. A unit is free, held (by a live hold) or sold: free = stock - held - sold;
  unsold = stock - sold (what could still be sold once holds lapse).
- `pick_item(spec, u)`: the item a hold asks for: with probability `hot.share` one of the first
  `hot.items` items (uniformly), else one of the others (uniformly); no `hot`: any item.
- `decide_hold`: granted on the wanted item when it has `quantity` free units; else, with
  `fallback`, on the most preferred item that has (the agent offers the next best seats);
  else `conflict` when units held by others could still come back (the wanted item, or with
  fallback any item, has `quantity` unsold units), else `sold_out`.
- A hold lapses at its expiry (`now >= expires_at`): its units are free again. Expiry is applied
  before every decision, so every decision sees only live holds.
- `decide_confirm`: a live hold becomes a sale; confirming a sold hold again changes nothing
  (idempotent: a retried confirm never sells twice); a lapsed hold answers `expired`.
- `release`: a refunded order gives back every unit it holds or bought (`sim.rules.orders`: a
  refund releases the whole order, on every inventory): a held hold's units are free again, a
  sold hold's units are unsold again; the hold is `released` (answers `expired` from then on).
  A held hold already past its expiry lapses instead (the same units, counted as a lapse).

`hold_batch` is the same rule for a batch of holds decided at one instant (the fleet engine's
time step): see its docstring for what it keeps exactly. The other count forms, for the fleet
engine: `item_shares` (the distribution `pick_item` draws from) and `StockCounts` (the stock of
`Stock` as counts per item for a batch of replications, holds kept by the slot of the epoch they
were granted in, so a whole slot lapses at once).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Final

import numpy as np

from sim.rules.outcomes import CONFLICT, SOLD_OUT
from sim.scenario.services import Inventory

__all__ = ["CONFIRMED", "CONFLICT", "EXPIRED", "GRANTED", "HELD", "LAPSED", "RELEASED", "SOLD", "SOLD_OUT", "Hold",
           "Stock", "StockCounts", "decide_confirm", "decide_hold", "hold_batch", "item_shares", "lapsed", "pick_item",
           "release"]

GRANTED: Final = "granted"  # the hold was taken
# CONFLICT (no free units now; units held by others may come back) and SOLD_OUT (nothing left
# to sell for this quantity) are attempt outcomes too: `sim.rules.outcomes`
CONFIRMED: Final = "confirmed"  # the hold is a sale
EXPIRED: Final = "expired"  # the hold lapsed before it was confirmed

HELD: Final = "held"  # hold states
SOLD: Final = "sold"
LAPSED: Final = "lapsed"
RELEASED: Final = "released"  # given back by a refund


def pick_item(spec: Inventory, u: float) -> int:
    """The item (0-based, in order of preference) a hold asks for, from one U(0, 1) draw."""
    n = spec.items
    hot = spec.hot
    if hot is None:
        return min(int(u * n), n - 1)
    if u < hot.share or hot.items >= n:
        return min(int(u / hot.share * hot.items), hot.items - 1)
    rest = n - hot.items
    return hot.items + min(int((u - hot.share) / (1.0 - hot.share) * rest), rest - 1)


def item_shares(spec: Inventory) -> np.ndarray:
    """The count form of `pick_item`: the probability (items,) that a hold asks for each item."""
    n = spec.items
    hot = spec.hot
    if hot is None or hot.items >= n:
        return np.full(n, 1.0 / n)
    out = np.empty(n)
    out[: hot.items] = hot.share / hot.items
    out[hot.items:] = (1.0 - hot.share) / (n - hot.items)
    return out


def decide_hold(wanted: int, quantity: int, wanted_free: int, wanted_unsold: int, first_free: int | None,
                any_unsold: bool, fallback: bool) -> tuple[str, int | None]:
    """(outcome, item held or None). `first_free`: the most preferred item with `quantity` free
    units (None: none has); `any_unsold`: whether some item has `quantity` unsold units."""
    if wanted_free >= quantity:
        return GRANTED, wanted
    if fallback and first_free is not None:
        return GRANTED, first_free
    could_return = any_unsold if fallback else wanted_unsold >= quantity
    return (CONFLICT if could_return else SOLD_OUT), None


def lapsed(expires_at: float, now: float) -> bool:
    """Whether a hold that expires at `expires_at` has lapsed at `now` (seconds)."""
    return now >= expires_at


def decide_confirm(state: str, expires_at: float, now: float) -> str:
    """CONFIRMED (a live hold is sold now, or was sold before) or EXPIRED."""
    if state == SOLD:
        return CONFIRMED
    if state == HELD and not lapsed(expires_at, now):
        return CONFIRMED
    return EXPIRED


def release(state: str, quantity: int, expires_at: float, now: float) -> tuple[str, int, int]:
    """A refund releases a hold in `state` of `quantity` units at `now`: (its new state, held
    units that are free again, sold units that are unsold again)."""
    if state == HELD:
        return (LAPSED if lapsed(expires_at, now) else RELEASED), quantity, 0
    if state == SOLD:
        return RELEASED, 0, quantity
    return state, 0, 0  # lapsed or released already: nothing to give back (a refund releases once)


@dataclass(eq=False)
class Hold:
    """Units of one item held for one order until `expires_at` (seconds), then sold or lapsed."""

    id: int
    item: int
    quantity: int
    expires_at: float
    state: str = HELD


class Stock:
    """The stock of one inventory service, in memory (the SimPy engine's; the stack's is SQLite)."""

    def __init__(self, spec: Inventory) -> None:
        self.spec = spec
        n = spec.items
        self.stock = [spec.stock] * n
        self.held = [0] * n
        self.sold = [0] * n
        self._expiry: list[tuple[float, int, Hold]] = []  # heap of live holds by expiry
        self._ids = 0
        # running totals, for results
        self.granted = self.conflicts = self.sold_out = self.lapsed = self.confirmed = 0

    # -- reading ----------------------------------------------------------------------------
    def free(self, item: int) -> int:
        return self.stock[item] - self.held[item] - self.sold[item]

    def unsold(self, item: int) -> int:
        return self.stock[item] - self.sold[item]

    @property
    def free_units(self) -> int:
        return sum(self.stock) - sum(self.held) - sum(self.sold)

    @property
    def hot_free_units(self) -> int:
        """Free units of the hot items (0 without hot items)."""
        hot = self.spec.hot
        return sum(self.free(i) for i in range(hot.items)) if hot else 0

    @property
    def held_units(self) -> int:
        return sum(self.held)

    @property
    def sold_units(self) -> int:
        return sum(self.sold)

    # -- the rule, applied ------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Lapse every hold whose expiry has come; returns how many lapsed."""
        n = 0
        heap = self._expiry
        while heap and lapsed(heap[0][0], now):
            _, _, h = heapq.heappop(heap)
            if h.state == HELD:
                h.state = LAPSED
                self.held[h.item] -= h.quantity
                n += 1
        self.lapsed += n
        return n

    def hold(self, wanted: int, quantity: int, now: float) -> tuple[str, Hold | None]:
        """Ask for `quantity` units of item `wanted` at `now`: (outcome, the hold when granted)."""
        self.expire(now)
        first = self._first_with(quantity, self.free) if self.spec.fallback else None
        any_unsold = self.spec.fallback and self._first_with(quantity, self.unsold) is not None
        outcome, item = decide_hold(wanted, quantity, self.free(wanted), self.unsold(wanted), first, any_unsold,
                                    self.spec.fallback)
        if item is None:
            if outcome == CONFLICT:
                self.conflicts += 1
            else:
                self.sold_out += 1
            return outcome, None
        self._ids += 1
        h = Hold(self._ids, item, quantity, now + self.spec.hold_s)
        self.held[item] += quantity
        heapq.heappush(self._expiry, (h.expires_at, h.id, h))
        self.granted += 1
        return GRANTED, h

    def confirm(self, h: Hold, now: float) -> str:
        """Turn a hold into a sale at `now`: CONFIRMED or EXPIRED."""
        self.expire(now)
        outcome = decide_confirm(h.state, h.expires_at, now)
        if outcome == CONFIRMED and h.state == HELD:
            h.state = SOLD
            self.held[h.item] -= h.quantity
            self.sold[h.item] += h.quantity
            self.confirmed += 1
        elif outcome == EXPIRED and h.state == HELD:  # lapsed at exactly `now`, before the heap saw it
            h.state = LAPSED
            self.held[h.item] -= h.quantity
            self.lapsed += 1
        return outcome

    def release(self, h: Hold, now: float) -> int:
        """A refund gives back hold `h` (`release`); returns the units given back."""
        state, held, sold = release(h.state, h.quantity, h.expires_at, now)
        if state == LAPSED and h.state == HELD:
            self.lapsed += 1
        h.state = state
        self.held[h.item] -= held
        self.sold[h.item] -= sold
        return held + sold

    def live(self, h: Hold | None, now: float) -> bool:
        """Whether `h` still holds or has sold its units at `now` (a retry may reuse it)."""
        return h is not None and decide_confirm(h.state, h.expires_at, now) == CONFIRMED

    def _first_with(self, quantity: int, units) -> int | None:  # type: ignore[no-untyped-def]
        for i in range(self.spec.items):
            if units(i) >= quantity:
                return i
        return None


def hold_batch(free: np.ndarray, unsold: np.ndarray, wanted: np.ndarray, quantity: int,
               fallback: bool) -> tuple[np.ndarray, int, int]:
    """The rule for a batch of holds of `quantity` units each, decided at one instant (the fleet
    engine's time step): `wanted[i]` holds ask for item i; items have `free[i]` and `unsold[i]`
    units. Returns (holds granted per item, conflicts, sold-outs).

    Each item first grants the holds that asked for it, as far as its free units go; with
    `fallback`, the holds left over then go to the items with free units left, most preferred
    first. The totals (granted, conflicts, sold-outs) equal those of `Stock.hold` called once per
    hold in any order; which item a fallback hold lands on can differ (one at a time, an early
    fallback can take the units a later request for that item wanted)."""
    cap = np.asarray(free, dtype=np.int64) // quantity
    want = np.asarray(wanted, dtype=np.int64)
    direct = np.minimum(want, cap)
    left = want - direct
    granted = direct.copy()
    if fallback:
        spill = int(left.sum())
        room = cap - direct
        take = np.minimum(room, np.maximum(0, spill - (np.cumsum(room) - room)))
        granted += take
        refused = spill - int(take.sum())
        if not refused:
            return granted, 0, 0
        # a refused hold's outcome depends on the inventory as a whole: all conflicts or all sold out
        could_return = bool((np.asarray(unsold) >= quantity).any())
        return granted, (refused if could_return else 0), (0 if could_return else refused)
    could = np.asarray(unsold, dtype=np.int64) >= quantity
    return granted, int(left[could].sum()), int(left[~could].sum())



class StockCounts:
    """The count form of `Stock` (the fleet engine's), for R replications at once: units per
    item held (by the slot of the epoch a hold was granted in), sold and free, for holds of one
    `quantity`. The decisions are `hold_batch`; a slot's holds lapse together (`lapse`)."""

    def __init__(self, spec: Inventory, R: int, slots: int, quantity: int) -> None:
        self.spec, self.quantity = spec, quantity
        self.stock = float(spec.stock)
        self.held = np.zeros((R, slots, spec.items))  # units
        self.sold = np.zeros((R, spec.items))
        self.totals = {k: np.zeros(R) for k in ("granted", "conflicts", "sold_out", "lapsed", "confirmed")}

    def free(self) -> np.ndarray:
        """Free units per item (R, items)."""
        return self.stock - self.held.sum(axis=1) - self.sold

    def hold_many(self, r: int, wanted: np.ndarray, slot: int) -> tuple[np.ndarray, int, int]:
        """Holds of replication r asking for items `wanted` (counts per item), decided at one
        instant; the granted take slot `slot`. Returns (granted per item, conflicts, sold-outs)."""
        g, c, so = hold_batch(self.free()[r], self.stock - self.sold[r], wanted, self.quantity, self.spec.fallback)
        self.held[r, slot] += g * self.quantity
        t = self.totals
        t["granted"][r] += g.sum()
        t["conflicts"][r] += c
        t["sold_out"][r] += so
        return g, c, so

    def confirm_many(self, r: int, slot: int, holds: float, u: float) -> float:
        """Sell `holds` live holds of slot `slot` (replication r); which items, in proportion to
        the slot's holds (systematic, from one U(0, 1) draw `u`). Returns the holds sold."""
        per_item = self.held[r, slot] // self.quantity
        n = min(float(holds), float(per_item.sum()))
        if n <= 0:
            return 0.0
        cum = np.cumsum(per_item) / per_item.sum()
        cuts = np.floor(n * cum + u)
        take = np.minimum(np.diff(np.concatenate([[0.0], cuts])), per_item)  # never more than a slot holds
        self.held[r, slot] -= take * self.quantity
        self.sold[r] += take * self.quantity
        self.totals["confirmed"][r] += take.sum()
        return float(take.sum())

    def lapse(self, slot: int) -> np.ndarray:
        """Every hold still in slot `slot` lapses: its units are free again. Returns holds (R,)."""
        n = self.held[:, slot].sum(axis=1) / self.quantity
        self.held[:, slot] = 0.0
        self.totals["lapsed"] += n
        return n
