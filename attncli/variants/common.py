"""Pieces every variant shares: the cache container, RoPE, ALiBi, masks, and the plain-math attention path."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from .. import cost
from ..cost import key_range  # the block schedule lives beside its count (cost.math_path_pairs)
from . import cdecode


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
    `attncli.rope_scaling`); `attention_factor` multiplies cos and sin (YaRN). `freq_at`, when
    given, returns the frequencies of a call whose last position is seq_len − 1 (dynamic NTK and
    longrope: transformers recomputes them from max(position_ids) + 1 on every call), or None for
    `inv_freq`. Heads wider than `dim` rotate their first `dim` elements and pass the rest through
    (partial rotary: GPT-NeoX's rotary_pct, Phi's partial_rotary_factor). Tables are computed in
    float64 on the CPU, then cast, so every dtype rotates by the same angles."""

    def __init__(self, dim: int, theta: float, inv_freq=None, attention_factor: float = 1.0, interleave: bool = False,
                 freq_at=None):  # fmt: skip
        self.dim, self.theta = dim, theta
        self.attention_factor, self.interleave, self.freq_at = float(attention_factor), interleave, freq_at
        if inv_freq is None:
            self.inv_freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
        else:
            self.inv_freq = torch.as_tensor(inv_freq, dtype=torch.float64).reshape(dim // 2)  # (dim/2,)
        self._tables: dict = {}  # (device, dtype) -> (cos, sin), each (positions, dim)
        self._call: tuple = (None, None)  # freq_at's last (key, (cos, sin))

    def _angles(self, positions, inv_freq):
        angles = torch.outer(positions, inv_freq)  # (n, dim/2)
        if self.interleave:
            return angles.repeat_interleave(2, dim=-1)  # (n, dim): θ_0 θ_0 θ_1 θ_1 …
        return torch.cat([angles, angles], dim=-1)  # (n, dim): θ_0 … θ_{dim/2-1} θ_0 …

    def tables(self, start: int, length: int, device, dtype):
        f = self.attention_factor
        freqs = self.freq_at(start + length) if self.freq_at is not None else None
        if freqs is not None:  # frequencies that depend on the call: computed for its positions only
            key = (str(device), dtype, start, length, tuple(freqs))
            if self._call[0] != key:
                inv = torch.as_tensor(freqs, dtype=torch.float64).reshape(self.dim // 2)
                angles = self._angles(torch.arange(start, start + length, dtype=torch.float64), inv)  # (length, dim)
                self._call = (key, ((angles.cos() * f).to(device, dtype), (angles.sin() * f).to(device, dtype)))
            return self._call[1]
        key = (str(device), dtype)
        cos, sin = self._tables.get(key, (None, None))
        if cos is None or cos.shape[0] < start + length:
            n = 1 << max(0, (start + length - 1).bit_length())  # room to grow without recomputing
            angles = self._angles(torch.arange(n, dtype=torch.float64), self.inv_freq)  # (n, dim)
            cos, sin = (angles.cos() * f).to(device, dtype), (angles.sin() * f).to(device, dtype)
            self._tables[key] = (cos, sin)
        return cos[start : start + length], sin[start : start + length]

    def cpu_row(self, pos: int, dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
        """CPU cos and sin tables (n, dim) holding position pos's angles, and the row that does:
        tables(pos, 1) without its two slices, for the decode step's one C call (cdecode.gqa_step),
        where each aten op runs cold (30-40 µs)."""
        if self.freq_at is None:
            cos, sin = self._tables.get(("cpu", dtype), (None, None))
            if cos is not None and pos < cos.shape[0]:
                return cos, sin, pos
        cos, sin = self.tables(pos, 1, "cpu", dtype)
        return cos, sin, 0

    def __call__(self, x: torch.Tensor, start: int) -> torch.Tensor:
        # x: (B, H, T, head_dim); the first `dim` elements of each head are rotated
        if x.shape[-1] > self.dim:  # partial rotary: rotate the first dim elements, pass the rest
            return torch.cat([self(x[..., : self.dim], start), x[..., self.dim :]], dim=-1)  # (B, H, T, head_dim)
        cos, sin = self.tables(start, x.shape[-2], x.device, x.dtype)  # (T, dim) each
        if self.interleave:  # DeepSeek's rope_interleave: pairs (x0, x1), (x2, x3), ...
            rotated = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)  # (B, H, T, dim): pairs (-x1, x0)
            return x * cos + rotated * sin
        half = self.dim // 2
        # x·cos + rotate_half(x)·sin without materialising rotate_half(x): one full product, then
        # two half-width multiply-adds in place (2 passes over x instead of 5; same values).
        out = x * cos  # (B, H, T, dim)
        out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)  # − x₂·sin
        out[..., half:].addcmul_(x[..., :half], sin[..., half:])  # + x₁·sin
        return out


class QKNorm(torch.nn.Module):
    """A query or key norm (Qwen3, Gemma 3, OLMo-2, StableLM, Cohere), applied before RoPE.

    `rms` (Zhang & Sennrich 2019): x / sqrt(mean(x²) + eps) · w, over each head's elements (w of
    head_dim, shared by the heads: Qwen3, Gemma 3) or over the whole projection (w of
    heads·head_dim: OLMo-2). `layer` (Ba et al. 2016, no bias): (x − mean) / sqrt(var + eps) · w
    over each head, w per head (heads, head_dim): StableLM's per-head LayerNorms, Cohere's. Half
    precision inputs are normalised in float32, as transformers' norms do."""

    def __init__(self, kind: str, over: str, heads: int, head_dim: int, eps: float):
        super().__init__()
        self.kind, self.over, self.eps = kind, over, eps
        shape = (head_dim,) if kind == "rms" and over == "head" else (heads * head_dim,) if over == "proj" else (heads, head_dim)
        self.weight = torch.nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, heads, head_dim) when over heads; (B, T, heads·head_dim) over the projection
        y = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if self.kind == "layer":
            y = y - y.mean(-1, keepdim=True)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.to(y.dtype)).to(x.dtype)


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi's per-head slopes (Press et al. 2022, §3 and their released code): for n heads, n a
    power of two, the geometric sequence 2^(-8/n), 2^(-16/n), …, 2^(-8); otherwise those of the
    largest power of two m < n, then every other slope of 2m until there are n."""

    def geometric(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    m = 1 << (n_heads.bit_length() - 1)  # the largest power of two ≤ n_heads
    if m == n_heads:
        return geometric(n_heads)
    return geometric(m) + geometric(2 * m)[0::2][: n_heads - m]


def score_mask(query_pos, key_pos, causal: bool, window: int | None, alibi, dtype):
    """For queries at query_pos (Tq,) and keys at key_pos (Tk,): the hidden pairs (Tq, Tk) bool, or
    None, and the ALiBi bias (h, Tq, Tk) = −slope·|i − j|, or None. Causal hides keys after the
    query; a window W hides keys W or more positions away (either side when not causal)."""
    dist = query_pos[:, None] - key_pos[None, :]  # (Tq, Tk) query position − key position
    hidden = dist < 0 if causal else None
    if window is not None:
        far = dist >= window if causal else dist.abs() >= window
        hidden = far if hidden is None else hidden | far
    bias = None
    if alibi is not None:
        bias = -alibi.to(dtype).view(-1, 1, 1) * dist.abs().to(dtype)  # (h, Tq, Tk)
    return hidden, bias


def math_attention(q, k, v, causal: bool, q_offset: int = 0, scale: float | None = None, *,
                   window: int | None = None, alibi=None, key_pos=None, softcap: float | None = None,
                   sinks=None):  # fmt: skip
    """Plain-math attention: explicit scores, bias, mask, softmax, weighted sum.

    q: (B, h, T, dk); k: (B, g, S, dk); v: (B, g, S, dv) with g dividing h (query head i uses KV
    head i // (h/g), as SDPA's enable_gqa does). Query t sits at position q_offset + t and, when
    causal, sees keys 0..q_offset+t; a `window` W further limits it to keys less than W positions
    away (an explicit banded mask); `alibi` (h,) slopes add −slope·|i − j| to every score.
    `key_pos` (S,) gives the keys' positions when they are not 0..S-1 (a ring-buffer cache).
    `softcap` c caps each scaled score at c·tanh(score / c) before the mask (Gemma 2); `sinks` (h,)
    adds one logit per head to every softmax, whose weight then goes to no value (GPT-OSS).
    Queries run in blocks (cost.math_query_block); with keys in order, a block scores every key
    from the first its mask can let through to the last (the same numbers: the others would get
    weight exp(−inf) = 0), the pairs cost.math_path_pairs counts. Returns (B, h, T, dv).
    """
    B, h, T, dk = q.shape
    g, S = k.shape[1], k.shape[2]
    if g != h:
        k = k.repeat_interleave(h // g, dim=1)  # (B, h, S, dk)
        v = v.repeat_interleave(h // g, dim=1)  # (B, h, S, dv)
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    out = q.new_empty(B, h, T, v.shape[-1])  # (B, h, T, dv)
    # Blocks of queries within cost.MATH_MAX_SCORE_BYTES of scores (near W with a window):
    # cost.math_path_pairs counts the pairs this schedule scores, for --verify-flops.
    block = cost.math_query_block(B, h, S, q.element_size(), window)
    ordered = key_pos is None
    key_pos = torch.arange(S, device=q.device) if key_pos is None else key_pos
    for i in range(0, T, block):
        j = min(T, i + block)
        lo, hi = key_range(i, j, S, q_offset, causal, window) if ordered else (0, S)
        scores = q[:, :, i:j] @ k[:, :, lo:hi].transpose(-2, -1)  # (B, h, j-i, hi-lo)
        scores.mul_(scale)  # in place: at long lengths the score blocks are the memory traffic
        if softcap is not None:
            scores.div_(softcap).tanh_().mul_(softcap)
        query_pos = torch.arange(i, j, device=q.device) + q_offset
        hidden, bias = score_mask(query_pos, key_pos[lo:hi], causal, window, alibi, scores.dtype)
        if bias is not None:
            scores.add_(bias)
        if hidden is not None:
            scores.masked_fill_(hidden, float("-inf"))
        if sinks is None:
            weights = torch.softmax(scores, dim=-1)  # (B, h, j-i, hi-lo)
        else:  # the sink is one more column of the softmax, dropped after it
            sink = sinks.to(scores.dtype).view(1, h, 1, 1).expand(B, h, j - i, 1)
            weights = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]  # (B, h, j-i, hi-lo)
        out[:, :, i:j] = weights @ v[:, :, lo:hi]  # (B, h, j-i, dv)
    return out


def masked_sdpa(q, k, v, causal: bool, q_offset: int = 0, *, window: int | None = None, alibi=None,
                key_pos=None, block: int = 512, scale: float | None = None):  # fmt: skip
    """The fast path when a plain causal flag cannot say the mask: SDPA over blocks of `block`
    queries, each given only the keys its band reaches [key_range] and an explicit mask (boolean;
    float when ALiBi adds its bias). With a window W the work grows as T·(W + block), not T².
    Shapes as math_attention; returns (B, h, T, dv)."""
    B, h, T, _ = q.shape
    g, S = k.shape[1], k.shape[2]
    shared = {"enable_gqa": True} if g != h else {}
    out = q.new_empty(B, h, T, v.shape[-1])  # (B, h, T, dv)
    ordered = key_pos is None
    key_pos = torch.arange(S, device=q.device) if key_pos is None else key_pos
    for i in range(0, T, block):
        j = min(T, i + block)
        lo, hi = key_range(i, j, S, q_offset, causal, window) if ordered else (0, S)
        query_pos = torch.arange(i, j, device=q.device) + q_offset
        hidden, bias = score_mask(query_pos, key_pos[lo:hi], causal, window, alibi, q.dtype)
        if bias is not None:
            mask = bias if hidden is None else bias.masked_fill(hidden, float("-inf"))  # (h, j-i, hi-lo)
            mask = mask[None]  # (1, h, j-i, hi-lo): the CPU's flash kernel takes a 4-D mask, a 3-D one goes to math
        else:
            mask = None if hidden is None else ~hidden  # (j-i, hi-lo), True = attend
        out[:, :, i:j] = F.scaled_dot_product_attention(q[:, :, i:j], k[:, :, lo:hi], v[:, :, lo:hi],
                                                        attn_mask=mask, scale=scale, **shared)  # (B, h, j-i, dv)
    return out


_decode = {"on": True, "calls": 0}  # the CPU decode path below; a named SDPA --backend turns it off
# BLAS's single and double matrix-vector kernels stream at memory speed; in bfloat16 and float16
# the CPU's fused SDPA decode is 1.5-4.6× faster than matmul (large preset, 4,096 tokens, batch 4).
_BLAS_DTYPES = (torch.float32, torch.float64)


def cpu_decode_on(t: torch.Tensor) -> bool:
    """The CPU decode paths below apply to `t` (the head-dim-major cache, the BLAS products, the C
    kernels): a CPU float32/64 tensor, and no named SDPA --backend (sdpa_only)."""
    return _decode["on"] and t.device.type == "cpu" and t.dtype in _BLAS_DTYPES


def kv_cache_tensor(like: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """An empty (B, g, slots, hd) key or value cache. On the CPU in float32/64 its storage is
    (B, g, hd, slots) seen through a transpose, so each head-dim row runs contiguously over the
    tokens and decode's products (decode_attention) stream whole rows: 2.1× SDPA's decode on the
    large preset, 8,192 tokens, batch 4 (docs/backends.md). On CUDA (its kernels want hd
    contiguous), in half precision and under a named SDPA backend, the usual token-major layout."""
    B, g, slots, hd = shape
    if cpu_decode_on(like):
        return like.new_zeros(B, g, hd, slots).transpose(2, 3)  # (B, g, slots, hd), token stride 1
    return like.new_zeros(shape)


@contextlib.contextmanager
def sdpa_only():
    """Within: decode runs through SDPA as prefill does (a named SDPA --backend asks for that kernel)."""
    before = _decode["on"]
    _decode["on"] = False
    try:
        yield
    finally:
        _decode["on"] = before


def decode_calls() -> int:
    """How many times decode_attention ran in this process (the backend probe's `gemv`)."""
    return _decode["calls"]


def decode_attention(q, k, v, scale: float | None = None, *, q_pos: int, alibi=None, key_pos=None):
    """One query per sequence over its cached keys, or None where this path does not apply (use
    SDPA). q: (B, h, 1, hd); k, v: (B, g, S, hd), g dividing h. Every key is visible (a window's
    ring holds only keys in reach); `alibi` (h,) slopes add −slope·(q_pos − key_pos). A KV group's
    h/g query heads are one block of rows over that group's keys (as FlashDecoding packs heads),
    so each key is read once. The same arithmetic as math_attention; the CPU in float32/64 only.
    In float32 with two or more query heads per KV head and no ALiBi, the step runs the C kernel
    (cdecode.attention: the same rows in one pass over the cache) where it can be built."""
    B, h, T, hd = q.shape
    g, S = k.shape[1], k.shape[2]
    if T != 1 or not cpu_decode_on(q):
        return None
    r = h // g
    scale = hd**-0.5 if scale is None else scale
    if alibi is None:  # float32 with grouped heads: the C kernel's one pass over the cache, where it is built
        out = cdecode.attention(q, k, v, scale)
        if out is not None:
            return out
    _decode["calls"] += 1
    qq = q.reshape(B, g, r, hd)  # (B, g, r, hd): a group's query heads are rows
    scores = torch.matmul(qq, k.transpose(2, 3))  # (B, g, r, S): Kᵀ's rows are contiguous (kv_cache_tensor)
    scores.mul_(scale)
    if alibi is not None:
        dist = (q_pos - (torch.arange(S, device=q.device) if key_pos is None else key_pos)).to(q.dtype)  # (S,)
        scores.sub_(alibi.to(q.dtype).view(1, g, r, 1) * dist)
    weights = torch.softmax(scores, dim=-1)  # (B, g, r, S)
    if r == 1:
        out = torch.matmul(weights, v)  # (B, g, 1, dv): a matrix-vector product over Vᵀ's rows
    else:  # Vᵀ (dv, S) as the left operand: the CPU BLAS streams it fastest so (1.2× at r = 4)
        out = torch.matmul(v.transpose(2, 3), weights.transpose(2, 3)).transpose(2, 3)  # (B, g, r, dv)
    return out.reshape(B, h, 1, v.shape[-1])


class Projection(torch.nn.Linear):
    """nn.Linear whose few-row CPU products run as W·xᵀ. With 2-64 rows (decode: one token per
    sequence) the CPU BLAS behind F.linear takes a path 1.2-4.6× slower than the same product
    with the weight as the left operand (1024×1024 weight, 4 rows: 1.01 ms against 0.22 ms on the
    2-core EPYC; benchmarks/decode_bandwidth.py). In float32 with 3-8 rows and no gradient asked
    for, the C kernel (cdecode.linear) streams the weight once and writes the rows in place:
    0.79-0.84× that product's time with the weights in DRAM, as in a decode step (5 rows 0.97×;
    benchmarks/decode_projection.py). Same parameters and names as nn.Linear, so checkpoints load
    unchanged; the same multiply-adds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features if self.in_features else 0
        if not (2 <= rows <= 64 and cpu_decode_on(x)):
            return super().forward(x)
        flat = x.reshape(rows, self.in_features)
        out = cdecode.linear(flat, self.weight)  # None outside its rows, dtype or without the kernel
        if out is None:
            out = torch.matmul(self.weight, flat.t()).t().contiguous()  # (rows, out)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def add_projections(module, spec) -> None:
    """The four projections of an attention layer with `n_kv_heads` KV heads, no biases, named as
    in Hugging Face checkpoints (q_proj, k_proj, v_proj, o_proj): MHA/GQA/MQA and cross-attention."""
    h, g, hd, d = spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.d_model
    module.q_proj = Projection(d, h * hd, bias=False)
    module.k_proj = Projection(d, g * hd, bias=False)
    module.v_proj = Projection(d, g * hd, bias=False)
    module.o_proj = Projection(h * hd, d, bias=False)
