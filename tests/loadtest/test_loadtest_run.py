"""Locust against the reference stack on loopback, a few seconds each: one local process, then a
master with two worker processes. Locust runs in subprocesses (its gevent patching stays there)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from loadtest_helpers import ADMIN, TINY, USER_SECRET

from loadtest.procs import StackProcess
from loadtest.runner import LoadRun, Options, run_loadtest
from loadtest.schedule import schedule_of
from sim.results import REASONS, Results
from sim.scenario import load_scenario

pytestmark = pytest.mark.slow
DURATION_S = 9.0
# the outage starts at 2 s for 1.5 s: the run sees the drop and, in the 5.5 s left (a loaded CI
# machine drains the backlog slowly), the recovery
FAULT = ["faults.0.at_s=2", "faults.0.duration_s=1.5"]
CHAT_ONLY = ["workload.classes={chat: {probability: 1.0, stages: [{llm: {prompt_tokens: {type: constant, value: 24}, "
             "output_tokens: {type: constant, value: 8}}}]}}", "slos={chat: {e2e_p99_s: 2.0}}"]


def _run(stack: StackProcess, out: Path, workers: int, monkeypatch: pytest.MonkeyPatch, **kw: object) -> LoadRun:
    monkeypatch.setenv("SURGE_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("SURGE_USER_SECRET", USER_SECRET)
    opt = Options(TINY, duration_s=DURATION_S, out=out, host=stack.url, workers=workers, sets=FAULT, **kw)  # type: ignore[arg-type]
    return run_loadtest(opt)


def _total(r: Results, prefix: str) -> float:
    return float(sum(v.sum() for k, v in r.series.items() if k.startswith(prefix)))


def _check_conservation(r: Results) -> None:
    """Every start is counted once: scheduled = dispatched + dropped; commands that arrived ended
    (completed or failed) or were still in flight when the run ended."""
    tot = r.meta["totals"]
    sc = load_scenario(TINY, FAULT + [f"run.duration_s={DURATION_S}"])
    assert _total(r, "scheduled") == len(schedule_of(sc)) == tot["dispatched"] + tot["dropped"]
    arrived = _total(r, "arrived:")
    ended = _total(r, "completed:") + sum(_total(r, f"failed:{c}:{x}") for c in r.meta["classes"] for x in REASONS)
    assert arrived == ended + tot["in_flight_at_end"]
    assert r.series["in_flight"][-1] == tot["in_flight_at_end"]
    for c in r.meta["classes"]:  # one e2e sample per success, merged across processes
        assert r.histograms[f"e2e:{c}"][:, 2].sum() == r.series[f"completed:{c}"].sum()
        assert r.series[f"completed:{c}"].sum() <= r.series[f"admitted:{c}"].sum() <= r.series[f"attempts:{c}"].sum()
    assert _total(r, "arrived:") >= tot["dispatched"]  # a session is at least one command


def test_local_runner_measures_ttft_faults_and_recovery(stack: StackProcess, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "local"
    run = _run(stack, out, 0, monkeypatch)
    r = Results.read(out / "measured")
    if not r.meta["recovery"][0]["recovered"]:  # a busy shared machine can stall the drain: one more try
        out = tmp_path / "again"
        run = _run(stack, out, 0, monkeypatch)
        r = Results.read(out / "measured")
    assert r.meta["source"] == "loadtest" and r.meta["worker_finals"] == [0]
    # the HTTP side per endpoint (Locust's stats), and the live snapshot the display showed
    http = r.meta["http"]["endpoints"]
    assert http["POST chat"]["requests"] > 0 and http["POST agent"]["requests"] > 0 and "POST login" in http
    live = json.loads((out / "live.json").read_text())
    assert live["commands"]["chat"]["completed"] > 0 and live["elapsed_s"] > 0
    # the server side, scraped from /metrics under the simulator's names
    assert {"queue:llm", "capacity:llm", "llm_batch", "llm_decode_tokens", "queue:catalog"} <= set(r.meta["server_series"])
    assert r.series["llm_decode_tokens"].sum() > 0 and r.series["capacity:llm"].max() == 1
    # the measured report's load-test section: endpoints, tokens, the generator's own health
    import reports

    md = Path(reports.render_report(out / "measured", tmp_path / "rep")).with_suffix(".md").read_text()
    assert "## Load test" in md and "| POST chat |" in md and "ITL p50 / p99" in md and "dispatch lateness" in md
    _check_conservation(r)
    ttft = r.histograms["ttft:chat"]
    assert ttft[:, 2].sum() >= r.series["completed:chat"].sum() > 0  # one TTFT per successful chat call
    assert 0 < r.summary["classes"]["chat"]["ttft"]["p50"] < 1.0
    assert r.histograms["tpot:chat"][:, 2].sum() > 0 and r.histograms["itl:chat"][:, 2].sum() > 0
    assert r.summary["orders"] > 0 and r.meta["totals"].get("orders_check_failed", 0) == 0
    # the agent's inner LLM calls, timed by the stack: two per successful help_me_buy, at least
    buy = r.series["completed:help_me_buy"].sum()
    assert r.histograms["ttft:help_me_buy"][:, 2].sum() >= 2 * buy > 0
    assert r.histograms["tpot:help_me_buy"][:, 2].sum() >= 2 * buy
    assert r.meta["slos_not_measured"] == [] and r.summary["classes"]["help_me_buy"]["ttft"]["p50"] > 0
    # the fault: applied on time, visible as failures, and the recovery measured
    assert r.meta["faults_applied"] == 2
    starts = [e for e in r.events if e["kind"] == "fault_start"]
    assert [e["target"] for e in starts] == ["llm", "auth"]
    assert all(e["status"] == 201 and abs(e["lag_s"]) < 0.5 for e in starts)
    assert _total(r, "attempt_failed:") > 0
    rec = r.meta["recovery"][0]
    assert rec["end_s"] == pytest.approx(3.5) and rec["recovered"] and rec["recovery_s"] <= 4.0
    # the invalidated sessions: 401, then a new login and a retry
    assert _total(r, "attempt_failed:auth") > 0
    assert _total(r, "logins") > r.meta["totals"]["dispatched"]
    # the same scenario simulated, and the overlay report with the differences
    assert run.simulated is not None and run.simulated.meta["source"] == "des"
    assert (out / "report" / "compare.html").is_file()
    diff = json.loads((out / "differences.json").read_text())
    assert len(diff["classes"]["chat"]["intervals"]) == r.meta["n_intervals"]
    assert diff["recovery"][0]["recovered_meas"] is True


def test_two_workers_merge_into_one_result(stack: StackProcess, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _run(stack, tmp_path / "two", 2, monkeypatch, simulate=False, report=False)
    r = Results.read(tmp_path / "two" / "measured")
    assert r.meta["workers"] == 2 and r.meta["worker_finals"] == [0, 1]
    _check_conservation(r)
    assert r.meta["faults_applied"] == 2 and len(r.meta["recovery"]) == 2
    lateness = r.histograms["lateness:dispatch"]
    assert lateness[:, 2].sum() == r.meta["totals"]["dispatched"]
    assert np.all(r.series["in_flight"] >= 0)


def test_closed_model_users_loop_over_commands(stack: StackProcess, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGE_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("SURGE_USER_SECRET", USER_SECRET)
    opt = Options(TINY, duration_s=4.0, out=tmp_path / "closed", host=stack.url, mode="closed", users=3, spawn_rate=3,
                  faults=False, simulate=False, report=False)
    run_loadtest(opt)
    r = Results.read(tmp_path / "closed" / "measured")
    tot = r.meta["totals"]
    assert r.meta["mode"] == "closed" and _total(r, "scheduled") == 0 and r.meta["faults_applied"] == 0
    arrived, completed = _total(r, "arrived:"), _total(r, "completed:")
    assert completed > 10 and arrived - completed - _total(r, "failed:") == tot["in_flight_at_end"] <= 3
    assert r.histograms["ttft:chat"][:, 2].sum() > 0 and r.summary["orders"] > 0


def test_chat_runs_against_any_openai_compatible_server(tmp_path: Path) -> None:
    """No login endpoint (sessions are skipped), the model named by /v1/models, TTFT and TPOT."""
    from loadtest.procs import free_port

    port = free_port()
    stub = subprocess.Popen([sys.executable, str(Path(__file__).with_name("openai_stub.py")), str(port)])
    try:
        time.sleep(0.5)
        opt = Options(TINY, duration_s=3.0, out=tmp_path / "stub", host=f"http://127.0.0.1:{port}", faults=False,
                      simulate=False, report=False, sets=CHAT_ONLY)
        run_loadtest(opt)
    finally:
        stub.terminate()
        stub.wait(10)
    r = Results.read(tmp_path / "stub" / "measured")
    assert r.meta["model"] == "stub-model" and _total(r, "logins") == 0
    chat = r.summary["classes"]["chat"]
    assert chat["completed"] > 5 and chat["success_rate"] == 1.0
    assert 0 < chat["ttft"]["p50"] < 0.5 and 0.001 < chat["tpot"]["p50"] < 0.1
