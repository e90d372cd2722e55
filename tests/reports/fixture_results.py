"""A hand-filled Recorder with realistic numbers: a FIXTURE, not a simulation.

Two classes (chat, help_me_buy), an LLM fleet that loses half its capacity from 500 s to 700 s,
so latency, queues, failures and retries rise in that window. Used where a test needs every
series the report can draw, independent of what the engines happen to record.
"""

from __future__ import annotations

import numpy as np

from sim.results import Recorder, Results

SERVICES = ("gateway", "catalog", "order", "payment", "llm")


def fixture_results(seed: int = 1, duration_s: float = 1200.0, interval_s: float = 10.0,
                    e2e_slo_s: float = 8.0, lam_per_s: float = 20.0) -> Results:
    """A Results filled by hand (see module docstring); `seed` varies the noise only."""
    rng = np.random.default_rng(seed)
    rec = Recorder(duration_s, interval_s, ["chat", "help_me_buy"])
    fault = (500.0, 700.0)
    rec.event(fault[0], "fault_start", "llm", fault_kind="capacity_loss", magnitude=0.5, duration_s=200.0)
    rec.event(fault[1], "fault_end", "llm", fault_kind="capacity_loss", magnitude=0.5, duration_s=200.0)
    for i in range(rec.n_intervals):
        t = i * interval_s
        hit = fault[0] <= t < fault[1]
        slow = 3.0 if hit else 1.0
        for cls, share, base in (("chat", 0.6, 1.2), ("help_me_buy", 0.4, 4.0)):
            _fill_class(rec, rng, i, t, cls, lam_per_s * share * interval_s, base * slow, hit)
        _fill_services(rec, rng, i, hit)
    meta = {"source": "fixture", "scenario": "fixture", "seed": seed, "warmup_s": 100.0,
            "slos": {"chat": {"e2e_p99_s": e2e_slo_s, "ttft_p99_s": 2.0, "success_rate": 0.95},
                     "help_me_buy": {"e2e_p99_s": 20.0, "success_rate": 0.9}}}
    return Results.from_recorder(rec, meta)


def _fill_class(rec: Recorder, rng: np.random.Generator, i: int, t: float, cls: str,
                mean_arrivals: float, median_s: float, hit: bool) -> None:
    arrived = int(rng.poisson(mean_arrivals))
    fail_p = 0.25 if hit else 0.01
    failed = int(rng.binomial(arrived, fail_p))
    retries = int(rng.binomial(arrived, 0.4 if hit else 0.02))
    rec.series(f"arrived:{cls}")[i] = arrived
    rec.series(f"attempts:{cls}")[i] = arrived + retries
    rec.series(f"retries:{cls}")[i] = retries
    rec.series(f"admitted:{cls}")[i] = arrived + retries - int(0.5 * failed)
    rec.series(f"completed:{cls}")[i] = arrived - failed
    e2e = rng.lognormal(np.log(median_s), 0.5, arrived - failed)
    rec.series(f"good:{cls}")[i] = int((e2e <= 3 * median_s / (3.0 if hit else 1.0) * 2).sum())
    for reason, share in (("timeout", 0.6), ("shed", 0.3), ("error", 0.1)):
        rec.series(f"failed:{cls}:{reason}")[i] = round(failed * share)
        rec.series(f"attempt_failed:{reason}")[i] += round((failed + retries) * share)
    rec.series("in_flight")[i] += arrived * median_s / 10.0
    if cls == "help_me_buy":
        rec.series("orders")[i] = int(0.8 * (arrived - failed))
        rec.series("cards_redeemed")[i] = int(0.5 * (arrived - failed))
        _fill_money(rec, rng, i, arrived - failed, hit)
    for x in e2e:
        rec.hist("e2e", cls).record(t + 1.0, float(x))
        rec.hist("ttft", cls).record(t + 1.0, float(x) * 0.15)
        rec.hist("tpot", cls).record(t + 1.0, float(x) * 0.004)


def _fill_money(rec: Recorder, rng: np.random.Generator, i: int, done: int, hit: bool) -> None:
    """Payments, money at risk and a seat inventory that sells out at about 800 s."""
    rec.series("payments")[i] = done
    rec.series("duplicates_prevented")[i] = rng.poisson(3 if hit else 0.1)
    rec.series("failed_after_payment")[i] = rng.poisson(1 if hit else 0.02)
    rec.series("refunds")[i] = rng.poisson(0.5 if hit else 0.0)
    rec.series("wrong_items")[i] = rng.poisson(0.05)
    sold_before = float(np.sum(rec.series("sold:seats")[:i]))
    sold = min(2 * done, max(0.0, 1600 - sold_before))
    rec.series("sold:seats")[i] = sold
    rec.series("stock_held:seats")[i] = min(40.0, 1600 - sold_before - sold)
    rec.series("stock_free:seats")[i] = max(0.0, 1600 - sold_before - sold - rec.series("stock_held:seats")[i])
    rec.series("hot_free:seats")[i] = max(0.0, 160 - 4 * i)
    rec.series("holds:seats")[i] = done
    rec.series("conflicts:seats")[i] = rng.poisson(5 if hit else 1)
    rec.series("attempt_failed:conflict")[i] += rec.series("conflicts:seats")[i]
    rec.series("sold_out_answers:seats")[i] = 0 if sold else done
    rec.series("attempt_failed:sold_out")[i] += rec.series("sold_out_answers:seats")[i]


def _fill_services(rec: Recorder, rng: np.random.Generator, i: int, hit: bool) -> None:
    for k, svc in enumerate(SERVICES):
        cap = 8 if svc == "llm" else 16
        if svc == "llm" and hit:
            cap //= 2
        util = min(0.99, 0.35 + 0.1 * k + (0.55 if hit and svc == "llm" else 0.0) + rng.normal(0, 0.02))
        rec.series(f"capacity:{svc}")[i] = cap
        rec.series(f"utilisation:{svc}")[i] = util
        rec.series(f"queue:{svc}")[i] = max(0.0, rng.normal(40 if hit and svc == "llm" else 2, 1))
    rec.series("llm_batch")[i] = 24 + rng.normal(0, 1) + (20 if hit else 0)
    rec.series("llm_kv_frac")[i] = min(1.0, 0.45 + (0.5 if hit else 0) + rng.normal(0, 0.02))
    rec.series("llm_prefill_tokens")[i] = 10 * (30000 + rng.normal(0, 500))
    rec.series("llm_decode_tokens")[i] = 10 * (6000 + rng.normal(0, 200)) * (0.6 if hit else 1)
    rec.series("llm_preemptions")[i] = rng.poisson(12 if hit else 0.2)
    rec.series("llm_replicas_up")[i] = 4 if hit else 8
    rec.series("logins")[i] = rng.poisson(30)
