"""Verification against queueing theory, through the scenario API (scenarios/validation/*.yaml).

Each case runs >= 30 short independent replications (seeds run.seed, run.seed + 1, ...), drops
the warm-up intervals, and requires the 95% Student-t interval over the replication means to
cover the theoretical value. Seeds are fixed, so a pass is reproducible; a change to the engine
that shifts the draws re-rolls the dice (each interval misses theory 5% of the time by design).

How each quantity is measured (all over the post-warm-up window):
- W: mean time at the station(s), `time_s:SVC / served:SVC` (exact sums). The `e2e` histogram
  reports each value within 1% (its bucket's representative), so its mean is checked against
  the exact W within 1%, not against theory: an atom (M/D/1's 0.125 s) shifts it by up to 1%.
- Wq: queue wait at the station, `wait_s:SVC / granted:SVC` (exact sums kept by the pool).
- P(wait): fraction of calls that had to queue, `waited:SVC / granted:SVC`.
- L: time-average number at the station, `occupancy:SVC` (the integral of calls present, queued
  or in service, divided by the interval). Little's law L = lambda W is checked separately with
  lambda = arrivals / window and W measured as above.
"""

from __future__ import annotations

import pytest
from sim_helpers import Window, covers, replicate, scenario

pytestmark = pytest.mark.theory
REPS = 30


def _check(results: dict[str, list[float]], theory: dict[str, float]) -> None:
    failures = []
    for key, value in theory.items():
        ok, msg = covers(results[key], value)
        print(f"{key}: {msg}")
        if not ok:
            failures.append(f"{key}: {msg}")
    assert not failures, "; ".join(failures)


def _station(w: Window, svc: str) -> dict[str, float]:
    granted = w.total(f"granted:{svc}")
    return {
        "Wq": w.total(f"wait_s:{svc}") / granted,
        "P(wait)": w.total(f"waited:{svc}") / granted,
        "L": w.mean(f"occupancy:{svc}"),
        "W": w.total(f"time_s:{svc}") / w.total(f"served:{svc}"),
        "lambda": w.total("arrived:job") / w.seconds,
    }


def _system(w: Window, svc: str) -> dict[str, float]:
    """A one-station system: the station's measures, and the e2e histogram within 1% of W."""
    out = _station(w, svc)
    assert w.hist_mean("e2e:job") == pytest.approx(out["W"], rel=0.01)
    return out


def test_mm1_wait_sojourn_and_number_in_system() -> None:
    lam, mu = 5.0, 8.0
    res = replicate(scenario("validation/mm1.yaml"), REPS, lambda w: _system(w, "server"))
    _check(res, {"Wq": lam / mu / (mu - lam), "W": 1 / (mu - lam), "L": lam / (mu - lam), "lambda": lam})
    # Little's law on each replication: L = lambda W within 2%
    gaps = [abs(L - lam_hat * W) / L for L, lam_hat, W in zip(res["L"], res["lambda"], res["W"], strict=True)]
    print(f"Little's law: largest |L - lambda W| / L over replications {max(gaps):.2%}")
    assert max(gaps) <= 0.02


def test_mmc_erlang_c_probability_of_waiting_and_wait() -> None:
    lam, mu, c = 0.2, 0.1, 3
    a = lam / mu
    rho = a / c
    tail = a**c / 6 / (1 - rho)  # a^c / c! / (1 - rho)
    p_wait = tail / (1 + a + a**2 / 2 + tail)
    wq = p_wait / (c * mu - lam)
    res = replicate(scenario("validation/mmc3.yaml"), REPS, lambda w: _system(w, "server"))
    assert p_wait == pytest.approx(0.4444, abs=1e-4) and wq == pytest.approx(4.444, abs=1e-3)
    _check(res, {"P(wait)": p_wait, "Wq": wq, "W": wq + 1 / mu, "L": lam * (wq + 1 / mu)})


def test_tandem_jackson_network_and_littles_law_at_every_node() -> None:
    lam, mu1, mu2 = 1.0, 2.0, 3.0

    def measure(w: Window) -> dict[str, float]:
        a, b = _station(w, "first"), _station(w, "second")
        assert w.hist_mean("e2e:job") == pytest.approx(a["W"] + b["W"], rel=0.01)
        return {"W": a["W"] + b["W"], "W1": a["W"], "W2": b["W"], "L1": a["L"], "L2": b["L"],
                "lambda": a["lambda"],
                "thr1": w.total("served:first") / w.seconds, "thr2": w.total("served:second") / w.seconds}

    res = replicate(scenario("validation/tandem.yaml"), REPS, measure)
    _check(res, {"W": 1 / (mu1 - lam) + 1 / (mu2 - lam), "W1": 1 / (mu1 - lam), "W2": 1 / (mu2 - lam),
                 "L1": lam / (mu1 - lam), "L2": lam / (mu2 - lam)})
    for node in ("1", "2"):
        gaps = [abs(L - thr * W) / L for L, thr, W in zip(res["L" + node], res["thr" + node], res["W" + node], strict=True)]
        print(f"Little's law at node {node}: largest |L - lambda W| / L over replications {max(gaps):.2%}")
        assert max(gaps) <= 0.02, f"Little's law at node {node}"


@pytest.mark.parametrize("f", [0.5, 0.2])
def test_retry_amplification(f: float) -> None:
    sc = scenario("validation/retry.yaml", f"services.tools.flaky.error_rate={f}")

    def measure(w: Window) -> dict[str, float]:
        arrived = w.total("arrived:job")
        return {"attempts": w.total("attempts:job") / arrived, "failed": w.total("failed:job:error") / arrived}

    res = replicate(sc, REPS, measure)
    theory = {"attempts": 1 + f + f**2 + f**3, "failed": f**4}
    if f**4 * 5.0 * 900 < 50:
        # a handful of failed commands per replication: their mean is too skewed for a t interval
        del theory["failed"]
    _check(res, theory)


def test_mm1k_blocking_probability() -> None:
    lam, mu, k = 5.0, 8.0, 3
    rho = lam / mu
    p_block = (1 - rho) * rho**k / (1 - rho ** (k + 1))
    res = replicate(scenario("validation/mm1k.yaml"), REPS,
                    lambda w: {"P(block)": w.total("failed:job:shed") / w.total("arrived:job")})
    _check(res, {"P(block)": p_block})


def test_md1_pollaczek_khinchine_wait() -> None:
    lam, mu = 5.0, 8.0
    rho = lam / mu
    wq = rho / (2 * mu * (1 - rho))
    res = replicate(scenario("validation/md1.yaml"), REPS, lambda w: _system(w, "server"))
    _check(res, {"Wq": wq, "W": wq + 1 / mu})
