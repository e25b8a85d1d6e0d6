"""One timing function for every command: warm up, synchronise, repeat until a minimum run time,
report median, p25 and p75 (as torch.utils.benchmark and Triton's do_bench report medians).

A timing whose interquartile range exceeds 10% of its median is `noisy`: the threshold at which
torch.utils.benchmark's `Measurement` warns of "significant environmental influence"
(`_IQR_WARN_THRESHOLD = 0.1` in torch/utils/benchmark/utils/common.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

NOISY_IQR_FRACTION = 0.10  # IQR / median above this flags a row `noisy`


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p25_ms: float
    p75_ms: float
    n_runs: int

    @property
    def iqr_ms(self) -> float:
        return self.p75_ms - self.p25_ms

    @property
    def noisy(self) -> bool:
        """The spread is too wide for the median to be quoted without a caveat."""
        return self.iqr_ms > NOISY_IQR_FRACTION * self.median_ms


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default `linear` method); q in [0, 100]."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(seconds: list[float]) -> Timing:
    s = sorted(seconds)
    return Timing(1e3 * percentile(s, 50), 1e3 * percentile(s, 25), 1e3 * percentile(s, 75), len(s))


def time_fn(fn: Callable[[], object], device=None, *, min_run_time: float = 0.2, warmup_time: float = 0.15,
            min_runs: int = 5, max_runs: int = 100_000, sync: Callable[[], None] | None = None,
            clock: Callable[[], float] = time.perf_counter) -> Timing:  # fmt: skip
    """Time fn() call by call until the timed runs add up to `min_run_time` seconds and there are
    at least `min_runs` of them (at most `max_runs`), after a warm-up of at least three calls and
    `warmup_time` seconds.

    Synchronisation: on CUDA each run is bracketed by CUDA events recorded on the current stream
    and the end event is waited for, so the time is the GPU's own and queued work is never
    mistaken for finished work. Elsewhere (CPU, MPS, or when `sync` is given) every run is
    bracketed by the device synchronisation hook (`torch.mps.synchronize` on MPS, a no-op on the
    CPU) and timed with `clock`.
    """
    use_events = sync is None and device is not None and getattr(device, "type", "cpu") == "cuda"
    if sync is None:
        from .device import synchronizer

        sync = synchronizer(device) if device is not None else (lambda: None)

    # Warm-up: caches, allocator, lazy kernel selection, autotuning; at least three calls.
    start = clock()
    calls = 0
    while calls < 3 or clock() - start < warmup_time:
        fn()
        calls += 1
    sync()

    times: list[float] = []
    total = 0.0
    if use_events:
        import torch

        while (len(times) < min_runs or total < min_run_time) and len(times) < max_runs:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            t = begin.elapsed_time(end) / 1e3  # ms -> s
            times.append(t)
            total += t
    else:
        while (len(times) < min_runs or total < min_run_time) and len(times) < max_runs:
            sync()
            t0 = clock()
            fn()
            sync()
            t = clock() - t0
            times.append(t)
            total += t
    return summarize(times)
