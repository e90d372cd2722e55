"""The LLM engine: continuous batching computes what one sequence alone would, respects its
limits, preempts by recompute when KV runs out, and frees every block it took."""

from __future__ import annotations

import time

import torch

from loadtest.stack.engine import Engine, Sequence
from sim.scenario.services import LLMFleet, LocalModel

MODEL = LocalModel(layers=2, hidden=32, heads=2, vocab=64, max_context=256)


def make(**llm) -> Engine:
    kv, block = llm.pop("kv_cache_tokens", 4096), llm.pop("block_tokens", 8)
    return Engine(MODEL, LLMFleet(kv_cache_tokens=kv, **llm), kv, seed=3, block_tokens=block)


def seq(prompt_len: int, max_tokens: int, out: list, start: int = 1, **kw) -> Sequence:
    prompt = [(start + 5 * i) % MODEL.vocab for i in range(prompt_len)]
    return Sequence(prompt=prompt, max_tokens=max_tokens, temperature=0.0, sink=lambda k, v: out.append((k, v)), **kw)


def run_all(e: Engine, seqs: list[Sequence], max_steps: int = 10_000) -> list:
    stats = []
    with torch.inference_mode():
        for _ in range(max_steps):
            if all(s.finished for s in seqs):
                return stats
            stats.append(e.step())
    raise AssertionError("engine did not finish")


def tokens(events: list) -> list[int]:
    return [v for k, v in events if k == "token"]


def solo(prompt_len: int, max_tokens: int, start: int) -> list[int]:
    e, out = make(), []
    s = seq(prompt_len, max_tokens, out, start)
    e.submit(s)
    run_all(e, [s])
    return tokens(out)


def test_batched_greedy_output_equals_solo_output():
    # Padding, masks, chunked prefill and paged KV must not change what a sequence computes.
    e = make(max_batched_tokens=24, chunked_prefill=True)
    specs = [(5, 12, 1), (40, 6, 2), (17, 20, 3), (1, 9, 4), (33, 3, 5)]
    outs = [[] for _ in specs]
    seqs = [seq(p, m, o, st) for (p, m, st), o in zip(specs, outs, strict=True)]
    for s in seqs:
        e.submit(s)
    stats = run_all(e, seqs)
    for (p, m, st), o in zip(specs, outs, strict=True):
        assert tokens(o) == solo(p, m, st)
        assert o[-1] == ("done", "length")
    assert max(s.prefill_tokens + s.batch_seqs for s in stats) <= 24 + len(specs)
    assert e.pool.free_blocks == e.pool.num_blocks


def test_preemption_by_recompute_keeps_outputs_and_frees_kv():
    e = make(kv_cache_tokens=96, max_batched_tokens=64)  # 12 blocks of 8: not enough for all four
    outs = [[] for _ in range(4)]
    seqs = [seq(10, 30, outs[i], i + 1) for i in range(4)]
    for s in seqs:
        e.submit(s)
    run_all(e, seqs)
    assert e.preemptions > 0
    for i, o in enumerate(outs):
        assert tokens(o) == solo(10, 30, i + 1)  # recompute resumes exactly where it stopped
    assert e.pool.free_blocks == e.pool.num_blocks


def test_new_sequences_join_between_decode_steps():
    e = make(max_num_seqs=8)
    first, late = [], []
    a = seq(4, 40, first)
    e.submit(a)
    with torch.inference_mode():
        for _ in range(5):
            e.step()
        b = seq(4, 5, late, start=9)
        e.submit(b)
        e.step()  # b is prefilled in the same step as a decodes
        assert len(e.running) == 2 and len(tokens(first)) == 6 and len(tokens(late)) == 1
        run_all(e, [a, b])
    assert len(tokens(late)) == 5 and len(tokens(first)) == 40


def test_max_num_seqs_and_token_budget_are_respected():
    e = make(max_num_seqs=3, max_batched_tokens=16, chunked_prefill=True)
    outs = [[] for _ in range(6)]
    seqs = [seq(20, 4, outs[i], i) for i in range(6)]
    for s in seqs:
        e.submit(s)
    stats = run_all(e, seqs)
    assert max(s.batch_seqs for s in stats) <= 3
    assert max(s.prefill_tokens for s in stats) <= 16
    assert all(len(tokens(o)) == 4 for o in outs)


def test_deadline_and_abort_leave_the_batch_and_free_kv():
    e = make()
    o1, o2 = [], []
    late = seq(8, 100, o1, deadline=time.monotonic() - 1)
    gone = seq(8, 100, o2)
    e.submit(late)
    e.submit(gone)
    with torch.inference_mode():
        e.step()
        e.abort(gone)
        e.step()
    assert o1[-1] == ("error", "deadline_exceeded") and o2[-1] == ("error", "aborted")
    assert e.pool.free_blocks == e.pool.num_blocks and not e.running and e.load == 0


def test_engine_thread_serves_and_stops():
    e = make()
    out = []
    s = seq(6, 10, out)
    e.start()
    try:
        e.submit(s)
        end = time.monotonic() + 10
        while not s.finished and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        e.stop()
    assert len(tokens(out)) == 10


def test_a_steps_features_are_what_the_cost_model_reads():
    """Per step: decode sequences, and the tokens cached for the batch's sequences after it (the
    cost model's context term, as calibration counts it); every sampled token counted, the
    first too (sim.rules.tokens)."""
    e = make(max_num_seqs=4, max_batched_tokens=64)
    a, b = seq(10, 3, []), seq(6, 3, [])
    e.submit(a)
    e.submit(b)
    stats = run_all(e, [a, b])
    assert [(s.decode_seqs, s.prefill_tokens, s.new_tokens) for s in stats] == [(0, 16, 2), (2, 0, 2), (2, 0, 2)]
    assert [s.kv_tokens for s in stats] == [16, 18, 20]  # 10 + 6 prompt tokens, then one more each per step
    assert sum(s.new_tokens for s in stats) == 6 and a.generated == b.generated == 3
    assert a.first_token_t <= a.last_token_t and a.first_token_t > 0
