"""The plan of a load run: the scenario as it will run (scaled, cut to the duration), written
once to the run folder and read by every Locust process.

Scaling (`--scale F`) is the one rule `sim.rules.scaling` (arrival rate and every capacity that
grows with a fleet). The load test, the stack and the simulator all read the one scaled file,
so they run the same scenario.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sim.results import strict_json
from sim.rules.scaling import scale_data
from sim.scenario import Scenario, apply_override, parse_scenario
from sim.scenario.load import read_yaml
from sim.shipped import resolve

SCENARIO_FILE = "scenario.yaml"
PLAN_FILE = "plan.json"
Mode = Literal["open", "closed"]


def data_files(node: Any) -> list[str]:
    """The data files (traces, empirical distributions) a raw scenario names, as written."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "file" and isinstance(v, str)] + \
            [f for k, v in node.items() if k != "file" for f in data_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in data_files(v)]
    return []


def fit_to_duration(data: dict[str, Any], duration_s: float | None, interval_s: float | None) -> list[str]:
    """Set run.duration_s (and interval); drop faults that start after the end. Returns notes."""
    notes: list[str] = []
    run = data.setdefault("run", {}) or {}
    data["run"] = run
    if duration_s is not None:
        run["duration_s"] = duration_s
    if interval_s is not None:
        run["interval_s"] = interval_s
    dur = float(run.get("duration_s", 3600))
    if float(run.get("warmup_s", 0)) >= dur:
        run["warmup_s"] = 0.0
        notes.append(f"warmup_s >= duration: set to 0 for this {dur:g} s run")
    faults = data.get("faults") or []
    kept = [f for f in faults if float(f.get("at_s", 0)) < dur]
    if len(kept) < len(faults):
        notes.append(f"{len(faults) - len(kept)} fault(s) start after {dur:g} s and were left out")
        data["faults"] = kept
    return notes


def prepare_scenario(path: str | Path, scale: float, duration_s: float | None, overrides: list[str] | tuple[str, ...] = (),
                     interval_s: float | None = None) -> tuple[dict[str, Any], Scenario, list[str]]:
    """Read, override, scale and cut a scenario; returns (raw mapping, parsed scenario, notes)."""
    p = resolve(path)
    data = read_yaml(p)
    for item in overrides:
        apply_override(data, item, file=str(p))
    data = scale_data(data, scale)
    notes = fit_to_duration(data, duration_s, interval_s)
    sc = parse_scenario(data, file=str(p), base_dir=p.parent)
    return data, sc, notes


def write_scenario(data: dict[str, Any], folder: Path, source_dir: Path) -> Path:
    """The scenario as run, with copies of its data files under the same relative names, so the
    run folder is self-contained (and data paths stay inside the scenario's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in data_files(data):
        src, dst = (source_dir / name).resolve(), (folder / name).resolve()
        if src != dst and src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    out = folder / SCENARIO_FILE
    out.write_text("# the scenario as run: scaled and cut to the load test's duration\n"
                   + yaml.safe_dump(data, sort_keys=False))
    return out


@dataclass
class Plan:
    """Everything a Locust process needs, JSON on disk (`plan.json`). The stack's secrets (admin
    token, user secret) are not in it: they travel in the environment (`loadtest.credentials`)."""

    scenario_file: str  # the scaled scenario (scenario.yaml in the run folder)
    host: str
    out_dir: str  # where the master (or local runner) writes the measured results
    mode: Mode = "open"
    duration_s: float = 60.0
    workers: int = 0  # 0 = local runner
    max_in_flight: int = 2000  # per worker: a start beyond this is dropped (counted)
    max_requests: int = 1_000_000  # per worker: a hard bound on HTTP requests sent
    users: int = 10  # closed model
    spawn_rate: float = 10.0  # closed model, users per second
    apply_faults: bool = True
    model: str = "surge-tiny"  # the model name sent in chat requests
    max_tokens_cap: int = 1024
    max_context: int = 2048
    lead_s: float = 1.0  # t0 = test start + lead_s, so every worker starts on the same clock
    drain_s: float = 0.0  # after duration, commands in flight get this long to finish
    endpoint: Literal["chat", "completions"] = "chat"  # one-LLM-stage classes: /v1/chat/completions or /v1/completions
    ignore_eos: bool = True  # ask the server to generate max_tokens (ignore_eos, min_tokens: vLLM, SGLang, surge)
    api_key: str | None = None  # sent as a bearer token where no session is
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every request
    plugins: list[str] = field(default_factory=list)  # Python files with the user's own command classes

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / PLAN_FILE
        out.write_text(strict_json(asdict(self)) + "\n")
        return out

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        return cls(**json.loads(Path(path).read_text()))
