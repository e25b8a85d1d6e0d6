"""Analytic KV-cache bytes against hand formulas and against the nbytes modules really allocate."""

import pytest
import torch

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.rows import analytic_row, kv_row
from attncli.spec import DTYPE_BYTES, Shape
from conftest import TINY

SMALL = presets.load_preset("small")


@pytest.mark.parametrize("dtype", list(DTYPE_BYTES))
@pytest.mark.parametrize("variant,kv_heads", [("mha", 8), ("mqa", 1), ("gqa", 2), ("gqa:n_kv_heads=4", 4)])
def test_kv_bytes_hand_formula(variant, kv_heads, dtype):
    row = kv_row(presets.parse_variant(variant, SMALL), SMALL, seq_len=1000, batch=3, layers=7, dtype=dtype)
    per_token_per_layer = 2 * kv_heads * 64 * DTYPE_BYTES[dtype]  # a key and a value per KV head
    assert row["kv_bytes_per_token"] == 7 * per_token_per_layer
    assert row["kv_cache_bytes"] == 3 * 1000 * 7 * per_token_per_layer


def test_contract_gqa_small_float16():
    row = kv_row(presets.parse_variant("gqa:n_kv_heads=2", SMALL), SMALL, 1024, 1, 1, "float16")
    assert row["kv_cache_bytes"] == 524_288  # 1024 tokens × 2 × 2 heads × 64 × 2 bytes


def test_large_mha_24_layers_bfloat16():
    large = presets.load_preset("large")
    row = kv_row(presets.parse_variant("mha", large), large, 32768, 1, 24, "bfloat16")
    assert row["kv_cache_bytes"] == 32768 * 24 * 2 * 16 * 64 * 2 == 3 * 2**30


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("variant", ["mha", "mqa", "gqa", "mha:position=none"])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_allocated_cache_nbytes_equal_analytic(variant, dtype, mode):
    spec = presets.parse_variant(variant, TINY)
    shape = Shape(mode, 10, batch=2)
    row = measure_row(spec, TINY, shape, Settings(device=torch.device("cpu"), dtype=dtype, min_run_time=0))
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"]
    assert row["cache_tokens"] == (10 if mode == "prefill" else 11)
    assert row["kv_cache_bytes"] == 2 * 2 * spec.n_kv_heads * 8 * DTYPE_BYTES[dtype] * row["cache_tokens"]


def test_cache_tensors_hold_what_the_analytic_figure_says():
    spec = presets.parse_variant("gqa", TINY)
    module = presets.registry.get("gqa").build(spec).to(torch.bfloat16)
    cache = module.allocate_cache(batch=3, capacity=17)
    assert sum(t.nbytes for t in cache.values()) == cache.nbytes
    assert cache.nbytes == kv_row(spec, TINY, 17, 3, 1, "bfloat16")["kv_cache_bytes"]
    assert cache.k.shape == (3, 2, 17, 8)
