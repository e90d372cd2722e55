"""Parity tests for the launch population and the buy funnel: the count forms the fleet engine
uses (`Funnel.mix`, `Funnel.outcome_shares`, `Funnel.settles`, `WalletStates`, and the day's
session rules `first_session_cdf` and `sessions_after_first`) against the per-user forms the
SimPy engine uses (`pick_class`, `plan`, `settle`, `Wallet`/`CardRules`, sessions drawn per user),
with the same inputs through both."""

from __future__ import annotations

import numpy as np
import pytest
from fleet_helpers import scenario

from sim.arrivals import DailyProfile, first_session_cdf, sessions_after_first
from sim.funnel import OUTCOMES, STATES, WITH_CARD, CardRules, Funnel, Wallet

SF = scenario("spring_festival.yaml")
WITH_CARD_MIX = scenario("spring_festival.yaml", "workload.classes.help_me_buy.probability_with_card=0.2")


@pytest.mark.parametrize("sc", [SF, WITH_CARD_MIX], ids=["same_mix", "probability_with_card"])
@pytest.mark.parametrize("has_card", [True, False])
def test_mix_is_the_distribution_pick_class_draws_from(sc, has_card: bool) -> None:  # type: ignore[no-untyped-def]
    f = Funnel(sc.workload)
    n = 100_000
    u = (np.arange(n) + 0.5) / n  # an even grid of draws: frequencies exact to 1/n
    picks = [f.names.index(f.pick_class(has_card, float(x))) for x in u]
    freq = np.bincount(picks, minlength=len(f.names)) / n
    assert np.abs(freq - f.mix(has_card)).max() <= 1.0 / n
    assert f.mix(has_card).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("has_card", [True, False])
def test_outcome_shares_are_the_frequencies_of_plan(has_card: bool) -> None:
    """200,000 plans from one seeded stream against the shares: every outcome within 4.5 sigma."""
    f = Funnel(SF.workload)
    rng = np.random.default_rng(11)
    n = 200_000
    draws = iter(rng.random(3 * n).tolist())
    got = [f.plan("help_me_buy", has_card, lambda: next(draws)).outcome for _ in range(n)]
    shares = f.outcome_shares("help_me_buy", has_card)
    assert sum(shares.values()) == pytest.approx(1.0)
    for o in OUTCOMES:
        p = shares[o]
        k = got.count(o)
        assert abs(k - n * p) <= 4.5 * np.sqrt(n * p * (1 - p)) + 1e-9, (o, k, n * p)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_settles_is_settle_for_a_user_still_in_its_state(outcome: str, state: str) -> None:
    f = Funnel(SF.workload)
    draws = iter([0.0, 0.99, 0.99] if outcome == "ordered" else [0.99, 0.99, 0.99])
    plan = f.plan("help_me_buy", state == WITH_CARD, lambda: next(draws))
    plan = type(plan)(outcome, plan.n_stages, plan.pay_stage, state, plan.exactly_once)
    w = Wallet()
    if state == WITH_CARD:
        w.earn(1, 21)
    assert Funnel.settles(outcome, state) == Funnel.settle(plan, w)


def test_wallet_states_move_users_as_their_wallets_do() -> None:
    """2,000 users, 20,000 random rule applications (join, invited, spend) on per-user wallets;
    the counts by wallet state moved through the tables the same way: the same histogram after
    every step, and the same daily activity probability per user."""
    launch = SF.population.launch  # type: ignore[union-attr]
    launch = launch.model_copy(update={"cards": launch.cards.model_copy(update={"max_per_user": 4})})
    rules = CardRules(launch)
    ws = rules.wallet_states()
    rng = np.random.default_rng(3)
    wallets = [Wallet() for _ in range(2_000)]
    counts = np.zeros(ws.n)
    counts[ws.index(0, 0)] = len(wallets)
    earned_users = earned_counts = 0
    for step in range(20_000):
        u = int(rng.integers(len(wallets)))
        w = wallets[u]
        s = ws.index(w.earned, w.held)
        op = ("join", "invited", "spend")[int(rng.integers(3))]
        if op == "join":
            earned_users += rules.join(w)
            earned_counts += int(ws.join_earns[s])
            to = ws.joined[s]
        elif op == "invited":
            earned_users += rules.invited(w)
            earned_counts += int(ws.invite_earns[s])
            to = ws.invited[s]
        else:
            w.spend()
            to = ws.spent[s]
        counts[s] -= 1
        counts[to] += 1
        if step % 1_000 == 0 or step == 19_999:
            hist = np.bincount([ws.index(x.earned, x.held) for x in wallets], minlength=ws.n)
            assert np.array_equal(hist, counts)
            assert earned_users == earned_counts
    p_users = sorted(rules.p_active(x) for x in wallets)
    p_counts = sorted(np.repeat(ws.p_active, counts.astype(int)).tolist())
    assert p_users == pytest.approx(p_counts)


def test_first_session_cdf_and_the_sessions_after_it_match_per_user_days() -> None:
    """Theory test: 40,000 users with 1 + Poisson(lam) sessions from the scenario's day shape
    (`DailyProfile.sample_day`, as sim/des/users.py draws them): when their first session falls
    (the CDF at 8 points of the day, within 0.01) and, for first sessions in each quarter of the
    day's density, the mean number of sessions still to come (within its 95% interval + 2%)."""
    p = SF.population
    assert p is not None
    day = DailyProfile(p.diurnal or (1.0,) * 24, SF.run.start_hour)
    lam = p.sessions_per_user_per_day - 1.0
    rng = np.random.default_rng(5)
    firsts, rests = [], []
    for _ in range(40_000):
        t = np.sort(day.sample_day(rng, 1 + int(rng.poisson(lam)), 0.0))
        firsts.append(float(day.elapsed(t[0])) / 86_400)
        rests.append(len(t) - 1)
    frac, rest = np.array(firsts), np.array(rests)
    for x in np.linspace(0.05, 0.9, 8):
        assert np.mean(frac <= x) == pytest.approx(float(first_session_cdf(x, lam)), abs=0.01)
    for lo in (0.0, 0.25, 0.5, 0.75):
        sel = (frac >= lo) & (frac < lo + 0.25)
        mid = np.mean(frac[sel])
        want = float(sessions_after_first(lam * (1 - mid)))
        half = 1.96 * rest[sel].std() / np.sqrt(sel.sum())
        assert abs(rest[sel].mean() - want) <= half + 0.02 * want, (lo, rest[sel].mean(), want)
