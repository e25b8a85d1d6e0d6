"""A rank that dies or hangs ends a --tp run within the timeout: one line naming the rank, exit 3,
and no rank process left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attncli import presets
from attncli.measure import tp
from attncli.measure.bench import Settings
from attncli.spec import Shape


def _gone(pid: int) -> bool:
    """No such process (or only a zombie awaiting its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _run_until(action: str, rank: int, timeout: float):
    """Start two ranks, then `action` (kill or stop) rank `rank` once it reports that its shard is
    built, i.e. in the middle of the first job. Returns the error, the seconds it took, the pids."""
    p = presets.load_preset("micro")
    settings = Settings(device=torch.device("cpu"), dtype="float32", min_run_time=30.0)  # long enough to be mid-run
    signum = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}[action]

    def on_message(group, kind, who, payload):
        if kind == "beat" and payload == "built" and who == rank:
            os.kill(group.pids[rank], signum)
            group.acted = time.monotonic()

    group = tp.SpawnGroup(2, settings, timeout=timeout, on_message=on_message)
    pids = group.pids
    with pytest.raises(tp.RankError) as info:
        group.measure(presets.parse_variant("gqa", p), p, Shape("prefill", 16, 1), settings)
    took = time.monotonic() - group.acted
    return info.value, took, pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to check the ranks are gone")
def test_killed_rank_ends_the_run_naming_it():
    error, took, pids = _run_until("kill", 1, timeout=20.0)
    assert error.exit_code == 3
    assert f"rank 1 (pid {pids[1]}) killed by signal SIGKILL" in error.message
    assert "\n" not in error.message
    assert took < 20.0  # a death is seen at once, not after the timeout
    assert all(_gone(pid) for pid in pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to check the ranks are gone")
def test_hung_rank_ends_the_run_within_the_timeout():
    """SIGSTOP: rank 1 stops answering; rank 0's collective times out and the parent names rank 1."""
    error, took, pids = _run_until("stop", 1, timeout=3.0)
    assert error.exit_code == 3
    assert error.message.startswith("--tp 2: rank 1 hung: no progress for"), error.message
    assert "\n" not in error.message
    assert took < 3.0 + tp.WATCHDOG_SLACK_S + 5.0
    assert all(_gone(pid) for pid in pids)


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out.extend(int(c) for c in (task / "children").read_text().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _descendants(pid: int) -> list[int]:
    out = []
    for child in _children(pid):
        out += [child, *_descendants(child)]
    return out


def _ranks(pid: int) -> list[int]:
    """The rank processes: forked by multiprocessing's fork server (or spawned, where there is none)."""
    ranks = []
    for child in _children(pid):
        line = _cmdline(child)
        if "forkserver" in line:
            ranks += _children(child)
        elif "spawn_main" in line:
            ranks.append(child)
    return ranks


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the ranks")
def test_cli_exit_3_one_line_no_child_left():
    """The command line: kill one of the rank processes attncli started; it exits 3 with one line
    naming that rank's pid, and every process it started is gone."""
    proc = subprocess.Popen([sys.executable, "-m", "attncli", "bench", "gqa", "-p", "micro", "-s", "16", "--tp", "2",
                             "--device", "cpu", "--min-time", "60", "--tp-timeout", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ranks: list[int] = []
        while len(ranks) < 2 and time.monotonic() < deadline:
            ranks = sorted(_ranks(proc.pid))
            time.sleep(0.05)
        assert len(ranks) == 2, "the two ranks did not start"
        everything = _descendants(proc.pid)  # the ranks, the fork server, multiprocessing's resource tracker
        victim = ranks[1]
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("attncli: --tp 2: rank ") and f"(pid {victim}) killed by signal SIGKILL" in lines[0]
    assert took < 30
    time.sleep(0.5)
    assert all(_gone(pid) for pid in everything)
