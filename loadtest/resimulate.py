"""`surge validate-stack --resimulate FOLDER`: predict every measured run of a validation again
with another model (or a deliberately wrong one) without measuring again: the runs' scenarios
with `--set`s applied, the simulated capacity searched again, the table and report rewritten."""

from __future__ import annotations

from pathlib import Path

from loadtest import accuracy as A
from loadtest.validate import ValidateOptions, Validation, finish, offered_per_unit, search_capacity
from sim.results import Results


def resimulate(folder: Path, sets: list[str], out: Path) -> Validation:
    """Predict every measured run of a validation folder again, with `sets` applied to each run's
    scenario (another model, or a deliberately wrong one), and write its table to `out`."""
    import json

    from loadtest.recovery import recovery
    from sim.des import simulate
    from sim.scenario import load_scenario

    src = folder.resolve()
    data = json.loads((src / "validation.json").read_text())
    levels = []
    for row in data["levels"]:
        lv = A.Level(row["label"], row["kind"], row["fraction"], row["multiplier"])
        for run in row["runs"]:
            lv.measured.append(Results.read(src / run / "measured"))
            res = simulate(load_scenario(src / run / "scenario.yaml", sets))
            res.meta["recovery"] = recovery(res)
            lv.simulated.append(res)
        levels.append(lv)
    opt = ValidateOptions(Path(data["scenario"]), **{k: v for k, v in data["options"].items()
                                                     if k in ("probe_duration_s", "warmup_s", "capacity_tol")})
    sim_cap, _ = search_capacity(opt, src / "scenario.yaml", int(data["seed"]), None, sets)
    old = data["table"]["capacity"]
    capacity = A.capacity_cell(sim_cap.capacity, old["meas_multiplier"], offered_per_unit(src / "scenario.yaml"),
                               A.Targets())
    capacity["measured_search"] = old.get("measured_search", False)
    data |= {"resimulated_from": str(src), "resimulated_with": sets,
             "capacity_search": {**data["capacity_search"], "sim": sim_cap.to_json()}}
    out.mkdir(parents=True, exist_ok=True)
    return finish(levels, capacity, data, out.resolve())

