"""Measure one row: latency, real cache bytes, output error against a float64 CPU reference."""

from __future__ import annotations

import copy
import gc
from dataclasses import dataclass

import torch

from .. import registry
from ..rows import analytic_row
from ..spec import AttentionSpec, PresetSpec, Shape
from .device import device_name, synchronizer
from .error import error_metrics
from .timing import time_fn


@dataclass(frozen=True)
class Settings:
    device: torch.device
    dtype: str  # a compute dtype name: float32, float16, bfloat16, float64
    seed: int = 0
    min_run_time: float = 0.2  # seconds of timed runs per row


def build_pair(spec: AttentionSpec, settings: Settings, source=None):
    """The module under test (settings' device and dtype) and its float64 CPU twin holding the
    very same weights: the reference casts the low-precision weights up, so the error measures
    the kernel, not the rounding of the weights. `source` (a `weights.LayerSource`) supplies a
    checkpoint's real weights in place of the seeded random ones."""
    torch.manual_seed(settings.seed)
    if source is not None:
        module = source.module(spec)  # float32, CPU, the checkpoint's weights
    else:
        module = registry.get(spec.family).build(spec)  # float32, CPU, seeded init
    fast = module.to(device=settings.device, dtype=getattr(torch, settings.dtype)).eval()
    ref = copy.deepcopy(fast).to(device="cpu", dtype=torch.float64)
    return fast, ref


def inputs(shape: Shape, d_model: int, settings: Settings, source=None):
    """Seeded hidden states (B, tokens, d_model): the prefill sequence, or the cached prefix and
    the new token. Returned in the run dtype on the device, and as float64 on the CPU. With a
    `source`, the checkpoint's inputs (its embeddings through the layer's norm, or a file)."""
    tokens = shape.seq_len + (1 if shape.mode == "decode" else 0)
    if source is not None:
        x = source.inputs(shape, settings.seed + 1)  # float64 (B, tokens, d_model)
    else:
        gen = torch.Generator().manual_seed(settings.seed + 1)
        x = torch.randn(shape.batch, tokens, d_model, generator=gen)
    x_fast = x.to(device=settings.device, dtype=getattr(torch, settings.dtype))
    return x_fast, x_fast.to(device="cpu", dtype=torch.float64)


def measure_row(spec: AttentionSpec, preset: PresetSpec, shape: Shape, settings: Settings, source=None) -> dict:
    """One layer of `spec` doing `shape` on the settings' device: a full `bench` row. With a
    `source`, the layer holds a checkpoint's weights and sees its inputs (`--weights`)."""
    row = analytic_row(spec, preset, shape, layers=1, dtype=settings.dtype, device=str(settings.device))
    if source is not None:
        row.update(source.columns(settings.seed))
    real = {"source": source} if source is not None else {}  # fakes and wrappers keep the three-argument calls
    fast, ref = build_pair(spec, settings, **real)
    x, x_ref = inputs(shape, spec.d_model, settings, **real)
    L, B = shape.seq_len, shape.batch
    with torch.inference_mode():
        if shape.mode == "prefill":
            timing = time_fn(lambda: fast(x), settings.device, min_run_time=settings.min_run_time)
            y, cache = fast(x)
            y_math, _ = fast(x, math=True)
            y_ref, _ = ref(x_ref, math=True)
            if source is not None:
                source.record(shape, x, y, y_ref)  # --save-io
        else:
            cache = fast.allocate_cache(B, L + 1)
            fast.fill_cache(cache, x[:, :L])
            new = x[:, L:]
            timing = time_fn(lambda: fast.step(new, cache, L), settings.device, min_run_time=settings.min_run_time)
            y = fast.step(new, cache, L)
            y_math = fast.step(new, cache, L, math=True)
            ref_cache = ref.allocate_cache(B, L + 1)
            ref.fill_cache(ref_cache, x_ref[:, :L])
            y_ref = ref.step(x_ref[:, L:], ref_cache, L, math=True)
        synchronizer(settings.device)()
        err, err_math = error_metrics(y, y_ref), error_metrics(y_math, y_ref)
        measured_bytes = cache.nbytes
    row.update(
        kv_cache_bytes_measured=measured_bytes,
        latency_ms_median=timing.median_ms, latency_ms_p25=timing.p25_ms, latency_ms_p75=timing.p75_ms,
        n_runs=timing.n_runs, gflops_per_s=row["flops"] / (timing.median_ms * 1e-3) / 1e9,
        err_max_abs=err and err["max_abs"], err_mean_abs=err and err["mean_abs"], err_rel_l2=err and err["rel_l2"],
        naive_err_max_abs=err_math and err_math["max_abs"], naive_err_rel_l2=err_math and err_math["rel_l2"],
        backend="sdpa", device_name=device_name(settings.device), torch_version=torch.__version__,
        threads=torch.get_num_threads(), seed=settings.seed, status="ok" if err and err_math else "nan",
    )  # fmt: skip
    del fast, ref, x, x_ref, cache
    gc.collect()
    return row
