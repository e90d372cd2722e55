"""Engine against engine for orders, inventories, image queries and proactive tasks: a scenario
through the SimPy engine (n seeds) and the fleet engine (the same n seeds, one batch), KPIs
compared: within 5% of the SimPy mean, or inside the SimPy runs' 95% interval (a KPI whose
SimPy runs are all 0 must be 0 in the fleet too, to within `ZERO_SLACK`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from fleet_helpers import ci, scenario

from sim.des import simulate
from sim.fleet import simulate_batch
from sim.results import Results

Measure = Callable[[Results], dict[str, float]]
ZERO_SLACK = 3.0  # counts


def _first_interval_end(r: Results, hit: np.ndarray) -> float:
    return float((np.argmax(hit) + 1) * r.meta["interval_s"]) if hit.any() else math.nan


def onsale(r: Results) -> dict[str, float]:
    """The on-sale moment: seats sold and when, the hold answers, money, the buyers' success."""
    s = {k: np.asarray(v) for k, v in r.series.items()}
    sold, free, hot = s["sold:seats"], s["stock_free:seats"], s["hot_free:seats"]
    cum = np.cumsum(sold)
    return {
        "seats_sold": float(sold.sum()),
        "hot_gone_s": _first_interval_end(r, hot <= 0),
        "none_free_s": _first_interval_end(r, free <= 0),
        "last_sold_s": _first_interval_end(r, cum >= cum[-1]) if cum[-1] else math.nan,
        "conflicts": float(s["conflicts:seats"].sum()),
        "sold_out_answers": float(s["sold_out_answers:seats"].sum()),
        "holds_lapsed": float(s["lapsed:seats"].sum()),
        "payments": float(s["payments"].sum()),
        "duplicates_prevented": float(s["duplicates_prevented"].sum()),
        "failed_after_payment": float(s["failed_after_payment"].sum()),
        "success_rate": float(s["completed:buy_tickets"].sum() / s["arrived:buy_tickets"].sum()),
    }


def _class_kpis(r: Results, classes: tuple[str, ...], metrics: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for c in classes:
        cs = r.summary["classes"][c]
        out[f"{c}.success_rate"] = float(cs["success_rate"])
        for m in metrics:
            metric, q = m.split("_")
            out[f"{c}.{m}"] = float(cs[metric][q])
    return out


def images(r: Results) -> dict[str, float]:
    """Image queries: the image classes' latencies (their prefill is mostly image tokens), the
    fleet's prefill load per command, the image orders' payments."""
    out = _class_kpis(r, ("image_question", "image_buy"), ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99"))
    s = r.series
    arrived = sum(float(np.sum(s[f"arrived:{c}"])) for c in r.meta["classes"])
    out["prefill_tokens_per_command"] = float(np.sum(s["llm_prefill_tokens"])) / arrived
    out["payments_per_image_buy"] = float(np.sum(s["payments"])) / float(np.sum(s["arrived:image_buy"]))
    return out


def proactive(r: Results) -> dict[str, float]:
    """The proactive agent: follow-ups started per trigger, scheduled tasks, money and mistakes."""
    s = {k: float(np.sum(v)) for k, v in r.series.items()}
    done = s["completed:errand"] + s["completed:morning_coffee"]
    out = _class_kpis(r, ("morning_coffee", "errand"), ("e2e_p50", "e2e_p99"))
    out.update({
        "morning_coffee.arrived": s["arrived:morning_coffee"],
        "track_order_per_order": s["arrived:track_order"] / done,
        "reminders_per_tracking": s["arrived:delivery_reminder"] / s["completed:track_order"],
        "payments_per_order": s["payments"] / done,
        "wrong_items_per_order": s["wrong_items"] / done,
        "duplicates_prevented": s["duplicates_prevented"],
        "failed_after_payment": s["failed_after_payment"],
    })
    return out


def compare(file: str, overrides: tuple[str, ...], measure: Measure, n: int = 4,
            tolerance: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Every KPI of `measure`: the SimPy mean and 95% interval over n seeds, the fleet mean over
    the same seeds, ok = within 5% (or the KPI's stated tolerance) or inside the SimPy interval."""
    sc = scenario(file, *overrides)
    des = [measure(simulate(sc, seed=sc.run.seed + i)) for i in range(n)]
    fleet = [measure(r) for r in simulate_batch(sc, replications=n)]
    out = {}
    for k in des[0]:
        d = ci([x[k] for x in des])
        f = float(np.mean([x[k] for x in fleet]))
        if d["mean"] == 0 and d["high"] == 0:
            rel, ok = (0.0 if f == 0 else math.inf), f <= ZERO_SLACK
        else:
            rel = (f - d["mean"]) / d["mean"]
            ok = bool(abs(rel) <= (tolerance or {}).get(k, 0.05) or d["low"] <= f <= d["high"])
        out[k] = {"des": d["mean"], "des_low": d["low"], "des_high": d["high"], "fleet": f, "rel": rel, "ok": ok}
    return out


def table(case: str, res: dict[str, dict[str, float]]) -> str:
    """The comparison as lines for the test log and docs."""
    return "\n".join(f"{case} {k}: des {v['des']:.4g} [{v['des_low']:.4g}, {v['des_high']:.4g}], fleet "
                     f"{v['fleet']:.4g} ({v['rel']:+.1%}) {'ok' if v['ok'] else 'NO'}" for k, v in res.items())
