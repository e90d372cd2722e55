"""Time the gateway and the agent add around the LLM, at the median and p99.

One request at a time (no queueing) against a real server on loopback. For each request the
client measures its end-to-end time and the server reports, in `Server-Timing: llm;dur=`,
the time spent inside LLM generation (engine queue + prefill + decode). Overhead = end-to-end
- LLM: HTTP, JSON, auth, rate limits, admission, and for agent commands the SQLite order
ledger and the tool wrappers (tool latencies are set to 0 so that only the stack's own
work counts).

    .venv/bin/python benchmarks/bench_stack_overhead.py [--chat 300] [--agent 150]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ZERO = {"type": "constant", "value": 0.0}
CONFIG = {"auth": {"latency": ZERO}, "tools": {t: {"latency": ZERO} for t in ("catalog", "order", "payment")},
          "llm": {"replicas": 1, "torch_threads": 1}}


def server_timing_llm_ms(header: str) -> float:
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name == "llm":
            return float(dur)
    raise ValueError(f"no llm timing in {header!r}")


def run(client: httpx.Client, n: int, send) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    e2e, llm = [], []
    for i in range(n):
        t = time.perf_counter()
        r = send(i)
        dt = (time.perf_counter() - t) * 1e3
        r.raise_for_status()
        e2e.append(dt)
        llm.append(server_timing_llm_ms(r.headers["server-timing"]))
    e, m = np.array(e2e[n // 10:]), np.array(llm[n // 10:])  # the first 10% warm up
    return {"e2e": e, "llm": m, "overhead": e - m}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chat", type=int, default=300)
    p.add_argument("--agent", type=int, default=150)
    p.add_argument("--port", type=int, default=18392)
    a = p.parse_args(argv)
    url = f"http://127.0.0.1:{a.port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "loadtest.stack", "--port", str(a.port), "--db",
                                 str(Path(tmp) / "orders.db"), "--config-json", json.dumps(CONFIG)],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=url, timeout=30) as c:
                for _ in range(300):
                    try:
                        if c.get("/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                chat = {"model": "surge-tiny", "messages": [{"role": "user", "content": "help me buy a milk tea"}],
                        "max_tokens": 16}
                rows = {"chat completion (16 tokens)": run(c, a.chat, lambda i: c.post("/v1/chat/completions",
                                                                                          json=chat))}
                h = {"Authorization": f"Bearer {c.post('/v1/auth/login', json={'username': 'b'}).json()['token']}"}
                rows["agent command (2 LLM calls)"] = run(c, a.agent, lambda i: c.post(
                    "/v1/agent/commands", json={"command": "help me buy a milk tea"},
                    headers=h | {"Idempotency-Key": f"bench-{i}"}))
        finally:
            proc.terminate()
            proc.wait(15)
    print("overhead benchmark: sequential requests on loopback, tools and auth latency 0; milliseconds")
    print(f"{'request':<30} {'n':>4} {'e2e p50':>8} {'e2e p99':>8} {'llm p50':>8} {'overhead p50':>13} "
          f"{'overhead p99':>13}")
    for name, r in rows.items():
        print(f"{name:<30} {len(r['e2e']):>4} {np.percentile(r['e2e'], 50):>8.2f} {np.percentile(r['e2e'], 99):>8.2f} "
              f"{np.percentile(r['llm'], 50):>8.2f} {np.percentile(r['overhead'], 50):>13.2f} "
              f"{np.percentile(r['overhead'], 99):>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
