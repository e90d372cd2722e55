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
from typing import ClassVar, Protocol

Uniform = Callable[[], float]


class ReplicaLoad(Protocol):
    @property
    def load(self) -> int: ...
    @property
    def kv_used_tokens(self) -> int: ...
    @property
    def kv_capacity_tokens(self) -> int: ...


class Router:
    """The contract: `pick(replicas, uniform)` -> index into `replicas` (never empty)."""

    name: ClassVar[str]

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        raise NotImplementedError

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


class Random(Router):
    name = "random"

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        return min(int(uniform() * len(replicas)), len(replicas) - 1)


class ShortestQueue(Router):
    name = "jsq"

    def pick(self, replicas: Sequence[ReplicaLoad], uniform: Uniform) -> int:
        best, fewest = 0, replicas[0].load
        for i in range(1, len(replicas)):
            n = replicas[i].load
            if n < fewest:
                best, fewest = i, n
        return best


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
