"""The open-model dispatcher in a gevent process: starts on time, independent of how long each
takes, and a start that finds the in-flight cap full is dropped and counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import json, time
import gevent, numpy as np
from loadtest.dispatch import Dispatcher, LATENESS
from loadtest.schedule import Schedule, constant_rate
from loadtest.tally import Tally
from sim.results import LogHistogram

# 1) 200 starts/s for 2 s, each start sleeping 0.5 s: starts do not wait for each other
tally = Tally(3, 1)
sched = constant_rate(200, 2.0, np.random.default_rng(3))
started = []
d = Dispatcher(sched, lambda k, late: (started.append(k), gevent.sleep(0.5)), tally, time.time() + 0.2, 3.0, 10_000)
t = time.time(); d.run(); d.group.join(); wall = time.time() - t
rows = tally.drain()["hists"]
h = LogHistogram.from_arrays(np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))
# 2) ten starts at once with a cap of 2 running: 8 are dropped
t2 = Tally(1, 1)
d2 = Dispatcher(Schedule(np.zeros(10)), lambda k, late: gevent.sleep(0.2), t2, time.time(), 1.0, 2)
d2.run(); killed = d2.shutdown()
print(json.dumps({"n": len(sched), "started": len(started), "wall": wall, "p99": h.quantile(0.99),
                  "dispatched": d2.dispatched, "dropped": d2.dropped, "killed": killed,
                  "series": t2.drain()["series"]}))
"""


def test_dispatcher_keeps_the_schedule_and_counts_drops() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["started"] == r["n"] > 300
    assert r["wall"] < 3.2  # 2 s of starts + 0.5 s for the last one (+ the 0.2 s lead): none waited for another
    assert r["p99"] < 0.05  # loose: CI shares its cores; the benchmark states the real figure
    assert (r["dispatched"], r["dropped"], r["killed"]) == (2, 8, 2)
    assert sorted(map(tuple, r["series"])) == [("dropped", 0, 8), ("scheduled", 0, 10)]
