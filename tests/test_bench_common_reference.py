"""benchmarks/_common.py's round helpers, against values worked out by hand: the benchmarks' quoted
spreads come from these."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import interleaved, per_round, spread  # noqa: E402


def test_spread_is_the_median_and_linear_quartiles():
    # 1..10: median (5 + 6) / 2 = 5.5; p25 at rank 9·0.25 = 2.25 → 3 + 0.25 = 3.25; p75 at 6.75 → 7.75.
    s = spread([7, 1, 10, 3, 5, 2, 9, 4, 8, 6])
    assert (s.median, s.p25, s.p75, s.n, s.low, s.high) == (5.5, 3.25, 7.75, 10, 1, 10)
    assert s.iqr_fraction == pytest.approx(4.5 / 5.5)
    assert s.show(".2f", " ms") == "5.50 ms (p25–p75 3.25–7.75 ms, n=10)"
    with pytest.raises(ValueError):
        spread([])


def test_interleaved_alternates_the_order_and_keeps_values_per_side():
    calls = []
    counter = iter(range(100))

    def side(name):
        def f():
            calls.append(name)
            return next(counter)

        return f

    seen = []
    got = interleaved({"a": side("a"), "b": side("b"), "c": side("c")}, 4, on_round=lambda i, v: seen.append((i, v)))
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"]  # ABC CBA ABC CBA
    assert got == {"a": [0, 5, 6, 11], "b": [1, 4, 7, 10], "c": [2, 3, 8, 9]}
    assert seen[1] == (1, {"a": 5, "b": 4, "c": 3})


def test_ratios_are_taken_round_by_round():
    # The median of per-round ratios (1, 2, 3) is 2; the ratio of the medians would be 4 / 3.
    assert per_round([2.0, 4.0, 9.0], [2.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert spread(per_round([2.0, 4.0, 9.0], [2.0, 2.0, 3.0])).median == 2.0
