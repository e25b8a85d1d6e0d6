#!/usr/bin/env python
"""GQA decode's attention on the CPU: attncli's C kernel (variants/cdecode.py) against the BLAS
path it replaces, and against a read-only pass over the same bytes (issue 17, acceptance 2;
docs/backends.md, "Decode at memory speed").

On the decode bandwidth benchmark's shape (large: 4 KV heads of 64 with 4 query rows each, 8,193
cached keys, batch 4, float32, the CPU cache layout of common.kv_cache_tensor), times in
interleaved rounds: the kernel, the BLAS path (common.decode_attention with the kernel off), and
`K.sum(); V.sum()`. Prints each side's GB/s of K and V read once, the per-round time ratios, and
each side's relative L2 error against float64 beside the float32 plain-math path's. Exits 3 when
the kernel cannot be built here (it says why).

    python benchmarks/gqa_decode_kernel.py [--rounds 30] [--threads N] [-s 8193] [-b 4] [--rows 4]
"""

from __future__ import annotations

import argparse
import sys

from _common import decode_kernels_missing, interleaved, print_header, print_ratio, print_sides, timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seq-len", "-s", type=int, default=8193, help="cached keys (8,192 + the new token)")
    ap.add_argument("--batch", "-b", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--rows", type=int, default=4, help="query heads per KV head")
    ap.add_argument("--head-dim", type=int, default=64)
    a = ap.parse_args()
    missing = decode_kernels_missing(a.threads)
    if missing:
        return missing
    import torch

    from attncli.variants import cdecode, common

    B, g, r, hd, S = a.batch, a.kv_heads, a.rows, a.head_dim, a.seq_len
    gen = torch.Generator().manual_seed(0)
    like = torch.empty(0)
    k = common.kv_cache_tensor(like, (B, g, S + 64, hd))[:, :, :S].normal_(generator=gen)  # spare slots, as a cache has
    v = common.kv_cache_tensor(like, (B, g, S + 64, hd))[:, :, :S].normal_(generator=gen)
    q = torch.randn(B, g * r, 1, hd, generator=gen)
    scale = hd**-0.5
    lib = cdecode.library()

    def blas():
        cdecode._state["lib"] = None  # decode_attention's BLAS products, as without the kernel
        try:
            return common.decode_attention(q, k, v, scale, q_pos=S)
        finally:
            cdecode._state["lib"] = lib

    def kernel():
        return cdecode.attention(q, k, v, scale)

    storage_k, storage_v = k.transpose(2, 3), v.transpose(2, 3)  # (B, g, hd, S) views of the storage

    sides = {"kernel": timed(kernel), "blas": timed(blas), "read K+V": timed(lambda: (storage_k.sum(), storage_v.sum()))}
    for fn in sides.values():
        fn()
    got = interleaved(sides, a.rounds)
    exact = common.math_attention(q.double(), k.double(), v.double(), causal=False, scale=scale)  # float64

    def rel(o):
        return ((o.double() - exact).norm() / exact.norm()).item()

    nbytes = 2 * B * g * S * hd * 4  # K and V read once
    print_header(f"batch {B}, {g} KV heads × {r} query rows, {S:,} keys of {hd}, float32 · {a.rounds} rounds, "
                 f"interleaved")  # fmt: skip
    print_sides(got, nbytes, ms=".2f")
    print_ratio("kernel / blas time", got["kernel"], got["blas"])
    print_ratio("read K+V / kernel time (the kernel's fraction of the read-only rate)", got["read K+V"], got["kernel"])
    math = common.math_attention(q, k, v, causal=False, scale=scale)
    print(f"  rel L2 error vs float64: kernel {rel(kernel()):.2e}, blas {rel(blas()):.2e}, float32 math path {rel(math):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
