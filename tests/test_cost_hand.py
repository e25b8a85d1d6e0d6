"""cost.py against independent hand computations: query–key pairs by brute-force enumeration of the
mask, FLOPs as sums of matmuls (2·m·k·n each) plus the per-element constants written out, bytes
field by field. Pure Python (no torch), so the mutation run (tools/mutate.py) kills fast."""

import dataclasses
from types import SimpleNamespace

import pytest

from attncli import cost
from attncli.spec import CrossSpec, GQASpec, LinearSpec, MLASpec, ModelSpec, MoESpec, Shape

# ------------------------------------------------------------------------------------------------
# independent references


def mm(m: int, k: int, n: int) -> int:
    """FLOPs of an (m×k)·(k×n) product: one multiply-add is 2 FLOPs."""
    return 2 * m * k * n


def visible(q: int, k: int, causal: bool, window: int | None) -> bool:
    """The mask rule: causal hides later keys; a window W keeps keys with |q − k| < W."""
    if causal and k > q:
        return False
    return window is None or abs(q - k) < window


def brute_prefill_pairs(n: int, causal: bool, window: int | None) -> int:
    return sum(visible(q, k, causal, window) for q in range(n) for k in range(n))


def brute_decode_pairs(L: int, window: int | None) -> int:
    # one query at position L against keys 0..L
    return sum(visible(L, k, True, window) for k in range(L + 1))


def brute_pairs(shape: Shape, causal: bool, window: int | None) -> int:
    if shape.mode == "decode":
        return brute_decode_pairs(shape.seq_len, window)
    return brute_prefill_pairs(shape.seq_len, causal, window)


def brute_span(first: int, last: int, S: int, causal: bool, window: int | None):
    """(smallest visible key, largest + 1) over queries first..last, or None when none is visible."""
    keys = [k for k in range(S) if any(visible(q, k, causal, window) for q in range(first, last + 1))]
    return (min(keys), max(keys) + 1) if keys else None


def brute_math_pairs(n_query, keys, block, causal, window=None, q_offset=0) -> int:
    total, start = 0, 0
    while start < n_query:
        stop = min(start + block, n_query)
        span = brute_span(q_offset + start, q_offset + stop - 1, keys, causal, window)
        total += (stop - start) * (span[1] - span[0] if span else 0)
        start = stop
    return total


def gqa(**kw) -> GQASpec:
    # d_model 48, 6 query heads of 10 (q_dim 60), 2 KV heads: every width distinct
    fields = dict(family="gqa", d_model=48, n_heads=6, n_kv_heads=2, head_dim=10)
    fields.update(kw)
    return GQASpec(**fields)


def mla(**kw) -> MLASpec:
    # d 48, 6 heads, latent r 12, nope 14, rope 4 (head_dim 18), v 10
    fields = dict(family="mla", d_model=48, n_heads=6, kv_lora_rank=12, qk_nope_head_dim=14,
                  qk_rope_head_dim=4, v_head_dim=10)  # fmt: skip
    fields.update(kw)
    return MLASpec(**fields)


def linear(**kw) -> LinearSpec:
    fields = dict(family="linear", d_model=48, n_heads=6, head_dim=10, position="none", chunk_size=4)
    fields.update(kw)
    return LinearSpec(**fields)


CROSS = CrossSpec(family="cross", d_model=48, n_heads=6, n_kv_heads=2, head_dim=10, causal=False,
                  position="none", memory_len=13)  # fmt: skip

# ------------------------------------------------------------------------------------------------
# query–key pairs


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
@pytest.mark.parametrize("window", [None, 1, 3, 5, 9, 20])
def test_causal_window_pairs_is_the_brute_force_count(n, window):
    got = cost.causal_window_pairs(n, window)
    assert got == brute_prefill_pairs(n, True, window)
    assert type(got) is int  # a count, never a float


def test_causal_window_pairs_is_exact_at_lengths_past_float_precision():
    # ≈ 7.6e21 pairs: more than a float's 53 bits hold, so only integer arithmetic is exact
    n, w = 123_456_789_012, 98_765_432_101
    assert cost.causal_window_pairs(n, None) == 61_728_394_506 * 123_456_789_013  # n/2 · (n + 1)
    # queries 0..W−1 see 1..W keys, (W + 1)/2 · W; the n − W = 24,691,356,911 others W each
    assert cost.causal_window_pairs(n, w) == w * (49_382_716_051 + 24_691_356_911)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n, window", [(11, None), (11, 1), (11, 3), (11, 7), (11, 10), (11, 11), (11, 12),
                                       (11, 40), (2, 1), (1, None), (1, 3)])  # fmt: skip
def test_query_key_pairs_prefill_is_the_brute_force_count(n, window, causal):
    got = cost.query_key_pairs(Shape("prefill", n, batch=3), causal, window)
    assert got == brute_prefill_pairs(n, causal, window)
    assert type(got) is int


@pytest.mark.parametrize("L, window", [(9, None), (9, 1), (9, 4), (9, 9), (9, 10), (9, 11), (9, 30), (1, None)])
def test_query_key_pairs_decode_is_one_query_at_position_L(L, window):
    # the mask is causal in decode whatever the flag says
    for causal in (True, False):
        assert cost.query_key_pairs(Shape("decode", L), causal, window) == brute_decode_pairs(L, window)


def test_query_key_pairs_pinned_values():
    # n(n+1)/2, n², window 3 over 8: 1+2+3·6 = 21 causal, 2·21 − 8 = 34 non-causal; decode L+1 or W
    assert cost.query_key_pairs(Shape("prefill", 8), True) == 36
    assert cost.query_key_pairs(Shape("prefill", 8), False) == 64
    assert cost.query_key_pairs(Shape("prefill", 8), True, 3) == 21
    assert cost.query_key_pairs(Shape("prefill", 8), False, 3) == 34
    assert cost.query_key_pairs(Shape("decode", 8), True) == 9
    assert cost.query_key_pairs(Shape("decode", 8), True, 3) == 3


KEY_RANGE_CASES = [
    # (i, j, S, q_offset, causal, window)
    (0, 4, 10, 0, True, None), (3, 7, 10, 0, True, None), (3, 7, 10, 0, False, None),
    (3, 7, 10, 0, True, 2), (3, 7, 10, 0, False, 2), (0, 3, 10, 0, True, 5), (0, 3, 10, 0, False, 5),
    (6, 10, 10, 0, False, 3), (0, 2, 12, 7, True, None), (0, 2, 12, 7, True, 3), (1, 3, 12, 7, False, 4),
    (0, 3, 6, 8, True, None), (0, 1, 10, 4, True, 1), (2, 3, 10, 0, False, 1), (0, 10, 10, 0, True, 20),
]  # fmt: skip


@pytest.mark.parametrize("i, j, S, q_offset, causal, window", KEY_RANGE_CASES)
def test_key_range_is_the_span_of_visible_keys(i, j, S, q_offset, causal, window):
    lo, hi = cost.key_range(i, j, S, q_offset, causal, window)
    assert brute_span(q_offset + i, q_offset + j - 1, S, causal, window) == (lo, hi)


def test_key_range_pinned_values():
    assert cost.key_range(3, 7, 10, 0, True, None) == (0, 7)  # up to the last query, 6
    assert cost.key_range(3, 7, 10, 0, True, 2) == (2, 7)  # first query 3 sees back to 3 − 2 + 1
    assert cost.key_range(3, 7, 10, 0, False, 2) == (2, 8)  # last query 6 sees up to 6 + 2 − 1
    assert cost.key_range(3, 7, 10, 0, False, None) == (0, 10)
    assert cost.key_range(0, 2, 12, 7, True, None) == (0, 9)  # queries at 7, 8


def test_key_range_is_empty_when_the_window_has_passed_every_key():
    # queries at 20..21, keys 0..5, window 3: nothing visible, an empty range
    assert brute_span(20, 21, 6, True, 3) is None
    lo, hi = cost.key_range(0, 2, 6, 20, True, 3)
    assert hi - lo == 0


MATH_CASES = [
    # (n_query, keys, block, causal, window, q_offset)
    (10, 10, 1, True, None, 0), (10, 10, 3, True, None, 0), (10, 10, 4, False, None, 0),
    (10, 10, 10, True, None, 0), (10, 10, 25, True, None, 0), (10, 10, 3, True, 2, 0),
    (10, 10, 3, False, 2, 0), (10, 10, 1, False, 3, 0), (11, 11, 4, True, 5, 0), (11, 11, 4, False, 5, 0),
    (5, 12, 2, True, None, 7), (5, 12, 2, True, 3, 7), (5, 12, 3, False, 4, 7), (5, 12, 1, True, None, 7),
    (7, 7, 2, True, 1, 0), (9, 9, 9, False, 4, 0), (4, 6, 3, True, None, 9),
]  # fmt: skip


@pytest.mark.parametrize("n_query, keys, block, causal, window, q_offset", MATH_CASES)
def test_math_path_pairs_is_the_brute_force_block_spans(n_query, keys, block, causal, window, q_offset):
    expected = brute_math_pairs(n_query, keys, block, causal, window, q_offset)
    assert cost.math_path_pairs(n_query, keys, block, causal, window, q_offset) == expected


def test_math_path_pairs_defaults_and_pinned_values():
    # blocks of 3 over 10 causal queries: 3·3 + 3·6 + 3·9 + 1·10 = 64; one block is n² = 100
    assert cost.math_path_pairs(10, 10, 3, True) == 64 == brute_math_pairs(10, 10, 3, True)
    assert cost.math_path_pairs(10, 10, 10, True) == 100
    assert cost.math_path_pairs(10, 10, 1, True) == 55  # one query a block: exactly n(n+1)/2
    assert cost.math_path_pairs(10, 10, 1, False, 3) == brute_prefill_pairs(10, False, 3)


# ------------------------------------------------------------------------------------------------
# the plain-math path's block size


@pytest.mark.parametrize("batch, heads, keys, nbytes, window, expected", [
    (1, 1, 1, 1, None, 256 * 2**20),  # the whole budget: 268,435,456 queries
    (1, 1, 2**20, 1, None, 256),  # 2**28 // 2**20
    (3, 6, 1000, 4, None, (256 * 2**20) // (3 * 6 * 1000 * 4)),  # 3728, not a whole quotient
    (5, 7, 999, 8, None, 268435456 // 279720),  # 959
    (64, 32, 2**17, 8, None, 1),  # 2**31 bytes a query: quotient 0 → at least one
    (64, 32, 2**17, 8, 10, 1),
    (3, 6, 1000, 4, 100, 100),  # the window cap binds: min(3728, max(64, 100))
    (3, 6, 1000, 4, 10, 64),  # W < 64: the cap is 64
    (3, 6, 1000, 4, 64, 64),
    (3, 6, 1000, 4, 5000, 3728),  # the cap does not bind
    (64, 32, 2**12, 8, 100, 4),  # 2**28 // 2**26 = 4 < 100
    (64, 32, 2**12, 8, 3, 4),
])  # fmt: skip
def test_math_query_block_by_hand(batch, heads, keys, nbytes, window, expected):
    assert cost.math_query_block(batch, heads, keys, nbytes, window) == expected


def test_math_max_score_bytes_is_256_mib():
    assert cost.MATH_MAX_SCORE_BYTES == 268_435_456


# ------------------------------------------------------------------------------------------------
# MHA / GQA / MQA FLOPs


def gqa_proj(spec, n):
    h, g, hd, d = spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.d_model
    return mm(n, d, h * hd) + mm(n, d, g * hd) + mm(n, d, g * hd) + mm(n, h * hd, d)  # Q, K, V, O


def gqa_attn(spec, pairs):
    # per head: q·kᵀ is 2·hd per pair, p·v another 2·hd per pair
    return spec.n_heads * (mm(pairs, spec.head_dim, 1) + mm(pairs, 1, spec.head_dim))


def gqa_elementwise(spec, shape):
    n, h, g, hd = shape.n_query, spec.n_heads, spec.n_kv_heads, spec.head_dim
    pairs = brute_pairs(shape, spec.causal, spec.window)
    total = 5 * pairs * h  # softmax
    if spec.position == "rope":
        total += 3 * n * (spec.rotary_dim or hd) * (h + g)
    if spec.position == "alibi":
        total += 2 * pairs * h
    if spec.qk_norm:
        total += (4 if spec.qk_norm_type == "rms" else 6) * n * hd * (h + g)
    if spec.softcap is not None:
        total += 3 * pairs * h
    if spec.sinks:
        total += 5 * n * h  # one more logit per query row and head
    return total


SHAPES = [Shape("prefill", 7, batch=3), Shape("decode", 9, batch=2), Shape("prefill", 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.mode}{s.seq_len}")
@pytest.mark.parametrize("kw", [
    dict(n_kv_heads=6), dict(n_kv_heads=2), dict(n_kv_heads=1), dict(window=3), dict(window=3, causal=False),
    dict(causal=False), dict(window=20), dict(position="none"), dict(position="alibi", n_kv_heads=3),
])  # fmt: skip
def test_gqa_flops_term_by_term(kw, shape):
    spec = gqa(**kw)
    f = cost.gqa_flops(spec, shape)
    pairs = brute_pairs(shape, spec.causal, spec.window)
    assert f.proj == gqa_proj(spec, shape.n_query)
    assert f.attn == gqa_attn(spec, pairs)
    assert f.elementwise == gqa_elementwise(spec, shape)
    assert f.matmul == f.proj + f.attn


def test_gqa_flops_pinned_mha_gqa_mqa_prefill():
    # n 7, d 48, 6 heads of 10 (Q, O 2·7·48·60 = 40,320 each; K, V 2·7·48·10·g); 28 causal pairs
    shape = Shape("prefill", 7)
    for g, proj in ((6, 161_280), (2, 107_520), (1, 94_080)):
        f = cost.gqa_flops(gqa(n_kv_heads=g), shape)
        assert f.proj == proj
        assert f.attn == 4 * 28 * 6 * 10 == 6720
        assert f.elementwise == 5 * 28 * 6 + 3 * 7 * 10 * (6 + g)
        assert f.matmul == proj + 6720


def test_gqa_flops_given_pairs_replace_only_the_attention_term():
    spec, shape = gqa(window=3), Shape("prefill", 7)
    f = cost.gqa_flops(spec, shape, pairs=41)
    assert f.attn == gqa_attn(spec, 41)
    assert f.proj == gqa_proj(spec, 7)
    assert f.elementwise == gqa_elementwise(spec, shape)  # the softmax stays on the masked pairs


FEATURES = [
    dict(), dict(position="none"), dict(position="alibi"), dict(rotary_dim=4), dict(qk_norm=True),
    dict(qk_norm=True, qk_norm_over="proj"), dict(qk_norm=True, qk_norm_type="layer"), dict(softcap=30.0),
    dict(sinks=True), dict(position="none", sinks=True), dict(position="alibi", softcap=30.0, sinks=True),
    dict(rotary_dim=6, qk_norm=True, softcap=50.0, sinks=True),
    dict(position="alibi", qk_norm=True, qk_norm_type="layer", window=4, causal=False),
    dict(qk_norm=True, qk_norm_type="layer", sinks=True, window=2),
]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: s.mode)
@pytest.mark.parametrize("kw", FEATURES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_gqa_elementwise_flops_each_feature_and_combined(kw, shape):
    spec = gqa(**kw)
    assert cost.gqa_elementwise_flops(spec, shape) == gqa_elementwise(spec, shape)


def test_gqa_elementwise_flops_pinned():
    # prefill 7 causal: 28 pairs, 6 heads, 2 KV heads, head_dim 10
    shape = Shape("prefill", 7)
    assert cost.gqa_elementwise_flops(gqa(position="none"), shape) == 5 * 28 * 6 == 840
    assert cost.gqa_elementwise_flops(gqa(), shape) == 840 + 3 * 7 * 10 * 8 == 2520
    assert cost.gqa_elementwise_flops(gqa(rotary_dim=4), shape) == 840 + 3 * 7 * 4 * 8 == 1512
    assert cost.gqa_elementwise_flops(gqa(position="alibi"), shape) == 840 + 2 * 28 * 6 == 1176
    assert cost.gqa_elementwise_flops(gqa(position="none", qk_norm=True), shape) == 840 + 4 * 7 * 10 * 8
    layer = gqa(position="none", qk_norm=True, qk_norm_type="layer")
    assert cost.gqa_elementwise_flops(layer, shape) == 840 + 6 * 7 * 10 * 8
    assert cost.gqa_elementwise_flops(gqa(position="none", softcap=50.0), shape) == 840 + 3 * 28 * 6
    assert cost.gqa_elementwise_flops(gqa(position="none", sinks=True), shape) == 840 + 5 * 7 * 6


# ------------------------------------------------------------------------------------------------
# the plain-math path's FLOPs (query blocks over key bands)


@pytest.mark.parametrize("kw", [dict(), dict(window=5), dict(causal=False), dict(causal=False, window=4)])
@pytest.mark.parametrize("n", [2, 13])
def test_gqa_math_flops_scores_the_block_spans(monkeypatch, kw, n):
    # a budget of 3 query rows: batch 3 · 6 heads · n keys · 4 bytes each
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 3 * 6 * n * 4 * 3 + 7)
    block = 3  # (3·row + 7) // row; a window's cap, max(64, W), does not bind
    spec, shape = gqa(**kw), Shape("prefill", n, batch=3)
    f = cost.gqa_math_flops(spec, shape, 4)
    causal = spec.causal and n > 1
    pairs = brute_math_pairs(n, n, block, causal, spec.window)
    assert f.attn == gqa_attn(spec, pairs)
    assert f.proj == gqa_proj(spec, n)
    assert f.elementwise == gqa_elementwise(spec, shape)


@pytest.mark.parametrize("causal", [True, False])
def test_math_prefill_pairs_with_one_query_a_block(monkeypatch, causal):
    # budget below one row: block 1, so causal n = 2 scores 1 + 2 = 3 pairs, non-causal 4
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 5)
    spec = gqa(causal=causal)
    f = cost.gqa_math_flops(spec, Shape("prefill", 2), 2)
    assert f.attn == gqa_attn(spec, 3 if causal else 4)


def test_gqa_math_flops_window_caps_the_block():
    # n 100 with the real budget: block min(2**28 // (6·100·2), max(64, 70)) = 70, two blocks
    spec, shape = gqa(window=70), Shape("prefill", 100)
    f = cost.gqa_math_flops(spec, shape, 2)
    assert f.attn == gqa_attn(spec, brute_math_pairs(100, 100, 70, True, 70))
    spec = gqa(window=20)  # block 64: queries 0..63 then 64..99
    f = cost.gqa_math_flops(spec, shape, 2)
    assert f.attn == gqa_attn(spec, brute_math_pairs(100, 100, 64, True, 20))


def test_gqa_math_flops_real_budget_small_block():
    # 8474 sequences · 6 heads · 120 keys · 8 bytes = 48,810,240 a query row: block 2**28 // that = 5
    assert 5 * 48_810_240 <= 256 * 2**20 < 6 * 48_810_240
    spec, shape = gqa(), Shape("prefill", 120, batch=8474)
    f = cost.gqa_math_flops(spec, shape, 8)
    assert f.attn == gqa_attn(spec, brute_math_pairs(120, 120, 5, True))


def test_gqa_math_flops_decode_is_the_causal_aware_count():
    for window in (None, 4):
        spec, shape = gqa(window=window), Shape("decode", 9, batch=2)
        f = cost.gqa_math_flops(spec, shape, 4)
        assert f.attn == gqa_attn(spec, brute_decode_pairs(9, window))
        assert f.proj == gqa_proj(spec, 1)
        assert f.elementwise == gqa_elementwise(spec, shape)


# ------------------------------------------------------------------------------------------------
# cross-attention


def test_cross_flops_prefill_includes_the_memory_projection():
    n, M, d, h, g, hd = 7, 13, 48, 6, 2, 10
    f = cost.cross_flops(CROSS, Shape("prefill", n, batch=3))
    memory_kv = mm(M, d, g * hd) + mm(M, d, g * hd)  # K and V of the 13 memory tokens
    assert cost.cross_memory_proj_flops(CROSS) == memory_kv == 49_920
    assert f.proj == mm(n, d, h * hd) + mm(n, h * hd, d) + memory_kv
    assert f.attn == h * (mm(n, hd, M) + mm(n, M, hd))  # every query sees every memory token
    assert f.elementwise == 5 * n * M * h


def test_cross_flops_decode_projects_only_query_and_output():
    M, d, h, hd = 13, 48, 6, 10
    f = cost.cross_flops(CROSS, Shape("decode", 9, batch=2))
    assert f.proj == mm(1, d, h * hd) + mm(1, h * hd, d) == 11_520
    assert f.attn == h * (mm(1, hd, M) + mm(1, M, hd)) == 3120
    assert f.elementwise == 5 * M * h == 390


# ------------------------------------------------------------------------------------------------
# linear attention


def linear_proj(spec, n):
    d, w = spec.d_model, spec.n_heads * spec.head_dim
    return 3 * mm(n, d, w) + mm(n, w, d)  # Q, K, V in; O out


def linear_recurrent(spec, n):
    # per token and head: S += φ(k)vᵀ (2·dk·dv), φ(q)ᵀS (2·dk·dv), φ(q)ᵀz (2·dk)
    hd = spec.head_dim
    return spec.n_heads * n * (mm(hd, 1, hd) + mm(1, hd, hd) + mm(1, hd, 1))


def linear_elementwise(spec, n):
    elements = n * spec.n_heads * spec.head_dim
    return 2 * 2 * elements + 1 * elements  # φ on q and k, one divide per output element


def chunk_squares(n, c):
    total, start = 0, 0
    while start < n:
        total += min(c, n - start) ** 2
        start += c
    return total


@pytest.mark.parametrize("n", [12, 11, 3])  # a multiple of the chunk (4), a remainder, one short chunk
def test_linear_flops_causal_prefill_chunkwise(n):
    spec = linear()
    f = cost.linear_flops(spec, Shape("prefill", n, batch=2))
    hd, h = 10, 6
    intra = h * (mm(1, hd, 1) + mm(1, 1, hd)) * chunk_squares(n, 4)  # φ(Q)φ(K)ᵀ then ·V, full c×c blocks
    assert f.attn == linear_recurrent(spec, n) + intra
    assert f.proj == linear_proj(spec, n)
    assert f.elementwise == linear_elementwise(spec, n)


def test_linear_flops_pinned_remainder():
    # n 11, chunks 4 + 4 + 3: 16 + 16 + 9 = 41 block pairs; per token 2·100 + 2·100 + 2·10 = 420
    f = cost.linear_flops(linear(), Shape("prefill", 11))
    assert f.attn == 6 * 11 * 420 + 6 * 2 * 20 * 41 == 37_560


def test_linear_flops_non_causal_prefill_and_decode_are_recurrent():
    spec = linear(causal=False)
    f = cost.linear_flops(spec, Shape("prefill", 11))
    assert f.attn == linear_recurrent(spec, 11)  # S = φ(K)ᵀV once, then every query reads it
    assert f.proj == linear_proj(spec, 11)
    for s in (linear(), linear(causal=False)):
        f = cost.linear_flops(s, Shape("decode", 9, batch=2))
        assert f.attn == linear_recurrent(s, 1) == 2520
        assert f.proj == linear_proj(s, 1)
        assert f.elementwise == linear_elementwise(s, 1) == 300


def linear_parallel_attn(spec, n, pairs):
    hd = spec.head_dim
    # A = φ(Q)φ(K)ᵀ and A·V over the pairs, the state φ(K)ᵀV over n tokens
    return spec.n_heads * (mm(pairs, hd, 1) + mm(pairs, 1, hd) + mm(hd, n, hd))


@pytest.mark.parametrize("causal", [True, False])
def test_linear_parallel_flops_prefill(causal):
    spec, shape = linear(causal=causal), Shape("prefill", 11, batch=2)
    f = cost.linear_parallel_flops(spec, shape)
    assert f.attn == linear_parallel_attn(spec, 11, brute_prefill_pairs(11, causal, None))
    assert f.proj == linear_proj(spec, 11)
    assert f.elementwise == linear_elementwise(spec, 11)
    assert cost.linear_parallel_flops(spec, shape, pairs=50).attn == linear_parallel_attn(spec, 11, 50)


def test_linear_parallel_flops_decode_falls_back_to_the_recurrence():
    spec, shape = linear(), Shape("decode", 9)
    f = cost.linear_parallel_flops(spec, shape, pairs=77)
    assert (f.proj, f.attn, f.elementwise) == (linear_proj(spec, 1), linear_recurrent(spec, 1), linear_elementwise(spec, 1))


@pytest.mark.parametrize("causal", [True, False])
def test_linear_math_flops_scores_the_block_spans(monkeypatch, causal):
    n = 13
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 2 * 6 * n * 4 * 4 + 11)  # block 4
    spec = linear(causal=causal)
    f = cost.linear_math_flops(spec, Shape("prefill", n, batch=2), 4)
    assert f.attn == linear_parallel_attn(spec, n, brute_math_pairs(n, n, 4, causal))
    assert f.proj == linear_proj(spec, n)
    d = cost.linear_math_flops(spec, Shape("decode", 9), 4)
    assert d.attn == linear_recurrent(spec, 1)


# ------------------------------------------------------------------------------------------------
# MLA


def mla_hand(spec, shape, pairs=None):
    n, keys = shape.n_query, shape.cache_tokens
    d, h, r, rq = spec.d_model, spec.n_heads, spec.kv_lora_rank, spec.q_lora_rank
    nope, rope, dv = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
    pairs = brute_pairs(shape, True, None) if pairs is None else pairs
    if rq is None:
        proj = mm(n, d, h * (nope + rope))
    else:
        proj = mm(n, d, rq) + mm(n, rq, h * (nope + rope))  # q_a, then q_b
    proj += mm(n, d, r + rope) + mm(n, h * dv, d)  # kv_a, o
    if spec.absorb:
        proj += h * (mm(n, nope, r) + mm(n, r, dv))  # W_UK into queries, W_UV out of results
        attn = h * (mm(pairs, r + rope, 1) + mm(pairs, 1, r))
    else:
        proj += mm(keys, r, h * (nope + dv))  # kv_b over every key in the context
        attn = h * (mm(pairs, nope + rope, 1) + mm(pairs, 1, dv))
    elementwise = 5 * pairs * h + 4 * n * r + (4 * n * rq if rq else 0)  # softmax; kv and q norms
    if spec.position == "rope":
        elementwise += 3 * n * rope * h + 3 * n * rope  # each query head, one shared key
    return proj, attn, elementwise


@pytest.mark.parametrize("shape", [Shape("prefill", 7, batch=3), Shape("decode", 9, batch=2)], ids=lambda s: s.mode)
@pytest.mark.parametrize("position", ["rope", "none"])
@pytest.mark.parametrize("q_lora_rank", [None, 20])
@pytest.mark.parametrize("absorb", [True, False])
def test_mla_flops_term_by_term(absorb, q_lora_rank, position, shape):
    spec = mla(absorb=absorb, q_lora_rank=q_lora_rank, position=position)
    f = cost.mla_flops(spec, shape)
    assert (f.proj, f.attn, f.elementwise) == mla_hand(spec, shape)
    g = cost.mla_flops(spec, shape, pairs=37)
    assert (g.proj, g.attn, g.elementwise) == mla_hand(spec, shape, 37)


def test_mla_flops_pinned_naive_decode():
    # decode after 9: one query, 10 keys (cache_tokens), q_lora 20, RoPE
    f = cost.mla_flops(mla(absorb=False, q_lora_rank=20), Shape("decode", 9))
    assert f.proj == 2 * 48 * 20 + 2 * 20 * 108 + 2 * 48 * 16 + 2 * 60 * 48 + 2 * 10 * 12 * 144 == 48_096
    assert f.attn == 6 * 10 * (2 * 18 + 2 * 10) == 3360
    assert f.elementwise == 5 * 10 * 6 + 4 * 12 + 4 * 20 + 3 * 4 * 7 == 512


@pytest.mark.parametrize("absorb", [True, False])
def test_mla_math_flops_scores_the_block_spans(monkeypatch, absorb):
    n = 13
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 3 * 6 * n * 2 * 5 + 1)  # block 5
    spec, shape = mla(absorb=absorb), Shape("prefill", n, batch=3)
    f = cost.mla_math_flops(spec, shape, 2)
    assert (f.proj, f.attn, f.elementwise) == mla_hand(spec, shape, brute_math_pairs(n, n, 5, True))
    d = cost.mla_math_flops(spec, Shape("decode", 9), 2)
    assert (d.proj, d.attn, d.elementwise) == mla_hand(spec, Shape("decode", 9))


# ------------------------------------------------------------------------------------------------
# FFN


def test_ffn_flops_two_and_three_matrices():
    assert cost.ffn_flops(48, 40, 5) == mm(5, 48, 40) + mm(5, 40, 48) == 38_400  # up, down
    assert cost.ffn_flops(48, 40, 5, 3) == 3 * mm(5, 48, 40) == 57_600  # gate, up, down
    assert cost.ffn_flops(48, 40, 5, matrices=2) == 38_400


def _model(mlp="gated", moe=None):
    return ModelSpec(attention="gqa", layer_types=("full",) * 6, mlp=mlp, dense_d_ff=40, moe=moe)


MOE = MoESpec(experts=9, experts_per_token=2, d_ff=16, shared_experts=3, shared_d_ff=24, first_dense=1, every=2)


@pytest.mark.parametrize("mlp, matrices", [("gated", 3), ("plain", 2)])
def test_model_ffn_flops_dense(mlp, matrices):
    for moe in (None, MOE):
        # without MoE every layer is dense; with MOE layer 0 (before first_dense) and 3 (odd) are
        assert cost.model_ffn_flops(_model(mlp, moe), 48, 0, 5) == matrices * mm(5, 48, 40)
        assert cost.model_ffn_flops(_model(mlp, moe), 48, 3, 5) == matrices * mm(5, 48, 40)


@pytest.mark.parametrize("mlp, matrices", [("gated", 3), ("plain", 2)])
def test_model_ffn_flops_moe_layer(mlp, matrices):
    # layer 4: past first_dense 1 and a multiple of every 2; top-2 of width 16, 3 shared of 24
    expert = lambda width: matrices * mm(5, 48, width)  # noqa: E731
    router = mm(5, 48, 9)  # d_model × experts
    assert cost.model_ffn_flops(_model(mlp, MOE), 48, 4, 5) == 2 * expert(16) + 3 * expert(24) + router
    same = dataclasses.replace(MOE, shared_d_ff=None)  # shared experts as wide as the routed ones
    assert cost.model_ffn_flops(_model(mlp, same), 48, 2, 5) == 2 * expert(16) + 3 * expert(16) + router
    none = dataclasses.replace(MOE, shared_experts=0, first_dense=0, every=1)
    assert cost.model_ffn_flops(_model(mlp, none), 48, 0, 5) == 2 * expert(16) + router


def test_model_ffn_flops_pinned():
    # gated: 3 · 2 · 5 · 48 · (2·16 + 3·24) + 2 · 5 · 48 · 9 = 149,760 + 4,320
    assert cost.model_ffn_flops(_model("gated", MOE), 48, 4, 5) == 154_080


# ------------------------------------------------------------------------------------------------
# parameters and cache widths


def test_gqa_params_plain_and_with_norms_and_sinks():
    d, h, g, hd = 48, 6, 2, 10
    plain = d * h * hd + d * g * hd + d * g * hd + h * hd * d  # W_q, W_k, W_v, W_o
    assert plain == 7680
    assert cost.gqa_params(gqa()) == plain
    assert cost.gqa_params(gqa(qk_norm=True)) == plain + 2 * hd  # one head_dim weight for q, one for k
    assert cost.gqa_params(gqa(qk_norm=True, qk_norm_over="proj")) == plain + (h + g) * hd
    assert cost.gqa_params(gqa(qk_norm=True, qk_norm_type="layer")) == plain + (h + g) * hd  # per head
    assert cost.gqa_params(gqa(sinks=True)) == plain + h
    assert cost.gqa_params(gqa(qk_norm=True, qk_norm_over="proj", sinks=True)) == plain + (h + g) * hd + h
    assert cost.gqa_params(gqa(n_kv_heads=3)) == d * hd * (6 + 3 + 3 + 6)


def test_gqa_params_of_a_spec_without_norm_or_sink_fields():
    # getattr's defaults: a spec lacking qk_norm and sinks has neither
    spec = SimpleNamespace(d_model=48, n_heads=6, n_kv_heads=2, head_dim=10)
    assert cost.gqa_params(spec) == 7680


def test_linear_params():
    assert cost.linear_params(linear()) == 4 * 48 * 10 * 6 == 11_520  # W_q, W_k, W_v, W_o


def test_mla_params_full_rank_and_low_rank_queries():
    d, h, r, nope, rope, dv, rq = 48, 6, 12, 14, 4, 10, 20
    rest = d * (r + rope) + r + r * h * (nope + dv) + h * dv * d  # kv_a, its norm, kv_b, o
    assert cost.mla_params(mla()) == d * h * (nope + rope) + rest == 10_572
    assert cost.mla_params(mla(q_lora_rank=rq)) == d * rq + rq + rq * h * (nope + rope) + rest == 8528


def test_kv_elements_per_token():
    assert cost.gqa_kv_elements_per_token(gqa()) == 2 * 2 * 10  # a key and a value per KV head
    assert cost.gqa_kv_elements_per_token(gqa(n_kv_heads=3, head_dim=14)) == 2 * 3 * 14
    assert cost.mla_kv_elements_per_token(mla()) == 12 + 4  # latent and the shared RoPE key


# ------------------------------------------------------------------------------------------------
# bytes


@pytest.mark.parametrize("shape, attended", [(Shape("prefill", 7, batch=3), 7), (Shape("decode", 9, batch=3), 10)])
def test_layer_bytes_field_by_field(shape, attended):
    b, B, n = 2, 3, shape.n_query
    lb = cost.layer_bytes(params=1234, kv_elements_per_token=40, d_model=48, q_width=60, o_width=36, shape=shape,
                          dtype_bytes=b)  # fmt: skip
    assert lb.weights == 1234 * b
    assert lb.kv_read == B * attended * 40 * b  # prefill the n new, decode L + 1
    assert lb.kv_write == B * n * 40 * b
    assert lb.activations == B * n * (48 + 48 + 60 + 60 + 36 + 36) * b  # x, y; q written, read; o written, read
    assert lb.total == lb.weights + lb.kv_read + lb.kv_write + lb.activations


def test_layer_bytes_pinned_decode():
    lb = cost.layer_bytes(params=1234, kv_elements_per_token=40, d_model=48, q_width=60, o_width=36,
                          shape=Shape("decode", 9, batch=3), dtype_bytes=2)  # fmt: skip
    assert (lb.weights, lb.kv_read, lb.kv_write, lb.activations, lb.total) == (2468, 2400, 240, 1728, 6836)


@pytest.mark.parametrize("shape", [Shape("prefill", 7, batch=3), Shape("decode", 9, batch=2)], ids=lambda s: s.mode)
@pytest.mark.parametrize("absorb", [True, False])
def test_mla_layer_bytes(absorb, shape):
    spec, b = mla(absorb=absorb, q_lora_rank=20), 2
    base = cost.layer_bytes(params=8528, kv_elements_per_token=16, d_model=48, q_width=6 * 18, o_width=6 * 10,
                            shape=shape, dtype_bytes=b)  # fmt: skip
    got = cost.mla_layer_bytes(spec, shape, b)
    per_key = shape.batch * shape.cache_tokens * 6 * b  # every key in the context, per head
    extra_read, extra_write = (0, 0) if absorb else (per_key * (14 + 4 + 10), per_key * (14 + 10))
    assert got.weights == base.weights == 8528 * b
    assert got.kv_read == base.kv_read + extra_read
    assert got.kv_write == base.kv_write + extra_write
    assert got.activations == base.activations


def test_mla_layer_bytes_pinned_naive_decode():
    # batch 2, 10 cache tokens, 6 heads, 2 bytes: per_key 240; reads 240·28 more, writes 240·24 more
    got = cost.mla_layer_bytes(mla(absorb=False, q_lora_rank=20), Shape("decode", 9, batch=2), 2)
    assert got.kv_read == 2 * 10 * 16 * 2 + 240 * 28 == 7360
    assert got.kv_write == 2 * 1 * 16 * 2 + 240 * 24 == 5824


def run_memory_hand(spec, shape, kv, params, b, cap):
    B, L = shape.batch, shape.seq_len
    decode = shape.mode == "decode"
    tokens = L + 1 if decode else L
    n = 1 if decode else L
    keys = L + 1 if decode else L
    q_dim = spec.n_heads * spec.head_dim
    activations = B * (tokens * spec.d_model + n * (spec.d_model + 4 * q_dim)) * b
    scores = 2 * min(cap, B * spec.n_heads * n * keys * b)  # scores and softmax
    cache = 3 * kv * shape.cache_tokens * B * b
    per_head_kv = 2 * B * keys * q_dim * b
    return params * b + activations + scores + cache + per_head_kv


@pytest.mark.parametrize("shape", [Shape("prefill", 7, batch=3), Shape("decode", 9, batch=3)], ids=lambda s: s.mode)
def test_run_memory_bytes_below_the_cap(shape):
    spec = gqa()
    assert cost.run_memory_bytes(spec, shape, 40, 1234, 2) == run_memory_hand(spec, shape, 40, 1234, 2, 1 << 40)
    assert cost.run_memory_bytes(spec, shape, 40, 1234, 2, 10**9) == run_memory_hand(spec, shape, 40, 1234, 2, 1 << 40)


def test_run_memory_bytes_pinned():
    # prefill 7, batch 3, 2 bytes: params 2468; activations 3·(7·48 + 7·288)·2 = 14,112; scores 2·3·6·49·2
    # = 3,528; cache 3·40·7·3·2 = 5,040; per-head keys and values 2·3·7·60·2 = 5,040
    assert cost.run_memory_bytes(gqa(), Shape("prefill", 7, batch=3), 40, 1234, 2) == 30_188
    # decode after 9: tokens 10, one query, keys 10: 2468 + 3·(480 + 288)·2 + 2·3·6·10·2 + 3·40·10·3·2
    # + 2·3·10·60·2
    assert cost.run_memory_bytes(gqa(), Shape("decode", 9, batch=3), 40, 1234, 2) == 2468 + 4608 + 720 + 7200 + 7200


def test_run_memory_bytes_score_cap_binds():
    # 4 · 6 heads · 4096² · 2 bytes = 768 MiB of scores: capped at 256 MiB (the default) or as asked
    spec, shape = gqa(), Shape("prefill", 4096, batch=4)
    assert 4 * 6 * 4096 * 4096 * 2 > 256 * 2**20
    assert cost.run_memory_bytes(spec, shape, 40, 1234, 2) == run_memory_hand(spec, shape, 40, 1234, 2, 268_435_456)
    assert cost.run_memory_bytes(spec, shape, 40, 1234, 2, 5000) == run_memory_hand(spec, shape, 40, 1234, 2, 5000)
    no_scores = run_memory_hand(spec, shape, 40, 1234, 2, 0)
    assert cost.run_memory_bytes(spec, shape, 40, 1234, 2) - no_scores == 2 * 268_435_456


def test_run_memory_bytes_decode_cap_binds():
    spec, shape = gqa(), Shape("decode", 9, batch=3)
    assert cost.run_memory_bytes(spec, shape, 40, 1234, 2, 100) == run_memory_hand(spec, shape, 40, 1234, 2, 100)


# ------------------------------------------------------------------------------------------------
# roofline and the result types


def test_roofline_compute_memory_and_tie():
    assert cost.roofline(12.0, 10.0, 4.0, 5.0) == (3.0, "compute")  # 3 s of compute, 2 s of memory
    assert cost.roofline(6.0, 20.0, 4.0, 5.0) == (4.0, "memory")  # 1.5 s against 4 s
    assert cost.roofline(6.0, 9.0, 2.0, 3.0) == (3.0, "compute")  # a tie is compute-bound


def test_result_types_are_frozen():
    f = cost.LayerFlops(proj=3, attn=5, elementwise=7)
    assert f.matmul == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.proj = 4
    lb = cost.LayerBytes(weights=3, kv_read=5, kv_write=7, activations=11)
    assert lb.total == 26
    with pytest.raises(dataclasses.FrozenInstanceError):
        lb.weights = 4
