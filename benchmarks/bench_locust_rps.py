"""Benchmark: the load generator's ceiling, side by side in one run against one trivial endpoint.

- `wrk` (C, event loop): how much the endpoint itself can take;
- plain Locust: a `FastHttpUser` posting the same streamed chat completion, no wait time, one
  process (Locust as a library in its own process);
- surge's load test (`surge loadtest --closed`, one chat class, one output token, zero think
  time) in one process, and with `--workers 2` (master + 2 workers).

Targets (issue 13): surge keeps >= 80% of plain Locust's requests/s; 2 workers >= 1.7x one.
The endpoint is a minimal HTTP/1.1 keep-alive server (asyncio, uvloop when installed, one
process) that answers every request with one server-sent event and `[DONE]`.

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
BODY = (b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":1}}\n\ndata: [DONE]\n\n')
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " + str(len(BODY)).encode()
        + b"\r\n\r\n" + BODY)

class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        out = []
        while True:  # one answer per complete request (headers, then Content-Length bytes of body)
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
            if len(self.buf) < end + 4 + n:
                break
            self.buf = self.buf[end + 4 + n:]
            out.append(RESP)
        if out:
            self.t.write(b"".join(out))

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

BODY = {"model": "m", "messages": [{"role": "user", "content": "one two three four five"}], "max_tokens": 1,
        "stream": True, "stream_options": {"include_usage": True}}

class Hammer(FastHttpUser):
    wait_time = constant(0)
    host = sys.argv[1]
    @task
    def chat(self):
        self.client.post("/v1/chat/completions", json=BODY)

env = Environment(user_classes=[Hammer])
runner = env.create_local_runner()
users, seconds = int(sys.argv[2]), float(sys.argv[3])
runner.start(users, spawn_rate=users * 10)
gevent.sleep(2)  # ramp up and warm connections
env.stats.reset_all()
t, cpu = time.perf_counter(), time.process_time()
gevent.sleep(seconds)
total = env.stats.total
n, fails, el, cpu = total.num_requests, total.num_failures, time.perf_counter() - t, time.process_time() - cpu
runner.quit()
print(json.dumps({"requests": n, "failures": fails, "seconds": el, "rps": n / el, "cpu_us_per_request": 1e6 * cpu / n,
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


SCENARIO = """
name: bench_rps
run: {duration_s: 60, interval_s: 1}
arrivals: {rate_per_s: 1}
workload:
  classes:
    chat:
      probability: 1
      stages:
        - llm: {prompt_tokens: {type: constant, value: 8}, output_tokens: {type: constant, value: 1}}
clients: {timeout_s: 10, max_attempts: 1}
services: {llm: {replicas: 1}}
"""


def run_surge(url: str, seconds: float, users: int, workers: int, folder: Path) -> dict[str, float]:
    """surge's load test, closed model: requests/s from its own results (one request per command)."""
    folder.mkdir(parents=True, exist_ok=True)
    scen = folder / "bench_rps.yaml"
    scen.write_text(SCENARIO)
    out = folder / f"w{workers}"
    cmd = [sys.executable, "-c", "from sim.cli import main; main()", "loadtest", str(scen), "--host", url,
           "--closed", "--users", str(users), "--spawn-rate", str(users * 10), "--duration", f"{seconds + 2:g}s",
           "--workers", str(workers), "--out", str(out), "--no-simulate", "--no-fail-on-slo", "--no-live",
           "--no-ignore-eos", "--model", "m"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    summary = json.loads((out / "measured" / "summary.json").read_text())
    per_s = _steady(out / "measured", "attempts:chat")  # 1 s intervals: the first two are the ramp-up
    tot = json.loads((out / "measured" / "run.json").read_text()).get("totals", {})
    cpu_us = tot.get("loadgen_cpu_us", float("nan")) / max(1.0, tot.get("requests_sent", 0.0))
    return {"rps": per_s, "completed": summary["completed"], "failed": summary["failed"], "cpu_us_per_request": cpu_us}


def _steady(folder: Path, series: str) -> float:
    """Mean per second of a series over its steady middle (without the ramp-up and the last second)."""
    import numpy as np

    with (folder / "timeseries.csv").open() as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(folder / "timeseries.csv", delimiter=",", skiprows=1, ndmin=2)
    col = data[:, header.index(series)]
    return float(col[2:-1].mean()) if len(col) > 3 else float(col.mean())


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
        import tempfile

        wrk = run_wrk(url + "/", a.seconds, a.users)
        loc = run_locust(url, a.seconds, a.users)
        with tempfile.TemporaryDirectory() as tmp:
            one = run_surge(url, a.seconds, a.users, 0, Path(tmp))
            two = run_surge(url, a.seconds, a.users, 2, Path(tmp))
    finally:
        server.terminate()
        server.wait(10)
    load = os.getloadavg()
    print(f"trivial endpoint, {a.users} connections/users, {a.seconds:g} s each, {os.cpu_count()} CPU cores shared, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'tool':<34}{'requests/s':>12}{'CPU us/request':>16}")
    print(f"{'wrk (1 thread, GET)':<34}{wrk['rps']:>12,.0f}")
    for name, r in (("Locust FastHttpUser (1 proc)", loc), ("surge loadtest (1 proc)", one),
                    ("surge loadtest (--workers 2)", two)):
        print(f"{name:<34}{r['rps']:>12,.0f}{r['cpu_us_per_request']:>16,.0f}")
    r1, r2 = one["rps"] / loc["rps"], two["rps"] / one["rps"]
    print(f"surge / plain Locust: {r1:.0%} ({'PASS' if r1 >= 0.8 else 'FAIL'}: need >= 80%); "
          f"2 workers / 1: {r2:.2f}x ({'PASS' if r2 >= 1.7 else 'FAIL'}: need >= 1.7x); "
          f"failures: Locust {loc['failures']}, surge {one['failed']:.0f} / {two['failed']:.0f}")
    # on a loaded machine requests/s follow the CPU share each run got; CPU per request does not
    print(f"CPU per request, surge / plain Locust: {one['cpu_us_per_request'] / loc['cpu_us_per_request']:.2f}x "
          f"(rate ratio on an idle core ~ the inverse: {loc['cpu_us_per_request'] / one['cpu_us_per_request']:.0%})")
    if a.json:
        a.json.write_text(json.dumps({"wrk": wrk, "locust": loc, "surge": one, "surge_workers2": two,
                                      "users": a.users, "seconds": a.seconds, "load": load}, indent=2))


if __name__ == "__main__":
    main()
