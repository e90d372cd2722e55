"""The order-state axis of the fleet engine's order books (sim/fleet/orders.py) and the ways
counts are split along it.

An order's state is a tag o = (h, p, w) carried with its attempts:
- h: the hold on the class's inventory service: NONE (none, or it lapsed), SOLD (confirmed),
  or held in ring slot s (`HELD0 + s`, sim/fleet/inventory.py: the slot lapses as a whole);
- p: paid (charged at least once) or not;
- w: the wrong item was chosen (a `wrong_item` fault) or not.
Axes a class does not need have size 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.fleet.split import systematic

NONE, SOLD, HELD0 = 0, 1, 2


@dataclass(frozen=True)
class Tags:
    """The order-state axis: O = H x P x W, index (h * P + p) * W + w."""

    H: int
    P: int
    W: int

    @property
    def n(self) -> int:
        return self.H * self.P * self.W

    def split(self, a: np.ndarray, axis: int) -> np.ndarray:
        """A view of `a` with its order-state axis `axis` as (H, P, W)."""
        s = a.shape
        return a.reshape(s[:axis] + (self.H, self.P, self.W) + s[axis + 1:])


def couple(x: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Counts with session states x (R, S) and order states o (R, O) of the same totals, joined
    (R, S * O) with both margins exact (laid end to end and matched: integers stay integers)."""
    R, S = x.shape
    n_o = o.shape[1]
    if S == 1:
        return o.copy()
    xc, oc = np.cumsum(x, axis=1), np.cumsum(o, axis=1)
    x0, o0 = xc - x, oc - o
    lo = np.maximum(x0[:, :, None], o0[:, None, :])
    hi = np.minimum(xc[:, :, None], oc[:, None, :])
    return np.maximum(0.0, hi - lo).reshape(R, S * n_o)


def deal(cells: np.ndarray, amounts: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Deal `amounts` (adding up to cells.sum()) over the cells (any shape) in proportion:
    integer parts, none above what a cell has (systematic: a part is at most ceil of its share)."""
    left = cells.astype(np.float64).ravel().copy()
    out = []
    for a in amounts[:-1]:
        tot = left.sum()
        part = systematic(np.array(min(a, tot)), left / tot, rng) if a > 0 and tot > 0 else np.zeros_like(left)
        part = np.minimum(part, left)
        left -= part
        out.append(part.reshape(cells.shape))
    out.append(left.reshape(cells.shape))
    return out
