"""`--backend flex` (variants/flex.py): FlexAttention's masks and score mods against the plain-math
path and against dense references written from each mask's definition.

The kernel runs eagerly here (flex's unfused implementation: the same mask_mod, score_mod and
block mask, no C++ build), which keeps this file to a few seconds; the compiled kernel is what
`benchmarks/swa_flex.py` times, and a compile takes 15-60 s on this CPU."""

import math

import pytest
import torch

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
from attncli.variants import common, flex
from conftest import TINY

pytest.importorskip("torch.nn.attention.flex_attention", reason="FlexAttention needs torch >= 2.5")


def qkv(B=2, h=4, g=2, T=40, S=40, dk=8, dv=8, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, h, T, dk, generator=gen, dtype=dtype)
    k = torch.randn(B, g, S, dk, generator=gen, dtype=dtype)
    v = torch.randn(B, g, S, dv, generator=gen, dtype=dtype)
    return q, k, v


def dense(q, k, v, keep, bias=None, cap=None, sink=None):
    """Attention from the definition: keep (T, S) bool, bias (h, T, S), soft-cap c·tanh(s/c), and a
    sink logit per head that joins every softmax denominator."""
    h, g = q.shape[1], k.shape[1]
    k, v = k.repeat_interleave(h // g, 1), v.repeat_interleave(h // g, 1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, S)
    if cap is not None:
        s = cap * torch.tanh(s / cap)
    if bias is not None:
        s = s + bias
    s = s.masked_fill(~keep, float("-inf"))
    if sink is not None:
        col = sink.view(1, h, 1, 1).expand(*s.shape[:3], 1)
        p = torch.softmax(torch.cat([s, col], -1), -1)[..., :-1]  # the sink's column takes weight, gives none
    else:
        p = torch.softmax(s, -1)
    return p @ v


def positions(T, S, q_offset=0):
    return torch.arange(T)[:, None] + q_offset, torch.arange(S)[None, :]


@pytest.mark.parametrize("causal,window", [(True, None), (True, 1), (False, 7), (True, 64)])
def test_causal_and_window_equal_math_path(causal, window):
    q, k, v = qkv()
    got = flex.attend(q, k, v, causal=causal, window=window, eager=True)
    want = common.math_attention(q, k, v, causal=causal, window=window)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window", [None, 9])
def test_alibi_equals_math_path(window):
    q, k, v = qkv(h=8, g=8)
    slopes = torch.tensor(common.alibi_slopes(8), dtype=torch.float64)
    got = flex.attend(q, k, v, causal=True, window=window, alibi=slopes, eager=True)
    want = common.math_attention(q, k, v, causal=True, window=window, alibi=slopes)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_chunked_and_document_masks_equal_their_definitions():
    q, k, v = qkv(T=30, S=30)
    i, j = positions(30, 30)
    got = flex.attend(q, k, v, causal=True, chunk=8, eager=True)
    torch.testing.assert_close(got, dense(q, k, v, (j <= i) & (i // 8 == j // 8)), rtol=1e-10, atol=1e-10)
    docs = torch.tensor([0] * 5 + [1] * 12 + [2] * 13)  # three packed documents
    got = flex.attend(q, k, v, causal=True, doc_ids=docs, eager=True)
    same = docs[:, None] == docs[None, :]
    torch.testing.assert_close(got, dense(q, k, v, (j <= i) & same), rtol=1e-10, atol=1e-10)


def test_softcap_and_sinks_equal_their_definitions():
    q, k, v = qkv(dk=16, dv=16)
    q = q * 4  # scores large enough for the cap to bite
    i, j = positions(40, 40)
    got = flex.attend(q, k, v, causal=True, softcap=5.0, eager=True)
    torch.testing.assert_close(got, dense(q, k, v, j <= i, cap=5.0), rtol=1e-10, atol=1e-10)
    sinks = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    got = flex.attend(q, k, v, causal=True, window=6, sinks=sinks, eager=True)
    torch.testing.assert_close(got, dense(q, k, v, (j <= i) & (i - j < 6), sink=sinks), rtol=1e-10, atol=1e-10)


def test_values_narrower_than_keys_and_a_query_offset():
    q, k, v = qkv(T=1, S=33, dk=16, dv=8)  # one decode query at position 32, MLA-like widths
    got = flex.attend(q, k, v, causal=True, q_offset=32, window=5, eager=True)
    torch.testing.assert_close(got, common.math_attention(q, k, v, causal=True, q_offset=32, window=5),
                               rtol=1e-10, atol=1e-10)  # fmt: skip


@pytest.mark.parametrize("variant", ["gqa", "swa:window=5", "gqa:window=7,position=alibi", "mqa:causal=false,window=4",
                                     "gqa:softcap=0.5,sinks=true,window=6"])  # fmt: skip
@torch.no_grad()  # flex has no backward on the CPU
def test_module_under_flex_equals_its_math_path_prefill_and_ring_decode(variant):
    spec = presets.parse_variant(variant, TINY)
    torch.manual_seed(0)
    m = presets.registry.get(spec.family).build(spec).double()
    if m.sinks is not None:
        m.sinks.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))  # built as zeros: give each head its own logit
    x = torch.randn(2, 19, TINY.d_model, dtype=torch.float64)
    with flex.use_flex(eager=True):
        calls = flex.calls()
        y, _ = m(x)
        torch.testing.assert_close(y, m(x, math=True)[0], rtol=1e-10, atol=1e-10)
        cache = m.allocate_cache(2, 19)
        m.fill_cache(cache, x[:, :18])
        got = m.step(x[:, 18:], cache, 18)
        assert flex.calls() - calls == 2  # both the prefill and the decode step ran flex
    cache = m.allocate_cache(2, 19)
    m.fill_cache(cache, x[:, :18])
    torch.testing.assert_close(got, m.step(x[:, 18:], cache, 18, math=True), rtol=1e-10, atol=1e-10)


@pytest.fixture
def eager_kernel(monkeypatch):
    """measure_row and the CLI compile flex; here its kernel is the eager one (no C++ build)."""
    from torch.nn.attention.flex_attention import flex_attention

    monkeypatch.setattr(flex, "_kernel", lambda eager: flex_attention)


@pytest.mark.parametrize("variant", ["swa:window=8", "gqa:position=alibi"])
def test_bench_rows_with_flex_are_graded_against_the_same_dtype_math_path(variant, eager_kernel):
    spec = presets.parse_variant(variant, TINY)
    settings = Settings(device=torch.device("cpu"), dtype="bfloat16", min_run_time=0, backend="flex")
    for mode in ("prefill", "decode"):
        row = measure_row(spec, TINY, Shape(mode, 24, 2), settings)
        assert (row["backend"], row["backend_used"]) == ("flex", "flex")
        assert row["compile_s"] is not None and row["compile_s"] >= 0
        # FlashAttention's rule: fast error ≤ 2 × the bfloat16 math path's error vs float64.
        assert row["healthy"] is True and row["err_max_abs"] <= 2 * row["naive_err_max_abs"]


def test_cli_flex_rows_say_flex(cli, eager_kernel):
    r = cli("compare", "mha", "swa:window=8", "-p", "micro", "-s", "32", "--device", "cpu", "--dtype", "float32",
            "--min-time", "0", "--backend", "flex", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert [(x["label"], x["backend_used"]) for x in rows] == [("mha", "flex"), ("swa-w8", "flex")]
    assert all(x["err_rel_l2"] < 1e-5 for x in rows)


def test_cli_flex_without_a_compiler_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.setattr(flex, "compiler_problem", lambda: "no C++ compiler for inductor (tried g++)")
    r = cli("bench", "swa", "-p", "micro", "-s", "32", "--device", "cpu", "--min-time", "0", "--backend", "flex")
    assert r.code == 2
    assert r.err == ("attncli: --backend: flex cannot compile on the cpu: no C++ compiler for inductor "
                     "(tried g++); set CXX, or use --backend auto\n")  # fmt: skip


def test_cli_flex_on_a_variant_without_a_flex_form_is_one_line_exit_2(cli, eager_kernel):
    r = cli("bench", "cross", "-p", "micro", "-s", "8", "--device", "cpu", "--min-time", "0", "--backend", "flex")
    assert r.code == 2
    assert r.err.startswith("attncli: --backend: flex cannot run cross") and r.err.count("\n") == 1
