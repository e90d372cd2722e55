"""Inventory services in SQLite: the stock, the holds, and the real contention for them.

The semantics are `sim.rules.inventory` (what a hold gets, when it lapses, conflict against
sold out, which item a draw picks) and `sim.rules.orders` (a paid order that finds the stock
sold out is refunded); this module implements them in transactions on the orders file, so a hold
is recorded with its order atomically and survives a killed process:

- `stock(service, item)` rows carry `stock`, `held`, `sold`, with CHECK (held >= 0, sold >= 0,
  held + sold <= stock): no unit is ever sold twice, and no stock goes below zero, whatever the
  code above does.
- `holds` rows: at most one live or sold hold per (order, service, stage) (a partial UNIQUE
  index), so a retry or a concurrent attempt of the same command never takes a second hold.
- A refund (a paid order that finds the stock sold out) releases every hold of the order on
  every service, held or sold (`sim.rules.inventory.release`), in the refund's transaction:
  the refund and the units it gives back happen together, once. A refunded order's holds
  answer sold out (`sim.rules.orders.after_refund`).
- Expiry is `lapsed(expires_at, now)`, done in SQL before every decision (`expires_at <= now`):
  the lapsed units go back to free in the same transaction.
- Times are wall-clock seconds (`time.time()`: holds outlive the process), or a clock passed in.

Every statement runs on the order store's one database thread, inside `BEGIN IMMEDIATE`: the
queue for that thread and the file lock are the contention a real on-sale moment meets.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtest.stack.orders import OrderStore
from sim.rules.inventory import (
    CONFIRMED,
    EXPIRED,
    GRANTED,
    HELD,
    SOLD,
    decide_confirm,
    decide_hold,
    pick_item,
    release,
)
from sim.rules.orders import after_refund, refund_due
from sim.scenario.services import Inventory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
  service TEXT NOT NULL, item INTEGER NOT NULL,
  stock INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0, sold INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (service, item),
  CHECK (held >= 0 AND sold >= 0 AND held + sold <= stock)
);
CREATE TABLE IF NOT EXISTS holds (
  id TEXT PRIMARY KEY,
  service TEXT NOT NULL, order_id TEXT NOT NULL, stage INTEGER NOT NULL,
  item INTEGER NOT NULL, quantity INTEGER NOT NULL CHECK (quantity > 0),
  amount_cents INTEGER NOT NULL,
  expires_at REAL NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('held', 'sold', 'lapsed', 'released')),
  created_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS holds_one_live ON holds (order_id, service, stage) WHERE state IN ('held', 'sold');
CREATE INDEX IF NOT EXISTS holds_expiry ON holds (service, state, expires_at);
"""


@dataclass(frozen=True)
class HoldResult:
    """What a hold call decided: `outcome` (granted, conflict, sold_out), the item held and its
    units and price (granted), whether it was the order's existing hold, whether the order was
    refunded (a paid order whose new hold found the stock sold out)."""

    outcome: str
    item: int | None = None
    quantity: int = 0
    amount_cents: int = 0
    reused: bool = False
    refunded: bool = False


class StockStore:
    """One inventory service's stock and holds, in the order store's SQLite file."""

    def __init__(self, store: OrderStore, service: str, spec: Inventory,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.service, self.spec, self.clock = store, service, spec, clock
        store.add_schema(self._setup)

    def _setup(self, db: sqlite3.Connection) -> None:
        db.executescript(_SCHEMA)
        # a restarted process keeps the stock it had: rows are created once
        db.executemany("INSERT OR IGNORE INTO stock (service, item, stock) VALUES (?, ?, ?)",
                       [(self.service, i, self.spec.stock) for i in range(self.spec.items)])

    # -- the rule, in SQL -------------------------------------------------------------------
    def _expire(self, db: sqlite3.Connection, now: float) -> int:
        """`sim.rules.inventory.lapsed`: holds with expires_at <= now lapse; their units go back."""
        rows = db.execute("SELECT item, SUM(quantity) FROM holds WHERE service=? AND state='held' AND expires_at <= ?"
                          " GROUP BY item", (self.service, now)).fetchall()
        for item, q in rows:
            db.execute("UPDATE stock SET held = held - ? WHERE service=? AND item=?", (q, self.service, item))
        cur = db.execute("UPDATE holds SET state='lapsed' WHERE service=? AND state='held' AND expires_at <= ?",
                         (self.service, now))
        return cur.rowcount

    def _hold(self, db: sqlite3.Connection, order_id: str, stage: int, quantity: int, u: float, wrong: bool,
              now: float) -> HoldResult:
        self._expire(db, now)
        status = db.execute("SELECT status FROM orders WHERE id=?", (order_id,)).fetchone()
        refused = after_refund(status is not None and status["status"] == "refunded")
        if refused is not None:
            return HoldResult(refused)
        live = db.execute("SELECT * FROM holds WHERE order_id=? AND service=? AND stage=? AND state IN ('held',"
                          " 'sold')", (order_id, self.service, stage)).fetchone()
        if live is not None:
            return HoldResult(GRANTED, live["item"], live["quantity"], live["amount_cents"], reused=True)
        last = db.execute("SELECT quantity FROM holds WHERE order_id=? AND service=? AND stage=? ORDER BY created_at"
                          " DESC LIMIT 1", (order_id, self.service, stage)).fetchone()
        q = last["quantity"] if last is not None else quantity  # a lapsed hold is replaced by as many units
        wanted = pick_item(self.spec, u)
        if wrong:
            wanted = (wanted + 1) % self.spec.items
        w = db.execute("SELECT stock - held - sold AS free, stock - sold AS unsold FROM stock WHERE service=? AND"
                       " item=?", (self.service, wanted)).fetchone()
        first = any_unsold = None
        if self.spec.fallback:
            first = db.execute("SELECT item FROM stock WHERE service=? AND stock - held - sold >= ? ORDER BY item"
                               " LIMIT 1", (self.service, q)).fetchone()
            any_unsold = db.execute("SELECT 1 FROM stock WHERE service=? AND stock - sold >= ? LIMIT 1",
                                    (self.service, q)).fetchone()
        outcome, item = decide_hold(wanted, q, w["free"], w["unsold"], first["item"] if first else None,
                                    any_unsold is not None, self.spec.fallback)
        if item is None:
            return HoldResult(outcome, refunded=self._refund_if_due(db, order_id, outcome, now))
        amount = round(100 * self.spec.unit_price * q)
        db.execute("UPDATE stock SET held = held + ? WHERE service=? AND item=?", (q, self.service, item))
        db.execute("INSERT INTO holds (id, service, order_id, stage, item, quantity, amount_cents, expires_at, state,"
                   " created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   ("hold_" + uuid.uuid4().hex[:20], self.service, order_id, stage, item, q, amount,
                    now + self.spec.hold_s, HELD, now))
        self._price_order(db, order_id, now)
        if wrong:  # the wrong seats (or SKU) were held: the user finds out afterwards
            db.execute("UPDATE orders SET wrong_item=1 WHERE id=?", (order_id,))
        return HoldResult(GRANTED, item, q, amount)

    def _price_order(self, db: sqlite3.Connection, order_id: str, now: float) -> None:
        """The order's item and price are its live holds' (until it is paid)."""
        rows = db.execute("SELECT service, item, quantity, amount_cents FROM holds WHERE order_id=? AND"
                          " state IN ('held', 'sold') ORDER BY service, stage", (order_id,)).fetchall()
        sku = ",".join(f"{r['service']}:{r['item']}" for r in rows)
        name = ", ".join(f"{r['quantity']} x {r['service']} item {r['item']}" for r in rows)
        db.execute("UPDATE orders SET sku=?, item=?, price_cents=?, updated_at=? WHERE id=? AND status IN"
                   " ('pending', 'placed')", (sku, name, sum(r["amount_cents"] for r in rows), now, order_id))

    def _refund_if_due(self, db: sqlite3.Connection, order_id: str, outcome: str, now: float) -> bool:
        row = db.execute("SELECT status, price_cents FROM orders WHERE id=?", (order_id,)).fetchone()
        if row is None or not refund_due(outcome, row["status"] in ("paid", "completed"), row["status"] == "refunded"):
            return False
        db.execute("INSERT INTO refunds (order_id, amount_cents, reason, created_at) VALUES (?,?,?,?)"
                   " ON CONFLICT (order_id) DO NOTHING", (order_id, row["price_cents"] or 0, outcome, now))
        db.execute("UPDATE orders SET status='refunded', updated_at=? WHERE id=?", (now, order_id))
        _release_order(db, order_id, now)
        return True

    def _confirm(self, db: sqlite3.Connection, order_id: str, now: float) -> str:
        """Sell every hold of the order on this service: CONFIRMED, or EXPIRED when one lapsed."""
        self._expire(db, now)
        rows = db.execute("SELECT * FROM holds WHERE order_id=? AND service=? ORDER BY stage, created_at",
                          (order_id, self.service)).fetchall()
        latest = {r["stage"]: r for r in rows}  # per stage its newest hold: a lapsed one may have been replaced
        outcome = CONFIRMED if latest else EXPIRED
        for h in latest.values():
            if decide_confirm(h["state"], h["expires_at"], now) == EXPIRED:
                outcome = EXPIRED
            elif h["state"] == HELD:
                db.execute("UPDATE holds SET state=? WHERE id=?", (SOLD, h["id"]))
                db.execute("UPDATE stock SET held = held - ?, sold = sold + ? WHERE service=? AND item=?",
                           (h["quantity"], h["quantity"], self.service, h["item"]))
        return outcome

    # -- async API --------------------------------------------------------------------------
    async def hold(self, order_id: str, stage: int, quantity: int, u: float, wrong: bool = False,
                   now: float | None = None) -> HoldResult:
        """Hold `quantity` units for the order's stage `stage` (reusing a live hold); `u` is the
        item draw (`sim.rules.inventory.pick_item`), `wrong` the wrong_item fault striking."""
        t = self.clock() if now is None else now
        return await self.store.transaction(self._hold, order_id, stage, quantity, u, wrong, t)  # type: ignore[no-any-return]

    async def confirm(self, order_id: str, now: float | None = None) -> str:
        t = self.clock() if now is None else now
        return await self.store.transaction(self._confirm, order_id, t)  # type: ignore[no-any-return]

    async def expire(self, now: float | None = None) -> int:
        t = self.clock() if now is None else now
        return await self.store.transaction(self._expire, t)  # type: ignore[no-any-return]

    async def state(self, now: float | None = None) -> dict[str, Any]:
        """Units free, held and sold (after expiry at `now`), holds by state, and any item over its stock."""
        t = self.clock() if now is None else now

        def fn(db: sqlite3.Connection) -> dict[str, Any]:
            self._expire(db, t)
            s = db.execute("SELECT SUM(stock), SUM(held), SUM(sold), SUM(held + sold > stock) FROM stock WHERE"
                           " service=?", (self.service,)).fetchone()
            holds = {r[0]: r[1] for r in db.execute("SELECT state, COUNT(*) FROM holds WHERE service=? GROUP BY state",
                                                    (self.service,))}
            return {"stock": s[0] or 0, "free": (s[0] or 0) - (s[1] or 0) - (s[2] or 0), "held": s[1] or 0,
                    "sold": s[2] or 0, "oversold_items": s[3] or 0, "holds": holds}
        return await self.store.transaction(fn)  # type: ignore[no-any-return]


def _release_order(db: sqlite3.Connection, order_id: str, now: float) -> None:
    """A refund gives back every hold of the order on every service (`sim.rules.inventory.release`)."""
    for h in db.execute("SELECT id, service, item, quantity, state, expires_at FROM holds WHERE order_id=? AND"
                        " state IN ('held', 'sold')", (order_id,)).fetchall():
        state, held, sold = release(h["state"], h["quantity"], h["expires_at"], now)
        db.execute("UPDATE stock SET held = held - ?, sold = sold - ? WHERE service=? AND item=?",
                   (held, sold, h["service"], h["item"]))
        db.execute("UPDATE holds SET state=? WHERE id=?", (state, h["id"]))


__all__ = ["CONFIRMED", "EXPIRED", "GRANTED", "HoldResult", "StockStore"]
