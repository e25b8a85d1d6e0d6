#!/usr/bin/env python
"""Sliding window under FlexAttention: swa's prefill speed-up over mha beside the FLOP-ratio ideal
(issue 17, acceptance 1: the speed-up is at least 0.9 of the ideal).

    python benchmarks/swa_flex.py [-p medium] [-s 4096] [--window 1024] [--threads 1] [--rounds 5]
                                  [--backends flex,auto]

For each backend (flex: compiled FlexAttention with a block mask; auto: attncli's SDPA fast path)
one mha and one swa layer of the preset run a prefill of S tokens; the two are timed alternately
(mha, swa, mha, swa, ...) with attncli's timing function and the ratio mha / swa is taken per round,
so a busy spell slows both sides alike. The ideal is the analytic FLOP ratio mha / swa of the whole
layer (projections included, cost.py). Compilation runs before the first round, outside the timing;
its seconds are printed. Each output is checked against the float64 plain-math path.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

from _common import ROOT  # noqa: F401 - puts this checkout first on sys.path

import torch

from attncli import presets, registry
from attncli.measure.backend import sdpa_context
from attncli.measure.error import error_metrics
from attncli.measure.timing import time_fn
from attncli.rows import analytic_row
from attncli.spec import Shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", "-p", default="medium")
    ap.add_argument("--seq-len", "-s", type=int, default=4096)
    ap.add_argument("--window", type=int, default=None, help="swa's window [default: the swa family's]")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of timed runs per layer per round")
    ap.add_argument("--backends", default="flex,auto", help="comma-separated: flex, auto, math, ...")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    preset = presets.load_preset(a.preset)
    specs = [presets.parse_variant("mha", preset),
             presets.parse_variant("swa" if a.window is None else f"swa:window={a.window}", preset)]  # fmt: skip
    shape = Shape("prefill", a.seq_len, 1)
    flops = [analytic_row(s, preset, shape, 1, "float32")["flops"] for s in specs]
    ideal = flops[0] / flops[1]
    cpu = torch.device("cpu")
    x = torch.randn(1, a.seq_len, preset.d_model, generator=torch.Generator().manual_seed(1))
    modules = []
    for spec in specs:
        torch.manual_seed(0)
        modules.append(registry.get(spec.family).build(spec).eval())
    print(f"preset {preset.name}: {specs[0].label} vs {specs[1].label}, prefill S={a.seq_len}, batch 1, float32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"FLOPs: {specs[0].label} {flops[0] / 1e9:.2f} G, {specs[1].label} {flops[1] / 1e9:.2f} G; "
          f"ideal speed-up (FLOP ratio) {ideal:.3f}×")  # fmt: skip
    with torch.inference_mode():
        refs = []
        for m in modules:  # float64 plain-math references, for the error check
            refs.append(m.double()(x.double(), math=True)[0])
            m.float()
        for backend in a.backends.split(","):
            backend = backend.strip()
            with sdpa_context(backend) if backend != "auto" else contextlib.nullcontext():
                compile_s = []
                for m, ref in zip(modules, refs):
                    t0 = time.perf_counter()
                    y = m(x)[0]  # flex: compiles its kernel for this shape and mask
                    compile_s.append(time.perf_counter() - t0)
                    err = error_metrics(y, ref)
                    if err is None or err["rel_l2"] > 1e-5:
                        raise SystemExit(f"{backend}: output disagrees with the float64 math path: {err}")
                ms = [[], []]
                for _ in range(a.rounds):  # interleaved: mha, swa, mha, swa, ...
                    for i, m in enumerate(modules):
                        ms[i].append(time_fn(lambda m=m: m(x), cpu, min_run_time=a.min_time).median_ms)
                ratios = [t0 / t1 for t0, t1 in zip(*ms)]
                speedup = statistics.median(ratios)
                print(f"{backend:>5}: first call {compile_s[0]:.1f} s / {compile_s[1]:.1f} s (compile + one run); "
                      f"{specs[0].label} {statistics.median(ms[0]):.1f} ms, {specs[1].label} {statistics.median(ms[1]):.1f} ms; "
                      f"speed-up {speedup:.3f}× (rounds {min(ratios):.3f}–{max(ratios):.3f}) = "
                      f"{speedup / ideal:.2f} of ideal")  # fmt: skip


if __name__ == "__main__":
    main()
