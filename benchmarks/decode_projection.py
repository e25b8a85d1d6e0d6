#!/usr/bin/env python
"""A decode step's few-row projections on the CPU: attncli's C kernel (cdecode.linear, which
common.Projection calls) against the BLAS product it replaces (W·xᵀ, then the transposing copy),
and against a read-only pass over the same weights (issue 17, acceptance 2; docs/backends.md).

The four projections of the large preset's gqa-kv4 (q 1024×1024, k and v 256×1024, o 1024×1024,
float32, 10 MiB) on `--rows` rows (the batch: one token per sequence). Before each side of each
round a 64 MiB pass evicts the weights from the caches, as a decode step's stream over its KV cache
does. Prints each side's time and GB/s of weights read, the per-round time ratios, and each side's
relative L2 error against float64. Exits 3 when the kernel cannot be built here (it says why).

    python benchmarks/decode_projection.py [--rounds 30] [--rows 4] [--threads N]
"""

from __future__ import annotations

import argparse
import sys

from _common import decode_kernels_missing, interleaved, print_header, print_ratio, print_sides, timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--rows", type=int, default=4, help="rows of x: the batch (3-8 take the kernel)")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    missing = decode_kernels_missing(a.threads)
    if missing:
        return missing
    import torch

    from attncli.variants import cdecode

    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(n_out, 1024, generator=gen) for n_out in (1024, 256, 256, 1024)]  # q, k, v, o
    x = torch.randn(a.rows, 1024, generator=gen)
    evict = torch.ones(16 * 2**20)  # 64 MiB, beyond the last-level cache

    def kernel():
        return [cdecode.linear(x, w) for w in weights]

    def blas():
        return [torch.matmul(w, x.t()).t().contiguous() for w in weights]  # common.Projection without the kernel

    with torch.inference_mode():
        if kernel()[0] is None:
            rows = cdecode.LINEAR_ROWS
            print(f"{a.rows} rows do not take the kernel (it takes {rows.start}-{rows.stop - 1})")
            return 2
        sides = {name: timed(fn, before=evict.sum)
                 for name, fn in (("kernel", kernel), ("blas", blas), ("read W", lambda: [w.sum() for w in weights]))}
        got = interleaved(sides, a.rounds)
        exact = [x.double() @ w.double().t() for w in weights]

        def rel(outs):
            return max(((o.double() - e).norm() / e.norm()).item() for o, e in zip(outs, exact))

        errs = rel(kernel()), rel(blas())
    nbytes = sum(w.numel() for w in weights) * 4
    print_header(f"{a.rows} rows × the 4 projections of large gqa-kv4 ({nbytes / 2**20:.0f} MiB of float32 "
                 f"weights, evicted before each side) · {a.rounds} rounds, interleaved")  # fmt: skip
    print_sides(got, nbytes)
    print_ratio("kernel / blas time", got["kernel"], got["blas"])
    print_ratio("read W / kernel time (the kernel's fraction of the read-only rate)", got["read W"], got["kernel"])
    print(f"  rel L2 error vs float64 (worst of the four): kernel {errs[0]:.2e}, blas {errs[1]:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
