"""The decode fast path: a step reads its cache where it lies (no copy of the keys or values it
attends to, even when the cache is a slice of a longer buffer), and its rows keep the grading."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
from conftest import TINY


class NewTensors(TorchDispatchMode):
    """Records the size of every tensor an op writes to new memory (views and in-place writes share
    their input's storage and are left out)."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in [*args, *(kwargs or {}).values()] if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.sizes.append((t.numel(), str(func)))
        return out


@pytest.mark.parametrize("variant", ["mha", "gqa", "swa:window=16", "mla"])
@torch.no_grad()
def test_a_step_reads_the_cache_in_place_without_copying_it(variant):
    spec = presets.parse_variant(variant, TINY)
    torch.manual_seed(0)
    m = presets.registry.get(spec.family).build(spec)
    x = torch.randn(1, 41, TINY.d_model)
    cache = m.allocate_cache(1, 64)  # longer than needed: the step reads a slice of it
    m.fill_cache(cache, x[:, :40])
    with NewTensors() as seen:
        y = m.step(x[:, 40:], cache, 40)
    per_key = min(tensor.numel() for tensor in cache.values()) // 64  # elements of one cached token (k, or latent)
    biggest = max(seen.sizes)
    # Any copy of the keys read (≥ 16 of them) would be at least 16 tokens' elements.
    assert biggest[0] < 16 * per_key, biggest
    reference = m.allocate_cache(1, 64)
    m.fill_cache(reference, x[:, :40])
    torch.testing.assert_close(y, m.step(x[:, 40:], reference, 40, math=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["gqa", "swa:window=8,position=alibi", "mla"])
def test_decode_rows_use_the_fused_kernel_and_stay_healthy(variant):
    spec = presets.parse_variant(variant, TINY)
    row = measure_row(spec, TINY, Shape("decode", 24, 2),
                      Settings(device=torch.device("cpu"), dtype="bfloat16", min_run_time=0))  # fmt: skip
    # MLA's absorbed decode is two matmuls over the latent, no SDPA call (variants/mla.py)
    assert row["backend_used"] == ("none" if spec.family == "mla" else "flash")
    assert row["healthy"] is True and row["err_max_abs"] <= 2 * row["naive_err_max_abs"]
