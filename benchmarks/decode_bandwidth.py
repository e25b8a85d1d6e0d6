#!/usr/bin/env python
"""Decode bytes/s against the device's measured memory bandwidth (issues 6 and 17).

In one process: `attncli peak --refresh` (the copy bandwidth, read + write bytes counted), then
`attncli bench mha -m decode` at a shape whose working set (weights + KV cache) is far beyond
the last-level cache (default: large preset, 8192 cached tokens, batch 4, float32: 256 MiB of KV
cache and 16 MiB of weights). Prints the analytic bytes one step moves, the achieved GB/s
(bytes / median latency) and its ratio to the measured bandwidth (the rows' `frac_of_bw`), then
that ratio against a second copy measurement taken after the rows (a busy machine drifts) and
against a read-only pass (`buffer.sum()`: what reads alone reach; decode mostly reads). A working set that fits in
cache can beat the DRAM figure (ratio > 1); that is the cache, not an error.

    python benchmarks/decode_bandwidth.py [--device cpu] [--dtype float32] [-s 8192] [-b 4] [--variant mha]
"""

from __future__ import annotations

import argparse

from _common import attncli, private_cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--preset", "-p", default="large")
    ap.add_argument("--seq-len", "-s", default="8192")
    ap.add_argument("--batch", "-b", default="4")
    ap.add_argument("--variant", nargs="+", default=["mha"])
    ap.add_argument("--threads", type=int)
    ap.add_argument("--min-time", default="1.0")
    ap.add_argument("--show", action="store_true", help="also print attncli's tables")
    a = ap.parse_args()
    private_cache()
    common = ["--device", a.device, "--dtype", a.dtype] + (["--threads", str(a.threads)] if a.threads else [])

    (peak,) = attncli("peak", "--refresh", *common, show=a.show)
    rows = attncli("bench", *a.variant, "-p", a.preset, "-s", a.seq_len, "-b", a.batch, "-m", "decode",
                   "--min-time", a.min_time, *common, show=a.show)  # fmt: skip
    (after,) = attncli("peak", "--refresh", *common, show=a.show)  # a busy machine drifts: measure again
    read_gbps = _read_bandwidth(a.device, peak["copy_bytes"], a.threads)
    mib = 2**20
    print(f"device: {peak['device_name']} · {peak['dtype']} · {peak['threads']} threads · torch {peak['torch_version']}")
    print(f"bandwidth (dst.copy_(src), {peak['copy_bytes'] / mib:.0f} MiB, read + write counted): {peak['peak_gbps']:.2f} GB/s"
          f"{'  [noisy: machine busy]' if peak.get('noisy') else ''}")  # fmt: skip
    for row in rows:
        print(f"{row['label']} decode -p {a.preset} -s {a.seq_len} -b {a.batch}: moves {row['bytes_moved'] / mib:.1f} MiB "
              f"(weights {row['bytes_weights'] / mib:.1f}, KV read {row['bytes_kv_read'] / mib:.1f}, "
              f"KV write {row['bytes_kv_write'] / mib:.2f}, activations {row['bytes_activations'] / mib:.2f}) "
              f"in {row['latency_ms_median']:.2f} ms (p25–p75 {row['latency_ms_p25']:.2f}–{row['latency_ms_p75']:.2f})"
              f"{'  [noisy]' if row['noisy'] else ''}")  # fmt: skip
        print(f"  decode {row['gbytes_per_s']:.2f} GB/s / measured {peak['peak_gbps']:.2f} GB/s = "
              f"{row['frac_of_bw']:.3f} (frac_of_bw; bound: {row['bound']}, SDPA {row['backend_used']})")  # fmt: skip
        print(f"  against the copy bandwidth measured after the rows ({after['peak_gbps']:.2f} GB/s): "
              f"{row['gbytes_per_s'] / after['peak_gbps']:.3f}; against a read-only pass (buffer.sum(), "
              f"{read_gbps:.2f} GB/s of reads): {row['gbytes_per_s'] / read_gbps:.3f}")  # fmt: skip


def _read_bandwidth(device: str, nbytes: int, threads) -> float:
    """GB/s of a read-only pass: buffer.sum() over `nbytes` (the copy's buffer size), attncli's timing."""
    import torch

    from attncli.measure.timing import time_fn

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    buf = torch.ones(nbytes // 4, device=dev)
    return nbytes / (time_fn(lambda: buf.sum(), dev, min_run_time=0.5).median_ms * 1e-3) / 1e9


if __name__ == "__main__":
    main()
