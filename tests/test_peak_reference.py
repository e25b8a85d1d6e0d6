"""The peak's arithmetic with a fake clock: every timed call then lasts exactly STEP seconds, so
the rates are the counts divided by STEP: a matmul of n×n by n×n is 2n³ FLOPs (n³ multiply-adds)
and a copy of a buffer of N bytes moves 2N (N read + N written, STREAM's Copy convention)."""

import functools

import pytest
import torch

from attncli.measure import peak, timing

STEP = 2.0**-10  # seconds the fake clock advances on every reading (a power of two: exact differences)


class FakeClock:
    def __init__(self):
        self.readings = 0

    def __call__(self):
        self.readings += 1
        return self.readings * STEP


@pytest.fixture
def clock(monkeypatch):
    """time_fn as peak.py calls it, but reading the fake clock with a no-op synchronisation."""
    fake = FakeClock()
    monkeypatch.setattr(timing, "time_fn", functools.partial(timing.time_fn, clock=fake, sync=lambda: None))
    return fake


def test_time_fn_with_the_fake_clock_times_each_call_as_one_step():
    t = timing.time_fn(lambda: None, clock=FakeClock(), sync=lambda: None, min_run_time=12 * STEP, warmup_time=0)
    assert t.median_ms == t.p25_ms == t.p75_ms == STEP * 1e3
    assert t.n_runs == 12  # runs of STEP until they add up to min_run_time


@pytest.mark.parametrize("sizes", [(8,), (8, 16), (16, 8, 4)])
def test_matmul_rate_is_2_n_cubed_flops_per_call(clock, sizes):
    gflops, n, noisy = peak.measure_matmul(torch.device("cpu"), "float32", sizes=sizes, min_run_time=0.01)
    best = max(sizes)  # every call takes STEP, so the largest n does the most FLOPs per second
    assert n == best and noisy is False
    assert gflops == pytest.approx(2 * best**3 / STEP / 1e9, rel=1e-9)
    assert clock.readings > 0


def test_matmul_stops_growing_once_a_call_exceeds_the_cpu_limit(monkeypatch):
    slow = 2 * peak.CPU_STOP_SECONDS  # every call now takes twice the limit: only the first size runs
    ticks = iter(i * slow for i in range(10**6))  # a reading every `slow` seconds: each call lasts that
    monkeypatch.setattr(timing, "time_fn", functools.partial(timing.time_fn, clock=lambda: next(ticks),
                                                             sync=lambda: None))  # fmt: skip
    gflops, n, _ = peak.measure_matmul(torch.device("cpu"), "float32", sizes=(8, 16), min_run_time=0)
    assert n == 8 and gflops == pytest.approx(2 * 8**3 / slow / 1e9, rel=1e-9)


@pytest.mark.parametrize("dtype,nbytes", [("float32", 4096), ("float16", 4096), ("bfloat16", 1 << 16)])
def test_bandwidth_counts_read_plus_write(clock, dtype, nbytes):
    gbps, copied, noisy = peak.measure_bandwidth(torch.device("cpu"), dtype, nbytes=nbytes, min_run_time=0.01)
    assert copied == nbytes and noisy is False
    assert gbps == pytest.approx(2 * nbytes / STEP / 1e9, rel=1e-9)


def test_measure_peak_puts_both_figures_and_the_ridge_in_the_record(clock, monkeypatch):
    monkeypatch.setattr(peak, "CPU_SIZES", (8, 16))
    monkeypatch.setattr(peak, "CPU_COPY_BYTES", 8192)
    p = peak.measure_peak(torch.device("cpu"), "float32")
    assert p.gflops == pytest.approx(2 * 16**3 / STEP / 1e9, rel=1e-9) and p.matmul_n == 16
    assert p.gbps == pytest.approx(2 * 8192 / STEP / 1e9, rel=1e-9) and p.copy_bytes == 8192
    assert p.ridge == pytest.approx((2 * 16**3) / (2 * 8192), rel=1e-9)  # FLOP per byte
    assert p.dtype == "float32" and p.threads == torch.get_num_threads()


def test_time_fn_takes_at_least_five_runs_and_at_most_max_runs():
    # The documented floor (min_runs=5) holds when min_run_time is already met, and max_runs caps it.
    assert timing.time_fn(lambda: None, clock=FakeClock(), sync=lambda: None, min_run_time=0, warmup_time=0).n_runs == 5
    t = timing.time_fn(lambda: None, clock=FakeClock(), sync=lambda: None, min_run_time=1e9, warmup_time=0, max_runs=7)
    assert t.n_runs == 7


def test_copy_buffers_are_far_beyond_the_caches_they_claim():
    # peak.py: the CPU buffer is 8× a 32 MiB L3; the GPU one 20× an H100's 50 MiB L2. A buffer that
    # fits in cache would time the cache, not the memory.
    assert peak.CPU_COPY_BYTES >= 8 * 32 * 2**20
    assert peak.GPU_COPY_BYTES >= 20 * 50 * 2**20
