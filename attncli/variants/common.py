"""Pieces every variant shares: the cache container, RoPE, and the plain-math attention path."""

from __future__ import annotations

import math

import torch

# The plain-math path materialises scores one block of queries at a time, so that a float64
# reference at long sequence lengths needs at most this many bytes of scores at once.
MAX_SCORE_BYTES = 256 * 2**20


class Cache(dict):
    """Named cache tensors (`k`, `v` for GQA). `nbytes` counts the storage really allocated."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def nbytes(self) -> int:
        storages = {}
        for t in self.values():
            s = t.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
        return sum(storages.values())


class Rope:
    """Rotary position embedding (Su et al. 2021): x·cos(mθ_i) + rotate(x)·sin(mθ_i) at position m.

    Layouts: half-split, as GPT-NeoX and Llama (pair i is elements i and i + dim/2), or
    `interleave`, as DeepSeek's checkpoints (pair i is elements 2i and 2i + 1). Frequencies are
    θ_i = theta^(-2i/dim) unless `inv_freq` gives them (a checkpoint's scaled RoPE, see
    `attncli.rope_scaling`); `attention_factor` multiplies cos and sin (YaRN). Tables are
    computed in float64 on the CPU, then cast, so every dtype rotates by the same angles."""

    def __init__(self, dim: int, theta: float, inv_freq=None, attention_factor: float = 1.0, interleave: bool = False):
        self.dim, self.theta = dim, theta
        self.attention_factor, self.interleave = float(attention_factor), interleave
        if inv_freq is None:
            self.inv_freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
        else:
            self.inv_freq = torch.as_tensor(inv_freq, dtype=torch.float64).reshape(dim // 2)  # (dim/2,)
        self._tables: dict = {}  # (device, dtype) -> (cos, sin), each (positions, dim)

    def tables(self, start: int, length: int, device, dtype):
        key = (str(device), dtype)
        cos, sin = self._tables.get(key, (None, None))
        if cos is None or cos.shape[0] < start + length:
            n = 1 << max(0, (start + length - 1).bit_length())  # room to grow without recomputing
            angles = torch.outer(torch.arange(n, dtype=torch.float64), self.inv_freq)  # (n, dim/2)
            if self.interleave:
                angles = angles.repeat_interleave(2, dim=-1)  # (n, dim): θ_0 θ_0 θ_1 θ_1 …
            else:
                angles = torch.cat([angles, angles], dim=-1)  # (n, dim): θ_0 … θ_{dim/2-1} θ_0 …
            f = self.attention_factor
            cos, sin = (angles.cos() * f).to(device, dtype), (angles.sin() * f).to(device, dtype)
            self._tables[key] = (cos, sin)
        return cos[start : start + length], sin[start : start + length]

    def __call__(self, x: torch.Tensor, start: int) -> torch.Tensor:
        # x: (B, H, T, dim)
        cos, sin = self.tables(start, x.shape[-2], x.device, x.dtype)  # (T, dim) each
        if self.interleave:
            rotated = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)  # (B, H, T, dim): pairs (-x1, x0)
        else:
            half = self.dim // 2
            rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (B, H, T, dim)
        return x * cos + rotated * sin


def math_attention(q, k, v, causal: bool, q_offset: int = 0, scale: float | None = None):
    """Plain-math attention: explicit scores, mask, softmax, weighted sum.

    q: (B, h, T, dk); k: (B, g, S, dk); v: (B, g, S, dv) with g dividing h (query head i uses KV
    head i // (h/g), as SDPA's enable_gqa does). Query t sits at position q_offset + t and, when
    causal, sees keys 0..q_offset+t. Returns (B, h, T, dv).
    """
    B, h, T, dk = q.shape
    g, S = k.shape[1], k.shape[2]
    if g != h:
        k = k.repeat_interleave(h // g, dim=1)  # (B, h, S, dk)
        v = v.repeat_interleave(h // g, dim=1)  # (B, h, S, dv)
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    out = q.new_empty(B, h, T, v.shape[-1])  # (B, h, T, dv)
    block = max(1, MAX_SCORE_BYTES // max(1, B * h * S * q.element_size()))
    key_pos = torch.arange(S, device=q.device)
    for i in range(0, T, block):
        j = min(T, i + block)
        scores = (q[:, :, i:j] @ k.transpose(-2, -1)) * scale  # (B, h, j-i, S)
        if causal:
            query_pos = torch.arange(i, j, device=q.device) + q_offset
            scores = scores.masked_fill(key_pos[None, :] > query_pos[:, None], float("-inf"))
        out[:, :, i:j] = torch.softmax(scores, dim=-1) @ v  # (B, h, j-i, dv)
    return out
