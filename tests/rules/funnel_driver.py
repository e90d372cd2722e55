"""Drives one launch user's session, with scripted draws, through the simulator (`run_des`: the
SimPy client, stack model and launch users, in-process) and the load test (`run_loadtest`: the
HTTP client against a reference stack on loopback; run this file as a script with the stack's
URL and orders file, it prints the counts). Both consume the same draws in the same order."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sim.scenario import parse_scenario  # noqa: E402


def _const(v: float) -> dict[str, Any]:
    return {"type": "constant", "value": v}


COMMANDS = 10
SCENARIO: dict[str, Any] = {
    "name": "funnel_parity", "run": {"duration_s": 120, "interval_s": 1, "seed": 3},
    "population": {
        "daily_active_users": 1000, "commands_per_session": _const(COMMANDS), "think_time_s": _const(0.01),
        "launch": {"at_s": 0, "active_without_cards": 0.2, "active_with_cards": 0.8,
                   "broadcast": {"pool_users": 1, "aware_at_launch": 0, "reach_per_day": 0, "join_per_hour": 1},
                   "invitations": {"accepted_per_user": _const(0), "delay_s": _const(1)},  # none: no draws
                   "first_session": {"try_class": "help_me_buy", "try_share": 0.5},
                   "cards": {"on_join": 2}}},
    "arrivals": {"process": "poisson"},
    "workload": {"classes": {
        "chat": {"probability": 0.5, "stages": [{"llm": {"prompt_tokens": _const(8), "output_tokens": _const(4)}}]},
        "help_me_buy": {
            "probability": 0.5, "probability_with_card": 0.9, "places_order": True,
            "funnel": {"convert_with_card": 0.5, "convert_without_card": 0.5, "out_of_stock": 0.5,
                       "payment_error": 0.5},
            "stages": [{"llm": {"prompt_tokens": _const(16), "output_tokens": _const(4)}},
                       {"tool": "catalog"}, {"tool": "order"}, {"tool": "payment"},
                       {"llm": {"prompt_tokens": _const(8), "output_tokens": _const(4)}}]}}},
    "clients": {"timeout_s": 10, "max_attempts": 1},
    "services": {
        "auth": {"concurrency": 8, "latency": _const(0.001)},
        "llm": {"replicas": 1, "max_num_seqs": 8, "max_batched_tokens": 256, "kv_cache_tokens": 4096,
                "cost_model": {"type": "fitted", "base_s": 0.002, "per_prefill_token_s": 0.00002,
                               "per_decode_seq_s": 0.0002},
                "backend": {"type": "local", "model": {"layers": 1, "hidden": 32, "heads": 2, "vocab": 128,
                                                       "max_context": 256}}},
        "tools": {t: {"concurrency": 8, "latency": _const(0.002)} for t in ("catalog", "order", "payment")}},
}
# In order: the first command's try (CardRules.first_command), then per command its class
# (Funnel.pick_class: with a card help_me_buy unless u < 0.1; without one, unless u >= 0.5 it
# is chat) and, for help_me_buy, its plan's three draws (go ahead, out of stock, payment error).
DRAWS = [0.2, 0.9, 0.5, 0.5,  # tries help_me_buy, holding 2 cards: changed_mind
         0.5, 0.1, 0.1, 0.5,  # out_of_stock
         0.05,  # chat
         0.5, 0.1, 0.9, 0.1,  # payment_error
         0.5, 0.1, 0.9, 0.9,  # ordered: a card spent
         0.5, 0.1, 0.9, 0.9,  # ordered: the last card
         0.3,  # chat (no card)
         0.7, 0.9, 0.5, 0.5,  # no_card
         0.7, 0.1, 0.9, 0.9,  # ordered, paid in full
         0.7, 0.1, 0.1, 0.5]  # out_of_stock
TOOLS = ("catalog", "order", "payment")
FUNNEL_PREFIXES = ("buy:", "buy_outcome:", "orders", "cards_redeemed", "completed:", "payments", "failed_after_payment",
                   "duplicates_prevented")


def scripted() -> Iterator[float]:
    yield from DRAWS
    while True:  # a consumer that draws more than the other shows in what follows
        yield 0.999


def _funnel_counts(series: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in sorted(series.items()) if k.startswith(FUNNEL_PREFIXES) and v}


def run_des() -> dict[str, Any]:
    import simpy

    from sim.des.client import Client
    from sim.des.stack import StackModel
    from sim.des.users import User, Users
    from sim.results import Recorder
    from sim.streams import Streams

    sc = parse_scenario(SCENARIO)
    env, streams = simpy.Environment(), Streams(sc.run.seed)
    stack = StackModel(env, sc, streams)
    rec = Recorder(sc.run.duration_s, sc.run.interval_s, list(sc.workload.classes))
    client = Client(env, stack, rec, streams)
    users = client.users = Users(env, sc, client, streams, rec, sc.run.seed)
    draws = scripted()

    class ScriptedUser(User):
        def uniform(self) -> float:
            return next(draws)

    user = ScriptedUser((0, 0), True, sc.run.seed, users._draws)
    env.process(client.user_session(user))
    env.run(until=sc.run.duration_s)
    series = {k: float(v.sum()) for k, v in rec.all_series().items()}
    llm_calls = {c: int(rec.hist("ttft", c).triples()[:, 2].sum()) for c in sc.workload.classes}
    return {"funnel": _funnel_counts(series), "tool_calls": {t: stack.tools[t].served for t in TOOLS},
            "llm_calls": llm_calls, "payments": series.get("payments", 0.0),
            "cards": (user.wallet.held, user.wallet.redeemed)}


def run_loadtest(url: str, orders_db: str) -> dict[str, Any]:
    import re
    import sqlite3
    import time
    import urllib.request

    from locust.contrib.fasthttp import FastHttpSession
    from locust.event import EventHook

    from loadtest.commands import HttpClient
    from loadtest.funnel import Shopper
    from loadtest.plan import Plan
    from loadtest.tally import Tally

    sc = parse_scenario(SCENARIO)
    http = FastHttpSession(base_url=url, request_event=EventHook(), user=None, max_retries=0)
    tally = Tally(sc.run.duration_s, sc.run.interval_s)
    wl = HttpClient(sc, Plan("-", url, "-"), tally, http, "parity", time.time())
    draws = scripted()
    plain, shoppers = wl.new_session, []

    def new_session(user: str) -> Any:
        sess = plain(user)
        sess.shopper = Shopper(lambda: next(draws))
        shoppers.append(sess.shopper)
        return sess

    wl.new_session = new_session  # type: ignore[method-assign]
    wl.session("parity-user")
    series, hists, _ = tally.peek()
    metrics = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()  # noqa: S310 - loopback
    tool_calls = {t: 0 for t in TOOLS}
    for m in re.finditer(r'^surge_tool_calls_total\{([^}]*)\} ([0-9.e+]+)$', metrics, re.M):
        tool = re.search(r'tool="([^"]+)"', m.group(1))
        if tool is not None and tool.group(1) in tool_calls:
            tool_calls[tool.group(1)] += int(float(m.group(2)))
    con = sqlite3.connect(orders_db)
    try:
        payments = float(con.execute("SELECT COUNT(*) FROM payments").fetchone()[0])
    finally:
        con.close()
    llm_calls = {c: sum(hists.get(f"ttft:{c}", {}).values()) for c in sc.workload.classes}
    (shopper,) = shoppers
    return {"funnel": _funnel_counts(dict(series)), "tool_calls": tool_calls, "llm_calls": llm_calls,
            "payments": payments, "cards": (shopper.wallet.held, shopper.wallet.redeemed)}


if __name__ == "__main__":
    print(repr(run_loadtest(sys.argv[1], sys.argv[2])))
