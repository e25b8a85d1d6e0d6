"""How busy the machine is while attncli times: the load average before timing, and the CPU time
other processes take during it (from /proc: the whole machine's busy time minus this process's).

Linux's /proc/stat gives every CPU's busy time since boot in clock ticks (user, nice, system,
irq, softirq, steal; proc(5)); /proc/self/stat gives this process's own (utime + stime, all its
threads). Their difference over a stretch of wall time is the cores' worth of CPU that other
processes used meanwhile. Elsewhere (macOS, Windows) only the load average (os.getloadavg) is
read, and `others_cores` stays empty. psutil would give the same figures through the same files
on Linux; two short file reads do not need a dependency.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUSY_CORES = 0.5  # other processes taking half a core or more while we time: the machine is busy
SLACK_CORES = 0.25  # --threads may exceed the free cores by this much before the caption warns


@dataclass(frozen=True)
class Load:
    load_avg: float | None  # 1-minute load average, read before timing (os.getloadavg)
    others_cores: float | None  # cores' worth of CPU other processes used while timing
    cpu_count: int  # CPUs this process may run on

    @property
    def free_cores(self) -> float | None:
        return None if self.others_cores is None else max(0.0, self.cpu_count - self.others_cores)

    def columns(self) -> dict:
        """The row columns: load_avg, others_cores, free_cores (rounded to what /proc resolves)."""
        free = self.free_cores
        return {"load_avg": None if self.load_avg is None else round(self.load_avg, 2),
                "others_cores": None if self.others_cores is None else round(self.others_cores, 2),
                "free_cores": None if free is None else round(free, 2)}  # fmt: skip


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return None


def _ticks() -> tuple[int, int] | None:
    """(every CPU's busy ticks, this process's ticks) since boot, or None without /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        with open("/proc/self/stat", encoding="ascii") as f:
            own = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12])  # utime, stime


class Watch:
    """Started before timing, stopped after: the Load of that stretch."""

    def __init__(self):
        self.load_avg, self.start_wall, self.start = load_average(), time.monotonic(), _ticks()

    def stop(self) -> Load:
        end, wall = _ticks(), time.monotonic() - self.start_wall
        others = None
        if self.start is not None and end is not None and wall > 0:
            hz = os.sysconf("SC_CLK_TCK")
            others = max(0.0, ((end[0] - self.start[0]) - (end[1] - self.start[1])) / hz / wall)
        return Load(self.load_avg, others, cpu_count())


def free_cores_now(seconds: float = 0.1) -> float | None:
    """The cores other processes leave free, sampled over `seconds` while this process sleeps
    (100 clock ticks a second: a busy core reads 1.0 ± 0.1 over 0.1 s); None without /proc."""
    w = Watch()
    time.sleep(seconds)
    return w.stop().free_cores


def default_threads(torch_threads: int, free: float | None) -> int:
    """The thread count attncli times with when --threads is not given: torch's own (one per
    physical core), lowered to the cores other processes leave free (with SLACK_CORES of slack,
    the same rule that makes the caption call a row oversubscribed), at least one. A multi-threaded
    op waits for its slowest thread, and a thread sharing a core with a busy process is slow at
    random: on the 2-core EPYC with one core spinning, 2 threads timed `compare mha gqa -p small
    -s 1024` at 150-320 ms with speed-ups 1.03-1.33 over five runs, 1 thread at 131-136 ms and
    1.236-1.251 (benchmarks/under_load.py; docs/measuring.md)."""
    if free is None:
        return torch_threads
    return max(1, min(torch_threads, int(free + SLACK_CORES)))


def watch() -> Watch:
    """Begin watching the machine's load (tests replace this to inject a busy machine)."""
    return Watch()


def is_busy(row: dict) -> bool:
    """Whether a row was timed on a busy machine: other processes took BUSY_CORES or more of CPU
    while it was timed (the load average also counts this process's own threads, so it is shown,
    not judged)."""
    others = row.get("others_cores")
    return others is not None and others >= BUSY_CORES


def oversubscribed(row: dict) -> bool:
    """More torch threads than the cores other processes left free (a quarter-core of slack for
    the background every machine has)."""
    free, threads = row.get("free_cores"), row.get("threads")
    return free is not None and threads is not None and threads > free + SLACK_CORES
