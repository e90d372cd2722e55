"""What the stack's CPU did during one load run, against what the calibrated model says the same
work costs: the experiment behind the per-token gap of `surge validate-stack`.

Around a run, `snapshot` reads the stack's `/metrics` and its process's CPU clock
(`/proc/PID/stat`). `compare` takes the difference and evaluates the scenario's cost model
(`services.llm.cost_model`, fitted) on the steps the engines actually ran (their summed
features: steps, prefill tokens, decode sequences, context tokens: the model is linear, so the
sum of its predictions is its prediction of the sums) and `services.host` on the requests, LLM
calls, tokens and tool calls the stack counted. Both sides are CPU seconds, so the result does
not depend on how busy the machine was, only on what the stack's own work costs under
concurrency. It also gives the stack's own TPOT per request, where the engine sampled the
tokens and where the event loop took them, beside the client's (Locust's).
"""

from __future__ import annotations

from typing import Any

from loadtest.calibrate_host import process_cpu_s
from loadtest.safety import fetch
from loadtest.scrape import parse
from sim.costmodel import StepCost
from sim.scenario.services import FittedCost, Host, RooflineCost

_SUMS = ("surge_llm_step_cpu_seconds_total", "surge_llm_step_seconds_sum", "surge_llm_step_seconds_count",
         "surge_llm_batch_sequences_sum", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
         "surge_llm_step_decode_sequences_total", "surge_llm_step_context_tokens_total",
         "surge_http_requests_total", "surge_tool_calls_total", "vllm:time_to_first_token_seconds_count",
         "vllm:request_time_per_output_token_seconds_sum", "vllm:request_time_per_output_token_seconds_count",
         "surge_stream_time_per_output_token_seconds_sum", "surge_stream_time_per_output_token_seconds_count")


def snapshot(url: str, pid: int) -> dict[str, float]:
    """The stack's counters and its process's CPU seconds now ({} when /metrics does not answer)."""
    try:
        status, body, _ = fetch(url + "/metrics", 5.0)
    except OSError:
        return {}
    if status != 200:
        return {}
    total = parse(body.decode(errors="replace"))[0]
    return {**{k: total.get(k, 0.0) for k in _SUMS}, "process_cpu_s": process_cpu_s(pid)}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def compare(before: dict[str, float], after: dict[str, float], cost: FittedCost | RooflineCost | None,
            host: Host | None) -> dict[str, Any]:
    """Measured against modelled CPU over the run (seconds, and per step / per token)."""
    if not before or not after:
        return {}
    d = {k: after[k] - before[k] for k in after if k in before}
    steps, tokens = d["surge_llm_step_seconds_count"], d["vllm:generation_tokens_total"]
    out: dict[str, Any] = {"steps": steps, "tokens": tokens, "mean_batch": _ratio(d["surge_llm_batch_sequences_sum"], steps),
                           "step_cpu_s": d["surge_llm_step_cpu_seconds_total"],
                           "step_wall_s": d["surge_llm_step_seconds_sum"], "process_cpu_s": d["process_cpu_s"]}
    if isinstance(cost, FittedCost) and steps:  # linear: the mean step's time, times the steps
        out["step_cpu_model_s"] = steps * StepCost(cost).step_s(
            d["vllm:prompt_tokens_total"] / steps, d["surge_llm_step_decode_sequences_total"] / steps,  # type: ignore[arg-type]
            d["surge_llm_step_context_tokens_total"] / steps, 0.0)
    outside = d["process_cpu_s"] - d["surge_llm_step_cpu_seconds_total"]
    out["outside_cpu_s"] = outside
    if host is not None:
        out["outside_cpu_model_s"] = (host.request_cpu_s * d["surge_http_requests_total"]
                                      + host.llm_call_cpu_s * d["vllm:time_to_first_token_seconds_count"]
                                      + host.token_cpu_s * tokens + host.tool_call_cpu_s * d["surge_tool_calls_total"])
    out["requests"], out["llm_calls"] = d["surge_http_requests_total"], d["vllm:time_to_first_token_seconds_count"]
    out["tpot_engine_mean_s"] = _ratio(d["vllm:request_time_per_output_token_seconds_sum"],
                                       d["vllm:request_time_per_output_token_seconds_count"])
    out["tpot_loop_mean_s"] = _ratio(d["surge_stream_time_per_output_token_seconds_sum"],
                                     d["surge_stream_time_per_output_token_seconds_count"])
    return out


def describe(c: dict[str, Any]) -> str:
    """One line: step CPU and CPU outside the steps, measured against modelled, and the stack's TPOT."""
    if not c:
        return "stack CPU: no /metrics"
    parts = [f"{c['steps']:.0f} steps (batch {c['mean_batch'] or 0:.2f})"]
    if "step_cpu_model_s" in c:
        parts.append(f"step CPU {c['step_cpu_s']:.2f} s vs model {c['step_cpu_model_s']:.2f} s")
    if "outside_cpu_model_s" in c:
        parts.append(f"outside the steps {c['outside_cpu_s']:.2f} s vs model {c['outside_cpu_model_s']:.2f} s")
    for k in ("tpot_engine_mean_s", "tpot_loop_mean_s"):
        if c.get(k) is not None:
            parts.append(f"{k[5:-7]} TPOT {1e3 * c[k]:.2f} ms")
    return "stack CPU: " + ", ".join(parts)
