"""The whole GQA decode step in one C call (cdecode.gqa_step, from GQAAttention.step): its output
against the float64 plain-math step, held to the criterion every fast path meets (at most twice
the float32 plain-math step's error) and beside the same step op by op; the new token's key and
value in the caches; and every layer or call it must leave to the op-by-op step."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from attncli import presets, registry
from attncli.variants import cdecode, common
from attncli.variants.common import Cache, Projection, Rope


@pytest.fixture
def kernel():
    why = cdecode.unavailable()
    if why is not None and why.startswith("self-check failed"):
        pytest.fail(why)
    if why is not None:
        pytest.skip(f"the decode kernel is not available here: {why}")


def _layer(variant="gqa", biases=False, seed=0, **fields):
    spec = presets.parse_variant(variant, presets.load_preset("micro"))  # d_model 256, 4 heads of 64
    spec = dataclasses.replace(spec, **fields)
    torch.manual_seed(seed)
    layer = registry.get(spec.family).build(spec).eval()
    if biases:
        for p in (layer.q_proj, layer.k_proj, layer.v_proj, layer.o_proj):
            p.bias = nn.Parameter(torch.randn(p.out_features) * 0.5)
    return layer


def _filled(layer, B, S, seed=1):
    """A cache of S + 1 slots holding a seeded prefix of S tokens, the prefix and the new token."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, S + 1, layer.spec.d_model, generator=gen).to(layer.q_proj.weight.dtype)
    cache = layer.allocate_cache(B, S + 1)
    if S:
        layer.fill_cache(cache, x[:, :S])
    return cache, x[:, S:]


def _copy(cache, dtype=None):
    if dtype is None:
        return Cache(k=cache.k.clone(), v=cache.v.clone())
    return Cache(k=cache.k.to(dtype), v=cache.v.to(dtype))


def _rel(x, ref):
    return ((x.double() - ref).norm() / ref.norm()).item()


def _one_call_and_references(layer, B, S):
    """The one-call step, the op-by-op step, the float32 and float64 plain-math steps, each on its
    own copy of one cache; returns (outputs, caches) in that order."""
    cache, x = _filled(layer, B, S)
    caches = [_copy(cache), _copy(cache), _copy(cache)]
    with torch.inference_mode():
        before = cdecode.step_calls()
        fast = layer.step(x, caches[0], S)
        assert cdecode.step_calls() == before + 1, "the step did not take the one call"
        layer._one_call = False
        try:
            ops = layer.step(x, caches[1], S)
        finally:
            layer._one_call = True
        math = layer.step(x, caches[2], S, math=True)
        assert cdecode.step_calls() == before + 1
        exact = _copy(cache, torch.float64)
        ref = layer.double().step(x.double(), exact, S, math=True)
    layer.float()
    return (fast, ops, math, ref), (*caches, exact)


CASES = {  # name: (layer fields and options, batch, cached tokens)
    "gqa-kv2": ({}, 3, 40),
    "one-sequence": ({}, 1, 40),
    "eight-sequences": ({}, 8, 17),
    "empty-cache": ({}, 2, 0),  # the new token attends to itself only
    "mqa": ({"variant": "mqa"}, 3, 33),
    "five-rows-per-kv-head": ({"n_heads": 10, "n_kv_heads": 2, "head_dim": 40}, 2, 50),  # a partial 4-row tile
    "partial-rotary-and-biases": ({"rotary_dim": 24, "biases": True}, 3, 31),
    "no-position": ({"position": "none"}, 2, 20),
    "softmax-scale": ({"scale": 0.3}, 2, 20),
    "long-cache": ({}, 2, 1500),  # past SHORT: the scores in passes of head dims
}


@pytest.mark.parametrize("name", CASES)
def test_the_one_call_step_matches_float64_within_twice_the_math_steps_error(kernel, name):
    fields, B, S = CASES[name]
    layer = _layer(**fields)
    (fast, ops, math, ref), (c_fast, c_ops, c_math, c_ref) = _one_call_and_references(layer, B, S)
    assert fast.shape == (B, 1, layer.spec.d_model)
    err, math_err = _rel(fast, ref), _rel(math, ref)
    assert err <= 2 * max(math_err, 2**-24), (err, math_err)
    assert _rel(fast, ops.double()) <= 1e-6  # the same arithmetic as the op-by-op step
    # The new token's key and value went to slot S, as the op-by-op step writes them; no other slot moved.
    for got, want, exact in ((c_fast.k, c_ops.k, c_ref.k), (c_fast.v, c_ops.v, c_ref.v)):
        torch.testing.assert_close(got[:, :, S], want[:, :, S], rtol=1e-6, atol=1e-6)
        assert _rel(got[:, :, S], exact[:, :, S]) <= 1e-6
        assert torch.equal(got[:, :, :S], want[:, :, :S])


@pytest.mark.parametrize("interleave", [False, True], ids=["half-split", "interleaved"])
def test_a_checkpoints_rope_scaled_or_interleaved_is_the_one_the_step_rotates_by(kernel, interleave):
    """Weights give the layer its own Rope (weights._conventions): scaled frequencies, YaRN's
    attention factor, DeepSeek's interleaved pairs, and frequencies recomputed per call (freq_at)."""
    layer = _layer(biases=True)
    inv = [10000.0 ** (-2 * i / 64) * (0.25 if i > 16 else 1.0) for i in range(32)]
    layer.rope = Rope(64, 10000.0, inv_freq=inv, attention_factor=1.1, interleave=interleave,
                      freq_at=lambda n: [f * (1 + n / 100) for f in inv])  # fmt: skip
    (fast, ops, math, ref), _ = _one_call_and_references(layer, 3, 30)
    assert _rel(fast, ref) <= 2 * max(_rel(math, ref), 2**-24)
    assert _rel(fast, ops.double()) <= 1e-6


@pytest.mark.parametrize("block", [64, 1040])
def test_gqa_step_crosses_block_ends(kernel, block):
    """The step's attention in blocks of `block` tokens with a short last one, biases and a partial
    RoPE (the self-check's case, longer), against float64 computed here."""
    torch.manual_seed(3)
    B, h, g, hd, d, pos = 2, 8, 2, 24, 40, 2 * 1040 + 7
    proj = [SimpleNamespace(weight=torch.randn(n, m), bias=torch.randn(n))
            for n, m in ((h * hd, d), (g * hd, d), (g * hd, d), (d, h * hd))]  # fmt: skip
    rope = Rope(16, 500.0)
    k = common.kv_cache_tensor(torch.empty(1), (B, g, pos + 1, hd)).normal_()
    v = common.kv_cache_tensor(torch.empty(1), (B, g, pos + 1, hd)).normal_()
    k64, v64 = k.double(), v.double()
    x = torch.randn(B, 1, d)
    with torch.no_grad():
        got = cdecode.gqa_step(x, [p.weight for p in proj], [p.bias for p in proj], rope, k, v, pos, h, hd**-0.5,
                               block=block)
        x64 = x.double()
        q = rope(project(x64, proj[0]).view(B, 1, h, hd).transpose(1, 2), pos)
        k64[:, :, pos] = rope(project(x64, proj[1]).view(B, 1, g, hd).transpose(1, 2), pos)[:, :, 0]
        v64[:, :, pos] = project(x64, proj[2]).view(B, g, hd)
        o = common.math_attention(q, k64, v64, causal=False, scale=hd**-0.5)
        want = project(o.transpose(1, 2).reshape(B, 1, h * hd), proj[3])
        # the float32 plain-math step on the caches the call wrote
        q32 = rope(project(x, proj[0]).view(B, 1, h, hd).transpose(1, 2), pos)
        o32 = common.math_attention(q32, k, v, causal=False, scale=hd**-0.5)
        math = project(o32.transpose(1, 2).reshape(B, 1, h * hd), proj[3])
    assert _rel(got, want) <= 2 * max(_rel(math, want), 2**-24)
    assert _rel(k[:, :, pos], k64[:, :, pos]) <= 1e-6 and _rel(v[:, :, pos], v64[:, :, pos]) <= 1e-6


def project(t, p):
    """t·Wᵀ + b in t's dtype (float64 for the reference, float32 for the math step)."""
    return t @ p.weight.to(t.dtype).t() + p.bias.to(t.dtype)


def _calls(layer, x, cache, pos, **kw):
    before = cdecode.step_calls()
    layer.step(x, cache, pos, **kw)
    return cdecode.step_calls() - before


@pytest.mark.parametrize("fields", [{"variant": "swa", "window": 16}, {"position": "alibi"}, {"qk_norm": True},
                                    {"softcap": 30.0}, {"sinks": True}, {"variant": "mha"}],
                         ids=["window", "alibi", "qk-norm", "softcap", "sinks", "one-row-per-kv-head"])  # fmt: skip
def test_layers_the_one_call_does_not_compute_take_the_op_by_op_step(kernel, fields):
    layer = _layer(**fields)
    cache, x = _filled(layer, 2, 20)
    with torch.inference_mode():
        assert _calls(layer, x, cache, 20) == 0


def test_calls_it_does_not_take(kernel):
    layer = _layer()
    cache, x = _filled(layer, 2, 20)
    with torch.inference_mode():
        assert _calls(layer, x, cache, 20) == 1  # the baseline: this layer and call take it
        assert _calls(layer, x, cache, 20, math=True) == 0
        many, xs = _filled(layer, 9, 20)
        assert _calls(layer, xs, many, 20) == 0  # 9 sequences: past STEP_ROWS, the BLAS's matrix products
        with common.sdpa_only():  # a named SDPA --backend
            assert _calls(layer, x, cache, 20) == 0
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False):  # --verify-flops counts aten ops; a C call makes none
            assert _calls(layer, x, cache, 20) == 0
    assert _calls(layer, x, cache, 20) == 0  # gradients on, weights that want them: autograd's ops
    with torch.no_grad():
        assert _calls(layer, x, cache, 20) == 1
    wide = _layer()
    wide.double()
    c64, x64 = _filled(wide, 2, 20)
    with torch.inference_mode():
        assert _calls(wide, x64, c64, 20) == 0  # float64: the BLAS path


def test_a_projection_that_is_not_attnclis_own_keeps_its_forward(kernel):
    class Scaled(Projection):  # computes something besides x·Wᵀ
        def forward(self, x):
            return super().forward(x) * 2

    layer = _layer()
    scaled = Scaled(layer.o_proj.in_features, layer.o_proj.out_features, bias=False)
    scaled.weight.data.copy_(layer.o_proj.weight)
    cache, x = _filled(layer, 2, 20)
    with torch.inference_mode():
        plain = layer.step(x, _copy(cache), 20)
        layer.o_proj = scaled
        assert _calls(layer, x, _copy(cache), 20) == 0
        torch.testing.assert_close(layer.step(x, _copy(cache), 20), 2 * plain)


def test_without_the_kernel_the_step_runs_op_by_op(monkeypatch):
    cdecode.library()
    monkeypatch.setitem(cdecode._state, "lib", None)  # as after a failed build or self-check
    layer = _layer()
    cache, x = _filled(layer, 2, 20)
    with torch.inference_mode():
        assert _calls(layer, x, _copy(cache), 20) == 0
        got = layer.step(x, _copy(cache), 20)
        want = layer.step(x, _copy(cache), 20, math=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_wrong_step_fails_the_self_check(kernel, monkeypatch):
    """The self-check runs the step too: a step that rotates by the wrong angle is refused."""
    real = cdecode.gqa_step

    def wrong(x, weights, biases, rope, *args, **kw):
        return real(x, weights, biases, Rope(rope.dim, rope.theta * 2), *args, **kw)

    monkeypatch.setattr(cdecode, "gqa_step", wrong)
    assert cdecode._self_check().startswith("self-check failed")


def test_weights_or_caches_of_other_sizes_are_not_read(kernel):
    """The C call reads the sizes the heads and the cache imply: any other weight, bias or value
    cache shape is refused before it, never read past its end."""
    torch.manual_seed(0)
    B, h, g, hd, d, pos = 2, 4, 2, 8, 16, 5
    w = [torch.randn(n, m) for n, m in ((h * hd, d), (g * hd, d), (g * hd, d), (d, h * hd))]
    k = common.kv_cache_tensor(torch.empty(1), (B, g, pos + 1, hd))
    v = common.kv_cache_tensor(torch.empty(1), (B, g, pos + 1, hd))
    x = torch.randn(B, 1, d)
    none = [None] * 4
    with torch.no_grad():
        assert cdecode.gqa_step(x, w, none, None, k, v, pos, h, 0.3) is not None  # the sizes it takes
        for i in range(4):
            short = list(w)
            short[i] = w[i][:-1]  # one output row fewer
            assert cdecode.gqa_step(x, short, none, None, k, v, pos, h, 0.3) is None
        assert cdecode.gqa_step(x, w, [torch.zeros(3), None, None, None], None, k, v, pos, h, 0.3) is None
        assert cdecode.gqa_step(x, w, none, None, k, v[:, :, :pos], pos, h, 0.3) is None
        assert cdecode.gqa_step(x, w, none, Rope(10, 1e4), k, v, pos, h, 0.3) is None  # wider than a head
