"""The server side, measured: `/metrics` scraped during a load run into the measured results,
under the simulator's series names, so every panel of the overlay report has both lines.

`Scraper.tick()` (called by `surge loadtest` about twice a second while Locust runs) reads the
target's Prometheus text once a second; `series(t0, interval_s, n)` bins the samples like the
simulator's gauges: a gauge is its last sample in the interval (the simulator samples at the
interval's end), a counter the difference between the last samples of consecutive intervals.
The reference stack and vLLM name the LLM's metrics alike (`vllm:*`); a target without
`/metrics` (or whose `/metrics` is not Prometheus text) simply adds nothing.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import numpy as np

from loadtest.safety import fetch
from sim.results import names as N

Sample = dict[str, float]  # "metric{labels}" summed over labels per metric name -> value


def parse(text: str) -> tuple[Sample, dict[str, Sample]]:
    """(per metric: the sum over its label sets, per metric: value by `service` label)."""
    from prometheus_client.parser import text_string_to_metric_families

    total: Sample = defaultdict(float)
    by_service: dict[str, Sample] = defaultdict(dict)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            total[s.name] += s.value
            total[s.name + "#n"] += 1  # how many label sets (replicas) the sum is over
            if "service" in s.labels:
                by_service[s.name][s.labels["service"]] = s.value
    return dict(total), dict(by_service)


GAUGES = {  # simulator series <- summed metric
    N.of_service("queue", "gateway"): "surge_gateway_queue_depth",
    N.of_service("capacity", "gateway"): "surge_gateway_capacity",
    N.of_service("queue", "llm"): "vllm:num_requests_waiting",
    N.of_service("capacity", "llm"): "surge_llm_replicas_up",
    N.LLM_REPLICAS_UP: "surge_llm_replicas_up",
}
COUNTERS = {
    N.LLM_PREFILL_TOKENS: "vllm:prompt_tokens_total",
    N.LLM_DECODE_TOKENS: "vllm:generation_tokens_total",
    N.LLM_PREEMPTIONS: "vllm:num_preemptions_total",
}


class Scraper:
    """Samples `host/metrics` about once a second (`tick`), never following a redirect."""

    def __init__(self, host: str, period_s: float = 1.0, max_num_seqs: int | None = None) -> None:
        self.url, self.period_s, self.max_num_seqs = host.rstrip("/") + "/metrics", period_s, max_num_seqs
        self.samples: list[tuple[float, Sample, dict[str, Sample]]] = []
        self._next = 0.0
        self.failures = 0

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next or self.failures > 5:
            return
        self._next = now + self.period_s
        try:
            status, body, _ = fetch(self.url, 2.0)
        except OSError:
            self.failures += 1
            return
        if status != 200:
            self.failures += 10  # no metrics here: stop asking
            return
        try:
            total, by_service = parse(body.decode(errors="replace"))
        except ValueError:  # not Prometheus text (a server that answers every path alike)
            self.failures += 10
            return
        self.samples.append((time.time(), total, by_service))

    def series(self, t0: float, interval_s: float, n: int) -> dict[str, np.ndarray]:
        """The scraped series per interval (intervals without a sample carry the last value)."""
        if not self.samples:
            return {}
        last: list[tuple[Sample, dict[str, Sample]] | None] = [None] * n
        before = [total for ts, total, _ in self.samples if ts < t0]
        base = before[-1] if before else self.samples[0][1]  # counters count from the run's start
        for ts, total, by_service in self.samples:
            i = math.floor((ts - t0) / interval_s)
            if 0 <= i < n:
                last[i] = (total, by_service)
        for i in range(1, n):  # carry forward
            last[i] = last[i] or last[i - 1]
        out: dict[str, np.ndarray] = {}
        for name, metric in GAUGES.items():
            if any(s and metric in s[0] for s in last):
                out[name] = np.array([s[0].get(metric, 0.0) if s else 0.0 for s in last])
        for name, metric in COUNTERS.items():
            if any(s and metric in s[0] for s in last):
                cum = np.array([s[0].get(metric, 0.0) if s else 0.0 for s in last])
                out[name] = np.diff(cum, prepend=base.get(metric, 0.0))
        out.update(self._llm_derived(last, interval_s, base))
        for svc in {k for s in last if s for k in s[1].get("surge_service_queue_depth", {})}:
            out[N.of_service("queue", svc)] = np.array(
                [s[1].get("surge_service_queue_depth", {}).get(svc, 0.0) if s else 0.0 for s in last])
            out[N.of_service("capacity", svc)] = np.array(
                [s[1].get("surge_service_capacity", {}).get(svc, 0.0) if s else 0.0 for s in last])
        return out

    def _llm_derived(self, last: list[Any], interval_s: float, base: Sample) -> dict[str, np.ndarray]:
        """Mean batch per step, batch fill, KV use and busy time from the engine's histograms."""
        def col(metric: str) -> np.ndarray:
            return np.array([s[0].get(metric, 0.0) if s else 0.0 for s in last])

        if not any(s and "surge_llm_batch_sequences_count" in s[0] for s in last):
            return {}
        def delta(metric: str) -> np.ndarray:
            return np.diff(col(metric), prepend=base.get(metric, 0.0))

        steps, seqs = delta("surge_llm_batch_sequences_count"), delta("surge_llm_batch_sequences_sum")
        busy = delta("surge_llm_step_seconds_sum")
        up = np.maximum(1.0, col("surge_llm_replicas_up"))
        batch = np.where(steps > 0, seqs / np.maximum(steps, 1), 0.0)
        kv = col("vllm:kv_cache_usage_perc") / np.maximum(1.0, col("vllm:kv_cache_usage_perc#n"))
        out = {N.LLM_BATCH: batch, N.LLM_KV_FRAC: kv, N.LLM_BUSY: busy / (interval_s * up)}
        if self.max_num_seqs:
            out[N.of_service("utilisation", "llm")] = batch / self.max_num_seqs
        return out
