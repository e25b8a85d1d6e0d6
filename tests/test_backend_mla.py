"""MLA's fast paths reach a fused kernel on the CPU (issue 17): SDPA's CPU flash kernel needs values
as wide as keys, so the naive path pads V with zeros and the absorbed path passes the whole latent
as its value; before, both ran SDPA's math fallback. Absorbed decode is two matmuls over the latent
in place (faster there than a one-task flash call). The outputs keep the error grading."""

import pytest
import torch

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
from attncli.variants import flex, mla
from conftest import TINY


@pytest.mark.parametrize("absorb", ["false", "true"])
def test_mla_fast_paths_use_the_fused_kernel_and_stay_healthy(absorb, monkeypatch):
    spec = presets.parse_variant(f"mla:absorb={absorb}", TINY)
    settings = Settings(device=torch.device("cpu"), dtype="bfloat16", min_run_time=0)
    for mode in ("prefill", "decode"):
        row = measure_row(spec, TINY, Shape(mode, 24, 2), settings)
        # absorbed decode is two matmuls, no SDPA call: they beat a one-task flash call (mla.py)
        want = "none" if (absorb, mode) == ("true", "decode") else "flash"
        assert row["backend_used"] == want, (mode, row["backend_used"])
        # FlashAttention's rule: fast error ≤ 2 × the bfloat16 math path's error vs float64.
        assert row["healthy"] is True and row["err_max_abs"] <= 2 * row["naive_err_max_abs"]
    monkeypatch.setattr(mla, "FUSED_WIDTHS", False)  # the old path: unequal widths, math fallback
    assert measure_row(spec, TINY, Shape("prefill", 24, 2), settings)["backend_used"] == "math"


@torch.no_grad()  # flex has no backward on the CPU
@pytest.mark.parametrize("absorb", ["false", "true"])
def test_mla_under_flex_equals_its_math_path(absorb):
    spec = presets.parse_variant(f"mla:absorb={absorb}", TINY)
    torch.manual_seed(0)
    m = presets.registry.get("mla").build(spec).double()
    x = torch.randn(2, 13, TINY.d_model, dtype=torch.float64)
    with flex.use_flex(eager=True):
        calls = flex.calls()
        y = m(x)[0]
        cache = m.allocate_cache(2, 13)
        m.fill_cache(cache, x[:, :12])
        step = m.step(x[:, 12:], cache, 12)
        assert flex.calls() - calls == 2
    torch.testing.assert_close(y, m(x, math=True)[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(step, m.step(x[:, 12:], cache, 12, math=True), rtol=1e-10, atol=1e-10)
