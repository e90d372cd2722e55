"""A small decoder-only transformer (random, seeded weights) over a padded KV cache.

KV capacity is accounted in blocks of `block_tokens` tokens (`KVPool`: what a sequence may
hold, what preemption frees). Physically each running sequence owns one slot row of
`slot_tokens` positions per layer (plus a scratch row that padding writes to), so that a
decode batch whose slots are 0..B-1 attends over a *view* of the cache, without copying
context. A forward step takes a padded batch of token chunks `[B, C]` — C = 1 for decode,
C = chunk length for prefill — writes their keys and values into their slots and attends
with a mask. One forward covers the whole batch: that is what makes batched decode cheap.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sim.scenario.services import LocalModel


@dataclass
class Batch:
    """Inputs of one forward step (all tensors on the model's device).

    tokens, positions: [B, C]; write_slots: [B, C] the slot each token's key and value go to
    (padding: the scratch slot); slots: [B] each row's slot, or None when the rows are slots
    0..B-1 in order (then the cache is read through a view); context: longest context L;
    context_lens: [B] valid context length after this step; last: [B] index in C of the last
    real token of each row (its logits are returned).
    """

    tokens: torch.Tensor
    positions: torch.Tensor
    write_slots: torch.Tensor
    slots: torch.Tensor | None
    context: int
    context_lens: torch.Tensor
    last: torch.Tensor


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        self.up = nn.Linear(hidden, 4 * hidden, bias=False)
        self.down = nn.Linear(4 * hidden, hidden, bias=False)

    def forward(self, x: torch.Tensor, b: Batch, mask: torch.Tensor, k_pool: torch.Tensor,
                v_pool: torch.Tensor) -> torch.Tensor:
        bsz, c, hid = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(bsz, c, 3, self.heads, self.head_dim).unbind(2)
        # Write first, then read: the chunk attends to itself through the cache.
        k_pool[b.write_slots, b.positions] = k
        v_pool[b.write_slots, b.positions] = v
        keys, vals = k_pool[:, :b.context], v_pool[:, :b.context]
        if b.slots is None:  # rows are slots 0..B-1: a view, no copy
            keys, vals = keys[:bsz], vals[:bsz]
        else:
            keys, vals = keys.index_select(0, b.slots), vals.index_select(0, b.slots)
        keys, vals = keys.transpose(1, 2), vals.transpose(1, 2)
        att = F.scaled_dot_product_attention(q.transpose(1, 2), keys, vals, attn_mask=mask)
        x = x + self.out(att.transpose(1, 2).reshape(bsz, c, hid))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class TinyDecoder(nn.Module):
    """Decoder-only transformer: token + position embeddings, pre-norm blocks, tied head."""

    def __init__(self, cfg: LocalModel, seed: int = 0) -> None:
        super().__init__()
        if cfg.hidden % cfg.heads:
            raise ValueError(f"'hidden' must be a multiple of 'heads' (got {cfg.hidden} and {cfg.heads})")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden)
        self.pos = nn.Embedding(cfg.max_context, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() > 1:  # LayerNorms keep their identity init
                    std = 0.02 if "embed" in name or "pos" in name else 1 / math.sqrt(p.shape[1])
                    p.copy_(torch.randn(p.shape, generator=gen) * std)

    def forward(self, b: Batch, k_pools: list[torch.Tensor], v_pools: list[torch.Tensor]) -> torch.Tensor:
        """Logits [B, vocab] at each row's last real token."""
        x = self.embed(b.tokens) + self.pos(b.positions)
        ctx = torch.arange(b.context, device=x.device).view(1, 1, -1)
        # Token at position p sees context positions <= p (causal) within its sequence's length.
        mask = ((ctx <= b.positions.unsqueeze(-1)) & (ctx < b.context_lens.view(-1, 1, 1))).unsqueeze(1)
        for layer, blk in enumerate(self.blocks):
            x = blk(x, b, mask, k_pools[layer], v_pools[layer])
        rows = torch.arange(x.shape[0], device=x.device)
        return self.ln_f(x[rows, b.last]) @ self.embed.weight.T


class KVPool:
    """KV capacity in blocks of `block_tokens` (accounting) and per-layer slot storage
    [max_seqs + 1, slot_tokens, heads, head_dim] (the last slot is scratch)."""

    def __init__(self, cfg: LocalModel, capacity_tokens: int, block_tokens: int, device: torch.device,
                 dtype: torch.dtype, max_seqs: int = 1) -> None:
        self.block_tokens = block_tokens
        self.num_blocks = max(1, capacity_tokens // block_tokens)
        self.slot_tokens = min(cfg.max_context, self.num_blocks * block_tokens)
        shape = (max_seqs + 1, self.slot_tokens, cfg.heads, cfg.hidden // cfg.heads)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.scratch_slot = max_seqs
        # free blocks: the ones given back, then the never used ones (a counter: a scenario's
        # KV cache may be far larger than a list could hold)
        self._returned: list[int] = []
        self._fresh = 0
        self._free_slots = list(range(max_seqs))  # a heap: the lowest free slot is taken first

    def take_slot(self) -> int:
        """The lowest free slot: running sequences stay packed at the front, so decode
        batches are usually slots 0..B-1 and read the cache through a view."""
        return heapq.heappop(self._free_slots)

    def give_slot(self, slot: int) -> None:
        heapq.heappush(self._free_slots, slot)

    @property
    def free_blocks(self) -> int:
        return len(self._returned) + self.num_blocks - self._fresh

    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_tokens

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold `tokens` tokens."""
        return -(-tokens // self.block_tokens)

    def allocate(self, n: int) -> list[int]:
        if n > self.free_blocks:
            raise MemoryError(f"KV pool has {self.free_blocks} free blocks, {n} asked")
        k = min(n, len(self._returned))
        out = [self._returned.pop() for _ in range(k)]
        out += range(self._fresh, self._fresh + n - k)
        self._fresh += n - k
        return out

    def release(self, blocks: list[int]) -> None:
        self._returned.extend(reversed(blocks))
        blocks.clear()


def pick_device(name: str) -> torch.device:
    """`auto` = CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
