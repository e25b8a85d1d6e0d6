"""One timing function for every command: warm up, synchronise, repeat until a minimum run time,
report median, p25 and p75 (as torch.utils.benchmark and Triton's do_bench report medians)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p25_ms: float
    p75_ms: float
    n_runs: int


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
            min_runs: int = 5, max_runs: int = 100_000, sync: Callable[[], None] | None = None) -> Timing:  # fmt: skip
    """Time fn() call by call. Each run is bracketed by device synchronisation (CUDA events on
    CUDA), so queued GPU work is never mistaken for finished work."""
    use_events = sync is None and device is not None and getattr(device, "type", "cpu") == "cuda"
    if sync is None:
        from .device import synchronizer

        sync = synchronizer(device) if device is not None else (lambda: None)

    # Warm-up: caches, allocator, lazy kernel selection; at least three calls.
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < warmup_time:
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
            t0 = time.perf_counter()
            fn()
            sync()
            t = time.perf_counter() - t0
            times.append(t)
            total += t
    return summarize(times)
