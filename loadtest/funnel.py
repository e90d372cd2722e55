"""The buy funnel as the load test runs it: `sim.funnel`'s rules, each user's cards and draws,
counted under the simulator's series names (`sim.results.names`: buy, buy_outcome,
orders_attempted, orders, cards_redeemed).

A load-test user is its session (the open model starts one session per user; a closed-model
user loops over one session), so its `Shopper` (its `Wallet` and its own random draws) lives on
the `HttpSession`. As in the simulator:
- with `population.launch`, a user's first session after the launch joins the campaign
  (`CardRules.join`) and its first command may be the one it tries first
  (`CardRules.first_command`); its classes follow the mix of a user with or without a card
  (`Funnel.pick_class`), drawn from the user's own stream;
- a command of a funnel class draws its outcome when it starts (`Funnel.plan`, three draws of the
  user's stream), and the stack is told that outcome (`outcome` in the agent command): it runs
  that outcome's stages, and out of stock or a declined payment is what the stack answers;
- a success is settled on the outcome the stack answered (`Funnel.settle`: an order, a card).

Invitations are the simulator's alone: the load test's sessions come from the schedule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sim.funnel import GOES_AHEAD, OUTCOMES, STATES, CardRules, Funnel, Plan, Wallet
from sim.results import names as N
from sim.scenario import Scenario
from sim.streams import Streams

if TYPE_CHECKING:
    from loadtest.tally import Tally


class Shopper:
    """One load-test user's funnel state: cards, whether it joined the campaign, whether its
    next command is its first in the campaign, and its draws (U(0,1))."""

    __slots__ = ("wallet", "in_campaign", "trying", "uniform")

    def __init__(self, uniform: Callable[[], float]) -> None:
        self.wallet = Wallet()
        self.in_campaign = self.trying = False
        self.uniform = uniform

    @property
    def has_card(self) -> bool:
        return self.wallet.held > 0


class LoadFunnel:
    """The funnel of one load-test process (`HttpClient`), counting into its tally."""

    def __init__(self, sc: Scenario, tally: Tally) -> None:
        self.funnel = Funnel(sc.workload)
        self.tally, self.seed = tally, sc.run.seed
        launch = sc.population.launch if sc.population is not None else None
        self.cards = CardRules(launch) if launch is not None else None
        self.launch_at_s = launch.at_s if launch is not None else math.inf
        self.names = [n for n in self.funnel.names if self.funnel.has_funnel(n)]
        if self.names:  # present, as in the simulator's results, even when they stay 0
            for name in (N.ORDERS_ATTEMPTED, N.CARDS_REDEEMED, *(
                    N.buy(n, st) for n in self.names for st in STATES), *(
                    N.buy_outcome(n, st, o) for n in self.names for st in STATES for o in OUTCOMES)):
                tally.count(name, 0.0, 0)

    @property
    def picks_classes(self) -> bool:
        """Whether users pick their classes by card state (a launch: users hold cards)."""
        return self.cards is not None

    def shopper(self, sess: Any) -> Shopper:
        """The session's user's funnel state, made at first use with the user's own stream."""
        if sess.shopper is None:
            rng = Streams(self.seed)(f"loadtest.user.{sess.user}")
            sess.shopper = Shopper(lambda: float(rng.random()))
        return sess.shopper  # type: ignore[no-any-return]

    def opened(self, sess: Any, now_s: float) -> None:
        """The user's session has its login: after the launch, its first joins the campaign."""
        if self.cards is None or now_s < self.launch_at_s:
            return
        s = self.shopper(sess)
        if not s.in_campaign:
            s.in_campaign = s.trying = True
            self.cards.join(s.wallet)

    def pick_class(self, sess: Any) -> str:
        """A command's class, drawn as the simulator's launch user draws it."""
        s = self.shopper(sess)
        first = self.cards.first_command(s.uniform()) if self.cards is not None and s.trying else None
        s.trying = False
        return first or self.funnel.pick_class(s.has_card, s.uniform())

    def plan(self, sess: Any, name: str, t_s: float) -> Plan | None:
        """A command of class `name` starts at `t_s`: its plan (None: the class has no funnel)."""
        if not self.funnel.has_funnel(name):
            return None
        s = self.shopper(sess)
        self.opened(sess, t_s)
        plan = self.funnel.plan(name, s.has_card, s.uniform)
        self.tally.count(N.buy(name, plan.state), t_s)
        if plan.outcome in GOES_AHEAD:
            self.tally.count(N.ORDERS_ATTEMPTED, t_s)
        return plan

    def settle(self, sess: Any, name: str, plan: Plan, answered: str | None, t_s: float) -> None:
        """A funnel command succeeded at `t_s` with the outcome the stack `answered` (None: a
        server that does not say; the plan's own is taken): counted, an order, a card spent."""
        outcome = answered if answered in OUTCOMES else plan.outcome
        if outcome != plan.outcome:
            self.tally.totals["funnel_outcome_differs"] += 1  # the stack decided otherwise: its answer counts
            plan = dataclasses.replace(plan, outcome=outcome)
        ordered, card = Funnel.settle(plan, self.shopper(sess).wallet)
        self.tally.count(N.buy_outcome(name, plan.state, outcome), t_s)
        if ordered:
            self.tally.count(N.ORDERS, t_s)
        if card:
            self.tally.count(N.CARDS_REDEEMED, t_s)
