"""Which service limits a configuration: from the per-service utilisation and queue series.

Per run and service (post-warm-up intervals only):

- `utilisation`: the mean of `utilisation:SVC` (busy servers / servers up; for the LLM fleet,
  sequences per step / max_num_seqs);
- `queue_mean`: the mean of `queue:SVC`;
- `queue_first_s`: when its queue first held at least as many calls as it has servers (slots
  up; LLM: replicas up x max_num_seqs), i.e. when the queue started to grow past what the
  servers hold; None if it never did.

Over replications, the bottleneck is the service whose queue grew first among those within
10% of the highest utilisation (the saturated ones); a tie goes to the higher utilisation.
The gateway holds its slot for a whole command, so it saturates whenever anything behind it is
slow: its queue growing first, while the LLM's does not, is what says the gateway's slots (the
agent workers) are the limit rather than the GPUs behind them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sim.results import Results, first_interval
from sim.results import names as N
from sim.scenario import Scenario

SATURATED_WITHIN = 0.9  # a service is saturated when its utilisation is >= 90% of the highest


def service_stats(sc: Scenario, results: Results) -> dict[str, dict[str, float | None]]:
    """`{service: {utilisation, queue_mean, queue_first_s}}` for every service with series."""
    series, meta = results.series, results.meta
    start = first_interval(meta)
    dt = float(meta["interval_s"])
    llm = sc.services.llm
    out: dict[str, dict[str, float | None]] = {}
    for svc in sc.services.names():
        util = series.get(N.of_service("utilisation", svc))
        queue = series.get(N.of_service("queue", svc))
        cap = series.get(N.of_service("capacity", svc))
        if util is None or queue is None or len(util) <= start:
            continue
        servers = np.maximum(1.0, cap if cap is not None else np.ones_like(queue))
        if svc == "llm" and llm is not None:
            servers = servers * llm.max_num_seqs
        grown = np.nonzero(queue[start:] >= servers[start:])[0]
        out[svc] = {
            "utilisation": float(np.mean(util[start:])),
            "queue_mean": float(np.mean(queue[start:])),
            "queue_first_s": float((start + grown[0]) * dt) if len(grown) else None,
        }
    return out


def bottleneck(per_run: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """The limiting service over replications (each a `service_stats` mapping); None without data.

    Returns `service`, its `utilisation` and `queue_first_s`, and `ranking`: every service with
    its mean utilisation and median queue-growth time, bottleneck first, then by utilisation."""
    names = list(dict.fromkeys(s for run in per_run for s in run))
    if not names:
        return None
    rows: list[dict[str, Any]] = []
    for s in names:
        utils = [run[s]["utilisation"] for run in per_run if s in run]
        firsts = [run[s]["queue_first_s"] for run in per_run if s in run]
        grew = [f for f in firsts if f is not None]
        # the queue grew when it did in at least half the replications (then: the median time)
        first = float(np.median(grew)) if len(grew) * 2 >= len(firsts) and grew else None
        rows.append({"service": s, "utilisation": float(np.mean(utils)), "queue_first_s": first})
    top = max(r["utilisation"] for r in rows)
    saturated = [r for r in rows if r["utilisation"] >= SATURATED_WITHIN * top]

    def order(r: dict[str, Any]) -> tuple[bool, float, float]:
        q = r["queue_first_s"]
        return (q is None, q if q is not None else math.inf, -r["utilisation"])

    best = min(saturated, key=order)
    ranking = [best] + sorted((r for r in rows if r is not best), key=lambda r: -r["utilisation"])
    return {**best, "ranking": ranking}
