"""The timing functions' defaults, bounds and clocks, each pinned with a fake clock whose times are
exact binary fractions (2^-6 s, 2^-9 s), so every run count is derived by hand below; the
mutation run (tools/mutate.py timing) found these unpinned. Nothing here asserts on real speed."""

import dataclasses

import pytest
import torch

from attncli.measure.timing import MIN_ROUNDS, RATIO_ROUNDS, Timing, time_fn, time_interleaved

DT = 2.0**-6  # 0.015625 s: k · DT is exact for every k used here
FINE = 2.0**-9  # 0.001953125 s


class Clock:
    """A clock at 100 s (not 0, so `now - start` differs from `now + start`) that moves only when
    a fake callable says so; `calls` counts those callables' calls."""

    def __init__(self):
        self.now, self.calls = 100.0, 0

    def __call__(self):
        return self.now

    def fn(self, seconds):
        def call():
            self.calls += 1
            self.now += seconds(self.calls) if callable(seconds) else seconds

        return call


def noop():
    return None


def test_time_fn_defaults_warm_up_for_015_s_then_time_02_s():
    # Warm-up: at least 3 calls and 0.15 s: ⌈0.15 / DT⌉ = ⌈9.6⌉ = 10 calls. Timed: at least 5 runs
    # and 0.2 s: ⌈0.2 / DT⌉ = ⌈12.8⌉ = 13 runs. 23 calls in all.
    c = Clock()
    t = time_fn(c.fn(DT), sync=noop, clock=c)
    assert (t.n_runs, c.calls) == (13, 23)
    assert t.median_ms == DT * 1e3


def test_time_fn_warm_up_stops_when_it_has_lasted_exactly_warmup_time():
    # warmup_time = 10 · DT: after 10 calls the warm-up has lasted exactly that, so it stops (the
    # loop runs while shorter); one timed run follows.
    c = Clock()
    time_fn(c.fn(DT), sync=noop, clock=c, warmup_time=10 * DT, min_run_time=0.0, min_runs=1)
    assert c.calls == 11


def test_time_fn_stops_at_max_runs_even_short_of_the_run_time():
    c = Clock()
    t = time_fn(c.fn(DT), sync=noop, clock=c, warmup_time=0.0, min_run_time=1e9, min_runs=10, max_runs=4)
    assert t.n_runs == 4


def test_time_fn_caps_runs_at_100_000_by_default():
    # The warm-up's 3 calls take 0.2 s each; every timed call takes 0 s, so 0.2 s of runs is never
    # reached and only the default cap, 100 000 runs, stops the loop.
    c = Clock()
    t = time_fn(c.fn(lambda k: 0.2 if k <= 3 else 0.0), sync=noop, clock=c)
    assert t.n_runs == 100_000


def test_interleaved_default_is_twenty_rounds():
    assert MIN_ROUNDS == 20
    c = Clock()
    (t,) = time_interleaved([c.fn(DT)], sync=noop, clock=c, min_run_time=0.0, warmup_time=0.0)
    assert len(t.rounds_ms) == 20 and t.n_runs == 20  # 0 s of budget per round: one call each


def test_interleaved_defaults_warm_up_015_s_and_fill_02_s():
    # Warm-up: ⌈0.15 / FINE⌉ = ⌈76.8⌉ = 77 calls; a call's estimate FINE. A round's budget is
    # 0.2 / 20 = 0.01 s: round(0.01 / FINE) = round(5.12) = 5 calls. 20 rounds time 100 · FINE =
    # 0.195 s < 0.2 s, so a 21st runs: 105 runs, 182 calls in all.
    c = Clock()
    (t,) = time_interleaved([c.fn(FINE)], sync=noop, clock=c)
    assert (len(t.rounds_ms), t.n_runs, c.calls) == (21, 105, 182)


def test_interleaved_two_callables_default_to_forty_rounds():
    # Two rows timed together get RATIO_ROUNDS = 40 rounds (their ratio's median needs them,
    # timing.py). Warm-up: 77 calls each, as above. A round's budget is 0.2 / 40 = 0.005 s:
    # round(0.005 / FINE) = round(2.56) = 3 calls. 40 rounds time 120 · FINE = 0.234 s ≥ 0.2 s, so
    # no 41st runs: 120 runs each, 2 · (77 + 120) = 394 calls. (At 20 rounds it would be 5 calls a
    # round and 21 rounds, as for one callable.)
    assert RATIO_ROUNDS == 40
    c = Clock()
    a, b = time_interleaved([c.fn(FINE), c.fn(FINE)], sync=noop, clock=c)
    assert (len(a.rounds_ms), a.n_runs, len(b.rounds_ms), b.n_runs, c.calls) == (40, 120, 40, 120, 394)


def test_interleaved_two_slow_callables_run_forty_rounds_of_one_call():
    c = Clock()
    a, b = time_interleaved([c.fn(DT), c.fn(DT)], sync=noop, clock=c, min_run_time=0.0, warmup_time=0.0)
    assert (len(a.rounds_ms), a.n_runs, b.n_runs, c.calls) == (40, 40, 40, 2 * 3 + 80)


def test_interleaved_on_round_sees_every_round_and_a_true_return_ends_them():
    seen = []
    c = Clock()
    a, b = time_interleaved([c.fn(DT), c.fn(DT)], sync=noop, clock=c, min_run_time=0.0, warmup_time=0.0,
                            on_round=lambda k: seen.append(k) or k == 3)  # fmt: skip
    assert seen == [1, 2, 3] and len(a.rounds_ms) == len(b.rounds_ms) == 3 and a.n_runs == 3
    assert c.calls == 2 * 3 + 2 * 3  # 3 warm-up calls each, then 3 rounds of one call each
    seen.clear()
    (t,) = time_interleaved([c.fn(DT)], sync=noop, clock=c, min_run_time=0.0, warmup_time=0.0,
                            on_round=lambda k: seen.append(k))  # fmt: skip
    assert seen == list(range(1, MIN_ROUNDS + 1)) and len(t.rounds_ms) == MIN_ROUNDS  # None: never stops


def test_interleaved_warm_up_stops_when_it_has_lasted_exactly_warmup_time():
    c = Clock()
    time_interleaved([c.fn(DT)], sync=noop, clock=c, warmup_time=10 * DT, min_run_time=0.0, min_rounds=1)
    assert c.calls == 10 + 1  # 10 warm-up calls, one round of one call


def test_interleaved_stops_at_max_rounds():
    c = Clock()
    (t,) = time_interleaved([c.fn(DT)], sync=noop, clock=c, warmup_time=0.0, min_run_time=0.0, min_rounds=10,
                            max_rounds=3)  # fmt: skip
    assert len(t.rounds_ms) == 3


def test_interleaved_caps_rounds_at_100_000_by_default():
    c = Clock()
    (t,) = time_interleaved([c.fn(lambda k: 1.0 if k <= 3 else 0.0)], sync=noop, clock=c)
    # Warm-up: 3 calls of 1 s (estimate 1 s: one call per round); then 0 s calls never fill 0.2 s.
    assert len(t.rounds_ms) == 100_000


def test_interleaved_one_round_gets_the_whole_run_time():
    # min_rounds 1: the round's budget is all of min_run_time, 0.01 s: round(0.01 / FINE) = 5 calls;
    # 5 · FINE = 0.0098 s < 0.01 s, so a second round runs: 10 runs.
    c = Clock()
    (t,) = time_interleaved([c.fn(FINE)], sync=noop, clock=c, warmup_time=0.0, min_run_time=0.01, min_rounds=1)
    assert (len(t.rounds_ms), t.n_runs) == (2, 10)


def test_interleaved_a_call_that_takes_no_time_runs_once_per_round():
    c = Clock()
    (t,) = time_interleaved([c.fn(0.0)], sync=noop, clock=c, warmup_time=0.0, min_run_time=0.0, min_rounds=4)
    assert (len(t.rounds_ms), t.n_runs) == (4, 4)


class FakeEvent:
    def __init__(self, enable_timing=False):
        assert enable_timing

    def record(self):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return 2.0  # milliseconds


def test_interleaved_cuda_runs_are_timed_with_events_in_milliseconds(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    (t,) = time_interleaved([noop], torch.device("cuda"), min_run_time=0.0, warmup_time=0.0, min_rounds=3)
    assert (t.n_runs, t.median_ms, t.rounds_ms) == (3, 2.0, (2.0, 2.0, 2.0))


def test_interleaved_cuda_with_a_sync_hook_reads_the_clock_instead(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    c, log = Clock(), []
    (t,) = time_interleaved([c.fn(DT)], torch.device("cuda"), sync=lambda: log.append("sync"), clock=c,
                            min_run_time=0.0, warmup_time=0.0, min_rounds=2)  # fmt: skip
    assert t.median_ms == DT * 1e3 and log.count("sync") == 2 * (3 + 2)  # around 3 warm-up and 2 timed calls


def test_interleaved_default_hook_is_the_devices_synchroniser(monkeypatch):
    log = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: log.append("mps"))
    time_interleaved([lambda: log.append("fn")], torch.device("mps"), min_run_time=0.0, warmup_time=0.0, min_rounds=1)
    assert log == ["mps", "fn", "mps"] * 4  # 3 warm-up calls and one round, each between two syncs


def test_round_spread_needs_two_rounds_and_is_their_iqr_over_their_median():
    # Rounds 1 and 2 ms: p25 1.25, p50 1.5, p75 1.75 (linear interpolation): (1.75 − 1.25) / 1.5.
    assert Timing(1.5, 1.0, 2.0, 2, rounds_ms=(1.0, 2.0)).round_spread == pytest.approx(1 / 3, abs=1e-15)
    assert Timing(1.0, 1.0, 1.0, 1, rounds_ms=(1.0,)).round_spread is None
    assert Timing(0.0, 0.0, 0.0, 3, rounds_ms=(0.0, 0.0, 0.0)).round_spread is None  # no median to divide by


def test_timing_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Timing(1.0, 1.0, 1.0, 1).median_ms = 2.0  # type: ignore[misc]


def test_time_fn_stops_when_the_runs_add_up_to_exactly_min_run_time():
    c = Clock()
    t = time_fn(c.fn(DT), sync=noop, clock=c, warmup_time=0.0, min_run_time=4 * DT, min_runs=1)
    assert t.n_runs == 4  # 4 · DT is enough: the loop runs while the total is short of it


def test_not_noisy_at_exactly_ten_percent():
    # IQR 10.5 − 9.5 = 1 of a median of 10 (within the runs), and rounds 9, 10, 11 (p25 9.5, p75
    # 10.5: between the rounds): exactly the threshold, which flags only what exceeds it.
    assert not Timing(10.0, 9.5, 10.5, 9).noisy
    assert not Timing(10.0, 10.0, 10.0, 9, rounds_ms=(9.0, 10.0, 11.0)).noisy
    assert Timing(10.0, 9.5, 10.6, 9).noisy and Timing(10.0, 10.0, 10.0, 9, rounds_ms=(9.0, 10.0, 11.2)).noisy


def test_interleaved_estimates_a_call_by_the_median_of_its_warm_up_calls_after_the_first():
    # Warm-up calls take 7, 0 and 100 FINE; the first is dropped, so the estimate is the median of
    # 0 and 100: 50 FINE. A round's budget of 76 FINE then holds round(1.52) = 2 calls (the 51st
    # percentile, 51 FINE, would give round(1.49) = 1).
    durations = {1: 7 * FINE, 2: 0.0, 3: 100 * FINE}
    c = Clock()
    (t,) = time_interleaved([c.fn(lambda k: durations.get(k, FINE))], sync=noop, clock=c, warmup_time=0.0,
                            min_run_time=76 * FINE, min_rounds=1)  # fmt: skip
    assert t.n_runs == 2 * len(t.rounds_ms) and t.n_runs == 76  # 2 calls a round until 76 · FINE


def test_a_rounds_figure_is_the_median_of_its_calls():
    # Warm-up: 3 calls of 4 FINE (estimate 4 FINE); budget 8 FINE a round: 2 calls, of 1 and 3 FINE
    # (even and odd calls), so each round's median is 2 FINE; after two rounds the 8 FINE are filled.
    c = Clock()
    dur = lambda k: 4 * FINE if k <= 3 else (FINE if k % 2 == 0 else 3 * FINE)  # noqa: E731
    (t,) = time_interleaved([c.fn(dur)], sync=noop, clock=c, warmup_time=0.0, min_run_time=8 * FINE, min_rounds=1)
    assert t.rounds_ms == (2e3 * FINE, 2e3 * FINE)


def test_time_fn_on_cuda_stops_when_the_events_add_up_to_exactly_min_run_time(monkeypatch):
    class SecondEvent(FakeEvent):
        def elapsed_time(self, end):
            return 1000.0  # one second, exact once divided by 1e3

    monkeypatch.setattr(torch.cuda, "Event", SecondEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    t = time_fn(noop, torch.device("cuda"), min_run_time=3.0, warmup_time=0.0, min_runs=1)
    assert (t.n_runs, t.median_ms) == (3, 1000.0)  # 3 s of runs is enough: the loop runs while short of it


def test_time_fn_on_cuda_stops_at_max_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    t = time_fn(noop, torch.device("cuda"), min_run_time=1e9, warmup_time=0.0, min_runs=10, max_runs=4)
    assert t.n_runs == 4
