"""Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434 §2.1) with decoupled RoPE.

Each token's hidden state is compressed into one latent c_kv (kv_lora_rank elements, RMS-normed)
and one RoPE key k_pe (qk_rope_head_dim elements, rotated); both are shared by every head, and
together they are all the cache holds. Head i's key is [W_UK_i c_kv, k_pe] and its value W_UV_i c_kv,
where W_UK and W_UV are the two halves of kv_b_proj. Two paths compute the same output:

- naive (`absorb=False`): up-project every cached latent into per-head keys and values, then attend
  in the per-head widths. Cheap when every latent serves many queries (prefill); in decode it
  redoes the up-projection of the whole cache at every step.
- absorbed (`absorb=True`): q_nope_i · (W_UK_i c) = (W_UK_iᵀ q_nope_i) · c, so fold W_UK into the
  query and score it against the latent itself; likewise apply W_UV_i to the weighted sum of
  latents, after attention. Attention then runs over the cache as stored (kv_lora_rank + rope
  wide, one "KV head" for all query heads): the decode path DeepSeek's inference code and FlashMLA
  use. W_UK and W_UV are views of kv_b_proj's weight, so both paths hold the very same parameters.

Module names follow DeepSeek's Hugging Face checkpoints (q_proj or q_a_proj/q_a_layernorm/q_b_proj,
kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj); no biases. RoPE is `common.Rope`, half-split;
a checkpoint loaded with `--weights` (`attncli.weights`) sets its interleaved layout, scaled
frequencies, biases and YaRN softmax scale on the built module.
"""

from __future__ import annotations

import math as _math

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import MLASpec
from . import flex
from .common import Cache, Projection, Rope, math_attention

RMS_EPS = 1e-6  # DeepSeek-V2's rms_norm_eps
# Give SDPA values as wide as keys (zero-padded V; the absorbed path's V is the whole latent), so
# the CPU's fused kernel takes MLA; False is the old path (SDPA's math fallback), kept for
# benchmarks/mla_fused.py.
FUSED_WIDTHS = True


class MLAAttention(nn.Module):
    def __init__(self, spec: MLASpec):
        super().__init__()
        self.spec = spec
        d, h, r, rq = spec.d_model, spec.n_heads, spec.kv_lora_rank, spec.q_lora_rank
        nope, rope, dv = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
        if rq is None:  # full-rank query (DeepSeek-V2-Lite)
            self.q_proj = Projection(d, h * (nope + rope), bias=False)
        else:  # low-rank query: down, RMSNorm, up (DeepSeek-V2/V3)
            self.q_a_proj = Projection(d, rq, bias=False)
            self.q_a_layernorm = nn.RMSNorm(rq, eps=RMS_EPS)
            self.q_b_proj = Projection(rq, h * (nope + rope), bias=False)
        self.kv_a_proj_with_mqa = Projection(d, r + rope, bias=False)  # latent and shared RoPE key
        self.kv_a_layernorm = nn.RMSNorm(r, eps=RMS_EPS)
        self.kv_b_proj = Projection(r, h * (nope + dv), bias=False)  # rows: head 0 [W_UK; W_UV], head 1, ...
        self.o_proj = Projection(h * dv, d, bias=False)
        self.rope = Rope(rope, spec.rope_theta) if spec.position == "rope" else None
        self.scale = 1.0 / _math.sqrt(nope + rope)  # scores run over nope + rope elements

    # -- the pieces both paths share -------------------------------------------------------------

    def _query(self, x: torch.Tensor, start: int):
        """x (B, T, d_model) at positions start.. -> q_nope (B, h, T, nope), q_pe (B, h, T, rope)."""
        s = self.spec
        B, T, _ = x.shape
        q = self.q_proj(x) if s.q_lora_rank is None else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, T, s.n_heads, s.head_dim).transpose(1, 2)  # (B, h, T, nope + rope)
        q_nope, q_pe = q.split([s.qk_nope_head_dim, s.qk_rope_head_dim], dim=-1)  # (B, h, T, nope), (B, h, T, rope)
        if self.rope is not None:
            q_pe = self.rope(q_pe, start)  # each head rotates its own RoPE part
        return q_nope, q_pe

    def _latent(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x (B, T, d_model) -> what the cache keeps: (B, T, kv_lora_rank + rope) = [norm(c_kv), rotated k_pe]."""
        s = self.spec
        c_kv, k_pe = self.kv_a_proj_with_mqa(x).split([s.kv_lora_rank, s.qk_rope_head_dim], dim=-1)  # (B, T, r), (B, T, rope)
        if self.rope is not None:
            k_pe = self.rope(k_pe[:, None], start)[:, 0]  # one key head shared by all: (B, T, rope)
        return torch.cat([self.kv_a_layernorm(c_kv), k_pe], dim=-1)  # (B, T, r + rope)

    def _kv_b_heads(self):
        """W_UK (h, nope, r) and W_UV (h, v, r): views of kv_b_proj's weight, per head."""
        s = self.spec
        w = self.kv_b_proj.weight.view(s.n_heads, s.qk_nope_head_dim + s.v_head_dim, s.kv_lora_rank)  # (h, nope + v, r)
        return w.split([s.qk_nope_head_dim, s.v_head_dim], dim=1)  # (h, nope, r), (h, v, r)

    def _out(self, o: torch.Tensor) -> torch.Tensor:
        B, h, T, dv = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(B, T, h * dv))  # (B, T, d_model)

    # -- the two paths ---------------------------------------------------------------------------

    def _attend(self, q_nope, q_pe, latent, causal: bool, math: bool, q_offset: int = 0) -> torch.Tensor:
        """q_nope (B, h, T, nope), q_pe (B, h, T, rope), latent (B, S, r + rope) -> (B, h, T, v)."""
        if self.spec.absorb:
            return self._attend_absorbed(q_nope, q_pe, latent, causal, math, q_offset)
        return self._attend_naive(q_nope, q_pe, latent, causal, math, q_offset)

    def _attend_naive(self, q_nope, q_pe, latent, causal, math, q_offset):
        s = self.spec
        B, S, _ = latent.shape
        h, nope, dv = s.n_heads, s.qk_nope_head_dim, s.v_head_dim
        c_kv, k_pe = latent.split([s.kv_lora_rank, s.qk_rope_head_dim], dim=-1)  # (B, S, r), (B, S, rope)
        kv = self.kv_b_proj(c_kv).view(B, S, h, nope + dv).transpose(1, 2)  # every key up-projected: (B, h, S, nope + v)
        k_nope, v = kv.split([nope, dv], dim=-1)  # (B, h, S, nope), (B, h, S, v)
        k = torch.cat([k_nope, k_pe[:, None].expand(B, h, S, s.qk_rope_head_dim)], dim=-1)  # (B, h, S, nope + rope)
        q = torch.cat([q_nope, q_pe], dim=-1)  # (B, h, T, nope + rope)
        if math:
            return math_attention(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale)
        if flex.active():  # --backend flex takes keys and values of different widths as they are
            return flex.attend(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale)
        if not FUSED_WIDTHS:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=self.scale)  # (B, h, T, v)
        # The CPU's fused kernel needs values as wide as keys (else SDPA runs its math fallback):
        # pad V with zeros to nope + rope; the padded output columns are zero and dropped.
        v = F.pad(v, (0, s.qk_rope_head_dim))  # (B, h, S, nope + rope)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=self.scale)[..., :dv]  # (B, h, T, v)

    def _attend_absorbed(self, q_nope, q_pe, latent, causal, math, q_offset):
        s = self.spec
        B, h, T, _ = q_nope.shape
        S, r = latent.shape[1], s.kv_lora_rank
        w_uk, w_uv = self._kv_b_heads()  # (h, nope, r), (h, v, r)
        q = torch.cat([q_nope @ w_uk, q_pe], dim=-1)  # W_UK folded into the query: (B, h, T, r + rope)
        k, v = latent[:, None], latent[:, None, :, :r]  # one KV head for all: (B, 1, S, r + rope), (B, 1, S, r)
        if FUSED_WIDTHS and not math and not flex.active():
            # The CPU's fused kernel needs values as wide as keys: take the whole latent as the value
            # (the RoPE key is its padding) and drop the last `rope` output columns. No copy.
            v = k  # (B, 1, S, r + rope)
        if FUSED_WIDTHS and not math and not flex.active() and T == 1 and not causal:
            # One decode token: its h query rows against the one latent "KV head" are a single task
            # for the CPU flash kernel (one thread; 2.4× slower than SDPA's math path, measured), and
            # SDPA's math path scales a copy of the whole cache. Two matmuls read the latent in place
            # on every thread: scores (B, 1, h, S), then the weighted sum of latents.
            scores = (q.reshape(B, 1, h, -1) * self.scale) @ k.transpose(-2, -1)  # (B, 1, h, S)
            o = (torch.softmax(scores, dim=-1) @ latent[:, None, :, :r]).view(B, h, 1, r)  # (B, h, 1, r)
        elif math:
            o = math_attention(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale)  # (B, h, T, r)
        elif flex.active():  # one KV head for all query heads: flex's GQA (widths may differ)
            o = flex.attend(q, k, v, causal=causal, q_offset=q_offset, scale=self.scale)  # (B, h, T, r)
        elif not causal:
            # Every query sees every key: stack the heads as queries of one head, as FlashMLA does,
            # so the kernel reads the latent once (SDPA's enable_gqa is far slower on the CPU).
            o = F.scaled_dot_product_attention(q.reshape(B, 1, h * T, r + s.qk_rope_head_dim), k, v,
                                               scale=self.scale)[..., :r].reshape(B, h, T, r)  # fmt: skip
        else:
            o = F.scaled_dot_product_attention(q, k.expand(B, h, S, -1), v.expand(B, h, S, v.shape[-1]),
                                               is_causal=True, scale=self.scale)[..., :r]  # (B, h, T, r)  # fmt: skip
        return o @ w_uv.transpose(1, 2)  # W_UV applied after attention: (B, h, T, r) @ (h, r, v) -> (B, h, T, v)

    # -- the module interface --------------------------------------------------------------------

    def forward(self, x: torch.Tensor, math: bool = False):
        """Prefill: (B, T, d_model) -> ((B, T, d_model), cache of the T latents and RoPE keys)."""
        q_nope, q_pe = self._query(x, 0)
        latent = self._latent(x, 0)  # (B, T, r + rope)
        o = self._attend(q_nope, q_pe, latent, causal=self.spec.causal and x.shape[1] > 1, math=math)
        return self._out(o), Cache(latent=latent)

    def allocate_cache(self, batch: int, capacity: int) -> Cache:
        s = self.spec
        width = s.kv_lora_rank + s.qk_rope_head_dim
        return Cache(latent=self.kv_b_proj.weight.new_zeros(batch, capacity, width))  # (B, tokens, r + rope)

    def fill_cache(self, cache: Cache, x: torch.Tensor) -> None:
        cache.latent[:, : x.shape[1]] = self._latent(x, 0)

    def step(self, x: torch.Tensor, cache: Cache, pos: int, math: bool = False) -> torch.Tensor:
        """Decode: x (B, 1, d_model) at position pos attends to cache[0..pos] (itself included)."""
        q_nope, q_pe = self._query(x, pos)
        cache.latent[:, pos : pos + 1] = self._latent(x, pos)
        latent = cache.latent[:, : pos + 1]  # (B, pos + 1, r + rope)
        o = self._attend(q_nope, q_pe, latent, causal=False, math=math, q_offset=pos)
        return self._out(o)
