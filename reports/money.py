"""The report's "Inventory" and "Money at risk" sections: what sold and when, what users were
told, and what a failure cost in payments (`sim.rules.orders`, `sim.rules.inventory`).

Read from the summary (`summary["inventory"]`, `summary["money"]`, the `conflict` and
`sold_out` failure reasons) and, for a load test against the reference stack, from the stack's
own ledger at the end of the run (`meta["ledger"]`, `GET /admin/ledger`): the database's
account, exact even for answers the load test never received.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports import tables
from reports.document import Document

_MONEY_ROWS = (  # summary key, what it counts
    ("payments", "payments charged (a second charge of one order counts again)"),
    ("payments_duplicated", "orders charged again (payments that are not exactly-once: a retry paid twice)"),
    ("duplicates_prevented", "payments prevented: a retry or a concurrent attempt would have paid twice"),
    ("failed_after_payment", "commands that failed after their order was paid (a refund is owed)"),
    ("refunds", "orders refunded: paid, then the stock sold out before it was confirmed"),
    ("wrong_items", "orders completed with the wrong item (the user will want a refund)"),
)
_LEDGER_KEYS = {"payments": "payments", "duplicates_prevented": "duplicates_prevented", "refunds": "refunds",
                "wrong_items": "wrong_items", "failed_after_payment": "paid_not_completed"}


def _count(v: Any) -> str:
    return "–" if v is None else f"{float(v):,.0f}"


def _per_1k(v: Any, orders: float) -> str:
    return f"{1000 * float(v) / orders:.1f}" if v is not None and orders else "–"


def money_table(summary: Mapping[str, Any], ledger: Mapping[str, Any] | None = None) -> tables.Table:
    """What | count | per 1,000 orders paid [| the stack's ledger]."""
    m = summary.get("money") or {}
    paid = float(m.get("payments") or 0)
    header = ["money", "count", "per 1,000 paid"] + (["stack ledger (end of run)"] if ledger else [])
    rows = []
    for key, text in _MONEY_ROWS:
        row = [text, _count(m.get(key)), _per_1k(m.get(key), paid) if key != "payments" else "–"]
        if ledger:
            row.append(_count(ledger.get(_LEDGER_KEYS[key])) if key in _LEDGER_KEYS else "0 (one payment per order)")
        rows.append(row)
    return header, rows


def inventory_table(summary: Mapping[str, Any]) -> tables.Table:
    """Per inventory service: units sold, hold answers, holds lapsed, when it sold out."""
    header = ["service", "units sold", "holds granted", "conflicts", "sold-out answers", "holds lapsed",
              "hot items none free", "none free", "all sold", "first sold-out answer", "free / held at end"]
    rows = []
    for svc, r in (summary.get("inventory") or {}).items():
        rows.append([svc, _count(r.get("sold")), _count(r.get("holds")), _count(r.get("conflicts")),
                     _count(r.get("sold_out_answers")), _count(r.get("lapsed")),
                     _at(r.get("hot_none_free_at_s")) if "hot_none_free_at_s" in r else "–",
                     _at(r.get("none_free_at_s")), _at(r.get("all_sold_at_s")),
                     _at(r.get("first_sold_out_answer_s")),
                     f"{_count(r.get('free_at_end'))} / {_count(r.get('held_at_end'))}"])
    return header, rows


def _at(t: Any) -> str:
    return "never" if t is None else f"{float(t):g} s"


def users_told(summary: Mapping[str, Any]) -> str:
    """One line per order-placing class that met an inventory: what its users were told."""
    parts = []
    for cls, k in (summary.get("classes") or {}).items():
        f = k.get("failed") or {}
        ended = k.get("completed", 0) + sum(f.values())
        if not ended or not (f.get("conflict") or f.get("sold_out")):
            continue
        share = {what: 100 * n / ended for what, n in (("got it", k.get("completed", 0)),
                                                       ("sold out", f.get("sold_out", 0)),
                                                       ("conflict", f.get("conflict", 0)))}
        other = 100 - sum(share.values())
        parts.append(f"{cls}: {share['got it']:.1f}% got what they asked for, {share['sold out']:.1f}% were told "
                     f"it is sold out, {share['conflict']:.1f}% gave up on conflicts (held by others or a lapsed "
                     f"hold), {other:.1f}% failed otherwise (timeouts, errors, overload).")
    return " ".join(parts)


def add_sections(doc: Document, summary: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """The Inventory and Money at risk sections, when the run has anything to put in them."""
    ledger = meta.get("ledger")
    if summary.get("inventory") or (ledger and ledger.get("inventory")):
        doc.heading("Inventory")
        told = users_told(summary)
        if told:
            doc.text(told)
        if summary.get("inventory"):
            doc.table(inventory_table(summary))
        if ledger and ledger.get("inventory"):
            doc.text("The stack's stock at the end of the run (its database): " + "; ".join(
                f"{svc}: {v['sold']} sold, {v['held']} held, {v['free']} free of {v['stock']}, "
                f"{v['oversold_items']} items over their stock" for svc, v in ledger["inventory"].items()) + ".")
    if summary.get("money") or ledger:
        doc.heading("Money at risk")
        doc.text("Counted over the window after warm-up; per 1,000 orders paid. A failure after payment leaves "
                 "money with the company and nothing with the user until it is refunded.")
        doc.table(money_table(summary, ledger))


def side_by_side(labels: Sequence[str], summaries: Sequence[Mapping[str, Any]],
                 ledgers: Sequence[Mapping[str, Any] | None] | None = None) -> tables.Table | None:
    """Money and inventory counts of several runs (the comparison report), or None when none has any.
    A measured run has no stock series: its units sold are its stack's ledger's (`meta.ledger`)."""
    if not any(s.get("money") or s.get("inventory") for s in summaries):
        return None
    stock = [((led or {}).get("inventory") or {}) for led in (ledgers or [None] * len(summaries))]
    rows = [[text, *[_count((s.get("money") or {}).get(key)) for s in summaries]] for key, text in _MONEY_ROWS]
    services = set().union(*((s.get("inventory") or {}).keys() for s in summaries), *(st.keys() for st in stock))
    for svc in sorted(services):
        for key in ("sold", "holds", "conflicts", "sold_out_answers", "lapsed"):
            rows.append([f"{svc}: {key.replace('_', ' ')}",
                         *[_stock_cell(s, st, svc, key) for s, st in zip(summaries, stock, strict=True)]])
    for reason in ("conflict", "sold_out"):
        rows.append([f"commands failed: {reason.replace('_', ' ')}",
                     *[_count(sum((k.get("failed") or {}).get(reason, 0) for k in (s.get("classes") or {}).values()))
                       for s in summaries]])
    return ["money and stock", *labels], rows


def _stock_cell(summary: Mapping[str, Any], ledger_stock: Mapping[str, Any], svc: str, key: str) -> str:
    v = ((summary.get("inventory") or {}).get(svc) or {}).get(key)
    if v is None and key == "sold" and svc in ledger_stock:
        return f"{float(ledger_stock[svc]['sold']):,.0f} (stack ledger, end of run)"
    return _count(v)
