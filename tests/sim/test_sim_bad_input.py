"""Malformed scenarios: `surge validate FILE` prints exactly one line `ScenarioError: FILE: field.path:
what was expected (got VALUE)` on stderr and exits 2, never a traceback. Also `surge schema`."""

from __future__ import annotations

import json
import resource
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
    # YAML hardening (issue 15): each once hung, grew without bound, gave a traceback or was accepted
    "alias_bomb": "line 8: more than 20,000 values (aliases expanded)",
    "alias_recursive": "line 5: alias *w refers to a collection that contains it",
    "deep_nesting": "line 5: nested more than 32 levels deep",
    "deep_nesting_3000": "line 5: nested more than 32 levels deep",
    "huge_integer": "line 3: integer literal of more than 4300 digits",
    "duplicate_key": "line 11, column 1: duplicate key 'name' (first given at line 2, column 1)",
    "duplicate_nested_key": "line 10, column 30: duplicate key 'concurrency' (first given at line 10, column 14)",
    "multiple_documents": "YAML syntax error at line 11, column 1: but found another document",
    "python_tag": "YAML error at line 2, column 7: could not determine a constructor",
    "tab_indent": "YAML syntax error at line 6, column 1: found character that cannot start any token",
    "control_character": "YAML syntax error: unacceptable character #x0007",
    "utf16": "not UTF-8 text",
    "binary_name": "line 2: binary data (!!binary) has no place in a scenario",
    "long_unknown_key": f"{'k' * 37}...: unknown key",
    "integer_key": "1: keys must be text (got 1)",
    # values the schema allowed that the engine cannot do (issue 15)
    "rate_too_high": "arrivals.rate_per_s: must be <= 100000 (got 10000000.0)",
    "population_peak_too_high": "population.scale: peak session rate 1.16e+15/s is more than the engine simulates",
    "campaign_peak_too_high": "population.scale: peak session rate 1.16e+05/s is more than the engine simulates",
    "commands_per_session_huge": "population.commands_per_session: mean must be <= 10,000 commands per session",
    "autoscaling_interval_tiny": "services.llm.autoscaling.interval_s: must be >= 1 (got 1e-300)",
    "too_many_intervals": "run: more than 100,000 intervals",
    "renewal_cv_tiny": "arrivals.cv: must be >= 0.03 (got 1e-09)",
    # data files, read by validate with the loaders a run uses (issue 15)
    "trace_missing_file": "arrivals.trace: file not found: 'data/nowhere.csv'",
    "trace_is_folder": "arrivals.trace: 'data' is a folder, expected a CSV or JSONL file",
    "trace_mixed_timezones": "arrivals.trace: column 't' of mixed_timezones.csv, line 3 mixes times with and without",
    "trace_not_datetime": "arrivals.trace: column 't' of not_datetime.csv, line 3 is not an ISO 8601 datetime",
    "trace_missing_column": "arrivals.trace: column 'time_ms' not in trace_ok.csv (its header has 1 columns)",
    "empirical_jsonl_numbers": "services.tools.server.latency: line 1 of numbers.jsonl is not a JSON object",
    "empirical_jsonl_invalid": "services.tools.server.latency: line 2 of invalid.jsonl is not valid JSON",
    "empirical_outside_folder": "services.tools.server.latency: '../../../../../../../../etc/passwd' is outside the data folder",
    "empirical_absolute_path": "services.tools.server.latency: '/etc/hostname' is outside the data folder",
    "empirical_not_numeric": "services.tools.server.latency: column 'v' of secret.csv, line 3 is not a number",
    "empirical_negative": "services.tools.server.latency: column 'v' of negative.csv, line 3 is negative or not finite",
    "empirical_not_utf8": "services.tools.server.latency: latin1.csv is not UTF-8 text",
    # other members of the families
    "scalar_for_mapping_deep": "services.tools.server: must be a mapping (got 5)",
    "inf_value": "clients.timeout_s: must be a finite number (got Infinity)",
    "nan_deep": "services.tools.server.latency.mean: must be a finite number (got NaN)",
    "huge_float_deep": "services.tools.server.latency.value: must be a finite number (got Infinity)",
    "negative_zero_duration": "run.duration_s: must be > 0 (got -0.0)",
    "fault_zero_duration": "faults.0.duration_s: must be > 0 (got 0)",
    "empty_classes": "workload.classes: must have at least 1 item",
    "empty_stages": "workload.classes.job.stages: must have at least 1 item",
    "null_workload": "workload: must be a mapping (got null)",
    "string_for_number_deep": "services.tools.server.latency.mean: must be a valid number",
}

_BOMB = "[" + ", ".join(["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                        + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]) + "]"

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
    # issue 15: hostile or impossible overrides
    "a." * 3000 + "b=1": "override path has 3001 parts (at most 32)",
    "run=" + _BOMB: "run: override value: line 1: more than 20,000 values (aliases expanded)",
    "run=" + "[" * 100 + "]" * 100: "run: override value: line 1: nested more than 32 levels deep",
    "run.seed=" + "9" * 5000: "run.seed: override value: line 1: integer literal of more than 4300 digits",
    "run={seed: 1, seed: 2}": "run: override value: line 1, column 11: duplicate key 'seed'",
    "name=!!binary aGVsbG8=": "name: override value: line 1: binary data (!!binary)",
    "arrivals.rate_per_s=1.0e+7": "arrivals.rate_per_s: must be <= 100000 (got 10000000.0)",
    "arrivals.scale=1.0e+6": "arrivals.rate_per_s: peak session rate 5e+06/s is more than the engine simulates",
    "population={daily_active_users: 1000, commands_per_session: {type: constant, value: 1.0e+12}}":
        "population.commands_per_session: mean must be <= 10,000",
    "services.llm={autoscaling: {min_replicas: 1, max_replicas: 2, interval_s: 1.0e-300}}":
        "services.llm.autoscaling.interval_s: must be >= 1 (got 1e-300)",
    "run.interval_s=1.0e-3": "run: more than 100,000 intervals",
    "services.tools.server.latency={type: empirical, file: ../../../../../../etc/passwd, column: root}":
        "services.tools.server.latency: '../../../../../../etc/passwd' is outside the data folder",
    "arrivals={process: trace, trace: {file: /etc/passwd, time_column: root}}":
        "arrivals.trace: '/etc/passwd' is outside the data folder",
    "services.tools.server." + "k" * 10000 + "=1": f"services.tools.server.{'k' * 37}...: unknown key",
    "workload.classes.job.stages." + "9" * 5000 + ".tool=x": "list index out of range (list has 1 items",
    "workload.classes={}": "workload.classes: must have at least 1 item",
    "clients.timeout_s=.nan": "clients.timeout_s: must be a finite number (got NaN)",
    "run.duration_s=-0.0": "run.duration_s: must be > 0 (got -0.0)",
    "run.duration_s=.inf": "run.duration_s: must be a finite number (got Infinity)",
    "services.tools.server=5": "services.tools.server: must be a mapping (got 5)",
}

# Every bad input must fail fast and small: the CLI runs under these limits.
TIME_LIMIT_S = 30
MEMORY_LIMIT_BYTES = 1 << 30


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return surge("validate", *args)


def surge(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `surge` command, in 1 GiB of address space and 30 s (TimeoutExpired fails the test)."""
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=TIME_LIMIT_S, preexec_fn=_bounded)


def _one_error_line(proc: subprocess.CompletedProcess[str], file: Path, expected: str) -> None:
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"ScenarioError: {file}: "), lines[0]
    assert expected in lines[0], lines[0]


def test_there_are_at_least_80_bad_files() -> None:
    files = {p.stem for p in BAD.glob("*.yaml")}
    assert len(files) >= 80
    assert files == set(EXPECTED), files ^ set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_gives_one_line_and_exit_2(name: str) -> None:
    path = BAD / f"{name}.yaml"
    rel = path.relative_to(ROOT)
    _one_error_line(_validate(str(rel)), rel, EXPECTED[name])


@pytest.mark.parametrize("override", sorted(BAD_OVERRIDES), ids=lambda o: o if len(o) < 60 else o[:50] + "...")
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
    """Every YAML file under scenarios/ against `surge schema` with `jsonschema` (issue 13): whole
    scenarios as they are; mitigation overlays as they are used, merged onto the outage scenario."""
    import jsonschema
    import yaml

    from sim.campaign.overlay import deep_merge, load_overlay
    from sim.scenario import apply_override

    validator = jsonschema.Draft202012Validator(_schema())
    files = sorted((ROOT / "scenarios").rglob("*.yaml"))
    base = yaml.safe_load((ROOT / "scenarios" / "feb8_outage.yaml").read_text())
    checked = 0
    for path in files:
        data = yaml.safe_load(path.read_text())
        if "merge" in data:
            ov = load_overlay(path)
            data = deep_merge(base, ov.merge)
            for item in ov.sets:
                apply_override(data, item)
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:100]}" for e in validator.iter_errors(data)]
        assert not errors, (path, errors)
        checked += 1
    assert checked == len(files) >= 20


def _properties(schema: dict) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """(where, property schema) for every property of the root and of every definition."""
    out = [(f"Scenario.{k}", v) for k, v in schema["properties"].items()]
    for name, d in schema["$defs"].items():
        out += [(f"{name}.{k}", v) for k, v in (d.get("properties") or {}).items()]
    return out


def test_every_schema_field_has_a_description() -> None:
    """Editors show these on hover: every field, and every object, says what it is."""
    schema = _schema()
    props = _properties(schema)
    assert len(props) >= 150
    missing = [where for where, p in props if not str(p.get("description", "")).strip()]
    assert not missing, missing
    undocumented = [name for name, d in schema["$defs"].items() if not d.get("description")]
    assert not undocumented, undocumented


def test_schema_descriptions_carry_units() -> None:
    """A field whose name says seconds (`_s`) or a rate (`_per_s`) says so in its description."""
    bad = [where for where, p in _properties(_schema())
           if where.endswith(("_s", "_per_s")) and not any(u in p["description"] for u in ("second", "/s"))]
    assert not bad, bad


# -- inputs too big to ship as fixtures: written at test time ----------------------------------------

_SCENARIO = """name: gen
run: {duration_s: 100, interval_s: 10}
arrivals: {process: poisson, rate_per_s: 5}
workload: {classes: {job: {probability: 1.0, stages: [{tool: server}]}}}
services: {tools: {server: {concurrency: 1, latency: LATENCY}}}
"""


def _scenario(folder: Path, latency: str = "{type: constant, value: 0.1}", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scenario.yaml"
    path.write_text(_SCENARIO.replace("LATENCY", latency) + extra)
    return path


def _one_line(proc: subprocess.CompletedProcess[str], expected: str) -> str:
    assert proc.returncode == 2, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert expected in lines[0], lines[0]
    return lines[0]


def test_a_10_mb_list_is_refused_at_once(tmp_path: Path) -> None:
    """Regression (issue 15): a 9.8 MB list once took minutes to parse."""
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nworkload:\n" + "- 1\n" * 2_450_000)
    _one_line(surge("validate", str(path)), "file is larger than 1,000,000 bytes")


def test_a_list_of_240_000_values_stops_at_the_value_cap(tmp_path: Path) -> None:
    """Just under the size cap: parsing stops at the 20,001st value, before any object is built."""
    path = tmp_path / "long.yaml"
    path.write_text("name: long\nworkload:\n" + "- 1\n" * 240_000)
    assert path.stat().st_size < 1_000_000
    _one_line(surge("validate", str(path)), "more than 20,000 values")


def test_a_data_file_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    """A sparse 64 MB + 1 byte CSV: refused on its size (once a 160 MB CSV took 4.3 GB)."""
    with (tmp_path / "big.csv").open("wb") as f:
        f.write(b"v\n")
        f.truncate(64_000_001)
    path = _scenario(tmp_path, "{type: empirical, file: big.csv, column: v}")
    _one_line(surge("validate", str(path)), "'big.csv' is 64,000,001 bytes (at most 64,000,000)")


def test_a_csv_field_over_128_kb(tmp_path: Path) -> None:
    (tmp_path / "wide.csv").write_text('v\n"' + "7" * 140_000 + '"\n')
    path = _scenario(tmp_path, "{type: empirical, file: wide.csv, column: v}")
    _one_line(surge("validate", str(path)), "line 2 of wide.csv is not valid CSV (field larger than field limit")


def test_messages_never_echo_data_file_content(tmp_path: Path) -> None:
    """A header or a cell of a data file never appears in a message: not as a bad value, not as the
    list of columns (once the first line of /etc/passwd was shown)."""
    secret = "root:x:0:0:SECRET"
    (tmp_path / "a.csv").write_text(f"{secret}\n1\n")
    (tmp_path / "b.csv").write_text(f"v\n{secret}\n")
    (tmp_path / "c.jsonl").write_text(f'{{"v": "{secret}"}}\n')
    for file, column in (("a.csv", "v"), ("b.csv", "v"), ("c.jsonl", "v")):
        path = _scenario(tmp_path / file.replace(".", "_"), f"{{type: empirical, file: ../{file}, column: {column}}}")
        line = _one_line(surge("validate", str(path), "--data-dir", str(tmp_path)), file)
        assert "SECRET" not in line and "root:x" not in line, line


def test_data_files_stay_in_the_scenario_folder_unless_a_data_dir_is_given(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "lat.csv").write_text("v\n0.1\n0.2\n")
    path = _scenario(tmp_path / "scenarios", "{type: empirical, file: ../shared/lat.csv, column: v}")
    _one_line(surge("validate", str(path)), "'../shared/lat.csv' is outside the data folder")
    ok = surge("validate", str(path), "--data-dir", str(tmp_path))
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stderr


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "link.csv").symlink_to("/etc/hostname")
    path = _scenario(tmp_path, "{type: empirical, file: link.csv, column: v}")
    _one_line(surge("validate", str(path)), "'link.csv' is outside the data folder")


def test_a_directory_or_a_device_as_the_scenario(tmp_path: Path) -> None:
    _one_line(surge("validate", str(tmp_path)), "is a folder, expected a scenario file")
    _one_line(surge("validate", "/dev/zero"), "is not a regular file")
