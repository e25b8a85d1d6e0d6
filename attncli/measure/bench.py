"""Measure one row: latency, real cache bytes, output error against a float64 CPU reference,
the SDPA backend used, and the roofline columns against the device's measured peaks.

A row's timing can wait: with `Settings.rounds` (a `Rounds`), `measure_row` does everything but
the timing and registers the row's timed call there; `Rounds.run` then times every registered
row together, interleaved in rounds (timing.time_interleaved), and fills their latency columns.
`bench` and `compare` measure each shape's rows that way (measure/stack.py, measure_jobs)."""

from __future__ import annotations

import copy
import dataclasses
import gc
from dataclasses import dataclass

import torch

from .. import registry
from ..errors import ResourceError
from ..rows import analytic_row, byte_columns, math_path_flops, roofline_columns
from ..spec import DTYPE_BYTES, AttentionSpec, HybridSpec, PresetSpec, Shape
from ..variants import flex
from . import load
from .backend import check_available, probe, sdpa_context
from .device import device_name, synchronizer
from .error import GRADED_DTYPES, error_metrics, is_healthy
from .timing import Timing, time_interleaved


@dataclass(frozen=True)
class Settings:
    device: torch.device
    dtype: str  # a compute dtype name: float32, float16, bfloat16, float64
    seed: int = 0
    min_run_time: float = 0.2  # seconds of timed runs per row
    backend: str = "auto"  # SDPA backend: auto, math, flash, efficient, cudnn (measure/backend.py)
    compile: bool = False  # time torch.compile of the layer (rows labelled `+compile`)
    compile_backend: str = "inductor"  # torch.compile backend (tests use "eager": no C++ build)
    verify_flops: bool = False  # also count FLOPs with FlopCounterMode on the plain-math path
    peak_gflops: float | None = None  # the device's measured matmul peak for this dtype (measure/peak.py)
    peak_gbps: float | None = None  # its measured memory bandwidth
    peak_source: str | None = None  # where the peaks came from (cache, measured), for the row
    rounds: "Rounds | None" = None  # defer the timing to Rounds.run (interleaved with other rows)
    # Without --threads on a busy CPU: torch's own thread count, and the free cores that lowered it
    threads_default: int | None = None
    free_cores_start: float | None = None


class Rounds:
    """Rows waiting for their timing: `measure_row` registers each row's timed call here (through
    `Settings.rounds`); `run` times them all in rounds, A B C A B C …, and fills their columns."""

    def __init__(self):
        self.entries: list[tuple[dict, object]] = []

    def add(self, row: dict, call) -> None:
        self.entries.append((row, call))

    def run(self, settings: Settings, on_round=None) -> None:
        """Time every registered row, interleaved; out of memory marks them all `oom`. `on_round(k)`
        follows the rounds (timing.time_interleaved): a true return ends them early."""
        entries, self.entries = self.entries, []
        if not entries:
            return
        watch = load.watch()
        try:
            with torch.inference_mode(), sdpa_context(settings.backend):
                timings = time_interleaved([call for _, call in entries], settings.device,
                                           min_run_time=settings.min_run_time, on_round=on_round)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - only out-of-memory becomes a row; the rest is re-raised
            from .oom import is_oom

            if not is_oom(error):
                raise
            rows = [row for row, _ in entries]
            entries.clear()  # drop the layers and their inputs
            gc.collect()
            for row in rows:
                row["status"] = "oom"
            return
        machine = watch.stop()
        for (row, _), timing in zip(entries, timings):
            timed_columns(row, timing, machine, settings)
            row["_round_ms"] = list(timing.rounds_ms)  # for ratios round by round; rows.add_ratios reads it


def timed_columns(row: dict, timing: Timing, machine: "load.Load", settings: Settings) -> None:
    """Fill a row's latency, rate, `noisy`, load and roofline columns from its timing."""
    row.update(latency_ms_median=timing.median_ms, latency_ms_p25=timing.p25_ms, latency_ms_p75=timing.p75_ms,
               n_runs=timing.n_runs, n_rounds=len(timing.rounds_ms) or None, noisy=timing.noisy,
               gflops_per_s=row["flops"] / (timing.median_ms * 1e-3) / 1e9, **machine.columns())  # fmt: skip
    row.update(roofline_columns(row, settings.peak_gflops, settings.peak_gbps))
    row["peak_source"] = settings.peak_source if settings.peak_gflops else None


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


def _compiled(run, arg, settings: Settings, label: str):
    """torch.compile of the layer call; its first call (the compilation) fails here, not mid-timing.
    Dynamo's caches are cleared first: every row compiles its own layer, and a full cache would
    otherwise fall back to eager mode without a word after a few rows. Returns (fn, seconds of
    the first call)."""
    import time

    torch._dynamo.reset()
    fn = torch.compile(run, dynamic=False, backend=settings.compile_backend)
    try:
        t0 = time.perf_counter()
        fn(arg)
        synchronizer(settings.device)()
        seconds = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - inductor can fail in many ways (no compiler, unsupported op)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResourceError("--compile", f"torch.compile failed for {label}: {first[:200]}",
                            "run without --compile") from None
    return fn, seconds


def _decode_kernel_off(spec, shape: Shape, settings, backend_used: str | None) -> str | None:
    """Why a decode row with grouped query heads in float32 ran the BLAS gemv where the C kernel
    (variants/cdecode.py) would have run, in its one line (`no C compiler found (set CC)`); None
    where the kernel ran, or could not apply (one head per KV head, another dtype, ALiBi)."""
    from ..variants import cdecode

    g = getattr(spec, "n_kv_heads", None)
    if shape.mode != "decode" or settings.dtype != "float32" or not g or spec.n_heads // g < cdecode.MIN_ROWS:
        return None
    if getattr(spec, "position", None) == "alibi":  # the kernel has no bias: gemv by design
        return None
    if "gemv" not in (backend_used or "").split("+"):
        return None
    return cdecode.unavailable()


def measure_row(spec: AttentionSpec, preset: PresetSpec, shape: Shape, settings: Settings, source=None) -> dict:
    """One layer of `spec` doing `shape` on the settings' device: a full `bench` row. A stack
    (hybrid) has no single layer: it gives the row of one period of its pattern (measure/stack.py).
    With a `source`, the layer holds a checkpoint's weights and sees its inputs (`--weights`)."""
    if isinstance(spec, HybridSpec):
        from .stack import measure_model

        return measure_model(spec, preset, shape, settings, layers=len(spec.layers))[-1]
    row = analytic_row(spec, preset, shape, layers=1, dtype=settings.dtype, device=str(settings.device))
    row.update(byte_columns(spec, shape, settings.dtype, layers=1))
    if source is not None:
        row.update(source.columns(settings.seed))
    label = f"{spec.label}+compile" if settings.compile else spec.label
    real = {"source": source} if source is not None else {}  # fakes and wrappers keep the three-argument calls
    fast, ref = build_pair(spec, settings, **real)
    x, x_ref = inputs(shape, spec.d_model, settings, **real)
    L, B = shape.seq_len, shape.batch
    if getattr(fast, "memory_len", 0):  # cross-attention: a seeded encoder memory (variants/__init__.py)
        memory, memory_ref = inputs(Shape("prefill", fast.memory_len, B), spec.d_model,
                                    dataclasses.replace(settings, seed=settings.seed + 1000))  # fmt: skip
        fast.set_memory(memory)
        ref.set_memory(memory_ref)
    what = f"{spec.label} {shape.mode} on {settings.device} {settings.dtype}"
    check_available(settings.backend, settings.device)  # flex's compiler; an optional library's import
    if settings.backend == "flex":  # fresh compile caches per row, as _compiled: see variants/flex.py
        torch._dynamo.reset()
        flex.reset()
    with torch.inference_mode(), sdpa_context(settings.backend):
        if shape.mode == "prefill":
            cache = None
            arg = x
            rewind = lambda: None  # noqa: E731

            def run(inp):
                return fast(inp)[0]

            def run_math():
                return fast(x, math=True)[0]
        else:
            cache = fast.allocate_cache(B, L + 1)
            fast.fill_cache(cache, x[:, :L])
            arg = x[:, L:]

            def rewind():  # a recurrent state (linear) advances on every step: restore the prefix's
                fast.fill_cache(cache, x[:, :L])

            def run(inp):
                return fast.step(inp, cache, L)  # rewrites cache[L]: every call does the same work

            def run_math():
                return fast.step(arg, cache, L, math=True)

        compile_before = flex.compile_seconds()
        backend_used = probe(lambda: run(arg), settings.backend, what)  # flex compiles its kernels here
        compile_s = flex.compile_seconds() - compile_before if settings.backend == "flex" else None
        timed = run
        if settings.compile:
            (timed, seconds), backend_used = _compiled(run, arg, settings, label), None  # inductor may swap the kernel
            compile_s = (compile_s or 0.0) + seconds
        call = lambda: timed(arg)  # noqa: E731
        if settings.rounds is None:  # time it now, alone (in rounds of itself); else Rounds.run does
            watch = load.watch()
            timing = time_interleaved([call], settings.device, min_run_time=settings.min_run_time)[0]
            machine = watch.stop()
        if cache is None and not settings.compile:
            y, cache = fast(x)  # the output, and the cache tensors a prefill really allocates
        else:
            rewind()
            y = timed(arg)
            if cache is None:
                _, cache = fast(x)
        rewind()
        y_math = run_math()
        counted = None
        if settings.verify_flops:
            from torch.utils.flop_counter import FlopCounterMode

            rewind()
            with FlopCounterMode(display=False) as counter:
                run_math()
            counted = counter.get_total_flops()
        if shape.mode == "prefill":
            y_ref, _ = ref(x_ref, math=True)
            if source is not None:
                source.record(shape, x, y, y_ref)  # --save-io
        else:
            ref_cache = ref.allocate_cache(B, L + 1)
            ref.fill_cache(ref_cache, x_ref[:, :L])
            y_ref = ref.step(x_ref[:, L:], ref_cache, L, math=True)
        synchronizer(settings.device)()
        err, err_math = error_metrics(y, y_ref), error_metrics(y_math, y_ref)
        measured_bytes = cache.nbytes
    row.update(
        label=label,
        kv_cache_bytes_measured=measured_bytes,
        err_max_abs=err and err["max_abs"], err_mean_abs=err and err["mean_abs"], err_rel_l2=err and err["rel_l2"],
        naive_err_max_abs=err_math and err_math["max_abs"], naive_err_rel_l2=err_math and err_math["rel_l2"],
        backend=settings.backend, device_name=device_name(settings.device), torch_version=torch.__version__,
        threads=torch.get_num_threads(), threads_default=settings.threads_default,
        free_cores_start=settings.free_cores_start, seed=settings.seed, status="ok" if err and err_math else "nan",
        backend_used=backend_used, compiled=settings.compile, compile_s=compile_s,
        healthy=is_healthy(err, err_math) if settings.dtype in GRADED_DTYPES else None,
        decode_kernel_off=_decode_kernel_off(spec, shape, settings, backend_used),
    )  # fmt: skip
    if counted is not None:  # one layer; measure/stack.py totals the model columns over the layers
        expected = math_path_flops(spec, shape, element_bytes=DTYPE_BYTES[settings.dtype])
        row.update(flops_counted=counted, flops_math_path=expected, flops_match=counted == expected,
                   flops_counted_layer=counted, flops_math_path_layer=expected,
                   flops_counted_model=counted, flops_math_path_model=expected)  # fmt: skip
    del ref, x_ref
    if settings.rounds is None:
        timed_columns(row, timing, machine, settings)
        del fast, x, cache
    else:  # the layer, its input and cache stay alive in `call` until Rounds.run has timed it
        settings.rounds.add(row, call)
    gc.collect()
    return row
