"""Load awareness: the load average and other processes' CPU time (from /proc) go on every measured
row, and a row timed on a busy machine, or with more threads than the free cores, carries the
caption warning with the `--threads 1` advice. Busy figures are injected; nothing is timed for speed."""

import pytest

from attncli.measure import load


class FakeWatch:
    def __init__(self, figures: load.Load):
        self.figures = figures

    def stop(self) -> load.Load:
        return self.figures


def inject(monkeypatch, load_avg, others, cpus=2):
    monkeypatch.setattr(load, "watch", lambda: FakeWatch(load.Load(load_avg, others, cpus)))


def test_others_cpu_time_from_proc_by_hand(monkeypatch):
    ticks = iter([(1_000, 40), (1_000 + 300, 40 + 100)])  # (all CPUs' busy ticks, this process's), start and stop
    walls = iter([50.0, 52.0])  # two seconds of wall time
    monkeypatch.setattr(load, "_ticks", lambda: next(ticks))
    monkeypatch.setattr(load.time, "monotonic", lambda: next(walls))
    monkeypatch.setattr(load, "load_average", lambda: 3.25)
    monkeypatch.setattr(load, "cpu_count", lambda: 2)
    monkeypatch.setattr(load.os, "sysconf", lambda name: 100)  # 100 ticks a second
    figures = load.Watch().stop()
    # the machine was busy 300 ticks, 100 of them ours: 200 ticks / 100 Hz / 2 s = 1 core of others
    assert (figures.load_avg, figures.others_cores, figures.free_cores) == (3.25, 1.0, 1.0)
    assert figures.columns() == {"load_avg": 3.25, "others_cores": 1.0, "free_cores": 1.0}


def test_the_real_proc_files_parse():
    w = load.Watch()
    figures = w.stop()
    assert figures.cpu_count >= 1
    if w.start is not None:  # Linux
        assert figures.others_cores is not None and figures.others_cores >= 0


def test_busy_and_oversubscribed_rules():
    assert load.is_busy({"others_cores": 0.5}) and not load.is_busy({"others_cores": 0.4})
    assert not load.is_busy({"others_cores": None})
    assert load.oversubscribed({"threads": 2, "free_cores": 1.0})
    assert not load.oversubscribed({"threads": 2, "free_cores": 1.9})  # within the quarter-core of slack
    assert not load.oversubscribed({"threads": 1, "free_cores": 0.9})


COMPARE = ["compare", "mha", "gqa", "-p", "micro", "-s", "16", "--min-time", "0", "--device", "cpu"]


def test_a_busy_machine_puts_the_warning_in_the_caption(cli, monkeypatch):
    inject(monkeypatch, load_avg=3.9, others=1.6)
    r = cli(*COMPARE, "--threads", "2", "--json", "-")
    assert r.code == 0, r.err
    for row in r.rows():
        assert (row["load_avg"], row["others_cores"], row["free_cores"]) == (3.9, 1.6, 0.4)
    caption = " ".join(r.err.split())
    assert ("machine busy while timing: other processes took 1.6 cores, 0.4 left free (load average 3.9); "
            "2 threads > the free cores: latencies are inflated and drift; rerun with --threads 1") in caption


def test_one_thread_on_a_busy_machine_still_says_busy(cli, monkeypatch):
    inject(monkeypatch, load_avg=1.2, others=0.9)
    r = cli(*COMPARE, "--threads", "1", "--json", "-")
    caption = " ".join(r.err.split())
    assert "machine busy while timing: other processes took 0.9 cores, 1.1 left free" in caption
    assert "rerun on a quieter machine" in caption and "threads >" not in caption


def test_a_quiet_machine_has_no_warning(cli, monkeypatch):
    inject(monkeypatch, load_avg=0.1, others=0.05)
    r = cli(*COMPARE, "--threads", "2", "--json", "-")
    assert r.code == 0, r.err
    assert "machine busy" not in r.err
    assert {row["others_cores"] for row in r.rows()} == {0.05}


@pytest.mark.parametrize("view", ["bench", "compare"])
def test_report_rebuilds_the_warning_from_the_rows(cli, monkeypatch, tmp_path, view):
    inject(monkeypatch, load_avg=3.0, others=1.5)
    csv = tmp_path / "busy.csv"
    assert cli(view, "mha", "-p", "micro", "-s", "16", "--min-time", "0", "--threads", "2", "--csv", csv).code == 0
    r = cli("report", csv)
    assert r.code == 0, r.err
    assert "machine busy while timing" in " ".join((r.out + r.err).split())


def test_under_load_benchmark_stops_its_busy_process(monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import under_load

    busy = under_load.BusyCore()
    try:
        assert busy.proc.poll() is None  # spinning
    finally:
        busy.stop()
    assert busy.proc.poll() is not None
    busy.stop()  # a second stop (the atexit one) is harmless
    sys.modules.pop("under_load", None)
