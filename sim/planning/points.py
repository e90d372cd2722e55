"""Evaluating candidate configurations: one observation per (configuration, replication), run on
a backend, cached on disk so an interrupted sweep or plan resumes from its finished points.

Common random numbers: replication r of every configuration runs with seed `run.seed + r`
(the scenario's seed after `--set`), as `surge run --replications` does, so two candidates are
compared on the same arrival and service draws.

An *observation* is a small JSON-safe mapping, all a sweep or a plan needs from one run:
`kpis` (sim.stats.kpis), `slos` (the summary's verdict rows), `metastability`
(sim.campaign.analyse), `services` (sim.planning.bottleneck.service_stats) and `cost`
(sim.cost.run_cost, plus the configuration's `hourly` cost as provisioned).

The cache key is the SHA-256 of the scenario as validated (every field resolved), the seed,
the engine and the surge version. Data files a scenario names (traces, empirical
distributions) enter by path, not content: after editing one, clear the cache (`--no-cache`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim import __version__
from sim.campaign.metastability import analyse
from sim.cost import hourly_cost, run_cost
from sim.engines import ENGINES as ENGINE_NAMES
from sim.engines import simulate
from sim.planning.backends import Backend, LocalBackend
from sim.planning.bottleneck import service_stats
from sim.planning.space import PlanningError, Point, Source
from sim.results import Results, json_safe
from sim.scenario import Scenario
from sim.stats import kpis

#: the engines a sweep or plan can run on (`sim.engines`: des, fleet, auto); every one has the
#: contract `fn(sc, seed=, replication=) -> Results`
ENGINES: tuple[str, ...] = ENGINE_NAMES
DEFAULT_ENGINE = "des"

Observation = dict[str, Any]
Task = tuple[Scenario, int, int, str]  # scenario, seed, replication (1-based), engine
_META_KEYS = ("metastable", "stuck_at_end", "onset_s", "time_to_recover_s", "goodput_fraction",
              "attempts_per_command", "tail_success_ratio")


def engine_function(name: str) -> Callable[..., Results]:
    if name not in ENGINES:
        raise PlanningError(f"--engine: must be one of {sorted(ENGINES)} (got {name!r})")
    return functools.partial(simulate, engine=name)


def observation(sc: Scenario, results: Results) -> Observation:
    """What a sweep or plan keeps of one run (see the module docstring)."""
    a = analyse(results, scenario=sc)
    s = results.summary
    return json_safe({
        "seed": results.meta.get("seed"),
        "kpis": kpis(s),
        "slos": s.get("slos", []),
        "metastability": {k: a[k] for k in _META_KEYS},
        "services": service_stats(sc, results),
        "cost": {"hourly": hourly_cost(sc), **run_cost(sc, results)},
    })


def observe(task: Task) -> Observation:
    """Run one replication of one configuration (module-level: process pools and Ray call it)."""
    sc, seed, replication, engine = task
    return observation(sc, engine_function(engine)(sc, seed=seed, replication=replication))


class PointCache:
    """Observations on disk, one JSON file per key; writes are atomic (rename), so an
    interruption leaves whole files only. `folder=None` keeps nothing."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    @staticmethod
    def key(sc: Scenario, seed: int, engine: str) -> str:
        blob = json.dumps({"scenario": sc.model_dump(mode="json"), "seed": seed, "engine": engine,
                           "surge_version": __version__}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Observation | None:
        if self.folder is None:
            return None
        p = self._path(key)
        try:
            return json.loads(p.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, obs: Observation) -> None:
        if self.folder is None:
            return
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(obs, sort_keys=True) + "\n")
        os.replace(tmp, p)


Progress = Callable[[int, int], None]  # (runs done, runs scheduled so far)


class Evaluator:
    """Runs (configuration, replication) pairs: from the cache when done before, else on the
    backend, with common random numbers. Counts `computed` and `reused` runs."""

    def __init__(self, source: Source, engine: str = DEFAULT_ENGINE, backend: Backend | None = None,
                 cache: PointCache | None = None, progress: Progress | None = None) -> None:
        engine_function(engine)  # an unknown engine fails before any work
        self.source, self.engine = source, engine
        self.backend = backend or LocalBackend(1)
        self.cache = cache or PointCache(None)
        self.progress = progress
        self.base_seed = source.load().run.seed
        self.computed = self.reused = self.scheduled = self.done = 0
        self._memo: dict[tuple[Point, int], Observation] = {}

    def seed(self, replication: int) -> int:
        """The seed of replication r (0-based): the same for every configuration."""
        return self.base_seed + replication

    def scenario(self, point: Point, replication: int = 0) -> Scenario:
        return self.source.load(point, seed=self.seed(replication))

    def observe(self, points: Sequence[Point], replications: Sequence[int]) -> dict[Point, list[Observation]]:
        """Observations of every point for the given replication indices (0-based), in that order."""
        want = [(p, r) for p in dict.fromkeys(points) for r in replications]
        todo: list[tuple[Point, int, str, Task]] = []
        for p, r in want:
            if (p, r) in self._memo:
                continue
            sc = self.scenario(p, r)
            key = PointCache.key(sc, self.seed(r), self.engine)
            hit = self.cache.get(key)
            if hit is not None:
                self._memo[(p, r)] = hit
                self.reused += 1
            else:
                todo.append((p, r, key, (sc, self.seed(r), r + 1, self.engine)))
        self.scheduled += len(todo)
        self._tick()

        def finished(i: int, obs: Observation) -> None:
            p, r, key, _ = todo[i]
            self.cache.put(key, obs)
            self._memo[(p, r)] = obs
            self.computed += 1
            self.done += 1
            self._tick()

        self.backend.map(observe, [t for *_, t in todo], finished)
        return {p: [self._memo[(p, r)] for r in replications] for p in dict.fromkeys(points)}

    def _tick(self) -> None:
        if self.progress:
            self.progress(self.done, self.scheduled)
