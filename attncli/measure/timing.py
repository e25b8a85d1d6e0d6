"""One timing function for every command: warm up, synchronise, repeat until a minimum run time,
report median, p25 and p75 (as torch.utils.benchmark and Triton's do_bench report medians).

A timing whose interquartile range exceeds 10% of its median is `noisy`: the threshold at which
torch.utils.benchmark's `Measurement` warns of "significant environmental influence"
(`_IQR_WARN_THRESHOLD = 0.1` in torch/utils/benchmark/utils/common.py). Timed in rounds, it is
noisy too when the rounds' own medians spread that far (the machine's speed drifted between them).

`time_interleaved` times several callables in rounds, A B C A B C …, after warming each up: a
machine whose speed drifts (other work, thermal limits) then slows every callable of a round
alike, so a ratio taken round by round cancels the drift (pyperf and hyperfine alternate for the
same reason; DESIGN.md, "Latency").
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

NOISY_IQR_FRACTION = 0.10  # IQR / median above this flags a row `noisy`
# Interleaved timing: at least this many rounds, each row timed once or more per round. 20, not 10:
# the median of 10 per-round ratios moved between runs by about half their p25–p75 (one busy core,
# `compare mha gqa -p small -s 1024`, 1 thread: run medians 1.237–1.255, one run's p25–p75
# 1.237–1.249 missed the median of five); twice the rounds shrink that by √2.
MIN_ROUNDS = 20
# Two or more rows timed together (their ratios are taken round by round): at least this many.
# At 20 the median of the per-round ratios still moved by about 0.4 of their p25–p75 half-width
# (same shape and load, 2026-12-01 17:40 UTC, seven processes of 100–300 rounds: the medians of
# 45 blocks of 20 rounds deviated from their process's mean by a standard deviation of 0.0051,
# the blocks' p25–p75 half-width averaged 0.012, down to 0.004), so about one run in seven missed
# the median of five. The rounds are independent (lag 1–10 autocorrelation of 300 rounds'
# log-ratios between −0.17 and 0.16), so twice the rounds shrink that movement by √2, while the
# p25–p75 stays as wide. It doubles a comparison's timing only where one call outlasts a round's
# budget (min_run_time / rounds); faster rows run fewer calls per round instead.
RATIO_ROUNDS = 40


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p25_ms: float
    p75_ms: float
    n_runs: int
    rounds_ms: tuple[float, ...] = ()  # interleaved timing: each round's median, in round order

    @property
    def iqr_ms(self) -> float:
        return self.p75_ms - self.p25_ms

    @property
    def round_spread(self) -> float | None:
        """IQR of the rounds' medians / their median: how far the speed moved between rounds."""
        if len(self.rounds_ms) < 2:
            return None
        s = sorted(self.rounds_ms)
        mid = percentile(s, 50)
        return (percentile(s, 75) - percentile(s, 25)) / mid if mid > 0 else None

    @property
    def noisy(self) -> bool:
        """The spread within the runs, or between the rounds, is too wide for the median to be
        quoted without a caveat."""
        between = self.round_spread
        return self.iqr_ms > NOISY_IQR_FRACTION * self.median_ms or (between is not None and between > NOISY_IQR_FRACTION)


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


def _call_timer(device, sync, clock) -> Callable[[Callable[[], object]], float]:
    """A function that runs fn() once, synchronised, and returns its seconds: between two CUDA
    events on CUDA (when no `sync` is given), else between two calls of the synchronisation hook."""
    if sync is None and device is not None and getattr(device, "type", "cpu") == "cuda":
        import torch

        def on_events(fn) -> float:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            return begin.elapsed_time(end) / 1e3  # ms -> s

        return on_events
    if sync is None:
        from .device import synchronizer

        sync = synchronizer(device) if device is not None else (lambda: None)

    def on_clock(fn) -> float:
        sync()
        t0 = clock()
        fn()
        sync()
        return clock() - t0

    return on_clock


def time_interleaved(fns: list[Callable[[], object]], device=None, *, min_run_time: float = 0.2,
                     warmup_time: float = 0.15, min_rounds: int | None = None, max_rounds: int = 100_000,
                     sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter,
                     on_round: Callable[[int], object] | None = None) -> list[Timing]:  # fmt: skip
    """Time several callables in rounds, A B C A B C …: first each one's warm-up (at least three
    synchronised calls and `warmup_time` seconds, which also estimate one call's time), then
    rounds in which each callable runs `k` synchronised calls in turn, `k` chosen so that one
    round of it lasts about min_run_time / min_rounds (at least one call). Rounds go on until
    there are `min_rounds` of them (default MIN_ROUNDS for one callable, RATIO_ROUNDS for more)
    and every callable's timed runs add up to `min_run_time`.

    `on_round(k)` is called after round k (1, 2, …); a true return ends the rounds there (an
    interrupt: the rows keep the rounds they have, and `rounds_ms` says how many).

    Returns one Timing per callable: median, p25 and p75 over all its runs, and `rounds_ms`, each
    round's median (round r of every callable ran within the same stretch of time)."""
    if min_rounds is None:
        min_rounds = MIN_ROUNDS if len(fns) < 2 else RATIO_ROUNDS
    timer = _call_timer(device, sync, clock)
    per_call = []
    for fn in fns:  # warm-up: caches, allocator, lazy kernel selection; estimates a call's time
        start, warm = clock(), []
        while len(warm) < 3 or clock() - start < warmup_time:
            warm.append(timer(fn))
        per_call.append(percentile(sorted(warm[1:]), 50))
    budget = min_run_time / max(1, min_rounds)  # seconds per round per callable
    calls = [max(1, round(budget / t)) if t > 0 else 1 for t in per_call]  # about `budget` per round
    runs: list[list[float]] = [[] for _ in fns]
    rounds: list[list[float]] = [[] for _ in fns]
    totals = [0.0 for _ in fns]  # each callable's timed seconds so far (a running sum: rounds stay O(1))
    while len(rounds[0]) < max_rounds and (len(rounds[0]) < min_rounds or any(t < min_run_time for t in totals)):
        for i, fn in enumerate(fns):
            times = [timer(fn) for _ in range(calls[i])]
            runs[i].extend(times)
            totals[i] += sum(times)
            rounds[i].append(1e3 * percentile(sorted(times), 50))
        if on_round is not None and on_round(len(rounds[0])):
            break
    return [dataclasses.replace(summarize(r), rounds_ms=tuple(m)) for r, m in zip(runs, rounds)]
