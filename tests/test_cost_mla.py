"""MLA's analytic costs against hand formulas, FlopCounterMode on each path's plain-math
implementation, the parameters and cache bytes a module really holds, and DeepSeek's published rules."""

import pytest
import torch

from attncli import presets, registry
from attncli.measure.bench import Settings, measure_row
from attncli.rows import analytic_row, kv_row
from attncli.spec import DTYPE_BYTES, Shape
from conftest import TINY, counted

SIZES = ["micro", "small", "medium", "large"]
# TINY (d_model 32, 4 heads of 8) has no MLA defaults, so the family's fallback rules apply at
# d_h = 8: kv_lora_rank 32, qk_rope_head_dim 4, qk_nope_head_dim 8, v_head_dim 8.
VARIANTS = ["mla", "mla:q_lora_rank=16", "mla:position=none", "mla:kv_lora_rank=24,qk_nope_head_dim=6,v_head_dim=10"]


def with_(variant: str, extra: str) -> str:
    return f"{variant}{',' if ':' in variant else ':'}{extra}"


def flops_of(variant, shape, preset=TINY):
    return analytic_row(presets.parse_variant(variant, preset), preset, shape, 1, "float64")


def build(variant, preset=TINY):
    spec = presets.parse_variant(variant, preset)
    torch.manual_seed(0)
    return spec, registry.get("mla").build(spec).double()


# ---------------------------------------------------------------------------------------------
# KV-cache bytes


def test_acceptance_kv_memory_r512_rope64_small_1000_tokens_bfloat16(cli):
    r = cli("kv-memory", "mla:kv_lora_rank=512,qk_rope_head_dim=64", "-p", "small", "-s", 1000, "--layers", 1,
            "--dtype", "bfloat16", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert len(rows) == 1  # the cache is the same for both paths: one row
    assert rows[0]["kv_cache_bytes"] == (512 + 64) * 2 * 1000 == 1_152_000
    assert rows[0]["label"] == "mla-r512-rope64"


@pytest.mark.parametrize("dtype", list(DTYPE_BYTES))
def test_kv_bytes_hand_formula(dtype):
    small = presets.load_preset("small")
    row = kv_row(presets.parse_variant("mla", small), small, seq_len=1000, batch=3, layers=7, dtype=dtype)
    per_token_per_layer = (256 + 32) * DTYPE_BYTES[dtype]  # the latent and the shared RoPE key
    assert row["kv_bytes_per_token"] == 7 * per_token_per_layer
    assert row["kv_cache_bytes"] == 3 * 1000 * 7 * per_token_per_layer


@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_cache_a_module_really_keeps_equals_analytic(absorb, mode):
    spec = presets.parse_variant(f"mla:absorb={str(absorb).lower()}", TINY)
    row = measure_row(spec, TINY, Shape(mode, 10, batch=2), Settings(torch.device("cpu"), "bfloat16", min_run_time=0))
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"]  # float32: test_mla's bench-row test
    assert row["kv_cache_bytes"] == 2 * row["cache_tokens"] * (32 + 4) * 2


def test_allocated_cache_is_one_latent_plus_rope_key_tensor():
    spec = presets.parse_variant("mla", TINY)
    module = registry.get("mla").build(spec).to(torch.bfloat16)
    cache = module.allocate_cache(batch=3, capacity=17)
    assert cache.latent.shape == (3, 17, 32 + 4)
    assert sum(t.nbytes for t in cache.values()) == cache.nbytes == 3 * 17 * 36 * 2
    assert cache.nbytes == kv_row(spec, TINY, 17, 3, 1, "bfloat16")["kv_cache_bytes"]


# ---------------------------------------------------------------------------------------------
# defaults and parameters


@pytest.mark.parametrize("size", SIZES)
def test_preset_defaults_follow_deepseek_v2_rules(size):
    """DeepSeek-V2 §2.1.4: d_c = 4·d_h, d_h^R = d_h / 2 (512 and 64 at d_h 128); nope = v = d_h."""
    p = presets.load_preset(size)
    spec = presets.parse_variant("mla", p)
    d_h = p.d_model // p.n_heads
    assert (spec.kv_lora_rank, spec.qk_rope_head_dim, spec.qk_nope_head_dim, spec.v_head_dim) == (4 * d_h, d_h // 2, d_h, d_h)
    assert spec.q_lora_rank is None and spec.head_dim == d_h + d_h // 2 and spec.absorb
    fallback = presets.build_spec("mla", presets.PresetSpec(name="bare", d_model=p.d_model, n_heads=p.n_heads), {}, "x")
    assert fallback == spec  # the YAML and the family's fallback rules agree


def test_deepseek_v2_lite_shape_from_its_config():
    """DeepSeek-V2-Lite config.json: hidden 2048, 16 heads, kv_lora_rank 512, q_lora_rank null, nope 128, rope 64, v 128."""
    lite = presets.PresetSpec(name="v2-lite", d_model=2048, n_heads=16)
    spec = presets.parse_variant("mla", lite)
    assert (spec.kv_lora_rank, spec.qk_rope_head_dim, spec.qk_nope_head_dim, spec.v_head_dim, spec.q_lora_rank) == (
        512, 64, 128, 128, None)  # fmt: skip
    assert registry.get("mla").kv_elements_per_token(spec) == 576  # FlashMLA's head size
    # Per layer: q 2048·16·192 + kv_a 2048·576 + norm 512 + kv_b 512·16·256 + o 16·128·2048 = 13,763,072
    assert registry.get("mla").params(spec) == 13_763_072


@pytest.mark.parametrize("variant", VARIANTS)
def test_params_equal_the_module_parameters(variant):
    spec, module = build(variant)
    assert registry.get("mla").params(spec) == sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# FLOPs


def test_tiny_causal_prefill_pinned_by_hand():
    # d 32, 4 heads, r 32, rope 4, nope 8, v 8; n = 6 tokens, causal: 21 query–key pairs.
    naive, absorbed = (flops_of(f"mla:absorb={a}", Shape("prefill", 6)) for a in ("false", "true"))
    shared = 2 * 6 * 32 * 4 * 12 + 2 * 6 * 32 * (32 + 4) + 2 * 6 * 4 * 8 * 32  # q, kv_a, o: 18,432 + 13,824 + 12,288
    assert naive["proj_flops"] == shared + 2 * 6 * 32 * 4 * (8 + 8) == 69_120  # + kv_b over the 6 latents
    assert naive["attn_flops"] == 2 * 21 * 4 * (12 + 8) == 3_360  # scores over nope + rope, then values
    assert absorbed["proj_flops"] == shared + 2 * 6 * 4 * 32 * (8 + 8) == 69_120  # + W_UK in, W_UV out: the same
    assert absorbed["attn_flops"] == 2 * 21 * 4 * (36 + 32) == 11_424  # scores over r + rope, latents weighted
    # softmax 5/score, RMSNorm 4/element of the latent, RoPE 3/element of 4 query parts + 1 shared key
    assert naive["elementwise_flops"] == absorbed["elementwise_flops"] == 5 * 21 * 4 + 4 * 6 * 32 + 3 * 6 * 4 * 5
    assert flops_of("mla:q_lora_rank=16", Shape("prefill", 6))["elementwise_flops"] == 1548 + 4 * 6 * 16


def test_tiny_decode_pinned_by_hand():
    # one new token against a cache of 5: 6 keys
    naive, absorbed = (flops_of(f"mla:absorb={a}", Shape("decode", 5)) for a in ("false", "true"))
    shared = 2 * 32 * 4 * 12 + 2 * 32 * 36 + 2 * 4 * 8 * 32  # q, kv_a, o for one token: 7,424
    assert naive["proj_flops"] == shared + 2 * 6 * 32 * 4 * 16 == 32_000  # kv_b over all 6 cached latents
    assert naive["attn_flops"] == 2 * 6 * 4 * 20 == 960
    assert absorbed["proj_flops"] == shared + 2 * 4 * 32 * 16 == 11_520  # W_UK and W_UV for one token only
    assert absorbed["attn_flops"] == 2 * 6 * 4 * 68 == 3_264


@pytest.mark.parametrize("absorb", ["false", "true"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("causal", [True, False])
def test_prefill_flops_equal_flop_counter_on_math_path(variant, absorb, causal):
    _, module = build(with_(variant, f"absorb={absorb},causal={str(causal).lower()}"))
    x = torch.randn(2, 12, TINY.d_model, dtype=torch.float64)
    measured = counted(lambda: module(x, math=True))
    # The math path scores the whole n×n matrix (masking does not skip work): the non-causal count.
    full = presets.parse_variant(with_(variant, f"absorb={absorb},causal=false"), TINY)
    assert measured == analytic_row(full, TINY, Shape("prefill", 12, batch=2), 1, "float64")["flops"]


@pytest.mark.parametrize("absorb", ["false", "true"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_decode_flops_equal_flop_counter_on_math_path(variant, absorb):
    spec, module = build(with_(variant, f"absorb={absorb}"))
    L, B = 9, 3
    x = torch.randn(B, L + 1, TINY.d_model, dtype=torch.float64)
    cache = module.allocate_cache(B, L + 1)
    module.fill_cache(cache, x[:, :L])
    measured = counted(lambda: module.step(x[:, L:], cache, L, math=True))
    assert measured == analytic_row(spec, TINY, Shape("decode", L, batch=B), 1, "float64")["flops"]


@pytest.mark.parametrize("size", SIZES)
def test_naive_wins_prefill_by_the_attention_width_gap(size):
    """Prefill: kv_b over n latents costs what W_UK + W_UV over n queries cost, so the paths differ
    only in attention width: absorbed − naive = 2·pairs·h·(2r − nope − v), at every length."""
    p = presets.load_preset(size)
    s = presets.parse_variant("mla", p)
    for n in (1, 7, 1024):
        naive, absorbed = (flops_of(f"mla:absorb={a}", Shape("prefill", n), p)["flops"] for a in ("false", "true"))
        gap = 2 * (n * (n + 1) // 2) * s.n_heads * (2 * s.kv_lora_rank - s.qk_nope_head_dim - s.v_head_dim)
        assert absorbed - naive == gap > 0


@pytest.mark.parametrize("size", SIZES)
def test_absorbed_wins_decode_from_the_first_cached_token(size):
    """Decode: naive re-up-projects all L+1 latents, 2·(L+1)·h·r·(nope + v), against the absorbed
    path's fixed 2·h·r·(nope + v) and wider attention; absorbed is cheaper for every L ≥ 1."""
    p = presets.load_preset(size)
    s = presets.parse_variant("mla", p)
    h, r, nope, dv = s.n_heads, s.kv_lora_rank, s.qk_nope_head_dim, s.v_head_dim
    for L in (1, 2, 4096):  # a decode step needs at least one cached token
        naive, absorbed = (flops_of(f"mla:absorb={a}", Shape("decode", L), p)["flops"] for a in ("false", "true"))
        assert naive - absorbed == 2 * h * (r * (nope + dv) * L - (L + 1) * (2 * r - nope - dv)) > 0
