"""Scenario overlays: a mitigation (or any variant) as a small YAML file applied on a base scenario.

An overlay file has up to three keys:

    description: Retry budget: retries at most 10% of first tries   # shown in tables
    merge:                      # a partial scenario, deep-merged onto the base: mappings merge
      clients:                  # key by key, anything else (lists, scalars) replaces
        retry_budget_ratio: 0.1
    set:                        # then `--set`-style overrides, for list items and single fields
      - faults.0.magnitude=0.5

The overlay's name is its file name without `.yaml`. The merged mapping is validated like any
scenario file, so a typo in an overlay fails with the usual one-line error naming the overlay.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError
from sim.scenario import Scenario, apply_override, parse_scenario
from sim.scenario.load import read_yaml

_KEYS = {"description", "merge", "set"}


@dataclass(frozen=True)
class Overlay:
    name: str
    description: str
    merge: dict[str, Any]
    sets: tuple[str, ...]


def load_overlay(path: str | Path) -> Overlay:
    p = Path(path)
    data = read_yaml(p)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ScenarioError(f"unknown key (an overlay has {sorted(_KEYS)})", file=str(p), path=unknown[0])
    merge = data.get("merge") or {}
    if not isinstance(merge, dict):
        raise ScenarioError(f"expected a mapping (got {type(merge).__name__})", file=str(p), path="merge")
    sets = data.get("set") or []
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise ScenarioError("expected a list of 'path.to.field=value' strings", file=str(p), path="set")
    return Overlay(p.stem, str(data.get("description", "")), merge, tuple(sets))


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """A new mapping: `top` merged onto `base` (mappings recursively; other values replace)."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_with_overlay(base: str | Path, overlay: str | Path | Overlay | None = None,
                      overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> Scenario:
    """The base scenario with an overlay applied, then `overrides`, then the seed."""
    b = Path(base)
    data = read_yaml(b)
    where = str(b)
    if overlay is not None:
        ov = overlay if isinstance(overlay, Overlay) else load_overlay(overlay)
        where = f"{b} + {ov.name}"
        data = deep_merge(data, ov.merge)
        for item in ov.sets:
            apply_override(data, item, file=where)
    for item in overrides:
        apply_override(data, item, file=where)
    if seed is not None:
        data.setdefault("run", {})["seed"] = seed
    return parse_scenario(data, file=where, base_dir=b.parent)
