"""The MLA module: naive and absorbed paths agree with each other and with the float64 reference on
every size preset, decode continues prefill, and both compute DeepSeek-V2's equations by hand."""

import math

import pytest
import torch

from attncli import presets, registry
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
from attncli.variants.common import Rope
from conftest import TINY


def pair(variant="mla", preset=TINY, dtype=torch.float64):
    """The naive and the absorbed module, built from the same seed (float32, as bench does), cast."""
    modules = []
    for absorb in ("false", "true"):
        sep = "," if ":" in variant else ":"
        spec = presets.parse_variant(f"{variant}{sep}absorb={absorb}", preset)
        torch.manual_seed(0)
        modules.append(registry.get("mla").build(spec).to(dtype))
    return modules


def run(module, x, mode, math):
    """Prefill x, or decode its last token against a cache filled with the others."""
    if mode == "prefill":
        return module(x, math=math)[0]
    L = x.shape[1] - 1
    cache = module.allocate_cache(x.shape[0], L + 1)
    module.fill_cache(cache, x[:, :L])
    return module.step(x[:, L:], cache, L, math=math)


def rel_l2(y, ref) -> float:
    return (torch.linalg.vector_norm(y.double() - ref) / torch.linalg.vector_norm(ref)).item()


def test_both_paths_hold_the_same_weights():
    naive, absorbed = pair("mla:q_lora_rank=16")
    assert naive.state_dict().keys() == absorbed.state_dict().keys()
    for key, value in naive.state_dict().items():
        assert torch.equal(value, absorbed.state_dict()[key]), key


@pytest.mark.parametrize("size", ["micro", "small", "medium", "large"])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_paths_agree_and_match_float64_on_every_size_preset(size, mode):
    p = presets.load_preset(size)
    x = torch.randn(1, 24, p.d_model, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        naive64, absorbed64 = pair(preset=p)
        ref = run(naive64, x, mode, math=True)  # the float64 plain-math reference
        for module in (naive64, absorbed64):
            for use_math in (False, True):
                assert rel_l2(run(module, x, mode, use_math), ref) <= 1e-10
        # float32 modules hold the same (float32-built) weights as the float64 ones
        naive32, absorbed32 = pair(preset=p, dtype=torch.float32)
        x32 = x.float()
        y_naive, y_absorbed = run(naive32, x32, mode, math=False), run(absorbed32, x32, mode, math=False)
        assert rel_l2(y_absorbed, y_naive.double()) <= 1e-5
        for module in (naive32, absorbed32):
            for use_math in (False, True):
                assert rel_l2(run(module, x32, mode, use_math), ref) <= 1e-5


@pytest.mark.parametrize("variant,mode", [(v, m) for v in ("mla", "mla:q_lora_rank=16", "mla:position=none")
                                           for m in ("prefill", "decode")] + [("mla:causal=false", "prefill")])  # fmt: skip
def test_paths_agree_in_float64_across_options(variant, mode):
    x = torch.randn(2, 19, TINY.d_model, dtype=torch.float64)
    naive, absorbed = pair(variant)
    ref = run(naive, x, mode, math=True)
    for module in (naive, absorbed):
        for use_math in (False, True):
            torch.testing.assert_close(run(module, x, mode, use_math), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("math_path", [False, True])
def test_decode_steps_continue_a_causal_prefill(math_path):
    """Token by token from an empty cache, each step equals that token's row of the prefill."""
    x = torch.randn(2, 9, TINY.d_model, dtype=torch.float64)
    for module in pair():
        y_prefill, prefill_cache = module(x, math=math_path)
        cache = module.allocate_cache(2, 9)
        steps = torch.cat([module.step(x[:, t : t + 1], cache, t, math=math_path) for t in range(9)], dim=1)
        torch.testing.assert_close(steps, y_prefill, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cache.latent, prefill_cache.latent, rtol=0, atol=1e-14)


def rms_norm(x, weight, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def test_both_paths_compute_deepseek_v2_equations_by_hand():
    """DeepSeek-V2 eqs. 9–19 for two heads, written per head from the module's weights, with
    random RMSNorm weights and a low-rank query: the shared RoPE key and each head's own RoPE query."""
    preset = presets.PresetSpec(name="two", d_model=16, n_heads=2)
    variant = "mla:kv_lora_rank=12,q_lora_rank=10,qk_nope_head_dim=6,qk_rope_head_dim=4,v_head_dim=5"
    naive, absorbed = pair(variant, preset)
    with torch.no_grad():
        for m in (naive, absorbed):
            m.q_a_layernorm.weight.copy_(torch.linspace(0.5, 1.5, 10))
            m.kv_a_layernorm.weight.copy_(torch.linspace(1.5, 0.5, 12))
    m, T = naive, 7
    x = torch.randn(T, 16, dtype=torch.float64)
    rope = Rope(4, 10000.0)
    rot = lambda t: rope(t[None, None], 0)[0, 0]  # noqa: E731  (T, 4) rotated at positions 0..T-1
    c_q = rms_norm(x @ m.q_a_proj.weight.T, m.q_a_layernorm.weight)  # (T, 10)
    kv_a = x @ m.kv_a_proj_with_mqa.weight.T  # (T, 12 + 4)
    c_kv = rms_norm(kv_a[:, :12], m.kv_a_layernorm.weight)  # (T, 12)
    k_rope = rot(kv_a[:, 12:])  # one RoPE key per token, shared by both heads: (T, 4)
    mask = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), diagonal=1)
    heads = []
    for i in range(2):
        w_q = m.q_b_proj.weight[i * 10 : (i + 1) * 10]  # head i's query rows: 6 nope, then 4 rope
        w_kv = m.kv_b_proj.weight[i * 11 : (i + 1) * 11]  # head i's rows: 6 of W_UK, then 5 of W_UV
        q = c_q @ w_q.T  # (T, 10)
        q_nope, q_rope = q[:, :6], rot(q[:, 6:])
        k_nope, v = c_kv @ w_kv[:6].T, c_kv @ w_kv[6:].T  # (T, 6), (T, 5)
        scores = (q_nope @ k_nope.T + q_rope @ k_rope.T) / math.sqrt(6 + 4) + mask
        heads.append(torch.softmax(scores, dim=-1) @ v)  # (T, 5)
    expected = torch.cat(heads, dim=-1) @ m.o_proj.weight.T  # (T, 16)
    for module in (naive, absorbed):
        for use_math in (False, True):
            y, cache = module(x[None], math=use_math)
            torch.testing.assert_close(y[0], expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(cache.latent[0], torch.cat([c_kv, k_rope], dim=-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_bench_rows_carry_every_measured_column(absorb, mode):
    p = presets.load_preset("micro")
    spec = presets.parse_variant(f"mla:absorb={str(absorb).lower()}", p)
    row = measure_row(spec, p, Shape(mode, 64), Settings(torch.device("cpu"), "float32", min_run_time=0))
    assert row["status"] == "ok" and row["backend"] == "auto"  # the SDPA backend requested
    assert row["latency_ms_p25"] <= row["latency_ms_median"] <= row["latency_ms_p75"]
    assert row["gflops_per_s"] == pytest.approx(row["flops"] / (row["latency_ms_median"] * 1e-3) / 1e9)
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"] == row["cache_tokens"] * 288 * 4
    assert row["err_rel_l2"] <= 1e-5 and row["naive_err_rel_l2"] <= 1e-5
    assert row["err_max_abs"] >= row["err_mean_abs"] > 0 and row["naive_err_max_abs"] > 0
    assert row["absorb"] is absorb and row["kv_lora_rank"] == 256 and row["label"].startswith("mla-r256")
