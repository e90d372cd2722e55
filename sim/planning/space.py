"""What a sweep or a plan varies: axes over scenario fields, and where the scenario comes from.

An axis is written like a `--set` override with several values:

    services.llm.replicas=1,2,4,8        explicit values (YAML scalars: 8, 0.5, lifo)
    services.llm.replicas=1..16          integers lo..hi, both included
    arrivals.scale=0.6..1.55..0.05       lo..hi in steps (hi included when it falls on a step)
    services.llm.replicas                (plan only) an integer >= 1, searched from the scenario's value

A point is one value per axis, applied as `path=value` overrides after the scenario's own
`--set` overrides, so a typo in a path fails with the scenario's one-line error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.campaign.overlay import load_with_overlay
from sim.errors import SurgeError
from sim.scenario import Scenario

Point = tuple[str, ...]  # `path=value` overrides, one per axis


class PlanningError(SurgeError):
    """A sweep or plan asked for something that cannot be done (bad --vary, no answer possible)."""


@dataclass(frozen=True)
class Axis:
    """One varied field: its path and values (None: an open integer axis, plan only)."""

    path: str
    values: tuple[Any, ...] | None
    texts: tuple[str, ...] = ()  # each value as written in the override

    @property
    def is_open(self) -> bool:
        return self.values is None

    def override(self, i: int) -> str:
        return f"{self.path}={self.texts[i]}"

    def override_of(self, value: Any) -> str:
        return f"{self.path}={_text(value)}"


def parse_axis(spec: str) -> Axis:
    """`path=v1,v2`, `path=lo..hi[..step]` or a bare `path` (see the module docstring)."""
    path, sep, raw = spec.partition("=")
    path = path.strip()
    if not path or any(not p for p in path.split(".")):
        raise PlanningError(f"--vary: expected path.to.field=v1,v2,... (got {spec!r})")
    if not sep:
        return Axis(path, None)
    raw = raw.strip()
    texts = _range(raw, spec) if ".." in raw else tuple(t.strip() for t in raw.split(",") if t.strip())
    if not texts:
        raise PlanningError(f"--vary {path}: expected at least one value (got {raw!r})")
    values = tuple(_parse(t, spec) for t in texts)
    if len(set(map(repr, values))) != len(values):
        raise PlanningError(f"--vary {path}: values must be distinct (got {raw!r})")
    return Axis(path, values, texts)


def _parse(text: str, spec: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise PlanningError(f"--vary: value is not valid YAML (got {text!r} in {spec!r})") from None


def _range(raw: str, spec: str) -> tuple[str, ...]:
    parts = raw.split("..")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise PlanningError(f"--vary: a range is lo..hi or lo..hi..step with numbers (got {spec!r})") from None
    if len(nums) not in (2, 3) or nums[1] < nums[0] or (len(nums) == 3 and nums[2] <= 0):
        raise PlanningError(f"--vary: a range is lo..hi or lo..hi..step with lo <= hi, step > 0 (got {spec!r})")
    lo, hi = nums[0], nums[1]
    step = nums[2] if len(nums) == 3 else 1.0
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > 10_000:
        raise PlanningError(f"--vary: a range of more than 10,000 values (got {spec!r})")
    ints = all(float(x).is_integer() for x in nums) and "." not in raw.replace("..", "")
    return tuple(str(int(lo + i * step)) if ints else _text(round(lo + i * step, 10)) for i in range(count))


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def grid(axes: Sequence[Axis]) -> list[Point]:
    """Every combination of the axes' values, the first axis varying slowest."""
    for a in axes:
        if a.is_open:
            raise PlanningError(f"--vary {a.path}: a sweep needs values (path=v1,v2,... or lo..hi)")
    return [tuple(a.override(i) for a, i in zip(axes, idx, strict=True))
            for idx in itertools.product(*(range(len(a.values or ())) for a in axes))]


def value_at(sc: Scenario, path: str) -> Any:
    """The scenario's value at a dotted path (None when the path is unset or absent)."""
    node: Any = sc.model_dump(mode="json")
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def point_values(point: Point) -> dict[str, Any]:
    """`{path: value}` of a point's overrides."""
    out = {}
    for item in point:
        path, _, text = item.partition("=")
        out[path] = yaml.safe_load(text)
    return out


@dataclass(frozen=True)
class Source:
    """Where every candidate comes from: a scenario file, an optional overlay, `--set` overrides."""

    path: Path
    overlay: Path | None = None
    sets: tuple[str, ...] = ()

    def load(self, extra: Sequence[str] = (), seed: int | None = None) -> Scenario:
        return load_with_overlay(self.path, self.overlay, [*self.sets, *extra], seed=seed)

    def with_sets(self, *more: str) -> Source:
        return Source(self.path, self.overlay, (*self.sets, *more))
