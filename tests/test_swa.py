"""Sliding-window attention (`swa`, or `window` on any MHA/GQA/MQA variant): pairs, FLOPs, ring cache."""

import pytest
import torch

from attncli import cost, presets
from attncli.measure.bench import Settings, measure_row
from attncli.rows import analytic_row, kv_row
from attncli.spec import DTYPE_BYTES, Shape
from conftest import TINY, counted

SMALL = presets.load_preset("small")
CPU32 = Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0)


def build(variant, preset=TINY):
    spec = presets.parse_variant(variant, preset)
    torch.manual_seed(0)
    return spec, presets.registry.get(spec.family).build(spec).double()



@pytest.mark.parametrize("seq_len,expected", [(1024, 524_288), (128, 262_144)])
def test_acceptance_1_kv_memory_cli(cli, seq_len, expected):
    r = cli("kv-memory", "swa:window=256", "-p", "small", "-s", seq_len, "--layers", 1, "--dtype", "float16",
            "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    # min(seq_len, 256) tokens × (key + value) × 8 KV heads × 64 × 2 bytes
    assert r.rows()[0]["kv_cache_bytes"] == min(seq_len, 256) * 2 * 8 * 64 * 2 == expected


@pytest.mark.parametrize("n", [1, 5, 9, 30])
@pytest.mark.parametrize("window", [1, 4, 9, 50])
def test_pair_counts_equal_brute_force(n, window):
    causal = sum(1 for i in range(n) for j in range(n) if i - window < j <= i)
    both_sides = sum(1 for i in range(n) for j in range(n) if abs(i - j) < window)
    assert cost.query_key_pairs(Shape("prefill", n), True, window) == causal
    assert cost.query_key_pairs(Shape("prefill", n), False, window) == both_sides
    assert cost.query_key_pairs(Shape("decode", n), True, window) == min(n + 1, window)


def test_swa_is_mha_with_a_window_and_the_window_composes_with_any_sharing():
    assert presets.parse_variant("swa", SMALL).n_kv_heads == 8 and presets.parse_variant("swa", SMALL).window == 1024
    gqa = presets.parse_variant("gqa:window=4096", SMALL)
    assert (gqa.label, gqa.n_kv_heads, gqa.window) == ("gqa-kv2-w4096", 2, 4096)
    mqa = presets.parse_variant("mqa:causal=false,window=64", SMALL)
    n = 256
    row = analytic_row(mqa, SMALL, Shape("prefill", n), 1, "bfloat16")
    pairs = sum(min(i, 63) + min(n - 1 - i, 63) + 1 for i in range(n))  # |i − j| < 64
    assert row["attn_flops"] == 4 * pairs * 8 * 64


@pytest.mark.parametrize("variant", ["swa:window=5", "gqa:window=3", "mqa:causal=false,window=4",
                                     "swa:window=6,position=alibi", "swa:window=20"])  # fmt: skip
def test_prefill_flops_equal_flop_counter_on_math_path(variant, monkeypatch):
    # One query per block: the math path then scores exactly the band the analytic count describes.
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 1)
    spec, module = build(variant)
    x = torch.randn(2, 12, TINY.d_model, dtype=torch.float64)
    assert counted(lambda: module(x, math=True)) == analytic_row(spec, TINY, Shape("prefill", 12, 2), 1, "float64")["flops"]


@pytest.mark.parametrize("variant", ["swa:window=5", "gqa:window=16,position=alibi"])
@pytest.mark.parametrize("L", [3, 11])
def test_decode_flops_equal_flop_counter_on_math_path(variant, L):
    spec, module = build(variant)
    x = torch.randn(2, L + 1, TINY.d_model, dtype=torch.float64)
    cache = module.allocate_cache(2, L + 1)
    module.fill_cache(cache, x[:, :L])
    measured = counted(lambda: module.step(x[:, L:], cache, L, math=True))
    assert measured == analytic_row(spec, TINY, Shape("decode", L, 2), 1, "float64")["flops"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("mode,L", [("prefill", 4), ("prefill", 10), ("decode", 3), ("decode", 10)])
def test_cache_holds_at_most_window_tokens_and_nbytes_equal_analytic(mode, L, dtype):
    spec, m = build("swa:window=6")
    m = m.to(getattr(torch, dtype))
    x = torch.randn(2, L + 1, TINY.d_model, dtype=getattr(torch, dtype))
    if mode == "prefill":
        _, cache = m(x[:, :L])
    else:
        cache = m.allocate_cache(2, L + 1)
        m.fill_cache(cache, x[:, :L])
        m.step(x[:, L:], cache, L)
    tokens = min(L + (mode == "decode"), 6)
    row = analytic_row(spec, TINY, Shape(mode, L, 2), 1, dtype)
    assert row["cache_tokens"] == tokens
    assert cache.nbytes == row["kv_cache_bytes"] == 2 * tokens * 2 * 4 * 8 * DTYPE_BYTES[dtype]


@pytest.mark.parametrize("variant,kv_heads,mode", [("swa:window=6", 4, "decode"),
                                                   ("gqa:window=6,position=alibi", 2, "prefill"),
                                                   ("mqa:window=6,causal=false", 1, "decode")])  # fmt: skip
def test_measured_cache_column_equals_analytic_past_the_window(variant, kv_heads, mode):
    row = measure_row(presets.parse_variant(variant, TINY), TINY, Shape(mode, 10, 2),
                      Settings(device=torch.device("cpu"), dtype="bfloat16", min_run_time=0))  # fmt: skip
    # 6 tokens × (key + value) × KV heads × 8 × 2 bytes × 2 sequences, whatever the sharing
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"] == 6 * 2 * kv_heads * 8 * 2 * 2
    assert row["cache_tokens"] == 6


def test_decoding_through_the_ring_buffer_equals_prefill():
    """17 decode steps through a 5-slot ring (it wraps three times) give the prefill's outputs."""
    spec, m = build("swa:window=5")
    x = torch.randn(2, 20, TINY.d_model, dtype=torch.float64)
    y_prefill, _ = m(x, math=True)
    cache = m.allocate_cache(2, 20)
    assert cache.k.shape[2] == 5
    bytes_before = cache.nbytes
    m.fill_cache(cache, x[:, :3])
    for pos in range(3, 20):
        for math in (False, True):
            torch.testing.assert_close(m.step(x[:, pos : pos + 1], cache, pos, math=math), y_prefill[:, pos : pos + 1])
    assert cache.nbytes == bytes_before == kv_row(spec, TINY, 20, 2, 1, "float64")["kv_cache_bytes"]


@pytest.mark.parametrize("causal", [True, False])
def test_math_path_equals_a_per_query_loop(causal):
    """One head, no position: query i attends by hand to keys with i−W < j ≤ i (|i−j| < W if bidirectional)."""
    one = presets.PresetSpec(name="one", d_model=8, n_heads=1)
    _, m = build(f"swa:window=3,position=none,causal={str(causal).lower()}", one)
    x = torch.randn(1, 9, 8, dtype=torch.float64)
    q, k, v = m.q_proj(x)[0], m.k_proj(x)[0], m.v_proj(x)[0]  # (9, 8)
    rows = []
    for i in range(9):
        keys = [j for j in range(9) if (i - 3 < j <= i if causal else abs(i - j) < 3)]
        weights = torch.softmax(torch.stack([q[i] @ k[j] / 8**0.5 for j in keys]), dim=0)
        rows.append(sum(w * v[j] for w, j in zip(weights, keys)))
    expected = m.o_proj(torch.stack(rows))
    torch.testing.assert_close(m(x, math=True)[0][0], expected)
    torch.testing.assert_close(m(x)[0][0], expected)


def test_window_wider_than_the_sequence_is_plain_causal_attention():
    _, windowed = build("gqa:window=64")
    _, full = build("gqa")
    full.load_state_dict(windowed.state_dict())
    x = torch.randn(2, 13, TINY.d_model, dtype=torch.float64)
    torch.testing.assert_close(windowed(x)[0], full(x)[0])


@pytest.mark.parametrize("variant,mode", [("swa:window=32", "prefill"), ("swa:window=32", "decode"),
                                          ("gqa:window=48,n_kv_heads=2", "prefill"), ("mqa:causal=false,window=16", "decode")])  # fmt: skip
def test_fp32_fast_path_within_1e5_of_float64(variant, mode):
    row = measure_row(presets.parse_variant(variant, SMALL), SMALL, Shape(mode, 128), CPU32)
    assert row["status"] == "ok"
    assert row["err_rel_l2"] <= 1e-5 and row["naive_err_rel_l2"] <= 1e-5


def test_bad_window_is_one_line_exit_2(cli):
    r = cli("kv-memory", "swa:window=0")
    assert r.code == 2
    assert r.err == "attncli: swa:window=0: window: 0 must be positive\n"
