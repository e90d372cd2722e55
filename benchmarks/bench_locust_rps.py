"""Benchmark: requests/s one Locust worker process sustains against a trivial endpoint, side by
side with `wrk` (C, event loop) on the same endpoint in the same run (issue 5).

The endpoint is a minimal HTTP/1.1 keep-alive server (asyncio + uvloop, one process) answering
every request with `200 ok`; wrk's figure shows how much the endpoint itself can take, so the
Locust figure is the load generator's ceiling, not the server's. Locust runs as a library in its
own process (gevent patching stays there): FastHttpUser (geventhttpclient), no wait time.

    .venv/bin/python benchmarks/bench_locust_rps.py [--seconds 10] [--users 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = r"""
import asyncio, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        n = self.buf.count(b"\r\n\r\n")  # GETs without bodies: one request per blank line
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESP * n)

async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"""

LOCUST = r"""
from gevent import monkey; monkey.patch_all()
import json, sys, time
import gevent
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

class Hammer(FastHttpUser):
    wait_time = constant(0)
    host = sys.argv[1]
    @task
    def get(self):
        self.client.get("/")

env = Environment(user_classes=[Hammer])
runner = env.create_local_runner()
users, seconds = int(sys.argv[2]), float(sys.argv[3])
runner.start(users, spawn_rate=users * 10)
gevent.sleep(2)  # ramp up and warm connections
env.stats.reset_all()
t = time.perf_counter()
gevent.sleep(seconds)
total = env.stats.total
n, fails, el = total.num_requests, total.num_failures, time.perf_counter() - t
runner.quit()
print(json.dumps({"requests": n, "failures": fails, "seconds": el, "rps": n / el,
                  "p50_ms": total.get_response_time_percentile(0.5),
                  "p99_ms": total.get_response_time_percentile(0.99)}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the trivial server did not start")


def run_wrk(url: str, seconds: float, connections: int) -> dict[str, float]:
    if not shutil.which("wrk"):
        return {"rps": float("nan"), "note": "wrk not installed (apt-get install -y wrk)"}  # type: ignore[dict-item]
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"rps": rps, "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")}


def run_locust(url: str, seconds: float, users: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", LOCUST, url, str(users), str(seconds)], capture_output=True,
                         text=True, timeout=seconds + 60, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=32, help="Locust users = wrk connections")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}"
        wrk = run_wrk(url + "/", a.seconds, a.users)
        loc = run_locust(url, a.seconds, a.users)
    finally:
        server.terminate()
        server.wait(10)
    print(f"trivial endpoint, {a.users} connections, {a.seconds:g} s each, {os.cpu_count()} CPU cores shared")
    print(f"{'tool':<28}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'wrk (1 thread)':<28}{wrk['rps']:>12,.0f}{wrk.get('p50_ms', float('nan')):>9.2f}"
          f"{wrk.get('p99_ms', float('nan')):>9.2f}")
    print(f"{'Locust FastHttpUser (1 proc)':<28}{loc['rps']:>12,.0f}{loc['p50_ms']:>9.2f}{loc['p99_ms']:>9.2f}")
    print(f"Locust / wrk: {loc['rps'] / wrk['rps']:.1%}   Locust failures: {loc['failures']}")
    if a.json:
        a.json.write_text(json.dumps({"wrk": wrk, "locust": loc, "users": a.users, "seconds": a.seconds}, indent=2))


if __name__ == "__main__":
    main()
