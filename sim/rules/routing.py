"""Routing: which LLM replica (among those taking work) gets a new sequence.

Policies (`services.llm.routing`), each one small class in `ROUTERS`:

- round_robin: the next replica in turn; the first sequence goes to the first replica;
- random: uniformly at random;
- jsq: join the shortest queue: the fewest sequences submitted and not finished (waiting or
  running) — what a replica's `load` is on both sides;
- power_of_two: two *distinct* replicas at random, the one with the smaller load;
- least_kv: the smallest fraction of KV cache in use (then the smaller load).

Ties always go to the first replica in the list, so a decision is a pure function of the
loads and the draws. A replica is anything with `load`, `kv_used_tokens` and
`kv_capacity_tokens`; `pick` gets the replicas taking work, in a stable order, and a
`uniform()` source of U(0, 1) draws (the caller's own seeded stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

Uniform = Callable[[], float]


class ReplicaLoad(Protocol):
    @property
    def load(self) -> int: ...
    @property
    def kv_used_tokens(self) -> int: ...
    @property
    def kv_capacity_tokens(self) -> int: ...


@dataclass
class _Load:
    load: int
    kv_used_tokens: int
    kv_capacity_tokens: int


class Router:
    """The contract: `pick(replicas, uniform)` -> index into `replicas` (never empty).

    `spread(n, loads, uniform, kv_used, kv_capacity)` is the same rule for a batch: how many of
    n new sequences (sent one after another, nothing finishing in between) each replica gets;
    by default n picks with each pick's load counted in. Subclasses give exact closed forms."""

    name: ClassVar[str]

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        raise NotImplementedError

    def spread(self, n: int, loads: Sequence[int], uniform: Uniform, kv_used: Sequence[int] | None = None,
               kv_capacity: Sequence[int] | None = None) -> np.ndarray:
        """Sequences per replica (ints, summing to n) for n sequences routed in a row."""
        reps = [_Load(int(lo), int(kv_used[i]) if kv_used is not None else 0,
                      int(kv_capacity[i]) if kv_capacity is not None else 1) for i, lo in enumerate(loads)]
        out = np.zeros(len(reps), dtype=np.int64)
        for _ in range(n):
            i = self.pick(reps, uniform)
            out[i] += 1
            reps[i].load += 1
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobin(Router):
    name = "round_robin"

    def __init__(self) -> None:
        self.turn = 0

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        i = self.turn % len(replicas)
        self.turn += 1
        return i

    def spread(self, n: int, loads: Sequence[int], uniform: Uniform, kv_used: Sequence[int] | None = None,
               kv_capacity: Sequence[int] | None = None) -> np.ndarray:
        m = len(loads)
        out = np.full(m, n // m, dtype=np.int64)
        first = self.turn % m
        out[(first + np.arange(n % m)) % m] += 1
        self.turn += n
        return out


class Random(Router):
    name = "random"

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        return min(int(uniform() * len(replicas)), len(replicas) - 1)

    def spread(self, n: int, loads: Sequence[int], uniform: Uniform, kv_used: Sequence[int] | None = None,
               kv_capacity: Sequence[int] | None = None) -> np.ndarray:
        m = len(loads)
        idx = np.minimum((np.array([uniform() for _ in range(n)]) * m).astype(np.int64), m - 1)
        return np.bincount(idx, minlength=m).astype(np.int64)


class ShortestQueue(Router):
    name = "jsq"

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        best, fewest = 0, replicas[0].load
        for i in range(1, len(replicas)):
            n = replicas[i].load
            if n < fewest:
                best, fewest = i, n
        return best

    def spread(self, n: int, loads: Sequence[int], uniform: Uniform, kv_used: Sequence[int] | None = None,
               kv_capacity: Sequence[int] | None = None) -> np.ndarray:
        """Water-filling: the least loaded are filled up to a common level; the last sequences
        go to the first replicas at that level (ties go to the first replica, as in `pick`)."""
        lo = np.asarray(loads, dtype=np.int64)
        if n <= 0:
            return np.zeros(len(lo), dtype=np.int64)
        srt = np.sort(lo)
        # the highest level L with sum(max(0, L - load)) <= n
        cum = np.cumsum(srt)
        k = np.arange(1, len(srt) + 1)
        cost_at = k * srt - cum  # cost of raising the k lowest to the k-th lowest load
        j = int(np.searchsorted(cost_at, n, side="right"))  # replicas that take part
        level = (n + cum[j - 1]) // j
        out = np.maximum(0, level - lo) * (lo <= level)
        rest = n - int(out.sum())
        at_level = np.nonzero(lo + out == level)[0]
        out[at_level[:rest]] += 1
        return out


class PowerOfTwo(Router):
    name = "power_of_two"

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        n = len(replicas)
        if n == 1:
            return 0
        a = min(int(uniform() * n), n - 1)
        b = min(int(uniform() * (n - 1)), n - 2)
        if b >= a:
            b += 1  # two distinct replicas
        first, second = min(a, b), max(a, b)
        return second if replicas[second].load < replicas[first].load else first


class LeastKV(Router):
    name = "least_kv"

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        def key(i: int) -> tuple[float, int, int]:
            r = replicas[i]
            return r.kv_used_tokens / max(1, r.kv_capacity_tokens), r.load, i

        return min(range(len(replicas)), key=key)


ROUTERS: dict[str, type[Router]] = {r.name: r for r in (RoundRobin, Random, ShortestQueue, PowerOfTwo, LeastKV)}


def make_router(policy: str) -> Router:
    """A router for `policy` (a name in `ROUTERS`)."""
    try:
        return ROUTERS[policy]()
    except KeyError:
        raise ValueError(f"'routing' must be one of {sorted(ROUTERS)} (got {policy!r})") from None
