"""Analytic cost of one attention layer: FLOPs, parameters, KV-cache elements. Pure Python.

Conventions (DESIGN.md): one multiply-add is 2 FLOPs, so an (m×k)·(k×n) product is 2·m·k·n
(the count `torch.utils.flop_counter.FlopCounterMode` reports). Results are per layer and per
sequence (batch 1); `rows.py` multiplies by batch and layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import CrossSpec, GQASpec, LinearSpec, MLASpec, Shape

# Elementwise costs, in FLOPs per element (a stated convention; FlopCounterMode counts none of it):
SOFTMAX_FLOPS_PER_SCORE = 5  # scale, subtract the row max, exp, add to the row sum, divide
ROPE_FLOPS_PER_ELEMENT = 3  # x·cos + rotate(x)·sin: two multiplies and one add
RMSNORM_FLOPS_PER_ELEMENT = 4  # square, add to the sum, multiply by 1/rms, multiply by the weight
ALIBI_FLOPS_PER_SCORE = 2  # slope × distance, added to the score (Press et al. 2022)
FEATURE_MAP_FLOPS_PER_ELEMENT = 2  # elu(x) + 1: exp or pass-through, then add one (per q and k element)
NORMALISE_FLOPS_PER_ELEMENT = 1  # linear attention: divide each output element by its normaliser
LAYERNORM_FLOPS_PER_ELEMENT = 6  # add to the mean, subtract it, square, add to the variance, × 1/σ, × weight
SOFTCAP_FLOPS_PER_SCORE = 3  # c·tanh(s / c): divide, tanh, multiply (Gemma 2's logit soft-capping)
# A sink (GPT-OSS) is one more logit in each query's softmax, at SOFTMAX_FLOPS_PER_SCORE per query and head.


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one layer for one sequence."""

    proj: int  # input and output projections (matmul)
    attn: int  # scores and weighted sum (matmul)
    elementwise: int  # softmax and RoPE, at the per-element costs above

    @property
    def matmul(self) -> int:
        return self.proj + self.attn


def causal_window_pairs(n: int, window: int | None) -> int:
    """Σ_{i<n} min(i+1, W): query i sees keys max(0, i-W+1)..i (Beltagy et al. 2020; Jiang et al.
    2023, Mistral); n(n+1)/2 without a window."""
    if window is None or window >= n:
        return n * (n + 1) // 2
    return window * (window + 1) // 2 + (n - window) * window


def query_key_pairs(shape: Shape, causal: bool, window: int | None = None) -> int:
    """Query–key pairs a causal-aware (and window-aware) kernel scores: n(n+1)/2 for a causal
    prefill of n tokens, n² without the mask, L+1 for one decode token against L cached tokens
    plus itself. A window W caps each query at W keys: Σ min(i+1, W) causal, min(L+1, W) in
    decode; without the causal mask query i sees keys with |i − j| < W, 2·Σ min(i+1, W) − n."""
    if shape.mode == "decode":
        return shape.seq_len + 1 if window is None else min(shape.seq_len + 1, window)
    n = shape.seq_len
    if causal:
        return causal_window_pairs(n, window)
    return n * n if window is None else 2 * causal_window_pairs(n, window) - n


# ------------------------------------------------------------------------------------------------
# the plain-math path's schedule: which query-key pairs it really scores (what --verify-flops counts)

# The plain-math path (variants/common.math_attention, linear attention's parallel form) scores one
# block of queries at a time, so that a float64 reference at long lengths holds at most this many
# bytes of scores at once.
MATH_MAX_SCORE_BYTES = 256 * 2**20


def math_query_block(batch: int, heads: int, keys: int, element_bytes: int, window: int | None = None) -> int:
    """Queries per block of the plain-math path: as many as keep batch × heads × block × keys
    scores within MATH_MAX_SCORE_BYTES (at least one); with a window W, at most max(64, W), so a
    block reads about block + W keys."""
    block = max(1, MATH_MAX_SCORE_BYTES // max(1, batch * heads * keys * element_bytes))
    return block if window is None else min(block, max(64, window))


def key_range(i: int, j: int, S: int, q_offset: int, causal: bool, window: int | None) -> tuple[int, int]:
    """The keys [lo, hi) that queries i..j-1 (at positions q_offset+i..) can see when the S keys sit
    at positions 0..S-1: up to the last query when causal, within `window` of some query otherwise."""
    first, last = q_offset + i, q_offset + j - 1
    hi = min(S, last + 1) if causal else (S if window is None else min(S, last + window))
    lo = 0 if window is None else max(0, first - window + 1)
    return lo, max(lo, hi)


def math_path_pairs(n_query: int, keys: int, block: int, causal: bool, window: int | None = None,
                    q_offset: int = 0) -> int:  # fmt: skip
    """Query–key pairs the plain-math path scores (one sequence, one head) for n_query queries over
    `keys` keys in order: each block of `block` queries is scored against every key from the first
    any of them may see to the last one (key_range), then masked. One block over all keys is n²
    even when causal; blocks of one query give exactly the causal- and window-aware pairs."""
    pairs = 0
    for i in range(0, n_query, block):
        j = min(n_query, i + block)
        lo, hi = key_range(i, j, keys, q_offset, causal, window)
        pairs += (j - i) * (hi - lo)
    return pairs


def _math_prefill_pairs(shape: Shape, heads: int, element_bytes: int, causal: bool, window: int | None = None) -> int:
    """The pairs a prefill's plain-math path scores: n queries over their own n keys, h heads."""
    n = shape.seq_len
    block = math_query_block(shape.batch, heads, n, element_bytes, window)
    return math_path_pairs(n, n, block, causal and n > 1, window)


def gqa_flops(spec: GQASpec, shape: Shape, pairs: int | None = None) -> LayerFlops:
    """MHA/GQA/MQA layer (Vaswani et al. 2017 §3.2; Ainslie et al. 2023 for shared KV heads), with
    an optional sliding window and RoPE or ALiBi (whose cost is elementwise, never matmul).
    `pairs` replaces the causal- and window-aware query–key pairs (the plain-math path's count)."""
    n, d, hd, h, g = shape.n_query, spec.d_model, spec.head_dim, spec.n_heads, spec.n_kv_heads
    proj = 2 * n * d * hd * (h + 2 * g) + 2 * n * h * hd * d  # Q, K, V in; O out
    pairs = query_key_pairs(shape, spec.causal, spec.window) if pairs is None else pairs
    attn = 2 * 2 * pairs * h * hd  # q·kᵀ for every pair and head, then p·v
    return LayerFlops(proj=proj, attn=attn, elementwise=gqa_elementwise_flops(spec, shape))


def gqa_elementwise_flops(spec: GQASpec, shape: Shape) -> int:
    """Softmax over every scored pair, RoPE on the rotated part of each new query and key head
    (`rotary_dim`, partial rotary), and what real layers add: q/k norms over every new query and
    key element, soft-capping of every score, one sink logit per query row and head; ALiBi's bias."""
    n, hd, h, g = shape.n_query, spec.head_dim, spec.n_heads, spec.n_kv_heads
    pairs = query_key_pairs(shape, spec.causal, spec.window)
    elementwise = SOFTMAX_FLOPS_PER_SCORE * pairs * h
    if spec.position == "rope":
        elementwise += ROPE_FLOPS_PER_ELEMENT * n * spec.rotated * (h + g)  # rotate new queries and keys
    elif spec.position == "alibi":
        elementwise += ALIBI_FLOPS_PER_SCORE * pairs * h  # a distance bias on every score
    if spec.qk_norm:
        per = RMSNORM_FLOPS_PER_ELEMENT if spec.qk_norm_type == "rms" else LAYERNORM_FLOPS_PER_ELEMENT
        elementwise += per * n * hd * (h + g)
    if spec.softcap is not None:
        elementwise += SOFTCAP_FLOPS_PER_SCORE * pairs * h
    if spec.sinks:
        elementwise += SOFTMAX_FLOPS_PER_SCORE * n * h
    return elementwise


def gqa_math_flops(spec: GQASpec, shape: Shape, element_bytes: int) -> LayerFlops:
    """What the plain-math path of an MHA/GQA/MQA/sliding-window layer runs: in prefill, the query
    blocks' key bands (math_path_pairs; the KV heads are spread over all h query heads first); in
    decode, the new token against every key it may see (the causal-aware count)."""
    if shape.mode == "decode":
        return gqa_flops(spec, shape)
    return gqa_flops(spec, shape, _math_prefill_pairs(shape, spec.n_heads, element_bytes, spec.causal, spec.window))


def cross_flops(spec: CrossSpec, shape: Shape) -> LayerFlops:
    """Cross-attention (Vaswani et al. 2017 §3.2.3): n decoder queries against all M memory keys.
    Prefill includes the one-off K/V projection of the memory (it builds the cache); decode reads
    that cache and projects only its query and output (`memory_proj_flops` reports the one-off)."""
    n, d, hd, h, m = shape.n_query, spec.d_model, spec.head_dim, spec.n_heads, spec.memory_len
    proj = 2 * n * d * hd * h + 2 * n * h * hd * d  # Q in, O out
    if shape.mode == "prefill":
        proj += cross_memory_proj_flops(spec)
    pairs = n * m  # no mask: every query sees every memory token
    return LayerFlops(proj=proj, attn=2 * 2 * pairs * h * hd, elementwise=SOFTMAX_FLOPS_PER_SCORE * pairs * h)


def cross_memory_proj_flops(spec: CrossSpec) -> int:
    """K and V projections of the M encoder tokens, done once per sequence."""
    return 2 * 2 * spec.memory_len * spec.d_model * spec.n_kv_heads * spec.head_dim


def linear_flops(spec: LinearSpec, shape: Shape) -> LayerFlops:
    """Linear attention (Katharopoulos et al. 2020 eqs. 4–6) as the module's fast path runs it.

    Decode (recurrent form): S += φ(k)vᵀ, z += φ(k), y = φ(q)ᵀS / φ(q)ᵀz: per head 2·dk·dv for the
    update, 2·dk·dv + 2·dk for the read-out. Causal prefill (chunkwise form, Yang et al. 2024 §3):
    per chunk of c tokens, the masked c×c block φ(Q)φ(K)ᵀ and its product with V (the full block is
    computed, 2·c²·(dk+dv)), the read-out of the carried state (2·c·dk·dv + 2·c·dk) and the state
    update (2·c·dk·dv). Non-causal prefill: S = φ(K)ᵀV once, then every query reads it out."""
    n, d, hd, h = shape.n_query, spec.d_model, spec.head_dim, spec.n_heads
    proj = 2 * n * d * hd * 3 * h + 2 * n * h * hd * d  # Q, K, V in; O out
    per_token = 2 * hd * hd + 2 * hd * hd + 2 * hd  # state update + read-out of S and of z, per head
    attn = h * n * per_token
    if shape.mode == "prefill" and spec.causal:
        c, r = spec.chunk_size, n % spec.chunk_size
        attn += h * 2 * (hd + hd) * ((n // c) * c * c + r * r)  # the intra-chunk blocks
    return LayerFlops(proj=proj, attn=attn, elementwise=_linear_elementwise(spec, n))


def linear_parallel_flops(spec: LinearSpec, shape: Shape, pairs: int | None = None) -> LayerFlops:
    """The plain-math (parallel) form of linear attention: A = φ(Q)φ(K)ᵀ over `pairs` query–key
    pairs (default: the causal-aware count), y = AV / A·1, and the final state S = φ(K)ᵀV for the
    cache. What FlopCounterMode counts on the math path when it scores exactly `pairs` pairs."""
    n, d, hd, h = shape.n_query, spec.d_model, spec.head_dim, spec.n_heads
    if shape.mode == "decode":
        return linear_flops(spec, shape)  # the recurrent form is the only decode form
    pairs = query_key_pairs(shape, spec.causal) if pairs is None else pairs
    proj = 2 * n * d * hd * 3 * h + 2 * n * h * hd * d
    attn = h * (2 * pairs * (hd + hd) + 2 * n * hd * hd)  # scores and weighted sum; the state φ(K)ᵀV
    return LayerFlops(proj=proj, attn=attn, elementwise=_linear_elementwise(spec, n))


def linear_math_flops(spec: LinearSpec, shape: Shape, element_bytes: int) -> LayerFlops:
    """What linear attention's plain-math path runs: the parallel form over its query blocks' key
    ranges (math_path_pairs) in prefill, the recurrence in decode."""
    if shape.mode == "decode":
        return linear_flops(spec, shape)
    return linear_parallel_flops(spec, shape, _math_prefill_pairs(shape, spec.n_heads, element_bytes, spec.causal))


def _linear_elementwise(spec: LinearSpec, n: int) -> int:
    h, hd = spec.n_heads, spec.head_dim
    return FEATURE_MAP_FLOPS_PER_ELEMENT * 2 * n * h * hd + NORMALISE_FLOPS_PER_ELEMENT * n * h * hd


def linear_params(spec: LinearSpec) -> int:
    """Projection weights (no biases): W_q, W_k, W_v, W_o, one K/V head per query head."""
    return 4 * spec.d_model * spec.head_dim * spec.n_heads


def gqa_params(spec: GQASpec) -> int:
    """Projection weights (no biases): W_q, W_k, W_v, W_o; and the q/k norms' weights (one
    head_dim vector each, or one per head / per projected element) and the sink logits (one per head)."""
    h, g, hd = spec.n_heads, spec.n_kv_heads, spec.head_dim
    params = spec.d_model * hd * (2 * h + 2 * g)
    if getattr(spec, "qk_norm", False):
        params += 2 * hd if spec.qk_norm_over == "head" and spec.qk_norm_type == "rms" else (h + g) * hd
    return params + (h if getattr(spec, "sinks", False) else 0)


def gqa_kv_elements_per_token(spec: GQASpec) -> int:
    """Cached elements per token per layer: one key and one value per KV head."""
    return 2 * spec.n_kv_heads * spec.head_dim


def mla_flops(spec: MLASpec, shape: Shape, pairs: int | None = None) -> LayerFlops:
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
    pairs = query_key_pairs(shape, spec.causal) if pairs is None else pairs
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


def mla_math_flops(spec: MLASpec, shape: Shape, element_bytes: int) -> LayerFlops:
    """What MLA's plain-math path runs (either path): in prefill, the query blocks' key bands over
    h heads (math_path_pairs: the naive keys are per head, the absorbed latent is spread over the
    heads); in decode, the new token against every cached key (the causal-aware count)."""
    if shape.mode == "decode":
        return mla_flops(spec, shape)
    return mla_flops(spec, shape, _math_prefill_pairs(shape, spec.n_heads, element_bytes, spec.causal))


def mla_params(spec: MLASpec) -> int:
    """Projection weights (no biases) and the RMSNorm weights, as in DeepSeek's checkpoints."""
    d, h, r, rq = spec.d_model, spec.n_heads, spec.kv_lora_rank, spec.q_lora_rank
    nope, rope, dv = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
    q = d * h * (nope + rope) if rq is None else d * rq + rq + rq * h * (nope + rope)  # q_a, its norm, q_b
    return q + d * (r + rope) + r + r * h * (nope + dv) + h * dv * d  # kv_a, its norm, kv_b, o


def mla_kv_elements_per_token(spec: MLASpec) -> int:
    """Cached elements per token per layer: the latent and the one shared RoPE key (DeepSeek-V2 §2.1.4)."""
    return spec.kv_lora_rank + spec.qk_rope_head_dim


def ffn_flops(d_model: int, d_ff: int, n_tokens: int, matrices: int = 2) -> int:
    """The block's feed-forward net for the attention share: `matrices` matmuls of d_model × d_ff,
    2 FLOPs per multiply-add. Two (d_model→d_ff→d_model) for a plain MLP and the size presets;
    three for a gated one (SwiGLU/GeGLU: gate, up, down; Shazeer 2020, arXiv:2002.05202)."""
    return matrices * 2 * n_tokens * d_model * d_ff


def model_ffn_flops(model, d_model: int, index: int, n_tokens: int) -> int:
    """Layer `index`'s FFN FLOPs for n_tokens tokens of a whole model (spec.ModelSpec): its dense
    MLP, or on an MoE layer only what a token runs, the top-k routed experts plus the shared ones
    (each a gated or plain MLP of its width), and the router's d_model × experts matmul."""
    matrices = 3 if model.mlp == "gated" else 2
    moe = model.moe
    if moe is not None and moe.is_moe_layer(index):
        width = moe.experts_per_token * moe.d_ff + moe.shared_experts * (moe.shared_d_ff or moe.d_ff)
        return ffn_flops(d_model, width, n_tokens, matrices) + 2 * n_tokens * d_model * moe.experts
    return ffn_flops(d_model, model.dense_d_ff, n_tokens, matrices)


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


def mla_layer_bytes(spec: MLASpec, shape: Shape, dtype_bytes: int) -> LayerBytes:
    """MLA's traffic: layer_bytes over the cached latent and RoPE key (r + rope per token) and, on
    the naive path, the per-head keys and values it materialises from every key in the context
    (mla_flops' "kv_b over every key"): the up-projection writes h · (nope + v) elements per key,
    and attention reads back h · (nope + rope + v) (its keys carry the shared RoPE key on every
    head; the concatenation itself is a layout copy, not counted). In decode that is the whole
    cache, at every step: naive decode moves far more than absorbed decode."""
    h, nope, rope, dv = spec.n_heads, spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
    base = layer_bytes(params=mla_params(spec), kv_elements_per_token=mla_kv_elements_per_token(spec),
                       d_model=spec.d_model, q_width=spec.q_dim, o_width=h * dv, shape=shape,
                       dtype_bytes=dtype_bytes)  # fmt: skip
    if spec.absorb:
        return base
    per_key = shape.batch * shape.cache_tokens * h * dtype_bytes  # every key in the context, per head
    return LayerBytes(weights=base.weights, kv_read=base.kv_read + per_key * (nope + rope + dv),
                      kv_write=base.kv_write + per_key * (nope + dv), activations=base.activations)  # fmt: skip


def roofline(flops: float, nbytes: float, peak_flops_per_s: float, bytes_per_s: float) -> tuple[float, str]:
    """The roofline bound (Williams et al. 2009): time ≥ max(FLOPs / peak, bytes / bandwidth).
    Returns (bound seconds, 'compute' or 'memory', whichever term is the larger)."""
    compute, memory = flops / peak_flops_per_s, nbytes / bytes_per_s
    return max(compute, memory), "compute" if compute >= memory else "memory"
