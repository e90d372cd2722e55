"""A small decoder-only transformer (random, seeded weights) over a paged KV cache.

The KV cache is one pool per layer of `num_blocks * block_tokens` token slots (plus one
scratch block that padded positions write to and read from, masked out). A sequence owns a
list of blocks (its block table); a forward step takes a padded batch of token chunks
`[B, C]` — C = 1 for decode, C = chunk length for prefill — writes their keys and values into
the pool, gathers each sequence's context through its block table and attends with a mask.
One forward therefore covers the whole batch: that is what makes batched decode cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from loadtest.stack.config import ModelConfig


@dataclass
class Batch:
    """Inputs of one forward step (all tensors on the model's device).

    tokens, positions: [B, C]; write_blocks, write_offsets: [B, C] where each token's key and
    value go (padding writes to the scratch block); read_blocks: [B, nb] each sequence's block
    table, so its context is nb * block_tokens slots (the tail beyond its length is masked);
    context_lens: [B] valid context length after this step; last: [B] index in C of the last
    real token of each row (its logits are returned).
    """

    tokens: torch.Tensor
    positions: torch.Tensor
    write_blocks: torch.Tensor
    write_offsets: torch.Tensor
    read_blocks: torch.Tensor
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
        # Write first, then gather: the chunk attends to itself through the pool. Whole blocks
        # are gathered with index_select (long contiguous copies): ~5x faster on CPU than
        # advanced indexing by token slot.
        k_pool[b.write_blocks, b.write_offsets] = k
        v_pool[b.write_blocks, b.write_offsets] = v
        nb, bs = b.read_blocks.shape[1], k_pool.shape[1]
        flat = b.read_blocks.reshape(-1)
        keys = k_pool.index_select(0, flat).view(bsz, nb * bs, self.heads, self.head_dim).transpose(1, 2)
        vals = v_pool.index_select(0, flat).view(bsz, nb * bs, self.heads, self.head_dim).transpose(1, 2)
        att = F.scaled_dot_product_attention(q.transpose(1, 2), keys, vals, attn_mask=mask)
        x = x + self.out(att.transpose(1, 2).reshape(bsz, c, hid))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class TinyDecoder(nn.Module):
    """Decoder-only transformer: token + position embeddings, pre-norm blocks, tied head."""

    def __init__(self, cfg: ModelConfig, seed: int = 0) -> None:
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
        ctx = torch.arange(b.read_blocks.shape[1] * k_pools[0].shape[1], device=x.device).view(1, 1, -1)
        # Token at position p sees context positions <= p (causal) within its sequence's length.
        mask = ((ctx <= b.positions.unsqueeze(-1)) & (ctx < b.context_lens.view(-1, 1, 1))).unsqueeze(1)
        for layer, blk in enumerate(self.blocks):
            x = blk(x, b, mask, k_pools[layer], v_pools[layer])
        rows = torch.arange(x.shape[0], device=x.device)
        return self.ln_f(x[rows, b.last]) @ self.embed.weight.T


class KVPool:
    """Paged KV storage: per layer a tensor [num_blocks + 1, block_tokens, heads, head_dim].

    The last block is scratch: padded positions write there and are never read unmasked.
    """

    def __init__(self, cfg: ModelConfig, capacity_tokens: int, block_tokens: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.block_tokens = block_tokens
        self.num_blocks = max(1, capacity_tokens // block_tokens)
        shape = (self.num_blocks + 1, block_tokens, cfg.heads, cfg.hidden // cfg.heads)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.scratch_block = self.num_blocks
        self._free = list(range(self.num_blocks - 1, -1, -1))

    @property
    def free_blocks(self) -> int:
        return len(self._free)

    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_tokens

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold `tokens` tokens."""
        return -(-tokens // self.block_tokens)

    def allocate(self, n: int) -> list[int]:
        if n > len(self._free):
            raise MemoryError(f"KV pool has {len(self._free)} free blocks, {n} asked")
        return [self._free.pop() for _ in range(n)]

    def release(self, blocks: list[int]) -> None:
        self._free.extend(reversed(blocks))
        blocks.clear()


def pick_device(name: str) -> torch.device:
    """`auto` = CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
