"""The fleet engine's adaptive time step (`sim.fleet.timestep`): moving the state between step
lengths keeps every request at its moment, the rule takes long steps only while the system is
quiet, and an adaptive run agrees with a fixed fine-step run on a light and an overloaded fleet
(within the engines' agreement tolerances, `agreement.py`)."""

from __future__ import annotations

import numpy as np
import pytest
from agreement import KPIS, TOLERANCE, kpi

from sim.fleet.engine import FleetSim
from sim.fleet.fullscale import feb8_full
from sim.fleet.timestep import Regrid


def test_coarsening_keeps_every_count_at_its_moment() -> None:
    rng = np.random.default_rng(3)
    n, W = 37 * 2, 16
    past = rng.integers(0, 5, size=(2, 3, W)).astype(float)  # by start step n - W .. n - 1
    g = Regrid(n, coarser=True)
    out = g.past(past, 2, 8)
    want = np.zeros_like(out)
    for s in range(n - W, n):  # each start step's counts go to the bin of s // 2 (clamped to the ring)
        want[:, :, max(s // 2, g.n_new - 8) % 8] += past[:, :, s % W]
    assert np.array_equal(out, want) and out.sum() == past.sum()
    fut = rng.integers(0, 5, size=(2, W)).astype(float)  # by finishing step n .. n + W - 1
    f_out = g.future(fut, 1)
    assert f_out.sum() == fut.sum()
    assert np.array_equal(f_out[:, g.n_new % W], fut[:, n % W] + fut[:, (n + 1) % W])


def test_refining_then_coarsening_gives_back_the_counts() -> None:
    rng = np.random.default_rng(4)
    n, A = 50, 9
    rows = rng.integers(0, 7, size=(3, 4, A + 1)).astype(float)  # ring rows, then the ghost row
    fine = Regrid(n, coarser=False)
    r2 = fine.rows(rows, 2, 2 * A)
    assert r2.sum() == rows.sum() and np.array_equal(r2[..., -1], rows[..., -1])
    back = Regrid(fine.n_new, coarser=True).rows(r2, 2, A)
    assert np.array_equal(back, rows)


def _run(sc, max_dt: float | None) -> tuple[dict, dict[int, int]]:  # type: ignore[no-untyped-def,type-arg]
    sim = FleetSim(sc, [8], 0.25, max_dt)
    levels: dict[int, int] = {}
    step = sim.step

    def counted(n: int) -> None:
        levels[sim.level] = levels.get(sim.level, 0) + 1
        step(n)

    sim.step = counted  # type: ignore[method-assign]
    return sim.run()[0].summary, levels


@pytest.mark.slow
@pytest.mark.parametrize("case", ["light", "overloaded_fault"])
def test_adaptive_step_agrees_with_the_fine_step(case: str) -> None:
    """The full fleet (6,667 replicas: counts large enough that the two runs differ by the step,
    not by chance); light: 07:00; overloaded: 13:00 with the LLM 3x slower for 3 minutes."""
    if case == "light":
        sc = feb8_full(["run.start_hour=7", "run.duration_s=240", "run.warmup_s=60", "faults=[]"])
    else:
        sc = feb8_full(["run.start_hour=13", "run.duration_s=480", "run.warmup_s=60",
                        "faults=[{at_s: 120, duration_s: 180, target: llm, kind: slowdown, magnitude: 3}]"])
    fixed, _ = _run(sc, None)
    adaptive, levels = _run(sc, 1.0)
    tol = TOLERANCE.get(case, {})
    bad = {}
    for k in KPIS:
        a, f = kpi(adaptive, k), kpi(fixed, k)
        rel = (a - f) / f
        print(f"{case} {k}: fixed {f:.4g}, adaptive {a:.4g} ({rel:+.1%})")
        if abs(rel) > tol.get(k, 0.05):
            bad[k] = rel
    print(f"{case}: steps by level {levels}")
    assert not bad, bad
    long_steps = sum(v for lv, v in levels.items() if lv > 0)
    if case == "light":
        assert long_steps > sum(levels.values()) / 2  # mostly long steps when quiet
    else:
        assert levels.get(0, 0) > long_steps  # mostly fine steps in overload


@pytest.mark.slow
def test_regrids_lose_no_command() -> None:
    """The full fleet at 07:00 with a 30 s LLM slowdown: long steps, back to fine steps around the
    fault, long again. Every command that arrived and did not end is still held somewhere
    (attempts in flight, retries waiting, re-logins), as the in-flight series counts them."""
    from sim.results import names as N

    sc = feb8_full(["run.start_hour=7", "run.duration_s=240", "run.warmup_s=0",
                    "faults=[{at_s: 120, duration_s: 30, target: llm, kind: slowdown, magnitude: 4}]"])
    sim = FleetSim(sc, [8, 9], 0.25, 1.0)
    out = sim.run()
    held = sum(fl.comp.sum(axis=(1, 2, 3)) + fl.retries.cal.sum(axis=(1, 2, 3)) + fl.ready.sum(axis=(1, 2))
               for fl in sim.flows)
    assert sim.logins is not None
    held = held + sim.logins.purpose_n.sum(axis=1)
    assert sim.steps_run < 0.8 * sim.n_steps  # it did take long steps
    assert np.array_equal(held, [r.series[N.IN_FLIGHT][-1] for r in out])
