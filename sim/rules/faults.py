"""How faults in force on one target combine, and what capacity is left.

- capacity_loss: independent losses compound: the fraction lost is 1 - prod(1 - f);
- slowdown: latency multipliers multiply;
- error_rate: independent failure chances compound with each other and with the service's own
  error rate: p = 1 - (1 - base) prod(1 - f);
- outage: the target serves nothing (every call fails; queued work fails at once);
- session_invalidation (auth): each one loses that fraction of the sessions issued before it;
  a session survives them all with probability prod(1 - f);
- wrong_item (a tool that chooses an order's item): independent mistakes compound like error
  rates: p = 1 - prod(1 - f).

When a call fails (`error_timing`): half of the failures strike before the call's work, half
after it, when the work was done and only the answer is lost (as real timeouts do): a payment
taken whose confirmation never arrived, a hold granted that the agent never heard of. Both the
simulator and the stack split them so, from the same draw that decides the failure.

Capacity left of `n` units (slots or replicas) after losing fraction f: n - ceil(f n), so a
loss of any size takes at least one unit and 100% takes all; the first units are the ones
down (units added later, e.g. by autoscaling, start healthy as replacements).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class FaultLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def magnitude(self) -> float: ...


@dataclass(frozen=True)
class FaultEffect:
    """The combined effect of the faults in force on one target."""

    lost_fraction: float = 0.0
    slowdown: float = 1.0
    error_rate: float = 0.0
    outage: bool = False
    wrong_item: float = 0.0  # probability an order gets the wrong item from this tool

    def units_down(self, n: int) -> int:
        """How many of `n` units (slots, replicas) are down."""
        return n if self.outage else units_down(n, self.lost_fraction)

    def units_up(self, n: int) -> int:
        return n - self.units_down(n)

    def error_with(self, base: float) -> float:
        """Failure probability of a call to a service whose own error rate is `base`."""
        return 1.0 - (1.0 - base) * (1.0 - self.error_rate) if self.error_rate else base


NO_FAULT = FaultEffect()


def units_down(n: int, fraction: float) -> int:
    """Units down when `fraction` of `n` is lost: ceil(fraction x n), within [0, n]."""
    if fraction <= 0:
        return 0
    return min(n, math.ceil(fraction * n - 1e-9))


def combine(faults: Iterable[FaultLike]) -> FaultEffect:
    """The effect of every fault in `faults` (all on one target) together."""
    kept = slow = ok = right = 1.0
    outage = False
    any_fault = False
    for f in faults:
        any_fault = True
        if f.kind == "capacity_loss":
            kept *= 1.0 - f.magnitude
        elif f.kind == "slowdown":
            slow *= f.magnitude
        elif f.kind == "error_rate":
            ok *= 1.0 - f.magnitude
        elif f.kind == "outage":
            outage = True
        elif f.kind == "wrong_item":
            right *= 1.0 - f.magnitude
    if not any_fault:
        return NO_FAULT
    return FaultEffect(1.0 - kept, slow, 1.0 - ok, outage, 1.0 - right)


NO_ERROR, BEFORE, AFTER = "none", "before", "after"


def error_timing(p_error: float, u: float) -> str:
    """Whether a call with failure probability `p_error` fails, given its U(0, 1) draw `u`, and
    when: BEFORE its work (u < p/2), AFTER it (p/2 <= u < p: the work was done, the answer is
    lost), or NO_ERROR."""
    if u < p_error / 2:
        return BEFORE
    return AFTER if u < p_error else NO_ERROR


def session_kept(fractions: Iterable[float]) -> float:
    """Probability that a session survives session invalidations of these fractions."""
    return math.prod(1.0 - f for f in fractions)
