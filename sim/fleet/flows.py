"""A command class in the fleet engine: its stages (a pool or the LLM group, and this class's
owner there) and its attempts in flight, by attempt number, session state and row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.client import Retries
from sim.fleet.llm import LLMGroup, LLMOwner
from sim.fleet.orders import OrderBook
from sim.fleet.stations import Owner, Pool

if TYPE_CHECKING:
    from sim.fleet.timestep import Regrid


@dataclass
class Stage:
    kind: str  # "tool" or "llm"
    station: Pool | LLMGroup
    owner: Owner | LLMOwner


@dataclass
class ClassFlow:
    """One command class: its stages and its attempts in flight."""

    name: str
    stages: list[Stage]
    comp: np.ndarray  # (R, K, S, A) attempts in flight by attempt number, session state, row
    age0: np.ndarray  # (R, K, A) sum of command ages at the attempt's start, s
    retries: Retries
    good_within_s: float
    places_order: bool
    book: OrderBook | None = None  # the class's orders (sim/fleet/orders.py), if it places them
    forward: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (R, NR) into the next stage
    out: dict[str, np.ndarray] = field(default_factory=dict)  # pipeline outcomes this step, by row
    ready: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (R, K, S) to send next step
    ready_age: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (R, K)
    # of this step's outcomes `out`, those that never held a gateway slot (they left its queue) (R,)
    unslotted: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def regrid(self, g: Regrid, a_new: int, dt: float) -> None:
        """The class's attempts in flight (by row) and its retries, on another step grid."""
        self.comp = g.past(self.comp, 3, a_new)
        self.age0 = g.past(self.age0, 2, a_new)
        self.forward = g.rows(self.forward, 1, a_new)
        self.retries.regrid(g, dt)
        if self.book is not None:
            self.book.regrid(g, a_new, self.retries.cal)

