"""Calibrate the simulator's `fitted` cost model to the reference stack's real LLM engine.

The closed loop of the project is predict, measure, compare, calibrate; this is the last
step. `measure_steps` drives one `loadtest.stack.engine.Engine` in-process (no HTTP, no
engine thread) through a designed set of batch steps — prefill-only steps of several chunk
sizes, decode steps at several batch sizes and context lengths, and mixed steps (decodes plus
a prefill chunk) — and times each with the engine's own `step()` (its `StepStats.duration_s`:
exactly what the stack's replica thread runs and what `surge_llm_step_seconds` reports).
`fit_cost` fits `sim.costmodel`'s fitted model

    step_s = base_s + per_prefill_token_s * prefill tokens + per_decode_seq_s * decode seqs
             + per_context_token_s * KV tokens read

by non-negative least squares on the per-point medians, and reports R² and the relative
error at every design point. `calibrate(sc)` does both for a scenario's model sizes.

Torch is imported inside the functions that need it, so `import loadtest.calibrate` is light.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sim.errors import SurgeError
from sim.scenario.services import LLMFleet, LocalModel

FEATURES = ("base_s", "per_prefill_token_s", "per_decode_seq_s", "per_context_token_s")


class CalibrationError(SurgeError):
    """The scenario cannot be calibrated against the local engine (e.g. an `openai` backend)."""


@dataclass(frozen=True)
class DesignPoint:
    """One kind of batch step: `decode_seqs` sequences decoding with `context_tokens` tokens of
    context each, plus `prefill_seqs` new prompts of `prefill_chunk` tokens each."""

    kind: str  # prefill | decode | mixed
    prefill_chunk: int = 0
    prefill_seqs: int = 0
    decode_seqs: int = 0
    context_tokens: int = 0

    @property
    def label(self) -> str:
        parts = []
        if self.prefill_seqs:
            parts.append(f"prefill {self.prefill_seqs}x{self.prefill_chunk}")
        if self.decode_seqs:
            parts.append(f"decode {self.decode_seqs} @ ctx {self.context_tokens}")
        return " + ".join(parts)


@dataclass(frozen=True)
class StepSample:
    """A design point as the engine ran it: the features the cost model sees and the median
    wall time of its repeats (seconds)."""

    point: DesignPoint
    prefill_tokens: int
    decode_seqs: int
    kv_tokens: int
    seconds: float
    repeats_s: tuple[float, ...]

    @property
    def mean_s(self) -> float:
        """Mean of the repeats (seconds): on a shared machine it includes the time the engine
        was descheduled, which the median leaves out."""
        return float(np.mean(self.repeats_s))

    @property
    def spread(self) -> float:
        """(p75 - p25) / median of the repeats: the measurement noise at this point."""
        if len(self.repeats_s) < 4:
            return 0.0
        q = np.percentile(self.repeats_s, [25, 75])
        return float((q[1] - q[0]) / self.seconds) if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Fit:
    """Fitted coefficients (seconds per unit, all >= 0), R² of the medians and the relative
    error (predicted / measured - 1) at each design point."""

    coefficients: dict[str, float]
    r2: float
    rel_errors: tuple[float, ...]
    samples: tuple[StepSample, ...] = field(repr=False)
    wall_s: float = 0.0  # how long measuring took
    stat: str = "median"  # what was fitted per point: "median" or "mean" of the repeats

    def predict(self, prefill_tokens: float, decode_seqs: float, kv_tokens: float) -> float:
        c = self.coefficients
        return (c["base_s"] + c["per_prefill_token_s"] * prefill_tokens + c["per_decode_seq_s"] * decode_seqs
                + c["per_context_token_s"] * kv_tokens)

    @property
    def max_abs_rel_error(self) -> float:
        return max((abs(e) for e in self.rel_errors), default=0.0)

    def cost_model(self, digits: int = 3) -> dict[str, Any]:
        """`services.llm.cost_model` as a mapping: `{type: fitted, base_s: ..., ...}`."""
        return {"type": "fitted", **{k: _round_sig(v, digits) for k, v in self.coefficients.items()}}


def _round_sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if x > 0 else 0.0


# ---- design ---------------------------------------------------------------------------------
DECODE_GROWTH = 24  # tokens a design point's sequences may grow by while it is timed


def design(max_batched_tokens: int, max_num_seqs: int, max_context: int, kv_cache_tokens: int,
           decode_steps: int = DECODE_GROWTH, block_tokens: int = 16) -> list[DesignPoint]:
    """Design points within the engine's limits: every step must fit the token budget, the
    sequence limit, the model's context (with `decode_steps` tokens of growth) and the KV pool."""
    top = max(1, max_context - decode_steps - 1)

    def fits(seqs: int, ctx: int, extra: int = 0) -> bool:  # a block to spare each: contexts are spread
        blocks = -(-(ctx + decode_steps + 1) // block_tokens) + 1
        return seqs * blocks * block_tokens + extra <= kv_cache_tokens

    chunks = sorted({c for c in (8, 32, 64, 128, 256, 512, 1024) if c <= min(max_batched_tokens, top)}
                    | {min(max_batched_tokens, top)})
    batches = sorted({b for b in (1, 2, 4, 8, 16, 32, 64) if b <= max_num_seqs} | {max_num_seqs})
    contexts = sorted({c for c in (16, 128, 384, 1024) if c <= top} | {top // 2})
    pts = [DesignPoint("prefill", prefill_chunk=c, prefill_seqs=1) for c in chunks]
    for n in (2, 4):  # several prompts in one step: per-token cost, not per-prompt
        c = min(64, max_batched_tokens // n, top)
        if n <= max_num_seqs and c >= 8:
            pts.append(DesignPoint("prefill", prefill_chunk=c, prefill_seqs=n))
    for b in batches:
        for ctx in contexts:
            if fits(b, ctx):
                pts.append(DesignPoint("decode", decode_seqs=b, context_tokens=ctx))
    for b in sorted({1, max(1, max_num_seqs // 2)}):
        for c in sorted({min(64, top), min(max_batched_tokens - b, top)}):
            ctx = min(128, top)
            if b + 1 <= max_num_seqs and c > 1 and fits(b, ctx, c + block_tokens):
                pts.append(DesignPoint("mixed", prefill_chunk=c, prefill_seqs=1, decode_seqs=b, context_tokens=ctx))
    return pts


# ---- measurement ----------------------------------------------------------------------------
class _Driver:
    """Puts designed work on an engine and times its steps."""

    def __init__(self, engine: Any, vocab: int, seed: int) -> None:
        from loadtest.stack.engine import Sequence

        self.engine, self._Sequence = engine, Sequence
        self.rng = np.random.default_rng(seed)
        self.vocab = vocab

    def seq(self, prompt_tokens: int) -> Any:
        prompt = self.rng.integers(1, self.vocab, prompt_tokens).tolist()
        return self._Sequence(prompt=prompt, max_tokens=1 << 30, sink=lambda kind, value: None, temperature=1.0)

    def step(self) -> tuple[Any, int]:
        """One engine step; its stats and the KV tokens its batch attended to."""
        stats = self.engine.step()
        return stats, sum(s.computed for s in self.engine.running)

    def clear(self) -> None:
        for s in list(self.engine.running) + list(self.engine.waiting):
            self.engine.abort(s)
        self.engine.step()  # reaps them: frees slots and KV

    def start_decoding(self, n: int, context: int) -> None:
        """`n` sequences decoding, prefilled (their first token sampled), in the shape load gives
        a batch: contexts spread evenly around `context` (the same sum as n x `context`; the
        batch attends over its longest, padded) in scattered cache slots (the keys and values
        gathered), not n equal contexts in slots 0..n-1 (a view), which cost 30-40% less at the
        same n and summed context (benchmarks/bench_step_shapes.py; docs/validation.md)."""
        eng = self.engine
        half = max(0, min(context - 1, eng.model.cfg.max_context - DECODE_GROWTH - 1 - context))
        contexts = np.linspace(context - half, context + half, n).round().astype(int) if n > 1 else [context]
        gaps = min(n, eng.cfg.max_num_seqs - n)  # a freed slot before each of the first `gaps` sequences
        seqs, holes = [], []
        for i, c in enumerate(contexts):
            if i < gaps:
                holes.append(self.seq(1))
                eng.submit(holes[-1])
            seqs.append(self.seq(max(1, int(c) - 1)))
            eng.submit(seqs[-1])
        for _ in range(10_000):
            eng.step()
            if all(s.pending == 1 for s in seqs + holes):
                break
        for s in holes:
            eng.abort(s)
        eng.step()  # reaps them (and runs one decode step, not recorded)
        if len(eng.running) == n and all(s.pending == 1 for s in eng.running):
            return
        raise CalibrationError(f"could not start {n} decoding sequences of {context} tokens")


def measure_steps(points: list[DesignPoint], driver: _Driver, repeats: int, idle_s: float = 0.0,
                  clock: str = "wall") -> list[StepSample]:
    """Run every design point `repeats` times on the driver's engine; medians per point.
    `idle_s`: sleep before each timed step, as a replica that waits for work (or sleeps out a
    slowdown fault) does: such a step starts with cold caches and is slower than back-to-back.
    `clock`: "wall" times a step by the wall clock (`StepStats.duration_s`), "cpu" by its
    thread's CPU clock (`StepStats.cpu_s`: what the step itself costs, without the time other
    threads or processes held the core — the figure a model of a shared CPU needs)."""
    out = []
    for p in points:
        times: list[float] = []
        feats: list[tuple[int, int, int]] = []
        if p.decode_seqs:
            driver.start_decoding(p.decode_seqs, p.context_tokens)
        for _ in range(repeats):
            new = [driver.seq(p.prefill_chunk) for _ in range(p.prefill_seqs)]
            for s in new:
                driver.engine.submit(s)
            if idle_s:
                time.sleep(idle_s)
            stats, kv = driver.step()
            ndec = stats.batch_seqs - len(new)
            if stats.prefill_tokens != p.prefill_chunk * p.prefill_seqs or ndec != p.decode_seqs:
                raise CalibrationError(f"step ran {stats} instead of {p.label}")
            times.append(stats.duration_s if clock == "wall" else stats.cpu_s)
            feats.append((stats.prefill_tokens, ndec, kv))
            for s in new:  # leave only the decoding sequences (reaped in the next step)
                driver.engine.abort(s)
            if new:
                driver.engine.step()  # reaps them (with decodes: one more decode step, not recorded)
        driver.clear()
        med = statistics.median(times)
        f = feats[len(feats) // 2]
        out.append(StepSample(p, f[0], f[1], int(statistics.median(x[2] for x in feats)), med, tuple(times)))
    return out


def make_engine(spec: EngineSpec, seed: int = 0) -> Any:
    """An engine like one replica of the stack (same limits, device and weights), no thread."""
    from loadtest.stack.engine import Engine
    from loadtest.stack.model import pick_device

    return Engine(spec.model, spec.fleet, spec.kv_cache_tokens, 0, pick_device(spec.device), seed,
                  block_tokens=spec.block_tokens)


def run_design(spec: EngineSpec, points: list[DesignPoint], repeats: int = 7,
               threads: int | None = None, seed: int = 0, idle_s: float = 0.0, replicas: int = 1,
               clock: str = "wall") -> list[StepSample]:
    """Measure `points` on fresh engines with `threads` torch intra-op threads (None: leave
    torch's setting, as the stack does unless `StackOptions.torch_threads` is set; restored after).
    `replicas` > 1 runs that many engines at once, each in its own thread of this process as
    the stack's replicas are (they share the GIL and the cores), and pools their steps."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    results: list[list[StepSample] | BaseException] = [[] for _ in range(replicas)]

    def one(i: int) -> None:
        try:
            driver = _Driver(make_engine(spec, seed + i), spec.model.vocab, seed + i)
            with torch.inference_mode():
                measure_steps(points[:3], driver, 3)  # warm-up: allocator, kernels, caches
                results[i] = measure_steps(points, driver, repeats, idle_s, clock)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            results[i] = e

    try:
        if replicas == 1:
            one(0)
        else:
            pool = [threading.Thread(target=one, args=(i,), name=f"calibrate-{i}") for i in range(replicas)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
    finally:
        torch.set_num_threads(before)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    runs = [r for r in results if not isinstance(r, BaseException)]
    return [dataclasses.replace(first, seconds=statistics.median(ts := [t for r in runs for t in r[k].repeats_s]),
                                repeats_s=tuple(ts))
            for k, first in enumerate(runs[0])]


# ---- fit ------------------------------------------------------------------------------------
def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares: argmin |a x - b| with x >= 0 (scipy's Lawson-Hanson)."""
    from scipy.optimize import nnls as scipy_nnls

    return np.asarray(scipy_nnls(a, b)[0])


def fit_arrays(prefill: np.ndarray, decodes: np.ndarray, kv: np.ndarray, seconds: np.ndarray,
               relative: bool = True) -> np.ndarray:
    """Coefficients (base, per prefill token, per decode seq, per KV token), all >= 0.
    `relative`: minimise relative rather than absolute error, so short decode steps weigh
    as much as long prefill steps."""
    a = np.column_stack([np.ones_like(seconds), prefill, decodes, kv]).astype(float)
    b = np.asarray(seconds, dtype=float)
    w = 1.0 / b if relative else np.ones_like(b)
    aw, bw = a * w[:, None], b * w
    scale = np.linalg.norm(aw, axis=0)
    scale[scale == 0] = 1.0
    return nnls(aw / scale, bw) / scale


def fit_cost(samples: list[StepSample], relative: bool = True, stat: str = "median") -> Fit:
    """Fit the fitted cost model to measured steps: to each point's median (the engine's own
    cost) or mean (what it costs on this machine under its other load); R² on the same."""
    p = np.array([s.prefill_tokens for s in samples], float)
    d = np.array([s.decode_seqs for s in samples], float)
    k = np.array([s.kv_tokens for s in samples], float)
    if stat not in ("median", "mean"):
        raise CalibrationError(f"'stat' must be 'median' or 'mean' (got {stat!r})")
    y = np.array([s.seconds if stat == "median" else s.mean_s for s in samples], float)
    coef = fit_arrays(p, d, k, y, relative)
    pred = coef[0] + coef[1] * p + coef[2] * d + coef[3] * k
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return Fit(dict(zip(FEATURES, (float(c) for c in coef), strict=True)), r2,
               tuple(float(e) for e in pred / y - 1.0), tuple(samples), stat=stat)


# ---- a scenario -----------------------------------------------------------------------------
class EngineSpec(NamedTuple):
    """One replica of the stack's LLM for a scenario: the model, the fleet's engine limits, the
    KV tokens the engine allocates, and the stack options that matter (device, threads)."""

    model: LocalModel
    fleet: LLMFleet
    kv_cache_tokens: int
    block_tokens: int
    device: str
    torch_threads: int | None


def engine_spec(sc: Any, opts: Any = None) -> EngineSpec:
    """The engine of one stack replica for this scenario, as the stack builds it."""
    from loadtest.stack.options import StackOptions, kv_tokens

    llm = sc.services.llm
    if llm is None:
        raise CalibrationError("the scenario has no 'services.llm' to calibrate")
    if llm.backend.type != "local":
        raise CalibrationError(f"'services.llm.backend.type' must be 'local' to calibrate (got {llm.backend.type!r})")
    o = opts or StackOptions(db_path=":memory:", admin_token="-", session_secret="-")
    model = llm.backend.model
    return EngineSpec(model, llm, kv_tokens(llm, model.max_context, o.block_tokens), o.block_tokens, o.device,
                      o.torch_threads)


def calibrate(sc: Any, repeats: int = 9, threads: int | None = None, seed: int = 0, stat: str = "median",
              idle_s: float = 0.0, replicas: int = 1, clock: str = "wall") -> Fit:
    """Measure the scenario's local model on `replicas` engines at once (see `run_design`) and
    fit the cost model (`threads`: torch intra-op threads; None = the stack's
    `llm.torch_threads`, else torch's default; `clock`: see `measure_steps`)."""
    if clock not in ("wall", "cpu"):
        raise CalibrationError(f"'clock' must be 'wall' or 'cpu' (got {clock!r})")
    spec = engine_spec(sc)
    t0 = time.monotonic()
    pts = design(spec.fleet.max_batched_tokens, spec.fleet.max_num_seqs, spec.model.max_context,
                 spec.kv_cache_tokens, decode_steps=2 * repeats + 6, block_tokens=spec.block_tokens)
    if not any(p.kind == "decode" for p in pts):
        raise CalibrationError(f"the model's context ({spec.model.max_context} tokens) or KV cache "
                               f"({spec.kv_cache_tokens}) leaves no room for {repeats} repeats of a decode step")
    samples = run_design(spec, pts, repeats, threads if threads else spec.torch_threads, seed, idle_s, replicas, clock)
    return dataclasses.replace(fit_cost(samples, stat=stat), wall_s=time.monotonic() - t0)


def fit_table(fit: Fit) -> str:
    """One line per design point: features (P prefill tokens, D decode sequences, KV tokens),
    measured median and mean, the fit, its relative error, and the noise (IQR / median)."""
    rows = [f"{'step':<34} {'P':>4} {'D':>3} {'KV':>5} {'median ms':>9} {'mean ms':>8} {'fit ms':>7} "
            f"{'err':>7} {'IQR/med':>7}"]
    for s, e in zip(fit.samples, fit.rel_errors, strict=True):
        pred = fit.predict(s.prefill_tokens, s.decode_seqs, s.kv_tokens)
        rows.append(f"{s.point.label:<34} {s.prefill_tokens:>4} {s.decode_seqs:>3} {s.kv_tokens:>5} "
                    f"{1e3 * s.seconds:>9.3f} {1e3 * s.mean_s:>8.3f} {1e3 * pred:>7.3f} {100 * e:>+6.1f}% "
                    f"{100 * s.spread:>6.0f}%")
    return "\n".join(rows)
