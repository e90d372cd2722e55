"""Login throughput: POST /v1/auth/login requests/s of one stack process on one CPU core,
measured with wrk (https://github.com/wg/wrk; `apt-get install -y wrk`).

The server is pinned to core 0 and wrk to core 1 (taskset) when the machine has two or
more cores, so the figure is what one core of the stack serves. The auth service's own
latency is set to 0: the figure is the stack's overhead (HTTP, JSON, rate limiter, auth
admission, HMAC token), not a configured sleep.

    .venv/bin/python benchmarks/bench_stack_login.py [--seconds 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LUA = """wrk.method = "POST"
wrk.body = '{"username": "bench-user"}'
wrk.headers["Content-Type"] = "application/json"
"""
CONFIG = {"auth": {"latency": {"type": "constant", "value": 0.0}, "concurrency": 100000},
          "llm": {"replicas": 1, "torch_threads": 1}}


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def start_server(port: int, db: str) -> subprocess.Popen[bytes]:
    cmd = [*pin(0), sys.executable, "-m", "loadtest.stack", "--port", str(port), "--db", db,
           "--config-json", json.dumps(CONFIG)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("stack did not start")


def parse_wrk(out: str) -> dict[str, float]:
    def dur(text: str) -> float:
        v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: dur(re.search(rf"\s{p}%\s+(\S+)", out).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "non2xx": float(non2xx.group(1)) if non2xx else 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--port", type=int, default=18391)
    a = p.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "login.lua"
        lua.write_text(LUA)
        proc = start_server(a.port, str(Path(tmp) / "orders.db"))
        try:
            url = f"http://127.0.0.1:{a.port}/v1/auth/login"
            subprocess.run([*pin(1), "wrk", "-t1", "-c8", "-d2s", "-s", str(lua), url], capture_output=True)  # warm-up
            out = subprocess.run([*pin(1), "wrk", "-t1", f"-c{a.connections}", f"-d{a.seconds}s", "--latency",
                                  "-s", str(lua), url], capture_output=True, text=True, check=True).stdout
        finally:
            proc.terminate()
            proc.wait(15)
    r = parse_wrk(out)
    print(f"login benchmark: wrk -t1 -c{a.connections} -d{a.seconds}s, server pinned to one core "
          f"({'taskset' if pin(0) else 'not pinned: taskset missing or 1 core'}), auth latency 0")
    print(f"{'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    print(f"{r['rps']:>11.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non2xx']:>8.0f}")
    return 0 if r["non2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
