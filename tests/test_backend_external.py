"""Optional GPU libraries as backends (variants/external.py): flash_attn, flashinfer, xformers.

None is installed here and none runs on the CPU, so the tests check (1) the one-line "not installed"
exit 2 of each, (2) the CUDA-only refusal, and (3) attncli's calls into each library against fakes
written from the library's documented conventions (layouts, bottom-right causal alignment, window
bounds, ALiBi), run on the CPU in float64 and compared with the plain-math path."""

import importlib.util
import math
import sys
import types

import pytest
import torch

from attncli import presets
from attncli.variants import external
from conftest import TINY

NAMES = ["flash_attn", "flashinfer", "xformers"]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("name", NAMES)
def test_a_library_that_is_not_installed_is_one_line_exit_2(cli, name):
    if installed(name):
        pytest.skip(f"{name} is installed here: its 'not installed' message cannot be shown")
    r = cli("bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu", "--min-time", "0", "--backend", name)
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    module, package, what = external.LIBRARIES[name]
    assert r.err.startswith(f"attncli: --backend: {name} is not installed ({what}: pip install {package}; ")


def dense(q, k, v, scale, keep, bias=None, cap=None):
    """(B, T, H, D) layout, as the libraries take it: GQA by repeating KV heads."""
    h, g = q.shape[2], k.shape[2]
    k, v = k.repeat_interleave(h // g, 2), v.repeat_interleave(h // g, 2)
    s = torch.einsum("bthd,bshd->bhts", q, k) * scale
    if cap:
        s = cap * torch.tanh(s / cap)
    if bias is not None:
        s = s + bias
    s = s.masked_fill(~keep, float("-inf"))
    return torch.einsum("bhts,bshd->bthd", torch.softmax(s, -1), v)


def bottom_right(T, S):
    """Query i sits at position i + S − T, key j at j (the libraries' alignment)."""
    return torch.arange(T)[:, None] + S - T, torch.arange(S)[None, :]


def fake_flash_attn():
    def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                        alibi_slopes=None, deterministic=False, return_attn_probs=False):  # fmt: skip
        T, S = q.shape[1], k.shape[1]
        i, j = bottom_right(T, S)
        keep = torch.ones(T, S, dtype=torch.bool)
        if causal:
            keep &= j <= i
        left, right = window_size
        if left >= 0:
            keep &= j >= i - left
        if right >= 0:
            keep &= j <= i + right
        bias = None if alibi_slopes is None else -alibi_slopes.view(-1, 1, 1).to(q.dtype) * (i - j).abs()
        scale = softmax_scale or 1 / math.sqrt(q.shape[-1])
        return dense(q, k, v, scale, keep, bias, softcap or None)

    return {"flash_attn": types.SimpleNamespace(flash_attn_func=flash_attn_func)}


def fake_flashinfer():
    def single_prefill_with_kv_cache(q, k, v, causal=False, kv_layout="NHD", sm_scale=None, window_left=-1,
                                     logits_soft_cap=None):  # fmt: skip
        assert kv_layout == "NHD" and q.dim() == 3
        T, S = q.shape[0], k.shape[0]
        i, j = bottom_right(T, S)
        keep = torch.ones(T, S, dtype=torch.bool)
        if causal:
            keep &= j <= i
        if window_left >= 0:
            keep &= j >= i - window_left
        return dense(q[None], k[None], v[None], sm_scale, keep, cap=logits_soft_cap)[0]

    return {"flashinfer": types.SimpleNamespace(single_prefill_with_kv_cache=single_prefill_with_kv_cache)}


def fake_xformers():
    class LowerTriangularFromBottomRightMask:
        window = None

    class LowerTriangularFromBottomRightLocalAttentionMask:
        def __init__(self, window):  # the query and the window − 1 keys before it
            self.window = window

    def memory_efficient_attention(q, k, v, attn_bias=None, p=0.0, scale=None):
        B, T, G, Hg, D = q.shape
        S = k.shape[1]
        flat = lambda x: x.reshape(B, x.shape[1], G * Hg, x.shape[-1])  # noqa: E731
        i, j = bottom_right(T, S)
        keep = torch.ones(T, S, dtype=torch.bool)
        if attn_bias is not None:
            keep &= j <= i
            if attn_bias.window is not None:
                keep &= i - j < attn_bias.window
        return dense(flat(q), flat(k), flat(v), scale, keep).reshape(B, T, G, Hg, v.shape[-1])

    bias = types.SimpleNamespace(LowerTriangularFromBottomRightMask=LowerTriangularFromBottomRightMask,
                                 LowerTriangularFromBottomRightLocalAttentionMask=LowerTriangularFromBottomRightLocalAttentionMask)  # fmt: skip
    ops = types.SimpleNamespace(memory_efficient_attention=memory_efficient_attention,
                                fmha=types.SimpleNamespace(attn_bias=bias))  # fmt: skip
    return {"xformers": types.ModuleType("xformers"), "xformers.ops": ops}


FAKES = {"flash_attn": fake_flash_attn, "flashinfer": fake_flashinfer, "xformers": fake_xformers}
CASES = {  # what each library is asked to run
    "flash_attn": ["mha", "gqa", "swa:window=5", "gqa:position=alibi", "gqa:softcap=0.5", "mqa:causal=false"],
    "flashinfer": ["gqa", "swa:window=5", "gqa:softcap=0.5,window=3"],
    "xformers": ["mha", "gqa", "swa:window=5"],
}


@pytest.mark.parametrize("name,variant", [(n, v) for n in NAMES for v in CASES[n]])
@torch.no_grad()
def test_calls_follow_each_librarys_conventions(name, variant, monkeypatch):
    for module, fake in FAKES[name]().items():
        monkeypatch.setitem(sys.modules, module, fake)
    spec = presets.parse_variant(variant, TINY)
    torch.manual_seed(0)
    m = presets.registry.get(spec.family).build(spec).double()
    x = torch.randn(2, 19, TINY.d_model, dtype=torch.float64)
    with external.use(name):
        calls = external.calls()
        y = m(x)[0]
        cache = m.allocate_cache(2, 19)
        m.fill_cache(cache, x[:, :18])
        step = m.step(x[:, 18:], cache, 18)
        assert external.calls() - calls == 2
    torch.testing.assert_close(y, m(x, math=True)[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(step, m.step(x[:, 18:], cache, 18, math=True), rtol=1e-10, atol=1e-10)


def test_gpu_libraries_refuse_the_cpu_and_what_they_cannot_say(cli, monkeypatch):
    for module, fake in fake_flashinfer().items():
        monkeypatch.setitem(sys.modules, module, fake)
    r = cli("bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu", "--min-time", "0", "--backend", "flashinfer")
    assert (r.code, r.err) == (2, "attncli: --backend: flashinfer runs on CUDA GPUs only, not on cpu; "
                                  "use --backend auto or flex\n")  # fmt: skip
    spec = presets.parse_variant("gqa:position=alibi", TINY)
    m = presets.registry.get(spec.family).build(spec)
    with external.use("flashinfer"), pytest.raises(Exception, match="flashinfer cannot run ALiBi"):
        m(torch.randn(1, 4, TINY.d_model))
