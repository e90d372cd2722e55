"""The real fleet: the campaign scenarios at full scale (scale 1), built from the shipped cells.

- `feb8_full()`: `feb8_outage.yaml` with the population and every capacity scaled by
  1 / population.scale (`sim.rules.scaling.scale_scenario`): 70.8 M users against 6,667 LLM
  replicas, 160,008 gateway slots, and so on.
- `campaign_full()`: `spring_festival.yaml` (the six campaign days and the day before, calibrated
  to the published DAU and commands) at scale 1, served by the Feb 8 fleet and clients (the
  spring_festival cell is over-provisioned on purpose: it measures demand, not capacity), so the
  question is whether the fleet that went down on Feb 8 would hold on the other days.
"""

from __future__ import annotations

from pathlib import Path

from sim.rules.scaling import scale_factor, scale_scenario
from sim.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def feb8_full(extra: list[str] | None = None) -> Scenario:
    cell = load_scenario(SCENARIOS / "feb8_outage.yaml", extra or [])
    return scale_scenario(cell, fleet_scale(cell))


def fleet_scale(cell: Scenario) -> float:
    """The factor from a cell to the full population (`surge run --scale full`)."""
    return scale_factor(cell, "full")


def campaign_full(extra: list[str] | None = None) -> Scenario:
    spring = load_scenario(SCENARIOS / "spring_festival.yaml")
    fleet = feb8_full()
    data = spring.model_dump(mode="json", exclude_unset=True)
    data["population"]["scale"] = 1.0
    data["services"] = fleet.model_dump(mode="json", exclude_unset=True)["services"]
    data["clients"] = fleet.model_dump(mode="json", exclude_unset=True)["clients"]
    data["slos"] = fleet.model_dump(mode="json", exclude_unset=True)["slos"]
    data["name"] = "spring_festival_full"
    data["run"]["interval_s"] = 600
    sc = parse_scenario(data, file="spring_festival x full fleet", base_dir=SCENARIOS)
    if extra:
        from sim.scenario import apply_override

        d2 = sc.model_dump(mode="json", exclude_unset=True)
        for e in extra:
            apply_override(d2, e)
        sc = parse_scenario(d2, file="spring_festival x full fleet", base_dir=SCENARIOS)
    return sc
