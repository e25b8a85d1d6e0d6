#!/usr/bin/env python
"""Achieved fraction of the device's measured matmul peak (issue 6, acceptance 1).

Each round runs, in this one process and one right after the other,
    attncli peak --refresh --device cpu --dtype float32
    attncli bench mha:causal=false -p medium -s 1024 --device cpu --dtype float32
and prints the peak, the row's achieved GFLOP/s and frac_of_peak = achieved / peak (target ≥ 0.85);
the last line gives the median over the rounds. Rounds guard against a machine whose load changes
between the peak and the bench (a `noisy` flag marks a timing whose IQR exceeds 10% of its
median). The same row without RoPE (position=none) is printed beside it: RoPE is elementwise work
outside the FLOP count, so that row is the like-for-like one (all its counted work is matmuls, as
the peak's is). The peak goes to a private cache folder, not the user's.

    python benchmarks/peak_fraction.py [--device cpu] [--dtype float32] [--threads N] [--rounds 3] [--min-time 1]
"""

from __future__ import annotations

import argparse
import statistics

from _common import attncli, private_cache

TARGET = 0.85


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--seq-len", default="1024")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", default="1.0", help="seconds of timed runs per row (attncli's default is 0.2)")
    ap.add_argument("--show", action="store_true", help="also print attncli's tables")
    a = ap.parse_args()
    private_cache()
    common = ["--device", a.device, "--dtype", a.dtype] + (["--threads", str(a.threads)] if a.threads else [])

    fracs, nope_fracs = [], []
    for i in range(a.rounds):
        (peak,) = attncli("peak", "--refresh", *common, show=a.show)
        rows = attncli("bench", "mha:causal=false", "mha:causal=false,position=none", "-p", a.preset, "-s", a.seq_len,
                       "--min-time", a.min_time, *common, show=a.show)  # fmt: skip
        if i == 0:
            print(f"device: {peak['device_name']} · {peak['dtype']} · {peak['threads']} threads · "
                  f"torch {peak['torch_version']}")  # fmt: skip
        print(f"round {i + 1}: peak {peak['peak_gflops']:.1f} GFLOP/s (torch.mm n={peak['matmul_n']})"
              f"{' [noisy]' if peak.get('noisy') else ''}")  # fmt: skip
        for row in rows:
            print(f"  {row['label']:>14} -p {a.preset} -s {a.seq_len}: {row['flops'] / 1e9:.2f} GFLOP in "
                  f"{row['latency_ms_median']:.2f} ms (p25–p75 {row['latency_ms_p25']:.2f}–{row['latency_ms_p75']:.2f}, "
                  f"{row['n_runs']} runs) = {row['gflops_per_s']:.1f} GFLOP/s → frac_of_peak {row['frac_of_peak']:.3f}"
                  f"{' [noisy]' if row['noisy'] else ''}")  # fmt: skip
        fracs.append(rows[0]["frac_of_peak"])
        nope_fracs.append(rows[1]["frac_of_peak"])
    ratio = statistics.median(fracs)
    verdict = "meets" if ratio >= TARGET else "BELOW"
    print(f"frac_of_peak = {ratio:.3f}, median of {a.rounds} round(s) ({verdict} the ≥ {TARGET} target; "
          f"without RoPE: {statistics.median(nope_fracs):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
