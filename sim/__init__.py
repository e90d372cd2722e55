"""surge: simulation and load testing for AI agent stacks under campaign-scale load.

The public API is small: load a scenario, run an engine, read or write results.
Heavy parts (plots, HTTP, Locust) live outside `sim` and are never imported from here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from sim.errors import ResultsError, ScenarioError, SimulationError, SurgeError
from sim.scenario import Scenario, load_scenario

__all__ = [
    "ResultsError",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "SurgeError",
    "__version__",
    "load_scenario",
]
