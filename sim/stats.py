"""Statistics over runs: KPIs, 95% confidence intervals over replications, paired (common random
numbers) comparisons and warm-up removal. Pure numpy and the standard library.

Warm-up removal
---------------
A run starts empty, so its first minutes under-state queues and latency. Every KPI is computed
over the intervals whose start is at or after `run.warmup_s` (`sim.results.first_interval`): the
whole interval is dropped or kept, never split. `drop_warmup` applies the same rule to a series.
To choose `warmup_s`, `mser5_warmup` suggests a truncation point by MSER-5 (White, 1997): average
the series in batches of 5 intervals, and pick the truncation d (at most half the batches) that
minimises the squared standard error of the mean of what is left. Replications can be
re-summarised with another warm-up (`replication_summary(..., warmup_s=...)`).

Confidence intervals
--------------------
Replications are independent (seeds base+1, base+2, ...), so a KPI's n values give a Student-t
interval mean ± t(0.975, n-1) · s/√n. Two sets run with the same seeds (common random numbers) are
compared pairwise: the interval is on the mean of the per-seed differences, which is far narrower
than comparing two independent intervals when the runs are positively correlated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from sim.results.files import json_safe
from sim.results.summary import first_interval, summarize

REPLICATIONS_FORMAT = "surge-replications/1"
CONFIDENCE = 0.95

# KPIs whose *lower* value is better; everything else is higher-is-better (rates, throughput)
# except the two-sided ones (counts that just describe the load).
_LOWER_BETTER = ("_p50_s", "_p90_s", "_p99_s", "_mean_s", "attempts_per_command", "failed", "failed_after_payment",
                 "payments_duplicated")
_DESCRIPTIVE = ("arrived", "orders_attempted")


# --- Student t (scipy) -------------------------------------------------------------------------

def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    from scipy.stats import t as student_t

    return float(student_t.cdf(t, df))


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (e.g. t_quantile(0.975, 9) = 2.262)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})")
    from scipy.stats import t as student_t

    return float(student_t.ppf(p, df))


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean and Student-t confidence interval of independent values (NaNs ignored).

    Returns mean, std (sample, ddof=1), half_width, low, high and n; with fewer than two finite
    values the interval is NaN (one replication says nothing about its own spread)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": math.nan, "half_width": math.nan, "low": math.nan, "high": math.nan, "n": n}
    std = float(x.std(ddof=1))
    hw = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "half_width": hw, "low": mean - hw, "high": mean + hw, "n": n}


def paired_ci(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """CI of mean(b - a) over pairs run with the same seeds (common random numbers).

    Pairs where either side is NaN are dropped. `significant` is 1.0 when the interval excludes 0."""
    if len(a) != len(b):
        raise ValueError(f"paired_ci needs equal lengths (got {len(a)} and {len(b)})")
    d = [float(y) - float(x) for x, y in zip(a, b, strict=True) if _finite(x) and _finite(y)]
    ci = mean_ci(d, confidence)
    ci["significant"] = float(_finite(ci["low"]) and (ci["low"] > 0 or ci["high"] < 0))
    return ci


def welch_ci(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """CI of mean(b) - mean(a) for two independent sets (different seeds), Welch's t with
    Welch-Satterthwaite degrees of freedom. `significant` as in paired_ci."""
    x = np.asarray([v for v in a if _finite(v)], dtype=float)
    y = np.asarray([v for v in b if _finite(v)], dtype=float)
    nan = {"mean": math.nan, "std": math.nan, "half_width": math.nan, "low": math.nan, "high": math.nan,
           "n": min(len(x), len(y)), "significant": 0.0}
    if len(x) < 2 or len(y) < 2:
        nan["mean"] = float(y.mean() - x.mean()) if len(x) and len(y) else math.nan
        return nan
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    mean = float(y.mean() - x.mean())
    if se == 0:
        return {**nan, "mean": mean, "std": 0.0, "half_width": 0.0, "low": mean, "high": mean,
                "significant": float(mean != 0)}
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    hw = t_quantile(0.5 + confidence / 2.0, df) * se
    return {"mean": mean, "std": se, "half_width": hw, "low": mean - hw, "high": mean + hw,
            "n": min(len(x), len(y)), "significant": float(mean - hw > 0 or mean + hw < 0)}


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


# --- KPIs ------------------------------------------------------------------------------------

def kpis(summary: Mapping[str, Any]) -> dict[str, float]:
    """Flat KPI name -> value from a run summary (sim.results.summarize).

    Run-wide: success_rate, goodput_per_s, throughput_per_s, orders_per_s, attempts_per_command;
    with a funnel also orders_attempted, orders_failed_after_payment, payments_duplicated and per
    funnel class `c.conversion_card`, `c.conversion_no_card` (orders / buy commands started).
    Per class `c`: `c.success_rate`, `c.goodput_per_s`, `c.attempts_per_command` and, where the
    class has samples, `c.{ttft,tpot,e2e}_{p50,p90,p99,mean}_s` (seconds). NaN where undefined."""
    out: dict[str, float] = {}
    for k in ("success_rate", "goodput_per_s", "throughput_per_s", "orders_per_s", "attempts_per_command",
              "orders_attempted", "orders_failed_after_payment", "payments_duplicated"):
        if k in summary:
            out[k] = _num(summary[k])
    for cls, states in summary.get("funnel", {}).items():
        for state, f in states.items():
            out[f"{cls}.conversion_{state}"] = _num(f.get("conversion"))
    for cls, kp in summary.get("classes", {}).items():
        for k in ("success_rate", "goodput_per_s", "attempts_per_command"):
            out[f"{cls}.{k}"] = _num(kp.get(k))
        for metric in ("ttft", "tpot", "e2e"):
            h = kp.get(metric) or {}
            if not h.get("count"):
                continue
            for q in ("p50", "p90", "p99", "mean"):
                out[f"{cls}.{metric}_{q}_s"] = _num(h.get(q))
    return out


def _num(x: Any) -> float:
    return float(x) if _finite(x) else math.nan


def direction(kpi: str) -> str:
    """'lower' if a smaller value is better (latency, attempts), 'higher' if larger is better
    (rates, throughput), 'both' for descriptive counts."""
    if kpi.endswith(_DESCRIPTIVE):
        return "both"
    return "lower" if kpi.endswith(_LOWER_BETTER) else "higher"


# --- warm-up ---------------------------------------------------------------------------------

def drop_warmup(series: np.ndarray, meta: Mapping[str, Any]) -> np.ndarray:
    """The intervals of a per-interval series that count for KPIs (start >= warmup_s)."""
    return np.asarray(series)[first_interval(dict(meta)):]


def mser5_warmup(series: Sequence[float] | np.ndarray, interval_s: float, batch: int = 5) -> float:
    """Suggested warm-up in seconds by MSER-5 (White 1997) for a per-interval output series
    (e.g. mean latency or commands in flight per interval).

    The series is averaged in batches of `batch` intervals; the truncation d (0 <= d <= half the
    batches) minimising sum((z_i - mean(z_d:))^2) / (m - d)^2 wins. Returns d·batch·interval_s."""
    y = np.asarray(series, dtype=float)
    m = len(y) // batch
    if m < 4:
        return 0.0
    z = y[: m * batch].reshape(m, batch).mean(axis=1)
    best_d, best = 0, math.inf
    for d in range(m // 2 + 1):
        rest = z[d:]
        score = float(((rest - rest.mean()) ** 2).sum()) / (len(rest) ** 2)
        if score < best:
            best_d, best = d, score
    return best_d * batch * interval_s


# --- replications ----------------------------------------------------------------------------

def _resummarize(r: Any, warmup_s: float | None) -> Mapping[str, Any]:
    if warmup_s is None:
        return r.summary or summarize(r.meta, r.series, r.histograms)
    return summarize({**r.meta, "warmup_s": warmup_s}, r.series, r.histograms)


def replication_summary(results: Sequence[Any], warmup_s: float | None = None,
                        confidence: float = CONFIDENCE) -> dict[str, Any]:
    """What goes in replications.json: each KPI's per-replication values and its CI.

    `results` are `sim.results.Results` of independent replications; `warmup_s` (seconds)
    overrides the scenario's warm-up. JSON-safe: NaN becomes None."""
    if not results:
        raise ValueError("replication_summary needs at least one Results")
    per_rep = [kpis(_resummarize(r, warmup_s)) for r in results]
    names = list(dict.fromkeys(k for rep in per_rep for k in rep))  # kpis() order: run-wide, then per class
    table = {}
    for name in names:
        values = [rep.get(name, math.nan) for rep in per_rep]
        table[name] = {**mean_ci(values, confidence), "values": values}
    meta = results[0].meta
    return json_safe({
        "format": REPLICATIONS_FORMAT,
        "scenario": meta.get("scenario"),
        "source": meta.get("source"),
        "n": len(results),
        "seeds": [r.meta.get("seed") for r in results],
        "confidence": confidence,
        "warmup_s": meta.get("warmup_s", 0.0) if warmup_s is None else warmup_s,
        "kpis": table,
    })


def same_seeds(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two replication summaries ran the same seeds in the same order (CRN pairs)."""
    return bool(a.get("seeds")) and a.get("seeds") == b.get("seeds")


def compare_replications(a: Mapping[str, Any], b: Mapping[str, Any],
                         confidence: float = CONFIDENCE) -> dict[str, dict[str, float]]:
    """CI of b - a per KPI for two replication summaries: paired (common random numbers) when
    they share seeds, Welch otherwise. Each entry also says which with `paired` (1.0 or 0.0)."""
    paired = same_seeds(a, b)
    out = {}
    for name in a["kpis"]:
        if name in b["kpis"]:
            va = [_num(v) for v in a["kpis"][name]["values"]]
            vb = [_num(v) for v in b["kpis"][name]["values"]]
            ci = paired_ci(va, vb, confidence) if paired else welch_ci(va, vb, confidence)
            out[name] = {**ci, "paired": float(paired)}
    return out

