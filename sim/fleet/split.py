"""Splitting counts without losing a request: the random draws of the fleet engine.

A cohort of n requests that goes several ways (outcomes, service-time bins) is split by
*systematic sampling*: the cumulative expected counts n x cumsum(p) are cut at u, u+1, u+2, ...
with one uniform u per cohort. Every part is an integer, the parts add up to n exactly, each
part's mean is n x p_k, and a cohort of one request lands in bin k with probability p_k (one
exact draw), so a cell of a few requests is simulated as the SimPy engine would, and a cohort
of millions costs the same as one of ten.
"""

from __future__ import annotations

import numpy as np


def systematic(n: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split integer counts `n` (any shape S) over the last axis of `p` (shape (K,) or S + (K,),
    rows summing to 1): an integer array of shape S + (K,) whose rows add up to `n`."""
    n = np.asarray(n, dtype=np.float64)
    cum = np.cumsum(p, axis=-1)
    cum = cum / cum[..., -1:]  # exact 1 at the end, so the last cut is n itself
    u = rng.random(n.shape)[..., None]
    cuts = n[..., None] * cum  # in place from here: one array of the output's size, not three
    cuts += u
    np.floor(cuts, out=cuts)
    out = np.empty_like(cuts)
    out[..., 0] = cuts[..., 0]  # the first cut starts from floor(u) = 0
    np.subtract(cuts[..., 1:], cuts[..., :-1], out=out[..., 1:])
    return out


def binomial(n: np.ndarray, p: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
    """Binomial draws for integer-valued float counts (0 where p <= 0)."""
    n = np.asarray(n, dtype=np.float64)
    p = np.clip(np.broadcast_to(np.asarray(p, dtype=np.float64), n.shape), 0.0, 1.0)
    if not n.any():
        return np.zeros_like(n)
    return rng.binomial(n.astype(np.int64), p).astype(np.float64)


def take_oldest(counts: np.ndarray, k: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Take `k[r]` items from each row r of `counts` (R, B), visiting bins in `order` (B,), the
    same for every row, or (R, B) (e.g. oldest first); returns the amounts taken per bin (R, B)."""
    out = np.zeros_like(counts)
    if order.ndim == 1:  # one order for all rows: plain indexing (the common case, cheaper)
        c = counts[:, order]
        before = np.cumsum(c, axis=1) - c
        out[:, order] = np.clip(k[:, None] - before, 0.0, c)
        return out
    c = np.take_along_axis(counts, order, axis=1)
    before = np.cumsum(c, axis=1) - c
    np.put_along_axis(out, order, np.clip(k[:, None] - before, 0.0, c), axis=1)
    return out


def proportional(total: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split `total[r]` over the columns of `weights` (R, K) in proportion to them (systematic);
    where a row's weights are all 0 nothing is split."""
    s = weights.sum(axis=1, keepdims=True)
    p = np.where(s > 0, weights / np.where(s > 0, s, 1.0), 0.0)
    p[:, -1] += np.where(s[:, 0] > 0, 0.0, 1.0)  # an empty row: everything to the last column
    out = systematic(np.where(s[:, 0] > 0, total, 0.0), p, rng)
    return np.minimum(out, weights)


def fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b > 0, else 0 (the share of a cohort that some part of it is)."""
    return np.where(b > 0, a / np.maximum(b, 1e-300), 0.0)


def mean_of(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count where count > 0, else 0 (a mean over a cohort, e.g. of command ages)."""
    return np.where(count > 0, total / np.maximum(count, 1e-300), 0.0)


def take_share(x: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Take k[r] of the attempts x (R, ...) in proportion to how they are spread."""
    flat = x.reshape(x.shape[0], -1)
    tot = flat.sum(axis=1, keepdims=True)
    p = np.where(tot > 0, flat / np.maximum(tot, 1e-300), 0.0)
    p[:, -1] += np.where(tot[:, 0] > 0, 0.0, 1.0)
    out = np.minimum(systematic(np.minimum(k, tot[:, 0]), p, rng), flat)
    return out.reshape(x.shape)


def add_cohorts(cal: np.ndarray, r: np.ndarray, c: np.ndarray, bins: np.ndarray, parts: np.ndarray) -> None:
    """cal[r[m], c[m], bins[m, j]] += parts[m, j] for a calendar (R, C, H) whose (r, c) pairs
    are distinct and whose bins are distinct within a pair (bins (m, J) or (J,)); through a
    flat index (several times cheaper than the broadcast fancy index, same sums)."""
    if not cal.flags.c_contiguous:  # e.g. after a regrid: the plain form
        cal[r[:, None], c[:, None], np.broadcast_to(bins, parts.shape)] += parts
        return
    C, H = cal.shape[1], cal.shape[2]
    idx = ((r * C + c) * H)[:, None] + bins
    np.add.at(cal.reshape(-1), idx.ravel(), parts.ravel())


def add_run(cal: np.ndarray, r: np.ndarray, c: np.ndarray, b0: int, parts: np.ndarray) -> None:
    """cal[r[m], c[m], (b0 + j) % H] += parts[m, j] for a calendar (R, C, H), distinct (r, c)
    pairs and J <= H bins from b0 on (a ring): the pairs' rows are gathered once, added to in at
    most two slices and written back (contiguous copies instead of an index per element)."""
    H, J = cal.shape[2], parts.shape[1]
    rows = cal[r, c]  # (m, H), a copy
    first = min(J, H - b0)
    rows[:, b0:b0 + first] += parts[:, :first]
    if first < J:
        rows[:, : J - first] += parts[:, first:]
    cal[r, c] = rows
