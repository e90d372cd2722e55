"""The stack's decode step as load makes it, against the batches `surge calibrate` times.

Calibration times decode steps of B sequences with one context length each, in cache slots
0..B-1 (a view of the KV cache). Under load the batch is mixed: contexts differ (the batch
attends over its longest context, padded, for every row) and the rows sit in scattered slots
(the keys and values are gathered, `index_select`). This times, on one engine in-process by the
engine thread's CPU clock (so other processes on the machine do not enter the figure), four
shapes with the same B and the same summed context, and prints the cost model's prediction
(which sees only B and the summed context). Usage:

    python benchmarks/bench_step_shapes.py SCENARIO [B ...]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from loadtest.calibrate import engine_spec, make_engine
from sim.scenario import load_scenario


def _decoding(engine, contexts, scatter, rng, vocab):  # type: ignore[no-untyped-def]
    """Sequences decoding at `contexts` (prefilled); `scatter`: in every other slot."""
    from loadtest.stack.engine import Sequence

    n = len(contexts)
    extra = min(n, engine.cfg.max_num_seqs - n) if scatter else 0  # a gap before each of the first rows
    lens = [c for i, c in enumerate(contexts) for _ in range(2 if i < extra else 1)]
    seqs = [Sequence(prompt=rng.integers(1, vocab, max(1, c - 1)).tolist(), max_tokens=1 << 30,
                     sink=lambda k, v: None) for c in lens]
    gaps = [s for j, s in enumerate(seqs) if j < 2 * extra and j % 2 == 0]
    for s in seqs:
        engine.submit(s)
    for _ in range(1000):
        engine.step()
        if all(s.pending == 1 for s in seqs):
            break
    for s in gaps:  # free their slots: the rest decode in scattered slots
        engine.abort(s)
    if gaps:
        engine.step()
    assert len(engine.running) == n, (len(engine.running), n)
    return [s for s in seqs if s not in gaps]


def time_shape(engine, contexts, scatter, vocab, steps=40, seed=0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    seqs = _decoding(engine, contexts, scatter, rng, vocab)
    cpu, kv = [], []
    for _ in range(steps):
        st = engine.step()
        cpu.append(st.cpu_s)
        kv.append(st.kv_tokens)
    for s in seqs:
        engine.abort(s)
    engine.step()
    return statistics.median(cpu), statistics.median(kv)


def main() -> None:
    sc = load_scenario(Path(sys.argv[1]))
    cost = sc.services.llm.cost_model  # type: ignore[union-attr]
    torch.set_num_threads(1)
    spec = engine_spec(sc)
    sizes = [int(x) for x in sys.argv[2:]] or [4, 8, 12]
    print("B  shape                        step CPU ms  model ms  measured/model")
    with torch.inference_mode():
        for b in sizes:
            mean = 96
            spread = [int(round(x)) for x in np.linspace(16, 2 * mean - 16, b)]  # the same sum as b x mean
            for label, ctx, scatter in (("equal ctx, slots 0..B-1", [mean] * b, False),
                                        ("equal ctx, scattered slots", [mean] * b, True),
                                        ("mixed ctx, slots 0..B-1", spread, False),
                                        ("mixed ctx, scattered slots", spread, True)):
                engine = make_engine(spec)
                cpu, kv = time_shape(engine, ctx, scatter, spec.model.vocab)
                model = cost.base_s + cost.per_decode_seq_s * b + cost.per_context_token_s * kv
                print(f"{b:<3}{label:<30}{1e3 * cpu:>10.3f}{1e3 * model:>10.3f}{cpu / model:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
