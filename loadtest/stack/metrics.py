"""Prometheus text exposition (format 0.0.4), written by hand to keep dependencies small.

Counters and histograms are updated from the event loop and from engine threads, so each
holds a lock; gauges are read from callbacks at scrape time so they are never stale.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable

Labels = tuple[str, ...]
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(names: Labels, values: Labels, extra: str = "") -> str:
    parts = [f'{n}="{_esc(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    return "+Inf" if v == float("inf") else repr(float(v)) if isinstance(v, float) else str(v)


class Counter:
    def __init__(self, name: str, help_: str, labels: Labels = ()) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self._v: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, values: Labels = (), by: float = 1.0) -> None:
        with self._lock:
            self._v[values] = self._v.get(values, 0.0) + by

    def value(self, values: Labels = ()) -> float:
        return self._v.get(values, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} counter\n"
        with self._lock:
            items = sorted(self._v.items())
        for lv, v in items:
            yield f"{self.name}{_fmt_labels(self.labels, lv)} {_num(v)}\n"


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...], labels: Labels = ()) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_, labels, buckets
        self._v: dict[Labels, list[float]] = {}  # bucket counts..., +Inf count, sum
        self._lock = threading.Lock()

    def observe(self, values: Labels, x: float) -> None:
        with self._lock:
            row = self._v.get(values)
            if row is None:
                row = self._v[values] = [0.0] * (len(self.buckets) + 2)
            row[bisect_left(self.buckets, x)] += 1
            row[-1] += x

    def count(self, values: Labels = ()) -> float:
        row = self._v.get(values)
        return sum(row[:-1]) if row else 0.0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} histogram\n"
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._v.items())
        for lv, row in items:
            cum = 0.0
            for le, n in zip((*self.buckets, float("inf")), row[:-1], strict=True):
                cum += n
                le_label = 'le="' + _num(le) + '"'
                yield f"{self.name}_bucket{_fmt_labels(self.labels, lv, le_label)} {_num(cum)}\n"
            yield f"{self.name}_sum{_fmt_labels(self.labels, lv)} {_num(row[-1])}\n"
            yield f"{self.name}_count{_fmt_labels(self.labels, lv)} {_num(cum)}\n"


class Gauge:
    """Value(s) read at scrape time from `read()`, which returns (label values, value) pairs."""

    def __init__(self, name: str, help_: str, read: Callable[[], Iterable[tuple[Labels, float]]],
                 labels: Labels = ()) -> None:
        self.name, self.help, self.labels, self.read = name, help_, labels, read

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} gauge\n"
        for lv, v in self.read():
            yield f"{self.name}{_fmt_labels(self.labels, lv)} {_num(v)}\n"


class Registry:
    """The metrics of one app instance (no globals: two apps in one test do not mix)."""

    def __init__(self) -> None:
        self._metrics: list[Counter | Histogram | Gauge] = []

    def counter(self, name: str, help_: str, labels: Labels = ()) -> Counter:
        return self._add(Counter(name, help_, labels))

    def histogram(self, name: str, help_: str, buckets: tuple[float, ...], labels: Labels = ()) -> Histogram:
        return self._add(Histogram(name, help_, buckets, labels))

    def gauge(self, name: str, help_: str, read: Callable[[], Iterable[tuple[Labels, float]]],
              labels: Labels = ()) -> Gauge:
        return self._add(Gauge(name, help_, read, labels))

    def _add(self, m):  # type: ignore[no-untyped-def]
        self._metrics.append(m)
        return m

    def render(self) -> str:
        return "".join(line for m in self._metrics for line in m.render())


class StackMetrics:
    """The stack's own series; gauges are attached by the components that own the state."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = r.counter("surge_http_requests_total", "HTTP requests by route and status",
                                  ("method", "route", "status"))
        self.latency = r.histogram("surge_http_request_duration_seconds", "time to last body byte (seconds)",
                                   LATENCY_BUCKETS_S, ("method", "route", "status"))
        self.rejected = r.counter("surge_rejected_total", "requests refused by overload protection",
                                  ("reason",))
        self.batch = r.histogram("surge_llm_batch_sequences", "sequences per engine step", BATCH_BUCKETS,
                                 ("replica",))
        self.step_s = r.histogram("surge_llm_step_seconds", "engine step duration (seconds)",
                                  LATENCY_BUCKETS_S, ("replica",))
        self.gen_tokens = r.counter("surge_llm_generated_tokens_total", "tokens sampled", ("replica",))
        self.prefill_tokens = r.counter("surge_llm_prefill_tokens_total", "prompt tokens run", ("replica",))
        self.ttft = r.histogram("surge_llm_time_to_first_token_seconds", "time to first token (seconds)",
                                LATENCY_BUCKETS_S)
        self.tool_calls = r.counter("surge_tool_calls_total", "tool calls by outcome", ("tool", "outcome"))
        self.orders = r.counter("surge_orders_total", "agent order outcomes", ("outcome",))

    def render(self) -> str:
        return self.registry.render()
