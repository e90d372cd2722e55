"""Running a scenario: one replication, or N independent ones in parallel processes.

A replications folder holds `rep-001/`, `rep-002/`, ... (each a run folder; seed = base seed
+ i - 1, so two scenario variants run with the same seeds share random numbers) and
`replications.json` with KPIs and 95% confidence intervals (`sim.stats`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sim.engines import simulate
from sim.parallel import run_tasks
from sim.results import Results, strict_json
from sim.scenario import Scenario


def run_single(sc: Scenario, folder: Path, progress: Callable[[float], None] | None = None,
               engine: str = "des", fleet_dt: float | None = None, fleet_max_dt: float | None = None) -> Results:
    if engine == "des":
        from sim.des import simulate as des

        results = des(sc, progress=progress)
    else:
        results = simulate(sc, engine=engine, fleet_dt=fleet_dt, fleet_max_dt=fleet_max_dt)
    results.write(folder)
    return results


def _one(task: tuple[Scenario, int, int, Path, str]) -> Path:
    sc, seed, rep, folder, engine = task
    out = folder / f"rep-{rep:03d}"
    simulate(sc, engine=engine, seed=seed, replication=rep).write(out)
    return out


def run_replications(sc: Scenario, folder: Path, n: int, jobs: int = 2,
                     progress: Callable[[float], None] | None = None, engine: str = "des",
                     fleet_dt: float | None = None, fleet_max_dt: float | None = None) -> Results:
    """Run n replications (seeds run.seed .. run.seed + n - 1) across `jobs` processes (the fleet
    engine runs them as one batch). Returns the first replication's results; writes replications.json."""
    from sim.engines import choose
    from sim.stats import replication_summary

    folder.mkdir(parents=True, exist_ok=True)
    if choose(sc, engine) == "fleet":
        from sim.fleet import simulate_batch

        dirs = []
        for i, res in enumerate(simulate_batch(sc, replications=n, dt=fleet_dt, max_dt=fleet_max_dt)):
            res.meta["replication"] = i + 1
            dirs.append(res.write(folder / f"rep-{i + 1:03d}"))
        if progress:
            progress(1.0)
    else:
        dirs = run_tasks(_one, [(sc, sc.run.seed + i, i + 1, folder, engine) for i in range(n)], jobs, progress)
    runs = [Results.read(d) for d in dirs]
    (folder / "replications.json").write_text(strict_json(replication_summary(runs)) + "\n")
    return runs[0]
