"""Interleaved timing: rows timed in rounds A B C A B C … after their warm-ups; the speed-up is the
median of per-round ratios with its p25–p75; `noisy` also from the spread between rounds.
Fake clocks make every figure exact; nothing here asserts on real speed."""

import pytest

from attncli import rows
from attncli.measure import bench, timing
from attncli.measure.timing import Timing, time_fn, time_interleaved


class Machine:
    """A fake clock and callables whose cost is `work` × the machine's current slowness."""

    def __init__(self):
        self.now, self.slowness, self.log = 0.0, 1.0, []

    def clock(self):
        return self.now

    def fn(self, name: str, work: float):
        def call():
            self.log.append(name)
            self.now += work * self.slowness

        return call


def test_rows_run_in_rounds_after_each_ones_warm_up():
    m = Machine()
    fns = [m.fn("A", 1.0), m.fn("B", 1.0), m.fn("C", 1.0)]
    out = time_interleaved(fns, sync=lambda: None, clock=m.clock, min_run_time=0, warmup_time=0, min_rounds=4)
    assert m.log == ["A"] * 3 + ["B"] * 3 + ["C"] * 3 + ["A", "B", "C"] * 4  # warm-ups first, then the rounds
    assert [(t.n_runs, len(t.rounds_ms)) for t in out] == [(4, 4)] * 3


def test_each_round_lasts_about_its_share_of_min_run_time():
    m = Machine()
    fast, slow = m.fn("f", 0.001), m.fn("s", 0.01)  # 1 ms and 10 ms a call
    out = time_interleaved([fast, slow], sync=lambda: None, clock=m.clock, min_run_time=0.2, warmup_time=0,
                           min_rounds=10)  # fmt: skip
    # 20 ms per round each: 20 calls of the fast one, 2 of the slow one, for 10 rounds
    assert [t.n_runs for t in out] == [200, 20] and [len(t.rounds_ms) for t in out] == [10, 10]
    assert m.log[6:6 + 22] == ["f"] * 20 + ["s"] * 2
    assert out[0].median_ms == pytest.approx(1.0) and out[1].rounds_ms == pytest.approx((10.0,) * 10)


def test_drift_between_rounds_cancels_in_the_per_round_ratio():
    """The machine gets 3× slower every round. Timed one after the other, B (twice A's work) would
    look 9× slower than A or more; round by round its ratio is exactly 2."""
    m = Machine()
    a, b = m.fn("A", 1.0), m.fn("B", 2.0)

    def drifting(fn):
        def call():
            fn()
            if m.log[-1] == "B" and len(m.log) > 6:  # the end of a round (after both warm-ups)
                m.slowness *= 3

        return call

    ta, tb = time_interleaved([drifting(a), drifting(b)], sync=lambda: None, clock=m.clock, min_run_time=0,
                              warmup_time=0, min_rounds=5)  # fmt: skip
    per_round = [x / y for x, y in zip(tb.rounds_ms, ta.rounds_ms)]
    assert per_round == pytest.approx([2.0] * 5)
    assert tb.round_spread > 1 and ta.noisy and tb.noisy  # the rounds moved: both rows are flagged
    # the same drift, timed one after the other
    m2 = Machine()
    sa = time_fn(m2.fn("A", 1.0), sync=lambda: None, clock=m2.clock, min_run_time=0, warmup_time=0, min_runs=5)
    m2.slowness = 3.0**5
    sb = time_fn(m2.fn("B", 2.0), sync=lambda: None, clock=m2.clock, min_run_time=0, warmup_time=0, min_runs=5)
    assert sb.median_ms / sa.median_ms == pytest.approx(2 * 243)


def test_noisy_from_the_rounds_spread_even_when_the_runs_look_tight():
    steady = Timing(1.0, 0.97, 1.03, 40, rounds_ms=(0.98, 1.0, 1.0, 1.02))
    drifted = Timing(1.0, 0.97, 1.03, 40, rounds_ms=(0.8, 0.9, 1.0, 1.1, 1.2))  # IQR of rounds 0.2 = 20%
    assert not steady.noisy and steady.round_spread == pytest.approx((1.005 - 0.995) / 1.0)  # p75 − p25 over the median
    assert drifted.noisy and drifted.round_spread == pytest.approx(0.2)
    assert Timing(1.0, 0.8, 1.3, 40).noisy  # within the runs, as before


def _row(label, latency, rounds):
    return {"label": label, "mode": "prefill", "seq_len": 64, "batch": 1, "latency_ms_median": latency,
            "kv_cache_bytes": 1, "flops": 1, "_round_ms": rounds, "noisy": False}  # fmt: skip


def test_speedup_is_the_median_of_per_round_ratios_with_its_spread():
    base = _row("mha", 25.0, [10.0, 20.0, 30.0, 40.0])
    other = _row("gqa", 20.0, [5.0, 10.0, 30.0, 20.0])  # per round: 2, 2, 1, 2
    steady = _row("mqa", 10.0, [5.0, 10.0, 15.0, 20.0])  # per round: 2, 2, 2, 2
    rows.add_ratios([base, other, steady])
    # sorted ratios 1, 2, 2, 2: median 2 (the medians' ratio would be 25 / 20 = 1.25), p25 1.75, p75 2
    assert (other["speedup_vs_base"], other["speedup_vs_base_p25"], other["speedup_vs_base_p75"]) == (2.0, 1.75, 2.0)
    assert other["noisy"] is True  # p75 − p25 = 0.25 > 10% of 2
    assert (steady["speedup_vs_base"], steady["noisy"]) == (2.0, False)
    assert (base["speedup_vs_base"], base["speedup_vs_base_p25"], base["speedup_vs_base_p75"]) == (1.0, 1.0, 1.0)
    rows.drop_private([base, other, steady])
    assert not any(k.startswith("_") for r in (base, other, steady) for k in r)


def test_a_row_without_rounds_gets_the_ratio_of_medians():
    base, alone = _row("mha", 30.0, [10.0, 20.0]), _row("gqa", 20.0, None)
    rows.add_ratios([base, alone])
    assert alone["speedup_vs_base"] == 1.5 and alone["speedup_vs_base_p25"] is None


def test_compare_times_each_shapes_rows_together(cli, monkeypatch):
    calls = []
    real = bench.time_interleaved

    def recording(fns, *args, **kwargs):
        calls.append(len(fns))
        return real(fns, *args, **kwargs)

    monkeypatch.setattr(bench, "time_interleaved", recording)
    r = cli("compare", "mha", "gqa", "mla:absorb=true", "-p", "micro", "-s", "16,32", "--min-time", "0",
            "--threads", "1", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    assert calls == [3, 3]  # one interleaved timing per shape, all three rows in it
    out = r.rows()
    for row in out:
        assert row["n_rounds"] == timing.RATIO_ROUNDS and row["n_runs"] >= timing.RATIO_ROUNDS
        assert row["speedup_vs_base_p25"] <= row["speedup_vs_base"] <= row["speedup_vs_base_p75"]
        assert not any(k.startswith("_") for k in row)


def test_a_stack_in_compare_gets_per_round_ratios_too(cli):
    r = cli("compare", "mha", "hybrid:pattern=[linear,gqa]", "-p", "micro", "-s", "16", "--layers", "2",
            "--min-time", "0", "--threads", "1", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    mha, hybrid = r.rows()
    assert hybrid["speedup_vs_base_p25"] <= hybrid["speedup_vs_base"] <= hybrid["speedup_vs_base_p75"]
    assert mha["n_rounds"] == hybrid["n_rounds"] == timing.RATIO_ROUNDS
