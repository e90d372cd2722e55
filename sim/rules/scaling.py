"""Scaling a scenario by a factor: the same system, `factor` times as big (or small).

What scales: the arrival rate (`arrivals.scale`; a trace is compressed in time), and every
capacity that grows with a fleet — LLM replicas and autoscaling bounds, gateway concurrency,
queue and global rate limit (rate and burst), auth and tool concurrency and queues, and how many
items an inventory has, hot ones included (a cell of the population gets its share of the seat
blocks, so what sells out, and when, stays about the same; a cell of one item has no hot items).
Each count is rounded up and kept at least 1 (a bound of 0 stays 0); rates are multiplied;
scheduled proactive tasks scale with `arrivals.scale`. What does not scale: per-replica engine
limits (max_num_seqs, batch tokens, KV cache, replica queue), per-user rate limits (a user is a
user at any scale), an item's stock and the units one hold takes (a block of seats is a block of
seats), latencies, error rates, timeouts, SLOs.

Used by the load test (`--scale`), the stack (`surge stack serve --scale`), benchmarks and the
cell-size studies, on the raw mapping before validation, so the result is validated like any
scenario file.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from pydantic import BaseModel

from sim.errors import ScenarioError
from sim.scenario import Scenario, parse_scenario
from sim.scenario.services import Gateway, Service


def scaled_count(n: int, factor: float) -> int:
    """A count (slots, replicas, queue places) scaled: ceil(n x factor), at least 1 (0 stays 0)."""
    if n == 0:
        return 0
    return max(1, math.ceil(n * factor - 1e-9))


def _scale_keys(node: Any, keys: tuple[str, ...], factor: float, model: type[BaseModel] | None = None) -> None:
    """Scale the integer `keys` of a mapping; a key left out takes `model`'s default first (so a
    tool's default concurrency scales like a written one)."""
    if not isinstance(node, dict):
        return
    for k in keys:
        v = node.get(k)
        if v is None and model is not None and k not in node:
            v = model.model_fields[k].default
        if isinstance(v, int) and not isinstance(v, bool):
            node[k] = scaled_count(v, factor)


def scale_data(data: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy of a raw scenario mapping scaled by `factor` (see the module docstring)."""
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 0):
        raise ScenarioError(f"scale factor must be a finite number > 0 (got {factor!r})")
    d = copy.deepcopy(data)
    arr = d.get("arrivals")
    if not isinstance(arr, dict):
        arr = d["arrivals"] = {}
    arr["scale"] = float(arr.get("scale", 1.0)) * factor
    svc = d.get("services")
    if not isinstance(svc, dict):
        return d
    llm = svc.get("llm")
    if isinstance(llm, dict):
        llm["replicas"] = scaled_count(int(llm.get("replicas", 1)), factor)
        _scale_keys(llm.get("autoscaling"), ("min_replicas", "max_replicas"), factor)
    gw = svc.get("gateway")
    if isinstance(gw, dict):
        _scale_keys(gw, ("concurrency", "queue_limit"), factor, Gateway)
        rl = gw.get("rate_limit")
        if isinstance(rl, dict):
            if isinstance(rl.get("global_per_s"), int | float):
                rl["global_per_s"] = rl["global_per_s"] * factor
            if isinstance(rl.get("burst"), int | float):
                rl["burst"] = max(1.0, rl["burst"] * factor)
    tools = svc.get("tools")
    pools = [svc.get("auth"), *(tools.values() if isinstance(tools, dict) else ())]
    for p in pools:
        _scale_keys(p, ("concurrency", "queue_limit"), factor, Service)
        if isinstance(p, dict) and isinstance(p.get("inventory"), dict):
            _scale_inventory(p["inventory"], factor)
    return d


def _scale_inventory(inv: dict[str, Any], factor: float) -> None:
    _scale_keys(inv, ("items",), factor)
    hot = inv.get("hot")
    if not isinstance(hot, dict) or not isinstance(inv.get("items"), int):
        return
    _scale_keys(hot, ("items",), factor)
    if isinstance(hot.get("items"), int) and hot["items"] >= inv["items"] and hot.get("share", 0) < 1:
        if inv["items"] > 1:
            hot["items"] = inv["items"] - 1  # the hot items stay a part of the whole
        else:
            del inv["hot"]


def scale_scenario(sc: Scenario, factor: float) -> Scenario:
    """A validated scenario scaled by `factor` (its data files still resolve from its folder)."""
    from pathlib import Path

    data = sc.model_dump(mode="json", exclude_unset=True)
    return parse_scenario(scale_data(data, factor), file=f"{sc.name} x{factor:g}", base_dir=Path(sc.base_dir))


def scale_factor(sc: Scenario, text: str) -> float:
    """The factor a `--scale` value asks for: a number, or `full` (the cell made whole: the real
    population and fleet, 1 / population.scale)."""
    if text.strip().lower() == "full":
        if sc.population is None or sc.population.scale >= 1.0:
            raise ScenarioError(f"'--scale full' needs a cell (population.scale < 1); {sc.name} has "
                                f"{'no population' if sc.population is None else 'population.scale 1'}")
        return 1.0 / sc.population.scale
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise ScenarioError(f"'--scale' must be a number > 0 or 'full' (got {text!r})")
    return factor
