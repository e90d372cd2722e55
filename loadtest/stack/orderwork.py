"""The real work behind an order-placing command's tool stages (`sim.rules.orders`): choose the
item (`catalog`), place the order (`order`), pay (`payment`), hold and sell stock (a stage with
`tool.inventory`, `inventory.StockStore`), each inside its service call (latency, errors,
breaker, queue), so an error after the work loses only the answer.

What one attempt did to the money is kept in its `Ledger` (payments charged, duplicate payments
prevented, refunds), which the answer reports so that a load test can count it as it goes; the
database itself (`GET /admin/ledger`) is the exact account.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from loadtest.stack.errors import APIError
from loadtest.stack.inventory import EXPIRED, GRANTED
from loadtest.stack.state import Stack
from sim.rules.orders import CATALOG_TOOL, ORDER_TOOLS, PAYMENT_TOOL
from sim.rules.outcomes import SOLD_OUT
from sim.scenario import Stage

MENU = (  # sku, name, price (cents)
    ("tea-milk", "classic milk tea", 1500), ("tea-boba", "brown sugar boba milk tea", 1800),
    ("tea-jasmine", "jasmine green tea", 1200), ("tea-matcha", "matcha latte", 2000),
    ("tea-mango", "mango fruit tea", 1600), ("coffee-latte", "iced latte", 1700),
)


@dataclass
class Ledger:
    """What one attempt did to the money (the answer reports it as `ledger`)."""

    charged: int = 0  # payments taken by this attempt
    duplicates_prevented: int = 0  # payment calls that found the order paid already
    refunds: int = 0  # orders this attempt refunded

    def view(self) -> dict[str, int]:
        return asdict(self)


class InventoryError(APIError):
    """An inventory answer that fails the attempt, paid or not: 409 with code
    `inventory_conflict` (retryable), `hold_expired` (retryable: a new hold is taken) or `sold_out`."""

    def __init__(self, service: str, outcome: str) -> None:
        code = {"conflict": "inventory_conflict", SOLD_OUT: "sold_out"}.get(outcome, "hold_expired")
        text = {"inventory_conflict": "no free units right now (held by others)", "sold_out": "sold out",
                "hold_expired": "the hold lapsed before it was confirmed"}[code]
        super().__init__(409, f"{service}: {text}", code, headers={"Retry-After": "1"})


def pick_item(command: str) -> tuple[str, str, int]:
    """The menu item a command asks for (first whose words all appear), else the first."""
    words = set(command.lower().replace(",", " ").split())
    for sku, name, price in MENU:
        if set(name.split()) - {"classic", "iced"} <= words:
            return sku, name, price
    return MENU[0]


def with_item(row: dict[str, Any], command: str) -> dict[str, Any]:
    """The order row with its item chosen (the command's, when no earlier stage chose one)."""
    if row.get("sku"):
        return row
    sku, item, price = pick_item(command)
    return {**row, "sku": sku, "item": item, "price_cents": price}


def _value(v: Any) -> Any:
    async def work() -> Any:
        return v
    return work


class OrderTools:
    """Runs the tool stages of order-placing commands for one stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def _mistake(self, service: str) -> bool:
        """Whether the wrong_item fault on `service` strikes this call (its own seeded stream)."""
        p = self.stack.faults.effect(service).wrong_item
        return p > 0 and float(self.stack.inventory_rng(service).random()) < p

    async def run(self, stage: Stage, index: int, row: dict[str, Any] | None, command: str,
                  deadline: float | None, ledger: Ledger) -> dict[str, Any] | None:
        """Call the stage's service, doing its work on the order; the order row as it now is."""
        t = stage.tool
        assert t is not None
        svc = self.stack.tools[t.service]
        if row is None:
            await svc.call(_value(None), deadline)  # the call's time and errors, no order to work on
            return row
        if t.inventory == "hold":
            return await self._hold(stage, index, row, deadline, ledger)
        if t.inventory == "confirm":
            oid, stock = row["id"], self.stack.stocks[t.service]
            if await svc.call(lambda: stock.confirm(oid), deadline) == EXPIRED:
                raise InventoryError(t.service, EXPIRED)
            return row
        if t.service == PAYMENT_TOOL:
            return await self.pay(with_item(row, command), deadline, ledger)
        wrong = self._mistake(t.service)
        if t.service not in ORDER_TOOLS or row["status"] in ("paid", "completed"):
            await svc.call(_value(None), deadline)
            if wrong:
                await self.stack.store.mark_wrong_item(row["id"])
            return row
        if t.service == CATALOG_TOOL:
            chosen = await svc.call(_value(_wrong(pick_item(command)) if wrong else pick_item(command)), deadline)
            if row.get("sku"):
                return row  # resumed: the item was chosen before
            if wrong:
                await self.stack.store.mark_wrong_item(row["id"])
            return {**row, "sku": chosen[0], "item": chosen[1], "price_cents": chosen[2]}
        r = with_item(row, command)
        if wrong:
            r = {**r, **dict(zip(("sku", "item", "price_cents"), _wrong((r["sku"], r["item"], r["price_cents"])),
                                 strict=True))}
        await svc.call(lambda: self.place(r, wrong), deadline)
        return {**r, "status": "placed"}

    async def place(self, row: dict[str, Any], wrong: bool = False) -> dict[str, Any]:
        if row["status"] == "pending":
            await self.stack.store.place(row["id"], row["sku"], row["item"], row["price_cents"])
            if wrong:
                await self.stack.store.mark_wrong_item(row["id"])
        return {**row, "status": "placed"} if row["status"] == "pending" else row

    async def pay(self, row: dict[str, Any], deadline: float | None, ledger: Ledger,
                  via_service: bool = True) -> dict[str, Any]:
        """Pay the order (placed first if it was not); a repeated payment charges nothing."""
        row = await self.place(row)  # payment with no order stage before it: placed now
        oid, store = row["id"], self.stack.store
        if via_service:
            pid, charged = await self.stack.tools[PAYMENT_TOOL].call(lambda: store.pay(oid), deadline)
        else:
            pid, charged = await store.pay(oid)
        if charged:
            ledger.charged += 1
        else:
            ledger.duplicates_prevented += 1
        return {**row, "status": "paid", "payment_id": pid}

    async def _hold(self, stage: Stage, index: int, row: dict[str, Any], deadline: float | None,
                    ledger: Ledger) -> dict[str, Any]:
        t = stage.tool
        assert t is not None
        st = self.stack
        quantity = max(1, round(t.quantity.sample(st.rng_agent))) if t.quantity else 1
        u = float(st.inventory_rng(t.service).random())
        wrong = self._mistake(t.service)
        stock, oid = st.stocks[t.service], row["id"]
        res = await st.tools[t.service].call(lambda: stock.hold(oid, index, quantity, u, wrong), deadline)
        if res.refunded:
            ledger.refunds += 1
        if res.outcome != GRANTED:
            raise InventoryError(t.service, res.outcome)
        fresh = await st.store.get(oid)  # its item and price are now the holds'
        return fresh if fresh is not None else row


def _wrong(item: tuple[str, str, int]) -> tuple[str, str, int]:
    """Another menu item than `item` (the wrong_item fault)."""
    i = next((k for k, m in enumerate(MENU) if m[0] == item[0]), 0)
    return MENU[(i + 1) % len(MENU)]
