"""The error columns against values worked out by hand, and the reference they are measured
against: float64 on the CPU, never the run dtype (DESIGN.md, "Output error")."""

import math

import pytest
import torch

from attncli import presets
from attncli.measure import bench
from attncli.measure.error import error_metrics, is_healthy
from attncli.spec import Shape


def test_metrics_of_a_hand_made_pair():
    # y_ref = [[3, 4], [0, 0]]: ‖y_ref‖ = 5. y − y_ref = [[0, 0.5], [−1.2, 0]]:
    # max |d| = 1.2, mean |d| = 1.7 / 4 = 0.425, ‖d‖ = √(0.25 + 1.44) = 1.3, rel L2 = 1.3 / 5 = 0.26.
    y_ref = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[3.0, 4.5], [-1.2, 0.0]], dtype=torch.float64)
    got = error_metrics(y, y_ref)
    assert got == pytest.approx({"max_abs": 1.2, "mean_abs": 0.425, "rel_l2": 0.26}, rel=1e-12)


def test_metrics_are_taken_in_float64_whatever_the_dtype():
    """A float16 output of 1/3 is 0.333251953125 (2^-2 · 1365/1024): the error is the distance to
    the float64 1/3, not a float16 difference (which would round it to 0 or to one float16 step)."""
    y = torch.full((4,), 1 / 3, dtype=torch.float16)
    y_ref = torch.full((4,), 1 / 3, dtype=torch.float64)
    d = 1 / 3 - 1365 / 4096
    got = error_metrics(y, y_ref)
    assert got == pytest.approx({"max_abs": d, "mean_abs": d, "rel_l2": d / (1 / 3)}, rel=1e-9)


def test_non_finite_outputs_give_no_numbers_and_a_zero_reference_an_infinite_ratio():
    ref = torch.ones(3, dtype=torch.float64)
    assert error_metrics(torch.tensor([1.0, float("nan"), 1.0]), ref) is None
    assert error_metrics(torch.tensor([1.0, float("inf"), 1.0]), ref) is None
    zero = error_metrics(torch.tensor([0.5, 0.0]), torch.zeros(2, dtype=torch.float64))
    assert zero["max_abs"] == 0.5 and zero["mean_abs"] == 0.25 and zero["rel_l2"] == math.inf


def test_healthy_is_the_two_times_rule_at_its_boundary():
    math_err = {"max_abs": 1e-3}
    assert is_healthy({"max_abs": 2e-3}, math_err) is True
    assert is_healthy({"max_abs": 2.0001e-3}, math_err) is False
    assert is_healthy(None, math_err) is False and is_healthy({"max_abs": 0.0}, None) is None


def _row_with_spy(monkeypatch, variant, mode, dtype="float32"):
    seen = []
    real = bench.error_metrics

    def spy(y, y_ref):
        seen.append((y, y_ref))
        return real(y, y_ref)

    monkeypatch.setattr(bench, "error_metrics", spy)
    p = presets.load_preset("micro")
    settings = bench.Settings(device=torch.device("cpu"), dtype=dtype, min_run_time=0)
    row = bench.measure_row(presets.parse_variant(variant, p), p, Shape(mode, 16, 2), settings)
    return row, seen


@pytest.mark.parametrize("variant,mode", [("gqa", "prefill"), ("gqa", "decode"), ("mla:absorb=true", "decode")])
def test_rows_are_measured_against_a_float64_cpu_reference(monkeypatch, variant, mode):
    row, seen = _row_with_spy(monkeypatch, variant, mode)
    assert len(seen) == 2  # the fast path's output, then the plain-math path's, against one reference
    (y, y_ref), (y_math, y_ref2) = seen
    assert y_ref is y_ref2 and y_ref.dtype == torch.float64 and y_ref.device.type == "cpu"
    assert y.dtype == y_math.dtype == torch.float32
    # A float32 output can be no closer to the float64 truth than the nearest float32 is: the
    # rounding of y_ref to float32 bounds the error from below (0 only for a float32 reference).
    rounding = (y_ref.float().double() - y_ref).abs()
    assert rounding.max().item() > 0
    assert row["naive_err_max_abs"] >= rounding.max().item() and row["err_max_abs"] >= rounding.max().item()
    assert row["err_mean_abs"] >= rounding.mean().item()
    assert row["err_rel_l2"] == pytest.approx(error_metrics(y, y_ref)["rel_l2"], rel=1e-12)


def test_the_reference_twin_holds_the_same_weights_in_float64():
    p = presets.load_preset("micro")
    spec = presets.parse_variant("gqa", p)
    settings = bench.Settings(device=torch.device("cpu"), dtype="bfloat16")
    fast, ref = bench.build_pair(spec, settings)
    for (name, a), (_, b) in zip(fast.state_dict().items(), ref.state_dict().items()):
        assert a.dtype == torch.bfloat16 and b.dtype == torch.float64, name
        assert torch.equal(a.double(), b), name  # the bfloat16 weights cast up, not a new draw
    x, x_ref = bench.inputs(Shape("prefill", 8, 1), spec.d_model, settings)
    assert x_ref.dtype == torch.float64 and torch.equal(x.double(), x_ref)
