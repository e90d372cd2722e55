"""Closing the loop: does the simulator, with the calibrated cost model, predict the stack's engine?

1. Calibrate (`loadtest.calibrate`) the scenario's model on one engine: fitted coefficients,
   R², relative error per design point.
2. Drive the real engine in-process (no HTTP) at several load levels and replay the *same*
   arrival instants through the simulator's replica (`sim.des.llm.Replica`, the batching code
   `sim.des.simulate` uses), once with the fitted model and once with the scenario's own cost
   model: a burst of N sequences at t = 0, open Poisson arrivals, and the demo's fault (every
   step slowed 30x, as the stack's `slowdown` fault does: it sleeps 29x each step's time).
   Per case: generated tokens/s, mean and p90 latency per sequence, mean TTFT, and the
   simulator's error.
3. `--replicas 2` runs that many engines at once in threads of one process, as the stack does
   (they share the GIL and the cores), each with its own copy of the arrivals.

    .venv/bin/python benchmarks/bench_calibrate.py [--scenario scenarios/demo_fault.yaml]
        [--threads 1] [--replicas 1] [--prompt 64] [--output 24] [--idle-ms 0] [--cal-replicas 1]
        [--stat median] [--only NAME] [--event-loop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import simpy
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest.calibrate import calibrate, engine_spec, fit_table, make_engine  # noqa: E402
from loadtest.stack.engine import Sequence  # noqa: E402
from sim.costmodel import StepCost  # noqa: E402
from sim.des.llm import FleetStats, Replica, Seq  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from sim.scenario.services import FittedCost  # noqa: E402


class TokenLoop:
    """An asyncio loop in its own thread that receives every token as the stack's does
    (`call_soon_threadsafe` into a queue) and encodes an SSE-like chunk for it: the GIL traffic
    the stack's engine threads see from its event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.q: asyncio.Queue = asyncio.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._consume())

    async def _consume(self) -> None:
        while (item := await self.q.get()) is not None:
            json.dumps({"choices": [{"delta": {"content": str(item)}}]})

    def put(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.q.put_nowait, item)

    def close(self) -> None:
        self.put(None)
        self.thread.join()


def run_engine(engine, arrivals: list[float], prompt: int, output: int, slowdown: float, out: dict,  # type: ignore[no-untyped-def]
               tokens: TokenLoop | None = None) -> None:
    """Submit each sequence at its arrival instant (seconds from start) and step the engine until
    all are done; `out` gets per-sequence (arrival, first token, done) times."""
    rng = np.random.default_rng(1)
    first: dict[int, float] = {}
    done: dict[int, float] = {}
    t0 = time.perf_counter()
    seqs = []
    steps: list[tuple[int, int, int, float]] = []
    engine.slowdown = lambda: slowdown
    nxt = 0
    with torch.inference_mode():
        while nxt < len(arrivals) or engine.load:
            now = time.perf_counter() - t0
            while nxt < len(arrivals) and arrivals[nxt] <= now:
                i = nxt

                def sink(kind: str, value: object, i: int = i) -> None:
                    t = time.perf_counter() - t0
                    if tokens is not None:
                        tokens.put(value)
                    if kind == "token":
                        first.setdefault(i, t)
                    else:
                        done[i] = t
                s = Sequence(prompt=rng.integers(1, 500, prompt).tolist(), max_tokens=output, sink=sink)
                seqs.append(s)
                engine.submit(s)
                nxt += 1
            if not engine.load:
                time.sleep(max(0.0, arrivals[nxt] - now))
                continue
            before = list(engine.running)
            stats = engine.step()
            kv = sum(s.computed for s in {*before, *engine.running})
            ndec = sum(1 for s in before if s.generated > 0)  # decoding when the step began
            steps.append((stats.prefill_tokens, ndec, kv, stats.duration_s))
    out["steps"] = steps
    out["arrival"], out["first"], out["done"] = arrivals, [first[i] for i in range(len(seqs))], \
        [done[i] for i in range(len(seqs))]


def run_sim(spec, arrivals: list[float], prompt: int, output: int, slowdown: float) -> dict:  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    rep = Replica(env, 0, spec, StepCost(spec.cost_model), FleetStats())
    rep.slowdown = slowdown
    seqs: list[Seq] = []

    def arrive(t: float):  # type: ignore[no-untyped-def]
        yield env.timeout(t)
        s = Seq(env, prompt, output)
        seqs.append(s)
        rep.submit(s)

    for t in arrivals:
        env.process(arrive(t))
    env.run()
    return {"arrival": arrivals, "first": [s.t_first for s in seqs], "done": [s.t_done for s in seqs]}


def summary(r: dict, output: int) -> dict[str, float]:
    a, f, d = (np.array(r[k], float) for k in ("arrival", "first", "done"))
    lat = d - a
    return {"tok_s": len(a) * output / (d.max() - a.min()), "lat_mean_ms": 1e3 * lat.mean(),
            "lat_p90_ms": 1e3 * float(np.percentile(lat, 90)), "ttft_ms": 1e3 * float((f - a).mean())}


def cases(rng: np.random.Generator) -> list[tuple[str, list[float], float]]:
    out = []
    for n in (1, 4, 16, 48):
        out.append((f"burst {n}", [0.0] * n, 1.0))
    for rate, dur in ((20, 4.0), (100, 3.0), (300, 2.0)):
        t = np.cumsum(rng.exponential(1 / rate, int(rate * dur * 1.5)))
        out.append((f"poisson {rate}/s", t[t < dur].tolist(), 1.0))
    for rate in (4, 8):  # the demo's fault window: ~8 LLM calls/s over 2 replicas, 30x slower
        t = np.cumsum(rng.exponential(1 / rate, rate * 12))
        out.append((f"poisson {rate}/s, 30x slow", t[t < 8.0].tolist(), 30.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="scenarios/demo_fault.yaml")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--replicas", type=int, default=1, help="engines running at once, in threads")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--output", type=int, default=24)
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--stat", default="median", help="fit each design step's median or mean")
    ap.add_argument("--event-loop", action="store_true", help="stream every token to an asyncio loop thread")
    ap.add_argument("--cal-replicas", type=int, default=1, help="calibrate with this many engines at once")
    ap.add_argument("--idle-ms", type=float, default=0.0, help="calibrate with this idle time before each step")
    args = ap.parse_args()
    sc = load_scenario(args.scenario)
    fit = calibrate(sc, threads=args.threads, stat=args.stat, idle_s=args.idle_ms / 1e3, replicas=args.cal_replicas)
    print(fit_table(fit))
    print(f"fitted: {fit.cost_model()}  R2 {fit.r2:.3f}  max |rel err| {100 * fit.max_abs_rel_error:.0f}%  "
          f"({fit.wall_s:.1f} s)")
    torch.set_num_threads(args.threads)
    spec = engine_spec(sc)
    base = sc.services.llm.model_copy(update={"replicas": 1})
    fitted = base.model_copy(update={"cost_model": FittedCost(**fit.cost_model())})
    print(f"\n{'case':<24} {'':>9} {'tok/s':>8} {'lat mean ms':>12} {'lat p90 ms':>11} {'TTFT ms':>8}")
    for name, arrivals, slow in cases(np.random.default_rng(7)):
        if args.only not in name:
            continue
        outs: list[dict] = [{} for _ in range(args.replicas)]
        engines = [make_engine(spec, seed=i) for i in range(args.replicas)]
        for e in engines:  # warm, like a stack that has served before
            run_engine(e, [0.0] * 4, args.prompt, args.output, 1.0, {})
        tl = TokenLoop() if args.event_loop else None
        ths = [threading.Thread(target=run_engine, args=(e, arrivals, args.prompt, args.output, slow, o, tl))
               for e, o in zip(engines, outs, strict=True)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        if tl is not None:
            tl.close()
        meas = [summary(o, args.output) for o in outs]
        m = {k: float(np.mean([x[k] for x in meas])) for k in meas[0]}
        st = np.array([x for o in outs for x in o["steps"]], float)
        pred = np.array([fit.predict(p, d, k) for p, d, k, _ in st])
        step_note = (f"  steps: {len(st)}, measured mean {1e3 * st[:, 3].mean():.2f} ms (median "
                     f"{1e3 * np.median(st[:, 3]):.2f}), fit {1e3 * pred.mean():.2f} ms: fit/measured "
                     f"{pred.mean() / st[:, 3].mean():.2f}")
        rows = [("measured", m), ("sim fit", summary(run_sim(fitted, arrivals, args.prompt, args.output, slow),
                                                    args.output)),
                ("sim orig", summary(run_sim(base, arrivals, args.prompt, args.output, slow), args.output))]
        for label, r in rows:
            err = "" if label == "measured" else "  err " + " ".join(
                f"{100 * (r[k] / m[k] - 1):+.0f}%" for k in r)
            print(f"{name if label == 'measured' else '':<24} {label:>9} {r['tok_s']:>8.0f} {r['lat_mean_ms']:>12.1f} "
                  f"{r['lat_p90_ms']:>11.1f} {r['ttft_ms']:>8.1f}{err}", flush=True)
        print(step_note)


if __name__ == "__main__":
    main()
