"""Load awareness: the load average and other processes' CPU time (from /proc) go on every measured
row, and a row timed on a busy machine, or with more threads than the free cores, carries the
caption warning with the `--threads 1` advice. Busy figures are injected; nothing is timed for speed."""

import pytest

from attncli.measure import load

FREE_CORES_NOW = load.free_cores_now  # conftest replaces it in every test (no thread choice from the real machine)


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


@pytest.mark.parametrize("torch_threads,free,chosen", [
    (2, None, 2),  # no /proc: torch's own
    (2, 1.0, 1),  # one of two cores spinning: 1.0 + 0.25 slack → 1
    (2, 1.8, 2),  # a quarter core of background: 1.8 + 0.25 ≥ 2
    (2, 1.7, 1),  # 1.95 < 2: two threads would be oversubscribed (load.oversubscribed: 2 > 1.7 + 0.25)
    (8, 5.3, 5),  # int(5.55)
    (2, 0.0, 1),  # every core busy: still one thread
    (4, 16.0, 4),  # never more than torch's own
])
def test_default_threads_by_hand(torch_threads, free, chosen):
    assert load.default_threads(torch_threads, free) == chosen
    if free is not None and chosen < torch_threads:  # the count it picks is the largest not oversubscribed
        assert not load.oversubscribed({"threads": chosen, "free_cores": free}) or chosen == 1
        assert load.oversubscribed({"threads": chosen + 1, "free_cores": free})


def test_free_cores_now_from_proc_by_hand(monkeypatch):
    ticks = iter([(5_000, 70), (5_000 + 11, 70)])  # 11 ticks of others' CPU while this process sleeps
    walls = iter([10.0, 10.1])
    monkeypatch.setattr(load, "_ticks", lambda: next(ticks))
    monkeypatch.setattr(load.time, "monotonic", lambda: next(walls))
    monkeypatch.setattr(load.time, "sleep", lambda s: None)
    monkeypatch.setattr(load.os, "sysconf", lambda name: 100)
    monkeypatch.setattr(load, "cpu_count", lambda: 2)
    assert FREE_CORES_NOW() == pytest.approx(2 - 0.11 / 0.1)  # 1.1 cores' worth in 0.1 s → 0.9 free


@pytest.fixture
def torch_threads():
    """torch's thread count as the test found it, restored after (the CLI sets it process-wide)."""
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_without_threads_a_busy_machine_gets_fewer_and_the_caption_says_why(cli, monkeypatch, torch_threads):
    torch_threads.set_num_threads(2)
    monkeypatch.setattr(load, "free_cores_now", lambda seconds=0.1: 1.0)  # one of two cores held by others
    inject(monkeypatch, load_avg=1.1, others=1.0)
    r = cli(*COMPARE, "--json", "-")
    assert r.code == 0, r.err
    for row in r.rows():
        assert (row["threads"], row["threads_default"], row["free_cores_start"]) == (1, 2, 1.0)
    caption = " ".join(r.err.split())
    assert ("1 thread, not torch's 2: only 1.0 cores were free when the run began (a thread sharing a core with "
            "other work stalls the rest); --threads 2 overrides") in caption


def test_an_asked_thread_count_is_kept_on_a_busy_machine(cli, monkeypatch, torch_threads):
    monkeypatch.setattr(load, "free_cores_now", lambda seconds=0.1: 0.5)
    r = cli(*COMPARE, "--threads", "2", "--json", "-")
    assert r.code == 0, r.err
    assert {(row["threads"], row["threads_default"]) for row in r.rows()} == {(2, None)}
    assert "not torch's" not in r.err
