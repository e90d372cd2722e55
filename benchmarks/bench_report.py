"""Benchmark: reporting 1 million requests' results takes under 5 seconds (issue 3).

Builds the results of a 1,000,000-command run (3 classes, 720 intervals of 10 s, 6 services, an
LLM fleet, two faults) with numpy — the recorded latencies are real samples binned exactly as the
Recorder bins them — writes it as a run folder, then times `render_report` on that folder: reading
the files, KPIs, six figures, HTML + Markdown + summary.json.

    .venv/bin/python benchmarks/bench_report.py [--requests 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports import render_report  # noqa: E402
from sim.results import FORMAT, GAMMA, REASONS, Results, summarize  # noqa: E402

CLASSES = {"chat": (0.6, 2.0), "help_me_buy": (0.3, 8.0), "search": (0.1, 1.0)}  # share, median e2e (s)
SERVICES = ("gateway", "auth", "catalog", "order", "payment", "llm")
BUDGET_S = 5.0


def build(n_requests: int, n_intervals: int = 720, interval_s: float = 10.0, seed: int = 1) -> Results:
    """Results of an n-request run, made with numpy (see module docstring)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, n_intervals * interval_s, n_requests)
    iv = np.minimum((t / interval_s).astype(np.int64), n_intervals - 1)
    cls = rng.choice(len(CLASSES), n_requests, p=[s for s, _ in CLASSES.values()])
    slow = 1 + 2 * ((iv >= 300) & (iv < 360))  # a fault triples latency for 10 minutes
    series: dict[str, np.ndarray] = {}
    hists: dict[str, np.ndarray] = {}
    for k, (name, (_, median)) in enumerate(CLASSES.items()):
        mine = cls == k
        e2e = rng.lognormal(math.log(median), 0.6, mine.sum()) * slow[mine]
        for metric, x in (("e2e", e2e), ("ttft", e2e * 0.1), ("tpot", e2e * 0.003)):
            hists[f"{metric}:{name}"] = _triples(iv[mine], x)
        counts = np.bincount(iv[mine], minlength=n_intervals).astype(float)
        for m in ("arrived", "attempts", "admitted", "completed", "good"):
            series[f"{m}:{name}"] = counts
        series[f"retries:{name}"] = 0.02 * counts
        for r in REASONS:
            series[f"failed:{name}:{r}"] = np.zeros(n_intervals)
    for svc in SERVICES:
        series[f"queue:{svc}"] = rng.poisson(3, n_intervals).astype(float)
        series[f"utilisation:{svc}"] = rng.uniform(0.3, 0.8, n_intervals)
        series[f"capacity:{svc}"] = np.full(n_intervals, 16.0)
    for name in ("llm_batch", "llm_kv_frac", "llm_prefill_tokens", "llm_decode_tokens", "llm_replicas_up",
                 "llm_preemptions", "orders", "logins", "in_flight"):
        series[name] = rng.uniform(0, 1, n_intervals) * 100
    meta = {"format": FORMAT, "histogram_gamma": GAMMA, "source": "bench", "scenario": "bench-1M", "seed": seed,
            "interval_s": interval_s, "n_intervals": n_intervals, "warmup_s": 600.0, "classes": list(CLASSES),
            "slos": {c: {"e2e_p99_s": 10 * m, "success_rate": 0.99} for c, (_, m) in CLASSES.items()}}
    events = [{"t_s": 3000.0, "kind": "fault_start", "target": "llm", "fault_kind": "slowdown", "magnitude": 3.0,
               "duration_s": 600.0}]
    return Results(meta, series, hists, events, summarize(meta, series, hists))


def _triples(interval: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(interval, bucket, count) rows, binned like sim.results.histogram.bucket_of."""
    bucket = np.floor(np.log(x) / math.log(GAMMA)).astype(np.int64)
    keys, counts = np.unique(np.column_stack([interval, bucket]), axis=0, return_counts=True)
    return np.column_stack([keys, counts]).astype(np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = build(args.requests).write(Path(tmp) / "run")
        rows = sum(len(h) for h in Results.read(run).histograms.values())
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            render_report(run)
            times.append(time.perf_counter() - t0)
        size = (run / "report.html").stat().st_size / 1e6
    best, worst = min(times), max(times)
    print(f"render_report: {args.requests:,} requests, {rows:,} histogram rows, report.html {size:.1f} MB")
    print(f"  best {best:.2f} s, worst {worst:.2f} s over {args.repeat} runs (budget {BUDGET_S:.0f} s): "
          f"{'PASS' if worst < BUDGET_S else 'FAIL'}")
    return 0 if worst < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
