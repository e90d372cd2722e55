"""Orders and money: what a command's order goes through across its attempts, and what is at
risk when something fails. The simulator keeps these facts per command (`OrderState`); the
reference stack keeps them in SQLite (`loadtest/stack/orders.py`, `inventory.py`), where the
unique keys make them hold under concurrency and crashes. Both decide with the rules here.

- The tools of an order-placing class that do an order's work are named by convention:
  `catalog` chooses the item, `order` places the order, `payment` pays it (the stack does that
  work for real); an inventory stage (`tool.inventory: hold | confirm`) holds and sells stock.
- One order per command, however many attempts: a retry resumes it. A retry that reaches the
  payment stage of an order already paid pays nothing (`charge` -> DUPLICATE_PREVENTED): the
  retry, or a concurrent attempt, would otherwise have paid twice. Payments that are not
  exactly-once (a funnel's `exactly_once: false`, a what-if) charge again (CHARGED_AGAIN).
- A hold the order already has is reused by a retry while it is live; a lapsed one is replaced
  by a new hold. A paid order whose new hold finds the stock sold out cannot be fulfilled:
  it is refunded (`refund_due`), and the command fails `sold_out`. The refund gives back the
  whole order, once, in the same step: every hold it has on every inventory, held or already
  sold (`sim.rules.inventory.release`: a travel order refunded for want of a hotel room does not
  keep the flight seats it confirmed). A refunded order stays refunded: any later hold of it
  (a retry, or an attempt still running) answers sold out (`after_refund`).
- Once paid, a command succeeds even if a later stage fails (`after_failure`): the customer
  paid, so the order stands, the rest of the command is skipped and the user is told it is
  ordered and paid (the stack answers plainly; the failed step is reported in the attempt's
  calls). Why this and not "refund and fail the attempt": failing it tells a user who was
  charged that nothing happened (money at risk, FAILED_AFTER_PAYMENT) and invites a retry that
  can only be a prevented duplicate; refunding would undo a sale the user wanted because a
  step after the money (an answer's wording, a notification) failed. The exception is an
  inventory stage still to come (`paid_survives`): the stock is not sold until it is confirmed,
  so a failure before that fails the attempt and a retry confirms. "Paid" is what the attempt
  knows before the failing stage: a payment whose answer was lost (an error after the work)
  fails its attempt like any error; the retry finds the order paid.
  The SimPy engine, the fleet engine (`after_failure_counts`) and the stack follow it.
- When a command ends: failed after its order was paid and not refunded -> FAILED_AFTER_PAYMENT
  (a refund is owed: money at risk); succeeded with the wrong item (the `wrong_item` fault) ->
  WRONG_ITEM. (A charge that lands after the command ended is failed-after-payment too: the
  simulator's client counts it as it happens.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sim.rules.outcomes import OK, SOLD_OUT
from sim.scenario import CommandClass, Stage

CATALOG_TOOL: Final = "catalog"
ORDER_TOOL: Final = "order"
PAYMENT_TOOL: Final = "payment"
ORDER_TOOLS: Final = (CATALOG_TOOL, ORDER_TOOL, PAYMENT_TOOL)

HOLD_WORK, CONFIRM_WORK, PAY_WORK, ITEM_WORK = "hold", "confirm", "pay", "item"  # what a tool stage does

CHARGED: Final = "charged"  # what a payment stage did
CHARGED_AGAIN: Final = "charged_again"
DUPLICATE_PREVENTED: Final = "duplicate_prevented"
FAILED_AFTER_PAYMENT: Final = "failed_after_payment"  # what an ended command leaves behind
WRONG_ITEM: Final = "wrong_item"


class OrderState:
    """One command's order as a client keeps it across attempts: its holds (by inventory service
    and stage; the simulator's), whether it was paid (charged at least once), refunded, or got
    the wrong item."""

    __slots__ = ("holds", "paid", "refunded", "wrong_item")

    def __init__(self) -> None:
        self.holds: dict[tuple[str, int], Any] = {}  # (service, stage index) -> sim.rules.inventory.Hold
        self.paid = False
        self.refunded = False
        self.wrong_item = False

    def refund_due(self, hold_outcome: str) -> bool:
        """`refund_due` for this order; when due, the order is now refunded."""
        if not refund_due(hold_outcome, self.paid, self.refunded):
            return False
        self.refunded = True
        return True


def stage_work(cls: CommandClass, stage_index: int) -> str | None:
    """What tool stage `stage_index` of `cls` does to its order: HOLD_WORK or CONFIRM_WORK (an
    inventory stage), PAY_WORK (the `payment` tool), ITEM_WORK (any other tool of an
    order-placing class: it chooses the item, where a `wrong_item` fault strikes); None for an
    LLM stage or a class that places no order."""
    st = cls.stages[stage_index].tool
    if not cls.places_order or st is None:
        return None
    if st.inventory is not None:
        return HOLD_WORK if st.inventory == "hold" else CONFIRM_WORK
    return PAY_WORK if st.service == PAYMENT_TOOL else ITEM_WORK


def settles_at_end(cls: CommandClass) -> bool:
    """An order-placing class with no payment stage pays as its command finishes (as the stack does)."""
    return cls.places_order and not any(s.tool is not None and s.tool.service == PAYMENT_TOOL and
                                        s.tool.inventory is None for s in cls.stages)


def charge(charges_so_far: int, exactly_once: bool = True) -> str:
    """What a payment stage does for an order charged `charges_so_far` times: CHARGED the first
    time; after that DUPLICATE_PREVENTED, or CHARGED_AGAIN when payments are not exactly-once."""
    if not charges_so_far:
        return CHARGED
    return DUPLICATE_PREVENTED if exactly_once else CHARGED_AGAIN


def charge_counts(unpaid: float, paid: float, exactly_once: bool = True) -> tuple[float, float, float]:
    """The count form of `charge` (the fleet engine's): payment stages done for `unpaid` orders
    never charged and `paid` orders charged before. Returns (charged, charged again, duplicates
    prevented): every first charge is CHARGED, every later one CHARGED_AGAIN or prevented."""
    return (unpaid, 0.0 if exactly_once else paid, paid if exactly_once else 0.0)


def refund_due(hold_outcome: str, paid: bool, refunded: bool) -> bool:
    """Whether a hold answer leaves an order unfulfillable after it was paid: a new hold found
    the stock sold out, so the order is refunded (once)."""
    return hold_outcome == SOLD_OUT and paid and not refunded


def after_refund(refunded: bool) -> str | None:
    """What a hold of an order answers without asking the stock: SOLD_OUT once it was refunded
    (the order cannot be fulfilled any more; a new hold would sell stock to a refunded order)."""
    return SOLD_OUT if refunded else None


def paid_survives(stages: Sequence[Stage], failed_at: int) -> bool:
    """Whether a paid order's command succeeds although stage `failed_at` failed: no inventory
    stage is at or after it."""
    return not any(st.tool is not None and st.tool.inventory is not None for st in stages[failed_at:])


def after_failure(outcome: str, paid_before: bool, stages: Sequence[Stage], failed_at: int) -> str:
    """An attempt's outcome when stage `failed_at` answered `outcome` (not OK) for an order that
    was paid before the stage began (`paid_before`): OK when the paid order stands
    (`paid_survives`), else the stage's outcome."""
    return OK if paid_before and paid_survives(stages, failed_at) else outcome


def after_failure_counts(failed_paid: float, failed_unpaid: float, stages: Sequence[Stage],
                         failed_at: int) -> tuple[float, float]:
    """The count form of `after_failure` (the fleet engine's): of the calls of stage `failed_at`
    that failed, `failed_paid` for orders paid before the stage and `failed_unpaid` for the
    others. Returns (attempts that succeed, attempts that fail)."""
    if paid_survives(stages, failed_at):
        return failed_paid, failed_unpaid
    return 0.0, failed_paid + failed_unpaid


def at_end(order: OrderState | None, succeeded: bool) -> str | None:
    """What a command's end leaves at risk: FAILED_AFTER_PAYMENT, WRONG_ITEM, or None."""
    if order is None:
        return None
    if not succeeded:
        return FAILED_AFTER_PAYMENT if order.paid and not order.refunded else None
    return WRONG_ITEM if order.wrong_item else None
