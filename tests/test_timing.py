"""The timing function: percentiles, synchronisation around every run, adaptive repetition."""

import pytest

from attncli.measure import timing


def test_percentiles_on_a_known_sample():
    s = [1.0, 2.0, 3.0, 4.0]
    assert timing.percentile(s, 50) == 2.5
    assert timing.percentile(s, 25) == 1.75
    assert timing.percentile(s, 75) == 3.25
    assert timing.percentile([7.0], 25) == 7.0
    t = timing.summarize([0.004, 0.001, 0.003, 0.002, 0.005])
    assert (t.median_ms, t.p25_ms, t.p75_ms, t.n_runs) == pytest.approx((3.0, 2.0, 4.0, 5))


def test_every_timed_run_is_bracketed_by_a_device_sync():
    events = []
    t = timing.time_fn(lambda: events.append("run"), sync=lambda: events.append("sync"), min_run_time=0,
                       warmup_time=0, min_runs=5)  # fmt: skip
    timed = events[events.index("sync") + 1 :]  # after the warm-up's closing sync
    assert t.n_runs == 5
    assert timed == ["sync", "run", "sync"] * 5


def test_repeats_until_the_minimum_run_time():
    import time

    t = timing.time_fn(lambda: time.sleep(0.002), min_run_time=0.05, warmup_time=0, min_runs=1)
    # Each run sleeps ≥ 2 ms, so reaching 50 ms takes at most 25 runs (+1 to cross), and more than one.
    assert 2 <= t.n_runs <= 26
    assert t.median_ms >= 2.0
