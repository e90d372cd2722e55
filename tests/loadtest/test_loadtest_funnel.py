"""The load test's side of the buy funnel (`loadtest/funnel.py`), in-process: the series it
reports, cards at a session's first login after the launch, and settling on the stack's answer."""

from __future__ import annotations

from typing import Any

import yaml
from loadtest_helpers import TINY

from loadtest.funnel import LoadFunnel, Shopper
from loadtest.tally import Tally
from sim.funnel import OUTCOMES, STATES
from sim.results import names as N
from sim.scenario import parse_scenario

LAUNCH = {"at_s": 4, "active_without_cards": 0.2, "active_with_cards": 0.8,
          "broadcast": {"pool_users": 1, "aware_at_launch": 0, "reach_per_day": 0, "join_per_hour": 1},
          "invitations": {"accepted_per_user": {"type": "constant", "value": 0},
                          "delay_s": {"type": "constant", "value": 1}},
          "cards": {"on_join": 2}}


def _scenario(launch: bool = False) -> Any:
    data = yaml.safe_load(TINY.read_text())
    data["workload"]["classes"]["help_me_buy"]["funnel"] = {"convert_with_card": 0.5, "convert_without_card": 0.5,
                                                            "out_of_stock": 0.5, "payment_error": 0.5}
    if launch:
        data["population"]["launch"] = LAUNCH
        data["arrivals"] = {"process": "poisson"}
    return parse_scenario(data)


class Sess:
    def __init__(self, draws: list[float]) -> None:
        it = iter(draws)
        self.user, self.shopper = "u", Shopper(lambda: next(it))


def test_a_funnel_reports_the_simulators_series_and_none_without_one() -> None:
    tally = Tally(10, 1)
    LoadFunnel(_scenario(), tally)
    series = tally.peek()[0]
    want = {N.ORDERS_ATTEMPTED, N.CARDS_REDEEMED, *(N.buy("help_me_buy", s) for s in STATES),
            *(N.buy_outcome("help_me_buy", s, o) for s in STATES for o in OUTCOMES)}
    assert set(series) == want and not any(series.values())
    plain = Tally(10, 1)
    LoadFunnel(parse_scenario(yaml.safe_load(TINY.read_text())), plain)
    assert not plain.peek()[0]


def test_cards_come_at_the_first_login_after_the_launch() -> None:
    f, sess = LoadFunnel(_scenario(launch=True), Tally(10, 1)), Sess([])
    f.opened(sess, 3.0)
    assert sess.shopper.wallet.held == 0 and not sess.shopper.trying  # before the launch: nothing
    f.opened(sess, 4.0)
    f.opened(sess, 6.0)
    assert (sess.shopper.wallet.held, sess.shopper.trying) == (2, True)  # joined once


def test_a_success_is_settled_on_the_outcome_the_stack_answered() -> None:
    tally = Tally(10, 1)
    f, sess = LoadFunnel(_scenario(), tally), Sess([0.1, 0.9, 0.9, 0.1, 0.9, 0.9])
    sess.shopper.wallet.earn(1, 21)
    plan = f.plan(sess, "help_me_buy", 1.0)
    assert plan is not None and plan.outcome == "ordered" and plan.state == "card"
    f.settle(sess, "help_me_buy", plan, "out_of_stock", 2.0)  # the stack found none: no order, no card
    again = f.plan(sess, "help_me_buy", 3.0)
    assert again is not None
    f.settle(sess, "help_me_buy", again, None, 4.0)  # a server that does not say: the plan's outcome
    series = tally.peek()[0]
    assert series[N.buy_outcome("help_me_buy", "card", "out_of_stock")] == 1
    assert series[N.buy_outcome("help_me_buy", "card", "ordered")] == 1
    assert series[N.ORDERS] == 1 and series[N.CARDS_REDEEMED] == 1 and series[N.ORDERS_ATTEMPTED] == 2
    assert tally.totals["funnel_outcome_differs"] == 1 and sess.shopper.wallet.held == 0
    assert f.plan(sess, "chat", 5.0) is None
