"""MLA's roofline traffic: the naive path materialises per-head keys and values from every cached
latent, at every decode step; the absorbed path reads the latent as stored. Figures by hand."""

import torch

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.rows import byte_columns
from attncli.spec import Shape

MICRO = presets.load_preset("micro")  # d 256, h 4; mla: r 256, full-rank query, nope 64, rope 32, v 64


def test_naive_decode_bytes_moved_by_hand():
    d, h, r, nope, rope, dv, b = 256, 4, 256, 64, 32, 64, 4  # float32
    L = 1024
    keys = L + 1  # the cache after the step, itself included
    params = d * h * (nope + rope) + d * (r + rope) + r + r * h * (nope + dv) + h * dv * d  # q, kv_a, its norm, kv_b, o
    weights = params * b
    latent_read, latent_write = keys * (r + rope) * b, 1 * (r + rope) * b  # the cache, and the new token's entry
    up_projected = keys * h * (nope + dv) * b  # kv_b writes every key's per-head K_nope and V
    attended = keys * h * (nope + rope + dv) * b  # attention reads per-head keys (with the RoPE key) and values
    activations = (2 * d + 2 * h * (nope + rope) + 2 * h * dv) * b  # x in, y out; queries, attention output
    naive = byte_columns(presets.parse_variant("mla:absorb=false", MICRO), Shape("decode", L), "float32", layers=1)
    assert naive["bytes_weights"] == weights == 1_475_584
    assert naive["bytes_kv_read"] == latent_read + attended == 1_180_800 + 2_624_000
    assert naive["bytes_kv_write"] == latent_write + up_projected == 1_152 + 2_099_200
    assert naive["bytes_activations"] == activations
    assert naive["bytes_moved"] == weights + latent_read + attended + latent_write + up_projected + activations
    absorbed = byte_columns(presets.parse_variant("mla:absorb=true", MICRO), Shape("decode", L), "float32", layers=1)
    assert naive["bytes_moved"] - absorbed["bytes_moved"] == up_projected + attended  # what absorption saves
    assert absorbed["bytes_kv_read"] == latent_read


def test_naive_prefill_counts_the_n_up_projected_keys_and_layers_multiply():
    n, h, nope, rope, dv, b = 128, 4, 64, 32, 64, 2  # bfloat16, batch 3, 2 layers
    naive = byte_columns(presets.parse_variant("mla:absorb=false", MICRO), Shape("prefill", n, 3), "bfloat16", 2)
    absorbed = byte_columns(presets.parse_variant("mla:absorb=true", MICRO), Shape("prefill", n, 3), "bfloat16", 2)
    assert naive["bytes_moved"] - absorbed["bytes_moved"] == 2 * 3 * n * h * ((nope + dv) + (nope + rope + dv)) * b


def test_bench_row_carries_the_naive_traffic():
    spec = presets.parse_variant("mla:absorb=false", MICRO)
    shape = Shape("decode", 16)
    row = measure_row(spec, MICRO, shape, Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))
    assert row["bytes_moved"] == byte_columns(spec, shape, "float32", 1)["bytes_moved"]
    assert row["arith_intensity"] == row["flops"] / row["bytes_moved"]
