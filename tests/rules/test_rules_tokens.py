"""Parity of `sim.rules.tokens`: every sampled token is an output token, the first one too, in the
SimPy engine and the fleet engine (the stack: tests/stack/test_stack_engine.py and, scraped from
the real stack, tests/loadtest/test_loadtest_trace.py).

One light scenario (nothing fails, nothing queues for long), run by both engines: the output
tokens they count in `llm_decode_tokens` are the output tokens of the calls that completed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.engines import simulate
from sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "validate_stack.yaml"
SETS = ["run.duration_s=120", "run.warmup_s=0", "faults=[]", "services.host=null", "services.tools={}"]


def _completed_calls_tokens(r) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return r.series["llm_decode_tokens"].sum(), r.series["llm_prefill_tokens"].sum()


# regression (found 2 Dec): the fleet engine shed half of these chats and counted 43 output tokens per call, its
# finishing bins (B engine steps) far wider than 12-token outputs; now B <= shortest mean output / 8
@pytest.mark.parametrize("engine", ["des", "fleet"])
def test_each_call_counts_all_its_output_tokens(engine: str) -> None:
    sc = load_scenario(SCENARIO, [*SETS, "slos={}", "workload.classes={chat: {probability: 1, priority: 2, stages: "
                                  "[{llm: {prompt_tokens: {type: constant, value: 30}, "
                                  "output_tokens: {type: constant, value: 12}}}]}}"])
    r = simulate(sc, engine=engine)
    chat = r.summary["classes"]["chat"]
    assert chat["success_rate"] > 0.999 and chat["completed"] > 500
    decode, prefill = _completed_calls_tokens(r)
    calls = prefill / 30  # every call's prompt prefilled once (nothing is preempted at this load)
    assert calls == pytest.approx(chat["completed"], rel=0.02)
    assert decode == pytest.approx(12 * calls, rel=0.005)  # 12 per call, not 11: the first one counts, none twice
