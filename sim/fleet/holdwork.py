"""Inventory work in the fleet engine: what an order book's hold and confirm stages do to their
calls' order states (`sim.rules.inventory` in count form: `StockCounts.hold_many`, i.e.
`hold_batch`, and `confirm_many`), and which inventories the engine models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.ordertags import HELD0, NONE, SOLD, deal
from sim.fleet.split import binomial
from sim.results import names as N
from sim.rules.outcomes import CONFLICT, SOLD_OUT
from sim.scenario import Scenario

if TYPE_CHECKING:
    from sim.fleet.orders import OrderBook


def hold(book: OrderBook, j: int, done: np.ndarray, after: np.ndarray | None, i: int) -> dict[str, np.ndarray]:
    """Hold work: an order with a live (or sold) hold keeps it; the others ask the stock, all
    of this step's at one instant (`StockCounts.hold_many`, i.e. `hold_batch`)."""
    stock, t, rng = book.stock, book.tags, book.rng
    assert stock is not None
    pool = book.sim.pools[str(book.services[j])]
    slot = stock.slot(book.sim.step_n)
    both = [done] if after is None else [done, after]
    views = [t.split(c, 2) for c in both]
    mistaken = [_mistakes_of_new(book, v, pool.effect.wrong_item) for v in views]
    need = [v[:, :, NONE].copy() for v in views]  # (R, K, P, W, NR): ask for a new hold
    conflict = np.zeros_like(views[0])
    sold_out = np.zeros_like(views[0])
    for r in range(book.sim.R):
        n_wrong = sum(float(m[r].sum()) for m in mistaken)
        n_all = sum(float(x[r].sum()) for x in need)
        if n_all <= 0:
            continue
        wanted = stock.wanted(np.array([n_all - n_wrong]), np.array([n_wrong]), rng)[0]
        g, c, so = stock.counts.hold_many(r, wanted, slot)
        cells = np.stack([x[r] for x in need])  # (parts, K, P, W, NR)
        got, conf, out = deal(cells, [float(g.sum()), float(c), float(so)], rng)
        for b, v in enumerate(views):
            v[r, :, NONE] -= cells[b]
            v[r, :, HELD0 + slot] += got[b]
            if b == 0:  # done calls whose hold failed: outcomes of their own
                conflict[r, :, NONE] += conf[b]
                sold_out[r, :, NONE] += out[b]
            else:  # the answer is lost anyway (an error after the work): no hold, an error
                v[r, :, NONE] += conf[b] + out[b]
                _refund(book, v[r:r + 1, :, NONE], out[b][None], i, r)
        _refund(book, sold_out[r:r + 1, :, NONE], out[0][None], i, r)
    # the failed were taken out of `done` above (not put back): outcomes of their own
    return {reason: cells.reshape(done.shape) for reason, cells in ((CONFLICT, conflict), (SOLD_OUT, sold_out))
            if cells.any()}


def _mistakes_of_new(book: OrderBook, v: np.ndarray, p: float) -> np.ndarray:
    """Of the calls that ask for a new hold, those whose choice is mistaken (the wrong item)."""
    if p <= 0 or book.tags.W == 1:
        return np.zeros(v[:, :, NONE, :, 0].shape)
    m = binomial(v[:, :, NONE, :, 0], p, book.rng)
    v[:, :, NONE, :, 0] -= m
    v[:, :, NONE, :, 1] += m
    return m


def _refund(book: OrderBook, target: np.ndarray, sold_out: np.ndarray, i: int, r: int) -> None:
    """Paid orders told sold out are refunded (`sim.rules.orders.refund_due`): they are no
    longer paid. `target` (1, K, P, W, NR) holds `sold_out` of the same shape, moved in place."""
    paid = sold_out[:, :, 1].sum()
    if paid <= 0:
        return
    book.sim.rec.s(N.REFUNDS)[r, i] += paid
    target[:, :, 0] += sold_out[:, :, 1]
    target[:, :, 1] -= sold_out[:, :, 1]


def confirm(book: OrderBook, done: np.ndarray, after: np.ndarray | None) -> dict[str, np.ndarray]:
    """Confirm work: a live hold is sold (`StockCounts.confirm_many`), a sold one stays sold,
    an order whose hold lapsed is answered expired: a conflict (a retry takes a new hold)."""
    stock, t, rng = book.stock, book.tags, book.rng
    if stock is None:
        return {}
    both = [done] if after is None else [done, after]
    views = [t.split(c, 2) for c in both]
    held = sum(v[:, :, HELD0:].sum(axis=(0, 1, 3, 4, 5)) for v in views)
    for s in np.nonzero(held)[0].tolist():
        h = HELD0 + s
        for r in range(book.sim.R):
            cells = np.stack([v[r, :, h] for v in views])
            ask = float(cells.sum())
            if ask <= 0:
                continue
            sold = stock.counts.confirm_many(r, s, ask, float(rng.random()))
            got, lost = deal(cells, [sold, ask - sold], rng)
            for b, v in enumerate(views):
                v[r, :, h] -= cells[b]
                v[r, :, SOLD] += got[b]
                v[r, :, NONE] += lost[b]
    expired = np.zeros_like(views[0])
    expired[:, :, NONE] = views[0][:, :, NONE]
    views[0][:, :, NONE] = 0.0
    if not expired.any():
        return {}
    flat = expired.reshape(done.shape)
    return {CONFLICT: flat}


def hold_quantity(sc: Scenario, service: str) -> int:
    """Units per hold on `service` (the fleet engine models one constant quantity per inventory)."""
    for cls in sc.workload.classes.values():
        for st in cls.stages:
            if st.tool is not None and st.tool.service == service and st.tool.inventory == "hold":
                q = st.tool.quantity
                return max(1, round(q.mean)) if q is not None else 1
    return 1


def fleet_inventory_missing(sc: Scenario) -> str | None:
    """What of this scenario's inventories the fleet engine does not model (None: all of it)."""
    for cname, cls in sc.workload.classes.items():
        holds = [(i, st.tool) for i, st in enumerate(cls.stages) if st.tool is not None and st.tool.inventory == "hold"]
        if len(holds) > 1:
            return (f"orders holding more than one inventory stage (workload.classes.{cname}: stages "
                    f"{[i for i, _ in holds]})")
        for i, t in holds:
            if t.quantity is not None and t.quantity.type != "constant":
                return f"hold quantities that vary (workload.classes.{cname}.stages.{i}.tool.quantity)"
    return None
