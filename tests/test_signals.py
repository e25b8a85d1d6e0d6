"""SIGINT, SIGTERM and SIGHUP end a measuring run alike: finished rows on disk, one line on stderr,
exit 128 + the signal; a second signal is ignored until the rows are written (attncli/signals.py)."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from attncli import signals
from conftest import default_signals

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and a pty")


def read_available(fd, buf: bytearray, timeout=0.1) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return True
    try:
        data = os.read(fd, 65536)
    except OSError:  # the child closed its end
        return False
    buf.extend(data)
    return bool(data)


@pytest.mark.parametrize("sent,code", [((signal.SIGTERM,), 143), ((signal.SIGHUP,), 129),
                                       ((signal.SIGINT, signal.SIGINT), 130)], ids=["SIGTERM", "SIGHUP", "SIGINTx2"])  # fmt: skip
def test_a_signal_to_a_measured_compare_keeps_the_finished_rows(tmp_path, sent, code):
    """stderr is a pty, so the progress bar shows `k/6` once k rows are done: the signal comes after
    at least one finished row and before the last."""
    import pty

    out_csv, out_json = tmp_path / "c.csv", tmp_path / "c.json"
    master, slave = pty.openpty()
    args = [sys.executable, "-m", "attncli", "compare", "mha", "mqa", "-p", "micro", "-s", "16,32,64", "--device", "cpu",
            "--min-time", "0.2", "--csv", out_csv, "--json", out_json]  # fmt: skip
    proc = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "COLUMNS": "100"},
                            preexec_fn=default_signals)  # fmt: skip
    os.close(slave)
    seen, deadline = bytearray(), time.time() + 120
    while b"1/6" not in seen and time.time() < deadline and read_available(master, seen):
        pass
    assert b"1/6" in seen, bytes(seen)
    for s in sent:
        proc.send_signal(s)
        time.sleep(0.05)
    proc.communicate(timeout=60)  # the table on stdout
    while select.select([master], [], [], 0.2)[0] and read_available(master, seen, timeout=0):
        pass
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", bytes(seen).decode("utf-8", "replace"))  # the bar's escapes
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert proc.returncode == code, bytes(seen)[-500:]
    name = signal.Signals(sent[0]).name
    assert last.startswith("attncli: interrupted after ") and f" of 6 rows ({name}); the finished rows" in last, last
    done = int(last.split("after ")[1].split(" of")[0])
    assert 1 <= done < 6
    rows = pd.read_csv(out_csv)
    assert len(rows) == done and rows["latency_ms_median"].notna().all()
    assert [r["label"] for r in json.loads(out_json.read_text())] == list(rows["label"])


def test_a_signal_during_start_up_is_one_line_and_its_exit_code(tmp_path):
    """SIGTERM while torch is still loading: one line, 143, and no file left half-made."""
    out_csv = tmp_path / "c.csv"
    args = [sys.executable, "-m", "attncli", "bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu",
            "--min-time", "0.3", "--csv", str(out_csv)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    time.sleep(0.4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.startswith("attncli: interrupted") and err.count("\n") == 1 and "SIGTERM" in err, err
    assert not out_csv.exists() and list(tmp_path.iterdir()) == []


def test_sigterm_to_a_measured_sweep_keeps_its_rows(tmp_path):
    out_csv = tmp_path / "s.csv"
    args = [sys.executable, "-m", "attncli", "sweep", "mha", "-p", "micro", "-s", "16:256", "--mode", "prefill",
            "--measure", "--device", "cpu", "--min-time", "0.3", "--csv", str(out_csv)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.time() + 120
    while time.time() < deadline and (not out_csv.exists() or out_csv.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("attncli: interrupted after ") and "(SIGTERM)" in last and "--resume continues" in last
    done = int(last.split("after ")[1].split(" of")[0])
    assert len(pd.read_csv(out_csv)) == done >= 1


@pytest.fixture
def handlers():
    """Known handlers for the in-process tests, whatever this run inherited: SIGINT at Python's
    default, SIGTERM and SIGHUP at a handler that does nothing; the originals come back after."""
    before = {s: signal.getsignal(s) for s in signals.HANDLED}
    known = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _nothing, signal.SIGHUP: _nothing}
    for s, h in known.items():
        signal.signal(s, h)
    yield known
    for s, h in before.items():
        signal.signal(s, h)


def _nothing(signum, frame):
    return None


def test_a_signal_inside_deferred_waits_for_the_block_to_end(handlers):
    """In-process: a file being written is finished before the first signal is raised; later
    signals are only recorded."""
    signals.install()
    try:
        steps = []
        with pytest.raises(signals.Interrupted) as e:
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.01)
                steps.append("written")
            steps.append("not reached")
        assert steps == ["written"] and e.value.exit_code == 129 and signals.exit_code() == 129
        os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised: the rows are being saved
        time.sleep(0.01)
        assert signals.received() == signal.SIGHUP
    finally:
        signals.restore()
    assert all(signal.getsignal(s) is h for s, h in handlers.items())  # restore() puts back what was there


def test_a_signal_started_ignored_stays_ignored(handlers):
    """`nohup` starts a process with SIGHUP ignored: install() leaves it so (a hang-up does not end
    the run) and still handles the others; restore() leaves it ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signals.install()
    try:
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is not handlers[signal.SIGTERM]  # replaced
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.01)
        assert signals.received() is None  # nothing was raised or recorded
        with pytest.raises(signals.Interrupted) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        assert e.value.exit_code == 143
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is handlers[signal.SIGTERM]


def _hup_ignored():
    default_signals()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts its command


def test_a_hang_up_under_nohup_does_not_end_a_measured_compare(tmp_path):
    """A child started as `nohup` starts it: a SIGHUP once it is measuring changes nothing, and all
    its rows are written (before the fix it stopped with 129)."""
    out_json = tmp_path / "c.json"
    args = [sys.executable, "-m", "attncli", "compare", "mha", "mqa", "-p", "micro", "-s", "16,32", "--device", "cpu",
            "--min-time", "0.3", "--json", str(out_json)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_hup_ignored)
    time.sleep(1.5)  # past start-up (signals.install is the first thing `python -m attncli` does)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(json.loads(out_json.read_text())) == 4



def test_a_signal_while_rows_are_timed_in_rounds_keeps_them(monkeypatch):
    """A signal during the interleaved rounds ends them after the round under way; the built rows
    are kept with the rounds they have, and the run then ends as interrupted
    (measure/stack.measure_jobs)."""
    import torch

    from attncli import presets
    from attncli.measure import bench, stack
    from attncli.spec import Shape

    real = bench.time_interleaved

    def signalled_mid_timing(fns, device, **kwargs):
        signals._handler(signal.SIGTERM, None)  # as if SIGTERM arrived now, before the first round
        return real(fns, device, **kwargs)

    monkeypatch.setattr(bench, "time_interleaved", signalled_mid_timing)
    monkeypatch.setattr(signals, "_state", {**signals._state, "received": None, "raised": False, "depth": 0})
    preset = presets.load_preset("micro")
    jobs = [(presets.parse_variant(v, preset), Shape("prefill", 16, 1), None) for v in ("mha", "mqa")]
    settings = bench.Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0.001)
    done, interrupted = stack.measure_jobs(jobs, preset, settings, layers=1)
    assert interrupted and signals.received() == signal.SIGTERM
    assert [r["label"] for r in done] == ["mha", "mqa"] and all(r["latency_ms_median"] > 0 for r in done)
    assert [r["n_rounds"] for r in done] == [1, 1]  # the round under way finished, no other began


def test_a_signal_between_two_shapes_keeps_the_first_shapes_rows(monkeypatch):
    """A signal after one shape's rows are finished and before the next shape's rows begin (outside
    both of measure_jobs' guarded blocks) still returns the finished rows, not an empty run."""
    import torch

    from attncli import presets
    from attncli.measure import bench, stack
    from attncli.spec import Shape

    made = []

    class SignalledSecond(bench.Rounds):
        def __init__(self):
            made.append(self)
            if len(made) == 2:  # the second shape's rounds: as if SIGTERM arrived now
                signals._handler(signal.SIGTERM, None)
            super().__init__()

    monkeypatch.setattr(stack, "Rounds", SignalledSecond)
    monkeypatch.setattr(signals, "_state", {**signals._state, "received": None, "raised": False, "depth": 0})
    preset = presets.load_preset("micro")
    jobs = [(presets.parse_variant(v, preset), Shape("prefill", s, 1), None) for s in (16, 32) for v in ("mha", "mqa")]
    settings = bench.Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0.001)
    done, interrupted = stack.measure_jobs(jobs, preset, settings, layers=1)
    assert interrupted and signals.received() == signal.SIGTERM
    assert [(r["label"], r["seq_len"]) for r in done] == [("mha", 16), ("mqa", 16)]
    assert all(r["latency_ms_median"] > 0 for r in done)
