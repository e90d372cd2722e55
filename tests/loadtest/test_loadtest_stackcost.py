"""`loadtest.stackcost`: the stack's CPU over a run against the calibrated model, worked by hand."""

from __future__ import annotations

import pytest

from loadtest.stackcost import compare
from sim.scenario.services import FittedCost, Host


def _snap(scale: float, cpu: float) -> dict[str, float]:
    keys = {"surge_llm_step_cpu_seconds_total": 2.0, "surge_llm_step_seconds_sum": 5.0,
            "surge_llm_step_seconds_count": 1000, "surge_llm_batch_sequences_sum": 4000,
            "vllm:prompt_tokens_total": 20_000, "vllm:generation_tokens_total": 3900,
            "surge_llm_step_decode_sequences_total": 3800, "surge_llm_step_context_tokens_total": 400_000,
            "surge_http_requests_total": 300, "surge_tool_calls_total": 50, "vllm:time_to_first_token_seconds_count": 200,
            "vllm:request_time_per_output_token_seconds_sum": 0.6, "vllm:request_time_per_output_token_seconds_count": 200,
            "surge_stream_time_per_output_token_seconds_sum": 0.62,
            "surge_stream_time_per_output_token_seconds_count": 200}
    return {**{k: v * scale for k, v in keys.items()}, "process_cpu_s": cpu}


def test_the_model_is_evaluated_on_the_steps_and_requests_the_stack_counted() -> None:
    cost = FittedCost(base_s=1e-3, per_prefill_token_s=1e-5, per_decode_seq_s=1e-4, per_context_token_s=1e-6)
    host = Host(request_cpu_s=1e-3, llm_call_cpu_s=2e-3, token_cpu_s=1e-4, tool_call_cpu_s=5e-3)
    c = compare(_snap(1.0, 10.0), _snap(2.0, 14.0), cost, host)  # the run: the difference, once each
    assert c["steps"] == 1000 and c["mean_batch"] == 4.0 and c["step_cpu_s"] == 2.0
    # 1000 x 1 ms + 20,000 x 10 µs + 3,800 x 100 µs + 400,000 x 1 µs = 1 + 0.2 + 0.38 + 0.4 s
    assert c["step_cpu_model_s"] == pytest.approx(1.98)
    assert c["outside_cpu_s"] == pytest.approx(14.0 - 10.0 - 2.0)
    # 300 x 1 ms + 200 x 2 ms + 3,900 x 0.1 ms + 50 x 5 ms = 0.3 + 0.4 + 0.39 + 0.25 s
    assert c["outside_cpu_model_s"] == pytest.approx(1.34)
    assert c["tpot_engine_mean_s"] == pytest.approx(0.003) and c["tpot_loop_mean_s"] == pytest.approx(0.0031)
    assert compare({}, _snap(1.0, 1.0), cost, host) == {}  # no /metrics: nothing to compare
