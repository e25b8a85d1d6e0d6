"""Analytic FLOPs against hand formulas and against FlopCounterMode on the plain-math path."""

import pytest
import torch

from attncli import presets
from attncli.rows import analytic_row
from attncli.spec import Shape
from conftest import TINY, counted

SMALL = presets.load_preset("small")


def flops_of(variant, shape, preset=SMALL, layers=1):
    return analytic_row(presets.parse_variant(variant, preset), preset, shape, layers, "bfloat16")


def test_small_noncausal_prefill_pinned_by_hand():
    # d=512, 8 heads of 64, n=1024: each of Q, K, V, O is 2·n·d·d = 536,870,912;
    # scores and weighted sum are each 2·n·n·d = 1,073,741,824.
    row = flops_of("mha:causal=false", Shape("prefill", 1024))
    assert row["proj_flops"] == 4 * 2 * 1024 * 512 * 512 == 2_147_483_648
    assert row["attn_flops"] == 2 * 2 * 1024 * 1024 * 512 == 2_147_483_648
    assert row["flops"] == 4_294_967_296


def test_small_causal_prefill_counts_n_n_plus_1_over_2_pairs():
    row = flops_of("mha", Shape("prefill", 1024))
    pairs = 1024 * 1025 // 2  # 524,800 query–key pairs
    assert row["attn_flops"] == 4 * pairs * 512 == 1_074_790_400
    assert row["flops"] == 3_222_274_048


def test_small_decode_counts_cache_plus_one_keys():
    row = flops_of("mha", Shape("decode", 1024))
    assert row["proj_flops"] == 4 * 2 * 512 * 512
    assert row["attn_flops"] == 4 * 1025 * 512
    assert row["flops"] == 4_196_352


def test_gqa_and_mqa_shrink_only_the_kv_projections():
    mha = flops_of("mha", Shape("prefill", 256))
    gqa = flops_of("gqa:n_kv_heads=2", Shape("prefill", 256))
    mqa = flops_of("mqa", Shape("prefill", 256))
    n, d, hd = 256, 512, 64
    assert mha["proj_flops"] - gqa["proj_flops"] == 2 * 2 * n * d * hd * (8 - 2)
    assert mha["proj_flops"] - mqa["proj_flops"] == 2 * 2 * n * d * hd * (8 - 1)
    assert mha["attn_flops"] == gqa["attn_flops"] == mqa["attn_flops"]


def test_layers_and_batch_multiply_and_ffn_and_share():
    one = flops_of("gqa", Shape("prefill", 128, batch=1))
    many = flops_of("gqa", Shape("prefill", 128, batch=3), layers=5)
    for key in ("flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops"):
        assert many[key] == 15 * one[key]
    assert one["ffn_flops"] == 2 * 2 * 128 * 512 * 2048  # d_model → 4·d_model → d_model
    assert one["attn_share"] == pytest.approx(one["flops"] / (one["flops"] + one["ffn_flops"]))
    assert many["params"] == 5 * one["params"] == 5 * 512 * 64 * (2 * 8 + 2 * 2)


def test_elementwise_softmax_and_rope_by_hand():
    n, h, g, hd = 16, 8, 2, 64
    row = flops_of("gqa:n_kv_heads=2", Shape("prefill", n))
    pairs = n * (n + 1) // 2
    assert row["elementwise_flops"] == 5 * pairs * h + 3 * n * hd * (h + g)
    nope = flops_of("gqa:n_kv_heads=2,position=none", Shape("prefill", n))
    assert nope["elementwise_flops"] == 5 * pairs * h
    assert nope["flops"] == row["flops"]  # RoPE is not matmul work


@pytest.mark.parametrize("variant", ["mha", "mqa", "gqa", "gqa:n_kv_heads=4", "mha:position=none"])
@pytest.mark.parametrize("causal", [True, False])
def test_prefill_flops_equal_flop_counter_on_math_path(variant, causal):
    spec = presets.parse_variant(f"{variant}{',' if ':' in variant else ':'}causal={str(causal).lower()}", TINY)
    module = presets.registry.get(spec.family).build(spec).double()
    x = torch.randn(2, 12, TINY.d_model, dtype=torch.float64)
    measured = counted(lambda: module(x, math=True))
    # The math path scores the whole n×n matrix (masking does not skip work): the non-causal count.
    full = presets.parse_variant(f"{variant}{',' if ':' in variant else ':'}causal=false", TINY)
    assert measured == analytic_row(full, TINY, Shape("prefill", 12, batch=2), 1, "float64")["flops"]


@pytest.mark.parametrize("variant", ["mha", "mqa", "gqa", "gqa:n_kv_heads=1"])
def test_decode_flops_equal_flop_counter_on_math_path(variant):
    spec = presets.parse_variant(variant, TINY)
    module = presets.registry.get(spec.family).build(spec).double()
    L, B = 9, 3
    x = torch.randn(B, L + 1, TINY.d_model, dtype=torch.float64)
    cache = module.allocate_cache(B, L + 1)
    module.fill_cache(cache, x[:, :L])
    measured = counted(lambda: module.step(x[:, L:], cache, L, math=True))
    assert measured == analytic_row(spec, TINY, Shape("decode", L, batch=B), 1, "float64")["flops"]
