"""The one timing function: synchronisation, percentiles, adaptive repetition, the noisy flag.
Nothing here asserts on speed: a fake clock makes the run counts exact."""

import statistics

import pytest
import torch

from attncli.measure import timing
from attncli.measure.timing import Timing, percentile, summarize, time_fn


class FakeClock:
    """A clock that only moves when the timed function says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_sync_hook_brackets_every_timed_run():
    events = []
    clock = FakeClock()

    def fn():
        events.append("fn")
        clock.now += 0.01

    t = time_fn(fn, sync=lambda: events.append("sync"), min_run_time=0.0, warmup_time=0.0, min_runs=4, clock=clock)
    assert t.n_runs == 4
    warm, timed = events[:4], events[4:]
    assert warm == ["fn", "fn", "fn", "sync"]  # three warm-up calls, then wait for them to finish
    assert timed == ["sync", "fn", "sync"] * 4  # each run starts and ends on a synchronised device


def test_default_hook_is_the_devices_synchroniser(monkeypatch):
    """On MPS the clock is read between torch.mps.synchronize calls."""
    calls = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("mps"))
    t = time_fn(lambda: calls.append("fn"), torch.device("mps"), min_run_time=0.0, warmup_time=0.0, min_runs=2)
    assert t.n_runs == 2
    assert calls[-6:] == ["mps", "fn", "mps", "mps", "fn", "mps"]


def test_cuda_runs_are_timed_with_events(monkeypatch):
    """On CUDA each run sits between two recorded events and the end event is waited for."""
    log = []

    class FakeEvent:
        count = 0

        def __init__(self, enable_timing=False):
            assert enable_timing
            FakeEvent.count += 1
            self.id = FakeEvent.count

        def record(self):
            log.append(f"record{self.id % 2}")

        def synchronize(self):
            log.append("wait")

        def elapsed_time(self, end):
            return 2.0  # milliseconds

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    t = time_fn(lambda: log.append("fn"), torch.device("cuda"), min_run_time=0.0, warmup_time=0.0, min_runs=3)
    assert (t.n_runs, t.median_ms) == (3, 2.0)
    assert log[:4] == ["fn", "fn", "fn", "sync"]
    assert log[4:] == ["record1", "fn", "record0", "wait"] * 3


def test_percentiles_interpolate_linearly_on_a_known_sample():
    sample = [1.0, 2.0, 3.0, 4.0]
    assert percentile(sample, 25) == 1.75
    assert percentile(sample, 50) == 2.5
    assert percentile(sample, 75) == 3.25
    assert percentile(sample, 0) == 1.0 and percentile(sample, 100) == 4.0
    assert percentile([7.0], 25) == 7.0
    data = sorted([0.3, 1.7, 2.2, 9.0, 4.4, 5.1, 0.9])
    q1, q2, q3 = statistics.quantiles(data, n=4, method="inclusive")  # the same (NumPy-default) rule
    assert [percentile(data, q) for q in (25, 50, 75)] == pytest.approx([q1, q2, q3])
    t = summarize([0.004, 0.001, 0.003, 0.002])  # seconds, unsorted
    assert (t.p25_ms, t.median_ms, t.p75_ms, t.n_runs) == pytest.approx((1.75, 2.5, 3.25, 4))


@pytest.mark.parametrize(
    "dt,min_run_time,min_runs,max_runs,expected",
    [
        (1 / 64, 1 / 8, 5, 1000, 8),  # min_run_time rules: 8 runs of 1/64 s make 1/8 s (exact in binary)
        (1 / 64, 1 / 32, 5, 1000, 5),  # min_runs rules
        (1 / 64, 1.0, 5, 7, 7),  # max_runs caps
        (3 / 64, 1 / 8, 1, 1000, 3),  # the run that crosses min_run_time is the last
    ],
)
def test_adaptive_repetition(dt, min_run_time, min_runs, max_runs, expected):
    clock = FakeClock()

    def fn():
        clock.now += dt

    t = time_fn(fn, sync=lambda: None, min_run_time=min_run_time, min_runs=min_runs, max_runs=max_runs,
                warmup_time=0.0, clock=clock)  # fmt: skip
    assert t.n_runs == expected
    assert t.median_ms == pytest.approx(dt * 1e3)


def test_warmup_lasts_warmup_time_and_at_least_three_calls():
    clock = FakeClock()
    calls = []

    def fn():
        calls.append(clock.now)
        clock.now += 0.01

    time_fn(fn, sync=lambda: None, min_run_time=0.0, min_runs=1, warmup_time=0.055, clock=clock)
    assert len(calls) == 6 + 1  # warm-up until 0.06 ≥ 0.055, then one timed run
    calls.clear()
    time_fn(fn, sync=lambda: None, min_run_time=0.0, min_runs=1, warmup_time=0.0, clock=clock)
    assert len(calls) == 3 + 1


def test_noisy_when_iqr_exceeds_ten_percent_of_the_median():
    assert timing.NOISY_IQR_FRACTION == 0.10  # torch.utils.benchmark's _IQR_WARN_THRESHOLD
    assert not Timing(median_ms=10.0, p25_ms=9.5, p75_ms=10.5, n_runs=9).noisy  # IQR 1.0 = 10%
    assert Timing(median_ms=10.0, p25_ms=9.5, p75_ms=10.6, n_runs=9).noisy  # 11%
    assert Timing(median_ms=10.0, p25_ms=9.5, p75_ms=10.6, n_runs=9).iqr_ms == pytest.approx(1.1)
