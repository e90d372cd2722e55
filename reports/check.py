"""`check_run` for CI: KPIs against a stored baseline with tolerances, like k6 thresholds.

A baseline file (YAML or JSON) maps KPI names (`sim.stats.kpis`) to limits:

    format: surge-baseline/1
    kpis:
      success_rate:        {value: 0.995, tolerance_abs: 0.01}  # fail below 0.985
      job.e2e_p99_s:       {value: 0.35, tolerance: 0.10}       # lower is better: fail above 0.385
      throughput_per_s:    {min: 4.9}                           # hard floor
      job.ttft_p99_s:      {max: 0.5}                           # hard ceiling

`value` + `tolerance` (relative fraction, or a string like "10%") or `tolerance_abs` (in the KPI's
unit) fails only in the bad direction (`sim.stats.direction`: latencies lower, rates higher; set
`direction: both` for two-sided). `min`/`max` are hard limits. A KPI missing from the run fails.
For a replications folder the mean over replications is checked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from reports import tables
from reports.runs import RunSet, load_runset, run_kpis
from sim import stats
from sim.errors import ResultsError
from sim.results import strict_json

BASELINE_FORMAT = "surge-baseline/1"
_KEYS = {"value", "tolerance", "tolerance_abs", "min", "max", "direction"}


class BaselineError(ResultsError):
    """A baseline file is missing, unreadable or malformed (the message names file and field)."""


def check_run(run_dir: str | Path, baseline_file: str | Path,
              warmup_s: float | None = None) -> tuple[str, bool]:
    """Compare a run's (or replications folder's) KPIs with a baseline file.

    Returns (a Markdown table with a one-line verdict above it, ok); ok is False on any regression."""
    limits = read_baseline(baseline_file)
    rs = load_runset(run_dir, warmup_s=warmup_s)
    actual = run_kpis(rs)
    rows, failed = [], 0
    for name, lim in limits.items():
        verdict, bound = judge(name, lim, actual.get(name, math.nan))
        failed += verdict == "REGRESSION"
        base = tables.fmt(name, lim["value"]) if "value" in lim else "–"
        change = (f"{100 * (actual[name] - lim['value']) / abs(lim['value']):+.1f}%"
                  if "value" in lim and lim["value"] and math.isfinite(actual.get(name, math.nan)) else "–")
        rows.append([f"`{name}`", base, bound, tables.fmt(name, actual.get(name)), change, verdict])
    head = (f"**surge check: {'PASS' if not failed else 'FAIL'}** — {_what(rs)} against `{baseline_file}`: "
            f"{len(rows) - failed} of {len(rows)} KPIs within limits"
            + (f", {failed} regression{'s' if failed > 1 else ''}." if failed else "."))
    table = tables.markdown((["KPI", "baseline", "limit", "actual", "change", "verdict"], rows))
    return f"{head}\n\n{table}\n", failed == 0


def _what(rs: RunSet) -> str:
    return f"`{rs.label}` (mean of {len(rs.reps)} replications)" if rs.is_replications else f"`{rs.label}`"


def judge(name: str, lim: dict[str, Any], actual: float) -> tuple[str, str]:
    """(verdict, the limit as text) for one KPI: OK, OK (improved) or REGRESSION."""
    if actual is None or not math.isfinite(actual):
        return "REGRESSION", "KPI missing or undefined in this run"
    lo, hi, improved = -math.inf, math.inf, False
    if "value" in lim:
        v, way = float(lim["value"]), lim.get("direction") or stats.direction(name)
        tol = float(lim["tolerance_abs"]) if "tolerance_abs" in lim else abs(v) * _rel(lim.get("tolerance", 0.0))
        if way in ("lower", "both"):
            hi = v + tol
        if way in ("higher", "both"):
            lo = v - tol
        improved = (way == "lower" and actual < v - tol) or (way == "higher" and actual > v + tol)
    if "min" in lim:
        lo = max(lo, float(lim["min"]))
    if "max" in lim:
        hi = min(hi, float(lim["max"]))
    bound = " and ".join(s for s in (f"≥ {tables.fmt(name, lo)}" if lo > -math.inf else "",
                                     f"≤ {tables.fmt(name, hi)}" if hi < math.inf else "") if s)
    if not lo <= actual <= hi:
        return "REGRESSION", bound
    return ("OK (improved)" if improved else "OK"), bound


def _rel(tol: Any) -> float:
    if isinstance(tol, str) and tol.strip().endswith("%"):
        return float(tol.strip()[:-1]) / 100.0
    return float(tol)


def read_baseline(path: str | Path) -> dict[str, dict[str, Any]]:
    """Parse and validate a baseline file; BaselineError with file and field on any problem."""
    p = Path(path)
    if not p.is_file():
        raise BaselineError(f"{p}: no such baseline file (create one with write_baseline / --write-baseline)")
    try:
        data = json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise BaselineError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'} "
                            f"({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("kpis"), dict) or not data["kpis"]:
        raise BaselineError(f"{p}: expected a mapping with a non-empty 'kpis' mapping (KPI name -> limits)")
    out = {}
    for name, lim in data["kpis"].items():
        out[str(name)] = _validate_entry(p, str(name), lim)
    return out


def _validate_entry(p: Path, name: str, lim: Any) -> dict[str, Any]:
    where = f"{p}: kpis.{name}"
    if isinstance(lim, int | float) and not isinstance(lim, bool):
        lim = {"value": lim}
    if not isinstance(lim, dict):
        raise BaselineError(f"{where}: expected a mapping like {{value: 0.35, tolerance: 0.1}} (got {lim!r})")
    unknown = set(lim) - _KEYS
    if unknown:
        raise BaselineError(f"{where}: unknown key {sorted(unknown)[0]!r} (expected one of {sorted(_KEYS)})")
    if not {"value", "min", "max"} & set(lim):
        raise BaselineError(f"{where}: needs 'value' (with a tolerance), 'min' or 'max'")
    for key in _KEYS - {"direction"}:
        if key in lim:
            try:
                x = _rel(lim[key]) if key == "tolerance" else float(lim[key])
            except (TypeError, ValueError):
                raise BaselineError(f"{where}.{key}: expected a number (got {lim[key]!r})") from None
            if not math.isfinite(x) or (key.startswith("tolerance") and x < 0):
                raise BaselineError(f"{where}.{key}: expected a finite number >= 0 (got {lim[key]!r})")
    if lim.get("direction", "lower") not in ("lower", "higher", "both"):
        raise BaselineError(f"{where}.direction: expected lower, higher or both (got {lim['direction']!r})")
    return dict(lim)


def write_baseline(run_dir: str | Path, path: str | Path, tolerance: float = 0.10,
                   warmup_s: float | None = None) -> Path:
    """Write a baseline file (YAML, or JSON if `path` ends in .json) from a run's headline KPIs.

    Relative `tolerance` for every KPI except success rates (1 percentage point absolute); for a
    replications folder, at least twice the KPI's relative 95% CI half-width, so that replication
    noise alone does not fail CI."""
    rs = load_runset(run_dir, warmup_s=warmup_s)
    values = run_kpis(rs)
    entries: dict[str, Any] = {}
    for name in tables.headline(list(values)):
        v = values[name]
        if not math.isfinite(v):
            continue
        if name.endswith("success_rate"):
            entries[name] = {"value": round(v, 6), "tolerance_abs": 0.01}
            continue
        tol = tolerance
        if rs.replications is not None and v:
            hw = rs.replications["kpis"][name].get("half_width")
            tol = max(tol, 2 * (hw or 0.0) / abs(v))
        entries[name] = {"value": float(f"{v:.6g}"), "tolerance": round(tol, 4)}
    data = {"format": BASELINE_FORMAT, "run": rs.label, "kpis": entries}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".json":
        p.write_text(strict_json(data) + "\n")
    else:
        p.write_text("# surge baseline: KPI -> limits (see reports/check.py). Edit tolerances freely.\n"
                     + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100))
    return p
