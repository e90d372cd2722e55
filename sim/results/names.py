"""The results contract: every series, histogram and meta key of a run folder, named once.

Producers (the SimPy engine, the fleet engine, the load test) and readers (summary, reports,
analyses) build names with these functions, never with f-strings of their own, so a renamed or
misspelled series is a type error, not a silently empty column.

Series are `metric` or `metric:label[:label]` (see `recorder.py` for what each one means).
"""

from __future__ import annotations

from typing import Literal, TypedDict, get_args

# -- outcomes ---------------------------------------------------------------------------------
Reason = Literal["timeout", "rejected", "shed", "error", "abandoned", "auth", "throttled", "conflict", "sold_out"]
REASONS: tuple[Reason, ...] = get_args(Reason)

# -- per command class ------------------------------------------------------------------------
ClassCounter = Literal["arrived", "attempts", "retries", "admitted", "completed", "good"]
CLASS_COUNTERS: tuple[ClassCounter, ...] = get_args(ClassCounter)


def of_class(metric: ClassCounter, cls: str) -> str:
    """A per-class counter, e.g. `of_class("arrived", "chat")` = `arrived:chat`."""
    return f"{metric}:{cls}"


def failed(cls: str, reason: Reason) -> str:
    """Commands of `cls` that ended in failure, by the reason of their last attempt."""
    return f"failed:{cls}:{reason}"


def attempt_failed(reason: Reason) -> str:
    """Every failed attempt (retried or not), by reason."""
    return f"attempt_failed:{reason}"


# -- whole run --------------------------------------------------------------------------------
ORDERS, LOGINS, LOGIN_FAILED, IN_FLIGHT = "orders", "logins", "login_failed", "in_flight"
RUN_COUNTERS = (ORDERS, LOGINS, LOGIN_FAILED, IN_FLIGHT)

# -- the funnel and the launch (sim/funnel.py, sim/des/users.py) ------------------------------
ORDERS_ATTEMPTED, CARDS_REDEEMED, FAILED_AFTER_PAYMENT = "orders_attempted", "cards_redeemed", "failed_after_payment"
PAYMENTS, PAYMENTS_DUPLICATED = "payments", "payments_duplicated"
UserSource = Literal["broadcast", "invited"]
USERS_RETURNING, SESSIONS, REGISTRATIONS, USERS_LOST = "users_returning", "sessions", "registrations", "users_lost"
INVITATIONS, CARDS_EARNED, CARDS_MAX_EARNED = "invitations", "cards_earned", "cards_max_earned"


def buy(cls: str, state: str) -> str:
    """Commands of a funnel class started by a user in `state` (card, no_card)."""
    return f"buy:{cls}:{state}"


def buy_outcome(cls: str, state: str, outcome: str) -> str:
    """Of those, the ones that succeeded, by the funnel's outcome (ordered, changed_mind, ...)."""
    return f"buy_outcome:{cls}:{state}:{outcome}"


def users_new(source: UserSource) -> str:
    """Users opening the app for the first time (a download), by who brought them in."""
    return f"users_new:{source}"


LAUNCH_COUNTERS = (users_new("broadcast"), users_new("invited"), USERS_RETURNING, REGISTRATIONS, USERS_LOST,
                   INVITATIONS, CARDS_EARNED)


# -- money at risk (order-placing classes; sim/rules/orders.py) --------------------------------
# payments: charges; payments_duplicated: charges beyond an order's first (payments that are not
# exactly-once); duplicates_prevented: payment calls for an order already paid that charged
# nothing (a retry or a concurrent attempt that would have paid twice); failed_after_payment:
# commands the user was told failed although their order was charged (not refunded: a refund is
# owed); refunds: paid orders the service refunded because their stock sold out; wrong_items:
# orders completed with the wrong item
DUPLICATES_PREVENTED, REFUNDS, WRONG_ITEMS = "duplicates_prevented", "refunds", "wrong_items"
MONEY_COUNTERS = (PAYMENTS, PAYMENTS_DUPLICATED, DUPLICATES_PREVENTED, FAILED_AFTER_PAYMENT, REFUNDS, WRONG_ITEMS)

# -- per inventory service -----------------------------------------------------------------------
# holds, conflicts, sold_out_answers: hold decisions per interval; lapsed: holds that lapsed;
# sold: units sold (confirmed); stock_free, stock_held: units at the end of the interval;
# hot_free: of the free units, those of the hot items (an inventory with hot items)
StockMetric = Literal["holds", "conflicts", "sold_out_answers", "lapsed", "sold", "stock_free", "stock_held",
                      "hot_free"]
STOCK_METRICS: tuple[StockMetric, ...] = get_args(StockMetric)


def of_stock(metric: StockMetric, service: str) -> str:
    """A per-inventory series, e.g. `of_stock("sold", "seats")` = `sold:seats`."""
    return f"{metric}:{service}"


# -- per service ------------------------------------------------------------------------------
ServiceGauge = Literal["queue", "capacity", "utilisation", "occupancy", "granted", "waited", "wait_s",
                       "served", "time_s"]
SERVICE_GAUGES: tuple[ServiceGauge, ...] = get_args(ServiceGauge)


def of_service(metric: ServiceGauge, service: str) -> str:
    """A per-service series, e.g. `of_service("queue", "gateway")` = `queue:gateway`."""
    return f"{metric}:{service}"


# -- the LLM fleet ----------------------------------------------------------------------------
LLM_BATCH, LLM_KV_FRAC, LLM_PREFILL_TOKENS, LLM_DECODE_TOKENS = (
    "llm_batch", "llm_kv_frac", "llm_prefill_tokens", "llm_decode_tokens")
LLM_PREEMPTIONS, LLM_REPLICAS_UP, LLM_BUSY = "llm_preemptions", "llm_replicas_up", "llm_busy"
LLM_SERIES = (LLM_BATCH, LLM_KV_FRAC, LLM_PREFILL_TOKENS, LLM_DECODE_TOKENS, LLM_PREEMPTIONS, LLM_REPLICAS_UP,
              LLM_BUSY)

# -- latency histograms (seconds, per class) --------------------------------------------------
HistMetric = Literal["ttft", "tpot", "e2e", "itl", "e2e_send"]
HIST_METRICS: tuple[HistMetric, ...] = ("ttft", "tpot", "e2e")  # every producer; itl, e2e_send: load test only


def hist(metric: HistMetric, cls: str) -> str:
    """A histogram key in `histograms.npz`, e.g. `hist("e2e", "chat")` = `e2e:chat`."""
    return f"{metric}:{cls}"


def tokens_out(cls: str) -> str:
    """Output tokens of `cls` per interval (load test)."""
    return f"tokens_out:{cls}"


def split(name: str) -> tuple[str, ...]:
    """A series or histogram name's parts: `failed:chat:timeout` -> ("failed", "chat", "timeout")."""
    return tuple(name.split(":"))


# -- run.json ---------------------------------------------------------------------------------
Source = Literal["des", "fleet", "loadtest"]


class RunMeta(TypedDict, total=False):
    """The keys of `run.json`. Every producer writes the first group; the rest are optional."""

    format: str
    source: Source  # which producer wrote the folder
    engine: str  # simpy, numpy/torch (fleet), locust
    surge_version: str
    scenario: str  # the scenario's name
    seed: int
    replication: int
    duration_s: float
    warmup_s: float
    start_hour: float  # clock time of t = 0 (hours)
    interval_s: float
    n_intervals: int
    classes: list[str]
    services: list[str]
    slos: dict[str, dict[str, float | None]]
    histogram_gamma: float
    # load test
    host: str
    model: str
    mode: str
    workers: int
    totals: dict[str, float]
    recovery: list[dict[str, object]]
    ledger: dict[str, object]  # the reference stack's money and stock at the end (`GET /admin/ledger`)
