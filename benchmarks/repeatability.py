#!/usr/bin/env python
"""Repeatability of `bench` medians between fresh processes (issue 6, acceptance 3: ≤ 5% on a
quiet machine; issue 21: over at least 10 pairs).

Runs the same `attncli bench` command 2 × --pairs times, each in a fresh process, one right after
the other. Pair i is runs 2i and 2i+1; for each row its difference is |m1 − m2| / mean(m1, m2).
Prints, per row, the median difference over the pairs with its p25–p75 and the largest, and the
spread of the medians themselves across all runs.

    python benchmarks/repeatability.py [--pairs 10]          # bench mha -p medium -s 1024 --device cpu --dtype float32
    python benchmarks/repeatability.py --pairs 10 -- compare mha gqa -m both   # any attncli arguments after --
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import ROOT, machine_line, spread

DEFAULT = ["bench", "mha", "-p", "medium", "-s", "1024", "--device", "cpu", "--dtype", "float32"]
TARGET = 0.05


def run(args: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "attncli", *args, "--json", "-"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(p.stderr.strip())
    return json.loads(p.stdout)


def main() -> None:
    own, rest = (sys.argv[1 : sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1 :]) if "--" in sys.argv else (sys.argv[1:], [])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    a = ap.parse_args(own)
    args = rest or DEFAULT
    print(f"attncli {' '.join(args)}  ({2 * a.pairs} fresh processes back to back; machine: {machine_line()})")
    runs = [run(args) for _ in range(2 * a.pairs)]
    worst_median = 0.0
    for j, first in enumerate(runs[0]):
        name = f"{first['label']} {first['mode']} s={first['seq_len']} b={first['batch']}"
        medians = [r[j]["latency_ms_median"] for r in runs]
        diffs = [abs(m1 - m2) / ((m1 + m2) / 2) for m1, m2 in zip(medians[0::2], medians[1::2])]
        noisy = sum(bool(r[j]["noisy"]) for r in runs)
        d = spread([100 * x for x in diffs])
        worst_median = max(worst_median, d.median / 100)
        print(f"{name}: back-to-back difference {d.show('.1f', '%')}, largest {d.high:.1f}%; "
              f"median latency {spread(medians).show('.3f', ' ms')}; {noisy} of {len(runs)} runs noisy")  # fmt: skip
    verdict = "within" if worst_median <= TARGET else "OVER"
    print(f"median back-to-back difference, worst row: {100 * worst_median:.1f}% ({verdict} {100 * TARGET:.0f}%)")


if __name__ == "__main__":
    main()
