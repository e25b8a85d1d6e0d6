#!/usr/bin/env python
"""Achieved fraction of the device's measured matmul peak (issue 6, acceptance 1; issue 21).

Each round runs, in this one process and one right after the other,
    attncli peak --refresh --device cpu --dtype float32
    attncli bench mha:causal=false mha mha:causal=false,position=none -p medium -s 1024 --device cpu --dtype float32
and takes frac_of_peak = achieved GFLOP/s / that round's peak for each row. The headline is the
configuration users get by default, RoPE on: `mha:causal=false` (bidirectional, so every counted
FLOP is a dense matmul, as the peak's are; target ≥ 0.85). Beside it: the default causal `mha`
row, and the row without RoPE (position=none: RoPE is elementwise work outside the FLOP count,
so that row is the like-for-like one). Rounds alternate the order of the peak and the bench
(ABBA), and every figure is the median over the rounds with its p25–p75. The peak goes to a
private cache folder, not the user's.

    python benchmarks/peak_fraction.py [--device cpu] [--dtype float32] [--threads N] [--rounds 10] [--min-time 1]
"""

from __future__ import annotations

import argparse

from _common import attncli, interleaved, machine_line, per_round, private_cache, spread

TARGET = 0.85
ROWS = ("mha:causal=false", "mha", "mha:causal=false,position=none")  # headline first
NAMES = {ROWS[0]: "bidirectional, RoPE (headline)", ROWS[1]: "causal, RoPE (bench mha)",
         ROWS[2]: "bidirectional, no RoPE"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--seq-len", default="1024")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--min-time", default="1.0", help="seconds of timed runs per row (attncli's default is 0.2)")
    ap.add_argument("--show", action="store_true", help="also print attncli's tables")
    a = ap.parse_args()
    private_cache()
    common = ["--device", a.device, "--dtype", a.dtype] + (["--threads", str(a.threads)] if a.threads else [])
    print(f"machine: {machine_line()}")

    def peak():
        (row,) = attncli("peak", "--refresh", *common, show=a.show)
        return row

    def bench():  # uses the peak the last `peak` call cached
        return attncli("bench", *ROWS, "-p", a.preset, "-s", a.seq_len, "--min-time", a.min_time, *common, show=a.show)

    def report(i, got):
        p, rows = got["peak"], got["bench"]
        if i == 0:
            print(f"device: {p['device_name']} · {p['dtype']} · {p['threads']} threads · torch {p['torch_version']}")
        print(f"round {i + 1:>2}: peak {p['peak_gflops']:.1f} GFLOP/s (n={p['matmul_n']}){' [noisy]' if p.get('noisy') else ''}"
              + "".join(f" · {r['label']} {r['gflops_per_s']:.1f} GFLOP/s{' [noisy]' if r['noisy'] else ''}" for r in rows))  # fmt: skip

    # Odd rounds bench first: the bench then reads the previous round's peak (cached by that call).
    got = interleaved({"peak": peak, "bench": bench}, a.rounds + 1, on_round=report)
    peaks, benches = got["peak"], got["bench"]
    # Each bench row is put against the peak measured right next to it in the same round.
    fracs = {spec: [] for spec in ROWS}
    for i in range(a.rounds + 1):
        for spec, row in zip(ROWS, benches[i]):
            fracs[spec].append(row["gflops_per_s"] / peaks[i]["peak_gflops"])
    fracs = {k: v[1:] for k, v in fracs.items()}  # round 1 is a warm-up (first compile of kernels, page faults)
    print(f"\n{a.preset} -s {a.seq_len} {a.dtype}, median over {a.rounds} rounds (p25–p75):")
    print(f"  peak: {spread(p['peak_gflops'] for p in peaks[1:]).show('.1f', ' GFLOP/s')}")
    for spec in ROWS:
        print(f"  frac_of_peak {spec:<32} {NAMES[spec]:<32} {spread(fracs[spec]).show()}")
    rope_cost = spread(per_round(fracs[ROWS[2]], fracs[ROWS[0]]))
    print(f"  no-RoPE / RoPE, per round: {rope_cost.show()}")
    head = spread(fracs[ROWS[0]])
    if head.median > 1:  # a layer cannot beat the matmul peak: the peak was measured badly (load)
        verdict = "INVALID: above 1, the peak was measured under load; rerun on a quiet machine"
    else:
        verdict = f"{'meets' if head.median >= TARGET else 'BELOW'} the ≥ {TARGET} target"
    print(f"frac_of_peak = {head.show()} for {ROWS[0]} ({verdict})")


if __name__ == "__main__":
    main()
