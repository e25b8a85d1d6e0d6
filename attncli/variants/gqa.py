"""MHA, GQA and MQA in one module: the number of KV heads is a field (MHA: g = h, MQA: g = 1).

Masks and position compose with the sharing: `causal`, a sliding `window` (the `swa` family) and
`position` rope, alibi or none. With a window the decode cache is a ring buffer of W slots: the
token at position t lives in slot t mod W, so the cache never holds more than W tokens.

What real layers add composes too: q/k norms before RoPE (`qk_norm`), partial rotary
(`rotary_dim`), a softmax `scale`, logit soft-capping (`softcap`) and per-head attention sinks
(`sinks`). SDPA cannot cap logits or add a sink column, so with either of those the fast path is
the blocked plain-math path (as transformers runs Gemma 2 and GPT-OSS in eager attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import GQASpec
from . import cdecode, external, flex
from .common import (Cache, Projection, QKNorm, Rope, add_projections, alibi_slopes, cpu_decode_on, decode_attention,
                     kv_cache_tensor, masked_sdpa, math_attention)


class GQAAttention(nn.Module):
    def __init__(self, spec: GQASpec):
        super().__init__()
        self.spec = spec
        h, hd = spec.n_heads, spec.head_dim
        add_projections(self, spec)  # q/k/v/o_proj, as Hugging Face's Llama checkpoints, no biases
        self.rope = Rope(spec.rotated, spec.rope_theta) if spec.position == "rope" else None
        if spec.qk_norm:  # named as Qwen3's and OLMo-2's checkpoints name them
            for name, heads in (("q_norm", h), ("k_norm", spec.n_kv_heads)):
                setattr(self, name, QKNorm(spec.qk_norm_type, spec.qk_norm_over, heads, hd, spec.norm_eps))
        self.sinks = nn.Parameter(torch.zeros(h)) if spec.sinks else None  # (h,) one logit per head
        self.scale = spec.softmax_scale
        self.softcap = spec.softcap
        self.window = spec.window
        slopes = torch.tensor(alibi_slopes(h)) if spec.position == "alibi" else None
        self.register_buffer("alibi", slopes, persistent=False)  # (h,) or None
        # Query block of the masked fast path: a quarter of the window, so a block of b queries reads
        # b + W − 1 keys (1.25 W per query, not 2 W as at b = W): at S 2048, W 512 that took the window's
        # speed-up over causal from 1.26× (b = W) to 2.15× (ideal 2.29; docs/backends.md).
        self.block = 512 if spec.window is None else max(64, min(1024, spec.window // 4))
        # What the C step (cdecode.gqa_step) computes: projections, RoPE, the cache write, softmax
        # attention of grouped query heads (one per KV head, MHA, stays on the BLAS gemv)
        self._one_call = spec.window is None and spec.position != "alibi" and not spec.qk_norm and \
            spec.softcap is None and not spec.sinks and h // spec.n_kv_heads >= cdecode.MIN_ROWS  # fmt: skip

    def _heads(self, proj: torch.Tensor, heads: int, norm: str) -> torch.Tensor:
        """(B, T, heads·hd) projection → (B, heads, T, hd), through its q/k norm when there is one."""
        B, T, _ = proj.shape
        spec = self.spec
        if spec.qk_norm and spec.qk_norm_over == "proj":
            proj = getattr(self, norm)(proj)  # (B, T, heads·hd)
        x = proj.view(B, T, heads, spec.head_dim)  # (B, T, heads, hd)
        if spec.qk_norm and spec.qk_norm_over == "head":
            x = getattr(self, norm)(x)
        return x.transpose(1, 2)  # (B, heads, T, hd)

    def _q(self, x: torch.Tensor, start: int) -> torch.Tensor:
        # x: (B, T, d_model); tokens sit at positions start..start+T-1
        q = self._heads(self.q_proj(x), self.spec.n_heads, "q_norm")  # (B, h, T, hd)
        return q if self.rope is None else self.rope(q, start)

    def _kv(self, x: torch.Tensor, start: int):
        B, T, _ = x.shape
        g, hd = self.spec.n_kv_heads, self.spec.head_dim
        k = self._heads(self.k_proj(x), g, "k_norm")  # (B, g, T, hd)
        v = self.v_proj(x).view(B, T, g, hd).transpose(1, 2)  # (B, g, T, hd)
        return (k if self.rope is None else self.rope(k, start)), v

    def _qkv(self, x: torch.Tensor, start: int):
        return (self._q(x, start), *self._kv(x, start))

    def _attend(self, q, k, v, causal: bool, math: bool, q_offset: int = 0, key_pos=None):
        # q: (B, h, T, hd); k, v: (B, g, S, hd) -> (B, h, T, hd)
        masks = {"window": self.window, "alibi": self.alibi, "key_pos": key_pos}
        if math:
            return math_attention(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale, softcap=self.softcap,
                                  sinks=self.sinks, **masks)  # fmt: skip
        if flex.active():  # --backend flex: block masks and score mods, soft-cap and sinks too (variants/flex.py)
            return flex.attend(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale, softcap=self.softcap,
                               sinks=self.sinks, **masks)  # fmt: skip
        if external.active():  # --backend flash_attn, flashinfer, xformers (variants/external.py)
            return external.attend(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale, softcap=self.softcap,
                                   sinks=self.sinks, **masks)  # fmt: skip
        if self.softcap is not None or self.sinks is not None:  # SDPA can say neither
            return math_attention(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale, softcap=self.softcap,
                                  sinks=self.sinks, **masks)  # fmt: skip
        if not causal and q.shape[2] == 1:  # decode on the CPU: matrix-vector products over the cache
            o = decode_attention(q, k, v, self.scale, alibi=self.alibi, key_pos=key_pos, q_pos=q_offset)
            if o is not None:
                return o
        if self.window is not None or self.alibi is not None:
            return masked_sdpa(q, k, v, causal=causal, q_offset=q_offset, block=self.block, scale=self.scale, **masks)
        B, h, T, hd = q.shape
        g = self.spec.n_kv_heads
        if g != h and T == 1 and not causal:
            # One new token per sequence: a KV group's query heads become one block of queries over
            # that group's keys (as FlashDecoding and FlashMLA pack heads); 2-3× faster than
            # enable_gqa on the CPU at 1-4k cached tokens, and the same arithmetic.
            o = F.scaled_dot_product_attention(q.reshape(B, g, h // g, hd), k, v, scale=self.scale)  # (B, g, h/g, hd)
            return o.reshape(B, h, 1, hd)
        # enable_gqa lets the kernel share KV heads without copying them (torch >= 2.5)
        shared = {"enable_gqa": True} if g != h else {}
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=self.scale, **shared)

    def _out(self, o: torch.Tensor) -> torch.Tensor:
        B, h, T, hd = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(B, T, h * hd))  # (B, T, d_model)

    def forward(self, x: torch.Tensor, math: bool = False):
        """Prefill: (B, T, d_model) -> ((B, T, d_model), cache of the T keys and values, or of the
        last W of them in ring order when there is a window)."""
        q, k, v = self._qkv(x, 0)
        o = self._attend(q, k, v, causal=self.spec.causal and x.shape[1] > 1, math=math)
        if self.window is None:
            return self._out(o), Cache(k=k, v=v)
        cache = self.allocate_cache(x.shape[0], x.shape[1])
        self._write(cache, k, v, x.shape[1] - k.shape[2])
        return self._out(o), cache

    def allocate_cache(self, batch: int, capacity: int) -> Cache:
        """An empty cache for `capacity` tokens; a window caps it at W slots."""
        s, w = self.spec, self.k_proj.weight
        slots = capacity if self.window is None else min(capacity, self.window)
        shape = (batch, s.n_kv_heads, slots, s.head_dim)  # (B, g, slots, hd); the CPU layout: decode_attention
        return Cache(k=kv_cache_tensor(w, shape), v=kv_cache_tensor(w, shape))

    def _write(self, cache: Cache, k, v, start: int) -> None:
        """Store keys/values of the tokens at positions start..: slot = position (no window) or
        position mod W (ring buffer); only the last `slots` tokens can be kept."""
        T, slots = k.shape[2], cache.k.shape[2]
        if self.window is None:
            cache.k[:, :, start : start + T], cache.v[:, :, start : start + T] = k, v
            return
        keep = min(T, slots)
        positions = torch.arange(start + T - keep, start + T, device=k.device)
        index = positions % self.window  # (keep,) ring slots
        first, last = (start + T - keep) % self.window, (start + T - 1) % self.window
        highest = self.window - 1 if keep >= self.window or first > last else last  # max(index), without a device sync
        if highest >= slots:
            raise ValueError(f"cache of {slots} slots cannot hold position {start + T - 1} (window {self.window})")
        cache.k.index_copy_(2, index, k[:, :, T - keep :])  # (B, g, slots, hd)
        cache.v.index_copy_(2, index, v[:, :, T - keep :])

    def fill_cache(self, cache: Cache, x: torch.Tensor) -> None:
        T = x.shape[1]
        if self.window is None:
            k, v = self._kv(x, 0)  # no queries: the prefix only fills the cache
            self._write(cache, k, v, 0)
            return
        keep = min(T, cache.k.shape[2])
        k, v = self._kv(x[:, T - keep :], T - keep)  # only the tokens the ring keeps
        self._write(cache, k, v, T - keep)

    def _step_in_c(self, x: torch.Tensor, cache: Cache, pos: int):
        """The whole step in one C call (cdecode.gqa_step) where it applies, else None: float32 on
        the CPU, 1-8 sequences, grouped query heads. The call runs none of the per-op dispatch of
        the steps below: 1.2x faster on the decode bandwidth benchmark's shape (docs/backends.md).
        Modules and parameters are read from their dicts (nn.Module.__getattr__ costs 2 µs a read
        here, in a path that runs cold)."""
        mods = self._modules
        projections = (mods["q_proj"], mods["k_proj"], mods["v_proj"], mods["o_proj"])
        if not all(type(p) is Projection for p in projections) or not (self.rope is None or type(self.rope) is Rope):
            return None  # a replaced projection or rotation computes something else
        params = [p._parameters for p in projections]
        return cdecode.gqa_step(x, [p["weight"] for p in params], [p["bias"] for p in params], self.rope, cache.k,
                                cache.v, pos, self.spec.n_heads, self.scale)

    def step(self, x: torch.Tensor, cache: Cache, pos: int, math: bool = False) -> torch.Tensor:
        """Decode: x (B, 1, d_model) at position pos attends to cache[0..pos] (itself included), or
        to its last min(pos+1, W) tokens when there is a window."""
        if self._one_call and not math and cpu_decode_on(x) and not (flex.active() or external.active()):
            y = self._step_in_c(x, cache, pos)
            if y is not None:
                return y
        q, k, v = self._qkv(x, pos)
        self._write(cache, k, v, pos)
        if self.window is None:
            keys, values = cache.k[:, :, : pos + 1], cache.v[:, :, : pos + 1]  # (B, g, pos+1, hd)
            o = self._attend(q, keys, values, causal=False, math=math, q_offset=pos)
            return self._out(o)
        held = min(pos + 1, self.window)
        slots = torch.arange(held, device=x.device)
        key_pos = pos - (pos - slots) % self.window  # (held,) the position each slot holds
        keys, values = cache.k[:, :, :held], cache.v[:, :, :held]  # (B, g, held, hd)
        o = self._attend(q, keys, values, causal=False, math=math, q_offset=pos, key_pos=key_pos)
        return self._out(o)
