"""A real trace replayed by the load test and by the simulator (issue 10, item 3): both see the
same arrival instants and the same token lengths, read once (`sim.arrivals.load_trace`), scaled
by `token_scale`; `surge validate-stack --trace` puts the trace's demand on the calibrated system.

The expected lengths and instants are read here straight from the CSV (the Azure LLM inference
trace 2023, conversation; scenarios/data/README.md), not through the code under test."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import yaml
from loadtest_helpers import ADMIN, STACK_OPTIONS, USER_SECRET

from loadtest.schedule import schedule_of
from loadtest.validate import offered_per_unit
from loadtest.validate_trace import trace_multiplier, trace_scenario
from sim.arrivals import arrival_blocks
from sim.errors import SurgeError
from sim.results import Results
from sim.scenario import load_scenario
from sim.scenario.services import LocalBackend
from sim.streams import Streams

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "scenarios" / "validate_trace.yaml"
SYSTEM = ROOT / "scenarios" / "validate_stack.yaml"
CSV = ROOT / "scenarios" / "data" / "azure_llm_2023_conv_18min.csv"
TOKEN_SCALE = 16


def _rows(n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds since the first row, prompt tokens / 16, output tokens / 16), rounded, at least 1."""
    with CSV.open() as f:
        rows = list(csv.DictReader(f))[:n]
    t = [dt.datetime.fromisoformat(r["TIMESTAMP"][:26]) for r in rows]  # µs: the 7th digit is 100 ns
    times = np.array([(x - t[0]).total_seconds() for x in t])
    scaled = [np.maximum(1, np.round(np.array([float(r[c]) for r in rows]) / TOKEN_SCALE))
              for c in ("ContextTokens", "GeneratedTokens")]
    return times, scaled[0], scaled[1]


def _demand(tmp_path: Path, n_rows: int) -> Path:
    """The shipped trace scenario replaying only the trace's first `n_rows` rows."""
    (tmp_path / "data").mkdir(parents=True)
    lines = CSV.read_text().splitlines()[: n_rows + 1]
    (tmp_path / "data" / "first.csv").write_text("\n".join(lines) + "\n")
    data = yaml.safe_load(TRACE.read_text())
    data["arrivals"]["trace"]["file"] = "data/first.csv"
    (tmp_path / "demand.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "demand.yaml"


def _same_tokens_in_the_engine(r: Results, n: int, prompts: np.ndarray, outputs: np.ndarray) -> None:
    """The engine's counters: every prompt token prefilled, every output token generated, the
    first one (sampled by the prefill step) too, on both sides (`sim.rules.tokens`; the stack's
    series is vLLM's `generation_tokens_total`, scraped)."""
    assert r.series["llm_prefill_tokens"].sum() == prompts.sum(), r.meta["source"]
    assert r.series["llm_decode_tokens"].sum() == outputs.sum(), r.meta["source"]


def test_the_shipped_trace_is_the_csv_scaled_and_fits_the_stacks_model() -> None:
    sc = load_scenario(TRACE, ["run.duration_s=600", "arrivals.scale=2"])
    times, prompts, outputs = _rows()
    sched = schedule_of(sc)  # the load test's starts
    sim_times = np.concatenate(list(arrival_blocks(sc, Streams(sc.run.seed)("arrivals"), Path(sc.base_dir))))
    assert len(sched) == len(times) == 5291 and np.array_equal(sched.times_s, sim_times)
    assert np.allclose(sched.times_s, times / 2, atol=1e-6)  # scale 2: the same shape in half the time
    assert sched.prompt_tokens is not None and sched.output_tokens is not None
    assert np.array_equal(sched.prompt_tokens, prompts) and np.array_equal(sched.output_tokens, outputs)
    assert sc.services.llm is not None and isinstance(sc.services.llm.backend, LocalBackend)
    assert (prompts + outputs).max() <= sc.services.llm.backend.model.max_context  # nothing is clipped
    # its rate, as validate-stack sets a trace's load: rows over the span, at the file's scale
    assert offered_per_unit(TRACE) == pytest.approx((len(times) - 1) / times[-1])


def test_the_simulator_replays_the_traces_requests(tmp_path: Path) -> None:
    """Every row arrives once, its prompt is prefilled and its output decoded (light load: all complete)."""
    from sim.des import simulate

    n = 25
    times, prompts, outputs = _rows(n)
    sc = load_scenario(_demand(tmp_path, n), ["arrivals.scale=4", f"run.duration_s={times[-1] / 4 + 10:.1f}",
                                              "run.warmup_s=0", "run.interval_s=1", "services.auth=null"])
    r = simulate(sc)
    chat = r.summary["classes"]["chat"]
    assert chat["arrived"] == chat["completed"] == n
    _same_tokens_in_the_engine(r, n, prompts, outputs)
    arrived_at = np.repeat(np.arange(len(r.series["arrived:chat"])), r.series["arrived:chat"].astype(int))
    assert np.array_equal(arrived_at, np.floor(times / 4).astype(int))  # each in its interval (no login)


def test_the_trace_scenario_puts_its_demand_on_the_calibrated_system(tmp_path: Path) -> None:
    calibrated = tmp_path / "calibrated.yaml"
    data = yaml.safe_load(SYSTEM.read_text())
    data["services"]["llm"]["cost_model"]["base_s"] = 0.000777  # as a calibration would have fitted it
    data["services"]["host"] = {"cores": 1, "request_cpu_s": 0.0013}
    calibrated.write_text(yaml.safe_dump(data))
    sc = load_scenario(trace_scenario(TRACE, calibrated, tmp_path / "trace"))
    assert sc.arrivals.process == "trace" and list(sc.workload.classes) == ["chat"] and list(sc.slos) == ["chat"]
    assert sc.services.llm is not None and sc.services.llm.cost_model.base_s == 0.000777
    assert sc.services.host is not None and sc.services.host.request_cpu_s == 0.0013
    assert sc.faults == load_scenario(SYSTEM).faults and sc.services.tools  # the system's, as calibrated
    # 12 commands/s from a trace of 4.9 a second: x2.45; its 18 minutes cover a 60-s run, not a 600-s one
    per_s = offered_per_unit(TRACE)
    x = trace_multiplier(tmp_path / "trace" / "scenario.yaml", 12.0, 60.0)
    assert x == pytest.approx(12.0 / per_s)
    with pytest.raises(SurgeError, match="covers"):
        trace_multiplier(tmp_path / "trace" / "scenario.yaml", 12.0, 600.0)
    with pytest.raises(SurgeError, match="process: trace"):
        trace_scenario(SYSTEM, calibrated, tmp_path / "no")
    agent = yaml.safe_load(TRACE.read_text())  # agent classes take a row's lengths too, as in the simulator
    agent["workload"] = yaml.safe_load(SYSTEM.read_text())["workload"]
    (tmp_path / "trace" / "agent.yaml").write_text(yaml.safe_dump(agent))
    assert "help_me_buy" in load_scenario(trace_scenario(tmp_path / "trace" / "agent.yaml", calibrated,
                                                         tmp_path / "agent")).workload.classes


@pytest.mark.slow
def test_the_load_test_and_the_simulator_replay_the_same_requests(tmp_path: Path) -> None:
    """The first 30 rows against the real stack and through the simulator, from one run folder:
    the same starts, the prompt lengths the stack was sent, the output lengths both sides got."""
    from loadtest.credentials import Credentials
    from loadtest.procs import StackProcess
    from loadtest.runner import Options, run_loadtest

    n = 30
    times, prompts, outputs = _rows(n)
    scen = trace_scenario(_demand(tmp_path / "demand", n), SYSTEM, tmp_path / "system")
    creds = Credentials(ADMIN, USER_SECRET)
    duration_s = float(np.ceil(times[-1] / 4)) + 8.0
    (tmp_path / "stack").mkdir()
    stack = StackProcess(scen, tmp_path / "stack", creds, options=STACK_OPTIONS).start()
    try:
        run = run_loadtest(Options(scen, duration_s=duration_s, out=tmp_path / "run", host=stack.url, faults=False,
                                   sets=["arrivals.scale=4", "run.warmup_s=0"], report=False, live=False,
                                   credentials=creds))
    finally:
        stack.stop()
    sched = schedule_of(load_scenario(tmp_path / "run" / "scenario.yaml"))
    assert np.allclose(sched.times_s, times / 4, atol=1e-6)
    meas, sim = Results.read(tmp_path / "run" / "measured"), run.simulated
    assert sim is not None
    tot = meas.meta["totals"]
    assert tot["dispatched"] == n and sim.summary["classes"]["chat"]["arrived"] == n
    for r in (meas, sim):  # light load: every request answered at its first attempt
        chat = r.summary["classes"]["chat"]
        assert chat["arrived"] == chat["completed"] == n and r.series["attempts:chat"].sum() == n, r.meta["source"]
        _same_tokens_in_the_engine(r, n, prompts, outputs)
    # what the client sent and got, and what the stack said it counted
    assert meas.series["tokens_out:chat"].sum() == outputs.sum()
    assert tot["prompt_tokens_asked"] == prompts.sum() == tot["prompt_tokens_reported"]


# an agent class of two LLM calls (no order: nothing but the LLM): the row's lengths go to the first
# call, the second is constant, so the engine's token counts are known exactly on both sides
AGENT = {"ask_twice": {"probability": 1.0, "priority": 1, "carry_context": False, "stages": [
    {"llm": {"prompt_tokens": {"type": "lognormal", "mean": 72, "cv": 0.9},
             "output_tokens": {"type": "lognormal", "mean": 16, "cv": 0.7}}},
    {"llm": {"prompt_tokens": {"type": "constant", "value": 7}, "output_tokens": {"type": "constant", "value": 3}}}]}}


@pytest.mark.slow
def test_an_agent_class_replays_a_row_in_its_first_call_on_both_sides(tmp_path: Path) -> None:
    """The load test sends a row's lengths with an agent command (`first_call`) and the stack's
    agent gives them to its first LLM call, as the simulator does (`sim.rules.calls.trace_lengths`):
    the same prompt and output tokens in the engine on both sides, every token counted."""
    from loadtest.credentials import Credentials
    from loadtest.procs import StackProcess
    from loadtest.runner import Options, run_loadtest

    n = 20
    times, prompts, outputs = _rows(n)
    demand = yaml.safe_load(_demand(tmp_path / "demand", n).read_text())
    demand["workload"] = {"classes": AGENT}
    demand["slos"] = {}
    (tmp_path / "demand" / "agent.yaml").write_text(yaml.safe_dump(demand))
    scen = trace_scenario(tmp_path / "demand" / "agent.yaml", SYSTEM, tmp_path / "system")
    creds = Credentials(ADMIN, USER_SECRET)
    (tmp_path / "stack").mkdir()
    stack = StackProcess(scen, tmp_path / "stack", creds, options=STACK_OPTIONS).start()
    try:
        run = run_loadtest(Options(scen, duration_s=float(np.ceil(times[-1] / 4)) + 8.0, out=tmp_path / "run",
                                   host=stack.url, faults=False, sets=["arrivals.scale=4", "run.warmup_s=0"],
                                   report=False, live=False, credentials=creds))
    finally:
        stack.stop()
    meas, sim = Results.read(tmp_path / "run" / "measured"), run.simulated
    assert sim is not None
    for r in (meas, sim):
        cls = r.summary["classes"]["ask_twice"]
        assert cls["arrived"] == cls["completed"] == n and r.series["attempts:ask_twice"].sum() == n, r.meta["source"]
        assert r.series["llm_prefill_tokens"].sum() == prompts.sum() + 7 * n, r.meta["source"]
        assert r.series["llm_decode_tokens"].sum() == outputs.sum() + 3 * n, r.meta["source"]
