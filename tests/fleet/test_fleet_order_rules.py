"""Parity tests for orders, inventories and proactive tasks: the count forms the fleet engine
uses (`sim.rules.inventory.item_shares`, `StockCounts`, `sim.rules.orders.charge_counts`, the
follow-up kernel and the schedule of sim/fleet/proactive.py) against the per-request forms the
SimPy engine uses, with the same inputs through both."""

from __future__ import annotations

import numpy as np
import pytest
from fleet_helpers import scenario

from sim.arrivals import FollowUps, proactive_times
from sim.fleet.client import _from_next_step
from sim.fleet.engine import FleetSim
from sim.fleet.inventory import hold_epochs
from sim.fleet.kernels import delay_kernel, dist_key, latency_samples
from sim.fleet.orders import couple
from sim.rules.inventory import Stock, StockCounts, item_shares, pick_item
from sim.rules.orders import CHARGED, CHARGED_AGAIN, DUPLICATE_PREVENTED, charge, charge_counts
from sim.scenario.services import Inventory
from sim.streams import Streams

SPECS = [
    Inventory(items=12, stock=6, hold_s=30, hot={"items": 3, "share": 0.6}, fallback=True),
    Inventory(items=12, stock=5, hold_s=30, fallback=False),
    Inventory(items=4, stock=12, hold_s=30, hot={"items": 4, "share": 1.0}, fallback=True),
]


@pytest.mark.parametrize("spec", SPECS)
def test_item_shares_is_the_distribution_pick_item_draws_from(spec: Inventory) -> None:
    n = 120_000
    u = (np.arange(n) + 0.5) / n  # an even grid of draws: frequencies exact to 1/n
    freq = np.bincount([pick_item(spec, float(x)) for x in u], minlength=spec.items) / n
    assert np.abs(freq - item_shares(spec)).max() < 2.0 / n * spec.items
    assert item_shares(spec).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("spec", "quantity"), [(SPECS[0], 2), (SPECS[1], 1), (SPECS[2], 2)])
def test_stock_counts_decide_as_the_per_request_stock(spec: Inventory, quantity: int) -> None:
    """Batches of holds at instants 0, 10, 20, ... (one epoch each, hold_s = 30: three slots),
    a confirm of whole batches, lapses when a batch's holds expire: the per-request `Stock`
    (one hold at a time, in a random order) and `StockCounts` (one batch at a time) give the
    same grants, conflicts, sold-outs, lapses and units free, held and sold after every step."""
    rng = np.random.default_rng(7)
    one = Stock(spec)
    many = StockCounts(spec, 1, 3, quantity)
    holds_of: dict[int, list] = {}  # type: ignore[type-arg]
    for b in range(14):
        now = 10.0 * b
        slot = b % 3
        n_lapsed = one.expire(now)
        assert many.lapse(slot)[0] == n_lapsed  # the batch granted 30 s ago lapses now
        wanted = [pick_item(spec, float(x)) for x in rng.random(int(rng.integers(0, 14)))]
        before = (one.granted, one.conflicts, one.sold_out)
        holds_of[b] = [h for h in (one.hold(w, quantity, now)[1] for w in wanted) if h is not None]
        g, c, so = many.hold_many(0, np.bincount(wanted, minlength=spec.items), slot)
        assert (g.sum(), c, so) == (one.granted - before[0], one.conflicts - before[1], one.sold_out - before[2])
        if b % 2 and b >= 1:  # confirm every hold of the previous batch (still live: 10 s old)
            sold = sum(1 for h in holds_of[b - 1] if one.confirm(h, now + 1) == "confirmed")
            assert many.confirm_many(0, (b - 1) % 3, len(holds_of[b - 1]), float(rng.random())) == sold
        assert many.free()[0].sum() == one.free_units
        assert many.held.sum() == one.held_units and many.sold.sum() == one.sold_units
    assert many.totals["lapsed"][0] == one.lapsed and many.totals["confirmed"][0] == one.confirmed
    assert one.lapsed and one.confirmed and one.conflicts + one.sold_out, "the script exercises every outcome"


def test_confirm_many_sells_only_what_a_slot_holds() -> None:
    spec = SPECS[0]
    many = StockCounts(spec, 1, 2, 2)
    many.hold_many(0, np.bincount([0, 0, 1, 5, 5, 5], minlength=spec.items), 0)
    held = many.held[0, 0].copy()
    assert many.confirm_many(0, 0, 4, 0.3) == 4
    assert (many.held[0, 0] >= 0).all() and many.sold.sum() == 8 and (held - many.held[0, 0]).sum() == 8
    assert many.confirm_many(0, 0, 10, 0.9) == 2  # only two holds were left
    assert many.held.sum() == 0


def test_charge_counts_are_the_per_order_charges() -> None:
    rng = np.random.default_rng(3)
    for exactly_once in (True, False):
        so_far = rng.integers(0, 3, 500)
        per_order = [charge(int(k), exactly_once) for k in so_far]
        counts = charge_counts(float((so_far == 0).sum()), float((so_far > 0).sum()), exactly_once)
        assert counts == (per_order.count(CHARGED), per_order.count(CHARGED_AGAIN),
                          per_order.count(DUPLICATE_PREVENTED))


@pytest.mark.parametrize(("hold_s", "dt"), [(120, 0.25), (900, 0.25), (30, 0.5), (0.4, 0.25), (7, 1.0)])
def test_hold_epochs_keep_the_mean_hold(hold_s: float, dt: float) -> None:
    spe, slots = hold_epochs(hold_s, dt)
    mean_s = (slots - 0.5) * spe * dt  # a hold lives between slots - 1 and slots epochs
    assert abs(mean_s - hold_s) <= max(spe * dt / 2, dt) + 1e-9
    assert 1 <= slots <= 32


def test_couple_keeps_both_margins() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 9, (3, 4)).astype(float)
    o = np.zeros((3, 6))
    for r in range(3):
        o[r] = np.bincount(rng.integers(0, 6, int(x[r].sum())), minlength=6)
    j = couple(x, o).reshape(3, 4, 6)
    assert np.array_equal(j.sum(axis=2), x) and np.array_equal(j.sum(axis=1), o)
    assert np.array_equal(j, np.round(j))


def test_follow_up_kernel_is_the_per_command_draw() -> None:
    """FollowUps.after (the SimPy engine's, per success) and the fleet's binomial share with the
    delay kernel give the same number of follow-ups and the same delays (in steps)."""
    sc = scenario("proactive.yaml")
    dt = 0.25
    fu = FollowUps(sc, np.random.default_rng(5))
    n = 20_000
    delays = [d for _ in range(n) for start, d in fu.after("errand") if start == "track_order"]
    f = sc.proactive.follow_ups[0]  # type: ignore[union-attr]
    kern = _from_next_step(delay_kernel(latency_samples(dist_key(f.delay_s)), dt))
    assert len(delays) / n == pytest.approx(f.probability, abs=0.01)
    mean_steps = (np.arange(1, len(kern) + 1) * kern).sum()
    # a delay d lands floor(U + d / dt) steps after the success (E = d / dt), at least one
    assert mean_steps == pytest.approx(np.mean(delays) / dt, rel=0.01)


def test_fleet_schedule_is_the_simpy_schedule() -> None:
    sc = scenario("premiere_onsale.yaml")
    sim = FleetSim(sc, [10, 11])
    assert sim.proactive is not None
    for r, seed in enumerate((10, 11)):
        starts = proactive_times(sc, Streams(seed)("proactive.schedule"))
        got = sim.proactive.scheduled["buy_tickets"][r]
        assert got.sum() == len(starts.times_s)
        steps = np.minimum((starts.times_s / sim.dt).astype(int), sim.n_steps - 1)
        assert np.array_equal(got, np.bincount(steps, minlength=sim.n_steps))
