"""`surge validate-stack --quick` end to end through the real CLI: calibrate (the LLM's steps and
the stack's host CPU), search the capacity on both sides, three loads of two seeds each against
the real stack, the error table and the report; then the same measurements predicted again by a
deliberately mis-calibrated scenario, which must come out far worse and miss its targets.
A miniature of the full run (issue 10, item 5): about five minutes on two shared cores (load
average about 9 from other jobs); the issue's three minutes needs an idle machine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadtest import accuracy as A
from sim.results import Results

# A real calibration and load test on both cores (6 min at load 8, about 3 on an idle machine):
# opt-in with SURGE_VALIDATE_STACK_TESTS=1, because on a shared CI machine its timing makes the
# verdict noise (docs/validation.md); the accuracy table's arithmetic is tested in
# test_loadtest_accuracy.py on every run.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500),
              pytest.mark.skipif(os.environ.get("SURGE_VALIDATE_STACK_TESTS") != "1",
                                 reason="set SURGE_VALIDATE_STACK_TESTS=1 to run the validate-stack miniature")]
ROOT = Path(__file__).resolve().parents[2]
SLO_BREACH = 99


def surge(*args: str, timeout_s: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "v"
    p = surge("validate-stack", "scenarios/validate_stack.yaml", "--quick", "--out", str(out))
    assert p.returncode in (0, SLO_BREACH), p.stdout[-2000:] + p.stderr[-3000:]
    return out


def test_the_miniature_measures_every_load_on_both_sides_and_writes_the_report(validation: Path) -> None:
    data = json.loads((validation / "validation.json").read_text())
    host = data["calibration"]["host"]
    assert data["calibration"]["calibrated"] and host["cores_pinned"] >= 1
    # the share of the core free of other processes is measured and recorded, not applied by default
    assert 0 < host["core_share"] <= 1 and host["host"]["cores"] == host["cores_pinned"]
    assert data["capacity_search"]["meas"]["probes"], "the measured capacity was searched"
    assert [lv["label"] for lv in data["levels"]] == ["30%", "60%", "90%"]
    table = data["table"]
    assert table["classes"] == ["chat", "help_me_buy"]
    judged = [c for c in table["cells"] if c["target"] is not None]
    assert len(judged) == 3 * 2 * 4  # TTFT and e2e, p50 and p99, per class and load
    for c in judged:  # both sides measured, two seeds each, so both carry an interval
        assert math.isfinite(c["error"]) and c["meas"]["n"] == c["sim"]["n"] == 2, c
        assert math.isfinite(c["meas"]["half_width"]) and math.isfinite(c["error_low"]), c
    assert math.isfinite(table["capacity"]["error"]) and math.isfinite(table["mape_judged"])
    for name in ("validation.md", "validation.html"):
        assert (validation / name).stat().st_size > 1000
    assert list(validation.glob("*.png")), "a figure per metric"


def test_the_table_is_computed_from_the_runs_it_names(validation: Path) -> None:
    """One cell recomputed from the run folders' measured and simulated results."""
    data = json.loads((validation / "validation.json").read_text())
    row = next(lv for lv in data["levels"] if lv["label"] == "60%")
    meas = [Results.read(validation / run / "measured") for run in row["runs"]]
    sim = [Results.read(validation / run / "simulated") for run in row["runs"]]
    m = sum(r.summary["classes"]["chat"]["e2e"]["p50"] for r in meas) / len(meas)
    s = sum(r.summary["classes"]["chat"]["e2e"]["p50"] for r in sim) / len(sim)
    cell = next(c for c in data["table"]["cells"]
                if (c["level"], c["class"], c["metric"]) == ("60%", "chat", "e2e.p50"))
    assert cell["meas"]["mean"] == pytest.approx(m) and cell["error"] == pytest.approx(s / m - 1)
    assert A.value(meas[0], "chat", "e2e.p50") == meas[0].summary["classes"]["chat"]["e2e"]["p50"]


def test_a_mis_calibrated_model_fails_the_same_measurements(validation: Path, tmp_path: Path) -> None:
    """Every calibrated CPU cost ten times as dear (the LLM's steps and the stack's host work):
    the same runs predicted again must miss by a margin no noise on this machine reaches. The
    calibrated model's errors were within -80% .. +200% in every miniature measured (load average
    2 to 17, docs/validation.md), so 10x the cost moves every prediction far above the truth:
    the simulated capacity falls below half the measured one, and latency errors grow by more
    than 100 points on average (at 30% of the measured capacity the 10x model is already
    overloaded). A table that compared the wrong numbers (the simulator with itself, a --set
    not applied, NaN cells dropped) would not."""
    scen = yaml.safe_load((validation / "scenario.yaml").read_text())
    dear = {**{f"services.llm.cost_model.{k}": v for k, v in scen["services"]["llm"]["cost_model"].items()},
            **{f"services.host.{k}": v for k, v in scen["services"]["host"].items()}}
    args = [x for k, v in dear.items() if k.endswith("_s") for x in ("--set", f"{k}={10 * float(v)!r}")]
    p = surge("validate-stack", "scenarios/validate_stack.yaml", "--resimulate", str(validation),
              "--out", str(tmp_path / "wrong"), *args)
    assert p.returncode == SLO_BREACH, p.stdout[-2000:] + p.stderr[-3000:]
    good = json.loads((validation / "validation.json").read_text())["table"]
    wrong = json.loads((tmp_path / "wrong" / "validation.json").read_text())
    assert wrong["resimulated_with"] == [a for a in args if a != "--set"]
    bad = wrong["table"]
    assert bad["capacity"]["error"] < -0.5 and not bad["capacity"]["pass"], (good["capacity"], bad["capacity"])
    assert bad["mape_judged"] > good["mape_judged"] + 1.0, (good["mape_judged"], bad["mape_judged"])
    # the same measurements on both tables; every finite judged cell predicted slower than before
    pairs = [(g, b) for g, b in zip(good["cells"], bad["cells"], strict=True) if g["target"] is not None]
    assert all(g["meas"] == b["meas"] and (g["level"], g["metric"]) == (b["level"], b["metric"]) for g, b in pairs)
    moved = [b["error"] > g["error"] for g, b in pairs if math.isfinite(g["error"]) and math.isfinite(b["error"])]
    assert len(moved) >= len(pairs) // 2 and sum(moved) >= 0.8 * len(moved), [(g["error"], b["error"]) for g, b in pairs]
