"""Malformed scenarios: `surge validate FILE` prints exactly one line `ScenarioError: FILE: field.path:
what was expected (got VALUE)` on stderr and exits 2, never a traceback. Also `surge schema`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sim_helpers import ROOT

BAD = ROOT / "tests" / "data" / "bad_scenarios"

# file -> what the one line must name (the field path, or where in the file for whole-file errors)
EXPECTED = {
    "autoscaling_bounds": "services.llm.autoscaling: 'max_replicas' must be >= 'min_replicas' (got 2 < 5)",
    "bad_class_name": "workload.classes: class name must be lower_snake_case (got 'Job Class')",
    "bad_dist_param": "services.tools.server.latency.cv: must be > 0 (got -1)",
    "bad_dist_type": "services.tools.server.latency.type: must be one of",
    "bad_enum_routing": "services.llm.routing: must be 'round_robin'",
    "bool_for_int": "services.tools.server.concurrency: must be a number, not true",
    "dist_both_mean_and_rate": "services.tools.server.latency: give exactly one of 'mean' or 'rate'",
    "diurnal_wrong_length": "population.diurnal: must have 24 hourly weights (got 3)",
    "empirical_missing_file": "services.tools.server.latency: file not found",
    "empty": "empty file",
    "fault_after_end": "faults.0.at_s: must be < run.duration_s (got 500.0)",
    "fault_bad_kind": "faults.0.kind: must be 'capacity_loss'",
    "fault_magnitude_fraction": "faults.0: magnitude of capacity_loss is a fraction in [0, 1] (got 3.0)",
    "fault_unknown_target": "faults.0.target: unknown service 'database'",
    "gateway_slowdown": "faults.0.kind: the gateway has no latency to slow down",
    "inventory_confirm_without_hold": "workload.classes.buy.stages.0.tool.inventory: 'confirm' needs an earlier 'hold'",
    "inventory_hold_not_an_order": "workload.classes.buy.stages.0.tool.inventory: a class that holds stock must "
                                   "place orders",
    "inventory_hot_too_many": "services.tools.seats.inventory: 'hot.items' must be < 'items', or equal with share 1 "
                              "(got 12 of 10)",
    "inventory_on_plain_tool": "workload.classes.buy.stages.0.tool.inventory: services.tools.seats has no 'inventory'",
    "huge_number": "run.duration_s: must be <= 100000000",
    "huge_overflow": "arrivals.rate_per_s: must be a finite number",
    "list_not_map": "services: must be a mapping",
    "llm_stage_without_fleet": "workload.classes.job.stages.0.llm: needs 'services.llm'",
    "missing_name": "name: required field is missing",
    "missing_workload": "workload: required field is missing",
    "mixture_weights": "services.tools.server.latency.components: component weights must sum to 1 (got 0.7)",
    "model_does_not_fit": "services.llm: model weights do not fit in GPU memory",
    "nan_value": "arrivals.rate_per_s: must be a finite number (got NaN)",
    "negative_fault_time": "faults.0.at_s: must be >= 0 (got -3)",
    "negative_rate": "arrivals.rate_per_s: must be > 0 (got -5)",
    "no_rate": "arrivals.rate_per_s: required unless a 'population' gives the rate",
    "not_utf8": "not UTF-8 text",
    "probability_zero_never_started": "workload.classes.track.probability: 0 needs a proactive task",
    "proactive_unknown_class": "proactive.follow_ups.0.start: unknown command class 'track'",
    "probabilities_not_one": "workload.classes: class probabilities must sum to 1 (got 0.7)",
    "probabilities_two_classes": "workload.classes: class probabilities must sum to 1 (got 1.2)",
    "schedule_at_and_every": "proactive.schedules.0: give exactly one of 'at_s' or 'every_s'",
    "session_invalidation_not_auth": "faults.0.target: session_invalidation targets 'auth' (got 'server')",
    "slo_unknown_class": "slos.chat: unknown command class",
    "stage_both_kinds": "workload.classes.job.stages.0: a stage is exactly one of 'llm' or 'tool'",
    "string_for_list": "workload.classes.job.stages: must be a list (got \"server\")",
    "top_level_list": "expected a mapping at the top level (got list)",
    "uniform_high_below_low": "services.tools.server.latency: 'high' must be >= 'low'",
    "unknown_nested_key": "services.tools.server.concurency: unknown key",
    "unknown_stage_service": "workload.classes.job.stages.0.tool: unknown service 'sever'",
    "unknown_top_key": "colour: unknown key",
    "warmup_too_long": "run: 'warmup_s' must be < 'duration_s'",
    "wrong_type_duration": "run.duration_s: must be a valid number",
    "wrong_item_not_tool": "faults.0.target: wrong_item targets a tool (got 'auth')",
    "yaml_syntax": "YAML syntax error at line 3, column 9",
    "zero_concurrency": "services.tools.server.concurrency: must be >= 1 (got 0)",
}

MM1 = ROOT / "scenarios" / "validation" / "mm1.yaml"
BAD_OVERRIDES = {
    "run.duration_s=-1": "run.duration_s: must be > 0 (got -1)",
    "services.tools.server.concurrency=many": "services.tools.server.concurrency: must be a valid integer",
    "no_equals_sign": "override must look like path.to.field=value",
    "run.duration_s=[1": "run.duration_s: override value is not valid YAML",
    "workload.classes.job.stages.3.tool=x": "workload.classes.job.stages.3: list index out of range",
    "services.tools.server.latency.type=normal": "services.tools.server.latency.type: must be one of",
    "run.seed=1e400": "run.seed",
    "services.tools.server.speed=3": "services.tools.server.speed: unknown key",
}


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", "validate", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def _one_error_line(proc: subprocess.CompletedProcess[str], file: Path, expected: str) -> None:
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"ScenarioError: {file}: "), lines[0]
    assert expected in lines[0], lines[0]


def test_there_are_at_least_25_bad_files() -> None:
    files = {p.stem for p in BAD.glob("*.yaml")}
    assert len(files) >= 25
    assert files == set(EXPECTED), files ^ set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_gives_one_line_and_exit_2(name: str) -> None:
    path = BAD / f"{name}.yaml"
    rel = path.relative_to(ROOT)
    _one_error_line(_validate(str(rel)), rel, EXPECTED[name])


@pytest.mark.parametrize("override", sorted(BAD_OVERRIDES))
def test_bad_override_gives_one_line_and_exit_2(override: str) -> None:
    rel = MM1.relative_to(ROOT)
    _one_error_line(_validate(str(rel), "--set", override), rel, BAD_OVERRIDES[override])


def test_missing_file() -> None:
    _one_error_line(_validate("no/such/file.yaml"), Path("no/such/file.yaml"), "file not found")


def _shipped() -> list[Path]:
    """Every whole scenario shipped under scenarios/ (not the `merge:` overlays of mitigations)."""
    import yaml

    return [p for p in sorted((ROOT / "scenarios").rglob("*.yaml")) if "merge" not in (yaml.safe_load(p.read_text()) or {})]


def test_shipped_scenarios_validate() -> None:
    for path in _shipped():
        proc = _validate(str(path))
        assert proc.returncode == 0 and proc.stdout.startswith("ok: "), (path, proc.stderr)


def _schema() -> dict:  # type: ignore[type-arg]
    proc = subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", "schema"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    return json.loads(proc.stdout)


def test_schema_is_a_json_schema_of_the_scenario() -> None:
    schema = _schema()
    assert schema["type"] == "object" and schema["title"] == "Scenario"
    assert {"name", "workload"} <= set(schema["required"])
    assert {"run", "arrivals", "workload", "clients", "services", "faults", "slos"} <= set(schema["properties"])
    assert schema.get("additionalProperties") is False  # unknown keys are errors in editors too
    refs = json.dumps(schema)
    for ref in [r.split('"')[0] for r in refs.split('"$ref": "#/$defs/')[1:]]:
        assert ref in schema["$defs"], ref


def test_shipped_scenarios_match_the_schema() -> None:
    """With `jsonschema` installed, every shipped scenario validates against `surge schema`;
    without it, the top-level keys are checked against the schema's properties."""
    import yaml

    schema = _schema()
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    for path in _shipped():
        data = yaml.safe_load(path.read_text())
        if jsonschema is not None:
            jsonschema.validate(data, schema)
        else:
            assert set(data) <= set(schema["properties"]), path
            assert set(schema["required"]) <= set(data), path
