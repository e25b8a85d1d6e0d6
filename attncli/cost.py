"""Analytic cost of one attention layer: FLOPs, parameters, KV-cache elements. Pure Python.

Conventions (DESIGN.md): one multiply-add is 2 FLOPs, so an (m×k)·(k×n) product is 2·m·k·n
(the count `torch.utils.flop_counter.FlopCounterMode` reports). Results are per layer and per
sequence (batch 1); `rows.py` multiplies by batch and layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import GQASpec, Shape

# Elementwise costs, in FLOPs per element (a stated convention; FlopCounterMode counts none of it):
SOFTMAX_FLOPS_PER_SCORE = 5  # scale, subtract the row max, exp, add to the row sum, divide
ROPE_FLOPS_PER_ELEMENT = 3  # x·cos + rotate(x)·sin: two multiplies and one add


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


def ffn_flops(d_model: int, d_ff: int, n_tokens: int) -> int:
    """The block's feed-forward net (two matmuls d_model→d_ff→d_model), for the attention share."""
    return 2 * 2 * n_tokens * d_model * d_ff


@dataclass(frozen=True)
class LayerBytes:
    """Bytes one layer moves to and from main memory for the whole batch (roofline traffic)."""

    weights: int  # every projection weight read once per call (shared by the batch)
    kv_read: int  # keys and values the attention kernel reads (prefill: the n new; decode: L+1 cached)
    kv_write: int  # keys and values of the new tokens written (to the cache in decode)
    activations: int  # layer input read, output written; queries and attention output written then read

    @property
    def total(self) -> int:
        return self.weights + self.kv_read + self.kv_write + self.activations


def layer_bytes(*, params: int, kv_elements_per_token: int, d_model: int, q_width: int, o_width: int,
                shape: Shape, dtype_bytes: int) -> LayerBytes:  # fmt: skip
    """Main-memory traffic of one layer run as three kernels — the fused QKV projection (reads x
    and the weights, writes q, k, v), attention (reads q and the keys and values, writes o), the
    output projection (reads o and W_o, writes y) — with each tensor crossing memory once per
    kernel that reads or writes it: the minimal traffic of an unfused layer, the `Q` of the
    roofline model (Williams, Waterman & Patterson 2009, CACM 52(4)). RoPE is taken as fused into
    the projection; layout copies and softmax scratch are not counted (a flash kernel keeps the
    scores on chip).

    q_width: elements of one token's queries (n_heads · head_dim); o_width: of its attention output.
    """
    b, B, n = dtype_bytes, shape.batch, shape.n_query
    attended = shape.seq_len if shape.mode == "prefill" else shape.seq_len + 1  # keys each query row sees at most
    return LayerBytes(
        weights=params * b,
        kv_read=B * attended * kv_elements_per_token * b,
        kv_write=B * n * kv_elements_per_token * b,
        activations=B * n * (2 * d_model + 2 * q_width + 2 * o_width) * b,
    )


def roofline(flops: float, nbytes: float, peak_flops_per_s: float, bytes_per_s: float) -> tuple[float, str]:
    """The roofline bound (Williams et al. 2009): time ≥ max(FLOPs / peak, bytes / bandwidth).
    Returns (bound seconds, 'compute' or 'memory', whichever term is the larger)."""
    compute, memory = flops / peak_flops_per_s, nbytes / bytes_per_s
    return max(compute, memory), "compute" if compute >= memory else "memory"
