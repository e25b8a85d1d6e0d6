#!/usr/bin/env python
"""GQA decode's 4-row products: the BLAS path attncli runs against a hand-written AVX2 kernel
(issue 17, acceptance 2; docs/backends.md, "Not at 0.8 yet").

Compiles gqa_decode_kernel.c with the system C compiler (`cc`, or $CC) into a temporary folder,
then times, in interleaved rounds on the decode bandwidth benchmark's shape (large: 4 KV heads of
64 with 4 query rows each, 8,193 cached keys, batch 4, float32, the CPU cache layout of
common.kv_cache_tensor), each part of one attention step both ways: q·Kᵀ, P·V, and the whole
step (scores, scale, softmax, P·V). Prints each side's GB/s of K and V read once, the per-round
ratio, a read-only pass over the same bytes, and each side's relative L2 error against float64.
Exits 3 when there is no compiler or no AVX2/FMA.

    python benchmarks/gqa_decode_kernel.py [--rounds 30] [--threads N] [-s 8193] [-b 4]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import interleaved, machine_line, per_round, spread

SOURCE = Path(__file__).with_suffix(".c")


def build(folder: str) -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    if cc is None or not {"avx2", "fma"} <= set(flags):
        print("no C compiler, or this CPU lacks AVX2/FMA: nothing to measure")
        raise SystemExit(3)
    lib = os.path.join(folder, "gqa_decode_kernel.so")
    subprocess.run([cc, "-O3", "-mavx2", "-mfma", "-shared", "-fPIC", "-pthread", str(SOURCE), "-o", lib], check=True)
    dll = ctypes.CDLL(lib)
    c = ctypes
    dll.attncli_group_product.argtypes = [c.c_int, c.c_void_p, c.c_void_p, c.c_void_p, c.c_long, c.c_int, c.c_int,
                                          c.c_long, c.c_long, c.c_long, c.c_int]  # fmt: skip
    return dll


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seq-len", "-s", type=int, default=8193, help="cached keys (8,192 + the new token)")
    ap.add_argument("--batch", "-b", type=int, default=4)
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        dll = build(folder)
        B, g, r, hd, S = a.batch, 4, 4, 64, a.seq_len
        cap = S + 64  # the cache holds more slots than it has filled, as attncli's does
        gen = torch.Generator().manual_seed(0)
        kt = torch.randn(B, g, hd, cap, generator=gen)  # storage (B, g, hd, slots): kv_cache_tensor's CPU layout
        vt = torch.randn(B, g, hd, cap, generator=gen)
        k, v = kt.transpose(2, 3)[:, :, :S], vt.transpose(2, 3)[:, :, :S]  # (B, g, S, hd) views
        q = torch.randn(B, g, r, hd, generator=gen)
        scale = hd**-0.5
        pairs = B * g

        def c_scores():
            s = torch.empty(B, g, r, S)
            assert dll.attncli_group_product(0, q.data_ptr(), kt.data_ptr(), s.data_ptr(), pairs, r, hd, S, cap,
                                             hd * cap, threads) == 0  # fmt: skip
            return s

        def c_pv(w):
            o = torch.empty(B, g, r, hd)
            assert dll.attncli_group_product(1, w.data_ptr(), vt.data_ptr(), o.data_ptr(), pairs, r, hd, S, cap,
                                             hd * cap, threads) == 0  # fmt: skip
            return o

        def blas_scores():
            return torch.matmul(q, k.transpose(2, 3))  # as common.decode_attention

        def blas_pv(w):
            return torch.matmul(v.transpose(2, 3), w.transpose(2, 3)).transpose(2, 3)

        def step(scores, pv):
            s = scores()
            s.mul_(scale)
            return pv(torch.softmax(s, dim=-1))

        w = torch.softmax(blas_scores() * scale, dim=-1)
        exact = torch.softmax(q.double() @ k.double().transpose(2, 3) * scale, -1) @ v.double()

        def rel(o):
            return ((o.double() - exact).norm() / exact.norm()).item()

        def timed(fn):
            def go():
                start = time.perf_counter()
                fn()
                return time.perf_counter() - start

            return go

        sides = {"blas q·Kᵀ": timed(blas_scores), "c q·Kᵀ": timed(c_scores),
                 "blas P·V": timed(lambda: blas_pv(w)), "c P·V": timed(lambda: c_pv(w)),
                 "blas step": timed(lambda: step(blas_scores, blas_pv)),
                 "c step": timed(lambda: step(c_scores, c_pv)), "read K+V (sum)": timed(lambda: (kt.sum(), vt.sum()))}  # fmt: skip
        for fn in sides.values():  # warm-up
            fn()
        got = interleaved(sides, a.rounds)
        one = B * g * S * hd * 4  # bytes of K (or of V) read once
        print(machine_line())
        print(f"torch {torch.__version__} · {threads} threads · batch {B}, {g} KV heads × {r} query rows, {S:,} keys of {hd}, "
              f"float32 · {a.rounds} rounds, interleaved")  # fmt: skip
        for name, ts in got.items():
            nbytes = 2 * one if ("step" in name or "K+V" in name) else one
            gbps = spread([nbytes / t / 1e9 for t in ts])
            print(f"  {name:15s} {spread([t * 1e3 for t in ts]).show('.2f', ' ms')}  {gbps.show('.1f', ' GB/s')}")
        for part in ("q·Kᵀ", "P·V", "step"):
            print(f"  c / blas time, {part}: {spread(per_round(got[f'c {part}'], got[f'blas {part}'])).show()}")
        print(f"  rel L2 error of the step vs float64: blas {rel(step(blas_scores, blas_pv)):.2e}, "
              f"c {rel(step(c_scores, c_pv)):.2e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
