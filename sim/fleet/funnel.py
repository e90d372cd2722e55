"""The buy funnel in the fleet engine (`workload.classes.NAME.funnel`), as counts.

The rules are `sim.funnel`'s, in their count forms: a command's class by its user's card state
(`Funnel.mix`, the count form of `pick_class`; a user's first campaign session tries the free
order first with `CardRules.try_share`), its outcome when it starts (`Funnel.outcome_shares`,
of `plan`), the stages that outcome runs (`Funnel.stages_for`) and what a success settles
(`Funnel.settles`: an order, a card spent).

The pipeline carries no plan with an attempt: attempts of a class are alike to the servers up
to the stage where a plan stops, so where some plans stop (after stage j) a share of the calls
that finished stage j leaves as a success, the share of those plans among the plans still
going at j. Plans are weighted by when they started (an exponential window of `WINDOW_S`: a
few commands in a small cell, the recent mix at scale), so the share follows the card share
as the day moves. A success's outcome is dealt over the plans that stop there in the same
proportion. Known difference: a payment_error plan's payment stage is charged by the order
book (the SimPy engine charges nothing there; 0.2% of spring_festival's payments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.client import split_comp
from sim.fleet.sending import start_commands
from sim.fleet.split import systematic
from sim.funnel import GOES_AHEAD, OUTCOMES, STATES, WITH_CARD, CardRules, Funnel
from sim.results import names as N
from sim.rules.outcomes import OK

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim
    from sim.fleet.flows import ClassFlow
    from sim.fleet.stations import Owner

WINDOW_S = 60.0  # how far back started plans weigh in the stop shares (seconds, e-folding)
TYPES = [(o, st) for st in STATES for o in OUTCOMES]  # a plan: (outcome, the user's card state)


@dataclass
class FunnelClass:
    """One funnel class: where each plan type stops, its shares by card state, recent plans."""

    ci: int
    stop: np.ndarray  # (T,) the stage after which a plan of each type ends the command
    shares: dict[bool, np.ndarray]  # has_card -> (T,) probabilities of the types
    ordered: np.ndarray  # (T,) a success places an order
    spends: np.ndarray  # (T,) a success spends a card
    w: np.ndarray  # (R, T) plans started, weighted by age
    t: float = 0.0  # when w was last decayed


class FleetFunnel:
    """Class mix by card state and the funnel's outcomes for a batch (the module docstring)."""

    def __init__(self, sim: FleetSim) -> None:
        sc = sim.sc
        self.sim = sim
        self.rule = Funnel(sc.workload)
        assert self.rule.names == sim.classes
        self.mix = {c: self.rule.mix(c) for c in (True, False)}
        launch = sc.population.launch if sc.population is not None else None
        cards = CardRules(launch) if launch is not None else None
        self.try_share = cards.try_share if cards is not None and cards.try_class in sim.classes else 0.0
        self.try_ci = sim.classes.index(cards.try_class) if self.try_share > 0 else -1  # type: ignore[union-attr, arg-type]
        self.by_name: dict[str, FunnelClass] = {}
        for ci, name in enumerate(sim.classes):
            if self.rule.has_funnel(name):
                self.by_name[name] = self._class(ci, name)

    def _class(self, ci: int, name: str) -> FunnelClass:
        stop = np.array([self.rule.stages_for(name, o)[0] - 1 for o, _ in TYPES])
        shares = {}
        for has_card in (True, False):
            st = WITH_CARD if has_card else STATES[1]
            p = self.rule.outcome_shares(name, has_card)
            shares[has_card] = np.array([p[o] if s == st else 0.0 for o, s in TYPES])
        settled = [Funnel.settles(o, s) for o, s in TYPES]
        return FunnelClass(ci, stop, shares, np.array([a for a, _ in settled], dtype=float),
                           np.array([b for _, b in settled], dtype=float), np.zeros((self.sim.R, len(TYPES))))

    @staticmethod
    def of(sim: FleetSim) -> FleetFunnel | None:
        sc = sim.sc
        funnel = any(c.funnel is not None for c in sc.workload.classes.values())
        launch = sc.population is not None and sc.population.launch is not None
        return FleetFunnel(sim) if funnel or launch else None

    # -- commands start ------------------------------------------------------------------------
    def new_commands(self, sess: np.ndarray, n: int, i: int) -> None:
        """Next commands of sessions in progress (R, S), by the card share of those sessions."""
        launch = self.sim.launch
        c = launch.card_share() if launch is not None else np.zeros(self.sim.R)
        parts = systematic(sess, np.broadcast_to(np.stack([c, 1.0 - c], axis=-1)[:, None, :],
                                                 sess.shape + (2,)), self.sim.rng)
        zero = np.zeros_like(sess)
        self.start(parts[..., 0], parts[..., 1], zero, zero, n, i)

    def start(self, card: np.ndarray, plain: np.ndarray, try_card: np.ndarray, try_plain: np.ndarray,
              n: int, i: int) -> None:
        """Sessions (R, S) each starting a command, by card state; those `try_*` are a user's
        first campaign session (the first command tries the free order)."""
        sim = self.sim
        total = np.zeros(card.shape + (len(sim.classes),))
        for has_card, x, t in ((True, card, try_card), (False, plain, try_plain)):
            by = systematic(x, self.mix[has_card], sim.rng) if x.any() else np.zeros_like(total)
            if t.any() and self.try_ci >= 0:
                tries = systematic(t, np.array([self.try_share, 1.0 - self.try_share]), sim.rng)
                by += systematic(tries[..., 1], self.mix[has_card], sim.rng)
                by[..., self.try_ci] += tries[..., 0]
            elif t.any():
                by += systematic(t, self.mix[has_card], sim.rng)
            if by.any():
                self._plans(by.sum(axis=1), has_card, i)
                total += by
        for ci, fl in enumerate(sim.flows):
            x = total[:, :, ci]
            if x.any():
                start_commands(sim, fl, x, n, i)

    def _plans(self, by_class: np.ndarray, has_card: bool, i: int) -> None:
        """Funnel commands (R, C) started by users with (without) a card: their plans."""
        rec, st = self.sim.rec, WITH_CARD if has_card else STATES[1]
        for name, fc in self.by_name.items():
            x = by_class[:, fc.ci]
            if not x.any():
                continue
            plans = systematic(x, fc.shares[has_card], self.sim.rng)  # (R, T)
            rec.add(N.buy(name, st), i, x)
            goes = np.array([o in GOES_AHEAD for o, _ in TYPES])
            rec.add(N.ORDERS_ATTEMPTED, i, plans[:, goes].sum(axis=1))
            self._decay(fc)
            fc.w += plans

    def _decay(self, fc: FunnelClass) -> None:
        now = self.sim.now
        if now > fc.t:
            fc.w *= np.exp(-(now - fc.t) / WINDOW_S)
            fc.t = now

    # -- commands stop -------------------------------------------------------------------------
    def collect(self, fl: ClassFlow, j: int, o: Owner, i: int) -> None:
        """Calls of a funnel class that finished stage j: those whose plan stops after j end
        their command (a success); the rest go on (the engine moves them)."""
        fc = self.by_name.get(fl.name)
        if fc is None or not o.done.any() or not (fc.stop == j).any():
            return
        sim = self.sim
        self._decay(fc)
        here, on = fc.stop == j, fc.stop >= j
        w = self._weights(fc, on)
        last = j == len(fl.stages) - 1
        if last:
            out = o.done
        else:
            p = w[:, here].sum(axis=1) / np.maximum(w[:, on].sum(axis=1), 1e-300)
            out = systematic(o.done, np.broadcast_to(np.stack([p, 1.0 - p], axis=-1)[:, None, :],
                                                     o.done.shape + (2,)), sim.rng)[..., 0]
            o.done = o.done - out
            fl.out[OK] = fl.out.get(OK, 0) + out
            if fl.book is not None:  # the book moved them to stage j + 1: they leave from there
                b = fl.book
                cells = split_comp(b.pos[b.first + j + 1], out, b.rng)
                b.pos[b.first + j + 1] -= cells
                b._out(OK, cells)
        ok = out[:, : sim.rows.A].sum(axis=1)  # the ghost row's clients have gone: no success
        if not ok.any():
            return
        wh = self._weights(fc, here)[:, here]  # the plans that stop here (or those expected)
        wh = np.where(wh.sum(axis=1, keepdims=True) > 0, wh, 1.0)
        by_type = np.zeros_like(w)
        by_type[:, here] = systematic(ok, wh / np.maximum(wh.sum(axis=1, keepdims=True), 1e-300), sim.rng)
        for t in np.nonzero(here)[0]:
            if by_type[:, t].any():
                oc, st = TYPES[t]
                sim.rec.add(N.buy_outcome(fl.name, st, oc), i, by_type[:, t])
        sim.rec.add(N.ORDERS, i, by_type @ fc.ordered)
        spent = by_type @ fc.spends
        sim.rec.add(N.CARDS_REDEEMED, i, spent)
        if sim.launch is not None:
            sim.launch.spend(spent)

    def _weights(self, fc: FunnelClass, on: np.ndarray) -> np.ndarray:
        """Recent plans (R, T); where none of the types `on` weigh any more, those expected now."""
        if (fc.w[:, on].sum(axis=1) > 1e-9).all():
            return fc.w
        launch = self.sim.launch
        c = launch.card_share() if launch is not None else np.zeros(self.sim.R)
        expected = c[:, None] * fc.shares[True][None, :] + (1.0 - c)[:, None] * fc.shares[False][None, :]
        return np.where(fc.w[:, on].sum(axis=1, keepdims=True) > 1e-9, fc.w, expected)


__all__ = ["FleetFunnel", "WINDOW_S"]
