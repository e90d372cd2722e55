"""The funnel and the free-order cards (sim/funnel.py): rules with no clock, checked against the
probabilities they are built from, and the schema's one-line errors for them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.funnel import (
    CHANGED_MIND,
    NO_CARD,
    ORDERED,
    OUT_OF_STOCK,
    PAYMENT_ERROR,
    CardRules,
    Funnel,
    Wallet,
    poisson_from,
)
from sim.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
FESTIVAL = ROOT / "scenarios" / "spring_festival.yaml"


def _uniforms(seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return lambda: float(rng.random())


def test_a_wallet_earns_at_most_the_cap_and_spends_what_it_holds() -> None:
    w = Wallet()
    assert w.earn(1, 21) == 1
    assert sum(w.earn(1, 21) for _ in range(30)) == 20  # 20 invitations count, 10 more earn nothing
    assert (w.held, w.earned) == (21, 21)
    assert all(w.spend() for _ in range(21))
    assert not w.spend() and w.held == 0 and w.redeemed == 21


def test_card_rules_follow_the_launch_block() -> None:
    sc = load_scenario(FESTIVAL)
    assert sc.population and sc.population.launch
    rules = CardRules(sc.population.launch)
    w = Wallet()
    assert rules.p_active(w) == sc.population.launch.active_without_cards
    assert rules.join(w) == 1 and rules.p_active(w) == sc.population.launch.active_with_cards
    assert rules.p_active(None) == sc.population.launch.active_without_cards
    share = sc.population.launch.first_session.try_share  # type: ignore[union-attr]
    assert rules.first_command(share - 1e-9) == "help_me_buy" and rules.first_command(share + 1e-9) is None


@pytest.mark.parametrize("has_card", [True, False])
def test_outcome_frequencies_match_the_funnel_within_a_99_percent_interval(has_card: bool) -> None:
    sc = load_scenario(FESTIVAL)
    f = sc.workload.classes["help_me_buy"].funnel
    assert f is not None
    go = f.convert_with_card if has_card else f.convert_without_card
    want = {
        ORDERED: go * (1 - f.out_of_stock) * (1 - f.payment_error),
        OUT_OF_STOCK: go * f.out_of_stock,
        PAYMENT_ERROR: go * (1 - f.out_of_stock) * f.payment_error,
        (CHANGED_MIND if has_card else NO_CARD): 1 - go,
    }
    funnel, u, n = Funnel(sc.workload), _uniforms(7), 40_000
    got: dict[str, int] = {}
    for _ in range(n):
        o = funnel.plan("help_me_buy", has_card, u).outcome
        got[o] = got.get(o, 0) + 1
    assert set(got) <= set(want)
    for outcome, p in want.items():
        half = 2.576 * math.sqrt(p * (1 - p) / n) + 1e-12
        assert abs(got.get(outcome, 0) / n - p) <= half, (outcome, got.get(outcome, 0) / n, p)


def test_each_outcome_runs_the_stages_up_to_where_the_user_stopped() -> None:
    sc = load_scenario(FESTIVAL)
    stages = sc.workload.classes["help_me_buy"].stages
    tools = [st.tool.service if st.tool else None for st in stages]
    i_order, i_pay = tools.index("order"), tools.index("payment")
    plans = Funnel(sc.workload)._plans["help_me_buy"]
    assert plans[ORDERED] == (len(stages), i_pay)  # only an order charges
    assert plans[CHANGED_MIND] == plans[NO_CARD] == (i_order, -1)  # stopped before ordering
    assert plans[OUT_OF_STOCK] == (i_order + 1, -1)
    assert plans[PAYMENT_ERROR] == (i_pay + 1, -1)  # the charge failed: nothing paid


def test_an_order_spends_a_card_only_when_the_user_holds_one() -> None:
    sc = load_scenario(FESTIVAL)
    funnel = Funnel(sc.workload)
    draws = iter([0.0, 0.99, 0.99])  # goes ahead, in stock, payment fine
    plan = funnel.plan("help_me_buy", True, lambda: next(draws))
    assert plan.outcome == ORDERED
    w = Wallet()
    w.earn(1, 21)
    assert funnel.settle(plan, w) == (True, True) and w.held == 0
    assert funnel.settle(plan, w) == (True, False)  # a second order with none left is paid in full
    declined = funnel.plan("help_me_buy", True, lambda: 0.999)
    assert declined.outcome == CHANGED_MIND and funnel.settle(declined, w) == (False, False)


def test_with_card_mix_gives_the_rest_to_the_other_classes_in_proportion() -> None:
    data = _tiny()
    data["workload"]["classes"]["buy"]["probability_with_card"] = 0.5
    f = Funnel(parse_scenario(data).workload)
    # chat 0.6 and find 0.3 share the other half 2:1
    assert np.allclose(np.diff([0.0, *f.cum_with]), [1 / 3, 1 / 6, 0.5])
    assert np.allclose(np.diff([0.0, *f.cum_without]), [0.6, 0.3, 0.1])


def test_poisson_by_inversion_has_the_right_mean_and_variance() -> None:
    u, n, mean = _uniforms(3), 20_000, 2.8
    x = np.array([poisson_from(u, mean) for _ in range(n)])
    assert abs(x.mean() - mean) < 4 * math.sqrt(mean / n)
    assert abs(x.var() / mean - 1) < 0.05


def _tiny() -> dict:  # type: ignore[type-arg]
    llm = {"llm": {"prompt_tokens": {"type": "constant", "value": 10}, "output_tokens": {"type": "constant", "value": 1}}}
    return {
        "name": "tiny", "run": {"duration_s": 100},
        "arrivals": {"rate_per_s": 1},
        "workload": {"classes": {
            "chat": {"probability": 0.6, "stages": [llm]},
            "find": {"probability": 0.3, "stages": [llm, {"tool": "catalog"}]},
            "buy": {"probability": 0.1, "places_order": True,
                    "funnel": {"convert_with_card": 0.9, "convert_without_card": 0.1},
                    "stages": [llm, {"tool": "catalog"}, {"tool": "order"}, {"tool": "payment"}]},
        }},
        "services": {"llm": {"replicas": 1}, "tools": {"catalog": {}, "order": {}, "payment": {}}},
    }


@pytest.mark.parametrize("edit, says", [
    (lambda d: d["workload"]["classes"]["buy"].pop("places_order"), "funnel: needs 'places_order: true'"),
    (lambda d: d["workload"]["classes"]["buy"]["funnel"].update(order_tool="basket"), "funnel.order_tool: no stage"),
    (lambda d: d["workload"]["classes"]["buy"]["funnel"].update(convert_with_card=1.5), "convert_with_card"),
    (lambda d: d["workload"]["classes"]["chat"].update(probability_with_card=0.7)
     or d["workload"]["classes"]["buy"].update(probability_with_card=0.5), "probability_with_card: must sum"),
    (lambda d: d["services"].update(auth={"servers": 0.1, "queue_limit": 5}), "queue_limit: a fluid pool"),
])
def test_a_bad_funnel_is_one_line_naming_the_field(edit, says: str) -> None:  # type: ignore[no-untyped-def]
    data = _tiny()
    edit(data)
    with pytest.raises(ScenarioError) as e:
        parse_scenario(data)
    assert says in str(e.value) and "\n" not in str(e.value)
