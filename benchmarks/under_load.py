#!/usr/bin/env python
"""Speed-ups you can trust on a busy machine (issue 16, acceptance 1).

Starts a process that keeps one core busy, then runs `attncli compare mha gqa -p small -s 1024`
five times with the default threads and five times with `--threads 1`, each in a fresh process.
For each setting it prints the five speed-ups (gqa over mha, each the median of that run's
per-round ratios) with their reported p25–p75, their max/min (target ≤ 1.15 with the defaults), and
whether every run's p25–p75 contains the median of the five. The busy process is stopped on
exit, whatever the exit (an error, Ctrl-C, SIGTERM).

    python benchmarks/under_load.py [--runs 5] [--no-load] [-- other attncli compare arguments]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys

from _common import ROOT, machine_line

COMMAND = ["compare", "mha", "gqa", "-p", "small", "-s", "1024"]
TARGET = 1.15  # max/min of the default-thread speed-ups with the load on


class BusyCore:
    """A child process spinning on one core until stopped (at exit at the latest)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(args: list[str]) -> dict:
    """One `attncli compare` in a fresh process: the gqa row, with mha's latency beside it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "attncli", *args, "--json", "-"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"attncli {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    base, row = json.loads(p.stdout)
    return {**row, "base_latency_ms": base["latency_ms_median"]}


def report(name: str, rows: list[dict], target: float | None) -> bool:
    speedups = [r["speedup_vs_base"] for r in rows]
    mid = statistics.median(speedups)
    ratio = max(speedups) / min(speedups)
    inside = [r["speedup_vs_base_p25"] <= mid <= r["speedup_vs_base_p75"] for r in rows]
    others = ", ".join(f"{r['others_cores']:.2f}" for r in rows if r.get("others_cores") is not None)
    print(f"{name}: threads {rows[0]['threads']}; other processes' CPU while timing: {others or 'unknown'} cores")
    for i, (r, ok) in enumerate(zip(rows, inside), 1):
        print(f"  run {i}: speed-up {r['speedup_vs_base']:.3f} (p25–p75 {r['speedup_vs_base_p25']:.3f}–"
              f"{r['speedup_vs_base_p75']:.3f}){'' if ok else '  ← misses the median of five'}"
              f"; mha {r['base_latency_ms']:.1f} ms, gqa {r['latency_ms_median']:.1f} ms")  # fmt: skip
    verdict = "" if target is None else (" (target ≤ %.2f: %s)" % (target, "met" if ratio <= target else "MISSED"))
    print(f"  median of {len(rows)} {mid:.3f}; max/min {ratio:.3f}{verdict}; "
          f"every run's p25–p75 contains the median: {'yes' if all(inside) else 'NO'}")
    return (target is None or ratio <= target) and all(inside)


def main() -> int:
    own, rest = (sys.argv[1 : sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1 :]) if "--" in sys.argv else (sys.argv[1:], [])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-load", action="store_true", help="do not start the busy process (an idle-machine baseline)")
    a = ap.parse_args(own)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the atexit handler on SIGTERM too
    busy = None if a.no_load else BusyCore()
    try:
        print(f"{machine_line()}; {'no load started' if busy is None else f'a busy process (pid {busy.proc.pid}) spins on one core'}")
        print(f"command: attncli {' '.join(COMMAND + rest)}")
        defaults = [run(COMMAND + rest) for _ in range(a.runs)]
        ok = report("defaults", defaults, None if busy is None else TARGET)
        single = [run(COMMAND + rest + ["--threads", "1"]) for _ in range(a.runs)]
        ok = report("--threads 1", single, None) and ok
    finally:
        if busy is not None:
            busy.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
