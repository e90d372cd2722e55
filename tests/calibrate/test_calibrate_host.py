"""`services.host` calibration (`loadtest.calibrate_host`): the fit recovers known per-unit CPU
costs from the groups' figures, the groups follow the scenario, and the result is a valid
scenario block."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.calibrate_host import FIELDS, fit_host, groups_of, write_host
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
TRUE = {"request_cpu_s": 0.0012, "llm_call_cpu_s": 0.0008, "token_cpu_s": 0.00015, "tool_call_cpu_s": 0.0005}


def _row(name: str, llm_calls: int, tokens: int, tool_calls: int, noise: float = 0.0) -> dict[str, float | str]:
    per = (TRUE["request_cpu_s"] + TRUE["llm_call_cpu_s"] * llm_calls + TRUE["token_cpu_s"] * tokens
           + TRUE["tool_call_cpu_s"] * tool_calls)
    return {"group": name, "llm_calls": llm_calls, "tokens": tokens, "tool_calls": tool_calls,
            "outside_per_request_s": per * (1 + noise)}


def test_fit_recovers_the_per_unit_costs_that_made_the_figures() -> None:
    rows = [_row("login", 0, 0, 0), _row("chat-1", 1, 1, 0), _row("chat-8", 1, 8, 0), _row("chat-32", 1, 32, 0),
            _row("agent", 2, 24, 3)]
    coef, errs = fit_host(rows)
    assert list(coef) == list(FIELDS)
    for k in FIELDS:
        assert coef[k] == pytest.approx(TRUE[k], rel=1e-6), k
    assert max(abs(e) for e in errs) < 1e-6


def test_fit_is_non_negative_and_reports_each_groups_error() -> None:
    # logins dearer than a chat call's own share: the LLM call's cost would be negative, so it is 0
    rows = [_row("login", 0, 0, 0, noise=0.5), _row("chat-1", 1, 1, 0), _row("chat-8", 1, 8, 0),
            _row("chat-32", 1, 32, 0, noise=0.05), _row("agent", 2, 24, 3)]
    coef, errs = fit_host(rows)
    assert all(v >= 0 for v in coef.values())
    assert len(errs) == len(rows) and max(abs(e) for e in errs) > 0.01


def test_groups_follow_the_scenarios_order_placing_class(tmp_path: Path) -> None:
    sc = load_scenario(ROOT / "scenarios" / "validate_stack.yaml")
    groups, klass = groups_of(sc, 60)
    assert klass == "help_me_buy"
    agent = next(g for g in groups if g.name == "agent")
    # help_me_buy: two LLM stages of 12 output tokens each, three tool stages
    assert (agent.llm_calls, agent.tokens, agent.tool_calls) == (2, 24, 3)
    f = tmp_path / "scenario.yaml"
    f.write_text("# as run\n" + (ROOT / "scenarios" / "validate_stack.yaml").read_text())
    write_host(f, {"cores": 1.0, "llm_steps": True, **TRUE})
    host = load_scenario(f).services.host
    assert host is not None and host.cores == 1.0 and host.token_cpu_s == TRUE["token_cpu_s"]
    assert f.read_text().startswith("# as run\n")
