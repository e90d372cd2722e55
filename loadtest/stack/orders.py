"""Orders and payments in SQLite (WAL), the source of truth for exactly-once ordering.

- `(user_id, idempotency_key)` is UNIQUE: one order per key, however often it is retried.
- `payments.order_id` is UNIQUE: an order is charged at most once, even when the payment
  call is repeated after a lost answer or a crash.
- A payment call for an order already paid charges nothing and is counted
  (`duplicate_payments`): the retry or concurrent attempt that would have paid twice.
- An order that cannot be fulfilled after payment (its stock sold out, `loadtest/stack/inventory.py`)
  is `refunded`, once (`refunds.order_id` is UNIQUE); a retry of it answers sold out again.
- A command that ends without an order (the funnel's outcome, `sim.funnel`: the user changed
  their mind or has no card, the item is out of stock, the payment was declined) ends its row
  with that outcome as its status, unpaid; a retry replays it as it replays a completed order.
- An attempt holds a lease on its order (`owner`, `lease_until`). A retry while the lease is
  held by this process is "concurrent": a second attempt on the same order, as a client retry
  is in the simulator (the order is still placed once, paid once, completed once); a lease held
  by another process instance (one that crashed: one process owns the file) or an expired lease
  is taken over, and the retry resumes the same order.

All statements run on one dedicated thread, so writes never contend for the file lock.
`synchronous=NORMAL` in WAL mode survives a killed process (not a power cut), which is the
failure the tests exercise.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from sim.funnel import NOT_ORDERED

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status TEXT NOT NULL,            -- progress: pending, placed, paid, completed; or refunded; or a NOT_ORDERED outcome
  owner TEXT NOT NULL,
  lease_until REAL NOT NULL,
  attempts INTEGER NOT NULL,
  sku TEXT, item TEXT, price_cents INTEGER,
  payment_id TEXT, answer TEXT, last_error TEXT,
  wrong_item INTEGER NOT NULL DEFAULT 0,          -- the wrong_item fault struck this order
  duplicate_payments INTEGER NOT NULL DEFAULT 0,  -- payment calls that found it paid already
  created_at REAL NOT NULL, updated_at REAL NOT NULL,
  UNIQUE (user_id, idempotency_key)
);
CREATE TABLE IF NOT EXISTS payments (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL UNIQUE REFERENCES orders(id),
  amount_cents INTEGER NOT NULL,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
  order_id TEXT PRIMARY KEY REFERENCES payments(order_id),
  amount_cents INTEGER NOT NULL,
  reason TEXT NOT NULL,
  created_at REAL NOT NULL
);
"""

Claim = Literal["new", "resumed", "replay", "concurrent", "mismatch", "refunded"]
ENDED = ("completed", *NOT_ORDERED)  # the statuses of a command that finished: a retry replays it
_ENDED_SQL = ", ".join(f"'{s}'" for s in ENDED)


class OrderStore:
    """Async facade over one SQLite file; `instance` names this process in leases."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.instance = uuid.uuid4().hex[:12]
        self._ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orders-db")
        self._db: sqlite3.Connection | None = None
        self._schemas: list[Callable[[sqlite3.Connection], None]] = []  # more tables (inventory), set up on open

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._ex, fn, *args)

    def add_schema(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Run `setup(db)` when the store opens (before any request): tables sharing this file."""
        self._schemas.append(setup)

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        for setup in self._schemas:
            setup(db)
        self._db = db

    async def transaction(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(db, *args)` in one write transaction on the store's thread (for the tables
        that share this file, e.g. inventory holds recorded with their order)."""
        return await self._run(self._tx, fn, *args)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._ex.shutdown(wait=True)

    def _tx(self, fn: Any, *args: Any) -> Any:
        db = self._db
        assert db is not None, "OrderStore.open() was not awaited"
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db, *args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    async def claim(self, user_id: str, key: str, request_hash: str, lease_s: float) -> tuple[Claim, dict[str, Any]]:
        """Create or take over the order for (user, key); see the module docstring."""
        return await self._run(self._tx, self._claim, user_id, key, request_hash, lease_s)

    def _claim(self, db: sqlite3.Connection, user_id: str, key: str, rhash: str, lease_s: float):  # type: ignore[no-untyped-def]
        now = time.time()
        oid = "ord_" + uuid.uuid4().hex[:20]
        cur = db.execute(
            "INSERT INTO orders (id, user_id, idempotency_key, request_hash, status, owner, lease_until, attempts,"
            " created_at, updated_at) VALUES (?,?,?,?, 'pending', ?, ?, 1, ?, ?)"
            " ON CONFLICT (user_id, idempotency_key) DO NOTHING",
            (oid, user_id, key, rhash, self.instance, now + lease_s, now, now))
        row = dict(db.execute("SELECT * FROM orders WHERE user_id=? AND idempotency_key=?", (user_id, key)).fetchone())
        if cur.rowcount == 1:
            return "new", row
        if row["request_hash"] != rhash:
            return "mismatch", row
        if row["status"] in ENDED:
            return "replay", row
        if row["status"] == "refunded":
            return "refunded", row
        if row["lease_until"] > now and row["owner"] == self.instance:
            db.execute("UPDATE orders SET attempts=attempts+1, updated_at=? WHERE id=?", (now, row["id"]))
            row.update(attempts=row["attempts"] + 1)
            return "concurrent", row
        db.execute("UPDATE orders SET owner=?, lease_until=?, attempts=attempts+1, updated_at=? WHERE id=?",
                   (self.instance, now + lease_s, now, row["id"]))
        row.update(owner=self.instance, lease_until=now + lease_s, attempts=row["attempts"] + 1)
        return "resumed", row

    async def place(self, order_id: str, sku: str, item: str, price_cents: int) -> None:
        """Record the chosen item (idempotent: a placed order keeps its first item)."""
        await self._run(self._tx, lambda db: db.execute(
            "UPDATE orders SET status='placed', sku=?, item=?, price_cents=?, updated_at=?"
            " WHERE id=? AND status='pending'", (sku, item, price_cents, time.time(), order_id)))

    async def pay(self, order_id: str) -> tuple[str, bool]:
        """Charge the order once: (payment id, whether this call charged). A repeated call
        returns the first payment's id, charges nothing and is counted as a duplicate prevented."""
        return await self._run(self._tx, self._pay, order_id)  # type: ignore[no-any-return]

    def _pay(self, db: sqlite3.Connection, order_id: str) -> tuple[str, bool]:
        row = db.execute("SELECT price_cents FROM orders WHERE id=?", (order_id,)).fetchone()
        if row is None or row["price_cents"] is None:
            raise LookupError(f"order {order_id} has no item to pay for")
        now = time.time()
        cur = db.execute("INSERT INTO payments (id, order_id, amount_cents, created_at) VALUES (?,?,?,?)"
                         " ON CONFLICT (order_id) DO NOTHING",
                         ("pay_" + uuid.uuid4().hex[:20], order_id, row["price_cents"], now))
        charged = cur.rowcount == 1
        if not charged:
            db.execute("UPDATE orders SET duplicate_payments=duplicate_payments+1 WHERE id=?", (order_id,))
        pid = db.execute("SELECT id FROM payments WHERE order_id=?", (order_id,)).fetchone()["id"]
        db.execute("UPDATE orders SET status='paid', payment_id=?, updated_at=? WHERE id=? AND status IN"
                   " ('pending','placed')", (pid, now, order_id))
        return str(pid), charged

    async def mark_wrong_item(self, order_id: str) -> None:
        """The wrong_item fault struck this order (the user finds out afterwards)."""
        await self._run(self._tx, lambda db: db.execute("UPDATE orders SET wrong_item=1 WHERE id=?", (order_id,)))

    async def complete(self, order_id: str, answer: str, status: str = "completed") -> dict[str, Any]:
        """Mark the order done (`status`: completed, or the NOT_ORDERED outcome it ended with) and
        release its lease; returns the final row. The first attempt to finish stores its answer;
        a concurrent one finishing later gets the same row."""
        assert status in ENDED, status
        def fn(db: sqlite3.Connection) -> dict[str, Any]:
            db.execute(f"UPDATE orders SET status=?, answer=?, lease_until=0, last_error=NULL,"  # noqa: S608 - constants
                       f" updated_at=? WHERE id=? AND status NOT IN ({_ENDED_SQL})",
                       (status, answer, time.time(), order_id))
            return dict(db.execute("SELECT * FROM orders WHERE id=?", (order_id,)).fetchone())
        return await self._run(self._tx, fn)

    async def release(self, order_id: str, error: str) -> None:
        """End a failed attempt: the lease goes, progress stays, a retry resumes from it."""
        await self._run(self._tx, lambda db: db.execute(
            "UPDATE orders SET lease_until=0, last_error=?, updated_at=? WHERE id=?",
            (error, time.time(), order_id)))

    async def get(self, order_id: str) -> dict[str, Any] | None:
        def fn() -> dict[str, Any] | None:
            assert self._db is not None
            row = self._db.execute("SELECT * FROM orders WHERE id=?", (order_id,)).fetchone()
            return dict(row) if row else None
        return await self._run(fn)

    async def counts(self) -> dict[str, int]:
        """Orders by status plus payments (for /metrics and tests)."""
        def fn() -> dict[str, int]:
            assert self._db is not None
            out = {r[0]: r[1] for r in self._db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status")}
            out["payments"] = self._db.execute("SELECT COUNT(*) FROM payments").fetchone()[0]
            return out
        return await self._run(fn)

    async def ledger(self) -> dict[str, Any]:
        """Money in the ledger: orders by status, payments, duplicates prevented, refunds, wrong
        items, and paid orders never completed nor refunded (money at risk)."""
        def fn() -> dict[str, Any]:
            db = self._db
            assert db is not None
            one = lambda q: db.execute(q).fetchone()[0] or 0  # noqa: E731
            return {"orders": {r[0]: r[1] for r in db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status")},
                    "payments": one("SELECT COUNT(*) FROM payments"),
                    "paid_cents": one("SELECT SUM(amount_cents) FROM payments"),
                    "duplicates_prevented": one("SELECT SUM(duplicate_payments) FROM orders"),
                    "refunds": one("SELECT COUNT(*) FROM refunds"),
                    "refunded_cents": one("SELECT SUM(amount_cents) FROM refunds"),
                    "wrong_items": one("SELECT COUNT(*) FROM orders WHERE wrong_item=1 AND status='completed'"),
                    "paid_not_completed": one("SELECT COUNT(*) FROM orders WHERE status='paid'")}
        return await self._run(fn)  # type: ignore[no-any-return]
