"""The results format on disk: one folder per run, the same for all three engines.

    run.json         what ran: source (des or loadtest), scenario, seed, interval, classes, SLOs
    timeseries.csv   one row per interval: t_s, then one column per series (see recorder.py)
    histograms.npz   per `metric:class`: int64 rows (interval, bucket, count) of a log histogram
    events.jsonl     faults, scaling and state changes: {"t_s", "kind", "target", ...}
    summary.json     KPIs over the post-warm-up window and SLO verdicts (summary.py)
    scenario.yaml    the scenario as it ran, every field resolved (when the producer knows it)

Written only by an explicit `Results.write(folder)`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim.errors import ResultsError
from sim.results.histogram import GAMMA
from sim.results.recorder import Recorder
from sim.results.summary import summarize

FORMAT = "surge-results/1"
SCENARIO_FILE = "scenario.yaml"


@dataclass
class Results:
    meta: dict[str, Any]
    series: dict[str, np.ndarray]
    histograms: dict[str, np.ndarray]
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] | None = None  # the scenario as run (`Scenario.model_dump(mode="json")`)

    @classmethod
    def from_recorder(cls, rec: Recorder, meta: dict[str, Any]) -> Results:
        meta = {"format": FORMAT, "histogram_gamma": GAMMA, "interval_s": rec.interval_s,
                "n_intervals": rec.n_intervals, "classes": rec.classes, **meta}
        series, hists = rec.all_series(), rec.all_histograms()
        return cls(meta, series, hists, list(rec.events), summarize(meta, series, hists))

    @property
    def t_s(self) -> np.ndarray:
        """Start time of each interval, seconds."""
        return np.arange(self.meta["n_intervals"]) * self.meta["interval_s"]

    def write(self, folder: str | Path) -> Path:
        """Write the run folder (created if needed); `ResultsError` when it cannot be written."""
        out = writable_folder(folder)
        try:
            return self._write(out)
        except OSError as e:
            raise ResultsError(f"{out}: cannot write results there ({e.strerror or e})") from None

    def _write(self, out: Path) -> Path:
        (out / "run.json").write_text(strict_json(self.meta) + "\n")
        names = sorted(self.series)
        table = np.column_stack([self.t_s] + [self.series[n] for n in names])
        np.savetxt(out / "timeseries.csv", table, delimiter=",", header=",".join(["t_s", *names]),
                   comments="", fmt="%.10g")
        np.savez_compressed(out / "histograms.npz", **self.histograms)  # type: ignore[arg-type]
        with (out / "events.jsonl").open("w") as f:
            for e in self.events:
                f.write(strict_json(e, indent=None) + "\n")
        (out / "summary.json").write_text(strict_json(self.summary) + "\n")
        if self.scenario is not None:
            (out / SCENARIO_FILE).write_text(yaml.safe_dump(self.scenario, sort_keys=False))
        return out

    @classmethod
    def read(cls, folder: str | Path) -> Results:
        src = Path(folder)
        need = ("run.json", "timeseries.csv", "histograms.npz")
        missing = [n for n in need if not (src / n).is_file()]
        if missing:
            raise ResultsError(f"{src}: not a results folder (missing {', '.join(missing)})")
        meta = json.loads((src / "run.json").read_text())
        if meta.get("format") != FORMAT:
            raise ResultsError(f"{src}/run.json: unknown format {meta.get('format')!r} (expected {FORMAT!r})")
        with (src / "timeseries.csv").open() as f:
            header = f.readline().strip().split(",")
        data = np.loadtxt(src / "timeseries.csv", delimiter=",", skiprows=1, ndmin=2)
        series = {name: data[:, i] for i, name in enumerate(header) if name != "t_s"}
        with np.load(src / "histograms.npz") as z:
            hists = {k: z[k] for k in z.files}
        events = []
        if (src / "events.jsonl").is_file():
            events = [json.loads(line) for line in (src / "events.jsonl").read_text().splitlines() if line]
        scenario = None
        if (src / SCENARIO_FILE).is_file():
            scenario = yaml.safe_load((src / SCENARIO_FILE).read_text())
        return cls(meta, series, hists, events, summarize(meta, series, hists), scenario)


def writable_folder(folder: str | Path) -> Path:
    """`folder`, created if needed, once a file could be written in it; `ResultsError` (one line)
    when it is a file, lies under a file, or cannot be created or written. Callers check this
    before a run, so a bad output path fails before the simulation, not after it."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out}: exists and is not a folder (results need a folder)")
    probe = out / ".surge-write-check"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ResultsError(f"{out}: cannot write results there ({e.strerror or e})") from None
    return out


def strict_json(x: Any, indent: int | None = 2) -> str:
    """`x` as strict JSON (no NaN or Infinity: they become null), the one way surge writes JSON."""
    return json.dumps(json_safe(x), indent=indent, allow_nan=False)


def json_safe(x: Any) -> Any:
    """A copy fit for strict JSON: NaN and infinities become null, numpy scalars plain numbers,
    mapping keys strings, tuples lists."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return [json_safe(v) for v in x.tolist()]
    if x is None or isinstance(x, str | int | float | bool):
        return x
    return str(x)
