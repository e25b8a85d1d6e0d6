"""Dtype grading: `healthy` follows FlashAttention's 2× rule; NaN/Inf outputs are flagged, never printed."""

import json
import math

import pytest
import torch

from attncli import presets, report
from attncli.measure import bench
from attncli.measure.bench import Settings, measure_row
from attncli.measure.error import error_metrics, is_healthy
from attncli.spec import Shape

MICRO = presets.load_preset("micro")


def err(max_abs):
    return {"max_abs": max_abs, "mean_abs": max_abs / 10, "rel_l2": max_abs / 100}


@pytest.mark.parametrize(
    "fast,math_,expected",
    [
        (2.0e-3, 1.0e-3, True),  # exactly twice: still healthy (≤)
        (2.01e-3, 1.0e-3, False),  # just over twice
        (0.5e-3, 1.0e-3, True),  # better than plain math
        (0.0, 0.0, True),
        (1e-9, 0.0, False),  # plain math exact, fast path not
    ],
)
def test_healthy_is_at_most_twice_the_same_dtype_math_error(fast, math_, expected):
    assert is_healthy(err(fast), err(math_)) is expected


def test_healthy_with_nan_outputs():
    assert is_healthy(None, err(1e-3)) is False  # the fast path gave NaN/Inf
    assert is_healthy(err(1e-3), None) is None  # nothing to grade against


def test_error_metrics_flag_nan_and_inf():
    ref = torch.ones(3, dtype=torch.float64)
    assert error_metrics(torch.tensor([1.0, float("nan"), 1.0]), ref) is None
    assert error_metrics(torch.tensor([1.0, float("inf"), 1.0]), ref) is None
    assert error_metrics(torch.tensor([1.0, 1.5, 1.0]), ref)["max_abs"] == 0.5


def run(dtype, variant="mha", mode="prefill"):
    spec = presets.parse_variant(variant, MICRO)
    return measure_row(spec, MICRO, Shape(mode, 32), Settings(device=torch.device("cpu"), dtype=dtype, min_run_time=0))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_rows_are_graded(dtype):
    row = run(dtype)
    assert row["status"] == "ok"
    assert row["healthy"] is (row["err_max_abs"] <= 2 * row["naive_err_max_abs"])


def test_float32_rows_are_not_graded():
    assert run("float32")["healthy"] is None


def test_overflowing_float16_row_is_flagged_nan(monkeypatch, capsys):
    real_inputs = bench.inputs

    def huge(shape, d_model, settings):
        x, x_ref = real_inputs(shape, d_model, settings)
        return x * 3e4, x_ref * 3e4  # projections overflow float16's 65504

    monkeypatch.setattr(bench, "inputs", huge)
    row = run("float16")
    assert row["status"] == "nan"
    assert row["err_max_abs"] is None and row["err_rel_l2"] is None and row["healthy"] is False
    assert json.loads(report.to_json([row]))[0]["err_rel_l2"] is None
    table = report.table([row], "bench")
    report.console().print(table)
    out = capsys.readouterr().out
    assert "nan" in out and "NO" in out  # status nan, healthy NO
    assert not any(math.isnan(v) for v in row.values() if isinstance(v, float))
