"""The SimPy engine's inventory, money and proactive tasks, on small scenarios whose answer is
known exactly (or, for random follow-ups, to within a binomial interval); plus image tokens,
which the cost model must charge exactly as prefill."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sim_helpers import ROOT

from sim.arrivals import proactive_times
from sim.des import simulate
from sim.scenario import load_scenario, parse_scenario
from sim.streams import Streams


def _const(v: float) -> dict[str, Any]:
    return {"type": "constant", "value": v}


def tickets(**inventory: Any) -> dict[str, Any]:
    """Buyers of two seats each: hold, pay, confirm; no timeouts, no errors unless asked."""
    return {
        "name": "tickets", "run": {"duration_s": 200, "interval_s": 10, "seed": 3},
        "arrivals": {"rate_per_s": 2},
        "workload": {"classes": {"buy": {"probability": 1, "places_order": True, "stages": [
            {"tool": {"service": "seats", "inventory": "hold", "quantity": _const(2)}},
            {"tool": "payment"}, {"tool": {"service": "seats", "inventory": "confirm"}}]}}},
        "services": {"tools": {
            "seats": {"concurrency": 50, "latency": {"type": "exponential", "mean": 0.05},
                      "inventory": {"items": 10, "stock": 8, "hold_s": 1000, **inventory}},
            "payment": {"concurrency": 50, "latency": {"type": "exponential", "mean": 0.2}}}},
    }


def test_plenty_of_stock_sells_two_seats_per_order() -> None:
    r = simulate(parse_scenario(tickets(stock=1000)))
    s, k = r.series, r.summary["classes"]["buy"]
    assert k["completed"] == k["arrived"] - s["in_flight"][-1] and k["completed"] > 300
    assert s["sold:seats"].sum() == 2 * k["completed"]  # every confirmed order is exactly its two seats
    assert s["payments"].sum() >= k["completed"] and s["duplicates_prevented"].sum() == 0
    assert s["conflicts:seats"].sum() == s["sold_out_answers:seats"].sum() == 0


def test_demand_beyond_stock_sells_exactly_the_stock_then_answers_sold_out() -> None:
    r = simulate(parse_scenario(tickets()))  # 80 seats, ~400 buyers of 2
    s, k = r.series, r.summary["classes"]["buy"]
    inv = r.summary["inventory"]["seats"]
    assert s["sold:seats"].sum() == 80 and k["completed"] == 40
    assert k["failed"]["sold_out"] == k["arrived"] - 40 - s["in_flight"][-1] and k["failed"]["conflict"] == 0
    assert inv["all_sold_at_s"] is not None and inv["first_sold_out_answer_s"] is not None
    assert s["refunds"].sum() == 0 and s["failed_after_payment"].sum() == 0  # nobody paid for seats they lost


def test_without_fallback_a_taken_item_is_sold_out_while_others_remain() -> None:
    r = simulate(parse_scenario(tickets(fallback=False, hot={"items": 1, "share": 0.9})))
    inv = r.summary["inventory"]["seats"]
    assert inv["sold_out_answers"] > 0 and inv["free_at_end"] > 0  # told sold out, seats left elsewhere
    assert inv["hot_none_free_at_s"] is not None and inv["hot_none_free_at_s"] < 100


def test_holds_that_outlast_a_slow_payment_lapse_and_conflict() -> None:
    sc = tickets(hold_s=0.3, stock=3)
    sc["services"]["tools"]["payment"]["latency"] = {"type": "exponential", "mean": 0.5}
    sc["clients"] = {"max_attempts": 3, "retry_on": ["conflict"], "backoff": {"base_s": 0.5, "cap_s": 1}}
    r = simulate(parse_scenario(sc))
    s, k = r.series, r.summary["classes"]["buy"]
    assert s["lapsed:seats"].sum() > 0 and k["failed"]["conflict"] > 0
    assert s["duplicates_prevented"].sum() > 0  # a retry after a lapsed hold met its paid order
    assert s["sold:seats"].sum() <= 30 and s["sold:seats"].sum() == 2 * (k["completed"])


def test_every_payment_ends_fulfilled_refunded_or_owed() -> None:
    """Money is conserved: with nothing in flight at the end, each order paid is completed, or
    refunded (paid, then its seats sold out), or failed after payment (a refund owed)."""
    refunds = 0.0
    for seed in (3, 4, 5):
        sc = tickets(hold_s=0.3, stock=4, items=1)  # one block of 4 seats: two buyers at a time
        sc["run"]["seed"] = seed
        sc["services"]["tools"]["payment"]["latency"] = {"type": "uniform", "low": 0.1, "high": 0.6}
        sc["clients"] = {"max_attempts": 4, "retry_on": ["conflict"], "backoff": {"base_s": 0.2, "cap_s": 0.5}}
        r = simulate(parse_scenario(sc))
        m, k = r.summary["money"], r.summary["classes"]["buy"]
        assert r.series["in_flight"][-1] == 0 and r.series["sold:seats"].sum() == 4 and k["completed"] == 2
        assert m["payments"] == k["completed"] + m["refunds"] + m["failed_after_payment"], (seed, m)
        refunds += m["refunds"]
    assert refunds > 0


def test_wrong_items_are_counted_on_success() -> None:
    sc = tickets(stock=1000)
    sc["faults"] = [{"at_s": 0, "duration_s": 200, "target": "seats", "kind": "wrong_item", "magnitude": 0.25}]
    r = simulate(parse_scenario(sc))
    n, wrong = r.summary["classes"]["buy"]["completed"], r.series["wrong_items"].sum()
    assert abs(wrong - 0.25 * n) < 4 * math.sqrt(n * 0.25 * 0.75), (wrong, n)  # binomial, 4 sigma


def proactive(p: float) -> dict[str, Any]:
    return {
        "name": "pro", "run": {"duration_s": 300, "interval_s": 10, "seed": 4},
        "arrivals": {"rate_per_s": 3},
        "proactive": {"follow_ups": [{"after": "errand", "start": "track", "probability": p, "delay_s": _const(0.0)}],
                      "schedules": [{"start": "reminder", "every_s": 60, "commands": 25, "spread_s": 10}]},
        "workload": {"classes": {
            "errand": {"probability": 1, "stages": [{"tool": "t"}]},
            "track": {"probability": 0, "stages": [{"tool": "t"}]},
            "reminder": {"probability": 0, "stages": [{"tool": "t"}]}}},
        "services": {"tools": {"t": {"concurrency": 100, "latency": _const(0.01)}}},
    }


def test_scheduled_tasks_start_at_their_times_and_follow_ups_after_successes() -> None:
    sc = parse_scenario(proactive(0.3))
    r = simulate(sc)
    k = r.summary["classes"]
    starts = proactive_times(sc, Streams(sc.run.seed)("proactive.schedule"))
    assert k["reminder"]["arrived"] == len(starts) and set(starts.classes) == {"reminder"}
    per = np.bincount((starts.times_s // 60).astype(int), minlength=5)
    assert (starts.times_s % 60 <= 10).all() and (per > 0).all()  # 5 firings, each spread over 10 s
    assert np.array_equal(r.series["arrived:reminder"].reshape(-1, 6).sum(axis=1), per)
    n = k["errand"]["completed"]
    assert abs(k["track"]["arrived"] - 0.3 * n) < 4 * math.sqrt(n * 0.3 * 0.7), (k["track"], n)
    assert simulate(parse_scenario(proactive(1.0))).summary["classes"]["track"]["arrived"] > 0


def _images(prompt: float, image: float | None) -> dict[str, Any]:
    llm: dict[str, Any] = {"prompt_tokens": _const(prompt), "output_tokens": {"type": "exponential", "mean": 30}}
    if image is not None:
        llm["image_tokens"] = _const(image)
    return {"name": "img", "run": {"duration_s": 120, "interval_s": 10, "seed": 2}, "arrivals": {"rate_per_s": 5},
            "workload": {"classes": {"ask": {"probability": 1, "stages": [{"llm": llm}, {"llm": copy.deepcopy(llm)}]}}},
            "services": {"llm": {"replicas": 1, "max_num_seqs": 8, "kv_cache_tokens": 20000}}}


@pytest.mark.parametrize("image", [0.0, 700.0])
def test_image_tokens_cost_exactly_what_as_many_prompt_tokens_cost(image: float) -> None:
    with_images = simulate(parse_scenario(_images(100, image)))
    as_text = simulate(parse_scenario(_images(100 + image, None)))
    for name in ("llm_prefill_tokens", "llm_decode_tokens", "completed:ask", "llm_busy"):
        assert np.array_equal(with_images.series[name], as_text.series[name]), name
    assert with_images.summary["classes"]["ask"]["ttft"] == as_text.summary["classes"]["ask"]["ttft"]
    if image:  # and they are really there: two calls' worth per command, carried as context
        plain = simulate(parse_scenario(_images(100, None)))
        assert with_images.series["llm_prefill_tokens"].sum() > plain.series["llm_prefill_tokens"].sum() + 700


def test_the_on_sale_scenario_is_a_pure_function_of_its_seed(tmp_path: Path) -> None:
    """Holds, item draws, proactive schedules and follow-ups, a payment fault: same seed, same bytes."""
    sc = load_scenario(ROOT / "scenarios" / "premiere_onsale.yaml",
                       ["run.duration_s=260", "proactive.schedules.0.commands=300", "arrivals.rate_per_s=1"])
    files = ("run.json", "timeseries.csv", "histograms.npz", "events.jsonl", "summary.json")
    a, b = (simulate(sc, seed=9).write(tmp_path / d) for d in ("a", "b"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert simulate(sc, seed=10).summary != simulate(sc, seed=9).summary
