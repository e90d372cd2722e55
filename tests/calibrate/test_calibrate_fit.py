"""The fit alone (pure numpy): non-negative least squares and the cost model's coefficients
recovered from synthetic step times."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.calibrate import DesignPoint, StepSample, design, fit_arrays, fit_cost, nnls

TRUE = np.array([4e-4, 2e-5, 4e-5, 3e-7])  # base, per prefill token, per decode seq, per KV token


def _steps(rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, ...]:
    p = rng.choice([0, 8, 64, 256, 500], n).astype(float)
    d = rng.choice([0, 1, 4, 16, 64], n).astype(float)
    d[p == 0] = np.maximum(d[p == 0], 1)  # a step does something
    k = p + d * rng.choice([16, 128, 400], n)
    return p, d, k


def test_nnls_matches_least_squares_when_unconstrained() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((40, 4))
    x = np.array([1.0, 2.0, 0.5, 3.0])
    assert np.allclose(nnls(a, a @ x), x, rtol=1e-9)


def test_nnls_clips_what_would_be_negative() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((50, 3))
    b = a @ np.array([1.0, -2.0, 3.0])
    x = nnls(a, b)
    assert (x >= 0).all() and x[1] == 0.0
    ls = np.linalg.lstsq(a[:, [0, 2]], b, rcond=None)[0]  # the optimum with x1 held at its bound
    assert np.allclose(x[[0, 2]], ls, rtol=1e-9)


@pytest.mark.parametrize("relative", [True, False])
def test_fit_recovers_known_coefficients_exactly(relative: bool) -> None:
    p, d, k = _steps(np.random.default_rng(2))
    y = TRUE[0] + TRUE[1] * p + TRUE[2] * d + TRUE[3] * k
    assert np.allclose(fit_arrays(p, d, k, y, relative), TRUE, rtol=1e-6)


def test_fit_recovers_coefficients_through_noise() -> None:
    rng = np.random.default_rng(3)
    p, d, k = _steps(rng, 400)
    y = (TRUE[0] + TRUE[1] * p + TRUE[2] * d + TRUE[3] * k) * rng.lognormal(0.0, 0.05, p.size)  # 5% noise
    assert np.allclose(fit_arrays(p, d, k, y), TRUE, rtol=0.15)


def test_a_cost_with_no_effect_fits_to_zero_not_negative() -> None:
    p, d, k = _steps(np.random.default_rng(4))
    y = 1e-3 + 1e-5 * p  # no decode or context cost at all
    coef = fit_arrays(p, d, k, y)
    assert (coef >= 0).all()
    assert coef[2] < 1e-12 and coef[3] < 1e-12


def test_fit_cost_reports_r2_and_relative_errors() -> None:
    p, d, k = _steps(np.random.default_rng(5), 20)
    y = TRUE[0] + TRUE[1] * p + TRUE[2] * d + TRUE[3] * k
    samples = [StepSample(DesignPoint("mixed"), int(a), int(b), int(c), float(t), (float(t),) * 5)
               for a, b, c, t in zip(p, d, k, y, strict=True)]
    fit = fit_cost(samples)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.max_abs_rel_error < 1e-6
    cm = fit.cost_model()
    assert cm["type"] == "fitted" and cm["per_prefill_token_s"] == pytest.approx(2e-5)


def test_design_stays_within_the_engine_limits() -> None:
    pts = design(max_batched_tokens=128, max_num_seqs=4, max_context=128, kv_cache_tokens=1024, decode_steps=24)
    assert {p.kind for p in pts} == {"prefill", "decode", "mixed"}
    for p in pts:
        assert p.prefill_chunk * p.prefill_seqs + p.decode_seqs <= 128
        assert p.prefill_seqs + p.decode_seqs <= 4
        assert max(p.prefill_chunk, p.context_tokens) + 24 < 128
        assert p.decode_seqs * (p.context_tokens + 25) <= 1024
