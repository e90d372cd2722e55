"""From "help me buy" to an order, and the free-order cards a user holds.

Rules with no clock of their own (any time is passed in), so that every consumer (the SimPy
engine, the load test, and the reference stack for the stages an outcome runs) decides the same
way from the same draws. The clients call them at three points: a user's first login after the
launch (`CardRules.join`), a command's start (`Funnel.pick_class`, `Funnel.plan`) and a
command's success (`Funnel.settle`); an invited friend's registration calls `CardRules.invited`.
The reference stack, told a command's outcome, runs that outcome's stages (`Funnel.stages_for`).

- `Wallet`: the cards one user holds, has earned (at most `max_per_user`) and has redeemed.
- `CardRules`: cards for joining and for invitations, how likely a user is to open the app on a
  day given the cards held, and what a user who just joined tries first (`population.launch`).
- `Funnel`: the class mix of a user with or without a card, and the outcome of an order-placing
  command (`workload.classes.NAME.funnel`): ordered, changed_mind, no_card, out_of_stock,
  payment_error, with the stages that outcome runs.

Count forms beside the per-user ones, for the fleet engine (parity tests in
tests/fleet/test_fleet_launch_rules.py): `Funnel.mix` (of `pick_class`), `Funnel.outcome_shares`
(of `plan`), `Funnel.settles` (of `settle`) and `WalletStates` (of `Wallet` and `CardRules`:
where each rule moves a user of each wallet state, computed by applying the per-user rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.scenario.launch import Launch
from sim.scenario.schema import CommandClass, Workload

ORDERED, CHANGED_MIND, NO_CARD, OUT_OF_STOCK, PAYMENT_ERROR = (
    "ordered", "changed_mind", "no_card", "out_of_stock", "payment_error")
OUTCOMES = (ORDERED, CHANGED_MIND, NO_CARD, OUT_OF_STOCK, PAYMENT_ERROR)
WITH_CARD, WITHOUT_CARD = "card", "no_card"  # a user's state when a command starts
STATES = (WITH_CARD, WITHOUT_CARD)
GOES_AHEAD = (ORDERED, OUT_OF_STOCK, PAYMENT_ERROR)  # the user went on to order
NOT_ORDERED = (CHANGED_MIND, NO_CARD, OUT_OF_STOCK, PAYMENT_ERROR)  # the command ended without an order


class Wallet:
    """One user's free-order cards."""

    __slots__ = ("held", "earned", "redeemed")

    def __init__(self) -> None:
        self.held = self.earned = self.redeemed = 0

    def earn(self, n: int, cap: int) -> int:
        """Add up to n cards without passing `cap` earned in all; returns how many were added."""
        got = max(0, min(n, cap - self.earned))
        self.earned += got
        self.held += got
        return got

    def spend(self) -> bool:
        """Spend one card on an order; False when none is left (the order is paid in full)."""
        if self.held <= 0:
            return False
        self.held -= 1
        self.redeemed += 1
        return True


class CardRules:
    """Cards for joining and inviting, and daily activity by cards held (population.launch)."""

    def __init__(self, launch: Launch) -> None:
        c = launch.cards
        self.on_join, self.per_invitation, self.cap = c.on_join, c.per_invitation, c.max_per_user
        self.p_with, self.p_without = launch.active_with_cards, launch.active_without_cards
        first = launch.first_session
        self.try_class: str | None = first.try_class if first else None
        self.try_share = first.try_share if first else 0.0

    def first_command(self, u: float) -> str | None:
        """The class of the first command of a user's first campaign session from U(0,1) `u`
        (they try the free order), or None for the usual mix."""
        return self.try_class if u < self.try_share else None

    def join(self, wallet: Wallet) -> int:
        """A user's first login after the launch: the cards for downloading (or opening) the app."""
        return wallet.earn(self.on_join, self.cap)

    def invited(self, wallet: Wallet) -> int:
        """A friend this user invited has registered."""
        return wallet.earn(self.per_invitation, self.cap)

    def p_active(self, wallet: Wallet | None) -> float:
        """Probability that the user opens the app on a day, from the cards held at its midnight."""
        return self.p_with if wallet is not None and wallet.held > 0 else self.p_without

    # -- count forms (the fleet engine): the same rules on wallet states --------------------------
    def wallet_states(self) -> WalletStates:
        """The rules above as moves between wallet states (earned, held), for counts of users."""
        return WalletStates(self)


class WalletStates:
    """The count form of `Wallet` and `CardRules`: users counted by wallet state s = earned x
    (cap + 1) + held, and where each rule moves a user of state s. Every table is computed by
    applying the per-user rule to a `Wallet` in that state, so the two forms cannot differ."""

    def __init__(self, rules: CardRules) -> None:
        self.side = rules.cap + 1
        self.n = self.side * self.side
        states = [(e, h) for e in range(self.side) for h in range(self.side)]
        self.held = np.array([h for _, h in states])
        self.earned = np.array([e for e, _ in states])
        self.joined = self._apply(rules.join, states)
        self.invited = self._apply(rules.invited, states)
        self.spent = self._apply(lambda w: int(w.spend()), states)
        self.join_earns = self.earned[self.joined] - self.earned  # cards a join adds, per state
        self.invite_earns = self.earned[self.invited] - self.earned
        self.p_active = np.array([rules.p_active(_wallet(e, h)) for e, h in states])
        self.has_card = self.held > 0

    def index(self, earned: int, held: int) -> int:
        return earned * self.side + held

    def _apply(self, rule: Callable[[Wallet], int], states: list[tuple[int, int]]) -> np.ndarray:
        out = np.arange(len(states))
        for s, (e, h) in enumerate(states):
            if h <= e:  # the other states never occur (a user holds at most what was earned)
                w = _wallet(e, h)
                rule(w)
                out[s] = self.index(w.earned, w.held)
        return out


def _wallet(earned: int, held: int) -> Wallet:
    w = Wallet()
    w.earned, w.held, w.redeemed = earned, held, earned - held
    return w


@dataclass(frozen=True, slots=True)
class Plan:
    """What one order-placing command will do: its outcome, how many of its stages run (the rest
    are skipped: the user stopped), the index of the payment stage among them (-1: none runs), and
    the user's state when it started."""

    outcome: str
    n_stages: int
    pay_stage: int
    state: str
    exactly_once: bool


class Funnel:
    """The class mix by user state and the outcome of each funnel class's commands."""

    def __init__(self, workload: Workload) -> None:
        self.names = list(workload.classes)
        self.classes = dict(workload.classes)
        self.cum_without = _cumulative([c.probability for c in workload.classes.values()])
        self.cum_with = _cumulative(_with_card_mix(workload))
        self._plans = {n: _stops(c) for n, c in workload.classes.items() if c.funnel is not None}

    def mix(self, has_card: bool) -> np.ndarray:
        """The count form of `pick_class`: the probability of each class (in `names` order)."""
        return _shares(self.cum_with if has_card else self.cum_without)

    def pick_class(self, has_card: bool, u: float) -> str:
        """The class of a command from U(0,1) `u`, with the mix of a user with or without a card."""
        cum = self.cum_with if has_card else self.cum_without
        for i, c in enumerate(cum):
            if u < c:
                return self.names[i]
        return self.names[-1]

    def has_funnel(self, name: str) -> bool:
        return name in self._plans

    def stages_for(self, name: str, outcome: str) -> tuple[int, int]:
        """(stages that run, index of the charging payment stage or -1) of a command of funnel
        class `name` with `outcome`. For out_of_stock and payment_error the last stage that runs
        is the one that fails: the order tool finds no stock, the payment tool declines (the order
        tool, in a class without a payment stage)."""
        return self._plans[name][outcome]

    def plan(self, name: str, has_card: bool, uniform: Callable[[], float]) -> Plan:
        """The outcome of a command of funnel class `name` (three U(0,1) draws from `uniform`)."""
        f = self.classes[name].funnel
        assert f is not None
        u_go, u_stock, u_pay = uniform(), uniform(), uniform()
        if has_card:
            outcome = ORDERED if u_go < f.convert_with_card else CHANGED_MIND
        else:
            outcome = ORDERED if u_go < f.convert_without_card else NO_CARD
        if outcome == ORDERED:
            if u_stock < f.out_of_stock:
                outcome = OUT_OF_STOCK
            elif u_pay < f.payment_error:
                outcome = PAYMENT_ERROR
        n_stages, pay_stage = self._plans[name][outcome]
        return Plan(outcome, n_stages, pay_stage, WITH_CARD if has_card else WITHOUT_CARD, f.exactly_once)

    def outcome_shares(self, name: str, has_card: bool) -> dict[str, float]:
        """The count form of `plan`: the probability of each outcome of a command of funnel class
        `name` started by a user with (or without) a card."""
        f = self.classes[name].funnel
        assert f is not None
        go = f.convert_with_card if has_card else f.convert_without_card
        out = dict.fromkeys(OUTCOMES, 0.0)
        out[CHANGED_MIND if has_card else NO_CARD] = 1.0 - go
        out[OUT_OF_STOCK] = go * f.out_of_stock
        out[PAYMENT_ERROR] = go * (1.0 - f.out_of_stock) * f.payment_error
        out[ORDERED] = go * (1.0 - f.out_of_stock) * (1.0 - f.payment_error)
        return out

    @classmethod
    def settles(cls, outcome: str, state: str) -> tuple[bool, bool]:
        """The count form of `settle` for a command whose user is still in the state it started
        in: (an order was placed, a card paid for it)."""
        plan = Plan(outcome, 0, -1, state, True)
        return cls.settle(plan, _wallet(1, 1) if state == WITH_CARD else _wallet(0, 0))

    @staticmethod
    def settle(plan: Plan, wallet: Wallet | None) -> tuple[bool, bool]:
        """A command that succeeded: (an order was placed, a card paid for it)."""
        if plan.outcome != ORDERED:
            return False, False
        return True, wallet is not None and wallet.spend()


def _shares(cum: list[float]) -> np.ndarray:
    """Class probabilities of the inversion in `pick_class` (the last class takes the rest)."""
    c = np.minimum(np.asarray(cum, dtype=float), 1.0)
    p = np.diff(np.concatenate([[0.0], c]))
    p[-1] = 1.0 - (c[-2] if len(c) > 1 else 0.0)
    return np.maximum(p, 0.0)


def _cumulative(ps: list[float]) -> list[float]:
    out, acc = [], 0.0
    for p in ps:
        acc += p
        out.append(acc)
    return out


def _with_card_mix(workload: Workload) -> list[float]:
    """Classes with `probability_with_card` take it; the others share what is left in proportion
    to `probability`."""
    cs = list(workload.classes.values())
    given = sum(c.probability_with_card or 0.0 for c in cs)
    rest = sum(c.probability for c in cs if c.probability_with_card is None)
    left = max(0.0, 1.0 - given)
    return [c.probability_with_card if c.probability_with_card is not None
            else (c.probability * left / rest if rest else 0.0) for c in cs]


def _stops(cls: CommandClass) -> dict[str, tuple[int, int]]:
    """Per outcome: (stages that run, index of the payment stage if it runs, else -1)."""
    f = cls.funnel
    assert f is not None
    tools = [(i, st.tool.service) for i, st in enumerate(cls.stages) if st.tool is not None]
    i_order = next(i for i, s in tools if s == f.order_tool)
    i_pay = next((i for i, s in tools if s == f.payment_tool and i > i_order), -1)
    everything = len(cls.stages)
    declined = (i_order, -1)  # the agent showed the options; the user stopped before the order
    return {
        ORDERED: (everything, i_pay),
        CHANGED_MIND: declined,
        NO_CARD: declined,
        OUT_OF_STOCK: (i_order + 1, -1),
        PAYMENT_ERROR: (i_pay + 1 if i_pay >= 0 else i_order + 1, -1),  # the charge failed: nothing paid
    }


def poisson_from(uniform: Callable[[], float], mean: float) -> int:
    """A Poisson draw by inversion from U(0,1) draws (one per step; means here are a few)."""
    if mean <= 0:
        return 0
    if mean > 30:  # normal approximation: never reached by the scenarios' means, kept exact enough
        z = math.sqrt(-2 * math.log(max(uniform(), 1e-300))) * math.cos(2 * math.pi * uniform())
        return max(0, round(mean + math.sqrt(mean) * z))
    u, k = uniform(), 0
    p = math.exp(-mean)
    cdf = p
    while u > cdf and k < 1000:
        k += 1
        p *= mean / k
        cdf += p
    return k


__all__ = ["GOES_AHEAD", "NOT_ORDERED", "OUTCOMES", "STATES", "CardRules", "Funnel", "Plan", "Wallet", "WalletStates",
           "poisson_from"]
