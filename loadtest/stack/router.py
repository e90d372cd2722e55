"""Routing of new sequences to LLM replicas, with the simulator's policy names.

- round_robin: the next replica in turn (among those up).
- random: uniformly at random.
- jsq: join the shortest queue — fewest sequences submitted and not finished.
- power_of_two: two distinct replicas at random, the one with fewer sequences.
- least_kv: the smallest share of KV cache in use (ties: fewer sequences).
Ties go to the lowest index, so decisions are reproducible for a given seed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

POLICIES = ("round_robin", "random", "jsq", "power_of_two", "least_kv")


class Replica(Protocol):
    @property
    def load(self) -> int: ...
    @property
    def kv_used_tokens(self) -> int: ...
    @property
    def kv_capacity_tokens(self) -> int: ...


class Router:
    """Picks a replica index among the ones up; `rng` is this router's own stream."""

    def __init__(self, policy: str, rng: np.random.Generator) -> None:
        if policy not in POLICIES:
            raise ValueError(f"'routing' must be one of {POLICIES} (got {policy!r})")
        self.policy, self._rng, self._next = policy, rng, 0

    def pick(self, replicas: list[Replica], up: list[int]) -> int | None:
        """Index into `replicas` of the chosen one; None when `up` is empty."""
        if not up:
            return None
        if self.policy == "round_robin":
            i = up[self._next % len(up)]
            self._next += 1
            return i
        if self.policy == "random":
            return up[int(self._rng.integers(len(up)))]
        if self.policy == "jsq":
            return min(up, key=lambda j: (replicas[j].load, j))
        if self.policy == "power_of_two":
            if len(up) == 1:
                return up[0]
            a, b = self._rng.choice(len(up), size=2, replace=False)
            return min(up[int(a)], up[int(b)], key=lambda j: (replicas[j].load, j))
        return min(up, key=lambda j: (replicas[j].kv_used_tokens / max(1, replicas[j].kv_capacity_tokens),
                                      replicas[j].load, j))
