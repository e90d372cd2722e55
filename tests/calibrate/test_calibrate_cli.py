"""`surge calibrate` through the real CLI: YAML on stdout that the scenario accepts back, the
calibrated copy, and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from loadtest.calibrate_cli import calibrated_text
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
TINY = ["services.llm.backend.model={layers: 1, hidden: 64, heads: 2, vocab: 128, max_context: 256}",
        "services.llm.max_num_seqs=8", "services.llm.max_batched_tokens=256", "services.llm.kv_cache_tokens=2048"]
COST = {"type": "fitted", "base_s": 0.0004, "per_prefill_token_s": 2e-05, "per_decode_seq_s": 3e-05,
        "per_context_token_s": 3e-07}


def surge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_calibrate_prints_yaml_the_scenario_accepts_and_writes_a_copy(tmp_path: Path) -> None:
    out = tmp_path / "cal.yaml"
    sets = [a for s in TINY for a in ("--set", s)]
    p = surge("calibrate", "scenarios/demo_fault.yaml", *sets, "--repeats", "3", "--threads", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = yaml.safe_load(p.stdout)  # the whole output is YAML: the report is in comments
    cost = doc["services"]["llm"]["cost_model"]
    assert cost["type"] == "fitted" and cost["base_s"] > 0
    assert "R2 " in p.stdout and "prefill 1x" in p.stdout and "decode 8 @ ctx" in p.stdout
    flow = next(ln for ln in p.stdout.splitlines() if "as an override: --set" in ln)
    override = flow.split("--set ", 1)[1].strip("'")
    sc = load_scenario(ROOT / "scenarios/demo_fault.yaml", [*TINY, override])
    assert sc.services.llm.cost_model.model_dump() == cost
    written = load_scenario(out)
    assert written.services.llm.cost_model.model_dump() == cost
    assert written.services.llm.backend.model.hidden == 64  # the --set overrides are in the copy


def test_calibrated_copy_changes_only_the_cost_model_and_its_comment(tmp_path: Path) -> None:
    src = ROOT / "scenarios/demo_fault.yaml"
    text = calibrated_text(src, [], COST, "R2 0.9")
    before, after = src.read_text().splitlines(), text.splitlines()
    changed = [ln for ln in after if ln not in before]
    gone = [ln for ln in before if ln not in after]
    assert len(changed) == 2 and "calibrated by `surge calibrate`" in changed[0] and "cost_model:" in changed[1]
    assert len(gone) == 2 and "cost_model:" in gone[1] and gone[0].strip().startswith("#")
    assert len(after) == len(before)  # every other line, comments included, is kept
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert load_scenario(f).services.llm.cost_model.model_dump() == COST


def test_a_remote_backend_is_a_one_line_error() -> None:
    p = surge("calibrate", "scenarios/demo_fault.yaml", "--set",
              "services.llm.backend={type: openai, base_url: 'http://127.0.0.1:9'}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "CalibrationError: 'services.llm.backend.type' must be 'local' to calibrate (got 'openai')"]
