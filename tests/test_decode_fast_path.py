"""The CPU decode path (issue 17): a head-dim-major cache read by matrix-vector products, and
projections of a few rows as W·xᵀ. Each is checked against an independent computation: the
plain-math step (explicit scores, mask, softmax) and F.linear."""

import pytest
import torch
import torch.nn.functional as F

from attncli.spec import GQASpec
from attncli.variants import cdecode, common
from attncli.variants.common import Projection, decode_calls, sdpa_only
from attncli.variants.gqa import GQAAttention

CASES = {  # name: spec fields; 8 query heads of 16 dims over a 40-token prefix
    "mha": dict(n_kv_heads=8),
    "gqa": dict(n_kv_heads=2),
    "mqa": dict(n_kv_heads=1),
    "swa": dict(n_kv_heads=2, window=16),  # the ring holds 16 of 41 tokens: slots out of order
    "alibi": dict(n_kv_heads=8, position="alibi"),
    "alibi-gqa-window": dict(n_kv_heads=4, position="alibi", window=8),
}


def _layer(**fields):
    torch.manual_seed(0)
    return GQAAttention(GQASpec(family="gqa", d_model=64, n_heads=8, head_dim=16, **fields)).eval()


@pytest.mark.parametrize("name", CASES)
def test_decode_step_matches_the_math_path(name):
    m = _layer(**CASES[name])
    x = torch.randn(3, 41, 64)
    with torch.inference_mode():
        cache = m.allocate_cache(3, 41)
        assert cache.k.stride(2) == 1 and cache.v.stride(2) == 1  # tokens contiguous: (B, g, hd, slots) storage
        m.fill_cache(cache, x[:, :40])
        calls = decode_calls() + cdecode.calls()
        fast = m.step(x[:, 40:], cache, 40)
        assert decode_calls() + cdecode.calls() == calls + 1  # the gemv path or its C kernel, not SDPA
        cache_math = m.allocate_cache(3, 41)
        m.fill_cache(cache_math, x[:, :40])
        ref = m.step(x[:, 40:], cache_math, 40, math=True)
    torch.testing.assert_close(fast, ref, rtol=0, atol=2e-6)


def test_decode_step_matches_a_float64_formula_written_here():
    """MHA, RoPE off: softmax(q·Kᵀ/√d)·V over the 40 cached tokens and the new one, by hand."""
    m = _layer(n_kv_heads=8, position="none").double()
    x = torch.randn(2, 41, 64, dtype=torch.float64)
    with torch.inference_mode():
        cache = m.allocate_cache(2, 41)
        m.fill_cache(cache, x[:, :40])
        out = m.step(x[:, 40:], cache, 40)
        q = (x @ m.q_proj.weight.T).view(2, 41, 8, 16).transpose(1, 2)[:, :, 40:]  # (B, h, 1, hd)
        k = (x @ m.k_proj.weight.T).view(2, 41, 8, 16).transpose(1, 2)  # (B, h, 41, hd)
        v = (x @ m.v_proj.weight.T).view(2, 41, 8, 16).transpose(1, 2)
        o = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1) @ v  # √16 = 4
        ref = o.transpose(1, 2).reshape(2, 1, 128) @ m.o_proj.weight.T
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_a_named_sdpa_backend_keeps_the_token_major_cache_and_sdpa():
    m = _layer(n_kv_heads=2)
    x = torch.randn(1, 9, 64)
    with torch.inference_mode(), sdpa_only():
        cache = m.allocate_cache(1, 9)
        assert cache.k.is_contiguous() and cache.k.stride(2) == 16  # (B, g, slots, hd) storage
        m.fill_cache(cache, x[:, :8])
        calls = decode_calls()
        m.step(x[:, 8:], cache, 8)
        assert decode_calls() == calls
    assert common._decode["on"]  # restored on the way out


@pytest.mark.parametrize("rows", [1, 2, 4, 17, 64, 65, 300])
@pytest.mark.parametrize("bias", [False, True])
def test_projection_equals_linear(rows, bias):
    torch.manual_seed(rows)
    p = Projection(48, 80, bias=bias)
    x = torch.randn(rows, 1, 48)
    out = p(x)
    assert out.shape == (rows, 1, 80) and out.is_contiguous()
    torch.testing.assert_close(out, F.linear(x, p.weight, p.bias), rtol=1e-6, atol=1e-5)


def test_decode_attention_defaults_to_one_over_root_head_dim():
    torch.manual_seed(3)
    q = torch.randn(2, 4, 1, 16, dtype=torch.float64)  # 4 query heads over 2 KV heads
    k, v = torch.randn(2, 2, 9, 16, dtype=torch.float64), torch.randn(2, 2, 9, 16, dtype=torch.float64)
    out = common.decode_attention(q, k, v, q_pos=8)
    kk, vv = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)  # query head i reads KV head i // 2
    ref = torch.softmax(q @ kk.transpose(-1, -2) / 4.0, dim=-1) @ vv  # √16 = 4
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
