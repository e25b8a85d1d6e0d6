"""The C decode kernel (variants/cdecode.py, decode_kernel.c): GQA decode in one pass over the CPU
cache. Its output is checked against softmax(q·Kᵀ·scale)·V computed here in float64, and held to
the error criterion every fast path meets: at most twice the float32 plain-math path's error. Its
build is checked where it can go wrong: no compiler, a compiler that fails, a kernel that computes
the wrong thing, two runs building into one folder at once."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from attncli.variants import cdecode, common



@pytest.fixture
def kernel():
    """Skips where the kernel cannot be built here (no compiler, no AVX2/FMA), saying why; a kernel
    that builds and then fails its self-check is a failure, not a skip."""
    why = cdecode.unavailable()
    if why is not None and why.startswith("self-check failed"):
        pytest.fail(why)
    if why is not None:
        pytest.skip(f"the decode kernel is not available here: {why}")


def _cache_layout(B, g, S, d, gen, spare=3):
    """(B, g, S, d) keys or values stored as (B, g, d, slots), as common.kv_cache_tensor lays them out."""
    return torch.randn(B, g, d, S + spare, generator=gen).transpose(2, 3)[:, :, :S]


def _problem(B, g, r, hd, S, dv=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, g * r, 1, hd, generator=gen)
    return q, _cache_layout(B, g, S, hd, gen), _cache_layout(B, g, S, dv or hd, gen)


def _reference(q, k, v, scale):
    """softmax(q·Kᵀ·scale)·V in float64, query head i reading KV head i // r."""
    B, h, _, hd = q.shape
    g = k.shape[1]
    qq = q.double().reshape(B, g, h // g, hd)
    w = torch.softmax(qq @ k.double().transpose(2, 3) * scale, dim=-1)  # (B, g, r, S)
    return (w @ v.double()).reshape(B, h, 1, v.shape[-1])


def _rel(x, ref):
    return ((x.double() - ref).norm() / ref.norm()).item()


SHAPES = [  # (B, g, r, hd, S, dv): 16-key tiles, 4-row groups, passes of 8/16/32 head dims, odd dims
    (4, 4, 4, 64, 1, None),
    (1, 2, 4, 64, 15, None),
    (2, 2, 4, 64, 16, None),
    (1, 1, 2, 64, 17, None),
    (2, 3, 3, 33, 511, None),
    (1, 2, 5, 64, 512, None),
    (2, 1, 16, 64, 513, None),
    (1, 2, 8, 128, 1030, None),
    (1, 2, 4, 8, 2049, None),
    (2, 2, 4, 64, 700, 48),  # values narrower than keys
    (1, 1, 6, 40, 300, 72),  # and wider
    # blocks longer than 1,024 tokens: the scores in passes of 8 head dims (r <= 4), 16 (r <= 8), 32
    (1, 1, 4, 64, 1100, None),
    (1, 1, 3, 33, 1500, None),  # passes of 8, 8, 8, 8, 1
    (1, 1, 6, 40, 1200, 72),  # 16, 16, 8
    (1, 1, 16, 64, 1057, None),
]


@pytest.mark.parametrize("block", [0, 64, 1040], ids=["own-blocks", "blocks-of-64", "blocks-of-1040"])  # ragged ends
@pytest.mark.parametrize("B,g,r,hd,S,dv", SHAPES)
def test_the_kernel_matches_float64_within_twice_the_math_paths_error(kernel, B, g, r, hd, S, dv, block):
    q, k, v = _problem(B, g, r, hd, S, dv)
    scale = hd**-0.5
    calls = cdecode.calls()
    out = cdecode.attention(q, k, v, scale, block=block)
    assert out is not None and cdecode.calls() == calls + 1
    assert out.shape == (B, g * r, 1, dv or hd)
    ref = _reference(q, k, v, scale)
    math = common.math_attention(q, k, v, causal=False, scale=scale)  # float32 explicit scores
    err, math_err = _rel(out, ref), _rel(math, ref)
    assert err <= 2 * max(math_err, 2**-24), (err, math_err)  # 2**-24: float32's rounding unit


def test_a_large_score_range_stays_finite_and_exact(kernel):
    """Scores spanning ±80 (the first block of 512 far below a later one): the online softmax
    rescales the running sums by e^(m_old − m_new) instead of overflowing or dropping the early block."""
    q, k, v = _problem(1, 2, 4, 64, 1500)
    k = k.clone()
    k[:, :, :512] *= 0.01  # block 0's scores near 0
    k[:, :, 1024:] *= 6.0  # block 2's up to tens
    ref = _reference(q, k, v, 1.0)
    out = cdecode.attention(q, k, v, 1.0, block=512)
    math = common.math_attention(q, k, v, causal=False, scale=1.0)
    assert torch.isfinite(out).all()
    assert _rel(out, ref) <= 2 * max(_rel(math, ref), 2**-24)


def test_layouts_and_cases_it_does_not_take_return_none():
    q, k, v = _problem(1, 2, 4, 16, 9)
    assert cdecode.attention(q, k.contiguous(), v, 0.25) is None  # token-major keys: the BLAS path
    assert cdecode.attention(q.double(), k.double(), v.double(), 0.25) is None  # float64
    qq, kk, vv = _problem(1, 4, 1, 16, 9)
    assert cdecode.attention(qq, kk, vv, 0.25) is None  # one row per KV head (MHA): the BLAS gemv


def test_decode_attention_runs_the_kernel_for_grouped_heads_and_not_under_alibi(kernel):
    q, k, v = _problem(2, 2, 4, 16, 40)
    calls, gemv = cdecode.calls(), common.decode_calls()
    out = common.decode_attention(q, k, v, q_pos=40)
    assert (cdecode.calls(), common.decode_calls()) == (calls + 1, gemv)
    torch.testing.assert_close(out.double(), _reference(q, k, v, 16**-0.5), rtol=0, atol=1e-6)
    common.decode_attention(q, k, v, q_pos=40, alibi=torch.ones(8))  # the kernel has no bias: gemv
    assert (cdecode.calls(), common.decode_calls()) == (calls + 1, gemv + 1)


def test_bench_names_the_kernel_in_backend_used(kernel, cli):
    r = cli("bench", "gqa", "-p", "micro", "-s", "32", "-m", "decode", "--device", "cpu", "--dtype", "float32",
            "--min-time", "0", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    (row,) = r.rows()
    assert row["backend_used"] == "avx2"
    assert row["err_rel_l2"] <= 1e-5


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process that has not tried the kernel yet, building into an empty folder."""
    monkeypatch.setattr(cdecode, "_state", {"lib": None, "why": None, "tried": False, "calls": 0, "linear_calls": 0,
                                         "step_calls": 0})
    monkeypatch.setenv("ATTNCLI_KERNEL_DIR", str(tmp_path / "kernels"))
    return tmp_path


def _script(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def test_without_a_compiler_decode_takes_the_blas_path_and_says_why(fresh, monkeypatch):
    if cdecode._why_not_here():
        pytest.skip(cdecode._why_not_here())
    monkeypatch.setenv("CC", str(fresh / "no-such-cc"))
    assert cdecode.unavailable() == "no C compiler found (set CC)"
    q, k, v = _problem(1, 2, 4, 16, 9)
    gemv = common.decode_calls()
    out = common.decode_attention(q, k, v, q_pos=9)
    assert common.decode_calls() == gemv + 1
    torch.testing.assert_close(out.double(), _reference(q, k, v, 0.25), rtol=0, atol=1e-6)


def test_a_compiler_that_fails_is_named_with_its_error_and_leaves_no_file(fresh, monkeypatch):
    if cdecode._why_not_here():
        pytest.skip(cdecode._why_not_here())
    monkeypatch.setenv("CC", _script(fresh, "broken-cc", 'echo "decode_kernel.c:1: error: out of luck" >&2; exit 1\n'))
    assert cdecode.unavailable() == "not built: broken-cc failed: decode_kernel.c:1: error: out of luck"
    assert list((fresh / "kernels").iterdir()) == []  # the temporary output is removed


def test_a_built_file_that_cannot_be_loaded_is_named(fresh, monkeypatch):
    if cdecode._why_not_here() or cdecode._compiler() is None:
        pytest.skip(cdecode._why_not_here() or "no C compiler")
    junk = fresh / "decode-junk.so"
    junk.write_bytes(b"not a shared object")
    monkeypatch.setattr(cdecode, "_build", lambda cc: junk)
    why = cdecode.unavailable()
    assert why is not None and why.startswith(f"not loaded: {junk}"), why


def test_ATTNCLI_DECODE_KERNEL_0_turns_it_off(fresh, monkeypatch):
    monkeypatch.setenv("ATTNCLI_DECODE_KERNEL", "0")
    assert cdecode.unavailable() == "ATTNCLI_DECODE_KERNEL=0"
    assert cdecode.attention(*_problem(1, 2, 4, 16, 9), 0.25) is None


def test_a_kernel_that_computes_the_wrong_thing_fails_its_self_check(kernel, fresh, monkeypatch):
    """A source whose softmax sums are doubled (every output halved) builds and loads, and is refused."""
    source = cdecode.SOURCE.read_text()
    assert source.count("w->l[i] += sum;") == 1
    wrong = fresh / "decode_kernel.c"
    wrong.write_text(source.replace("w->l[i] += sum;", "w->l[i] += 2 * sum;"))
    monkeypatch.setattr(cdecode, "SOURCE", wrong)
    why = cdecode.unavailable()
    assert why is not None and why.startswith("self-check failed (relative error 5.0e-01"), why
    assert cdecode.attention(*_problem(1, 2, 4, 16, 9), 0.25) is None


def test_a_built_kernel_is_loaded_again_without_compiling(kernel, fresh, monkeypatch):
    assert cdecode.unavailable() is None
    (built,) = (fresh / "kernels").glob("decode-*.so")
    monkeypatch.setattr(cdecode, "_state", {"lib": None, "why": None, "tried": False, "calls": 0, "linear_calls": 0,
                                         "step_calls": 0})

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(cdecode.subprocess, "run", no_compiling)
    assert cdecode.unavailable() is None
    assert list((fresh / "kernels").iterdir()) == [built]


def test_two_runs_building_into_one_folder_at_once_both_load_it(kernel, fresh):
    env = {**os.environ, "ATTNCLI_KERNEL_DIR": str(fresh / "kernels")}
    code = "from attncli.variants import cdecode; print(cdecode.unavailable())"
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    assert [p.communicate(timeout=120)[0].strip() for p in runs] == ["None", "None"]
    assert [p.name for p in (fresh / "kernels").iterdir()] == [cdecode._build(cdecode._compiler()).name]


@pytest.mark.parametrize("rows,n_in,n_out", [(3, 1024, 256), (4, 1024, 1024), (5, 37, 7), (8, 8, 9), (3, 100, 1)])
def test_linear_matches_float64_within_twice_the_blas_products_error(kernel, rows, n_in, n_out):
    """cdecode.linear (the few-row projections of a decode step): every output against float64,
    held to twice the error of the BLAS product it replaces; rows of x spaced wider than `in`."""
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, n_in + 5, generator=gen)[:, :n_in]  # row stride n_in + 5
    w = torch.randn(n_out, n_in, generator=gen)
    calls = cdecode.linear_calls()
    with torch.no_grad():
        y = cdecode.linear(x, w)
    assert y is not None and y.shape == (rows, n_out) and cdecode.linear_calls() == calls + 1
    ref = x.double() @ w.double().t()
    blas = torch.matmul(w, x.t()).t()
    assert _rel(y, ref) <= 2 * max(_rel(blas, ref), 2**-24), (_rel(y, ref), _rel(blas, ref))


def test_projection_takes_linear_for_few_rows_without_gradients_and_the_blas_with_them(kernel):
    torch.manual_seed(0)
    proj = common.Projection(64, 48, bias=True)
    x = torch.randn(4, 1, 64)
    ref = x.double() @ proj.weight.double().t() + proj.bias.double()
    calls = cdecode.linear_calls()
    with torch.inference_mode():
        y = proj(x)
    assert cdecode.linear_calls() == calls + 1 and y.shape == (4, 1, 48)
    assert _rel(y, ref) <= 1e-6
    y = proj(x)  # the weight asks for its gradient: the BLAS product, which autograd can follow
    assert cdecode.linear_calls() == calls + 1 and y.requires_grad
    y.sum().backward()
    torch.testing.assert_close(proj.weight.grad, x.reshape(4, 64).sum(0).expand(48, 64))
    with torch.no_grad():
        assert cdecode.linear(torch.randn(1, 64), proj.weight) is None  # one row: F.linear's gemv
        assert cdecode.linear(torch.randn(2, 64), proj.weight) is None  # two: W·xᵀ measured as fast
        assert cdecode.linear(torch.randn(9, 64), proj.weight) is None  # 9 or more: the BLAS product
        assert cdecode.linear(torch.randn(4, 64).double(), proj.weight.double()) is None


def test_under_flop_counter_mode_the_products_are_aten_ops_it_counts(kernel):
    """--verify-flops counts the math path's aten ops with FlopCounterMode; a C call makes none, so
    under any dispatch mode both kernels step aside and the BLAS products are counted."""
    from torch.utils.flop_counter import FlopCounterMode

    proj = common.Projection(64, 48, bias=False)
    x = torch.randn(4, 1, 64)
    q, k, v = _problem(1, 2, 4, 16, 9)
    calls, linear = cdecode.calls(), cdecode.linear_calls()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        proj(x)
        assert cdecode.attention(q, k, v, 0.25) is None
    assert (cdecode.calls(), cdecode.linear_calls()) == (calls, linear)
    assert counter.get_total_flops() == 2 * 4 * 64 * 48


@pytest.mark.parametrize("columns", ["80", "100", "120"])
def test_rows_and_caption_say_why_the_kernel_is_off(fresh, monkeypatch, cli, columns):
    """Where the kernel cannot run, a grouped decode row says why in `decode_kernel_off` and the
    caption says it whole at 80-120 columns; MHA (one row per KV head) never takes it, so says nothing."""
    monkeypatch.setenv("ATTNCLI_DECODE_KERNEL", "0")
    monkeypatch.setenv("COLUMNS", columns)
    args = ("bench", "gqa", "mha", "-p", "micro", "-s", "32", "-b", "2", "-m", "decode", "--device", "cpu",
            "--dtype", "float32", "--min-time", "0")  # fmt: skip
    r = cli(*args, "--json", "-")
    assert r.code == 0, r.err
    gqa, mha = r.rows()
    assert (gqa["backend_used"], gqa["decode_kernel_off"]) == ("gemv", "ATTNCLI_DECODE_KERNEL=0")
    assert (mha["backend_used"], mha["decode_kernel_off"]) == ("gemv", None)
    shown = cli(*args)
    assert shown.code == 0, shown.err
    text = " ".join(shown.out.split())  # the caption wraps at the terminal's width; its words stay whole
    assert f"the C decode kernel (avx2) is off here (ATTNCLI_DECODE_KERNEL=0): {gqa['label']} ran the BLAS gemv" in text


def test_no_reason_where_the_kernel_ran(kernel, cli):
    r = cli("bench", "gqa", "-p", "micro", "-s", "32", "-b", "2", "-m", "decode", "--device", "cpu",
            "--min-time", "0", "--json", "-")  # fmt: skip
    (row,) = r.rows()
    assert (row["backend_used"], row["decode_kernel_off"]) == ("avx2", None)
