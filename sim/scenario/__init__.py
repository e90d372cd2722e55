"""Scenario files: schema, loading, overrides and errors."""

from sim.scenario.launch import Funnel, Launch
from sim.scenario.load import apply_override, json_schema, load_scenario, parse_scenario
from sim.scenario.schema import (
    SLO,
    Arrivals,
    Campaign,
    Clients,
    CommandClass,
    Cost,
    Fault,
    Population,
    Run,
    Scenario,
    Stage,
    Workload,
)
from sim.scenario.services import LLMFleet, Service, Services

__all__ = [
    "SLO", "Arrivals", "Campaign", "Clients", "CommandClass", "Cost", "Fault", "Funnel", "Launch", "LLMFleet",
    "Population", "Run",
    "Scenario", "Service", "Services", "Stage", "Workload",
    "apply_override", "json_schema", "load_scenario", "parse_scenario",
]
