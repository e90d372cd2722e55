"""The buy funnel (`sim.funnel`): parity — one launch user's session with the same scripted draws,
through the simulator (client, stack model, launch users) and through the load test against
the reference stack (told each command's outcome), gives the same classes by card state, the
same outcomes, the same stages run (tool and LLM calls), the same payments and cards left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadtest.credentials import Credentials
from loadtest.procs import StackProcess
from sim.funnel import OUTCOMES, Funnel
from sim.scenario import parse_scenario

HERE = Path(__file__).resolve().parent


def test_each_outcome_runs_the_stages_the_rule_gives() -> None:
    from funnel_driver import SCENARIO

    f = Funnel(parse_scenario(SCENARIO).workload)
    # help_me_buy: llm, catalog, order, payment, llm
    assert {o: f.stages_for("help_me_buy", o) for o in OUTCOMES} == {
        "ordered": (5, 3), "changed_mind": (2, -1), "no_card": (2, -1), "out_of_stock": (3, -1),
        "payment_error": (4, -1)}


@pytest.mark.slow
def test_simulator_and_load_test_run_the_funnel_alike(tmp_path: Path) -> None:
    from funnel_driver import SCENARIO, run_des

    des = run_des()
    scenario_file = tmp_path / "funnel.yaml"
    scenario_file.write_text(yaml.safe_dump(parse_scenario(SCENARIO).model_dump(mode="json")))
    creds = Credentials("funnel-test-admin", "funnel-test-users")
    with StackProcess(scenario_file, tmp_path, creds, options={"torch_threads": 1}) as stack:
        out = subprocess.run([sys.executable, str(HERE / "funnel_driver.py"), stack.url, str(tmp_path / "orders.db")],
                             capture_output=True, text=True, timeout=180, cwd=HERE.parents[1],
                             env={**os.environ, **creds.env()})  # the load test logs in with the user secret
    assert out.returncode == 0, out.stderr[-3000:]
    measured = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own driver's repr of a dict
    assert des == measured
    outcomes = {tuple(k.split(":")[2:]) for k in des["funnel"] if k.startswith("buy_outcome:")}
    assert len(outcomes) == 7, outcomes  # every outcome, with and without a card, was exercised
    assert des["cards"] == (0, 2) and des["payments"] == des["funnel"]["orders"] == 3
