"""The load test's pure parts: outcomes, safety, scaling, schedule, merging, recovery, CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from loadtest_helpers import TINY

from loadtest import policy as P
from loadtest.plan import prepare_scenario
from loadtest.recovery import recovery
from loadtest.safety import LoadTestError, check_host
from loadtest.schedule import schedule_of
from loadtest.tally import Collector, Tally
from sim.arrivals import arrival_blocks, proactive_times
from sim.results import LogHistogram, Recorder, Results
from sim.results.recovery import time_to_recover_s
from sim.rules.scaling import scale_scenario
from sim.scenario import load_scenario
from sim.streams import Streams

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("status", "code", "want"), [
    (200, None, P.OK), (429, "rate_limit_exceeded", P.REJECTED), (503, "overloaded", P.SHED),
    (503, "catalog_error", P.ERROR), (504, "deadline_exceeded", P.SHED), (409, "idempotency_key_in_use", P.SHED),
    (401, "invalid_token", P.AUTH), (500, "internal_error", P.ERROR), (400, "invalid_value", P.ERROR),
    (409, "inventory_conflict", P.CONFLICT), (409, "hold_expired", P.CONFLICT), (409, "sold_out", P.SOLD_OUT),
])
def test_answers_map_to_the_simulators_outcomes(status: int, code: str | None, want: str) -> None:
    assert P.classify(status, code) == want


@pytest.mark.parametrize(("status", "code", "want"), [
    (200, None, True), (500, "internal_error", True), (503, "catalog_outage", True), (503, "overloaded", False),
    (504, "deadline_exceeded", False), (429, "rate_limit_exceeded", False), (401, None, False), (409, None, False),
    (409, "sold_out", True), (409, "inventory_conflict", True),
])
def test_admission_is_read_from_the_answer(status: int, code: str | None, want: bool) -> None:
    assert P.admitted(status, code) is want


def test_backoff_is_capped_and_jittered() -> None:
    spec = load_scenario(TINY).clients
    pol = P.RetryPolicy(spec, lambda: 1.0, lambda: 0.0)
    assert [pol.backoff_s(a) for a in range(4)] == [0.05, 0.1, 0.2, 0.2]  # base 0.05, x2, cap 0.2, full jitter u=1
    assert P.RetryPolicy(spec, lambda: 0.0, lambda: 0.0).backoff_s(3) == 0.0


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:8000/", "https://127.0.0.2"])
def test_loopback_hosts_are_allowed(url: str) -> None:
    assert check_host(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://0.0.0.0:80"])
def test_remote_hosts_are_refused_without_the_flag(url: str) -> None:
    with pytest.raises(LoadTestError, match="--allow-remote"):
        check_host(url)
    assert check_host(url, allow_remote=True)


def test_a_bad_url_is_refused() -> None:
    with pytest.raises(LoadTestError, match="http"):
        check_host("127.0.0.1:8000")


def test_the_load_test_scales_by_the_shared_rule() -> None:
    """The scaled file the load test (and the stack it starts) reads is `sim.rules.scaling`'s."""
    sets = ["services.gateway.concurrency=3", "services.gateway.queue_limit=5",
            "services.gateway.rate_limit.global_per_s=7"]
    _, scaled, _ = prepare_scenario(TINY, 2.5, None, sets)
    base = load_scenario(TINY, sets)
    ruled = scale_scenario(base, 2.5)
    assert scaled.services == ruled.services and scaled.arrivals == ruled.arrivals
    assert scaled.services.gateway.concurrency == 8 and scaled.services.llm.replicas == 3
    assert scaled.base_rate_per_s == pytest.approx(2.5 * base.base_rate_per_s)


def test_duration_cuts_faults_and_warmup() -> None:
    _, sc, notes = prepare_scenario(TINY, 1.0, 2.0, ["run.warmup_s=3"])
    assert sc.run.duration_s == 2.0 and sc.run.warmup_s == 0 and sc.faults == ()
    assert len(notes) == 2


def test_the_schedule_is_the_simulators_arrivals_split_exactly_across_workers() -> None:
    sc = load_scenario(TINY, ["run.duration_s=60"])
    sim_times = np.concatenate(list(arrival_blocks(sc, Streams(sc.run.seed)("arrivals"), Path(sc.base_dir))))
    sched = schedule_of(sc)
    assert np.array_equal(sched.times_s, sim_times)
    parts = [sched.share(k, 3).times_s for k in range(3)]
    assert sum(len(p) for p in parts) == len(sched)
    assert np.array_equal(np.sort(np.concatenate(parts)), sched.times_s)


def test_scheduled_proactive_tasks_join_the_schedule_at_the_simulators_instants() -> None:
    sc = load_scenario(ROOT / "scenarios" / "premiere_onsale.yaml")
    sched = schedule_of(sc)
    tasks = proactive_times(sc, Streams(sc.run.seed)("proactive.schedule"))
    picked = np.array([sched.task(k) == "buy_tickets" for k in range(len(sched))])
    assert np.array_equal(sched.times_s[picked], tasks.times_s) and (np.diff(sched.times_s) >= 0).all()
    sessions = np.concatenate(list(arrival_blocks(sc, Streams(sc.run.seed)("arrivals"), Path(sc.base_dir))))
    assert np.array_equal(sched.times_s[~picked], sessions)
    parts = [sched.share(k, 2) for k in range(2)]
    assert sum(sum(p.task(i) != "" for i in range(len(p))) for p in parts) == len(tasks)


def test_worker_deltas_merge_exactly() -> None:
    """Two workers' deltas (drained several times) add up to what one process would have counted."""
    rng = np.random.default_rng(1)
    xs = rng.lognormal(-2, 1, 5000)
    ts = rng.uniform(0, 10, 5000)
    one, workers = Tally(10, 1), [Tally(10, 1), Tally(10, 1)]
    col = Collector(10, 1, ["chat"])
    for k, (t, x) in enumerate(zip(ts, xs, strict=True)):
        for tl in (one, workers[k % 2]):
            tl.observe("e2e:chat", t, x)
            tl.count("completed:chat", t)
            tl.count("arrived:chat", t)
        if k % 997 == 0:
            col.merge(workers[k % 2].drain())
    for w in workers:
        col.merge(w.drain())
    ref = Collector(10, 1, ["chat"])
    ref.merge(one.drain())
    assert col.buckets == ref.buckets
    res = col.results({"slos": {}})
    h = LogHistogram.from_arrays(res.histograms["e2e:chat"][:, 1], res.histograms["e2e:chat"][:, 2])
    assert h.n == 5000 and res.series["completed:chat"].sum() == 5000
    for q in (0.5, 0.99):
        assert abs(h.quantile(q) / np.quantile(xs, q) - 1) < 0.011  # exact to 1% (one bucket)
    assert np.all(res.series["in_flight"] == 0)


def test_a_frozen_tally_counts_nothing_more() -> None:
    t = Tally(5, 1)
    t.count("x", 1)
    assert t.freeze()["series"] == [["x", 1, 1]]
    t.count("x", 2)
    t.observe("e2e:a", 2, 0.1)
    assert t.drain()["series"] == [] and t.drain()["hists"] == []


def _results(good_frac: list[float], fault_end_s: float) -> Results:
    """100 commands offered per 1 s interval, `good_frac` of them good (within the e2e SLO)."""
    n = len(good_frac)
    rec = Recorder(n, 1, ["a"])
    for i, g in enumerate(good_frac):
        rec.series("arrived:a")[i] = 100
        rec.series("completed:a")[i] = rec.series("good:a")[i] = 100 * g
        rec.series("failed:a:error")[i] = 100 * (1 - g)
    rec.event(fault_end_s - 1, "fault_start", "llm", fault_kind="outage")
    rec.event(fault_end_s, "fault_end", "llm", fault_kind="outage")
    return Results.from_recorder(rec, {"slos": {"a": {"success_rate": 0.9, "e2e_p99_s": 1.0}}})


def test_recovery_is_the_time_until_back_for_good() -> None:
    # down in (2, 4], half good in (4, 5], back at >= 90% from the window ending at 6 s
    r = _results([1, 1, 0, 0.3, 0.6, 0.95, 1, 1], fault_end_s=3.0)
    (row,) = recovery(r)
    assert row["recovered"] and row["recovery_s"] == pytest.approx(3.0)
    assert row["recovery_s"] == time_to_recover_s(r, 3.0)  # the one definition the analyses use


def test_a_fault_that_never_recovers_is_reported_as_such() -> None:
    r = _results([1, 1, 0, 0.5, 0.95, 0.3, 0.3, 0.3], fault_end_s=3.0)
    (row,) = recovery(r)
    assert not row["recovered"] and row["recovery_s"] is None


def test_the_surge_command_does_not_import_locust_or_gevent() -> None:
    code = ("import sys, sim.cli; sim.cli.app; "
            "bad = [m for m in ('locust', 'gevent', 'loadtest.locustrun') if m in sys.modules]; "
            "assert not bad, bad; assert 'loadtest' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_command_refuses_a_remote_host_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", "import sim.cli; sim.cli.main()", "loadtest", str(TINY),
                          "--host", "http://192.0.2.1:8000", "--duration", "1", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("LoadTestError:") and "--allow-remote" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_slo_breach_exits_99(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import loadtest.runner
    from sim.cli import app

    rec = Recorder(2, 1, ["a"])
    rec.series("completed:a")[0] = 1
    rec.series("failed:a:error")[0] = 1
    meas = Results.from_recorder(rec, {"slos": {"a": {"success_rate": 0.99}}})
    run = loadtest.runner.LoadRun(tmp_path, meas)
    monkeypatch.setattr(loadtest.runner, "run_loadtest", lambda opt: run)
    res = CliRunner().invoke(app, ["loadtest", str(TINY), "--start-stack", "--duration", "1"])
    assert res.exit_code == 99, res.output
    assert "SLO breached: a success_rate" in res.output
    assert CliRunner().invoke(app, ["loadtest", str(TINY), "--start-stack", "--no-fail-on-slo"]).exit_code == 0
    assert not math.isnan(meas.summary["slos"][0]["actual"])


def test_a_trace_is_replayed_scaled_with_its_tokens_from_the_run_folder(tmp_path: Path) -> None:
    """Trace arrivals: time compressed by --scale, token columns kept, and the file found again
    when the scenario is read back from the run folder (a copy of the data travels with it)."""
    from loadtest.plan import write_scenario

    sets = ["arrivals={process: trace, trace: {file: trace.csv, time_column: t_ms, time_unit: ms, "
            "prompt_column: prompt, output_column: output}}"]
    data, sc, _ = prepare_scenario(TINY, 2.0, 5.0, sets)
    sched = schedule_of(sc)
    assert np.allclose(sched.times_s, [0, 0.05, 0.125, 0.2, 0.45])
    assert sched.prompt_tokens is not None and sched.prompt_tokens.tolist() == [10, 30, 20, 50, 40]
    again = schedule_of(load_scenario(write_scenario(data, tmp_path / "run", TINY.parent)))  # with its data
    assert np.array_equal(again.times_s, sched.times_s)
    assert again.share(1, 2).output_tokens.tolist() == [5, 7]  # type: ignore[union-attr]


def test_deadlines_are_sent_only_when_servers_learn_of_timeouts() -> None:
    from loadtest.http_commands import deadline_header

    assert deadline_header(load_scenario(TINY)) == {}
    assert deadline_header(load_scenario(TINY, ["clients.cancel_on_timeout=true"])) == {"X-Request-Timeout": "5"}
    assert deadline_header(load_scenario(TINY, ["services.gateway={deadline_drop: true}"])) == {"X-Request-Timeout": "5"}


def test_a_server_counting_other_token_numbers_is_warned_about() -> None:
    from loadtest.runner import token_notes

    same = {"prompt_tokens_asked": 1000, "prompt_tokens_reported": 1040, "output_tokens_asked": 500,
            "output_tokens_reported": 500}
    assert token_notes(same) == []
    short = same | {"output_tokens_reported": 300}  # the server stopped early (no ignore_eos)
    (note,) = token_notes(short)
    assert "0.60x the output tokens" in note


def test_scraped_server_metrics_become_the_simulators_series() -> None:
    """A gauge is its last sample in the interval; a counter the difference between intervals,
    counted from the run's start (the last sample before t0)."""
    from loadtest.scrape import Scraper, parse

    text = ('# TYPE surge_gateway_queue_depth gauge\nsurge_gateway_queue_depth {q}\n'
            '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{replica="0"}} 1\n'
            'vllm:num_requests_waiting{{replica="1"}} {w}\n'
            '# TYPE vllm:prompt_tokens counter\nvllm:prompt_tokens_total{{replica="0"}} {p}\n')
    s = Scraper("http://127.0.0.1:1")
    for ts, q, w, p in [(99.5, 7, 0, 100), (100.2, 1, 2, 130), (100.8, 3, 4, 160), (101.5, 5, 1, 200)]:
        total, by = parse(text.format(q=q, w=w, p=p))
        s.samples.append((ts, total, by))
    out = s.series(t0=100.0, interval_s=1.0, n=3)
    assert out["queue:gateway"].tolist() == [3, 5, 5]  # last sample per interval, carried forward
    assert out["queue:llm"].tolist() == [5, 2, 2]  # summed over replicas
    assert out["llm_prefill_tokens"].tolist() == [60, 40, 0]  # from the 100 counted before t0


class _Answer:
    """A streamed agent answer as the load test's HTTP client sees it (SSE lines)."""

    def __init__(self, events: list[tuple[str, dict]]) -> None:
        import json

        self.status_code, self.headers, self.content = 200, {"content-type": "text/event-stream",
                                                              "X-Surge-Admitted": "1"}, b""
        self._body = b"".join(f"event: {e}\ndata: {json.dumps(d)}\n\n".encode() for e, d in events) + b"data: [DONE]\n\n"

    def iter_content(self, chunk_size: int, decode_content: bool) -> list[bytes]:
        return [self._body]


def _client(answers: list[_Answer]):  # type: ignore[no-untyped-def]
    from loadtest.commands import HttpClient
    from loadtest.plan import Plan

    class Scripted:
        def request(self, method: str, path: str, **kw: object) -> _Answer:
            return answers.pop(0)

    sc = load_scenario(ROOT / "scenarios" / "proactive.yaml")
    tally = Tally(60, 10)
    return HttpClient(sc, Plan("-", "http://127.0.0.1:1", "-"), tally, Scripted(), "t"), tally


def test_an_agent_class_that_places_no_order_succeeds() -> None:
    """Regression: a tool-using class without orders answers `order: null`; that is a success."""
    from loadtest.http_commands import HttpCommand

    wl, _ = _client([_Answer([("result", {"order": None, "answer": "on its way", "ledger": None})])])
    sess = wl.new_session("u")
    assert wl._attempt(sess, HttpCommand(wl.by_name["track_order"], 0.0)) == P.OK


def test_the_money_an_answer_reports_is_counted_and_owed_when_the_command_fails() -> None:
    from loadtest.http_commands import HttpCommand

    paid = {"order": {"id": "o1", "status": "paid", "wrong_item": False},
            "ledger": {"charged": 1, "duplicates_prevented": 0, "refunds": 0}}
    again = {"order": {"id": "o1", "status": "paid"}, "ledger": {"charged": 0, "duplicates_prevented": 1, "refunds": 0}}
    wl, tally = _client([_Answer([("error", {"status": 504, "error": {"code": "deadline_exceeded"}, **paid})]),
                         _Answer([("error", {"status": 504, "error": {"code": "deadline_exceeded"}, **again})])])
    sess, cmd = wl.new_session("u"), HttpCommand(wl.by_name["errand"], 0.0)
    assert wl._attempt(sess, cmd) == P.SHED and wl._attempt(sess, cmd) == P.SHED
    wl._fail(cmd.spec, P.SHED, cmd)  # the user gave up on an order that was paid
    series = tally.drain()["series"]
    got = {name: sum(v for name2, _, v in series if name2 == name)
           for name in ("payments", "duplicates_prevented", "failed_after_payment")}
    assert got == {"payments": 1, "duplicates_prevented": 1, "failed_after_payment": 1}


def test_a_target_whose_metrics_page_is_not_prometheus_text_adds_nothing() -> None:
    """Regression: a server that answers every path with the same SSE body crashed the load test
    in the scraper (ValueError from the Prometheus parser); now it is asked once and ignored."""
    import http.server
    import threading

    from loadtest.scrape import Scraper

    class Everything(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\ndata: [DONE]\n\n'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Everything)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        s = Scraper(f"http://127.0.0.1:{srv.server_address[1]}", period_s=0.0)
        for _ in range(3):
            s.tick()
        assert s.samples == [] and s.failures > 5  # it stopped asking after the first answer
        assert s.series(t0=0.0, interval_s=1.0, n=3) == {}
    finally:
        srv.shutdown()
