#!/usr/bin/env python
"""Back-to-back repeatability of `bench` medians (issue 6, acceptance 3: ≤ 5% on a quiet machine).

Runs the same `attncli bench` command twice, each in a fresh process, one right after the other,
and prints each row's two medians and their difference relative to their mean.

    python benchmarks/repeatability.py                       # bench mha -p medium -s 1024 --device cpu --dtype float32
    python benchmarks/repeatability.py -- compare mha gqa -m both   # any attncli arguments after --
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["bench", "mha", "-p", "medium", "-s", "1024", "--device", "cpu", "--dtype", "float32"]
TARGET = 0.05


def run(args: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "attncli", *args, "--json", "-"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(p.stderr.strip())
    return json.loads(p.stdout)


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else DEFAULT
    first, second = run(args), run(args)
    print(f"attncli {' '.join(args)}  (two fresh processes, back to back)")
    worst = 0.0
    for a, b in zip(first, second):
        m1, m2 = a["latency_ms_median"], b["latency_ms_median"]
        diff = abs(m1 - m2) / ((m1 + m2) / 2)
        worst = max(worst, diff)
        noisy = " [noisy]" if a["noisy"] or b["noisy"] else ""
        print(f"{a['label']:>12} {a['mode']:>7} s={a['seq_len']} b={a['batch']}: {m1:.3f} ms, {m2:.3f} ms → {100 * diff:.1f}%{noisy}")
    print(f"largest back-to-back median difference: {100 * worst:.1f}% ({'within' if worst <= TARGET else 'OVER'} {100 * TARGET:.0f}%)")


if __name__ == "__main__":
    main()
