"""A light latency probe of the stack, in its own process: `GET /healthz` and a least-important
chat request every `--every` seconds each, on keep-alive connections (stdlib `http.client`),
for `--duration` seconds; prints the latencies (seconds, after `--warmup`) as one JSON object.

`bench_overload.py` runs it on the load generator's core beside Locust. With `--priority` it
asks for real-time scheduling (SCHED_FIFO, else nice -10) so that its own wait for that core,
which a saturated Locust fills, is not counted: what it measures is then the stack's answer
time (network and server), not the generator's queueing. It says which priority it got.

    python benchmarks/overload_probe.py --url http://127.0.0.1:18493 --duration 60 [--priority]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

PROBE_BODY = json.dumps({"model": "surge-tiny", "messages": [{"role": "user", "content": "tea"}],
                         "max_tokens": 1}).encode()
PROBE_HEADERS = {"Content-Type": "application/json", "X-Surge-Class": "probe"}
# 503s that are rejections: shed on arrival, or dropped by adaptive LIFO once stale in a standing
# queue (failed fast after at most its target: a refusal, not a wait for work)
REFUSED = ("queue_full", "stale")


def raise_priority() -> str:
    """Real-time FIFO scheduling when allowed, else nice -10, else none: which one it got."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "SCHED_FIFO 1"
    except (PermissionError, AttributeError, OSError):
        pass
    try:
        os.nice(-10)
        return "nice -10"
    except (PermissionError, OSError):
        return "none (not permitted)"


class Probe:
    """Latencies (seconds) of the two kinds of probe; a 503 to the chat probe is a rejection when
    the stack shed it on arrival (`X-Surge-Shed: queue_full`) or dropped it stale (`stale`, also
    kept apart), an eviction when it waited for more important work to displace it."""

    def __init__(self, host: str, port: int, every_s: float, warmup_s: float) -> None:
        self.host, self.port, self.every_s, self.warmup_s = host, port, every_s, warmup_s
        self.out: dict[str, list[float]] = {"healthz": [], "rejected": [], "evicted": [], "admitted": [], "stale": []}
        self.errors = 0
        self.stop = threading.Event()

    def run(self, duration_s: float) -> None:
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self._loop, args=(k,), daemon=True) for k in ("healthz", "chat")]
        for t in threads:
            t.start()
        self.stop.wait(duration_s)
        self.stop.set()
        for t in threads:
            t.join(30)

    def _ask(self, conn: http.client.HTTPConnection, kind: str) -> tuple[int, str | None]:
        if kind == "healthz":
            conn.request("GET", "/healthz")
        else:
            conn.request("POST", "/v1/chat/completions", body=PROBE_BODY, headers=PROBE_HEADERS)
        r = conn.getresponse()
        r.read()
        if r.will_close:
            conn.close()  # http.client reconnects on the next request
        return r.status, r.getheader("X-Surge-Shed")

    def _loop(self, kind: str) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        next_t = time.monotonic()
        while not self.stop.is_set():
            next_t += self.every_s
            self.stop.wait(max(0.0, next_t - time.monotonic()))
            t = time.perf_counter()
            try:
                status, shed = self._ask(conn, kind)
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                continue
            dt = time.perf_counter() - t
            if time.monotonic() - self.t0 < self.warmup_s:
                continue
            key = ("healthz" if kind == "healthz" else "admitted" if status != 503 else
                   "rejected" if (shed or "queue_full") in REFUSED else "evicted")
            self.out[key].append(dt)
            if shed == "stale":
                self.out["stale"].append(dt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--every", type=float, default=0.1, help="seconds between probes of each kind")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds not counted at the start")
    p.add_argument("--priority", action="store_true", help="ask for real-time scheduling (see the docstring)")
    a = p.parse_args(argv)
    got = raise_priority() if a.priority else "none (not asked)"
    u = urlsplit(a.url)
    probe = Probe(u.hostname or "127.0.0.1", u.port or 80, a.every, a.warmup)
    probe.run(a.duration)
    json.dump({"priority": got, "errors": probe.errors, **probe.out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
