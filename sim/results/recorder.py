"""Collecting results while a run goes: per-interval series, histograms, events.

Memory is bounded by (intervals x series) and (intervals x occupied buckets), never by the
number of requests: a request leaves only counts behind.

Series names are `metric` or `metric:label[:label]`:

| series | meaning (per interval) |
|---|---|
| `arrived:{class}` | commands started (first attempt) |
| `attempts:{class}`, `retries:{class}` | attempts sent, of which retries |
| `admitted:{class}` | attempts let in by the gateway |
| `completed:{class}`, `good:{class}` | commands succeeded; of which within the class e2e SLO (goodput) |
| `failed:{class}:{reason}` | commands that ended in failure, by the reason of their last attempt |
| `attempt_failed:{reason}` | every failed attempt, retried or not |
| `orders`, `logins`, `login_failed` | orders placed, logins done, logins failed |
| `in_flight` | commands in the system at the end of the interval |
| `queue:{svc}`, `capacity:{svc}` | queue length and servers up at the end of the interval |
| `utilisation:{svc}` | time-average busy servers / servers up (llm: mean sequences per step / max_num_seqs) |
| `occupancy:{svc}` | time-average calls at the service, queued or in service (L of that node; not llm) |
| `granted:{svc}`, `waited:{svc}`, `wait_s:{svc}` | calls given a server; of which had to queue first; their total queue wait, s (so P(wait) = waited/granted, Wq = wait_s/granted) |
| `served:{svc}`, `time_s:{svc}` | calls that finished service (auth, tools); their total time at the service (queue + service), s |
| `llm_batch`, `llm_kv_frac` | mean sequences per batch step; KV-cache use at the end (fraction) |
| `llm_prefill_tokens`, `llm_decode_tokens`, `llm_preemptions`, `llm_replicas_up`, `llm_busy` | LLM fleet (tokens per interval; busy = fraction of time stepping) |

With a funnel (`workload.classes.NAME.funnel`, sim/funnel.py; STATE is `card` or `no_card`, the
user's state when the command started; OUTCOME ordered, changed_mind, no_card, out_of_stock,
payment_error):

| series | meaning (per interval) |
|---|---|
| `buy:{class}:{state}` | commands of a funnel class started |
| `buy_outcome:{class}:{state}:{outcome}` | of those, commands that succeeded, by the funnel's outcome (`orders` counts `ordered`) |
| `orders_attempted` | funnel commands whose user went ahead to order (ordered, out_of_stock or payment_error) |
| `payments`, `payments_duplicated` | charges by a payment stage (also of attempts the client gave up on); of which a second charge of the same command (only without `exactly_once`) |
| `failed_after_payment` | commands charged whose user was told they failed |
| `cards_redeemed` | orders a free-order card paid for |

With a launch (`population.launch`, sim/des/users.py), users:

| series | meaning (per interval) |
|---|---|
| `users_new:broadcast`, `users_new:invited` | users opening the app for the first time (a download), reached from outside / invited by a friend |
| `users_returning` | users who had opened it before, opening it for the first time that clock day (DAU = the three summed over a day) |
| `sessions` | sessions started (every time a user opens the app) |
| `registrations`, `users_lost` | sign-ups done; new users who gave up after `registration.max_tries` failed sessions |
| `invitations`, `cards_earned` | friends who accepted an invitation (they come later); free-order cards added to wallets |
| `cards_max_earned` | gauge: the most cards any user has earned so far (at most `cards.max_per_user`) |

Failure reasons: timeout, rejected (rate limit), shed (queue full, deadline, circuit open),
error, abandoned (user gave up), auth (login failed), throttled (client-side throttling).
Histogram metrics (seconds), per class: `e2e` per successful command (from its first attempt,
retries included); `ttft` and `tpot` per LLM call (submit to first token; decode time per later token).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import floor, log
from typing import Any

import numpy as np

from sim.results import names as N
from sim.results.histogram import _INV_LOG_GAMMA, _MIN_BUCKET, MIN_VALUE
from sim.results.names import HIST_METRICS, REASONS


class IntervalHistogram:
    """A histogram per interval; closed intervals are compacted into numpy arrays."""

    __slots__ = ("_inv", "_cur_idx", "_cur", "_chunks")

    def __init__(self, interval_s: float) -> None:
        self._inv = 1.0 / interval_s
        self._cur_idx = 0
        self._cur: dict[int, int] = {}
        self._chunks: list[np.ndarray] = []  # rows of (interval, bucket, count)

    def record(self, t: float, x: float) -> None:
        i = int(t * self._inv)
        if i != self._cur_idx:
            self._flush()
            self._cur_idx = i
        b = floor(log(x) * _INV_LOG_GAMMA) if x > MIN_VALUE else _MIN_BUCKET
        c = self._cur
        c[b] = c.get(b, 0) + 1

    def _flush(self) -> None:
        if self._cur:
            rows = np.array([(self._cur_idx, b, k) for b, k in self._cur.items()], dtype=np.int64)
            self._chunks.append(rows)
            self._cur = {}

    def triples(self) -> np.ndarray:
        """All counts as an (n, 3) int64 array of (interval, bucket, count), merged per key."""
        self._flush()
        if not self._chunks:
            return np.zeros((0, 3), dtype=np.int64)
        rows = np.concatenate(self._chunks)
        # the same interval can be flushed twice if records went back in time; merge them
        keys, inv = np.unique(rows[:, :2], axis=0, return_inverse=True)
        counts = np.bincount(inv.ravel(), weights=rows[:, 2]).astype(np.int64)
        self._chunks = [np.column_stack([keys, counts])]
        return self._chunks[0]


class Recorder:
    """What an engine writes into while it runs. Engines fetch a series once (`series`) and
    increment it by interval index (`index(t)`) on the hot path."""

    def __init__(self, duration_s: float, interval_s: float, classes: list[str]) -> None:
        self.interval_s = interval_s
        self.n_intervals = max(1, math.ceil(duration_s / interval_s - 1e-9))
        self._inv = 1.0 / interval_s
        self.classes = list(classes)
        self._series: dict[str, list[float]] = {}
        self._hists: dict[str, IntervalHistogram] = {}
        self._gauges: list[tuple[str, Callable[[], float]]] = []
        self.events: list[dict[str, Any]] = []
        for c in self.classes:
            for m in N.CLASS_COUNTERS:
                self.series(N.of_class(m, c))
            for r in REASONS:
                self.series(N.failed(c, r))
        for name in (*N.RUN_COUNTERS, *(N.attempt_failed(r) for r in REASONS)):
            self.series(name)

    def index(self, t: float) -> int:
        """Interval index of time t (the last interval also takes t == duration)."""
        i = int(t * self._inv)
        return i if i < self.n_intervals else self.n_intervals - 1

    def series(self, name: str) -> list[float]:
        """The per-interval list for a series (created on first use, zero-filled)."""
        s = self._series.get(name)
        if s is None:
            s = self._series[name] = [0.0] * self.n_intervals
        return s

    def totals(self) -> dict[str, float]:
        """Every series summed over the intervals so far."""
        return {k: float(sum(v)) for k, v in self._series.items()}

    def hist(self, metric: N.HistMetric, cls: str) -> IntervalHistogram:
        key = N.hist(metric, cls)
        h = self._hists.get(key)
        if h is None:
            h = self._hists[key] = IntervalHistogram(self.interval_s)
        return h

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a gauge sampled at the end of every interval (see `sample`)."""
        self.series(name)
        self._gauges.append((name, read))

    def sample(self, i: int) -> None:
        """Read every gauge into interval i (the engine calls this at each interval's end)."""
        if 0 <= i < self.n_intervals:
            for name, read in self._gauges:
                self._series[name][i] = read()

    def event(self, t: float, kind: str, target: str = "", **detail: Any) -> None:
        self.events.append({"t_s": round(t, 6), "kind": kind, "target": target, **detail})

    def all_series(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=float) for k, v in self._series.items()}

    def all_histograms(self) -> dict[str, np.ndarray]:
        return {k: h.triples() for k, h in self._hists.items()}
__all__ = ["HIST_METRICS", "REASONS", "IntervalHistogram", "Recorder"]
