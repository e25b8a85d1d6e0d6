"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"), three forms of one layer.

softmax(q·k) is replaced by φ(q)·φ(k) with φ(x) = elu(x) + 1 (their §3.2.1), positive, so
y_i = φ(q_i)ᵀ S_i / φ(q_i)ᵀ z_i with S_i = Σ_{j≤i} φ(k_j) v_jᵀ and z_i = Σ_{j≤i} φ(k_j).
- math path (the reference): the parallel form, explicit A = φ(Q)φ(K)ᵀ, causal mask, AV / A·1;
- fast prefill: the chunkwise form, quadratic inside chunks of `chunk_size` tokens and the state
  (S, z) carried across chunks (Yang et al. 2024, GLA §3; Qin et al. 2024, Lightning Attention-2);
- decode: the recurrent form; the cache is the state, S (B, h, d_k, d_v) and z (B, h, d_k), whose
  size does not depend on the sequence length. A decode step has no other form, so `math=True`
  runs the same recurrence. No position encoding (as in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import cost
from ..spec import LinearSpec
from .common import Cache, Projection


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 > 0 (Katharopoulos et al. 2020 §3.2.1)."""
    return F.elu(x) + 1


class LinearAttention(nn.Module):
    def __init__(self, spec: LinearSpec):
        super().__init__()
        self.spec = spec
        h, hd, d = spec.n_heads, spec.head_dim, spec.d_model
        self.q_proj = Projection(d, h * hd, bias=False)
        self.k_proj = Projection(d, h * hd, bias=False)
        self.v_proj = Projection(d, h * hd, bias=False)
        self.o_proj = Projection(h * hd, d, bias=False)

    def _qkv(self, x: torch.Tensor):
        s = self.spec
        B, T, _ = x.shape
        q = feature_map(self.q_proj(x).view(B, T, s.n_heads, s.head_dim).transpose(1, 2))  # (B, h, T, dk)
        k = feature_map(self.k_proj(x).view(B, T, s.n_heads, s.head_dim).transpose(1, 2))  # (B, h, T, dk)
        v = self.v_proj(x).view(B, T, s.n_heads, s.head_dim).transpose(1, 2)  # (B, h, T, dv)
        return q, k, v

    def _out(self, o: torch.Tensor) -> torch.Tensor:
        B, h, T, hd = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(B, T, h * hd))  # (B, T, d_model)

    def forward(self, x: torch.Tensor, math: bool = False):
        """Prefill: (B, T, d_model) -> ((B, T, d_model), the state after the T tokens)."""
        q, k, v = self._qkv(x)
        causal = self.spec.causal
        o, cache = self._parallel(q, k, v, causal) if math else self._chunkwise(q, k, v, causal)
        return self._out(o), cache

    @staticmethod
    def _parallel(q, k, v, causal: bool):
        """The explicit quadratic form, in blocks of queries (each block scores the keys up to its
        last query when causal): A = φ(Q)φ(K)ᵀ masked, y = AV / A·1; then the state for decoding."""
        B, h, T, dk = q.shape
        out = q.new_empty(B, h, T, v.shape[-1])  # (B, h, T, dv)
        block = cost.math_query_block(B, h, T, q.element_size())  # the pairs cost.math_path_pairs counts
        for i in range(0, T, block):
            j = min(T, i + block)
            hi = j if causal else T
            a = q[:, :, i:j] @ k[:, :, :hi].transpose(-2, -1)  # (B, h, j-i, hi)
            if causal:
                later = torch.arange(hi, device=q.device)[None, :] > torch.arange(i, j, device=q.device)[:, None]
                a.masked_fill_(later, 0.0)
            out[:, :, i:j] = (a @ v[:, :, :hi]) / a.sum(-1, keepdim=True)  # (B, h, j-i, dv)
        state = Cache(s=k.transpose(-2, -1) @ v, z=k.sum(dim=2))  # (B, h, dk, dv), (B, h, dk)
        return out, state

    def _chunkwise(self, q, k, v, causal: bool):
        B, h, T, dk = q.shape
        s = q.new_zeros(B, h, dk, v.shape[-1])  # (B, h, dk, dv) Σ φ(k) vᵀ over earlier chunks
        z = q.new_zeros(B, h, dk, 1)  # (B, h, dk, 1) Σ φ(k) over earlier chunks
        if not causal:  # every query sees every key: one state, read out by all
            s, z = k.transpose(-2, -1) @ v, k.sum(dim=2).unsqueeze(-1)
            out = (q @ s) / (q @ z)  # (B, h, T, dv)
            return out, Cache(s=s, z=z.squeeze(-1))
        out = q.new_empty(B, h, T, v.shape[-1])  # (B, h, T, dv)
        C = self.spec.chunk_size
        for i in range(0, T, C):
            j = min(T, i + C)
            qc, kc, vc = q[:, :, i:j], k[:, :, i:j], v[:, :, i:j]  # (B, h, c, d)
            a = torch.tril(qc @ kc.transpose(-2, -1))  # (B, h, c, c) within the chunk, causal
            num = a @ vc + qc @ s  # (B, h, c, dv)
            den = a.sum(-1, keepdim=True) + qc @ z  # (B, h, c, 1)
            out[:, :, i:j] = num / den
            s = s + kc.transpose(-2, -1) @ vc  # (B, h, dk, dv)
            z = z + kc.sum(dim=2).unsqueeze(-1)  # (B, h, dk, 1)
        return out, Cache(s=s, z=z.squeeze(-1).contiguous())

    def allocate_cache(self, batch: int, capacity: int) -> Cache:
        """The state: S (B, h, dk, dv) and z (B, h, dk); capacity is unused (the size is constant)."""
        s, w = self.spec, self.q_proj.weight
        return Cache(s=w.new_zeros(batch, s.n_heads, s.head_dim, s.head_dim), z=w.new_zeros(batch, s.n_heads, s.head_dim))

    def fill_cache(self, cache: Cache, x: torch.Tensor) -> None:
        """Set the state to that after the prefix x (overwrites: the state is not appended to)."""
        _, k, v = self._qkv(x)
        cache.s.copy_(k.transpose(-2, -1) @ v)  # (B, h, dk, dv)
        cache.z.copy_(k.sum(dim=2))  # (B, h, dk)

    def step(self, x: torch.Tensor, cache: Cache, pos: int, math: bool = False) -> torch.Tensor:
        """Decode: fold the token into the state, then read it out: S += φ(k)vᵀ, z += φ(k),
        y = φ(q)ᵀS / φ(q)ᵀz. Each call advances the state by one token."""
        q, k, v = self._qkv(x)  # (B, h, 1, d)
        cache.s.add_(k.transpose(-2, -1) @ v)  # (B, h, dk, dv)
        cache.z.add_(k[:, :, 0])  # (B, h, dk)
        o = (q @ cache.s) / (q @ cache.z.unsqueeze(-1))  # (B, h, 1, dv)
        return self._out(o)
