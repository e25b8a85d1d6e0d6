"""Cross-attention: K/V from an encoder memory, computed once; the cache never grows in decode."""

import pytest
import torch

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.rows import analytic_row, kv_row
from attncli.spec import DTYPE_BYTES, Shape
from conftest import TINY, counted

SMALL = presets.load_preset("small")


def build(variant="cross:memory_len=7", batch=2):
    spec = presets.parse_variant(variant, TINY)
    torch.manual_seed(0)
    m = presets.registry.get("cross").build(spec).double()
    m.set_memory(torch.randn(batch, spec.memory_len, TINY.d_model, dtype=torch.float64))
    return spec, m



def test_acceptance_4_cache_bytes_constant_while_decoding():
    spec, m = build()
    x = torch.randn(2, 12, TINY.d_model, dtype=torch.float64)
    y_prefill, _ = m(x)
    cache = m.allocate_cache(2, capacity=4)
    m.fill_cache(cache, x[:, :4])
    k_before, v_before = cache.k.clone(), cache.v.clone()
    sizes = set()
    for pos in range(4, 12):
        y = m.step(x[:, pos : pos + 1], cache, pos)
        sizes.add(cache.nbytes)
        torch.testing.assert_close(y, y_prefill[:, pos : pos + 1])  # no mask: a token's output is its own
    # 7 memory tokens × (key + value) × 4 heads × 8 × 8 bytes × 2 sequences, at every step
    assert sizes == {7 * 2 * 4 * 8 * 8 * 2}
    assert torch.equal(cache.k, k_before) and torch.equal(cache.v, v_before)  # read, never written


@pytest.mark.parametrize("variant", ["cross:memory_len=7", "cross:memory_len=5,n_kv_heads=2"])
def test_flops_equal_flop_counter_on_math_path(variant):
    spec, m = build(variant)
    x = torch.randn(2, 9, TINY.d_model, dtype=torch.float64)
    prefill = analytic_row(spec, TINY, Shape("prefill", 9, 2), 1, "float64")
    assert counted(lambda: m(x, math=True)) == prefill["flops"]
    cache = m.allocate_cache(2, 10)
    m.fill_cache(cache, x)
    decode = analytic_row(spec, TINY, Shape("decode", 9, 2), 1, "float64")
    assert counted(lambda: m.step(x[:, :1], cache, 9, math=True)) == decode["flops"]
    # The one-off K/V projection of the memory is prefill work only, and reported on its own.
    memory = 2 * 2 * spec.memory_len * TINY.d_model * spec.n_kv_heads * 8 * 2  # K and V, 2 sequences
    assert prefill["memory_proj_flops"] == decode["memory_proj_flops"] == memory
    assert prefill["flops"] - memory == 9 * decode["flops"]  # per decoder token, the same work
    assert counted(lambda: m.fill_cache(cache, x)) == memory


def test_kv_bytes_are_the_memory_whatever_the_sequence_length():
    spec = presets.parse_variant("cross", SMALL)
    assert spec.memory_len == 1500 and spec.n_kv_heads == 8 and not spec.causal and spec.position == "none"
    rows = [kv_row(spec, SMALL, L, 3, 6, "bfloat16") for L in (1, 1024, 100_000)]
    assert {r["kv_cache_bytes"] for r in rows} == {1500 * 2 * 8 * 64 * 2 * 6 * 3}
    assert {r["cache_tokens"] for r in rows} == {1500}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_allocated_nbytes_equal_analytic(mode, dtype):
    spec, m = build("cross:memory_len=7,n_kv_heads=2")
    m = m.to(getattr(torch, dtype))
    m.set_memory(m.memory.to(getattr(torch, dtype)))
    x = torch.randn(2, 5, TINY.d_model, dtype=getattr(torch, dtype))
    if mode == "prefill":
        _, cache = m(x)
    else:
        cache = m.allocate_cache(2, 5)
        m.fill_cache(cache, x[:, :4])
        m.step(x[:, 4:], cache, 4)
    expected = analytic_row(spec, TINY, Shape(mode, 4 if mode == "decode" else 5, 2), 1, dtype)["kv_cache_bytes"]
    assert cache.nbytes == expected == 7 * 2 * 2 * 8 * DTYPE_BYTES[dtype] * 2


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_fp32_fast_path_within_1e5_of_float64_with_a_seeded_memory(mode):
    spec = presets.parse_variant("cross:memory_len=300,n_kv_heads=2", SMALL)
    settings = Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0)
    row = measure_row(spec, SMALL, Shape(mode, 64), settings)
    assert row["status"] == "ok"
    assert row["err_rel_l2"] <= 1e-5 and row["naive_err_rel_l2"] <= 1e-5
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"] == 300 * 2 * 2 * 64 * 4
    again = measure_row(spec, SMALL, Shape(mode, 64), settings)
    assert again["err_max_abs"] == row["err_max_abs"]  # the memory is drawn from the seed


def test_memory_must_be_set_and_shaped():
    spec = presets.parse_variant("cross:memory_len=7", TINY)
    m = presets.registry.get("cross").build(spec)
    with pytest.raises(RuntimeError, match="set_memory"):
        m(torch.randn(1, 3, TINY.d_model))
    with pytest.raises(ValueError, match=r"memory must be \(batch, 7, 32\)"):
        m.set_memory(torch.randn(1, 6, TINY.d_model))


@pytest.mark.parametrize("override,message", [
    ("causal=true", "causal: cross-attention sees the whole encoder memory; causal must be false"),
    ("window=8", "window: cross-attention takes no sliding window"),
    ("memory_len=0", "memory_len: 0 must be positive"),
])  # fmt: skip
def test_bad_cross_fields_are_one_line_exit_2(cli, override, message):
    r = cli("kv-memory", f"cross:{override}")
    assert r.code == 2
    assert r.err == f"attncli: cross:{override}: {message}\n"
