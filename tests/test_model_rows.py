"""Model rows (--layers N, stacks) built from one-layer rows: traffic, rates and the roofline cover
the same N layers as `flops` and the latency. A fake one-layer measurement keeps it exact."""

import pytest

from attncli import presets
from attncli.measure.bench import Settings
from attncli.measure.stack import measure_model
from attncli.rows import analytic_row, byte_columns, roofline_columns
from attncli.spec import Shape

MICRO = presets.load_preset("micro")
SHAPE = Shape("prefill", 64)


def one_layer(spec, preset, shape, settings):
    """What measure_row gives for one layer, with a latency of 2 ms per layer and peaks of
    100 GFLOP/s and 10 GB/s."""
    row = analytic_row(spec, preset, shape, 1, "float32", device="cpu")
    row.update(byte_columns(spec, shape, "float32", layers=1))
    row.update(latency_ms_median=2.0, latency_ms_p25=1.9, latency_ms_p75=2.1, n_runs=10, status="ok", noisy=False,
               peak_gflops=100.0, peak_gbps=10.0)  # fmt: skip
    row.update(roofline_columns(row, 100.0, 10.0))
    return row


def settings():
    import torch

    return Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0)


def test_n_layers_move_n_times_the_bytes_of_one():
    spec = presets.parse_variant("mha", MICRO)
    (row,) = measure_model(spec, MICRO, SHAPE, settings(), layers=4, measure=one_layer)
    one = byte_columns(spec, SHAPE, "float32", layers=1)
    assert row["bytes_moved"] == 4 * one["bytes_moved"] and row["flops"] == 4 * analytic_row(spec, MICRO, SHAPE, 1, "float32")["flops"]
    assert row["arith_intensity"] == pytest.approx(one["arith_intensity"])  # the same per layer
    assert row["latency_ms_median"] == 8.0
    assert row["gbytes_per_s"] == pytest.approx(4 * one["bytes_moved"] / 8e-3 / 1e9)
    bound = max(row["flops"] / 100e9, row["bytes_moved"] / 10e9)
    assert row["roofline_ms"] == pytest.approx(1e3 * bound) and row["frac_of_roofline"] == pytest.approx(bound / 8e-3)


def test_a_stack_total_sums_its_kinds_traffic():
    spec = presets.parse_variant("hybrid:pattern=[linear,gqa]", MICRO)
    *parts, total = measure_model(spec, MICRO, SHAPE, settings(), layers=4, per_layer=True, measure=one_layer)
    linear, gqa = (presets.parse_variant(v, MICRO) for v in ("linear", "gqa"))
    assert [p["layers"] for p in parts] == [2, 2]
    expected = 2 * byte_columns(linear, SHAPE, "float32", 1)["bytes_moved"] + 2 * byte_columns(gqa, SHAPE, "float32", 1)["bytes_moved"]
    assert total["bytes_moved"] == sum(p["bytes_moved"] for p in parts) == expected
    assert total["arith_intensity"] == pytest.approx(total["flops"] / expected)
    assert total["gbytes_per_s"] == pytest.approx(expected / (total["latency_ms_median"] * 1e-3) / 1e9)
