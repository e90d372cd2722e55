"""Workload parity for every shipped scenario: the load test sends each class the way the
simulator runs it (one chat completion for a one-LLM-stage class, else one agent command naming
the class), and the stack runs that class's own stages at that class's priority; and scaling is
one rule for the load test, the stack and the simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.plan import prepare_scenario
from loadtest.stack.__main__ import stack_scenario
from loadtest.stack.agent import Agent
from loadtest.stack.options import StackOptions
from loadtest.stack.state import Stack
from sim.rules.scaling import scale_scenario
from sim.scenario import load_scenario
from sim.shipped import examples, scenarios_dir

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [scenarios_dir() / p for p in examples()]
NO_ENGINES = "services.llm.backend={type: openai, base_url: 'http://127.0.0.1:9/v1'}"  # no torch engines to build


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_the_stack_runs_every_class_of_every_shipped_scenario(path: Path, tmp_path: Path) -> None:
    sc = load_scenario(path)
    sets = [NO_ENGINES] if sc.services.llm is not None else []
    served = load_scenario(path, sets)
    stack = Stack(served, StackOptions(db_path=str(tmp_path / "o.db"), admin_token="x"))
    agent = Agent(stack)
    for name, cls in sc.workload.classes.items():
        assert agent.classes[agent.class_of(name)].stages == cls.stages, name
        assert stack.gateway.priority(name) == cls.priority, name
    assert set(agent.classes) == set(sc.workload.classes)


def test_the_load_test_names_each_class_and_uses_its_http_shape() -> None:
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("workload_driver.py")), *map(str, SHIPPED)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    rows: list[tuple[Any, ...]] = [eval(line) for line in out.stdout.splitlines() if line]  # noqa: S307
    assert len(rows) == sum(len(load_scenario(p).workload.classes) for p in SHIPPED)
    for scenario, name, path, named, kinds, places_order in rows:
        one_llm = kinds == ("llm",) and not places_order  # one gateway admission, one LLM call
        assert path == ("/v1/chat/completions" if one_llm else "/v1/agent/commands"), (scenario, name)
        assert named == name, (scenario, name)  # the class rides along: header (chat) or body (agent)


def test_scaling_is_one_rule_for_the_load_test_the_stack_and_the_simulator() -> None:
    path = ROOT / "scenarios" / "feb8_outage.yaml"
    base = load_scenario(path)
    for f in (0.5, 4.0, 16.0):
        _, load, _ = prepare_scenario(path, f, None)
        assert load.services == stack_scenario(str(path), [], f).services == scale_scenario(base, f).services
        assert load.base_rate_per_s == pytest.approx(f * base.base_rate_per_s)
