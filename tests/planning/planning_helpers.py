"""Shared scenarios for the planning tests: M/M/c from scenarios/validation/mmc3.yaml with an
SLO, and a two-tier tool chain whose tight tier is chosen by the test."""

from __future__ import annotations

import math
from pathlib import Path

from sim.planning import Evaluator, LocalBackend, PointCache, Source

ROOT = Path(__file__).resolve().parents[2]
MMC = ROOT / "scenarios" / "validation" / "mmc3.yaml"

LAMBDA, MU = 4.0, 1.0  # arrivals per second, service rate per server


def mmc_source(target_s: float, duration_s: float = 3000) -> Source:
    """M/M/c with lambda = 4/s, mu = 1/s and an end-to-end p99 target (for a one-tool job the
    end-to-end time is the sojourn time W = Wq + S)."""
    return Source(MMC, None, (
        f"arrivals.rate_per_s={LAMBDA}", f"services.tools.server.latency={{type: exponential, rate: {MU}}}",
        f"slos.job.e2e_p99_s={target_s}", f"run.duration_s={duration_s}", "run.warmup_s=400", "run.interval_s=100"))


def two_tier_source(tmp: Path, front: int, back: int) -> Source:
    """Jobs call `front` (mean 1 s) then `back` (mean 0.5 s), 2 jobs/s, e2e p99 target 12 s."""
    path = tmp / "two_tier.yaml"
    path.write_text(f"""
name: two_tier
run: {{duration_s: 3000, interval_s: 50, warmup_s: 300, seed: 5}}
arrivals: {{process: poisson, rate_per_s: 2.0}}
workload:
  classes:
    job: {{probability: 1.0, stages: [{{tool: front}}, {{tool: back}}]}}
services:
  tools:
    front: {{concurrency: {front}, latency: {{type: exponential, mean: 1.0}}}}
    back: {{concurrency: {back}, latency: {{type: exponential, mean: 0.5}}}}
slos:
  job: {{e2e_p99_s: 12}}
""")
    return Source(path)


def evaluator(source: Source, jobs: int = 2, cache: Path | None = None) -> Evaluator:
    return Evaluator(source, backend=LocalBackend(jobs), cache=PointCache(cache))


# --- M/M/c theory (Erlang C) -----------------------------------------------------------------

def erlang_c(c: int, a: float) -> float:
    """P(wait) in M/M/c with offered load a = lambda/mu < c."""
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (head + tail)


def sojourn_tail(t: float, c: int, lam: float, mu: float) -> float:
    """P(W > t) for M/M/c FIFO: W = Wq + S, Wq = 0 w.p. 1 - C, else Exp(c mu - lambda)."""
    C, theta = erlang_c(c, lam / mu), c * mu - lam
    if abs(theta - mu) < 1e-12:
        both = (1 + mu * t) * math.exp(-mu * t)
    else:
        both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - C) * math.exp(-mu * t) + C * both


def sojourn_p99(c: int, lam: float = LAMBDA, mu: float = MU) -> float:
    """The 99th percentile of W, by bisection on the tail (inf when unstable)."""
    if c * mu <= lam:
        return math.inf
    lo, hi = 0.0, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sojourn_tail(mid, c, lam, mu) > 0.01 else (lo, mid)
    return lo
