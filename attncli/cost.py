"""Analytic cost of one attention layer: FLOPs, parameters, KV-cache elements. Pure Python.

Conventions (DESIGN.md): one multiply-add is 2 FLOPs, so an (m×k)·(k×n) product is 2·m·k·n
(the count `torch.utils.flop_counter.FlopCounterMode` reports). Results are per layer and per
sequence (batch 1); `rows.py` multiplies by batch and layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import GQASpec, MLASpec, Shape

# Elementwise costs, in FLOPs per element (a stated convention; FlopCounterMode counts none of it):
SOFTMAX_FLOPS_PER_SCORE = 5  # scale, subtract the row max, exp, add to the row sum, divide
ROPE_FLOPS_PER_ELEMENT = 3  # x·cos + rotate(x)·sin: two multiplies and one add
RMSNORM_FLOPS_PER_ELEMENT = 4  # square, add to the sum, multiply by 1/rms, multiply by the weight


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one layer for one sequence."""

    proj: int  # input and output projections (matmul)
    attn: int  # scores and weighted sum (matmul)
    elementwise: int  # softmax and RoPE, at the per-element costs above

    @property
    def matmul(self) -> int:
        return self.proj + self.attn


def query_key_pairs(shape: Shape, causal: bool) -> int:
    """Query–key pairs a causal-aware kernel scores: n(n+1)/2 for a causal prefill of n tokens,
    n² without the mask, L+1 for one decode token against L cached tokens plus itself."""
    if shape.mode == "decode":
        return shape.seq_len + 1
    n = shape.seq_len
    return n * (n + 1) // 2 if causal else n * n


def gqa_flops(spec: GQASpec, shape: Shape) -> LayerFlops:
    """MHA/GQA/MQA layer (Vaswani et al. 2017 §3.2; Ainslie et al. 2023 for shared KV heads)."""
    n, d, hd, h, g = shape.n_query, spec.d_model, spec.head_dim, spec.n_heads, spec.n_kv_heads
    proj = 2 * n * d * hd * (h + 2 * g) + 2 * n * h * hd * d  # Q, K, V in; O out
    pairs = query_key_pairs(shape, spec.causal)
    attn = 2 * 2 * pairs * h * hd  # q·kᵀ for every pair and head, then p·v
    elementwise = SOFTMAX_FLOPS_PER_SCORE * pairs * h
    if spec.position == "rope":
        elementwise += ROPE_FLOPS_PER_ELEMENT * n * hd * (h + g)  # rotate new queries and keys
    return LayerFlops(proj=proj, attn=attn, elementwise=elementwise)


def gqa_params(spec: GQASpec) -> int:
    """Projection weights (no biases): W_q, W_k, W_v, W_o."""
    return spec.d_model * spec.head_dim * (2 * spec.n_heads + 2 * spec.n_kv_heads)


def gqa_kv_elements_per_token(spec: GQASpec) -> int:
    """Cached elements per token per layer: one key and one value per KV head."""
    return 2 * spec.n_kv_heads * spec.head_dim


def mla_flops(spec: MLASpec, shape: Shape) -> LayerFlops:
    """MLA layer (DeepSeek-V2, arXiv:2405.04434 §2.1, eqs. 9–19; absorption as its §2.1.2 notes).

    Both paths project the new tokens' queries (full rank, or down to q_lora_rank and up again),
    their latent and shared RoPE key (kv_a), and the output (o). Then:
    - naive: up-project the latent of every key in the context, `cache_tokens` of them (kv_b:
      r → h·(nope + v)), and attend in the per-head widths (nope + rope for scores, v for values);
    - absorbed: fold W_UK into each new query (nope → r) and W_UV into each output (r → v), and
      attend over the latent itself (r + rope for scores, r for values).
    """
    n, keys = shape.n_query, shape.cache_tokens
    d, h, r, rq = spec.d_model, spec.n_heads, spec.kv_lora_rank, spec.q_lora_rank
    nope, rope, dv = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
    q_in = 2 * n * d * h * (nope + rope) if rq is None else 2 * n * rq * (d + h * (nope + rope))
    proj = q_in + 2 * n * d * (r + rope) + 2 * n * h * dv * d  # queries, kv_a (latent + RoPE key), o
    pairs = query_key_pairs(shape, spec.causal)
    if spec.absorb:
        proj += 2 * n * h * r * (nope + dv)  # W_UK into the new queries, W_UV out of their results
        attn = 2 * pairs * h * ((r + rope) + r)  # scores over latent + RoPE key, weighted sum of latents
    else:
        proj += 2 * keys * r * h * (nope + dv)  # kv_b over every key in the context
        attn = 2 * pairs * h * ((nope + rope) + dv)  # scores, then weighted sum of values
    elementwise = SOFTMAX_FLOPS_PER_SCORE * pairs * h + RMSNORM_FLOPS_PER_ELEMENT * n * (r + (rq or 0))
    if spec.position == "rope":
        elementwise += ROPE_FLOPS_PER_ELEMENT * n * rope * (h + 1)  # each query head's part, one shared key
    return LayerFlops(proj=proj, attn=attn, elementwise=elementwise)


def mla_params(spec: MLASpec) -> int:
    """Projection weights (no biases) and the RMSNorm weights, as in DeepSeek's checkpoints."""
    d, h, r, rq = spec.d_model, spec.n_heads, spec.kv_lora_rank, spec.q_lora_rank
    nope, rope, dv = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
    q = d * h * (nope + rope) if rq is None else d * rq + rq + rq * h * (nope + rope)  # q_a, its norm, q_b
    return q + d * (r + rope) + r + r * h * (nope + dv) + h * dv * d  # kv_a, its norm, kv_b, o


def mla_kv_elements_per_token(spec: MLASpec) -> int:
    """Cached elements per token per layer: the latent and the one shared RoPE key (DeepSeek-V2 §2.1.4)."""
    return spec.kv_lora_rank + spec.qk_rope_head_dim


def ffn_flops(d_model: int, d_ff: int, n_tokens: int) -> int:
    """The block's feed-forward net (two matmuls d_model→d_ff→d_model), for the attention share."""
    return 2 * 2 * n_tokens * d_model * d_ff


def run_memory_bytes(spec, shape: Shape, kv_elements_per_token: int, params: int, dtype_bytes: int,
                     max_score_bytes: int = 256 * 2**20) -> int:  # fmt: skip
    """A pre-flight estimate of the peak bytes one measured row holds at the given element size:
    weights, inputs, projected activations, the plain-math path's score block (the math path
    scores at most `max_score_bytes` of queries at once; scores and softmax both live), the
    output, the KV cache (with the keys and values being written into it), and the keys and values
    the math path spreads over every query head.
    Generic over families: it uses only the spec's widths and the registry's per-token figures."""
    b, B = dtype_bytes, shape.batch
    tokens = shape.seq_len + (1 if shape.mode == "decode" else 0)
    n = shape.n_query
    keys = shape.seq_len + 1 if shape.mode == "decode" else shape.seq_len
    width = spec.d_model + 4 * spec.q_dim  # input, queries, rotated queries, attention output
    activations = B * (tokens * spec.d_model + n * width) * b
    scores = 2 * min(max_score_bytes, B * spec.n_heads * n * keys * b)
    # The cache, plus the keys and values being written into it: projected (and rotated) for a
    # prefill, or for the whole prefix while a decode row fills its cache.
    cache = 3 * kv_elements_per_token * shape.cache_tokens * B * b
    per_head_kv = 2 * B * keys * spec.q_dim * b  # the math path's keys and values for every query head
    return params * b + activations + scores + cache + per_head_kv
