"""Overload: does the reference stack keep its goodput when offered three times its capacity?

The stack (`python -m loadtest.stack`, `scenarios/demo_fault.yaml` without its fault, one torch
thread) is pinned to one core and the load generator (`surge loadtest --host`, Locust, the
scenario's own clients with their retries) to another, with taskset. Two phases against the
same stack: the 1x arrival rate `--rate` (about what the stack serves), then `--factor` times
it. During each phase this process (on the load generator's core) probes, 10 times a second
each, `GET /healthz` and a chat request of an unknown class (the least important: it is shed
first whenever the gateway is full), and times the answers; the 503s among the latter that
were shed on arrival (`X-Surge-Shed: queue_full`) or dropped by adaptive LIFO (`stale`: failed
fast at its target in a standing queue) are the rejections (a waiter evicted later by more
important work is counted apart: its time is its wait). Targets (Google SRE,
"Handling Overload": rejections must be cheap):

- goodput at `--factor` x >= 90% of the goodput at 1x (answers within the SLO per second),
- rejections (503) answered in < 10 ms at the p99,
- `/healthz` answered in < 100 ms at the p99.

Two probes time the same requests (10/s each kind), both on the load core: threads of this
process (httpx, same priority as Locust: what a client sharing a saturated core sees, its own
wait for the CPU included) and `overload_probe.py`, its own process at real-time priority (the
stack's answer time, network included; the targets are checked on it). Besides, the stack's
own time for its chat 503s (from arrival in the app to the last byte: no socket or loop wait),
its event loop's lag and a plain thread's wake lag (the GIL and the CPU without the loop's own
work) are read from its /metrics (upper bound of the p99 bucket), and the
CPU share of the stack and of the load generator are printed.

The load average (`/proc/loadavg`) before and after each phase is printed with its figures:
on a shared machine the figures mean little without it.

    .venv/bin/python benchmarks/bench_overload.py [--rate 70] [--factor 3] [--duration 40]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "demo_fault.yaml"
SURGE = str(Path(sys.executable).with_name("surge"))
CREDS = {"SURGE_ADMIN_TOKEN": "bench-admin-token", "SURGE_USER_SECRET": "bench-user-secret"}
PROBE_BODY = {"model": "surge-tiny", "messages": [{"role": "user", "content": "tea"}], "max_tokens": 1}
WARMUP_S = 5.0  # probes from the first seconds of a phase are not counted


def pin(core: int | None) -> list[str]:
    if core is None or not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(core)]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Probe:
    """GETs `/healthz` and posts a least-important chat every `every_s`, each on its own
    keep-alive connection; latencies (seconds) after the warm-up."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        self.url, self.every_s = url, every_s
        self.healthz: list[float] = []
        self.rejected: list[float] = []
        self.evicted: list[float] = []
        self.admitted = 0
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(k,), daemon=True) for k in ("healthz", "chat")]

    def __enter__(self) -> Probe:
        self.t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _loop(self, kind: str) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.wait(self.every_s):
                t = time.perf_counter()
                try:
                    r = (c.get("/healthz") if kind == "healthz" else
                         c.post("/v1/chat/completions", json=PROBE_BODY, headers={"X-Surge-Class": "probe"}))
                except httpx.HTTPError:
                    self.errors += 1
                    continue
                dt = time.perf_counter() - t
                if time.monotonic() - self.t0 < WARMUP_S:
                    continue
                if kind == "healthz":
                    self.healthz.append(dt)
                elif r.status_code == 503 and r.headers.get("X-Surge-Shed", "queue_full") in ("queue_full", "stale"):
                    self.rejected.append(dt)
                elif r.status_code == 503:
                    self.evicted.append(dt)
                else:
                    self.admitted += 1


def _sets(overrides: Sequence[str]) -> list[str]:
    return [arg for o in ["faults=[]", *overrides] for arg in ("--set", o)]


def start_stack(port: int, folder: Path, core: int | None, root: Path = ROOT, overrides: Sequence[str] = (),
                options: str = '{"torch_threads": 1}') -> subprocess.Popen[bytes]:
    cmd = [*pin(core), sys.executable, "-m", "loadtest.stack", "--port", str(port), "--scenario", str(SCENARIO),
           *_sets(overrides), "--db", str(folder / "orders.db"), "--options-json", options]
    log = open(folder / "stack.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(cmd, cwd=root, env=os.environ | CREDS | {"PYTHONPATH": str(root)}, stdout=log, stderr=log)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the stack did not start; see {folder / 'stack.log'}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _label(labels: str, name: str) -> str:
    return labels.split(f'{name}="')[1].split('"')[0]


def scrape(url: str) -> dict[str, float]:
    """From the stack's /metrics: `surge_http_requests_total` summed by route and status (what
    the stack answered, "ROUTE STATUS"), the buckets of its own time for chat 503s ("le LE",
    seconds from the request's arrival in the app to its last byte: no socket or loop wait)
    and of its event loop's lag ("lag LE")."""
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        labels, _, v = line.rpartition(" ")
        if line.startswith("surge_http_requests_total{"):
            key = f"{_label(labels, 'route')} {_label(labels, 'status')}"
        elif (line.startswith("surge_http_request_duration_seconds_bucket{") and 'status="503"' in labels
              and 'route="/v1/chat/completions"' in labels):
            key = f"le {_label(labels, 'le')}"
        elif line.startswith("surge_event_loop_lag_seconds_bucket{"):
            key = f"lag {_label(labels, 'le')}"
        elif line.startswith("surge_thread_wake_lag_seconds_bucket{"):
            key = f"wake {_label(labels, 'le')}"
        else:
            continue
        out[key] = out.get(key, 0.0) + float(v)
    return out


def bucket_p99_ms(delta: dict[str, float], prefix: str) -> float:
    """The upper bound (ms) of the histogram bucket holding the p99, from cumulative bucket
    counts `PREFIX LE` (nan without samples; inf when above the largest bucket)."""
    les = sorted((float(k.split()[1]), v) for k, v in delta.items() if k.startswith(prefix + " "))
    if not les or les[-1][1] <= 0:
        return float("nan")
    return next(le for le, n in les if n >= 0.99 * les[-1][1]) * 1e3


def probe_process(url: str, duration_s: float, core: int | None) -> subprocess.Popen[str]:
    """`overload_probe.py` on the load core at real-time priority (see its docstring)."""
    cmd = [*pin(core), sys.executable, str(Path(__file__).with_name("overload_probe.py")), "--url", url,
           "--duration", f"{duration_s:g}", "--warmup", f"{WARMUP_S:g}", "--priority"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


# A plain process on the stack's core: how late it wakes from a 50 ms sleep is the core's CPU
# contention alone (no GIL); beside the stack's own thread wake lag (GIL + CPU) and loop lag
# (GIL + CPU + the loop's own work) it tells the three apart.
_SLEEPER = ("import json, sys, time\nend = time.monotonic() + float(sys.argv[1]); lag = []\n"
            "while time.monotonic() < end:\n    t = time.perf_counter(); time.sleep(0.05)\n"
            "    lag.append(time.perf_counter() - t - 0.05)\nprint(json.dumps(lag))")


def core_sleeper(duration_s: float, core: int | None) -> subprocess.Popen[str]:
    return subprocess.Popen([*pin(core), sys.executable, "-c", _SLEEPER, f"{duration_s:g}"], stdout=subprocess.PIPE,
                            text=True)


def phase(url: str, rate: float, duration_s: float, out: Path, core: int | None, pid: int,
          overrides: Sequence[str] = (), stack_core: int | None = None) -> dict[str, float]:
    """One load run at `rate` commands/s; goodput, the probes' percentiles (ms), and what the
    stack did meanwhile (CPU seconds, answers by route and status)."""
    before = loadavg()
    cpu0, answered0, t0 = cpu_s(pid), scrape(url), time.monotonic()
    gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [*pin(core), SURGE, "loadtest", str(SCENARIO), "--host", url, "--duration", f"{duration_s:g}s",
           "--set", f"arrivals.rate_per_s={rate:g}", *_sets(overrides), "--no-simulate", "--no-fail-on-slo",
           "--out", str(out)]
    light = probe_process(url, duration_s, core)
    sleeper = core_sleeper(duration_s, stack_core)
    with Probe(url) as probe:
        run = subprocess.run(cmd, cwd=ROOT, env=os.environ | CREDS, capture_output=True, text=True,
                             timeout=duration_s + 300)
    gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the load test's process tree, reaped
    wall, cpu, scraped = time.monotonic() - t0, cpu_s(pid) - cpu0, scrape(url)
    lp = json.loads(light.communicate(timeout=60)[0] or "{}")
    core_lag = json.loads(sleeper.communicate(timeout=60)[0] or "[]")
    if run.returncode != 0:
        raise RuntimeError(f"surge loadtest failed ({run.returncode}): {run.stderr[-2000:]}")
    delta = {k: v - answered0.get(k, 0.0) for k, v in scraped.items()}
    s = json.loads((out / "measured" / "summary.json").read_text())
    totals = json.loads((out / "measured" / "run.json").read_text()).get("totals", {})

    def p99_ms(xs: list[float]) -> float:
        return float(np.percentile(xs, 99) * 1e3) if xs else float("nan")

    def p50_ms(xs: list[float]) -> float:
        return float(np.median(xs) * 1e3) if xs else float("nan")

    return {"rate": rate, "goodput": s["goodput_per_s"], "throughput": s["throughput_per_s"],
            "success": s["success_rate"], "dropped": float(totals.get("dropped", 0)),
            "healthz_p50_ms": float(np.median(probe.healthz) * 1e3) if probe.healthz else float("nan"),
            "healthz_p99_ms": p99_ms(probe.healthz), "healthz_n": len(probe.healthz),
            "reject_p50_ms": float(np.median(probe.rejected) * 1e3) if probe.rejected else float("nan"),
            "reject_p99_ms": p99_ms(probe.rejected), "reject_n": len(probe.rejected),
            "probe_admitted": probe.admitted, "probe_errors": probe.errors, "evicted_n": len(probe.evicted),
            "light_healthz_p50_ms": p50_ms(lp.get("healthz", [])), "light_healthz_p99_ms": p99_ms(lp.get("healthz", [])),
            "light_healthz_n": len(lp.get("healthz", [])), "light_reject_p50_ms": p50_ms(lp.get("rejected", [])),
            "light_reject_p99_ms": p99_ms(lp.get("rejected", [])), "light_reject_n": len(lp.get("rejected", [])),
            "light_stale_n": len(lp.get("stale", [])),
            "light_priority": lp.get("priority", "?"),  # type: ignore[dict-item]
            "server_reject_p99_ms": bucket_p99_ms(delta, "le"), "loop_lag_p99_ms": bucket_p99_ms(delta, "lag"),
            "wake_lag_p99_ms": bucket_p99_ms(delta, "wake"), "core_lag_p99_ms": p99_ms(core_lag),
            "generator_cpu_share": (gen1.ru_utime + gen1.ru_stime - gen0.ru_utime - gen0.ru_stime) / wall,
            "classes": {k: (c["goodput_per_s"], c["completed"] / s["window_s"])  # type: ignore[dict-item]
                        for k, c in s["classes"].items()},
            "load_before": before, "load_after": loadavg(), "stack_cpu_share": cpu / wall,  # type: ignore[dict-item]
            "answered": {k: v / wall for k, v in delta.items() if v > 0 and not k.startswith(("le ", "lag ", "wake "))}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=70.0, help="the 1x arrival rate, commands/s")
    p.add_argument("--factor", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=40.0, help="seconds per phase")
    p.add_argument("--port", type=int, default=18493)
    p.add_argument("--stack-core", type=int, default=0)
    p.add_argument("--load-core", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temp dir)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="scenario override for the stack and the load test alike (repeatable)")
    p.add_argument("--stack-options", default='{"torch_threads": 1}', help="StackOptions JSON for the stack")
    p.add_argument("--stack-root", type=Path, default=ROOT,
                   help="serve the stack from this checkout (e.g. an older commit, for an A/B comparison)")
    a = p.parse_args(argv)
    if pin(a.load_core):
        os.sched_setaffinity(0, {a.load_core})  # the probes run with the load generator
    url = f"http://127.0.0.1:{a.port}"
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        stack = start_stack(a.port, out, a.stack_core, a.stack_root.resolve(), a.set, a.stack_options)
        try:
            rows = [phase(url, a.rate, a.duration, out / "x1", a.load_core, stack.pid, a.set, a.stack_core)]
            time.sleep(3)
            rows.append(phase(url, a.rate * a.factor, a.duration, out / f"x{a.factor:g}", a.load_core, stack.pid,
                              a.set, a.stack_core))
        finally:
            stack.terminate()
            stack.wait(30)
    return report(rows, a)


def report(rows: list[dict[str, float]], a: argparse.Namespace) -> int:
    pinned = f"pinned: stack core {a.stack_core}, load core {a.load_core}" if pin(0) else "not pinned"
    print(f"overload benchmark: {SCENARIO.name} without its fault {' '.join(a.set)}, {a.duration:g} s per phase, "
          f"{pinned}, stack from {a.stack_root} with {a.stack_options}")
    print(f"{'offered /s':>10} {'goodput /s':>10} {'thruput /s':>10} {'success':>8}  per class goodput/throughput /s"
          f"{'':>8}  load avg before -> after")
    for r in rows:
        classes = ", ".join(f"{k} {g:.1f}/{t:.1f}" for k, (g, t) in r["classes"].items())  # type: ignore[attr-defined]
        print(f"{r['rate']:>10.0f} {r['goodput']:>10.1f} {r['throughput']:>10.1f} {r['success']:>8.1%}  {classes:<40}"
              f"  {r['load_before']} -> {r['load_after']}")
    print(f"{'offered /s':>10} | {'probe':<44} | {'reject p50':>10} {'p99':>9} {'n':>4} | {'healthz p50':>11} {'p99':>9} {'n':>4}")
    for r in rows:
        for name, pre in ((f"own process on the load core, {r['light_priority']}", "light_"),
                          ("threads of this process (httpx), load core", "")):
            print(f"{r['rate']:>10.0f} | {name:<44} | {r[pre + 'reject_p50_ms']:>8.2f}ms {r[pre + 'reject_p99_ms']:>7.2f}ms "
                  f"{r[pre + 'reject_n']:>4} | {r[pre + 'healthz_p50_ms']:>9.2f}ms {r[pre + 'healthz_p99_ms']:>7.2f}ms "
                  f"{r[pre + 'healthz_n']:>4}")
    for r in rows:
        answered = ", ".join(f"{k} {v:.1f}/s" for k, v in sorted(r["answered"].items()))  # type: ignore[attr-defined]
        print(f"at {r['rate']:g}/s the stack used {r['stack_cpu_share']:.0%} of a core, the load generator "
              f"{r['generator_cpu_share']:.0%}; server side: chat 503s done within {r['server_reject_p99_ms']:g} ms "
              f"(p99 bucket), event-loop lag p99 within {r['loop_lag_p99_ms']:g} ms, a plain thread's wake lag "
              f"(GIL + CPU) p99 within {r['wake_lag_p99_ms']:g} ms, a plain process's on the stack core (CPU "
              f"alone) p99 {r['core_lag_p99_ms']:.1f} ms; answered {answered}")
    one, over = rows
    checks = [(f"goodput at {a.factor:g}x >= 90% of 1x", one["goodput"] > 0 and over["goodput"] >= 0.9 * one["goodput"],
               f"{over['goodput']:.1f} vs {one['goodput']:.1f}/s = {over['goodput'] / max(one['goodput'], 1e-9):.0%}"),
              ("rejections p99 < 10 ms (own-process probe)", over["light_reject_p99_ms"] < 10,
               f"{over['light_reject_p99_ms']:.2f} ms; threads probe {over['reject_p99_ms']:.2f} ms"),
              (f"/healthz p99 < 100 ms at {a.factor:g}x (own-process probe)", over["light_healthz_p99_ms"] < 100,
               f"{over['light_healthz_p99_ms']:.2f} ms; threads probe {over['healthz_p99_ms']:.2f} ms")]
    for name, ok, got in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {got}")
    if one["goodput"] < 0.8 * one["rate"]:
        print(f"note: at 1x only {one['goodput']:.1f} of {one['rate']:g}/s were good: --rate is above capacity here")
    for r in rows:
        if r["light_stale_n"]:
            print(f"note: at {r['rate']:g}/s {r['light_stale_n']:.0f} of the own-process probe's rejections were "
                  "adaptive LIFO's stale drops (X-Surge-Shed: stale)")
        if r["evicted_n"]:
            print(f"note: at {r['rate']:g}/s {r['evicted_n']} probes waited and were then evicted (not counted as rejections)")
        if r["dropped"]:
            print(f"note: the load generator dropped {r['dropped']:.0f} starts at {r['rate']:g}/s (it could not keep up)")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
