"""The stack's Prometheus metrics, on `prometheus_client` (one registry per app instance, so two
apps in one test do not mix).

Counters and histograms are updated from the event loop and from engine threads
(prometheus_client is thread-safe); gauges are read from callbacks at scrape time so they are
never stale. The LLM's metrics use vLLM's names where the meaning is the same
(`vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`,
`vllm:num_preemptions_total`, `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`,
`vllm:time_to_first_token_seconds`, `vllm:iteration_tokens_total`), so dashboards made for
vLLM work here; the rest are `surge_*`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import prometheus_client as prom
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

Labels = tuple[str, ...]
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TPOT_BUCKETS_S = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1,
                  0.25, 1)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
Read = Callable[[], Iterable[tuple[Labels, float]]]


class Counter:
    """A counter with positional label values: `inc(("GET", "/x", "200"))`."""

    def __init__(self, name: str, help_: str, labels: Labels, registry: prom.CollectorRegistry) -> None:
        self._c = prom.Counter(name, help_, labels, registry=registry)
        self._labels = labels

    def inc(self, values: Labels = (), by: float = 1.0) -> None:
        (self._c.labels(*values) if self._labels else self._c).inc(by)


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...], labels: Labels,
                 registry: prom.CollectorRegistry) -> None:
        self._h = prom.Histogram(name, help_, labels, buckets=buckets, registry=registry)
        self._labels = labels

    def observe(self, values: Labels, x: float) -> None:
        (self._h.labels(*values) if self._labels else self._h).observe(x)


class _Callback(Collector):
    """A gauge or counter family read from `read()` at scrape time."""

    def __init__(self, kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, help_: str, read: Read,
                 labels: Labels) -> None:
        self.kind, self.name, self.help, self.read, self.labels = kind, name, help_, read, labels

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        fam = self.kind(self.name, self.help, labels=list(self.labels))
        for values, v in self.read():
            fam.add_metric(list(values), v)
        yield fam


class Registry:
    """The metrics of one app instance."""

    def __init__(self) -> None:
        self.prom = prom.CollectorRegistry(auto_describe=False)

    def counter(self, name: str, help_: str, labels: Labels = ()) -> Counter:
        return Counter(name, help_, labels, self.prom)

    def histogram(self, name: str, help_: str, buckets: tuple[float, ...], labels: Labels = ()) -> Histogram:
        return Histogram(name, help_, buckets, labels, self.prom)

    def gauge(self, name: str, help_: str, read: Read, labels: Labels = ()) -> None:
        """A gauge whose value(s) `read()` returns at scrape time: (label values, value) pairs."""
        self.prom.register(_Callback(GaugeMetricFamily, name, help_, read, labels))

    def counter_from(self, name: str, help_: str, read: Read, labels: Labels = ()) -> None:
        """A counter kept elsewhere (e.g. by an engine thread), read at scrape time."""
        self.prom.register(_Callback(CounterMetricFamily, name, help_, read, labels))

    def render(self) -> str:
        return prom.generate_latest(self.prom).decode()


class StackMetrics:
    """The stack's own series; gauges are attached by the components that own the state."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = r.counter("surge_http_requests_total", "HTTP requests by route and status",
                                  ("method", "route", "status"))
        self.latency = r.histogram("surge_http_request_duration_seconds", "time to last body byte (seconds)",
                                   LATENCY_BUCKETS_S, ("method", "route", "status"))
        self.rejected = r.counter("surge_rejected_total", "requests refused by overload protection", ("reason",))
        self.batch = r.histogram("surge_llm_batch_sequences", "sequences per engine step", BATCH_BUCKETS,
                                 ("replica",))
        self.step_s = r.histogram("surge_llm_step_seconds", "engine step duration (seconds)", LATENCY_BUCKETS_S,
                                  ("replica",))
        self.iteration_tokens = r.histogram("vllm:iteration_tokens_total", "tokens per engine step",
                                            (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192), ("replica",))
        self.gen_tokens = r.counter("vllm:generation_tokens_total", "tokens sampled", ("replica",))
        self.prefill_tokens = r.counter("vllm:prompt_tokens_total", "prompt tokens run (prefill)", ("replica",))
        self.decode_seqs = r.counter("surge_llm_step_decode_sequences_total", "decode sequences summed over steps",
                                     ("replica",))
        self.kv_tokens = r.counter("surge_llm_step_context_tokens_total", "cached tokens of the batch's sequences "
                                   "summed over steps (the cost model's context term)", ("replica",))
        # TPOT per request, (last token - first token) / (tokens - 1), as the load test's client times it, at two
        # points of the stack: where the engine thread samples a token, and where the event loop takes it for
        # the response (after the hand-over between threads, before the SSE write)
        self.tpot_engine = r.histogram("vllm:request_time_per_output_token_seconds", "TPOT per request as the "
                                       "engine sampled the tokens (seconds)", TPOT_BUCKETS_S)
        self.tpot_loop = r.histogram("surge_stream_time_per_output_token_seconds", "TPOT per request as the event "
                                     "loop took the tokens for the response (seconds)", TPOT_BUCKETS_S)
        self.ttft = r.histogram("vllm:time_to_first_token_seconds", "time to first token (seconds)",
                                LATENCY_BUCKETS_S)
        self.tool_calls = r.counter("surge_tool_calls_total", "tool calls by outcome", ("tool", "outcome"))
        self.orders = r.counter("surge_orders_total", "agent order outcomes", ("outcome",))
        self.loop_lag = r.histogram("surge_event_loop_lag_seconds", "how late a timer of the event loop "
                                    f"fires (seconds; one every {LOOP_LAG_EVERY_S:g} s)", LATENCY_BUCKETS_S)
        self.gil_wait = r.histogram("surge_thread_wake_lag_seconds", "how late a plain thread of the stack "
                                    f"wakes from a {LOOP_LAG_EVERY_S:g} s sleep (seconds): its wait for the GIL "
                                    "and the CPU, without the event loop's own work", LATENCY_BUCKETS_S)

    def render(self) -> str:
        return self.registry.render()


LOOP_LAG_EVERY_S = 0.05


async def watch_loop_lag(metrics: StackMetrics, every_s: float = LOOP_LAG_EVERY_S) -> None:
    """Observe, every `every_s`, how much later than asked the event loop woke this task: the
    wait any request's next step has behind the loop's other work (and the GIL) at that moment.
    Runs until cancelled."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(every_s)
        metrics.loop_lag.observe((), max(0.0, time.perf_counter() - t - every_s))


def watch_thread_wake_lag(metrics: StackMetrics, stop: threading.Event, every_s: float = LOOP_LAG_EVERY_S) -> None:
    """A thread's `watch_loop_lag`: how late it wakes from a sleep is its wait for the GIL (held
    by the loop or an engine thread) and for the CPU, but not for the loop's queue of callbacks.
    Beside the loop's lag it tells a loop busy with its own work from one starved of the GIL."""
    while not stop.is_set():
        t = time.perf_counter()
        time.sleep(every_s)
        metrics.gil_wait.observe((), max(0.0, time.perf_counter() - t - every_s))
