"""The MHA/GQA/MQA module: fast path vs float64 reference, decode vs prefill, sharing semantics."""

import pytest
import torch

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
from conftest import TINY


def build(variant, preset=TINY, dtype=torch.float64):
    spec = presets.parse_variant(variant, preset)
    torch.manual_seed(0)
    return presets.registry.get(spec.family).build(spec).to(dtype)


@pytest.mark.parametrize("preset", ["micro", "small", "medium", "large"])
@pytest.mark.parametrize("variant", ["mha", "mqa", "gqa"])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_fp32_fast_path_within_1e5_of_float64_on_every_preset(preset, variant, mode):
    p = presets.load_preset(preset)
    row = measure_row(presets.parse_variant(variant, p), p, Shape(mode, 128),
                      Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))  # fmt: skip
    assert row["status"] == "ok"
    assert row["err_rel_l2"] <= 1e-5
    assert row["naive_err_rel_l2"] <= 1e-5
    assert row["err_max_abs"] >= row["err_mean_abs"] >= 0


@pytest.mark.parametrize("variant", ["mha", "mqa", "gqa", "mha:causal=false", "gqa:position=none"])
def test_fast_and_math_paths_agree_in_float64(variant):
    m = build(variant)
    x = torch.randn(2, 19, TINY.d_model, dtype=torch.float64)
    y_fast, _ = m(x)
    y_math, _ = m(x, math=True)
    torch.testing.assert_close(y_fast, y_math, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["mha", "mqa", "gqa"])
@pytest.mark.parametrize("math", [False, True])
def test_decode_step_equals_last_token_of_causal_prefill(variant, math):
    m = build(variant)
    L = 13
    x = torch.randn(2, L + 1, TINY.d_model, dtype=torch.float64)
    y_prefill, _ = m(x, math=math)
    cache = m.allocate_cache(2, L + 1)
    m.fill_cache(cache, x[:, :L])
    y_step = m.step(x[:, L:], cache, L, math=math)
    torch.testing.assert_close(y_step, y_prefill[:, L:], rtol=1e-12, atol=1e-12)


def test_causal_mask_hides_the_future():
    m = build("gqa")
    x = torch.randn(1, 10, TINY.d_model, dtype=torch.float64)
    y1, _ = m(x, math=True)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(1, 3, TINY.d_model, dtype=torch.float64)
    y2, _ = m(x2, math=True)
    torch.testing.assert_close(y1[:, :7], y2[:, :7])
    assert not torch.allclose(y1[:, 7:], y2[:, 7:])


def test_gqa_with_repeated_kv_weights_equals_mha():
    """GQA's query head i uses KV head i // group: an MHA whose KV weights repeat per group is the same layer."""
    gqa, mha = build("gqa"), build("mha")
    group = TINY.n_heads // 2
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        for name in ("k_proj", "v_proj"):
            w = getattr(gqa, name).weight.view(2, 8, TINY.d_model)  # (kv heads, head_dim, d_model)
            getattr(mha, name).weight.copy_(w.repeat_interleave(group, dim=0).reshape(-1, TINY.d_model))
    x = torch.randn(2, 11, TINY.d_model, dtype=torch.float64)
    torch.testing.assert_close(gqa(x)[0], mha(x)[0], rtol=1e-12, atol=1e-12)


def test_math_path_matches_an_explicit_single_head_computation():
    """One head, no RoPE, by hand: softmax(q kᵀ/√d + causal mask) v."""
    spec_preset = presets.PresetSpec(name="one", d_model=8, n_heads=1)
    m = build("mha:position=none", spec_preset)
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    q, k, v = m.q_proj(x)[0], m.k_proj(x)[0], m.v_proj(x)[0]  # (5, 8)
    scores = q @ k.T / 8**0.5
    scores = scores + torch.triu(torch.full((5, 5), float("-inf"), dtype=torch.float64), diagonal=1)
    expected = m.o_proj(torch.softmax(scores, dim=-1) @ v)
    torch.testing.assert_close(m(x, math=True)[0][0], expected)


def test_rope_rotation_is_relative():
    """RoPE scores depend only on the distance between positions."""
    from attncli.variants.common import Rope

    rope = Rope(8, 10000.0)
    q = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    k = torch.randn(1, 1, 1, 8, dtype=torch.float64)
    s1 = (rope(q, 5) * rope(k, 2)).sum()
    s2 = (rope(q, 40) * rope(k, 37)).sum()
    torch.testing.assert_close(s1, s2)


def test_same_seed_same_numbers():
    p = presets.load_preset("micro")
    settings = Settings(device=torch.device("cpu"), dtype="float32", seed=7, min_run_time=0)
    a = measure_row(presets.parse_variant("gqa", p), p, Shape("prefill", 32), settings)
    b = measure_row(presets.parse_variant("gqa", p), p, Shape("prefill", 32), settings)
    for key in ("err_max_abs", "err_mean_abs", "err_rel_l2", "naive_err_rel_l2", "flops", "kv_cache_bytes"):
        assert a[key] == b[key]
