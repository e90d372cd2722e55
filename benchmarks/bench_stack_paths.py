"""CPU the stack spends per answer on the paths that multiply under overload: `/healthz`, a
login, and a 503 shed on arrival (a chat, and an agent command), measured with wrk
(https://github.com/wg/wrk) against `scenarios/demo_fault.yaml` without its fault.

The stack is pinned to core 0 and wrk to core 1; CPU is the stack process's user + system time
over the run divided by the answers wrk got, so it holds on a shared machine better than a
rate does (the latencies wrk prints do not: they include the wait for a core). To shed, the
gateway is one slot with no queue, held by an agent command whose catalog call takes 1,000 s
(it sleeps: no CPU), and the probes name the least important class.

    .venv/bin/python benchmarks/bench_stack_paths.py [--seconds 5] [--connections 8] [--stack-root DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overload import CREDS, ROOT, cpu_s, loadavg, pin, start_stack  # noqa: E402

from loadtest.credentials import password_for  # noqa: E402

JSON = 'wrk.headers["Content-Type"] = "application/json"\n'
SHED_CHAT = (f'wrk.method = "POST"\n{JSON}wrk.headers["X-Surge-Class"] = "probe"\n'
             """wrk.body = '{"model":"surge-tiny","messages":[{"role":"user","content":"tea"}],"max_tokens":1}'\n""")
SHED_AGENT = (f'wrk.method = "POST"\n{JSON}wrk.headers["X-Surge-Class"] = "probe"\n'
              """wrk.headers["Idempotency-Key"] = "k"\nwrk.body = '{"command":"tea"}'\n""")
HOLD = ("services.gateway.concurrency=1", "services.gateway.queue_limit=0",
        "services.tools.catalog.latency={type: constant, value: 1000}")


def wrk(lua: str, url: str, seconds: int, connections: int) -> tuple[int, int]:
    """(answers, non-2xx answers) of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(lua)
        f.flush()
        out = subprocess.run([*pin(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
                             capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(re.search(r"(\d+) requests in", out).group(1)), int(non2xx.group(1)) if non2xx else 0  # type: ignore[union-attr]


def per_answer(name: str, lua: str, url: str, pid: int, a: argparse.Namespace) -> str:
    wrk(lua, url, 1, a.connections)  # warm-up
    cpu0, t0 = cpu_s(pid), time.monotonic()
    n, non2xx = wrk(lua, url, a.seconds, a.connections)
    cpu, wall = cpu_s(pid) - cpu0, time.monotonic() - t0
    return (f"{name:<12} {n / wall:>9.0f} {non2xx:>8} {cpu / wall:>10.0%} {cpu / max(n, 1) * 1e6:>9.0f}")


def hold_the_gateway(url: str, password: str) -> None:
    """Take the gateway's one slot with an agent command that waits 1,000 s in its catalog call."""
    def hold() -> None:
        with httpx.Client(base_url=url, timeout=1200) as c:
            token = c.post("/v1/auth/login", json={"username": "holder", "password": password}).json()["token"]
            with contextlib.suppress(httpx.HTTPError):  # the stack stopped
                c.post("/v1/agent/commands", json={"command": "tea", "class": "help_me_buy"},
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "hold"})
    threading.Thread(target=hold, daemon=True).start()
    time.sleep(1.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--port", type=int, default=18494)
    p.add_argument("--stack-root", type=Path, default=ROOT, help="serve the stack from this checkout (A/B)")
    a = p.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    base = f"http://127.0.0.1:{a.port}"
    secret = CREDS["SURGE_USER_SECRET"]
    login = (f'wrk.method = "POST"\n{JSON}wrk.body = \'{{"username":"u1","password":"{password_for(secret, "u1")}"}}\'\n')
    rows: list[str] = []
    print(f"stack from {a.stack_root}, wrk -c{a.connections} {a.seconds} s per path, "
          f"{'pinned: stack core 0, wrk core 1' if pin(0) else 'not pinned'}; load avg {loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        for sets, paths in (((), [("healthz", 'wrk.method = "GET"\n', "/healthz"),
                                  ("login", login, "/v1/auth/login")]),
                            (HOLD, [("shed chat", SHED_CHAT, "/v1/chat/completions"),
                                    ("shed agent", SHED_AGENT, "/v1/agent/commands")])):
            folder = Path(tmp) / str(len(rows))
            folder.mkdir()
            stack = start_stack(a.port, folder, 0, a.stack_root.resolve(), sets, json.dumps({"torch_threads": 1}))
            try:
                if sets:
                    hold_the_gateway(base, password_for(secret, "holder"))
                rows += [per_answer(name, lua, base + path, stack.pid, a) for name, lua, path in paths]
            finally:
                stack.kill()
                stack.wait(30)
    print(f"{'path':<12} {'answers/s':>9} {'non-2xx':>8} {'stack cpu':>10} {'us/answer':>9}")
    print("\n".join(rows))
    print(f"load avg after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
