"""Open-model arrivals: when sessions start, decided before the run and independent of how
fast the system answers.

The schedule is the simulator's own (`sim.arrivals.arrival_blocks` on the scenario's
"arrivals" stream): with the same scenario and seed, the load test starts sessions at the very
instants the simulation does — Poisson within each rate window (by thinning), gamma/Weibull
renewals, or a replayed trace (with its token columns). Scheduled proactive tasks
(`sim.arrivals.proactive_times`, the simulator's "proactive.schedule" stream) join the same
schedule, each marked with the class it starts. Worker k of n takes every n-th start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.arrivals import arrival_blocks, load_trace, proactive_times
from sim.scenario import Scenario
from sim.streams import Streams


@dataclass(frozen=True)
class Schedule:
    """Intended starts, seconds since t0 (sorted), with optional trace token counts; `tasks`
    (when there are scheduled proactive tasks): per start the class it starts, "" for a session."""

    times_s: np.ndarray
    prompt_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    tasks: tuple[str, ...] | None = None

    def share(self, index: int, workers: int) -> Schedule:
        """The starts worker `index` (0-based) of `workers` dispatches: every n-th, offset k."""
        if workers <= 1:
            return self
        sl = slice(index, None, workers)
        return Schedule(self.times_s[sl],
                        None if self.prompt_tokens is None else self.prompt_tokens[sl],
                        None if self.output_tokens is None else self.output_tokens[sl],
                        None if self.tasks is None else self.tasks[sl])

    def task(self, k: int) -> str:
        """The class start `k` is a proactive task of, or "" for a user's session."""
        return self.tasks[k] if self.tasks is not None else ""

    def __len__(self) -> int:
        return len(self.times_s)


def schedule_of(sc: Scenario) -> Schedule:
    """Every session start and scheduled proactive task of the scenario on [0, run.duration_s)."""
    base = Path(sc.base_dir)
    blocks = list(arrival_blocks(sc, Streams(sc.run.seed)("arrivals"), base))
    times = np.concatenate(blocks) if blocks else np.zeros(0)
    prompts = outputs = None
    if sc.arrivals.trace is not None and sc.arrivals.trace.prompt_column:
        tr = load_trace(sc, base)
        n = len(times)
        prompts = tr.prompt_tokens[:n] if tr.prompt_tokens is not None else None
        outputs = tr.output_tokens[:n] if tr.output_tokens is not None else None
    tasks = proactive_times(sc, Streams(sc.run.seed)("proactive.schedule"))
    if not len(tasks):
        return Schedule(times, prompts, outputs)
    both = np.concatenate([times, tasks.times_s])
    order = np.argsort(both, kind="stable")
    names = ("",) * len(times) + tasks.classes

    def spread(col: np.ndarray | None) -> np.ndarray | None:  # proactive starts replay no trace tokens
        return None if col is None else np.concatenate([col, np.full(len(tasks), -1)])[order]

    return Schedule(both[order], spread(prompts), spread(outputs), tuple(names[i] for i in order.tolist()))


def constant_rate(rate_per_s: float, duration_s: float, rng: np.random.Generator | None = None) -> Schedule:
    """Poisson starts at a constant rate (benchmarks and tests), or evenly spaced without `rng`."""
    if rng is None:
        return Schedule(np.arange(0.0, duration_s, 1.0 / rate_per_s))
    n = rng.poisson(rate_per_s * duration_s)
    return Schedule(np.sort(rng.uniform(0.0, duration_s, n)))
