"""Analytic bytes moved, arithmetic intensity and the roofline bound, checked by hand."""

import pytest

from attncli import presets
from attncli.cost import layer_bytes, roofline
from attncli.rows import analytic_row, byte_columns, roofline_columns
from attncli.spec import Shape
from conftest import TINY


def test_layer_bytes_by_hand_gqa_prefill_and_decode():
    # TINY gqa: d_model 32, 4 query heads and 2 KV heads of 8, float32 (4 bytes).
    spec = presets.parse_variant("gqa", TINY)
    prefill = byte_columns(spec, Shape("prefill", 10, batch=2), "float32", layers=1)
    assert prefill["bytes_weights"] == 32 * 8 * (2 * 4 + 2 * 2) * 4 == 12_288  # W_q, W_k, W_v, W_o, read once
    assert prefill["bytes_kv_write"] == 2 * 10 * (2 * 2 * 8) * 4 == 2_560  # the new keys and values
    assert prefill["bytes_kv_read"] == 2_560  # ... read back by the attention kernel
    assert prefill["bytes_activations"] == 2 * 10 * (32 + 32 + 2 * 32 + 2 * 32) * 4 == 15_360  # x, y, q twice, o twice
    assert prefill["bytes_moved"] == 32_768

    decode = byte_columns(spec, Shape("decode", 10, batch=2), "float32", layers=1)
    assert decode["bytes_weights"] == 12_288  # the batch shares the weights
    assert decode["bytes_kv_read"] == 2 * 11 * 32 * 4 == 2_816  # 10 cached tokens and the new one
    assert decode["bytes_kv_write"] == 2 * 1 * 32 * 4 == 256
    assert decode["bytes_activations"] == 2 * 1 * 192 * 4 == 1_536
    assert decode["bytes_moved"] == 16_896

    flops = analytic_row(spec, TINY, Shape("decode", 10, batch=2), 1, "float32")["flops"]
    assert decode["arith_intensity"] == pytest.approx(flops / 16_896)
    three = byte_columns(spec, Shape("decode", 10, batch=2), "bfloat16", layers=3)
    assert three["bytes_moved"] == 3 * 16_896 // 2


def test_layer_bytes_is_the_sum_of_its_parts():
    b = layer_bytes(params=100, kv_elements_per_token=6, d_model=5, q_width=4, o_width=3,
                    shape=Shape("prefill", 7, batch=3), dtype_bytes=2)  # fmt: skip
    assert (b.weights, b.kv_read, b.kv_write, b.activations) == (200, 252, 252, 3 * 7 * (10 + 8 + 6) * 2)
    assert b.total == 200 + 252 + 252 + 1008


def test_roofline_bound_hand_cases():
    # 1 TFLOP at 100 GFLOP/s takes 10 s; 1 GB at 10 GB/s takes 0.1 s: compute-bound.
    assert roofline(1e12, 1e9, 100e9, 10e9) == (pytest.approx(10.0), "compute")
    # 1 GFLOP takes 0.01 s; 10 GB takes 1 s: memory-bound.
    assert roofline(1e9, 1e10, 100e9, 10e9) == (pytest.approx(1.0), "memory")


def test_roofline_columns_hand_case():
    row = {"flops": 2e9, "bytes_moved": 1e8, "latency_ms_median": 20.0}
    out = roofline_columns(row, peak_gflops=200.0, peak_gbps=50.0)
    # compute 2e9 / 200e9 = 10 ms; memory 1e8 / 50e9 = 2 ms
    assert out["roofline_ms"] == pytest.approx(10.0) and out["bound"] == "compute"
    assert out["frac_of_peak"] == pytest.approx(0.5)  # 100 GFLOP/s achieved of 200
    assert out["gbytes_per_s"] == pytest.approx(5.0) and out["frac_of_bw"] == pytest.approx(0.1)
    assert out["frac_of_roofline"] == pytest.approx(0.5)
    bare = roofline_columns(row, None, None)  # no measured peak: only the achieved rate
    assert bare.pop("gbytes_per_s") == pytest.approx(5.0)
    assert set(bare.values()) == {None}


def test_prefill_is_compute_bound_and_decode_memory_bound_on_a_cpu_like_roof():
    small = presets.load_preset("small")
    spec = presets.parse_variant("mha", small)
    bounds = {}
    for mode in ("prefill", "decode"):
        shape = Shape(mode, 1024)
        row = analytic_row(spec, small, shape, 1, "float32") | byte_columns(spec, shape, "float32", 1)
        bounds[mode] = roofline_columns(row, peak_gflops=200.0, peak_gbps=10.0)["bound"]  # ridge 20 FLOP/B
    assert bounds == {"prefill": "compute", "decode": "memory"}
