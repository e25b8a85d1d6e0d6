"""Cross-attention: queries from the decoder sequence, keys/values from an encoder memory.

Interface addition (documented in variants/__init__.py): the module needs its encoder memory
before it runs. `memory_len` says how many memory tokens it takes; `set_memory(memory)` hands it
a (batch, memory_len, d_model) tensor. The memory's K/V are projected once into the cache
(`fill_cache`, or inside a prefill `forward`); decode steps read that cache and never write it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import CrossSpec
from .common import Cache, add_projections, math_attention


class CrossAttention(nn.Module):
    def __init__(self, spec: CrossSpec):
        super().__init__()
        self.spec = spec
        add_projections(self, spec)  # q/k/v/o_proj, as Hugging Face's Whisper/T5 cross-attention, no biases
        self.memory_len = spec.memory_len
        self.memory: torch.Tensor | None = None  # (B, M, d_model), set by set_memory

    def set_memory(self, memory: torch.Tensor) -> None:
        """The encoder output the keys and values come from: (batch, memory_len, d_model)."""
        if memory.dim() != 3 or memory.shape[1:] != (self.memory_len, self.spec.d_model):
            raise ValueError(f"memory must be (batch, {self.memory_len}, {self.spec.d_model}), not {tuple(memory.shape)}")
        self.memory = memory

    def _memory_kv(self, batch: int):
        s = self.spec
        if self.memory is None:
            raise RuntimeError("cross-attention needs its encoder memory: call set_memory(memory) first")
        if self.memory.shape[0] != batch:
            raise ValueError(f"memory holds {self.memory.shape[0]} sequences, the input {batch}")
        M = self.memory_len
        k = self.k_proj(self.memory).view(batch, M, s.n_kv_heads, s.head_dim).transpose(1, 2)  # (B, g, M, hd)
        v = self.v_proj(self.memory).view(batch, M, s.n_kv_heads, s.head_dim).transpose(1, 2)  # (B, g, M, hd)
        return k, v

    def _attend(self, x: torch.Tensor, k, v, math: bool) -> torch.Tensor:
        # x: (B, T, d_model); k, v: (B, g, M, hd) -> (B, T, d_model)
        s = self.spec
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, s.n_heads, s.head_dim).transpose(1, 2)  # (B, h, T, hd)
        if math:
            o = math_attention(q, k, v, causal=False)
        else:
            shared = {"enable_gqa": True} if s.n_kv_heads != s.n_heads else {}
            o = F.scaled_dot_product_attention(q, k, v, **shared)  # (B, h, T, hd)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, s.n_heads * s.head_dim))  # (B, T, d_model)

    def forward(self, x: torch.Tensor, math: bool = False):
        """Prefill: project the memory's K/V once (the cache), attend every decoder token to it."""
        k, v = self._memory_kv(x.shape[0])
        return self._attend(x, k, v, math), Cache(k=k, v=v)

    def allocate_cache(self, batch: int, capacity: int) -> Cache:
        """The cache holds the memory's M tokens whatever the decoder length (capacity is unused)."""
        s, w = self.spec, self.k_proj.weight
        shape = (batch, s.n_kv_heads, self.memory_len, s.head_dim)  # (B, g, M, hd)
        return Cache(k=w.new_zeros(shape), v=w.new_zeros(shape))

    def fill_cache(self, cache: Cache, x: torch.Tensor) -> None:
        """Project the memory into the cache (the decoder prefix x only gives the batch size)."""
        k, v = self._memory_kv(x.shape[0])
        cache.k.copy_(k)
        cache.v.copy_(v)

    def step(self, x: torch.Tensor, cache: Cache, pos: int, math: bool = False) -> torch.Tensor:
        """Decode: x (B, 1, d_model) attends to the whole memory; the cache is read, never written."""
        return self._attend(x, cache.k, cache.v, math)
